/**
 * The demo page's screens between the sign-in form and the account when the passkey is not
 * simply on this device: the "Sign in with your phone" explainer (with the ceremony's
 * countdown), the alternative ("the next way to sign in", after a decision, a failure or
 * "Use another method") and the Handoff QR approval panel it can lead to.
 *
 * @module cross-device
 */
import { showQrApproval } from '/assets/qr-desktop.js';
import { fallbacksOf } from '/assets/recovery.js';
import { busy, el, mmss } from '/assets/dom.js';
import { clearStatus, els, handoff, setStatus, showView, state } from '/assets/app.js';
import { enterAccount } from '/assets/account.js';
import { afterFailure, runCeremony, showSignedOut, startFlow } from '/assets/signin.js';

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
    const item = el('li', { text: sentence(reason.message || reason.code) });
    item.dataset.code = reason.code ?? '';
    list.append(item);
  }
  const verdict = decision?.verdict;
  if (verdict) {
    const pct = typeof decision.confidence === 'number' ? ` Confidence: ${Math.round(decision.confidence * 100)}%.` : '';
    list.append(el('li', { text: `So the server suggested ${VERDICT_NAMES[verdict] ?? verdict}.${pct}` }));
  }
  if (!list.children.length) list.append(el('li', { text: 'The server gave no reason for this choice.' }));
}

// ---- the cross-device explainer -----------------------------------------------

export function showCrossDevice({ after } = {}) {
  stopTimer();
  const attempt = state.flow.attempt;
  els.crossDeviceIdentifier.textContent = state.flow.identifier ?? '';
  els.crossDeviceFor.hidden = !state.flow.identifier;
  fillReasons(els.crossDeviceReasons, attempt?.decision ?? state.flow.decision);
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

function startTimer(expiresAt) {
  const tick = () => {
    const left = expiresAt - Date.now();
    if (left <= 0) return expireCrossDevice();
    els.crossDeviceTimer.textContent = `This request stays open for ${mmss(left)}.`;
  };
  tick();
  timer = setInterval(tick, 1000);
}

export function stopTimer() {
  if (timer !== null) clearInterval(timer);
  timer = null;
}

/** The ceremony timed out before the person continued: say so, offer a new one. */
export function expireCrossDevice() {
  stopTimer();
  if (state.flow) state.flow.attempt = null;
  els.crossDeviceTimer.textContent = '';
  els.crossDeviceExpired.hidden = false;
  const hadFocus = document.activeElement === els.crossDeviceContinue;
  els.crossDeviceContinue.hidden = true;
  els.crossDeviceRestart.hidden = false;
  setStatus('This sign-in request timed out. Select "Start again" to get a new one.', 'error');
  if (hadFocus) els.crossDeviceRestart.focus();
}

// ---- the next way to sign in -----------------------------------------------------

export function showAlternative(decision, { why, error, next } = {}) {
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
  } else if (why === 'unsupported') {
    title = "This browser can't use passkeys";
    what = 'Sign in with your phone instead, or with a code.';
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
  const fallbacks = fallbacksOf(decision);
  if (fallbacks.includes('email-code')) options.push('Email me a code: a 6-digit code sent to your email address signs you in once.');
  if (fallbacks.includes('recovery-code')) options.push('Use a recovery code, if you saved some when you had your passkey.');
  if (fallbacks.length === 0) options.push('This site offers no other sign-in method, such as an email code.');
  els.alternativeEmail.hidden = !fallbacks.includes('email-code');
  // Trying a passkey again is no way in for a browser without passkeys.
  els.alternativeRetry.hidden = why === 'unsupported';
  els.alternativeRecovery.hidden = !fallbacks.includes('recovery-code');
  els.alternativeOptions.replaceChildren(...options.map((text) => el('li', { text })));
  fillReasons(els.alternativeReasons, decision);

  showView(els.alternative);
  setStatus(why === 'chosen' ? 'Here are other ways to sign in.' : `${title}.`, why === 'chosen' ? 'info' : 'error');
  els.alternativeTitle.focus();
}

// ---- Handoff QR approval ------------------------------------------------------------

/** The QR approval component while it is shown (destroyed when another view appears). */
let qrApprovalHandle = null;

/** Handoff QR approval: show a code here; a phone where the person is signed in approves. */
function showQrApprovalView() {
  qrApprovalHandle?.destroy();
  showView(els.qrApproval);
  qrApprovalHandle = showQrApproval(els.qrApprovalMount, {
    identifier: state.flow?.identifier,
    journeyId: state.flow?.journeyId,
    onSignedIn: (result) => {
      qrApprovalHandle = null;
      return enterAccount('Signed in with your phone.');
    },
    onCancel: () => showAlternative(state.flow?.decision, { why: 'chosen' }),
  });
  els.qrApprovalTitle.focus();
}

/** Stop the QR approval component, if one is shown (when another view appears). */
export function destroyQrApproval() {
  qrApprovalHandle?.destroy();
}

/** Wire the explainer's, the alternative's and the QR panel's buttons (called once by app.js). */
export function setupCrossDevice() {
  els.crossDeviceContinue.addEventListener('click', async () => {
    if (!state.flow) return showSignedOut();
    stopTimer();
    const done = busy(els.crossDeviceContinue, 'Waiting for your phone…');
    els.crossDeviceOther.disabled = true;
    try {
      let attempt = state.flow.attempt;
      let hints;
      if (!attempt?.hasCeremony) {
        // After a failed attempt on this device: a new ceremony, led by the phone's QR code.
        attempt = await handoff.startSignIn({ identifier: state.flow.identifier, journeyId: state.flow.journeyId, prefer: 'cross-device' });
        state.flow.attempt = attempt;
        state.flow.decision = attempt.decision;
        if (!attempt.hasCeremony) return showAlternative(attempt.decision, { why: 'decided' });
        if (attempt.decision?.verdict !== 'cross-device') hints = ['hybrid'];
      }
      await runCeremony(attempt, hints ? { hints } : {});
    } catch (error) {
      afterFailure(error, state.flow?.attempt);
    } finally {
      done();
      els.crossDeviceOther.disabled = false;
    }
  });

  els.crossDeviceRestart.addEventListener('click', async () => {
    if (!state.flow) return showSignedOut();
    const done = busy(els.crossDeviceRestart, 'Starting again…');
    try {
      await startFlow(state.flow.identifier, state.flow.journeyId);
    } catch (error) {
      afterFailure(error, null);
    } finally {
      done();
    }
  });

  els.crossDeviceOther.addEventListener('click', () => {
    stopTimer();
    const decision = state.flow?.attempt?.decision ?? state.flow?.decision;
    const next = (decision?.alternatives ?? []).map((a) => a.verdict).find((v) => v && v !== 'cross-device') ?? 'fallback';
    // The one step the SDK cannot see: the person turned down the phone on this page.
    handoff.track('fallback.chosen', { journeyId: state.flow?.journeyId, flow: next, attrs: { method: next } });
    showAlternative(decision, { why: 'chosen', next });
  });

  els.alternativeRetry.addEventListener('click', async () => {
    if (!state.flow) return showSignedOut();
    const done = busy(els.alternativeRetry, 'Checking…');
    setStatus('Checking how you can sign in…');
    try {
      await startFlow(state.flow.identifier, state.flow.journeyId);
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

  els.alternativeQr.addEventListener('click', () => showQrApprovalView());
}
