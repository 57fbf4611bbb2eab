/**
 * The SDK's event queue (`sdk/js/events.js`) on its own, in Node with a fake `fetch` and
 * mocked clocks: the timing rules that a browser test cannot check quickly — when a batch
 * leaves, how far apart the retries are, `Retry-After`, giving up, splitting a batch the
 * server finds too large, the queue bound, and the beacon on hide. No server, no browser.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import { EventQueue, flowOf } from '../../sdk/js/events.js';

const URL_ = 'http://handoff.test/api/v1/events';
const J1 = '0b7c4a9e-1c1f-4a43-9a3e-3d7f2f3a0001';
const J2 = '0b7c4a9e-1c1f-4a43-9a3e-3d7f2f3a0002';

/** Let the queue's promise chains run (real setImmediate: after every pending microtask). */
const settle = async () => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

async function advance(ms) {
  mock.timers.tick(ms);
  await settle();
}

/** Move the clocks on in small steps, so a timer fires close to its time. */
async function advanceSlowly(ms, step = 100) {
  for (let t = 0; t < ms; t += step) await advance(Math.min(step, ms - t));
}

/**
 * A fetch that records each request and answers with `answer(index, body)`: a status, or
 * `{status, headers, body}`, or 'hang' (until aborted).
 */
function fakeFetch(answer = () => 202) {
  const calls = [];
  const impl = async (url, init) => {
    const body = JSON.parse(init.body);
    calls.push({ at: Date.now(), url, body, keepalive: init.keepalive === true });
    let a = answer(calls.length - 1, body);
    if (a === 'hang') {
      return new Promise((_, reject) =>
        init.signal?.addEventListener('abort', () => reject(new DOMException('The operation was aborted.', 'AbortError'))),
      );
    }
    if (typeof a === 'number') a = { status: a };
    const json = a.body ?? (a.status === 202 ? { accepted: body.events.length, rejected: [] } : { error: { code: 'x', message: 'x' } });
    return new Response(JSON.stringify(json), { status: a.status, headers: { 'content-type': 'application/json', ...(a.headers ?? {}) } });
  };
  return { impl, calls };
}

function queueWith(fetch, options = {}) {
  return new EventQueue({ url: URL_, fetch, lifecycle: false, ...options });
}

const record = (q, name, journeyId = J1, extra = {}) => q.record(name, { journeyId, device: 'desktop', ...extra });

describe('SDK event queue', () => {
  beforeEach(() => mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_800_000_000_000 }));
  afterEach(() => mock.timers.reset());

  it('sends a batch about a second after the first event, with unique eventIds', async () => {
    const f = fakeFetch();
    const q = queueWith(f.impl);
    record(q, 'identifier.submitted', J1, { flow: 'local' });
    await advance(500);
    record(q, 'ceremony.started', J1, { attrs: { mediation: 'optional', hints: [] } });
    record(q, 'no.journey', '');
    await advance(499);
    assert.equal(f.calls.length, 0, 'nothing before the batch delay');
    await advance(1);
    assert.equal(f.calls.length, 1);
    assert.equal(typeof f.calls[0].body.sentAt, 'number', 'each batch says when it was sent (its clock)');
    const [a, b] = f.calls[0].body.events;
    assert.deepEqual(
      f.calls[0].body.events.map((e) => e.name),
      ['identifier.submitted', 'ceremony.started'],
      'an event without a journey is not sent',
    );
    assert.equal(a.flow, 'passkey-local', 'a verdict becomes its flow');
    assert.equal(a.ts, 1_800_000_000_000);
    assert.equal(b.ts, 1_800_000_000_500, 'ts is when it was recorded');
    assert.notEqual(a.eventId, b.eventId);
    assert.match(a.eventId, /^[0-9a-f-]{36}$/);
    assert.equal(a.attrs, undefined, 'no empty attrs');
    assert.deepEqual(b.attrs, { mediation: 'optional', hints: [] });
  });

  it('sends at once when 20 wait, at most 100 per request, and keeps at most 500 (dropping the oldest)', async () => {
    const f = fakeFetch();
    const q = queueWith(f.impl);
    for (let i = 0; i < 20; i++) record(q, `e.${i}`);
    await advance(0);
    assert.equal(f.calls.length, 1, 'the 20th event sends the batch without waiting');
    assert.equal(f.calls[0].body.events.length, 20);

    mock.timers.reset();
    mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_800_000_000_000 });
    const g = fakeFetch();
    const big = queueWith(g.impl);
    for (let i = 0; i < 650; i++) record(big, `e.${i}`);
    await advance(0);
    const sent = g.calls.flatMap((c) => c.body.events.map((e) => e.name));
    assert.equal(sent.length, 500, 'the queue holds 500');
    assert.equal(sent[0], 'e.150', 'the oldest were dropped');
    assert.ok(g.calls.every((c) => c.body.events.length <= 100), 'at most 100 per request');
    assert.equal(g.calls.length, 5);
  });

  it('retries transient failures with exponential backoff and gives up after 6 tries', async () => {
    const f = fakeFetch(() => 503);
    const q = queueWith(f.impl);
    record(q, 'webauthn.completed');
    await advance(1000);
    await advanceSlowly(120_000);
    assert.equal(f.calls.length, 6, 'six tries, then the event is dropped');
    const gaps = f.calls.slice(1).map((c, i) => c.at - f.calls[i].at);
    const expected = [1000, 2000, 4000, 8000, 16000];
    gaps.forEach((gap, i) => {
      assert.ok(gap >= expected[i] && gap <= expected[i] * 1.1 + 100, `try ${i + 2} waited ${gap} ms, ${expected[i]} expected`);
    });
    assert.ok(f.calls.every((c) => c.body.events[0].eventId === f.calls[0].body.events[0].eventId), 'the same eventId every time');
    assert.equal(await q.flush(), 0, 'nothing left');
  });

  it('waits as long as Retry-After says on 429, and caps the backoff at 30 s', async () => {
    const f = fakeFetch((i) => (i === 0 ? { status: 429, headers: { 'retry-after': '7' } } : 202));
    const q = queueWith(f.impl);
    record(q, 'qr.shown');
    await advance(1000);
    await advance(6900);
    assert.equal(f.calls.length, 1, 'not before Retry-After');
    await advance(200);
    assert.equal(f.calls.length, 2);

    mock.timers.reset();
    mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_800_000_000_000 });
    const g = fakeFetch((i) => (i < 7 ? 500 : 202));
    const r = queueWith(g.impl);
    // New events keep arriving, so the queue keeps failing past the per-event limit.
    for (let i = 0; i < 8; i++) {
      record(r, `e.${i}`);
      await advanceSlowly(40_000, 250);
    }
    // The gaps before each of the first seven failed tries' successors (later sends are normal batches).
    const gaps = g.calls.slice(1, 8).map((c, i) => c.at - g.calls[i].at);
    assert.ok(Math.max(...gaps) <= 30_000 * 1.1 + 250, `the backoff stops growing at 30 s: ${gaps}`);
    assert.ok(gaps.some((x) => x >= 30_000), `the backoff reaches its 30 s cap: ${gaps}`);
  });

  it('gives up on a hanging request after 10 s and tries again', async () => {
    const f = fakeFetch((i) => (i === 0 ? 'hang' : 202));
    const q = queueWith(f.impl);
    record(q, 'desktop.callback_received', J1, { attrs: { via: 'sse' } });
    await advance(1000);
    assert.equal(f.calls.length, 1);
    await advance(10_000);
    await advance(1200);
    assert.equal(f.calls.length, 2, 'retried after the timeout and a 1 s backoff');
    assert.equal(await q.flush(), 0);
  });

  it('drops what the server refuses, splits what it finds too large', async () => {
    const f = fakeFetch((i, body) => {
      if (body.events.length > 2) return 413;
      if (body.events.some((e) => e.name === 'too.big')) return 413;
      if (body.events.some((e) => e.name === 'malformed')) return { status: 400, body: { error: { code: 'invalid-body', message: 'no' } } };
      return { status: 202, body: { accepted: body.events.length - 1, rejected: [{ index: 0, error: { code: 'invalid-name', message: 'bad' } }] } };
    });
    const q = queueWith(f.impl);
    for (const name of ['a.1', 'a.2', 'a.3', 'a.4', 'a.5']) record(q, name);
    assert.equal(await q.flush(), 0, 'everything delivered or dropped, nothing waits for a retry');
    const sizes = f.calls.map((c) => c.body.events.length);
    assert.deepEqual(sizes, [5, 2, 2, 1], 'split in halves after a 413');
    record(q, 'too.big');
    assert.equal(await q.flush(), 0, 'a single event the server cannot take is dropped');
    record(q, 'malformed');
    assert.equal(await q.flush(), 0);
    const before = f.calls.length;
    await advance(60_000);
    assert.equal(f.calls.length, before, 'no retry of refused events');
  });

  it('replaces attrs over 4 KiB and maps decision verdicts to flows', () => {
    const q = queueWith(fakeFetch().impl);
    const event = record(q, 'big', J1, { attrs: { blob: 'x'.repeat(5000) } });
    assert.deepEqual(event.attrs, { attrsDropped: true });
    assert.equal(flowOf('try-once'), 'passkey-local');
    assert.equal(flowOf('qr-approval'), 'qr-approval');
    assert.equal(flowOf('nonsense'), undefined);
    assert.equal(record(q, 'bad.flow', J1, { flow: 'nonsense' }).flow, undefined, 'an unknown flow is left out, not sent');
  });

  describe('page lifecycle', () => {
    let saved;
    beforeEach(() => {
      saved = { document: globalThis.document, window: globalThis.window, navigator: Object.getOwnPropertyDescriptor(globalThis, 'navigator') };
      globalThis.document = Object.assign(new EventTarget(), { visibilityState: 'visible' });
      globalThis.window = new EventTarget();
    });
    afterEach(() => {
      globalThis.document = saved.document;
      globalThis.window = saved.window;
      if (saved.navigator) Object.defineProperty(globalThis, 'navigator', saved.navigator);
      else delete globalThis.navigator;
    });

    function setNavigator(value) {
      Object.defineProperty(globalThis, 'navigator', { value, configurable: true, writable: true });
    }
    function setVisibility(state) {
      document.visibilityState = state;
      document.dispatchEvent(new Event('visibilitychange'));
    }

    it('on hidden, records page.hidden for the journeys under way and sends everything by beacon', async () => {
      const beacons = [];
      setNavigator({
        userAgent: 'test',
        sendBeacon: (url, blob) => {
          beacons.push({ url, blob });
          return true;
        },
      });
      const f = fakeFetch();
      const q = new EventQueue({ url: URL_, fetch: f.impl });
      record(q, 'ceremony.started', J1, { flow: 'cross-device' });
      record(q, 'session.done', J2);
      q.endJourney(J2);
      await advance(300);
      setVisibility('hidden');
      assert.equal(f.calls.length, 0, 'no fetch: the beacon took it');
      assert.equal(beacons.length, 1);
      assert.equal(beacons[0].url, URL_);
      assert.equal(beacons[0].blob.type, 'application/json');
      const sent = JSON.parse(await beacons[0].blob.text()).events;
      assert.deepEqual(sent.map((e) => [e.name, e.journeyId]), [
        ['ceremony.started', J1],
        ['session.done', J2],
        ['page.hidden', J1],
      ], 'page.hidden only for the journey still under way');
      assert.equal(sent[2].flow, 'cross-device');
      assert.deepEqual(sent[2].attrs, { via: 'visibilitychange' });
      window.dispatchEvent(new Event('pagehide'));
      assert.equal(beacons.length, 1, 'one hide, one page.hidden; nothing left to beacon');

      await advance(4000);
      setVisibility('visible');
      await advance(1000);
      assert.equal(f.calls.length, 1);
      const visible = f.calls[0].body.events;
      assert.deepEqual(visible.map((e) => e.name), ['page.visible']);
      assert.equal(visible[0].attrs.hiddenMs, 4000);

      // Ten minutes without an event: the journey is no longer followed.
      await advance(10 * 60_000 + 1);
      setVisibility('hidden');
      assert.equal(beacons.length, 1, 'no page.hidden for an idle journey, nothing to send');
    });

    it('falls back to fetch with keepalive when the beacon is refused, and keeps what did not get through', async () => {
      setNavigator({ userAgent: 'test', sendBeacon: () => false });
      const f = fakeFetch((i) => (i === 0 ? 503 : 202));
      const q = new EventQueue({ url: URL_, fetch: f.impl });
      record(q, 'confirmation.shown', J1, { device: 'mobile' });
      window.dispatchEvent(new Event('pagehide'));
      await settle();
      assert.equal(f.calls.length, 1);
      assert.equal(f.calls[0].keepalive, true);
      assert.deepEqual(f.calls[0].body.events.map((e) => e.name), ['confirmation.shown', 'page.hidden']);
      assert.deepEqual(f.calls[0].body.events[1].attrs, { via: 'pagehide' });
      // The page lived on (it was only hidden): the events are sent again later.
      await advance(1000);
      assert.equal(f.calls.length, 2);
      assert.deepEqual(f.calls[1].body.events.map((e) => e.eventId), f.calls[0].body.events.map((e) => e.eventId));
    });
  });
});
