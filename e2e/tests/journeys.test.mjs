/**
 * The server's journey diagnosis for real flows, read like an operator would: through
 * `GET /api/v1/journeys/{journeyId}` and `GET /api/v1/journeys` with the operator token.
 * Each flow is driven in Chromium like a person would, the journeyId is taken from what
 * the page itself got from the server (`/login/start` or `/qr`), and the journey is read
 * once the server has finished it (`HANDOFF_JOURNEY_IDLE_SECONDS=2`: no event for 2 s).
 *
 * - The phone refuses a cross-device sign-in (hybrid authenticator, user not verified):
 *   the journey is `cross-device`, carries the `webauthn.failed` (NotAllowedError) the
 *   page reported, and its root cause is the one the server's timing bands give for that
 *   event's `elapsedMs` (< 1 s no-credential, 1–30 s user-cancelled, ≥ 30 s
 *   proximity-or-connection; all inferred). The desktop segment names Chrome.
 * - A Handoff QR code shown and never scanned until the attempt expired: `scan-failure`,
 *   observed, outcome `failed`, phase `shown` observed; the search by root cause finds it.
 * - A local passkey sign-in: outcome `success`, no root cause, the six passkey phases
 *   observed in order, a positive time to session.
 * - The journey endpoints need the operator token (401 without, 403 with another).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { IDENTITIES, launchBrowser, openPage, startServer } from '../lib/harness.mjs';

const TOKEN = 'e2e-operator-token-0123456789abcdef';
const IDLE_SECONDS = '2';
const PASSKEY_PHASES = ['identifier', 'decision', 'ceremony-started', 'webauthn-completed', 'verified', 'session'];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** GET an operator endpoint; returns {status, body}. `token: null` sends no Authorization. */
async function operatorGet(server, path, { token = TOKEN } = {}) {
  const headers = token === null ? {} : { Authorization: `Bearer ${token}` };
  const res = await fetch(`${server.baseUrl}${path}`, { headers });
  const text = await res.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: res.status, body };
}

/** Poll the journey until the server has finished it; fails with the last answer after `timeout`. */
async function finishedJourney(server, journeyId, timeout = 20_000) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await operatorGet(server, `/api/v1/journeys/${journeyId}`);
    if (last.status === 200 && last.body.state === 'finished') return last.body;
    if (last.status !== 200 && last.status !== 404) {
      throw new Error(`GET /api/v1/journeys/${journeyId} answered ${last.status}: ${JSON.stringify(last.body)}`);
    }
    if (Date.now() > deadline) {
      throw new Error(`journey ${journeyId} not finished within ${timeout} ms; last answer ${last.status}:\n${JSON.stringify(last.body, null, 2)}`);
    }
    await sleep(250);
  }
}

/** The journey as JSON, for assertion messages. */
const show = (journey) => JSON.stringify(journey, null, 2);

/** The SDK's event queue sends what it holds now (instead of after its batching delay). */
async function flushEvents(page) {
  await page.evaluate(async () => {
    const { Handoff } = await import('/sdk/handoff.js');
    await new Handoff().flushEvents();
  });
}

/** An identifier-first /login/start response (not the usernameless one of autofill). */
function identifierStart(response) {
  if (!response.url().endsWith('/api/v1/login/start') || response.request().method() !== 'POST') return false;
  try {
    return typeof response.request().postDataJSON()?.identifier === 'string';
  } catch {
    return false;
  }
}

/** The server's timing bands for a refused (NotAllowedError) ceremony. */
function expectedCauseFor(elapsedMs) {
  if (elapsedMs < 1_000) return { code: 'no-credential', outcome: 'failed', class: 'technical-failure' };
  if (elapsedMs < 30_000) return { code: 'user-cancelled', outcome: 'abandoned', class: 'user-abandonment' };
  return { code: 'proximity-or-connection', outcome: 'failed', class: 'technical-failure' };
}

/** Common shape of a diagnosed, unsuccessful journey. */
function assertRootCauseShape(journey) {
  const rc = journey.rootCause;
  assert.ok(rc, `a finished journey without a session has a root cause:\n${show(journey)}`);
  assert.ok(Array.isArray(rc.evidence) && rc.evidence.length > 0, `the root cause has evidence:\n${show(journey)}`);
  assert.ok(rc.evidence.every((e) => typeof e === 'string' && e.length > 0));
  assert.equal(typeof rc.action, 'string');
  assert.ok(rc.action.length > 0, 'the root cause names an action');
  assert.equal(journey.timeToSessionMs, null, 'no session, no time to session');
}

/** Stand-in for a desktop with Bluetooth (see cross-device.test.mjs): hybridTransport on. */
function reportHybridTransport() {
  const PKC = window.PublicKeyCredential;
  if (typeof PKC?.getClientCapabilities !== 'function') return;
  const original = PKC.getClientCapabilities.bind(PKC);
  PKC.getClientCapabilities = async () => ({ ...(await original()), hybridTransport: true });
}

describe('journey of a cross-device sign-in the phone refuses', { timeout: 60_000 }, () => {
  const IDENTIFIER = 'alan@example.com';
  let server;
  let browser;

  before(async () => {
    server = await startServer({
      name: 'server-journeys-cross-device',
      env: { HANDOFF_OPERATOR_TOKEN: TOKEN, HANDOFF_JOURNEY_IDLE_SECONDS: IDLE_SECONDS, HANDOFF_QR_TTL_SECONDS: IDLE_SECONDS },
    });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it('is failed or abandoned with the cross-device cause its webauthn.failed timing gives', async (t) => {
    // The account and its passkey are made on an Android phone.
    const phone = await openPage(browser, {
      viewport: { width: 390, height: 844 },
      isMobile: true,
      identity: IDENTITIES.androidPhone,
      authenticator: { transport: 'hybrid', defaultBackupEligibility: true, defaultBackupState: true },
    });
    await phone.page.goto(server.baseUrl);
    await phone.page.fill('#signup-identifier', IDENTIFIER);
    await phone.page.click('#signup-submit');
    await phone.page.locator('#account').waitFor({ state: 'visible', timeout: 15_000 });
    const [credential] = await phone.credentials();
    assert.ok(credential, 'the phone holds the passkey');
    await phone.context.close();

    // A Windows desktop; the phone (reached over hybrid) cannot verify the user.
    const desktop = await openPage(browser, { identity: IDENTITIES.windowsDesktop });
    await desktop.context.addInitScript(reportHybridTransport);
    const phoneId = await desktop.addAuthenticator({ transport: 'hybrid', isUserVerified: false, automaticPresenceSimulation: false });
    await desktop.cdp.send('WebAuthn.addCredential', { authenticatorId: phoneId, credential });
    const { page } = desktop;
    await page.goto(server.baseUrl);
    await page.locator('#signin-title').waitFor({ state: 'visible' });

    await page.fill('#identifier', IDENTIFIER);
    const started = page.waitForResponse(identifierStart);
    await page.click('#signin-continue');
    const start = await (await started).json();
    assert.equal(start.decision.verdict, 'cross-device', JSON.stringify(start.decision));
    const { journeyId } = start;
    assert.match(journeyId, /^[0-9a-f-]{36}$/, 'login/start names the journey');

    await page.locator('#cross-device').waitFor({ state: 'visible' });
    await desktop.presence(true, phoneId);
    const failure = page.waitForRequest((r) => r.url().endsWith('/api/v1/login/failure'));
    await page.getByRole('button', { name: 'Continue' }).click();
    const report = (await failure).postDataJSON();
    assert.equal(report.errorName, 'NotAllowedError');
    await page.locator('#alternative').waitFor({ state: 'visible', timeout: 15_000 });
    await flushEvents(page);

    const journey = await finishedJourney(server, journeyId);
    await desktop.screenshot('journeys-cross-device-refused');
    assert.equal(journey.journeyId, journeyId);
    assert.equal(journey.flow, 'cross-device', show(journey));
    assert.equal(journey.identifier, IDENTIFIER, show(journey));

    // The refusal the page reported, as the journey holds it.
    const failed = journey.events.filter((e) => e.name === 'webauthn.failed');
    assert.ok(failed.length >= 1, `a webauthn.failed event is in the journey:\n${show(journey)}`);
    const latest = failed.at(-1);
    assert.equal(latest.attrs.errorName, 'NotAllowedError', show(latest));
    assert.equal(typeof latest.attrs.elapsedMs, 'number', `webauthn.failed carries elapsedMs: ${show(latest)}`);
    assert.ok(latest.trusted, 'the failure is evidence');

    // The root cause the server's timing bands give for that elapsedMs.
    const expected = expectedCauseFor(latest.attrs.elapsedMs);
    t.diagnostic(`webauthn.failed after ${latest.attrs.elapsedMs} ms → ${journey.outcome} / ${journey.rootCause?.code} (${journey.rootCause?.basis})`);
    assertRootCauseShape(journey);
    assert.equal(journey.rootCause.code, expected.code, `elapsedMs ${latest.attrs.elapsedMs}:\n${show(journey)}`);
    assert.equal(journey.rootCause.class, expected.class, show(journey.rootCause));
    assert.equal(journey.rootCause.basis, 'inferred', show(journey.rootCause));
    assert.equal(journey.outcome, expected.outcome, show(journey));
    assert.ok(['failed', 'abandoned'].includes(journey.outcome));

    // The SDK's ceremony.started shows the ceremony phase.
    const ceremony = journey.phases.find((p) => p.name === 'ceremony-started');
    assert.ok(ceremony, `a ceremony-started phase:\n${show(journey.phases)}`);
    assert.equal(ceremony.observed, true, show(journey.phases));
    assert.equal(ceremony.evidence, 'ceremony.started');
    assert.ok(journey.events.some((e) => e.name === 'ceremony.started' && e.device === 'desktop'), 'the SDK sent ceremony.started');
    assert.equal(journey.phases.find((p) => p.name === 'session'), undefined, 'no session phase');

    // Who the person was: Chrome on Windows, on a desktop.
    assert.ok(journey.segments.desktop, `a desktop segment:\n${show(journey.segments)}`);
    assert.match(journey.segments.desktop.browser ?? '', /Chrom/i, show(journey.segments));

    // The support search finds it by identifier and flow, without events.
    const { status, body } = await operatorGet(server, `/api/v1/journeys?identifier=${encodeURIComponent(IDENTIFIER)}&flow=cross-device`);
    assert.equal(status, 200, JSON.stringify(body));
    const listed = body.journeys.find((j) => j.journeyId === journeyId);
    assert.ok(listed, `the search finds the journey:\n${JSON.stringify(body, null, 2)}`);
    assert.equal(listed.rootCause.code, journey.rootCause.code);
    assert.equal(listed.events, undefined, 'the search answers without events');
    assert.deepEqual(desktop.pageErrors, []);
    await desktop.context.close();
  });
});

describe('journey of a QR code nobody scanned', { timeout: 60_000 }, () => {
  let server;
  let browser;

  before(async () => {
    server = await startServer({
      name: 'server-journeys-qr',
      env: {
        HANDOFF_OPERATOR_TOKEN: TOKEN,
        HANDOFF_JOURNEY_IDLE_SECONDS: IDLE_SECONDS,
        HANDOFF_QR_TTL_SECONDS: IDLE_SECONDS,
        HANDOFF_QR_CODE_TTL_SECONDS: IDLE_SECONDS,
      },
    });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it('is a failed scan-failure, observed, and the search by root cause finds it', async () => {
    const desktop = await openPage(browser, { identity: IDENTITIES.windowsDesktop, authenticator: false });
    const { page } = desktop;
    await page.goto(`${server.baseUrl}/qr-login`);
    await page.getByRole('heading', { name: 'Sign in with your phone', level: 1 }).waitFor();
    await page.getByLabel('Email or username').fill('ada@example.com');
    const created = page.waitForResponse((r) => new URL(r.url()).pathname === '/api/v1/qr' && r.request().method() === 'POST');
    await page.getByRole('button', { name: 'Show QR code' }).click();
    const qr = await (await created).json();
    const { journeyId } = qr;
    assert.match(journeyId ?? '', /^[0-9a-f-]{36}$/, `POST /api/v1/qr names the journey: ${JSON.stringify(qr)}`);
    await page.getByRole('img', { name: 'QR code to sign in with your phone' }).locator('svg').waitFor({ state: 'visible' });
    await flushEvents(page); // qr.shown

    // Nobody scans; the attempt runs out and the desktop says so.
    await page.getByText('This code has expired').first().waitFor({ state: 'visible', timeout: 15_000 });
    await desktop.screenshot('journeys-qr-expired');

    const journey = await finishedJourney(server, journeyId);
    assert.equal(journey.flow, 'qr-approval', show(journey));
    assert.equal(journey.outcome, 'failed', show(journey));
    assertRootCauseShape(journey);
    assert.equal(journey.rootCause.code, 'scan-failure', show(journey.rootCause));
    assert.equal(journey.rootCause.class, 'technical-failure');
    assert.equal(journey.rootCause.basis, 'observed', show(journey.rootCause));

    const shown = journey.phases.find((p) => p.name === 'shown');
    assert.ok(shown, `a shown phase:\n${show(journey.phases)}`);
    assert.equal(shown.observed, true, show(journey.phases));
    assert.equal(shown.evidence, 'qr.shown');
    assert.deepEqual(journey.phases.map((p) => p.name), ['shown'], `nothing after shown happened:\n${show(journey.phases)}`);
    const shownEvent = journey.events.find((e) => e.name === 'qr.shown');
    assert.ok(shownEvent, `the page sent qr.shown:\n${show(journey.events)}`);
    assert.equal(shownEvent.device, 'desktop');
    assert.equal(shownEvent.trusted, true);
    assert.ok(journey.events.some((e) => e.name === 'qr.expired' && e.device === 'server'), `the server recorded qr.expired:\n${show(journey.events)}`);
    assert.ok(!journey.events.some((e) => e.name === 'qr.scanned'), 'never scanned');
    assert.match(journey.segments.desktop?.browser ?? '', /Chrom/i, show(journey.segments));

    const { status, body } = await operatorGet(server, '/api/v1/journeys?rootCause=scan-failure');
    assert.equal(status, 200, JSON.stringify(body));
    const listed = body.journeys.find((j) => j.journeyId === journeyId);
    assert.ok(listed, `GET /api/v1/journeys?rootCause=scan-failure finds the journey:\n${JSON.stringify(body, null, 2)}`);
    assert.ok(body.journeys.every((j) => j.rootCause?.code === 'scan-failure'), 'only scan failures');
    assert.equal(listed.outcome, 'failed');
    assert.equal(listed.events, undefined, 'the search answers without events');
    const other = await operatorGet(server, '/api/v1/journeys?rootCause=user-cancelled');
    assert.equal(other.status, 200);
    assert.ok(!other.body.journeys.some((j) => j.journeyId === journeyId), 'another root cause does not find it');
    assert.deepEqual(desktop.pageErrors, []);
    await desktop.context.close();
  });
});

describe('journey of a local passkey sign-in', { timeout: 60_000 }, () => {
  const IDENTIFIER = 'grace@example.com';
  let server;
  let browser;
  let signedIn; // the journey of the sign-in

  before(async () => {
    server = await startServer({
      name: 'server-journeys-local',
      env: { HANDOFF_OPERATOR_TOKEN: TOKEN, HANDOFF_JOURNEY_IDLE_SECONDS: IDLE_SECONDS, HANDOFF_QR_TTL_SECONDS: IDLE_SECONDS },
    });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it('is a success with the six passkey phases observed in order', async () => {
    const t = await openPage(browser); // a platform authenticator (Touch ID / Windows Hello)
    const { page } = t;
    await page.goto(server.baseUrl);
    await page.fill('#signup-identifier', IDENTIFIER);
    await page.click('#signup-submit');
    await page.locator('#account').waitFor({ state: 'visible', timeout: 15_000 });

    // Sign out, ignoring the autofill list, then sign in identifier-first.
    await t.presence(false);
    const autofills = await t.conditionalRequests();
    await page.click('#signout');
    await page.locator('#signin-title').waitFor({ state: 'visible' });
    await t.waitForConditionalRequest(autofills);
    await t.presence(true);
    await page.fill('#identifier', IDENTIFIER);
    const started = page.waitForResponse(identifierStart);
    await page.click('#signin-continue');
    const start = await (await started).json();
    assert.equal(start.decision.verdict, 'local', JSON.stringify(start.decision));
    const { journeyId } = start;
    signedIn = journeyId;
    await page.locator('#account').waitFor({ state: 'visible', timeout: 15_000 });
    await flushEvents(page);

    const journey = await finishedJourney(server, journeyId);
    assert.equal(journey.outcome, 'success', show(journey));
    assert.equal(journey.rootCause, null, show(journey));
    assert.equal(journey.flow, 'passkey-local', show(journey));
    assert.equal(journey.identifier, IDENTIFIER);
    assert.deepEqual(journey.phases.map((p) => p.name), PASSKEY_PHASES, show(journey.phases));
    for (const phase of journey.phases) {
      assert.equal(phase.observed, true, `phase ${phase.name} is observed:\n${show(journey.phases)}`);
      assert.equal(typeof phase.at, 'number', `phase ${phase.name} has a time:\n${show(journey.phases)}`);
    }
    assert.equal(typeof journey.timeToSessionMs, 'number', show(journey));
    assert.ok(journey.timeToSessionMs > 0, `timeToSessionMs ${journey.timeToSessionMs}`);
    assert.ok(journey.events.some((e) => e.name === 'session.established' && e.device === 'server'));
    assert.match(journey.segments.desktop?.browser ?? '', /Chrom/i, show(journey.segments));

    // A success shows up under outcome=success, not under failures.
    const ok = await operatorGet(server, '/api/v1/journeys?outcome=success');
    assert.ok(ok.body.journeys.some((j) => j.journeyId === journeyId), JSON.stringify(ok.body, null, 2));
    const failed = await operatorGet(server, '/api/v1/journeys?outcome=failed');
    assert.ok(!failed.body.journeys.some((j) => j.journeyId === journeyId));
    assert.deepEqual(t.pageErrors, []);
    await t.context.close();

    // On the server's clock the phases happened in the flow's order (the page's own
    // timestamps corrected onto the server's): the page submitted the identifier before the
    // server decided, and the authenticator answered before the server verified its answer.
    const times = journey.phases.map((p) => p.at);
    assert.deepEqual([...times].sort((a, b) => a - b), times, `the phases happened in this order:\n${show(journey)}`);
  });

  it('the journey endpoints need the operator token', async () => {
    assert.ok(signedIn, 'needs the journey of the sign-in above');
    const path = `/api/v1/journeys/${signedIn}`;
    const none = await operatorGet(server, path, { token: null });
    assert.equal(none.status, 401, JSON.stringify(none.body));
    assert.equal(none.body.error.code, 'operator-token-required');
    assert.equal(none.body.journeyId, undefined, 'nothing of the journey without the token');
    const wrong = await operatorGet(server, path, { token: 'not-the-operator-token-at-all' });
    assert.equal(wrong.status, 403, JSON.stringify(wrong.body));
    assert.equal(wrong.body.error.code, 'operator-token-invalid');
    const search = await operatorGet(server, '/api/v1/journeys', { token: null });
    assert.equal(search.status, 401, JSON.stringify(search.body));
    // With the token: the journey, and 404 for a journey nobody recorded.
    assert.equal((await operatorGet(server, path)).status, 200);
    const unknown = await operatorGet(server, `/api/v1/journeys/${randomUUID()}`);
    assert.equal(unknown.status, 404, JSON.stringify(unknown.body));
    assert.equal(unknown.body.error.code, 'journey-not-found');
  });
});
