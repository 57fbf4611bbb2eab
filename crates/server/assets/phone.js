/**
 * The phone page of Handoff QR approval, served at `/q/{token}`.
 *
 * Steps: make sure this phone is signed in (a passkey, usernameless), claim the code, show
 * who is asking and as which account this phone would approve, let the person pick the
 * number shown on the computer, then approve or deny. A stale verification (the server
 * answers 401 `reauth-required`) runs the passkey sign-in again and retries the approval.
 *
 * Why it is built this way:
 * - Claim, approve and deny are the SDK's calls (`claimQr`, `approveQr`, `denyQr`), so every
 *   error is the SDK's `HandoffError` with the server's code.
 * - The token is read from `location.pathname` and only ever sent in JSON bodies, never in
 *   a query string or a Referer (the page sets `no-referrer`).
 * - Approve and Deny have the same size; the match number is a real radio group; each
 *   screen moves focus to its heading and status changes are announced politely.
 * - Every moment the product tracks (§4.2: `mobile.opened`, `confirmation.shown`,
 *   `confirmation.completed`) goes through one named hook, {@link track}, into the SDK's
 *   event queue (batched, retried, flushed by beacon when the page is hidden). Once the
 *   person has decided, the phone's part of the journey is over, so hiding the page
 *   afterwards is not recorded for it.
 *
 * @module phone
 */
import { Handoff, HandoffError } from '/sdk/handoff.js';
import { $, announce, busy, mmss, showOnly } from '/assets/dom.js';

/**
 * The server wants a user-verified passkey sign-in within the last 2 minutes before an
 * approval. A session older than this is verified again *before* claiming, because the
 * claim is bound to the phone's session: see `ensureFreshSession`.
 */
const FRESH_ENOUGH_MS = 90_000;

/** When this page loaded (`mobile.opened` is sent once the journey is known, with this time). */
const openedAt = Date.now();

/**
 * Product events of this flow, stored with the attempt's journey (known after the claim):
 *
 * - `mobile.opened` — this page loaded
 * - `confirmation.shown` — the request and the number choice are on screen
 * - `confirmation.completed` — `{action: 'approve'|'deny', matchOk}`
 *
 * @param {string} name canonical event name (PRODUCT.md §4.2)
 * @param {Record<string, unknown>} [attrs]
 * @param {number} [ts] when it happened (default now)
 */
function track(name, attrs = {}, ts = Date.now()) {
  handoff.track(name, { journeyId: claim?.journeyId, device: 'mobile', flow: 'qr-approval', attrs, ts });
}

const handoff = new Handoff();
const token = decodeURIComponent((location.pathname.match(/^\/q\/([^/?#]+)/) ?? [])[1] ?? '');

let claim = null; // the claim response
let expiresTimer = 0;

/** This page's wording when the server cannot be reached (the SDK's own is about signing in). */
const OFFLINE = 'Could not reach the server. Check your connection and try again.';
const messageOf = (error) => (error?.code === 'network-error' ? OFFLINE : error?.message);

// ---- screens ----

const SCREENS = ['loading', 'signin', 'confirm', 'result'];

function show(id) {
  showOnly(SCREENS.map($), $(id));
  const heading = $(id).querySelector('h1');
  if (heading) heading.focus();
}

/** The page's status line; `kind` is `ok` or `error` (plain without). */
function say(text, kind) {
  announce($('status'), text, kind);
}

const RESULTS = {
  approved: {
    ok: true,
    title: 'Approved',
    text: 'You can go back to your computer. It signs in by itself.',
    next: 'You can close this page.',
  },
  denied: {
    ok: false,
    title: 'Sign-in denied',
    text: 'Nobody was signed in on the computer.',
    next: 'If you did not start this sign-in, someone may have sent you the code. You did the right thing.',
  },
  'wrong-account': {
    ok: false,
    title: 'Another account was asked for',
    text: 'The computer asked to sign in as another account than the one on this phone, so the sign-in was stopped.',
    next: 'If you are at the computer, sign in there with the account this phone uses, or sign in on this phone with the account the computer asked for.',
  },
  'far-apart': {
    ok: false,
    title: 'The computer is far from this phone',
    text: 'This site does not approve computers that seem to be somewhere else, so the sign-in was stopped.',
    next: 'If someone sent you this code, you did the right thing. If the computer is yours and in front of you, use another way to sign in on it.',
  },
  'wrong-number': {
    ok: false,
    title: 'The number did not match',
    text: 'The sign-in was stopped to keep your account safe.',
    next: 'If you are at the computer, show a new code there and scan it again. If you are not, nothing else needs doing.',
  },
  expired: {
    ok: false,
    title: 'This code has expired',
    text: 'Codes only work for a few minutes.',
    next: 'Show a new code on your computer and scan it again.',
  },
  'not-found': {
    ok: false,
    title: 'This code is no longer valid',
    text: 'The computer has shown a newer code since, or the link is incomplete.',
    next: 'Scan the code that is on the computer now.',
  },
  elsewhere: {
    ok: false,
    title: 'Already scanned on another device',
    text: 'Another phone or account scanned this code first, so it cannot be approved here.',
    next: 'If that was not you, do not approve anything you did not start. Show a new code on the computer to try again.',
  },
  finished: {
    ok: false,
    title: 'This sign-in is already finished',
    text: 'It was approved, denied or cancelled before.',
    next: 'Show a new code on your computer if you still need to sign in.',
  },
  invalid: {
    ok: false,
    title: 'This link is incomplete',
    text: 'The address has no sign-in code in it.',
    next: 'Scan the QR code on your computer again, or type the whole link it shows.',
  },
};

function showResult(kind, detail) {
  clearInterval(expiresTimer);
  const r = RESULTS[kind] ?? { ok: false, title: 'Something went wrong', text: detail ?? 'Please try again.', next: 'Show a new code on your computer and scan it again.' };
  $('result').dataset.result = kind;
  $('result').classList.toggle('result-ok', r.ok);
  $('result').classList.toggle('result-bad', !r.ok);
  // SVG elements have no `hidden` property: toggle the attribute.
  $('result-ok-icon').toggleAttribute('hidden', !r.ok);
  $('result-bad-icon').toggleAttribute('hidden', r.ok);
  $('result-title').textContent = r.title;
  $('result-text').textContent = r.text;
  $('result-next').textContent = r.next;
  say(`${r.title}. ${r.text}`, r.ok ? 'ok' : 'error');
  show('result');
}

/** Map a claim/approve/deny error to a result screen; true when handled. */
function resultForError(error) {
  switch (error.code) {
    case 'qr-not-found':
      showResult('not-found');
      return true;
    case 'qr-expired':
      showResult('expired');
      return true;
    case 'qr-already-scanned':
      showResult('elsewhere');
      return true;
    case 'qr-wrong-state':
      showResult('finished');
      return true;
    case 'wrong-number':
    case 'wrong-account':
    case 'far-apart':
      showResult(error.code);
      return true;
    default:
      return false;
  }
}

// ---- signing in on the phone ----

let afterSignIn = null;

function askToSignIn({ title, lead, then }) {
  $('signin-title').textContent = title;
  $('signin-lead').textContent = lead;
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

/**
 * Claims are bound to the phone's session, and a passkey sign-in starts a new session. So a
 * session whose verification is older than the server's freshness window is verified again
 * *before* claiming; otherwise the `reauth-required` retry would come from a session the
 * claim does not know.
 */
async function ensureFreshSession(session) {
  const age = Date.now() - Date.parse(session.signedInAt ?? '');
  if (Number.isFinite(age) && age < FRESH_ENOUGH_MS) return true;
  askToSignIn({
    title: 'Confirm it’s you',
    lead: `Use your passkey to confirm it is you before approving a sign-in${session.identifier ? ` as ${session.identifier}` : ''}.`,
    then: claimAndShow,
  });
  return false;
}

// ---- the request ----

async function claimAndShow() {
  show('loading');
  try {
    claim = await handoff.claimQr(token);
    track('mobile.opened', {}, openedAt);
  } catch (error) {
    if (error.code === 'not-signed-in') {
      return askToSignIn({
        title: 'Sign in on this phone to continue',
        lead: 'A computer asked to sign in with your phone. First sign in here with your passkey, then you can approve or deny it.',
        then: claimAndShow,
      });
    }
    if (resultForError(error)) return;
    return showResult('error', messageOf(error));
  }
  renderClaim(claim);
}

function renderClaim(c) {
  const account = c.account ?? {};
  const name = account.displayName || account.identifier;
  $('account-name').textContent = name;
  $('account-identifier').textContent = account.identifier ?? '';
  $('account-id-wrap').hidden = !account.displayName || account.displayName === account.identifier;

  const asked = c.requestedIdentifier;
  const differs = asked && asked.trim().toLowerCase() !== String(account.identifier ?? '').trim().toLowerCase();
  $('mismatch').hidden = !differs;
  if (differs) $('mismatch-text').textContent = `The computer asked for ${asked}, you are signed in as ${account.identifier}.`;

  const r = c.requester ?? {};
  $('req-browser').textContent = r.browser && r.browser !== 'unknown' ? r.browser : 'Unknown browser';
  $('req-os').textContent = [r.os && r.os !== 'unknown' ? r.os : 'Unknown system', r.formFactor && r.formFactor !== 'unknown' ? `(${r.formFactor})` : '']
    .filter(Boolean)
    .join(' ');
  $('req-ip').textContent = r.ip ?? 'Unknown';
  $('req-place').textContent = r.place ?? '';
  $('req-place').hidden = $('req-place-label').hidden = !r.place;
  const at = Date.parse(r.requestedAt ?? '');
  $('req-time').textContent = Number.isFinite(at) ? new Date(at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' }) : 'Unknown';
  $('far-apart').hidden = !c.farApart;
  if (c.farApart) {
    const km = Number.isFinite(c.distanceKm) ? `about ${c.distanceKm.toLocaleString()} km from this phone` : 'far from this phone';
    $('far-apart-text').textContent = `The computer seems to be somewhere else: ${km}. Deny unless it is really in front of you.`;
  }

  const choices = $('match-choices');
  choices.replaceChildren(
    ...(c.matchChoices ?? []).map((code) => {
      const label = document.createElement('label');
      label.className = 'match-choice';
      const input = document.createElement('input');
      input.type = 'radio';
      input.name = 'match';
      input.value = code;
      input.addEventListener('change', () => ($('match-error').hidden = true));
      const span = document.createElement('span');
      span.textContent = code;
      label.append(input, span);
      return label;
    }),
  );
  $('match-error').hidden = true;
  // The operator may let the approver allow this computer to save a passkey without
  // asking again (unticked by default; only honoured by the server when allowed).
  $('grant-wrap').hidden = !c.passkeyGrantOffered || !!c.refusal;
  $('grant-passkey').checked = false;
  // The operator refuses this approval (another account, or too far away): only Deny.
  $('approve').hidden = !!c.refusal;
  if (c.refusal === 'wrong-account') {
    $('mismatch-text').textContent += ' This site does not allow approving it: deny it, then sign in with the right account.';
  }
  if (c.refusal === 'far-apart') {
    $('far-apart-text').textContent += ' This site does not allow approving it.';
  }

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
  track('confirmation.shown', { mismatch: !!differs, farApart: !!c.farApart, distanceKm: c.distanceKm ?? null });
}

async function approve(matchCode, { reauthed = false } = {}) {
  const release = [$('approve'), $('deny')].map((b) => busy(b));
  const done = () => release.forEach((r) => r());
  say('Approving…');
  try {
    const allowPasskey = !$('grant-wrap').hidden && $('grant-passkey').checked;
    await handoff.approveQr(token, { matchCode, allowPasskey });
    track('confirmation.completed', { action: 'approve', matchOk: true });
    handoff.endJourney(claim?.journeyId);
    showResult('approved');
  } catch (error) {
    if (error.code === 'reauth-required' && !reauthed) {
      // Fresh user verification: the passkey again, then the same approval, automatically.
      say('For your safety, confirm it’s you with your passkey.');
      try {
        await handoff.signInDiscoverable();
      } catch (e) {
        done();
        say(`Not approved: the passkey check did not finish (${e.message}). Try Approve again.`, 'error');
        return;
      }
      done();
      return approve(matchCode, { reauthed: true });
    }
    if (error.code === 'wrong-number') {
      track('confirmation.completed', { action: 'approve', matchOk: false });
      handoff.endJourney(claim?.journeyId);
    }
    if (resultForError(error)) return;
    done();
    say(error.code === 'rate-limited' ? `Too many approvals: ${error.message}` : `Could not approve: ${messageOf(error)}`, 'error');
  }
}

$('decide-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const picked = document.querySelector('input[name="match"]:checked');
  if (!picked) {
    $('match-error').hidden = false;
    document.querySelector('input[name="match"]')?.focus();
    say('Pick the number shown on your computer first.', 'error');
    return;
  }
  approve(picked.value);
});

$('deny').addEventListener('click', async () => {
  const release = [$('approve'), $('deny')].map((b) => busy(b));
  const done = () => release.forEach((r) => r());
  say('Denying…');
  try {
    await handoff.denyQr(token);
    track('confirmation.completed', { action: 'deny' });
    handoff.endJourney(claim?.journeyId);
    showResult('denied');
  } catch (error) {
    if (resultForError(error)) return;
    done();
    say(`Could not deny: ${messageOf(error)}`, 'error');
  }
});

$('switch-account').addEventListener('click', async () => {
  try {
    await handoff.signOut();
  } catch {
    // already signed out
  }
  clearInterval(expiresTimer);
  askToSignIn({
    title: 'Sign in with the right account',
    lead: 'You are signed out on this phone. Sign in with the passkey of the account you want to approve as.',
    then: claimAndShow,
  });
});

// ---- start ----

async function main() {
  if (!token) return showResult('invalid');
  if (!window.PublicKeyCredential) {
    $('loading').hidden = true;
    return say('This browser does not support passkeys, so it cannot approve sign-ins.', 'error');
  }
  let session = null;
  try {
    session = await handoff.session();
  } catch (error) {
    return showResult('error', error.message);
  }
  if (!session) {
    return askToSignIn({
      title: 'Sign in on this phone to continue',
      lead: 'A computer asked to sign in with your phone. First sign in here with your passkey, then you can approve or deny it.',
      then: claimAndShow,
    });
  }
  if (await ensureFreshSession(session)) await claimAndShow();
}

main();
