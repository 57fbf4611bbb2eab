/**
 * Nobody locked out (PRODUCT §7) on the demo page: when a passkey is not the way in, the
 * alternative panel offers the server's fallbacks by name (`decision.fallbacks`): "Email
 * me a code" and "Use a recovery code". Both end in a *recovery session*; the account view
 * then says so and offers to create a passkey on this device first, after which the lost
 * phone's passkeys and sessions can be removed (those need a passkey check here, which
 * the new passkey gives). The account view also makes recovery codes (shown once, with
 * Copy and Download).
 *
 * Every call is the SDK's. While a code's mail is on its way, the page asks how delivery
 * goes and says so when the mail server refused it or cannot be reached.
 *
 * @module recovery
 */
import { busy, el } from '/assets/dom.js';
import { els, explain, handoff, setStatus, showView, state } from '/assets/app.js';
import { enterAccount, askForPasskey } from '/assets/account.js';

let attempt = null; // the email code attempt in progress
let deliveryTimer = 0;

/** The fallbacks the server named in its decision. */
export function fallbacksOf(decision) {
  return decision?.fallbacks ?? [];
}

function fieldError(input, error, text) {
  error.hidden = !text;
  error.textContent = text ?? '';
  input.setAttribute('aria-invalid', text ? 'true' : 'false');
  if (text) {
    setStatus(text, 'error');
    input.focus();
  }
}

// ---- email code ----------------------------------------------------------------

const DELIVERY = {
  queued: 'Sending the email…',
  retrying: "The mail server can't be reached right now; the email will be sent as soon as it can.",
  sent: 'The email was sent. It may take a minute to arrive; check your spam folder too.',
  failed: 'The email could not be delivered: the mail server refused it. Use another way to sign in, or ask the site for help.',
};

function watchDelivery() {
  clearInterval(deliveryTimer);
  const current = attempt;
  const check = async () => {
    if (attempt !== current || els.emailCode.hidden) return clearInterval(deliveryTimer);
    try {
      const delivery = await handoff.emailCodeDelivery(current.attemptId);
      els.emailCodeDelivery.textContent = DELIVERY[delivery] ?? '';
      els.emailCodeDelivery.classList.toggle('warning', delivery === 'failed' || delivery === 'retrying');
      if (delivery === 'sent' || delivery === 'failed') clearInterval(deliveryTimer);
      if (delivery === 'failed') setStatus(DELIVERY.failed, 'error');
    } catch {
      // The next tick tries again.
    }
  };
  check();
  deliveryTimer = setInterval(check, 1500);
}

async function sendCode() {
  const identifier = state.flow?.identifier;
  if (!identifier) return;
  setStatus('Sending a code…');
  try {
    attempt = await handoff.startEmailCode({ identifier, journeyId: state.flow.journeyId });
    if (attempt.journeyId) state.flow.journeyId = attempt.journeyId;
    handoff.track('fallback.chosen', { journeyId: state.flow.journeyId, flow: 'email-code', attrs: { method: 'email-code' } });
    els.emailCodeTo.textContent = identifier;
    els.emailCodeInput.value = '';
    fieldError(els.emailCodeInput, els.emailCodeError, null);
    showView(els.emailCode);
    els.emailCodeTitle.focus();
    setStatus(`If ${identifier} has an account, a code is on its way.`, 'ok');
    watchDelivery();
  } catch (error) {
    setStatus(explain(error, 'signin'), 'error');
  }
}

async function submitCode(event) {
  event.preventDefault();
  const code = els.emailCodeInput.value.replace(/\s|-/g, '');
  if (!/^\d{6}$/.test(code)) return fieldError(els.emailCodeInput, els.emailCodeError, 'The code has 6 digits.');
  const done = busy(els.emailCodeSubmit, 'Checking the code…');
  try {
    await handoff.finishEmailCode(attempt.attemptId, code);
    clearInterval(deliveryTimer);
    await enterAccount('Signed in with the code from your email.');
  } catch (error) {
    const texts = {
      'code-wrong': `That code is not right. ${error.triesLeft ?? 0} ${error.triesLeft === 1 ? 'try' : 'tries'} left.`,
      'too-many-tries': 'Too many wrong codes. Send a new code and use the newest email.',
      'code-expired': 'This code expired. Send a new code.',
    };
    fieldError(els.emailCodeInput, els.emailCodeError, texts[error.code] ?? explain(error, 'signin'));
  } finally {
    done();
  }
}

// ---- recovery code -------------------------------------------------------------

function showRecoveryCode() {
  els.recoveryCodeFor.textContent = state.flow?.identifier ?? '';
  els.recoveryCodeInput.value = '';
  fieldError(els.recoveryCodeInput, els.recoveryCodeError, null);
  handoff.track('fallback.chosen', { journeyId: state.flow?.journeyId, flow: 'recovery-code', attrs: { method: 'recovery-code' } });
  showView(els.recoveryCode);
  els.recoveryCodeTitle.focus();
}

async function submitRecoveryCode(event) {
  event.preventDefault();
  const code = els.recoveryCodeInput.value.trim();
  if (!code) return fieldError(els.recoveryCodeInput, els.recoveryCodeError, 'Type one of your recovery codes.');
  const done = busy(els.recoveryCodeSubmit, 'Checking the code…');
  try {
    const result = await handoff.redeemRecoveryCode({ identifier: state.flow.identifier, code, journeyId: state.flow.journeyId });
    const left = result.codesLeft;
    await enterAccount(`Signed in with a recovery code. ${left} ${left === 1 ? 'code is' : 'codes are'} left.`);
  } catch (error) {
    const text = error.code === 'code-wrong' ? 'That recovery code is not right, or it was used already.' : explain(error, 'signin');
    fieldError(els.recoveryCodeInput, els.recoveryCodeError, text);
  } finally {
    done();
  }
}

// ---- the account: recovery sessions and recovery codes ---------------------------

const HOW = {
  'email-code': 'You used a code from your email.',
  'recovery-code': 'You used a recovery code.',
  'recovery-link': "You used the site operator's recovery link.",
};

/** The account view's recovery parts (called by account.js when it renders). */
export async function renderRecovery() {
  const recovering = !!state.session?.recovery;
  els.recoveryBanner.hidden = !recovering;
  if (recovering) els.recoveryBannerHow.textContent = HOW[state.session.method] ?? '';
  els.codesShown.hidden = true;
  try {
    const left = await handoff.recoveryCodesLeft();
    els.codesLeft.textContent =
      left > 0
        ? `${left} unused recovery ${left === 1 ? 'code' : 'codes'}. Each signs you in once if you lose every passkey.`
        : 'No recovery codes yet. If you lose every passkey, a recovery code signs you in once.';
  } catch {
    els.codesLeft.textContent = 'If you lose every passkey, a recovery code signs you in once.';
  }
}

async function createCodes() {
  const done = busy(els.codesCreate, 'Creating codes…');
  try {
    const codes = await handoff.withStepUp(() => handoff.makeRecoveryCodes(), { onStepUp: askForPasskey });
    els.codesList.replaceChildren(...codes.map((text) => el('li', { text })));
    const file = `Recovery codes for ${state.session?.identifier ?? 'your account'} (each works once):\n\n${codes.join('\n')}\n`;
    els.codesDownload.href = `data:text/plain;charset=utf-8,${encodeURIComponent(file)}`;
    els.codesCopy.onclick = async () => {
      try {
        await navigator.clipboard.writeText(codes.join('\n'));
        setStatus('Recovery codes copied.', 'ok');
      } catch {
        setStatus('Copying is not allowed here; select the codes and copy them, or download them.', 'error');
      }
    };
    els.codesShown.hidden = false;
    els.codesLeft.textContent = `${codes.length} unused recovery codes. Earlier codes no longer work.`;
    setStatus('New recovery codes made. Save them now: they are shown only once.', 'ok');
  } catch (error) {
    setStatus(explain(error, 'account'), 'error');
  } finally {
    done();
  }
}

/** Wire the recovery buttons (called once by app.js). */
export function setupRecovery() {
  els.alternativeEmail.addEventListener('click', sendCode);
  els.alternativeRecovery.addEventListener('click', showRecoveryCode);
  els.emailCodeForm.addEventListener('submit', submitCode);
  els.emailCodeResend.addEventListener('click', sendCode);
  els.emailCodeBack.addEventListener('click', () => showView(els.alternative));
  els.recoveryCodeForm.addEventListener('submit', submitRecoveryCode);
  els.recoveryCodeBack.addEventListener('click', () => showView(els.alternative));
  els.recoveryCreate.addEventListener('click', () => els.addPasskey.click());
  els.codesCreate.addEventListener('click', createCodes);
}
