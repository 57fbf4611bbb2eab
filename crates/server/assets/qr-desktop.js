/**
 * Handoff QR approval, desktop side: {@link showQrApproval} mounts the QR, the two-digit
 * number, a countdown and a live status into a container, and signs the browser in once the
 * phone approves — the person does nothing more on the computer.
 *
 * Why it is built this way:
 * - Every request goes through the SDK's QR calls (`createQr`, `rotateQr`, `watchQr`,
 *   `redeemQr`, `cancelQr`), so errors are the SDK's `HandoffError` with the server's code.
 * - The server draws the QR (an SVG with its quiet zone) and sets the redemption secret as
 *   an `HttpOnly; SameSite=Strict` cookie scoped to the attempt, so every request uses
 *   `credentials: 'same-origin'` and this script never sees the secret.
 * - Changes arrive by server-sent events (`/events`). If the stream errors (a proxy that
 *   buffers or cuts it), the SDK's `watchQr` switches on its own to long-polling
 *   (`GET /qr/{id}?wait=25`) and keeps going; both paths feed the same `onState`.
 * - The displayed code is rotated shortly before `codeExpiresAt` while nobody has scanned
 *   it, so a photo of an old screen stops working. Times are corrected for the difference
 *   between this computer's clock and the server's (from `expiresIn`).
 * - Every moment the product tracks (§4.2: `qr.shown`, `desktop.callback_received`,
 *   `fallback.chosen`) goes through one named hook, {@link track}, into the SDK's event
 *   queue: batched, retried, flushed by beacon when the page is hidden, and never in the
 *   way of the sign-in.
 *
 * The same file also runs the small stand-alone page at `/qr-login` (see the bottom): it
 * does so only when that page's form is present, so importing the module elsewhere has no
 * side effects.
 *
 * @module qr-desktop
 */

import { Handoff } from '/sdk/handoff.js';
import { announce, el, mmss } from '/assets/dom.js';

/** Rotate this long before the code stops working (or at 80 % of a very short code life). */
const ROTATE_EARLY_MS = 10_000;
/** Long-poll length (the server caps it at 30 s). */
const POLL_WAIT_S = 25;
/** Final states: nothing changes after these. */
const FINAL = new Set(['redeemed', 'denied', 'expired', 'cancelled', 'rejected']);

/** Talks to the server, and sends this flow's product events (PRODUCT.md §4.2) through the SDK's shared event queue. */
const handoff = new Handoff();
/** This page's wording when the server cannot be reached (the SDK's own is about signing in). */
const OFFLINE = 'Could not reach the server. Check your connection.';
const messageOf = (error) => (error?.code === 'network-error' ? OFFLINE : error?.message);

/**
 * Product events of this flow, stored with the attempt's journey:
 *
 * - `fallback.chosen` — `{method: 'qr-approval'}`: the QR continues a journey that began
 *   with another method (the component was given a `journeyId`)
 * - `qr.shown` — a code is on screen: `{sizePx, rotation}`
 * - `desktop.callback_received` — the desktop learned of the approval: `{via: 'sse'|'poll'}`
 *
 * @param {string} name canonical event name (PRODUCT.md §4.2)
 * @param {string|null} journeyId the attempt's journey (nothing is sent without one)
 * @param {Record<string, unknown>} [attrs]
 */
function track(name, journeyId, attrs = {}) {
  if (journeyId) handoff.track(name, { journeyId, device: 'desktop', flow: 'qr-approval', attrs });
}

let instances = 0;

/**
 * Show a Handoff QR approval in `container` and sign this browser in when a phone approves.
 *
 * @param {HTMLElement} container emptied and filled with the component
 * @param {object} [options]
 * @param {string} [options.identifier] what the person typed (the phone warns on a mismatch)
 * @param {string} [options.journeyId] the journey this attempt continues
 * @param {(result: {userId: string, identifier: string, journeyId: string, flow: string}) => void} [options.onSignedIn]
 *   called once, after the redemption set the session cookie
 * @param {(info: {reason: string}) => void} [options.onCancel] the person chose another method;
 *   without it, the "Use another method" button is not shown
 * @returns {{cancel: () => Promise<void>, destroy: () => void}} `cancel` ends the attempt on the
 *   server too; `destroy` only stops this component (timers, stream, polling)
 */
export function showQrApproval(container, { identifier, journeyId, onSignedIn, onCancel } = {}) {
  const n = ++instances;
  const ids = { title: `qr-title-${n}`, match: `qr-match-${n}`, live: `qr-live-${n}` };

  // ---- DOM ----
  const title = el('h2', { id: ids.title, tabindex: '-1', text: 'Scan this code with your phone' });
  const intro = el('p', { class: 'lead', text: 'Scan this code with the camera of a phone where you are already signed in, then confirm on the phone.' });
  const live = el('p', { id: ids.live, class: 'status', role: 'status', 'aria-live': 'polite', 'aria-atomic': 'true' });
  const qrBox = el('figure', { class: 'qr-code', role: 'img', 'aria-label': 'QR code to sign in with your phone', 'data-testid': 'qr-code' });
  const matchCode = el('p', { class: 'qr-match-code', id: ids.match, 'data-testid': 'qr-match-code' });
  const match = el(
    'div',
    { class: 'qr-match' },
    el('p', { class: 'qr-match-label', text: 'Pick this number on your phone' }),
    matchCode,
    el('p', { class: 'hint', text: 'Your phone shows three numbers. Choose the one you see here.' }),
  );
  const body = el('div', { class: 'qr-body' }, qrBox, match);
  const countdown = el('p', { class: 'qr-countdown' });
  const link = el('code', { class: 'qr-link' });
  const trouble = el(
    'details',
    { class: 'qr-trouble' },
    el('summary', { text: 'Trouble scanning?' }),
    el(
      'ol',
      {},
      el('li', { text: 'Make the code bigger (zoom in) or move the phone a little further away.' }),
      el('li', {}, 'Or type this link into the browser on your phone: ', link),
      el('li', { text: 'Then pick the number shown here.' }),
    ),
  );
  const cancelButton = el('button', { class: 'button button-secondary', type: 'button', text: onCancel ? 'Use another method' : 'Cancel' });
  const waiting = el('div', { class: 'qr-waiting' }, body, countdown, trouble, el('div', { class: 'actions' }, cancelButton));

  const endTitle = el('h3', { tabindex: '-1' });
  const endText = el('p');
  const newCodeButton = el('button', { class: 'button button-primary', type: 'button', text: 'Show a new code' });
  const otherButton = el('button', { class: 'button button-secondary', type: 'button', text: 'Use another method' });
  const end = el('div', { class: 'qr-end' }, endTitle, endText, el('div', { class: 'actions' }, newCodeButton, onCancel ? otherButton : null));
  end.hidden = true;

  const doneText = el('p', { class: 'qr-signed-in' });
  const done = el('div', { class: 'qr-done' }, doneText);
  done.hidden = true;

  const root = el('section', { class: 'qr-approval', 'aria-labelledby': ids.title }, title, intro, live, waiting, end, done);
  container.replaceChildren(root);

  // ---- state ----
  let attempt = null; // {qrId, journeyId, expiresAt(ms, local), codeExpiresAt(ms, local)}
  let state = null;
  let rotations = 0;
  let skewMs = 0; // local clock minus server clock
  let watcher = null; // the SDK's watchQr: SSE, then long-poll
  let rotateTimer = 0;
  let tickTimer = 0;
  let redeeming = false;
  let stopped = false; // this attempt is over (or the component destroyed)
  let destroyed = false;
  let currentJourney = journeyId;
  let fallbackTracked = !journeyId; // a QR started for a journey already under way is a method chosen instead

  function localTime(rfc3339) {
    return Date.parse(rfc3339) + skewMs;
  }

  function stopAttempt() {
    stopped = true;
    watcher?.close();
    watcher = null;
    clearTimeout(rotateTimer);
    clearInterval(tickTimer);
  }

  function renderCode(code) {
    // expiresIn is measured on the server when it answered; the difference to our clock is skew.
    skewMs = Date.now() - (Date.parse(code.expiresAt) - code.expiresIn * 1000);
    if (!Number.isFinite(skewMs) || Math.abs(skewMs) < 1500) skewMs = 0;
    attempt = {
      qrId: code.qrId,
      journeyId: code.journeyId,
      expiresAt: localTime(code.expiresAt),
      codeExpiresAt: localTime(code.codeExpiresAt),
    };
    currentJourney = code.journeyId;
    if (!fallbackTracked) {
      fallbackTracked = true;
      track('fallback.chosen', currentJourney, { method: 'qr-approval' });
    }
    const svg = new DOMParser().parseFromString(code.svg, 'image/svg+xml').documentElement;
    if (svg?.nodeName?.toLowerCase() === 'svg') {
      svg.setAttribute('aria-hidden', 'true');
      svg.setAttribute('focusable', 'false');
      qrBox.replaceChildren(document.importNode(svg, true));
    }
    qrBox.dataset.url = code.url;
    matchCode.textContent = code.matchCode;
    matchCode.setAttribute('aria-label', `Number: ${code.matchCode.split('').join(' ')}`);
    link.textContent = code.url;
    track('qr.shown', currentJourney, { sizePx: Math.round(qrBox.getBoundingClientRect().width), rotation: rotations });
    scheduleRotation();
  }

  function scheduleRotation() {
    clearTimeout(rotateTimer);
    if (!attempt || stopped) return;
    const life = attempt.codeExpiresAt - Date.now();
    if (attempt.codeExpiresAt >= attempt.expiresAt - 1000) return; // the code lives as long as the attempt
    const delay = Math.max(1000, Math.min(life - ROTATE_EARLY_MS, life * 0.8));
    rotateTimer = setTimeout(rotate, delay);
  }

  async function rotate() {
    if (stopped || state !== 'created' || !attempt) return;
    try {
      const code = await handoff.rotateQr(attempt.qrId);
      if (stopped || state !== 'created') return;
      rotations += 1;
      renderCode(code);
    } catch (error) {
      if (stopped) return;
      if (error.status === 409) return; // scanned meanwhile: the state change is on its way
      if (error.status === 410) return onState({ state: 'expired' }, 'rotate');
      // Transient: try again soon, while the current code still works.
      rotateTimer = setTimeout(rotate, 3000);
    }
  }

  function tick() {
    if (!attempt || stopped) return;
    const left = attempt.expiresAt - Date.now();
    countdown.textContent =
      state === 'scanned' ? `Waiting for the phone. Time left: ${mmss(left)}` : `This sign-in code works for ${mmss(left)} more. It refreshes by itself.`;
    countdown.classList.toggle('qr-countdown-low', left < 30_000);
    // The server reports `expired` within seconds; this is the backstop if nothing reaches us.
    if (left < -8000) onState({ state: 'expired' }, 'timer');
  }

  // ---- learning about changes: SSE, then long-poll ----
  function listen() {
    if (stopped || !attempt) return;
    watcher = handoff.watchQr(attempt.qrId, {
      wait: POLL_WAIT_S,
      onState,
      onTrouble: () => announce(live, 'Having trouble reaching the server. Still trying…', 'error'),
      onLost: () =>
        showEnd('This code can no longer be used', 'This browser lost track of the sign-in (its cookie is missing or the code was removed). Show a new code to try again.'),
    });
  }

  function onState(status, via) {
    if (stopped || !status?.state) return;
    if (status.state === state) return;
    state = status.state;
    if (status.codeExpiresAt && attempt) attempt.codeExpiresAt = localTime(status.codeExpiresAt);
    root.dataset.state = state;
    switch (state) {
      case 'created':
        qrBox.classList.remove('qr-faded');
        announce(live, 'Waiting for your phone to scan the code.');
        break;
      case 'scanned':
        clearTimeout(rotateTimer);
        qrBox.classList.add('qr-faded');
        trouble.hidden = true;
        announce(live, 'Scanned on a phone — confirm there. Pick the number shown here.');
        tick();
        break;
      case 'approved':
        track('desktop.callback_received', currentJourney, { via });
        redeem();
        break;
      case 'redeemed':
        // Our own redemption finishing (handled in redeem()); nothing else can redeem it.
        break;
      case 'denied':
        showEnd('The sign-in was declined on the phone', 'Nobody was signed in. If that was a mistake, show a new code and scan it again, or use another method.');
        break;
      case 'rejected':
        showEnd(
          'The number did not match',
          status.reason === 'wrong-number' || !status.reason
            ? 'The phone picked a different number from the one shown here, so the sign-in was stopped to keep the account safe. Show a new code to try again.'
            : 'The sign-in was stopped for safety. Show a new code to try again, or use another method.',
        );
        break;
      case 'expired':
        showEnd(
          'This code has expired',
          via === 'timer' || status.reason === 'timeout' || (attempt && Date.now() >= attempt.expiresAt)
            ? 'Time ran out before the sign-in was approved on a phone. Show a new code to try again.'
            : 'The code is no longer valid. Show a new code to try again.',
        );
        break;
      case 'cancelled':
        showEnd('This sign-in was cancelled', 'Show a new code to try again, or use another method.');
        break;
      default:
        break;
    }
  }

  async function redeem() {
    if (redeeming) return;
    redeeming = true;
    announce(live, 'Approved on your phone — signing you in…');
    try {
      const result = await handoff.redeemQr(attempt.qrId);
      handoff.endJourney(currentJourney); // signed in: hiding the page now says nothing about this journey
      stopAttempt();
      waiting.hidden = true;
      end.hidden = true;
      doneText.textContent = `Signed in as ${result.identifier}.`;
      done.hidden = false;
      announce(live, `Signed in as ${result.identifier}.`, 'ok');
      onSignedIn?.(result);
    } catch (error) {
      redeeming = false;
      if (error.status === 410) return onState({ state: 'expired' }, 'redeem');
      showEnd('Could not finish signing in', `${messageOf(error)} Show a new code to try again.`);
    }
  }

  function showEnd(heading, text) {
    stopAttempt();
    waiting.hidden = true;
    done.hidden = true;
    endTitle.textContent = heading;
    endText.textContent = text;
    end.hidden = false;
    announce(live, heading + '.', 'error');
    endTitle.focus();
  }

  async function start() {
    stopAttempt();
    stopped = false;
    state = null;
    attempt = null;
    rotations = 0;
    redeeming = false;
    end.hidden = true;
    done.hidden = true;
    waiting.hidden = true;
    trouble.hidden = false;
    trouble.open = false;
    qrBox.classList.remove('qr-faded');
    announce(live, 'Making a sign-in code…');
    let code;
    try {
      code = await handoff.createQr({ identifier, journeyId: currentJourney });
    } catch (error) {
      if (destroyed) return;
      if (error.status === 429) {
        const wait = error.retryAfter ? ` Try again in ${error.retryAfter} seconds.` : ' Try again in a minute.';
        return showEnd('Too many codes from this network', `For safety only a few codes can be made per minute.${wait}`);
      }
      return showEnd('Could not make a sign-in code', messageOf(error));
    }
    if (destroyed) return;
    waiting.hidden = false;
    renderCode(code);
    onState({ state: 'created' }, 'create');
    tick();
    tickTimer = setInterval(tick, 1000);
    listen();
  }

  async function cancelAttempt() {
    const id = attempt?.qrId;
    const wasFinal = state && FINAL.has(state);
    stopAttempt();
    if (id && !wasFinal) {
      try {
        await handoff.cancelQr(id);
      } catch {
        // already over on the server: nothing to cancel
      }
    }
  }

  newCodeButton.addEventListener('click', () => {
    cancelAttempt().finally(start);
  });
  otherButton.addEventListener('click', () => {
    cancelAttempt().finally(() => onCancel?.({ reason: state ?? 'cancelled' }));
  });
  cancelButton.addEventListener('click', async () => {
    await cancelAttempt();
    if (onCancel) onCancel({ reason: 'cancelled' });
    else showEnd('This sign-in was cancelled', 'Show a new code when you are ready.');
  });

  start();

  return {
    cancel: cancelAttempt,
    destroy() {
      destroyed = true;
      stopAttempt();
    },
  };
}

// ---- the stand-alone page at /qr-login ----

async function currentSession() {
  try {
    return await handoff.session();
  } catch {
    return null;
  }
}

function mountLoginPage(form) {
  const input = form.querySelector('#qr-identifier');
  const start = document.getElementById('qr-start');
  const mount = document.getElementById('qr-mount');
  const signedIn = document.getElementById('qr-signed-in');
  const who = document.getElementById('qr-who');
  const signOut = document.getElementById('qr-signout');
  const status = document.getElementById('qr-page-status');
  let component = null;

  const showForm = (message = '') => {
    component?.destroy();
    component = null;
    mount.replaceChildren();
    mount.hidden = true;
    signedIn.hidden = true;
    start.hidden = false;
    status.textContent = message;
  };

  const showSignedIn = (identifier) => {
    component?.destroy();
    component = null;
    mount.hidden = true;
    start.hidden = true;
    who.textContent = identifier;
    signedIn.hidden = false;
    signedIn.querySelector('h2')?.focus();
  };

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const identifier = input.value.trim();
    start.hidden = true;
    status.textContent = '';
    mount.hidden = false;
    component = showQrApproval(mount, {
      identifier: identifier || undefined,
      onSignedIn: async (result) => {
        // Show who the server now has signed in, from the new session cookie.
        const session = await currentSession();
        showSignedIn(session?.identifier ?? result.identifier);
      },
      onCancel: () => {
        showForm('The QR sign-in was cancelled. Use another method, or start again.');
        input.focus();
      },
    });
    mount.querySelector('h2')?.focus();
  });

  signOut.addEventListener('click', async () => {
    try {
      await handoff.signOut();
    } catch {
      // signed out already
    }
    showForm('You are signed out.');
  });

  currentSession().then((s) => {
    if (s && !component) showSignedIn(s.identifier);
  });
}

if (typeof document !== 'undefined') {
  const form = document.getElementById('qr-login-form');
  if (form) mountLoginPage(form);
}
