/**
 * The verification page of a device sign-in (RFC 8628), served at `/device`.
 *
 * A TV, terminal or kiosk shows a code and a QR of `/device?user_code=XXXX-XXXX`. Here, in
 * a browser where the person is signed in (usually their phone), the code is entered
 * (typed, or taken from the scanned address), the page shows which application asks, from
 * which address and place and when, with the consent-phishing warning, and the person
 * approves or denies. Someone who scanned never read the code, so they pick it among three
 * first; typing it was the confirmation. Approving needs a fresh passkey check: the server
 * answers 401 `reauth-required`, the page runs the passkey sign-in (which re-verifies this
 * session) and approves again.
 *
 * Why it is built this way:
 * - Every call is the SDK's (`claimDevice`, `approveDevice`, `denyDevice`), so every error is
 *   a `HandoffError` with the server's code.
 * - The server records the steps of this flow itself (page opened, code entered or scanned,
 *   confirmation shown, approved or denied), so nothing is lost when this page is closed.
 * - Approve and Deny have the same size; the code choice is a real radio group; each screen
 *   moves focus to its heading and status changes are announced politely.
 *
 * @module device
 */
import { Handoff, HandoffError } from '/sdk/handoff.js';
import { $, announce, busy, mmss, showOnly } from '/assets/dom.js';

const handoff = new Handoff();
const scannedCode = new URLSearchParams(location.search).get('user_code') ?? '';

let code = scannedCode; // the code being confirmed
let claim = null; // the claim response
let expiresTimer = 0;

const OFFLINE = 'Could not reach the server. Check your connection and try again.';
const messageOf = (error) => (error?.code === 'network-error' ? OFFLINE : error?.message);

// ---- screens ----

const SCREENS = ['loading', 'signin', 'enter', 'confirm', 'result'];

function show(id) {
  showOnly(SCREENS.map($), $(id));
  $(id).querySelector('h1')?.focus();
}

function say(text, kind) {
  announce($('status'), text, kind);
}

const RESULTS = {
  approved: { ok: true, title: 'Approved', text: 'The device signs in by itself in a few seconds.', next: 'You can close this page.' },
  denied: {
    ok: false,
    title: 'Sign-in denied',
    text: 'Nobody was signed in on the device.',
    next: 'If you did not start this sign-in, someone may have sent you the code. You did the right thing.',
  },
  'wrong-code': {
    ok: false,
    title: 'The code did not match',
    text: 'The sign-in was stopped to keep your account safe.',
    next: 'If you are at the device, start signing in there again and scan the new code.',
  },
  expired: { ok: false, title: 'This code has expired', text: 'Device codes only work for a few minutes.', next: 'Start signing in on the device again.' },
  'not-found': {
    ok: false,
    title: 'This code is not valid',
    text: 'No device is waiting for this code: it was mistyped, used already, or the link is incomplete.',
    next: 'Scan the code the device shows now, or type it.',
  },
  elsewhere: {
    ok: false,
    title: 'Already entered on another browser',
    text: 'Someone else entered or scanned this code first, so it cannot be approved here.',
    next: 'If that was not you, approve nothing. Start signing in on the device again.',
  },
  finished: { ok: false, title: 'This sign-in is already finished', text: 'It was approved, denied or stopped before.', next: 'Start again on the device if you still need to sign in.' },
};

function showResult(kind, detail) {
  clearInterval(expiresTimer);
  const r = RESULTS[kind] ?? { ok: false, title: 'Something went wrong', text: detail ?? 'Please try again.', next: 'Start again on the device.' };
  $('result').dataset.result = kind;
  $('result').classList.toggle('result-ok', r.ok);
  $('result').classList.toggle('result-bad', !r.ok);
  $('result-title').textContent = r.title;
  $('result-text').textContent = r.text;
  $('result-next').textContent = r.next;
  say(`${r.title}. ${r.text}`, r.ok ? 'ok' : 'error');
  show('result');
}

/** The result screen for an error; true when handled. */
function resultForError(error) {
  const kind = {
    'device-code-not-found': 'not-found',
    'device-code-expired': 'expired',
    'device-code-claimed': 'elsewhere',
    'device-wrong-state': 'finished',
    'wrong-code': 'wrong-code',
  }[error.code];
  if (!kind) return false;
  showResult(kind);
  return true;
}

// ---- signing in here ----

let afterSignIn = null;

function askToSignIn(then) {
  afterSignIn = then;
  show('signin');
}

$('signin-passkey').addEventListener('click', async () => {
  const done = busy($('signin-passkey'));
  say('Waiting for your passkey…');
  try {
    await handoff.signInDiscoverable();
    say('Signed in.', 'ok');
    const next = afterSignIn;
    afterSignIn = null;
    await next?.();
  } catch (error) {
    const cancelled = error instanceof HandoffError && (error.code === 'NotAllowedError' || error.code === 'AbortError');
    say(cancelled ? 'The passkey sign-in was cancelled. Try again when you are ready.' : `Could not sign in: ${error.message}`, 'error');
  } finally {
    done();
  }
});

// ---- entering the code ----

function showEnter(error) {
  $('user-code-error').hidden = !error;
  $('user-code-error').textContent = error ?? '';
  $('user-code').setAttribute('aria-invalid', error ? 'true' : 'false');
  show('enter');
  if (error) say(error, 'error');
  $('user-code').focus();
}

$('enter-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const typed = $('user-code').value.trim();
  if (!typed) return showEnter('Type the code the device shows.');
  const done = busy($('enter-submit'));
  try {
    await claimAndShow(typed, 'typed');
  } finally {
    done();
  }
});

// ---- the request ----

async function claimAndShow(userCode, via) {
  code = userCode;
  try {
    claim = await handoff.claimDevice(userCode, { via });
  } catch (error) {
    if (error.code === 'not-signed-in') return askToSignIn(() => claimAndShow(userCode, via));
    if (via === 'typed' && ['invalid-user-code', 'device-code-not-found', 'rate-limited'].includes(error.code)) {
      return showEnter(error.code === 'device-code-not-found' ? 'No device is waiting for this code. Check it and try again.' : error.message);
    }
    if (resultForError(error)) return;
    return showResult('error', messageOf(error));
  }
  renderClaim(claim);
}

function renderClaim(c) {
  const account = c.account ?? {};
  $('account-name').textContent = account.displayName || account.identifier;
  $('account-identifier').textContent = account.identifier ?? '';
  $('account-id-wrap').hidden = !account.displayName || account.displayName === account.identifier;
  $('client-name').textContent = c.client?.name ?? 'an application';
  $('req-client').textContent = c.client ? `${c.client.name} (${c.client.id})` : 'Unknown';
  const d = c.device ?? {};
  $('req-software').textContent = d.software && d.software !== 'unknown' ? d.software : 'Unknown';
  $('req-ip').textContent = d.ip ?? 'Unknown';
  $('req-place').textContent = d.place ?? '';
  $('req-place').hidden = $('req-place-label').hidden = !d.place;
  const at = Date.parse(d.requestedAt ?? '');
  $('req-time').textContent = Number.isFinite(at) ? new Date(at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' }) : 'Unknown';

  const choices = c.choices ?? [];
  $('pick').hidden = choices.length === 0;
  $('pick-error').hidden = true;
  $('pick-choices').replaceChildren(
    ...choices.map((choice) => {
      const label = document.createElement('label');
      label.className = 'match-choice';
      const input = document.createElement('input');
      input.type = 'radio';
      input.name = 'pick';
      input.value = choice;
      input.addEventListener('change', () => ($('pick-error').hidden = true));
      const span = document.createElement('span');
      span.textContent = choice;
      label.append(input, span);
      return label;
    }),
  );

  const ends = Date.parse(c.expiresAt ?? '');
  const tick = () => {
    $('expires').textContent = `This request expires in ${mmss(ends - Date.now())}.`;
  };
  clearInterval(expiresTimer);
  if (Number.isFinite(ends)) {
    tick();
    expiresTimer = setInterval(tick, 1000);
  }
  say('');
  show('confirm');
}

async function approve(pick, { reauthed = false } = {}) {
  const release = [$('approve'), $('deny')].map((b) => busy(b));
  const done = () => release.forEach((r) => r());
  say('Approving…');
  try {
    await handoff.approveDevice(code, { pick });
    showResult('approved');
  } catch (error) {
    if (error.code === 'reauth-required' && !reauthed) {
      say('For your safety, confirm it’s you with your passkey.');
      try {
        await handoff.signInDiscoverable();
      } catch (e) {
        done();
        say(`Not approved: the passkey check did not finish (${e.message}). Try Approve again.`, 'error');
        return;
      }
      done();
      return approve(pick, { reauthed: true });
    }
    if (resultForError(error)) return;
    done();
    say(`Could not approve: ${messageOf(error)}`, 'error');
  }
}

$('decide-form').addEventListener('submit', (e) => {
  e.preventDefault();
  let pick;
  if (!$('pick').hidden) {
    const picked = document.querySelector('input[name="pick"]:checked');
    if (!picked) {
      $('pick-error').hidden = false;
      document.querySelector('input[name="pick"]')?.focus();
      say('Pick the code shown on the device first.', 'error');
      return;
    }
    pick = picked.value;
  }
  approve(pick);
});

$('deny').addEventListener('click', async () => {
  const release = [$('approve'), $('deny')].map((b) => busy(b));
  const done = () => release.forEach((r) => r());
  say('Denying…');
  try {
    await handoff.denyDevice(code);
    showResult('denied');
  } catch (error) {
    if (resultForError(error)) return;
    done();
    say(`Could not deny: ${messageOf(error)}`, 'error');
  }
});

// ---- start ----

async function main() {
  let session = null;
  try {
    session = await handoff.session();
  } catch (error) {
    return showResult('error', messageOf(error));
  }
  const next = () => (scannedCode ? claimAndShow(scannedCode, 'scanned') : showEnter());
  if (!session) {
    if (!window.PublicKeyCredential) {
      $('loading').hidden = true;
      return say('This browser does not support passkeys, so it cannot sign in here. Use your phone.', 'error');
    }
    return askToSignIn(next);
  }
  await next();
}

main();
