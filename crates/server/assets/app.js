/**
 * Handoff demo page: sign up, sign in (identifier-first, autofill, passkey
 * button) and an account view that shows where each passkey lives.
 *
 * Identifier-first sign-in follows the server's decision (`/login/start`):
 *   local / try-once   the browser's passkey dialog opens at once;
 *   cross-device       a screen explains the phone's QR code and Bluetooth
 *                      first; "Continue" opens the dialog, "Use another
 *                      method" goes to the alternative; the ceremony's timeout
 *                      is shown and enforced;
 *   fallback / qr-approval, or a failed ceremony
 *                      a panel with the next way to sign in
 *                      (`decision.retry.then`, then `decision.alternatives`).
 * After a sign-in with the phone, when the server says so (`appendOffer`), a
 * panel offers to create a passkey on this device ("Not now" tells the server,
 * which then waits before offering again).
 *
 * It only uses the public SDK (`/sdk/handoff.js`), so it doubles as a worked
 * example for integrators.
 *
 * Stable element ids (the e2e tests in e2e/tests rely on these):
 *   #status              aria-live status line (success, progress and errors)
 *   #signed-out          container of the sign-in and sign-up cards
 *   #signin-form         identifier-first sign-in form
 *   #identifier          identifier input, autocomplete="username webauthn" (autofill)
 *   #signin-continue     "Continue" (identifier-first sign-in)
 *   #signin-passkey      "Sign in with a passkey" (discoverable, passkey picker)
 *   #signup-form         sign-up form
 *   #signup-identifier   new account's email or username
 *   #signup-name         display name (optional)
 *   #signup-submit       "Create account with a passkey"
 *   #account             signed-in view
 *   #account-identifier  the signed-in identifier
 *   #passkey-list        <ul> of passkeys; each <li class="passkey" data-credential-id="…">
 *                        has a .passkey-name heading, .badges and a "Delete" button (.passkey-delete)
 *   #passkey-empty       shown when the account has no passkeys
 *   #add-passkey         "Add a passkey on this device"
 *   #signout             "Sign out"
 *   #delete-dialog       confirmation dialog; #delete-confirm / #delete-cancel
 *   #cross-device        "Sign in with your phone" explainer; #cross-device-continue,
 *                        #cross-device-other ("Use another method"), #cross-device-restart
 *                        ("Start again", after #cross-device-expired), #cross-device-timer,
 *                        #cross-device-reasons (in a "Why am I seeing this?" <details>)
 *   #alternative         the next way to sign in; #alternative-title, #alternative-what,
 *                        #alternative-options, #alternative-retry, #alternative-back,
 *                        #alternative-reasons
 *   #append-offer        "Create a passkey on this device?"; #append-create, #append-skip
 *
 * Autofill: when the browser supports conditional mediation, a usernameless
 * request is started whenever the sign-in form is shown; it is aborted (and
 * awaited) before any other ceremony starts, because a browser runs only one
 * WebAuthn request at a time.
 */
import { Handoff, HandoffError } from '/sdk/handoff.js';
import { showQrApproval } from '/assets/qr-desktop.js';
import { el, formatDate, providerName, renderPasskeys as renderPasskeyList } from '/assets/passkey-list.js';

const handoff = new Handoff();
const $ = (id) => document.getElementById(id);

const els = {
  deviceList: $('device-list'),
  qrApproval: $('qr-approval'),
  qrApprovalTitle: $('qr-approval-title'),
  qrApprovalMount: $('qr-approval-mount'),
  alternativeQr: $('alternative-qr'),
  loading: $('loading'),
  status: $('status'),
  unsupported: $('unsupported'),
  signedOut: $('signed-out'),
  signinTitle: $('signin-title'),
  signinForm: $('signin-form'),
  identifier: $('identifier'),
  signinContinue: $('signin-continue'),
  signinPasskey: $('signin-passkey'),
  signupForm: $('signup-form'),
  signupIdentifier: $('signup-identifier'),
  signupName: $('signup-name'),
  signupSubmit: $('signup-submit'),
  account: $('account'),
  accountTitle: $('account-title'),
  accountIdentifier: $('account-identifier'),
  accountName: $('account-name'),
  accountNameWrap: $('account-name-wrap'),
  accountSince: $('account-since'),
  passkeyList: $('passkey-list'),
  passkeyEmpty: $('passkey-empty'),
  addPasskey: $('add-passkey'),
  signout: $('signout'),
  signoutEverywhere: $('signout-everywhere'),
  crossDevice: $('cross-device'),
  crossDeviceTitle: $('cross-device-title'),
  crossDeviceFor: $('cross-device-for'),
  crossDeviceIdentifier: $('cross-device-identifier'),
  crossDeviceTimer: $('cross-device-timer'),
  crossDeviceExpired: $('cross-device-expired'),
  crossDeviceContinue: $('cross-device-continue'),
  crossDeviceRestart: $('cross-device-restart'),
  crossDeviceOther: $('cross-device-other'),
  crossDeviceReasons: $('cross-device-reasons'),
  alternative: $('alternative'),
  alternativeTitle: $('alternative-title'),
  alternativeWhat: $('alternative-what'),
  alternativeOptions: $('alternative-options'),
  alternativeRetry: $('alternative-retry'),
  alternativeBack: $('alternative-back'),
  alternativeReasons: $('alternative-reasons'),
  appendOffer: $('append-offer'),
  appendTitle: $('append-title'),
  appendWho: $('append-who'),
  appendWhoWrap: $('append-who-wrap'),
  appendCreate: $('append-create'),
  appendSkip: $('append-skip'),
  deleteDialog: $('delete-dialog'),
  deleteText: $('delete-text'),
  deleteLast: $('delete-last'),
};

/** @type {import('/sdk/handoff.js').Session | null} */
let session = null;
const webauthnSupported = typeof window.PublicKeyCredential !== 'undefined' && !!navigator.credentials;

// ---- status line -------------------------------------------------------------

function setStatus(message, kind = 'info') {
  // The live region stays in the page (empty collapses it), so screen readers announce each change.
  els.status.textContent = message;
  els.status.className = `status status-${kind}`;
}

function clearStatus() {
  setStatus('');
}

/** Plain-language text for an SDK error, by what the user was doing. */
function explain(error, action) {
  const code = error instanceof HandoffError ? error.code : error?.name;
  switch (code) {
    case 'NotAllowedError':
      if (action === 'signup' || action === 'add') {
        return 'No passkey was created. The request was cancelled or timed out — try again when you are ready.';
      }
      return 'No passkey was used. You may have cancelled, or this device has no passkey for this account. Try again, or create an account.';
    case 'InvalidStateError':
      return action === 'add'
        ? 'This device already has a passkey for your account, so there is nothing to add here.'
        : 'This device already has a passkey for that account. Use "Sign in" instead.';
    case 'SecurityError':
      return "This page's address does not match the server's passkey settings. The site operator should check HANDOFF_ORIGIN and HANDOFF_RP_ID.";
    case 'NotSupportedError':
    case 'unsupported':
      return 'This browser or device cannot use passkeys here. Try another browser or device.';
    case 'ConstraintError':
      return 'This device cannot create a passkey that meets the requirements (for example, a screen lock is needed).';
    case 'reauth-required':
      return 'For your safety, confirm it’s you with your passkey first, then try again.';
    case 'wrong-account':
      return error.message;
    case 'identifier-taken':
      return 'That email or username already has an account. Sign in instead, or choose another one.';
    case 'not-signed-in':
      return 'Your session has ended. Please sign in again.';
    case 'passkey-not-found':
      return 'That passkey was already removed.';
    case 'network-error':
      return 'Could not reach the server. Check your connection and try again.';
    case 'unknown-credential':
      return 'That passkey is not registered here any more (it may have been deleted). Choose another passkey, or create an account.';
    case 'credential-exists':
      return 'This passkey is already registered.';
    case 'user-not-verified':
      return "Your device didn't confirm it's you (fingerprint, face or screen lock). Please try again.";
    case 'ceremony-expired':
    case 'ceremony-not-found':
      return 'That took too long and the request expired. Please try again.';
    case 'no-passkey-offered':
      return error.message;
    default:
      return error?.message ? `Something went wrong: ${error.message}` : 'Something went wrong. Please try again.';
  }
}

function isAbort(error) {
  return (error instanceof HandoffError ? error.code : error?.name) === 'AbortError';
}

// ---- busy state --------------------------------------------------------------

/** Disable a button while an operation runs; returns a function that re-enables it. */
function busy(button, label) {
  const original = button.innerHTML;
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  if (label) button.textContent = label;
  return () => {
    button.disabled = false;
    button.removeAttribute('aria-busy');
    button.innerHTML = original;
  };
}

// ---- autofill (conditional mediation) ----------------------------------------

let autofill = null; // {controller, done: Promise<void>}
let autofillGeneration = 0; // bumped by stopAutofill, so a start still deciding gives up

async function startAutofill() {
  if (autofill || session || !webauthnSupported) return;
  const generation = ++autofillGeneration;
  if (!(await handoff.isConditionalMediationAvailable())) return;
  if (autofill || session || generation !== autofillGeneration) return;
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

// ---- views -------------------------------------------------------------------

/** Show one of the page's views and hide the others. */
function showView(view) {
  els.loading.hidden = true;
  for (const v of [els.signedOut, els.crossDevice, els.alternative, els.qrApproval, els.appendOffer, els.account]) {
    v.hidden = v !== view;
  }
  if (view !== els.qrApproval) qrApprovalHandle?.destroy();
}

function showSignedOut() {
  session = null;
  flow = null;
  stopTimer();
  showView(els.signedOut);
  startAutofill();
}

async function enterAccount(message) {
  try {
    session = await handoff.session();
  } catch (error) {
    setStatus(explain(error, 'signin'), 'error');
    return;
  }
  if (!session) {
    setStatus('Signing in did not stick: the server has no session for this browser. Are cookies blocked?', 'error');
    showSignedOut();
    return;
  }
  renderAccount();
  els.signinForm.reset();
  els.signupForm.reset();
  if (message) setStatus(message, 'ok');
  els.accountTitle.focus();
}

function renderAccount() {
  flow = null;
  stopTimer();
  showView(els.account);
  els.accountIdentifier.textContent = session.identifier;
  const name = session.displayName && session.displayName !== session.identifier ? session.displayName : '';
  els.accountName.textContent = name;
  els.accountNameWrap.hidden = !name;
  // API-DRAFT names it createdAt; accept accountCreatedAt too (see the e2e report).
  const created = session.createdAt ?? session.accountCreatedAt;
  els.accountSince.textContent = created ? `Account created ${formatDate(created)}` : '';
  renderPasskeys(session.passkeys ?? []);
  renderDevices();
}

/** Signed-in devices (sessions) of this account, each with a way to sign it out. */
async function renderDevices() {
  let devices;
  try {
    devices = await handoff.devices();
  } catch {
    els.deviceList.replaceChildren(el('li', 'empty', 'The list of signed-in devices could not be loaded.'));
    return;
  }
  els.deviceList.replaceChildren(
    ...devices.map((d) => {
      const item = el('li', 'passkey');
      const what = [d.device?.browser, d.device?.os].filter((v) => v && v !== 'unknown').join(' on ') || 'Unknown device';
      item.append(el('strong', '', d.current ? `${what} (this browser)` : what));
      item.append(el('p', 'hint', `Signed in ${formatDate(d.createdAt)}${d.ip ? ` from ${d.ip}` : ''}`));
      if (!d.current) {
        const end = el('button', 'button button-secondary', 'Sign out this device');
        end.type = 'button';
        end.setAttribute('aria-label', `Sign out ${what}, signed in ${formatDate(d.createdAt)}`);
        end.addEventListener('click', async () => {
          end.disabled = true;
          try {
            await handoff.withStepUp(() => handoff.endDevice(d.id), { onStepUp: askForPasskey });
            setStatus(`Signed out ${what}.`, 'ok');
          } catch (error) {
            setStatus(explain(error, 'account'), 'error');
          }
          renderDevices();
        });
        item.append(end);
      }
      return item;
    }),
  );
}

function renderPasskeys(passkeys) {
  renderPasskeyList(els.passkeyList, els.passkeyEmpty, passkeys, { onDelete: confirmDelete });
}

async function refreshPasskeys() {
  const passkeys = await handoff.passkeys();
  if (session) session.passkeys = passkeys;
  renderPasskeys(passkeys);
}

/** Said before the passkey dialog of a step-up opens (PRODUCT §8). */
function askForPasskey() {
  setStatus('For your safety, confirm it’s you with your passkey first.');
}

// ---- delete ------------------------------------------------------------------

function confirmDelete(passkey, count, trigger) {
  const provider = providerName(passkey.provider);
  const which = provider === 'Unknown passkey provider' ? 'this passkey' : `the passkey from ${provider}`;
  els.deleteText.textContent = `You won't be able to sign in with ${which} (created ${formatDate(passkey.createdAt)}) any more.`;
  els.deleteLast.hidden = count > 1;
  els.deleteDialog.returnValue = '';
  els.deleteDialog.showModal();
  els.deleteDialog.addEventListener(
    'close',
    async () => {
      if (els.deleteDialog.returnValue !== 'delete') {
        trigger.focus();
        return;
      }
      setStatus('Deleting the passkey…');
      try {
        await handoff.withStepUp(() => handoff.deletePasskey(passkey.credentialId), { onStepUp: askForPasskey });
        await refreshPasskeys();
        setStatus(`${which.charAt(0).toUpperCase()}${which.slice(1)} was deleted.`, 'ok');
      } catch (error) {
        setStatus(explain(error, 'delete'), 'error');
        if (error?.code === 'not-signed-in') return showSignedOut();
      }
      (els.passkeyList.querySelector('.passkey-delete') ?? els.addPasskey).focus();
    },
    { once: true },
  );
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
  const error = el('p', 'field-error', message);
  error.id = errorId;
  input.insertAdjacentElement('afterend', error);
  input.setAttribute('aria-invalid', 'true');
  input.setAttribute('aria-describedby', [...describedBy, errorId].join(' '));
  input.focus();
  clearStatus();
  return null;
}

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

// ---- identifier-first sign-in: follow the server's decision -------------------

/**
 * The sign-in in progress: the identifier, the journey and the server's attempt (its
 * decision and, when it has one, the ceremony). `attempt` is null when the next step needs
 * a fresh one (after a failed ceremony, which the server has used up).
 * @type {{identifier: string, journeyId?: string, attempt: import('/sdk/handoff.js').SignInAttempt | null, decision?: object} | null}
 */
let flow = null;
let timer = null; // setInterval id of the cross-device countdown

const VERDICT_NAMES = {
  local: 'a passkey on this device',
  'try-once': 'a passkey that may be on this device',
  'cross-device': 'your phone (QR code)',
  'qr-approval': 'Handoff QR approval with your phone',
  fallback: 'another sign-in method',
};

/** The server's reason fragments ("this browser can reach a phone…") as sentences. */
function sentence(text) {
  const t = String(text ?? '').trim();
  if (!t) return '';
  return `${t.charAt(0).toUpperCase()}${t.slice(1)}${/[.!?]$/.test(t) ? '' : '.'}`;
}

function fillReasons(list, decision) {
  list.replaceChildren();
  for (const reason of decision?.reasons ?? []) {
    const item = el('li', '', sentence(reason.message || reason.code));
    item.dataset.code = reason.code ?? '';
    list.append(item);
  }
  const verdict = decision?.verdict;
  if (verdict) {
    const pct = typeof decision.confidence === 'number' ? ` Confidence: ${Math.round(decision.confidence * 100)}%.` : '';
    list.append(el('li', '', `So the server suggested ${VERDICT_NAMES[verdict] ?? verdict}.${pct}`));
  }
  if (!list.children.length) list.append(el('li', '', 'The server gave no reason for this choice.'));
}

/** Ask the server how this identifier can sign in here, then take that path. */
async function startFlow(identifier, journeyId) {
  stopTimer();
  const attempt = await handoff.startSignIn({ identifier, journeyId });
  flow = { identifier, journeyId: attempt.journeyId ?? journeyId, attempt, decision: attempt.decision };
  const verdict = attempt.decision?.verdict;
  if (attempt.hasCeremony && verdict === 'cross-device') return showCrossDevice();
  if (attempt.hasCeremony) return runCeremony(attempt);
  return showAlternative(attempt.decision, { why: 'decided' });
}

/** Open the browser's passkey dialog for the attempt; on success sign in, on failure offer the next step. */
async function runCeremony(attempt, options = {}) {
  setStatus(
    attempt.decision?.verdict === 'cross-device' || options.hints?.includes('hybrid')
      ? "Scan the QR code your computer shows with your phone's camera, then confirm on the phone."
      : 'Follow the instructions from your browser to use your passkey.',
  );
  let result;
  try {
    result = await handoff.completeSignIn(attempt, options);
  } catch (error) {
    flow = flow && { ...flow, attempt: null };
    return afterFailure(error, attempt);
  }
  return signedIn(result);
}

/** The QR approval component while it is shown (destroyed when another view appears). */
let qrApprovalHandle = null;

/** Handoff QR approval: show a code here; a phone where the person is signed in approves. */
function showQrApprovalView() {
  qrApprovalHandle?.destroy();
  showView(els.qrApproval);
  qrApprovalHandle = showQrApproval(els.qrApprovalMount, {
    identifier: flow?.identifier,
    journeyId: flow?.journeyId,
    onSignedIn: (result) => {
      qrApprovalHandle = null;
      return enterAccount('Signed in with your phone.');
    },
    onCancel: () => showAlternative(flow?.decision, { why: 'chosen' }),
  });
  els.qrApprovalTitle.focus();
}

els.alternativeQr.addEventListener('click', () => showQrApprovalView());

async function signedIn(result) {
  if (result?.appendOffer) {
    try {
      session = await handoff.session();
    } catch {
      session = null;
    }
    if (session) return showAppendOffer(result);
  }
  return enterAccount(result?.flow === 'cross-device' ? 'Signed in with your phone.' : 'Signed in. Welcome back!');
}

/** A failed ceremony: the ones a person can recover from lead to the next method. */
function afterFailure(error, attempt) {
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
  if (next === 'cross-device' && flow) {
    flow.attempt = null; // "Continue" asks the server for a fresh ceremony
    return showCrossDevice({ after: error });
  }
  return showAlternative(decision, { why: 'failed', error, next });
}

// ---- the cross-device explainer -----------------------------------------------

function showCrossDevice({ after } = {}) {
  stopTimer();
  const attempt = flow.attempt;
  els.crossDeviceIdentifier.textContent = flow.identifier ?? '';
  els.crossDeviceFor.hidden = !flow.identifier;
  fillReasons(els.crossDeviceReasons, attempt?.decision ?? flow.decision);
  els.crossDeviceExpired.hidden = true;
  els.crossDeviceContinue.hidden = false;
  els.crossDeviceRestart.hidden = true;
  els.crossDeviceTimer.textContent = '';
  if (attempt?.expiresAt) startTimer(attempt.expiresAt);
  showView(els.crossDevice);
  setStatus(
    after
      ? 'No passkey on this device was used. You can sign in with the phone that has your passkey instead.'
      : 'Your passkey is on your phone. Read the steps, then select Continue.',
    after ? 'error' : 'info',
  );
  els.crossDeviceTitle.focus();
}

function formatLeft(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const minutes = Math.floor(total / 60);
  const seconds = String(total % 60).padStart(2, '0');
  return `${minutes}:${seconds}`;
}

function startTimer(expiresAt) {
  const tick = () => {
    const left = expiresAt - Date.now();
    if (left <= 0) return expireCrossDevice();
    els.crossDeviceTimer.textContent = `This request stays open for ${formatLeft(left)}.`;
  };
  tick();
  timer = setInterval(tick, 1000);
}

function stopTimer() {
  if (timer !== null) clearInterval(timer);
  timer = null;
}

/** The ceremony timed out before the person continued: say so, offer a new one. */
function expireCrossDevice() {
  stopTimer();
  if (flow) flow.attempt = null;
  els.crossDeviceTimer.textContent = '';
  els.crossDeviceExpired.hidden = false;
  const hadFocus = document.activeElement === els.crossDeviceContinue;
  els.crossDeviceContinue.hidden = true;
  els.crossDeviceRestart.hidden = false;
  setStatus('This sign-in request timed out. Select "Start again" to get a new one.', 'error');
  if (hadFocus) els.crossDeviceRestart.focus();
}

els.crossDeviceContinue.addEventListener('click', async () => {
  if (!flow) return showSignedOut();
  stopTimer();
  const done = busy(els.crossDeviceContinue, 'Waiting for your phone…');
  els.crossDeviceOther.disabled = true;
  try {
    let attempt = flow.attempt;
    let hints;
    if (!attempt?.hasCeremony) {
      // After a failed attempt on this device: a new ceremony, led by the phone's QR code.
      attempt = await handoff.startSignIn({ identifier: flow.identifier, journeyId: flow.journeyId, prefer: 'cross-device' });
      flow.attempt = attempt;
      flow.decision = attempt.decision;
      if (!attempt.hasCeremony) return showAlternative(attempt.decision, { why: 'decided' });
      if (attempt.decision?.verdict !== 'cross-device') hints = ['hybrid'];
    }
    await runCeremony(attempt, hints ? { hints } : {});
  } catch (error) {
    afterFailure(error, flow?.attempt);
  } finally {
    done();
    els.crossDeviceOther.disabled = false;
  }
});

els.crossDeviceRestart.addEventListener('click', async () => {
  if (!flow) return showSignedOut();
  const done = busy(els.crossDeviceRestart, 'Starting again…');
  try {
    await startFlow(flow.identifier, flow.journeyId);
  } catch (error) {
    afterFailure(error, null);
  } finally {
    done();
  }
});

els.crossDeviceOther.addEventListener('click', () => {
  stopTimer();
  const decision = flow?.attempt?.decision ?? flow?.decision;
  const next = (decision?.alternatives ?? []).map((a) => a.verdict).find((v) => v && v !== 'cross-device') ?? 'fallback';
  // The one step the SDK cannot see: the person turned down the phone on this page.
  handoff.track('fallback.chosen', { journeyId: flow?.journeyId, flow: next, attrs: { method: next } });
  showAlternative(decision, { why: 'chosen', next });
});

// ---- the next way to sign in -----------------------------------------------------

function showAlternative(decision, { why, error, next } = {}) {
  stopTimer();
  const verdict = next ?? decision?.verdict ?? 'fallback';
  const failedVerdict = why === 'failed' ? decision?.verdict : null;
  const fromPhone = failedVerdict === 'cross-device';
  const recentFailures = (decision?.reasons ?? []).some((r) => r.code === 'recent-failures');

  let title;
  let what;
  if (why === 'chosen') {
    title = 'Other ways to sign in';
    what = 'You chose not to use your phone this time.';
  } else if (why === 'failed') {
    title = "Passkey sign-in didn't work here";
    if (error?.timedOut) what = 'The request timed out before a passkey was used.';
    else if (fromPhone) what = "Your phone didn't complete the sign-in: it was cancelled, timed out, or the phone couldn't confirm it's you.";
    else what = "No passkey was used: it was cancelled, timed out, or this device doesn't have your passkey.";
  } else if (recentFailures) {
    title = "Passkey sign-in didn't work here";
    what = 'Signing in with a passkey failed more than once in this browser, so it is paused here for a while.';
  } else {
    title = "Passkey sign-in isn't available here";
    what = sentence(decision?.reasons?.[0]?.message) || "Your passkey can't be used from this device.";
  }
  els.alternativeTitle.textContent = title;
  els.alternativeWhat.textContent = what;

  const options = [];
  if (verdict === 'qr-approval') {
    options.push(
      'Sign in with your phone (QR): on a phone where you are already signed in, scan the code shown here and approve this sign-in.',
    );
  }
  options.push('Sign in on the device that has your passkey — for example your phone, or the computer where you created it.');
  const codes = (decision?.reasons ?? []).map((r) => r.code);
  if (recentFailures && why !== 'failed') {
    options.push('Try again later: after repeated failures, passkeys are paused in this browser for a while.');
  } else if (fromPhone || why === 'chosen') {
    options.push('Try again with your phone: make sure Bluetooth is on on both devices and both have internet.');
  } else if (codes.includes('no-hybrid-transport')) {
    options.push('If this computer has Bluetooth, turn it on, then try again to use your phone.');
  } else if (why === 'failed') {
    options.push('Try again, and confirm with your fingerprint, face or screen lock when your device asks.');
  }
  options.push('This demo site has no other sign-in method, such as a password or an email link.');
  els.alternativeOptions.replaceChildren(...options.map((text) => el('li', '', text)));
  fillReasons(els.alternativeReasons, decision);

  showView(els.alternative);
  setStatus(why === 'chosen' ? 'Here are other ways to sign in.' : `${title}.`, why === 'chosen' ? 'info' : 'error');
  els.alternativeTitle.focus();
}

els.alternativeRetry.addEventListener('click', async () => {
  if (!flow) return showSignedOut();
  const done = busy(els.alternativeRetry, 'Checking…');
  setStatus('Checking how you can sign in…');
  try {
    await startFlow(flow.identifier, flow.journeyId);
  } catch (error) {
    afterFailure(error, null);
  } finally {
    done();
  }
});

els.alternativeBack.addEventListener('click', () => {
  showSignedOut();
  clearStatus();
  els.signinTitle.focus();
});

// ---- passkey append ---------------------------------------------------------------

function showAppendOffer() {
  els.appendWho.textContent = session?.identifier ?? '';
  els.appendWhoWrap.hidden = !session?.identifier;
  showView(els.appendOffer);
  setStatus('Signed in with your phone.', 'ok');
  els.appendTitle.focus();
}

els.appendCreate.addEventListener('click', async () => {
  const done = busy(els.appendCreate, 'Creating your passkey…');
  els.appendSkip.disabled = true;
  setStatus('Follow the instructions from your browser to create a passkey on this device.');
  try {
    const result = await handoff.withStepUp(
      () => handoff.appendPasskey({ identifier: session?.identifier, displayName: session?.displayName || undefined }),
      { onStepUp: askForPasskey },
    );
    const provider = result?.provider?.name;
    await enterAccount(
      provider && provider.toLowerCase() !== 'unknown'
        ? `Passkey created on this device. It is saved in ${provider}. Next time, sign in here without your phone.`
        : 'Passkey created on this device. Next time, sign in here without your phone.',
    );
  } catch (error) {
    if (error?.code === 'not-signed-in') {
      showSignedOut();
      setStatus(explain(error, 'add'), 'error');
      return;
    }
    setStatus(explain(error, 'add'), 'error');
    els.appendTitle.focus();
  } finally {
    done();
    els.appendSkip.disabled = false;
  }
});

els.appendSkip.addEventListener('click', async () => {
  const done = busy(els.appendSkip, 'One moment…');
  try {
    await handoff.skipAppend();
  } catch {
    // Not remembering the "Not now" only means the offer may come back sooner; the person is signed in.
  } finally {
    done();
  }
  await enterAccount('Signed in with your phone. You can add a passkey for this device later from your account.');
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

els.addPasskey.addEventListener('click', async () => {
  if (!session) return;
  const done = busy(els.addPasskey, 'Creating your passkey…');
  setStatus('Follow the instructions from your browser to create a passkey.');
  try {
    const result = await handoff.withStepUp(
      () => handoff.signUp({ identifier: session.identifier, displayName: session.displayName || undefined }),
      { onStepUp: askForPasskey },
    );
    await refreshPasskeys();
    const provider = result?.provider?.name;
    setStatus(
      provider && provider.toLowerCase() !== 'unknown' ? `Passkey added. It is saved in ${provider}.` : 'Passkey added.',
      'ok',
    );
  } catch (error) {
    setStatus(explain(error, 'add'), 'error');
    if (error?.code === 'not-signed-in') showSignedOut();
  } finally {
    done();
  }
});

els.signoutEverywhere.addEventListener('click', async () => {
  const done = busy(els.signoutEverywhere, 'Signing out everywhere…');
  try {
    const ended = await handoff.withStepUp(() => handoff.signOutEverywhere(), { onStepUp: askForPasskey });
    showSignedOut();
    setStatus(`Signed out everywhere (${ended} ${ended === 1 ? 'session' : 'sessions'} ended).`, 'ok');
    els.signinTitle.focus();
  } catch (error) {
    setStatus(explain(error, 'signout'), 'error');
  } finally {
    done();
  }
});

els.signout.addEventListener('click', async () => {
  const done = busy(els.signout, 'Signing out…');
  try {
    await handoff.signOut();
    showSignedOut();
    setStatus('You are signed out.', 'ok');
    // Focus the heading, not the input: focusing the input would pop the passkey autofill list at once.
    els.signinTitle.focus();
  } catch (error) {
    setStatus(explain(error, 'signout'), 'error');
  } finally {
    done();
  }
});

// ---- start -------------------------------------------------------------------

async function init() {
  if (!webauthnSupported) {
    els.unsupported.hidden = false;
  }
  try {
    session = await handoff.session();
  } catch (error) {
    setStatus(explain(error, 'load'), 'error');
    session = null;
  }
  if (session) renderAccount();
  else showSignedOut();
}

clearStatus();
init();
