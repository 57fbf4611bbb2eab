/**
 * The SDK's product events (PRODUCT.md §4.2), seen from the wire: the demo page at `/` is
 * driven like a person would, and every `POST /api/v1/events` the page makes is caught with
 * `page.route`, passed on to the real server (its answer kept) or, to play an endpoint that
 * is down, answered 503 or held forever.
 *
 * - A local passkey sign-in records identifier.submitted, ceremony.started and
 *   webauthn.completed for the journey the server returned, in fewer requests than events,
 *   each with its own eventId; the SDK never sends an event the server records itself.
 * - A failed ceremony ends up as exactly one webauthn.failed for its journey: the server's
 *   (from `/login/failure`) when that report gets through, else the SDK's event.
 * - With the events endpoint answering 503, or not answering at all, the sign-in completes
 *   as fast as normal, and the same events (same eventIds) are delivered once it recovers.
 * - When the page is hidden, everything left goes out with `navigator.sendBeacon`.
 *
 * Hiding a page in headless Chromium (checked by hand on Chromium 156): nothing changes
 * `document.visibilityState` of a live page — not `page.bringToFront()` of another page or
 * tab (`Target.createTarget` with `newWindow: false`, `Target.activateTarget`), not
 * `Emulation.setFocusEmulationEnabled`, not `Page.setWebLifecycleState` frozen/active, not
 * `Browser.setWindowBounds` minimized. What really happens is the unload path: navigating
 * away fires `pagehide` (still "visible") and then `visibilitychange` to "hidden". So the
 * test uses both: a real navigation for "the page goes away" (the beacon sent during unload
 * is not seen by `page.route`, so it is observed through a thin `sendBeacon` wrapper and
 * the server's request log), and, for "hidden, then visible again" on a live page, it
 * overrides `document.visibilityState` and dispatches `visibilitychange` — the event and
 * the property the SDK reads; the beacon of a live page does go through `page.route`
 * (resource type `ping`), so its body and the server's 202 are checked.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { launchBrowser, openPage, startServer } from '../lib/harness.mjs';

const IDENTIFIER = 'ada@example.com';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** Events only the server records; a client may never send them. */
const SERVER_ONLY = [
  'decision.made',
  'challenge.created',
  'server.verification',
  'session.established',
  'qr.created',
  'qr.scanned',
  'qr.approved',
  'qr.denied',
  'qr.redeemed',
  'qr.expired',
  'qr.cancelled',
];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Poll `check` until it returns something truthy; fail with `what` after `timeout` ms. */
async function until(check, what, timeout = 15_000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/**
 * Catch the page's `POST /api/v1/events`. `mode` says what the endpoint does with a normal
 * request: `pass` (to the real server), `503`, or `hang` (never answered, until `release()`).
 * Beacons (`ping`) always go to the server.
 */
async function watchEvents(page) {
  const rec = {
    mode: 'pass',
    /** @type {{at: number, type: string, events: object[], status: number|null, answer: object|null}[]} */
    requests: [],
    held: [],
    /** Events the server answered 202 for. */
    delivered() {
      return rec.requests.filter((r) => r.status === 202).flatMap((r) => r.events);
    },
    /** Every event the page tried to send (repeats included). */
    sent() {
      return rec.requests.flatMap((r) => r.events);
    },
    async release() {
      const held = rec.held.splice(0);
      for (const route of held) await route.abort('connectionreset').catch(() => {});
    },
  };
  await page.route('**/api/v1/events', async (route) => {
    const request = route.request();
    let body;
    try {
      body = JSON.parse(request.postData() ?? '{}');
    } catch {
      body = {};
    }
    const entry = { at: Date.now(), type: request.resourceType(), events: body.events ?? [], status: null, answer: null };
    rec.requests.push(entry);
    const mode = entry.type === 'ping' ? 'pass' : rec.mode;
    if (mode === 'hang') {
      rec.held.push(route);
      return;
    }
    if (mode === '503') {
      entry.status = 503;
      await route
        .fulfill({ status: 503, contentType: 'application/json', body: '{"error":{"code":"unavailable","message":"events are down"}}' })
        .catch(() => {});
      return;
    }
    try {
      const response = await route.fetch();
      entry.answer = await response.json().catch(() => null);
      entry.status = response.status();
      await route.fulfill({ response });
    } catch {
      // the page went away or gave up on the request
    }
  });
  return rec;
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

describe('SDK product events', { timeout: 240_000 }, () => {
  let server;
  let browser;
  let t;
  let events;
  let normalMs; // how long a sign-in takes with a working events endpoint
  let journeyUnderWay; // a journey that is still going (no session), for the visibility tests

  before(async () => {
    server = await startServer({ name: 'server-sdk-events' });
    browser = await launchBrowser();
    t = await openPage(browser);
    // Counts the beacons the page hands to the browser, in sessionStorage so the count
    // survives a navigation (a beacon sent while the page unloads is not seen by page.route).
    await t.context.addInitScript(() => {
      const original = navigator.sendBeacon?.bind(navigator);
      if (!original) return;
      navigator.sendBeacon = (url, data) => {
        const ok = original(url, data);
        try {
          const log = JSON.parse(sessionStorage.getItem('beacons') ?? '[]');
          log.push({ url: String(url), type: data?.type ?? null, size: data?.size ?? null, ok, visibility: document.visibilityState });
          sessionStorage.setItem('beacons', JSON.stringify(log));
        } catch {
          // storage unavailable: the count stays empty
        }
        return ok;
      };
    });
    events = await watchEvents(t.page);
  });

  after(async () => {
    await events?.release();
    await browser?.close();
    await server?.stop();
  });

  /** Sign out while the user ignores the autofill list (see passkeys.test.mjs). */
  async function signOutIgnoringAutofill() {
    await t.presence(false);
    const before = await t.conditionalRequests();
    await t.page.click('#signout');
    await t.page.locator('#signin-title').waitFor({ state: 'visible' });
    await t.waitForConditionalRequest(before);
    await t.presence(true);
  }

  /** Identifier-first sign-in through the form; returns the /login/start body and how long it took. */
  async function signIn(identifier = IDENTIFIER, { expect = '#account' } = {}) {
    const { page } = t;
    await page.fill('#identifier', identifier);
    const started = page.waitForResponse(identifierStart);
    const began = Date.now();
    await page.click('#signin-continue');
    const start = await (await started).json();
    await page.locator(expect).waitFor({ state: 'visible', timeout: 15_000 });
    return { start, ms: Date.now() - began };
  }

  /** Send whatever the page's shared event queue holds (the module is the page's own instance). */
  function flushPageQueue() {
    return t.page.evaluate(async () => {
      const { Handoff } = await import('/sdk/handoff.js');
      return new Handoff().flushEvents();
    });
  }

  const ofJourney = (list, journeyId) => list.filter((e) => e.journeyId === journeyId);

  it('a local passkey sign-in records its steps for the journey, in batches, each event once', async () => {
    const { page } = t;
    await page.goto(server.baseUrl);
    await page.fill('#signup-identifier', IDENTIFIER);
    await page.click('#signup-submit');
    await page.locator('#account').waitFor({ state: 'visible', timeout: 15_000 });
    await signOutIgnoringAutofill();

    const { start, ms } = await signIn();
    normalMs = ms;
    assert.equal(start.decision.verdict, 'local', JSON.stringify(start.decision));
    const journeyId = start.journeyId;
    assert.match(journeyId, UUID);

    const delivered = await until(() => {
      const mine = ofJourney(events.delivered(), journeyId);
      return mine.some((e) => e.name === 'webauthn.completed') && mine;
    }, 'the sign-in events to be delivered');
    assert.deepEqual(
      delivered.map((e) => e.name),
      ['identifier.submitted', 'ceremony.started', 'webauthn.completed'],
      'the steps of the sign-in, in order, once each',
    );
    const [submitted, ceremony, completed] = delivered;
    for (const e of delivered) {
      assert.match(e.eventId, UUID, 'every event has a client-made eventId');
      assert.equal(e.device, 'desktop');
      assert.equal(e.flow, 'passkey-local', 'the local verdict maps to the passkey-local flow');
      assert.ok(Number.isInteger(e.ts) && Math.abs(Date.now() - e.ts) < 60_000, `ts is ms since the epoch: ${e.ts}`);
    }
    assert.ok(!JSON.stringify(submitted).includes(IDENTIFIER), 'the identifier itself is never in an event');
    assert.ok(submitted.ts <= ceremony.ts && ceremony.ts <= completed.ts, 'ts in the order things happened');
    assert.deepEqual(ceremony.attrs, { mediation: 'optional', hints: start.publicKey.hints ?? [], ceremonyId: start.ceremonyId });
    assert.equal(completed.attrs.mediation, 'optional');
    assert.equal(completed.attrs.authenticatorAttachment, 'platform');
    assert.ok(Number.isInteger(completed.attrs.elapsedMs) && completed.attrs.elapsedMs >= 0 && completed.attrs.elapsedMs < ms + 1000);

    // Batches: fewer requests than events; the server took every one; no eventId twice.
    await flushPageQueue();
    const all = events.sent();
    const requests = events.requests.filter((r) => r.events.length);
    assert.ok(requests.length < all.length, `${all.length} events in ${requests.length} requests`);
    const journeyRequests = requests.filter((r) => r.events.some((e) => e.journeyId === journeyId));
    assert.ok(journeyRequests.length < 3, `the 3 sign-in events came in ${journeyRequests.length} requests`);
    assert.equal(new Set(all.map((e) => e.eventId)).size, all.length, 'eventIds are unique');
    for (const r of requests) {
      assert.equal(r.status, 202);
      assert.deepEqual(r.answer, { accepted: r.events.length, rejected: [] });
    }
    // Autofill requests of the signed-out page are journeys too (a conditional ceremony).
    assert.ok(all.some((e) => e.name === 'ceremony.started' && e.attrs?.mediation === 'conditional'));
    assert.deepEqual(all.filter((e) => SERVER_ONLY.includes(e.name)), [], 'no event the server records itself');
  });

  it('a failed ceremony ends up as exactly one webauthn.failed for its journey', async () => {
    const { page } = t;
    const failures = [];
    let failureMode = 'pass';
    await page.route('**/api/v1/login/failure', async (route) => {
      const entry = { body: route.request().postDataJSON(), status: null };
      failures.push(entry);
      if (failureMode === '503') {
        entry.status = 503;
        return route.fulfill({ status: 503, contentType: 'application/json', body: '{"error":{"code":"unavailable","message":"down"}}' });
      }
      const response = await route.fetch();
      entry.status = response.status();
      return route.fulfill({ response });
    });

    // The person does not pass user verification (no fingerprint, face or screen lock).
    await signOutIgnoringAutofill();
    await t.cdp.send('WebAuthn.setUserVerified', { authenticatorId: t.authenticatorId, isUserVerified: false });

    // 1. The report reaches the server, which records webauthn.failed itself: the SDK sends none.
    const first = await signIn(IDENTIFIER, { expect: '#alternative' });
    await until(() => failures.some((f) => f.body.ceremonyId === first.start.ceremonyId && f.status), 'the failure report');
    const report = failures.find((f) => f.body.ceremonyId === first.start.ceremonyId);
    assert.equal(report.status, 204);
    assert.equal(report.body.errorName, 'NotAllowedError');
    await sleep(1500);
    await flushPageQueue();
    const firstEvents = ofJourney(events.sent(), first.start.journeyId);
    assert.ok(firstEvents.some((e) => e.name === 'ceremony.started'), 'the ceremony start is recorded');
    assert.deepEqual(
      firstEvents.filter((e) => e.name.startsWith('webauthn.')),
      [],
      'no webauthn.* event from the SDK: the server has the failure from /login/failure',
    );

    // 2. The report does not get through: the SDK's event queue carries webauthn.failed instead.
    failureMode = '503';
    await page.getByRole('button', { name: 'Use a different account' }).click();
    await page.locator('#signin-title').waitFor({ state: 'visible' });
    const second = await signIn(IDENTIFIER, { expect: '#alternative' });
    assert.notEqual(second.start.journeyId, first.start.journeyId, 'a new journey');
    const failed = await until(() => {
      const found = ofJourney(events.delivered(), second.start.journeyId).filter((e) => e.name === 'webauthn.failed');
      return found.length && found;
    }, 'webauthn.failed from the SDK');
    await sleep(1500);
    await flushPageQueue();
    const secondFailures = ofJourney(events.sent(), second.start.journeyId).filter((e) => e.name === 'webauthn.failed');
    assert.equal(secondFailures.length, 1, 'exactly one webauthn.failed');
    assert.equal(failures.filter((f) => f.body.ceremonyId === second.start.ceremonyId && f.status !== 503).length, 0);
    const [event] = failed;
    assert.equal(event.attrs.errorName, 'NotAllowedError');
    assert.equal(event.attrs.ceremonyId, second.start.ceremonyId);
    assert.equal(event.attrs.mediation, 'optional');
    assert.ok(Number.isInteger(event.attrs.elapsedMs) && event.attrs.elapsedMs >= 0);
    assert.equal(event.flow, 'passkey-local');

    // Back to the form; the autofill request it starts is ignored (presence off until it is pending).
    await page.unroute('**/api/v1/login/failure');
    await t.presence(false);
    const autofills = await t.conditionalRequests();
    await page.getByRole('button', { name: 'Use a different account' }).click();
    await page.locator('#signin-title').waitFor({ state: 'visible' });
    await t.waitForConditionalRequest(autofills);
    await t.presence(true);
    await t.cdp.send('WebAuthn.setUserVerified', { authenticatorId: t.authenticatorId, isUserVerified: true });
  });

  it('with the events endpoint answering 503, the sign-in is not held up; the events are retried and delivered', async () => {
    const { page } = t;
    await flushPageQueue(); // what the sign-out queued goes out first
    events.mode = '503';
    const from = events.requests.length;
    const { start, ms } = await signIn();
    assert.ok(ms < normalMs + 2000, `signed in in ${ms} ms with the endpoint down (normally ${normalMs} ms)`);

    // The batch is tried again, with a growing wait in between.
    const failed = await until(() => {
      const tries = events.requests.slice(from).filter((r) => r.status === 503 && r.events.some((e) => e.journeyId === start.journeyId));
      return tries.length >= 2 && tries;
    }, 'two failed tries');
    assert.ok(failed[1].at - failed[0].at >= 900, `backoff between tries: ${failed[1].at - failed[0].at} ms`);
    const firstIds = failed[0].events.filter((e) => e.journeyId === start.journeyId).map((e) => e.eventId);

    // The endpoint recovers: the same events (same eventIds) arrive.
    events.mode = 'pass';
    const delivered = await until(() => {
      const mine = ofJourney(events.delivered(), start.journeyId);
      return mine.some((e) => e.name === 'webauthn.completed') && mine;
    }, 'delivery after recovery', 30_000);
    assert.deepEqual(delivered.map((e) => e.name), ['identifier.submitted', 'ceremony.started', 'webauthn.completed']);
    for (const id of firstIds) assert.ok(delivered.some((e) => e.eventId === id), 'a retried event keeps its eventId');
    assert.equal(new Set(delivered.map((e) => e.eventId)).size, delivered.length, 'delivered once each');
    await signOutIgnoringAutofill();
    assert.equal(await page.locator('#account').isVisible(), false);
  });

  it('with the events endpoint not answering at all, the sign-in is not held up; delivery follows recovery', async () => {
    await flushPageQueue(); // what the sign-out queued goes out first
    events.mode = 'hang';
    const { start, ms } = await signIn();
    assert.ok(ms < normalMs + 2000, `signed in in ${ms} ms with the endpoint hanging (normally ${normalMs} ms)`);
    await until(() => events.held.length > 0, 'a held request');
    // The account view works while the request hangs (other API calls are not queued behind it).
    await t.page.locator('#passkey-list > li').first().waitFor({ state: 'visible' });

    events.mode = 'pass';
    // The SDK gives up on the hanging request after 10 s and tries again.
    const delivered = await until(() => {
      const mine = ofJourney(events.delivered(), start.journeyId);
      return mine.some((e) => e.name === 'webauthn.completed') && mine;
    }, 'delivery after the hanging request timed out', 30_000);
    assert.deepEqual(delivered.map((e) => e.name), ['identifier.submitted', 'ceremony.started', 'webauthn.completed']);
    await events.release();
  });

  it('hiding the page sends everything left by beacon, with page.hidden; showing it records page.visible', async () => {
    const { page } = t;
    await signOutIgnoringAutofill();
    await flushPageQueue();
    // A journey under way: an identifier with no passkey here leads to the other ways to sign in.
    events.mode = 'hang';
    const from = events.requests.length;
    const { start } = await signIn('nobody@example.com', { expect: '#alternative' });
    const journeyId = start.journeyId;
    journeyUnderWay = journeyId;
    await until(() => events.requests.slice(from).some((r) => r.events.some((e) => e.journeyId === journeyId)), 'a held request');

    // Hidden (see the note at the top: headless Chromium cannot hide a live page by itself).
    const beaconFrom = events.requests.length;
    await page.evaluate(() => {
      Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
      document.dispatchEvent(new Event('visibilitychange'));
    });
    const beacon = await until(
      () => events.requests.slice(beaconFrom).find((r) => r.type === 'ping' && r.status),
      'a beacon to /api/v1/events',
    );
    const names = ofJourney(beacon.events, journeyId).map((e) => e.name);
    assert.ok(names.includes('identifier.submitted'), `the held events go out by beacon too: ${names}`);
    assert.equal(names.at(-1), 'page.hidden');
    const hidden = beacon.events.find((e) => e.name === 'page.hidden' && e.journeyId === journeyId);
    assert.equal(hidden.attrs.via, 'visibilitychange');
    assert.equal(hidden.device, 'desktop');
    assert.equal(beacon.status, 202, 'the server took the beacon');
    assert.equal(beacon.answer.rejected.length, 0);
    const log = await page.evaluate(() => JSON.parse(sessionStorage.getItem('beacons') ?? '[]'));
    assert.ok(log.some((b) => b.url.endsWith('/api/v1/events') && b.type === 'application/json' && b.ok), JSON.stringify(log));

    // Visible again; the endpoint recovers.
    await page.evaluate(() => {
      Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'visible' });
      document.dispatchEvent(new Event('visibilitychange'));
    });
    events.mode = 'pass';
    await events.release();
    const visible = await until(
      () => ofJourney(events.delivered(), journeyId).find((e) => e.name === 'page.visible'),
      'page.visible',
    );
    assert.ok(visible.attrs.hiddenMs >= 0);
    assert.ok(visible.ts >= hidden.ts);
  });

  it('leaving the page (a real navigation) sends what is left by beacon', async () => {
    const { page } = t;
    events.mode = 'hang';
    // Something left to send: the integrator's own event on the journey still under way.
    assert.ok(journeyUnderWay, 'needs the journey of the previous test');
    await page.evaluate(async (id) => {
      const { Handoff } = await import('/sdk/handoff.js');
      new Handoff().track('test.marker', { journeyId: id, flow: 'fallback' });
    }, journeyUnderWay);
    const beaconsBefore = (await page.evaluate(() => JSON.parse(sessionStorage.getItem('beacons') ?? '[]'))).length;
    const served = () => (server.log().match(/\/api\/v1\/events[^\n]*status=202/g) ?? []).length;
    const before = served();
    await page.goto(`${server.baseUrl}/qr-login`);
    await page.getByRole('heading', { name: 'Sign in with your phone', level: 1 }).waitFor();
    const log = await page.evaluate(() => JSON.parse(sessionStorage.getItem('beacons') ?? '[]'));
    const sentOnLeaving = log.slice(beaconsBefore);
    assert.ok(
      sentOnLeaving.some((b) => b.url.endsWith('/api/v1/events') && b.ok && b.visibility === 'visible'),
      `a beacon on pagehide: ${JSON.stringify(log)}`,
    );
    await until(() => served() > before, 'the server to answer the beacon with 202');
    await events.release();
    events.mode = 'pass';
  });

  it('new Handoff({events: false}) sends nothing; events the server refuses are dropped, not retried', async () => {
    const { page } = t;
    const from = events.requests.length;
    const result = await page.evaluate(async () => {
      const { Handoff } = await import('/sdk/handoff.js');
      const off = new Handoff({ events: false });
      const journeyId = crypto.randomUUID();
      off.track('test.off', { journeyId });
      const offPending = await off.flushEvents();
      const on = new Handoff();
      on.track('Not A Valid Name!', { journeyId });
      on.track('test.valid', { journeyId });
      const onPending = await on.flushEvents();
      return { offPending, onPending, journeyId };
    });
    assert.equal(result.offPending, 0);
    assert.equal(result.onPending, 0, 'nothing waits for a retry: the refused event is dropped');
    const sent = events.requests.slice(from).flatMap((r) => r.events);
    assert.ok(!sent.some((e) => e.name === 'test.off'), 'events: false sent nothing');
    const mine = ofJourney(sent, result.journeyId);
    assert.deepEqual(mine.map((e) => e.name).sort(), ['Not A Valid Name!', 'test.valid'], 'each sent once');
    const answer = events.requests.slice(from).find((r) => r.events.some((e) => e.name === 'test.valid')).answer;
    assert.equal(answer.rejected.length, 1);
    assert.equal(answer.rejected[0].error.code, 'invalid-name');
    assert.deepEqual(
      events.sent().filter((e) => SERVER_ONLY.includes(e.name)),
      [],
      'in the whole run, no event the server records itself',
    );
    assert.deepEqual(t.pageErrors, [], 'no script errors');
  });
});
