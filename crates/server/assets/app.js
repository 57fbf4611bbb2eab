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
 * The page's code is split by screen; this module is the entry that wires them and holds
 * what they share (the SDK client, the page's elements, the session and the sign-in in
 * progress, the status line, error texts and `showView`):
 *   signin.js        sign-in and sign-up forms, autofill, the server's decision, ceremonies
 *   cross-device.js  the "Sign in with your phone" explainer and its timer, the alternative
 *                    (next way to sign in) and the Handoff QR approval panel
 *   append.js        the "Create a passkey on this device?" offer
 *   account.js       the account: passkeys, signed-in devices, step-up, sign out (everywhere)
 *   recovery.js      the fallbacks (email code, recovery code), the recovery session's banner
 *                    and recovery codes on the account
 *   dom.js           DOM helpers shared with the other pages
 *
 * Autofill: when the browser supports conditional mediation, a usernameless
 * request is started whenever the sign-in form is shown; it is aborted (and
 * awaited) before any other ceremony starts, because a browser runs only one
 * WebAuthn request at a time.
 */
import { Handoff, HandoffError } from '/sdk/handoff.js';
import { $, announce, showOnly } from '/assets/dom.js';
import { setupAccount, renderAccount } from '/assets/account.js';
import { setupAppend } from '/assets/append.js';
import { setupCrossDevice, destroyQrApproval } from '/assets/cross-device.js';
import { setupSignIn, showSignedOut } from '/assets/signin.js';
import { setupRecovery } from '/assets/recovery.js';

export const handoff = new Handoff();

export const els = {
  deviceList: $('device-list'),
  qrApproval: $('qr-approval'),
  qrApprovalTitle: $('qr-approval-title'),
  qrApprovalMount: $('qr-approval-mount'),
  alternativeQr: $('alternative-qr'),
  loading: $('loading'),
  status: $('status'),
  unsupported: $('unsupported'),
  signedOut: $('signed-out'),
  oidcBanner: $('oidc-banner'),
  oidcClient: $('oidc-client'),
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
  alternativeEmail: $('alternative-email'),
  alternativeRecovery: $('alternative-recovery'),
  emailCode: $('email-code'),
  emailCodeTitle: $('email-code-title'),
  emailCodeTo: $('email-code-to'),
  emailCodeDelivery: $('email-code-delivery'),
  emailCodeForm: $('email-code-form'),
  emailCodeInput: $('email-code-input'),
  emailCodeError: $('email-code-error'),
  emailCodeSubmit: $('email-code-submit'),
  emailCodeResend: $('email-code-resend'),
  emailCodeBack: $('email-code-back'),
  recoveryCode: $('recovery-code'),
  recoveryCodeTitle: $('recovery-code-title'),
  recoveryCodeFor: $('recovery-code-for'),
  recoveryCodeForm: $('recovery-code-form'),
  recoveryCodeInput: $('recovery-code-input'),
  recoveryCodeError: $('recovery-code-error'),
  recoveryCodeSubmit: $('recovery-code-submit'),
  recoveryCodeBack: $('recovery-code-back'),
  recoveryBanner: $('recovery-banner'),
  recoveryBannerHow: $('recovery-banner-how'),
  recoveryCreate: $('recovery-create'),
  codesLeft: $('codes-left'),
  codesCreate: $('codes-create'),
  codesShown: $('codes-shown'),
  codesList: $('codes-list'),
  codesCopy: $('codes-copy'),
  codesDownload: $('codes-download'),
};

/**
 * What the screens share: the signed-in session, and the sign-in in progress (the
 * identifier, the journey and the server's attempt: its decision and, when it has one, the
 * ceremony). `flow.attempt` is null when the next step needs a fresh one (after a failed
 * ceremony, which the server has used up).
 * @type {{
 *   session: import('/sdk/handoff.js').Session | null,
 *   flow: {identifier: string, journeyId?: string, attempt: import('/sdk/handoff.js').SignInAttempt | null, decision?: object} | null,
 * }}
 */
export const state = { session: null, flow: null };

/**
 * An application's sign-in (OpenID Connect) that sent the browser here: `/?request=…`
 * names the waiting authorization request; once anyone is signed in, the page hands the
 * browser back to `/oauth2/authorize/continue`, which asks for consent or returns to the
 * application. `client` is the application's name for the banner (text only).
 */
const query = new URLSearchParams(location.search);
export const authorization = query.get('request')
  ? { request: query.get('request'), client: query.get('client') ?? 'an application', loginHint: query.get('login_hint') ?? '' }
  : null;

/** Where the browser goes once signed in during an application's sign-in, else null. */
export function continueUrl() {
  if (!authorization) return null;
  // The journey of this sign-in, so that it records which application it signed in to.
  const journey = state.flow?.journeyId ? `&journey=${encodeURIComponent(state.flow.journeyId)}` : '';
  return `/oauth2/authorize/continue?request=${encodeURIComponent(authorization.request)}${journey}`;
}
export const webauthnSupported = typeof window.PublicKeyCredential !== 'undefined' && !!navigator.credentials;

// ---- status line -------------------------------------------------------------

export function setStatus(message, kind = 'info') {
  // The live region stays in the page (empty collapses it), so screen readers announce each change.
  announce(els.status, message, kind);
}

export function clearStatus() {
  setStatus('');
}

/** Plain-language text for an SDK error, by what the user was doing. */
export function explain(error, action) {
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

export function isAbort(error) {
  return (error instanceof HandoffError ? error.code : error?.name) === 'AbortError';
}

// ---- views -------------------------------------------------------------------

/** Show one of the page's views and hide the others. */
export function showView(view) {
  els.loading.hidden = true;
  showOnly(
    [els.signedOut, els.crossDevice, els.alternative, els.qrApproval, els.emailCode, els.recoveryCode, els.appendOffer, els.account],
    view,
  );
  if (view !== els.qrApproval) destroyQrApproval();
}

// ---- start -------------------------------------------------------------------

async function init() {
  if (!webauthnSupported) {
    els.unsupported.hidden = false;
  }
  try {
    state.session = await handoff.session();
  } catch (error) {
    setStatus(explain(error, 'load'), 'error');
    state.session = null;
  }
  if (authorization) {
    // The server sends a browser here only when a sign-in is needed (none yet, or the
    // application asked for a fresh one), so the form shows even with a session.
    els.oidcClient.textContent = authorization.client;
    els.oidcBanner.hidden = false;
    if (authorization.loginHint) els.identifier.value = authorization.loginHint;
    showSignedOut();
    return;
  }
  if (state.session) renderAccount();
  else showSignedOut();
}

// The screen modules import this one and each other (a cycle the browser resolves), so their
// top level only defines; the listeners are added here, once `els` and `state` exist.
setupSignIn();
setupCrossDevice();
setupAppend();
setupAccount();
setupRecovery();
clearStatus();
init();
