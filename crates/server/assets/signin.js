/**
 * The demo page's sign-in and sign-up: the identifier-first form and the server's decision
 * (`/login/start`) it follows, the passkey ceremonies, "Sign in with a passkey"
 * (discoverable), the sign-up form and passkey autofill (conditional mediation).
 *
 * Autofill: when the browser supports conditional mediation, a usernameless request is
 * started whenever the sign-in form is shown; it is aborted (and awaited) before any other
 * ceremony starts, because a browser runs only one WebAuthn request at a time.
 *
 * @module signin
 */
import { HandoffError } from '/sdk/handoff.js';
import { busy, el } from '/assets/dom.js';
import { clearStatus, els, explain, handoff, isAbort, setStatus, showView, state, webauthnSupported } from '/assets/app.js';
import { enterAccount } from '/assets/account.js';
import { showAppendOffer } from '/assets/append.js';
import { expireCrossDevice, showAlternative, showCrossDevice, stopTimer } from '/assets/cross-device.js';

// ---- autofill (conditional mediation) ----------------------------------------

let autofill = null; // {controller, done: Promise<void>}
let autofillGeneration = 0; // bumped by stopAutofill, so a start still deciding gives up

async function startAutofill() {
  if (autofill || state.session || !webauthnSupported) return;
  const generation = ++autofillGeneration;
  if (!(await handoff.isConditionalMediationAvailable())) return;
  if (autofill || state.session || generation !== autofillGeneration) return;
  const controller = new AbortController();
  const current = { controller, done: null };
  autofill = current;
  current.done = handoff
    .signInWithAutofill({ signal: controller.signal })
    .then(
      async () => {
        if (autofill === current) autofill = null;
        await enterAccount('Signed in with your passkey.');
      },
      (error) => {
        if (autofill === current) autofill = null;
        // Aborting is ours; NotAllowedError means nothing was picked. Neither is news to the user.
        // Autofill is not restarted here, so a failing request cannot loop; it starts again on the
        // next sign-in attempt, sign-out or page load.
        if (isAbort(error) || error?.code === 'NotAllowedError') return;
        setStatus(explain(error, 'signin'), 'error');
      },
    );
}

/** Abort a pending autofill request and wait until the browser has let go of it. */
async function stopAutofill() {
  autofillGeneration++;
  const current = autofill;
  if (!current) return;
  autofill = null;
  current.controller.abort();
  await current.done;
}

// ---- the signed-out view -------------------------------------------------------

export function showSignedOut() {
  state.session = null;
  state.flow = null;
  stopTimer();
  showView(els.signedOut);
  startAutofill();
}

// ---- form handlers -----------------------------------------------------------

function requireValue(input, message) {
  const value = input.value.trim();
  const errorId = `${input.id}-error`;
  document.getElementById(errorId)?.remove();
  input.removeAttribute('aria-invalid');
  const describedBy = (input.getAttribute('aria-describedby') ?? '').split(' ').filter((id) => id && id !== errorId);
  if (value) {
    if (describedBy.length) input.setAttribute('aria-describedby', describedBy.join(' '));
    else input.removeAttribute('aria-describedby');
    return value;
  }
  const error = el('p', { class: 'field-error', text: message });
  error.id = errorId;
  input.insertAdjacentElement('afterend', error);
  input.setAttribute('aria-invalid', 'true');
  input.setAttribute('aria-describedby', [...describedBy, errorId].join(' '));
  input.focus();
  clearStatus();
  return null;
}

/** Wire the sign-in and sign-up forms (called once by app.js). */
export function setupSignIn() {
  // A field error goes away as soon as the person types.
  for (const input of [document.getElementById('identifier'), document.getElementById('signup-identifier')]) {
    input.addEventListener('input', () => {
      if (input.getAttribute('aria-invalid') === 'true' && input.value.trim()) requireValue(input, '');
    });
  }

  els.signinForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const identifier = requireValue(els.identifier, 'Enter your email or username.');
    if (!identifier) return;
    const done = busy(els.signinContinue, 'Waiting for your passkey…');
    setStatus('Checking how you can sign in…');
    try {
      await stopAutofill();
      await startFlow(identifier);
    } catch (error) {
      if (!isAbort(error)) setStatus(explain(error, 'signin'), 'error');
      startAutofill();
    } finally {
      done();
    }
  });

  els.signinPasskey.addEventListener('click', async () => {
    const done = busy(els.signinPasskey, 'Waiting for your passkey…');
    setStatus('Choose a passkey in the dialog your browser shows.');
    try {
      await stopAutofill();
      await handoff.signInDiscoverable();
      await enterAccount('Signed in with your passkey.');
    } catch (error) {
      if (!isAbort(error)) setStatus(explain(error, 'signin'), 'error');
      startAutofill();
    } finally {
      done();
    }
  });

  els.signupForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const identifier = requireValue(els.signupIdentifier, 'Choose an email or username for your account.');
    if (!identifier) return;
    const displayName = els.signupName.value.trim();
    const done = busy(els.signupSubmit, 'Creating your passkey…');
    setStatus('Follow the instructions from your browser to create a passkey.');
    try {
      await stopAutofill();
      const result = await handoff.signUp({ identifier, displayName: displayName || undefined });
      const provider = result?.provider?.name;
      await enterAccount(
        provider && provider.toLowerCase() !== 'unknown'
          ? `Account created. Your passkey is saved in ${provider}.`
          : 'Account created. Your passkey is saved.',
      );
    } catch (error) {
      if (!isAbort(error)) setStatus(explain(error, 'signup'), 'error');
      startAutofill();
    } finally {
      done();
    }
  });
}

// ---- identifier-first sign-in: follow the server's decision -------------------

/** Ask the server how this identifier can sign in here, then take that path. */
export async function startFlow(identifier, journeyId) {
  stopTimer();
  const attempt = await handoff.startSignIn({ identifier, journeyId });
  state.flow = { identifier, journeyId: attempt.journeyId ?? journeyId, attempt, decision: attempt.decision };
  const verdict = attempt.decision?.verdict;
  // No WebAuthn here: QR approval with a phone and the server's fallbacks still work.
  if (!webauthnSupported) return showAlternative(attempt.decision, { why: 'unsupported' });
  if (attempt.hasCeremony && verdict === 'cross-device') return showCrossDevice();
  if (attempt.hasCeremony) return runCeremony(attempt);
  return showAlternative(attempt.decision, { why: 'decided' });
}

/** Open the browser's passkey dialog for the attempt; on success sign in, on failure offer the next step. */
export async function runCeremony(attempt, options = {}) {
  setStatus(
    attempt.decision?.verdict === 'cross-device' || options.hints?.includes('hybrid')
      ? "Scan the QR code your computer shows with your phone's camera, then confirm on the phone."
      : 'Follow the instructions from your browser to use your passkey.',
  );
  let result;
  try {
    result = await handoff.completeSignIn(attempt, options);
  } catch (error) {
    state.flow = state.flow && { ...state.flow, attempt: null };
    return afterFailure(error, attempt);
  }
  return signedIn(result);
}

async function signedIn(result) {
  if (result?.appendOffer) {
    try {
      state.session = await handoff.session();
    } catch {
      state.session = null;
    }
    if (state.session) return showAppendOffer(result);
  }
  return enterAccount(result?.flow === 'cross-device' ? 'Signed in with your phone.' : 'Signed in. Welcome back!');
}

/** A failed ceremony: the ones a person can recover from lead to the next method. */
export function afterFailure(error, attempt) {
  const code = error instanceof HandoffError ? error.code : error?.name;
  const decision = error?.decision ?? attempt?.decision;
  if (code === 'ceremony-expired' && !els.crossDevice.hidden) return expireCrossDevice();
  if (['NotAllowedError', 'AbortError', 'user-not-verified', 'ceremony-expired'].includes(code) || error?.timedOut) {
    return offerNext(decision, error);
  }
  // Something else (server unreachable, origin mismatch…): back to the form with the explanation.
  const wasOnForm = !els.signedOut.hidden;
  if (!wasOnForm) showSignedOut();
  else startAutofill();
  setStatus(explain(error, 'signin'), 'error');
  if (!wasOnForm) els.signinTitle.focus();
}

/** After a failure, the decision's next method: `retry.then`, else the first other alternative. */
function offerNext(decision, error) {
  const failed = decision?.verdict;
  let next = decision?.retry?.then;
  if (!next || next === failed) {
    next = (decision?.alternatives ?? []).map((a) => a.verdict).find((v) => v && v !== failed) ?? 'fallback';
  }
  if (next === 'cross-device' && state.flow) {
    state.flow.attempt = null; // "Continue" asks the server for a fresh ceremony
    return showCrossDevice({ after: error });
  }
  return showAlternative(decision, { why: 'failed', error, next });
}
