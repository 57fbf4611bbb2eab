/**
 * Product-event queue of the Handoff SDK (PRODUCT.md §4.2): what the browser saw of a
 * sign-in, sent to `POST /api/v1/events` so the operator can see where a journey broke.
 *
 * Why it exists and why it is built this way:
 * - Events are data about a sign-in, never part of it. `record()` only appends to an
 *   in-memory queue and returns at once; it never throws and never waits on the network,
 *   so a slow or dead events endpoint cannot delay or break a sign-in.
 * - Batches: the queue is sent about a second after its first event, or at once when 20
 *   are waiting, at most 100 events (and under 60 kB) per request, one request at a time,
 *   each given up after 10 s.
 * - Every event carries a client-made `eventId`, so a batch sent twice (a retry after a
 *   lost answer, a beacon racing a request in flight) is counted once by the server.
 * - Transient failures (network errors, 5xx, 429, timeouts) are retried with exponential
 *   backoff (1 s, 2 s, 4 s … at most 30 s; `Retry-After` wins when longer) and an event is
 *   dropped after 6 tries. Events the server refuses as malformed are dropped (logged with
 *   `console.debug`). The queue holds at most 500 events and drops the oldest beyond.
 * - When the page is hidden or unloaded (`visibilitychange` → hidden, `pagehide`),
 *   everything left is sent with `navigator.sendBeacon` (a JSON Blob; `fetch` with
 *   `keepalive` where the beacon is refused), because timers may never run again.
 * - While a journey is active — from its first event until the SDK sees the sign-in
 *   finish, or 10 minutes without an event — hiding and showing the page is recorded as
 *   `page.hidden` / `page.visible`, the evidence for abandonment.
 *
 * Instances of the SDK that talk to the same server share one queue, so one page sends
 * one batch and one beacon however many `Handoff` objects it made.
 *
 * @module events
 */

/** Wait this long after the first queued event before sending. */
const FLUSH_DELAY_MS = 1000;
/** Send at once when this many events are waiting. */
const FLUSH_AT = 20;
/** The server takes at most 100 events per request. */
const MAX_BATCH = 100;
/** Under the server's 64 KiB body limit and the browser's 64 KiB keepalive quota. */
const MAX_BATCH_BYTES = 60_000;
/** The server refuses `attrs` larger than this (serialized). */
const MAX_ATTRS_BYTES = 4096;
/** Oldest events are dropped beyond this. */
const MAX_QUEUE = 500;
/** An event is dropped after this many failed sends. */
const MAX_TRIES = 6;
const BACKOFF_BASE_MS = 1000;
const BACKOFF_MAX_MS = 30_000;
/** A `Retry-After` longer than this is not waited for in full. */
const RETRY_AFTER_MAX_MS = 5 * 60_000;
/** One request is given up (and retried later) after this long. */
const SEND_TIMEOUT_MS = 10_000;
/** A journey with no event for this long is no longer followed for page.hidden/visible. */
const JOURNEY_IDLE_MS = 10 * 60_000;

/** The `flow` values the server accepts. */
export const FLOWS = ['passkey-local', 'cross-device', 'qr-approval', 'fallback'];

const VERDICT_FLOWS = {
  local: 'passkey-local',
  'try-once': 'passkey-local',
  'cross-device': 'cross-device',
  'qr-approval': 'qr-approval',
  fallback: 'fallback',
};

/**
 * The event `flow` of a decision verdict (`local`/`try-once` → `passkey-local`, …), or of a
 * flow name itself; `undefined` for anything else.
 * @param {string|undefined} value
 * @returns {string|undefined}
 */
export function flowOf(value) {
  if (typeof value !== 'string') return undefined;
  return FLOWS.includes(value) ? value : VERDICT_FLOWS[value];
}

/**
 * `mobile` or `desktop`, from User-Agent Client Hints where the browser has them, else the
 * User-Agent string.
 * @returns {'mobile'|'desktop'}
 */
export function deviceKind() {
  const nav = globalThis.navigator;
  const hinted = nav?.userAgentData?.mobile;
  const mobile = typeof hinted === 'boolean' ? hinted : /Mobi|Android|iPhone|iPad|iPod/i.test(nav?.userAgent ?? '');
  return mobile ? 'mobile' : 'desktop';
}

/** A random UUID; `crypto.randomUUID` exists only in secure contexts, so build one otherwise. */
export function newEventId() {
  const c = globalThis.crypto;
  try {
    if (typeof c?.randomUUID === 'function') return c.randomUUID();
  } catch {
    // fall through
  }
  const bytes = new Uint8Array(16);
  if (typeof c?.getRandomValues === 'function') c.getRandomValues(bytes);
  else for (let i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function debug(message, detail) {
  try {
    globalThis.console?.debug?.(`[handoff] events: ${message}`, ...(detail === undefined ? [] : [detail]));
  } catch {
    // no console
  }
}

/** Milliseconds to wait from a `Retry-After` header (seconds or an HTTP date), or 0. */
function retryAfterMs(header) {
  if (!header) return 0;
  const seconds = Number(header);
  const ms = Number.isFinite(seconds) ? seconds * 1000 : Date.parse(header) - Date.now();
  return Number.isFinite(ms) ? Math.min(RETRY_AFTER_MAX_MS, Math.max(0, ms)) : 0;
}

/** Plain-object attrs that the server will take, or undefined. */
function cleanAttrs(name, attrs) {
  if (!attrs || typeof attrs !== 'object' || Array.isArray(attrs)) return undefined;
  let text;
  try {
    text = JSON.stringify(attrs);
  } catch {
    debug(`attrs of ${name} are not JSON; sent without them`);
    return undefined;
  }
  if (text === '{}') return undefined;
  if (new TextEncoder().encode(text).length > MAX_ATTRS_BYTES) {
    debug(`attrs of ${name} are larger than ${MAX_ATTRS_BYTES} bytes; sent without them`);
    return { attrsDropped: true };
  }
  return JSON.parse(text);
}

/**
 * One page's queue of product events for one events endpoint. Use {@link sharedQueue}
 * rather than constructing it, so instances of the SDK share it.
 */
export class EventQueue {
  /**
   * @param {{url: string, fetch?: typeof fetch, lifecycle?: boolean}} options `url` of
   *   `POST /api/v1/events`; `fetch` to send with (default the global one); `lifecycle`
   *   false leaves `visibilitychange` / `pagehide` alone (tests).
   */
  constructor({ url, fetch: fetchImpl, lifecycle = true }) {
    this.url = url;
    this._fetch = fetchImpl ?? ((...args) => globalThis.fetch(...args));
    /** @type {{event: object, tries: number, beaconed?: boolean}[]} waiting, oldest first */
    this._queue = [];
    /** @type {{event: object, tries: number}[]} in the request being sent */
    this._inFlight = [];
    this._timer = null;
    this._retryAt = 0;
    this._failures = 0;
    this._batchLimit = MAX_BATCH;
    this._chain = Promise.resolve();
    /** @type {Map<string, {last: number, device: string, flow?: string}>} journeys being followed */
    this._journeys = new Map();
    /** @type {Set<string>} journeys the SDK saw finish (a session was established) */
    this._ended = new Set();
    this._hidden = null; // {at, journeys} while the page is hidden
    if (lifecycle) this._listen();
  }

  /**
   * Queue one event. Returns at once; never throws.
   * @param {string} name canonical event name
   * @param {{journeyId?: string, device?: string, flow?: string, attrs?: object, ts?: number}} [fields]
   * @returns {object|undefined} the queued event, or undefined when it was not queued
   *   (no journeyId or no name)
   */
  record(name, { journeyId, device, flow, attrs, ts } = {}) {
    try {
      if (typeof journeyId !== 'string' || !journeyId || typeof name !== 'string' || !name) return undefined;
      const event = {
        eventId: newEventId(),
        journeyId,
        name,
        ts: Number.isFinite(ts) ? Math.round(ts) : Date.now(),
        device: device === 'mobile' || device === 'desktop' ? device : deviceKind(),
      };
      const f = flowOf(flow);
      if (f) event.flow = f;
      const a = cleanAttrs(name, attrs);
      if (a) event.attrs = a;
      this._follow(event);
      this._queue.push({ event, tries: 0 });
      if (this._queue.length > MAX_QUEUE) {
        const dropped = this._queue.splice(0, this._queue.length - MAX_QUEUE);
        debug(`queue full; dropped the ${dropped.length} oldest`);
      }
      this._schedule();
      return event;
    } catch (error) {
      debug('could not queue an event', error);
      return undefined;
    }
  }

  /**
   * Stop following a journey for `page.hidden` / `page.visible` (its sign-in finished).
   * Its queued events are still sent.
   * @param {string} journeyId
   */
  endJourney(journeyId) {
    if (!journeyId) return;
    this._journeys.delete(journeyId);
    this._ended.add(journeyId);
    if (this._ended.size > 100) this._ended.delete(this._ended.values().next().value);
  }

  /**
   * Send everything queued now, without waiting for the batch delay or a backoff. Resolves
   * (never rejects) once each batch was answered, with the number of events still queued
   * (0 when all were delivered or dropped; more when the endpoint failed and they wait for
   * a retry).
   * @returns {Promise<number>}
   */
  flush() {
    this._clearTimer();
    this._retryAt = 0;
    return this._enqueueWork(() => this._drain()).then(() => {
      this._schedule();
      return this._queue.length + this._inFlight.length;
    });
  }

  /**
   * Hand everything left (queued and in flight) to the browser for delivery after this
   * page is gone: `navigator.sendBeacon`, else `fetch` with `keepalive`. Never throws.
   */
  beacon() {
    try {
      this._clearTimer();
      // Events of the request in flight go too (it may never finish once the page is gone); they
      // stay owned by that request, and the server ignores an eventId it already has.
      const entries = [...this._inFlight.filter((e) => !e.beaconed), ...this._queue];
      for (const e of this._inFlight) e.beaconed = true;
      this._queue = [];
      for (const batch of this._batches(entries, MAX_BATCH)) this._beaconBatch(batch);
    } catch (error) {
      debug('beacon failed', error);
    }
  }

  // ---- journeys and page visibility --------------------------------------------

  _follow(event) {
    if (event.name === 'page.hidden' || event.name === 'page.visible') return;
    if (this._ended.has(event.journeyId)) return;
    const j = this._journeys.get(event.journeyId) ?? { device: event.device };
    j.last = Date.now();
    j.device = event.device;
    if (event.flow) j.flow = event.flow;
    this._journeys.set(event.journeyId, j);
  }

  _activeJourneys() {
    const now = Date.now();
    const active = [];
    for (const [id, j] of this._journeys) {
      if (now - j.last > JOURNEY_IDLE_MS) this._journeys.delete(id);
      else active.push([id, j]);
    }
    return active;
  }

  _listen() {
    const doc = globalThis.document;
    const win = globalThis.window;
    if (typeof doc?.addEventListener !== 'function' || typeof win?.addEventListener !== 'function') return;
    doc.addEventListener('visibilitychange', () => {
      if (doc.visibilityState === 'hidden') this._onHidden('visibilitychange');
      else if (doc.visibilityState === 'visible') this._onVisible();
    });
    // Some browsers unload a page without a visibilitychange first; pagehide always fires.
    win.addEventListener('pagehide', () => this._onHidden('pagehide'));
    win.addEventListener('pageshow', (e) => {
      if (e.persisted) this._onVisible();
    });
  }

  _onHidden(via) {
    try {
      if (!this._hidden) {
        const journeys = this._activeJourneys();
        this._hidden = { at: Date.now(), journeys: journeys.map(([id]) => id) };
        for (const [journeyId, j] of journeys) {
          this.record('page.hidden', { journeyId, device: j.device, flow: j.flow, attrs: { via } });
        }
      }
      this.beacon();
    } catch (error) {
      debug('could not record page.hidden', error);
    }
  }

  _onVisible() {
    const hidden = this._hidden;
    if (!hidden) return;
    this._hidden = null;
    const hiddenMs = Date.now() - hidden.at;
    for (const journeyId of hidden.journeys) {
      const j = this._journeys.get(journeyId);
      if (j) this.record('page.visible', { journeyId, device: j.device, flow: j.flow, attrs: { hiddenMs } });
    }
  }

  // ---- sending ---------------------------------------------------------------

  _clearTimer() {
    if (this._timer !== null) clearTimeout(this._timer);
    this._timer = null;
  }

  /** Arrange the next automatic send: after the batch delay, at once when full, or after a backoff. */
  _schedule() {
    if (!this._queue.length) return;
    const wait = Math.max(this._retryAt - Date.now(), this._queue.length >= FLUSH_AT ? 0 : FLUSH_DELAY_MS);
    if (this._timer !== null) {
      if (wait > 0) return; // the one already set fires soon enough
      this._clearTimer();
    }
    this._timer = setTimeout(() => {
      this._timer = null;
      this._enqueueWork(() => this._drain()).then(() => this._schedule());
    }, Math.max(0, wait));
  }

  /** Run sends one after another, whoever asked for them. */
  _enqueueWork(work) {
    const run = this._chain.then(work).catch((error) => debug('send failed', error));
    this._chain = run;
    return run;
  }

  /** Send batches until the queue is empty or the endpoint asks us to wait. */
  async _drain() {
    while (this._queue.length && Date.now() >= this._retryAt) {
      const [batch] = this._batches(this._queue, this._batchLimit);
      this._queue.splice(0, batch.length);
      for (const e of batch) e.beaconed = false; // a new request: a later hide beacons it again
      this._inFlight = batch;
      let outcome;
      try {
        outcome = await this._send(batch);
      } finally {
        this._inFlight = [];
      }
      if (outcome.kind === 'ok' || outcome.kind === 'refused') {
        this._failures = 0;
      } else if (outcome.kind === 'split') {
        if (batch.length === 1) {
          debug('an event is too large for the server; dropped', batch[0].event.name);
        } else {
          this._batchLimit = Math.max(1, Math.floor(batch.length / 2));
          this._queue.unshift(...batch);
        }
      } else {
        this._failures += 1;
        const keep = batch.filter((e) => ++e.tries < MAX_TRIES);
        if (keep.length < batch.length) debug(`gave up on ${batch.length - keep.length} events after ${MAX_TRIES} tries`);
        this._queue.unshift(...keep);
        const backoff = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (this._failures - 1));
        const jitter = Math.random() * 0.1 * backoff;
        this._retryAt = Date.now() + Math.max(backoff + jitter, outcome.retryAfterMs ?? 0);
        return;
      }
    }
    this._batchLimit = MAX_BATCH; // smaller batches after a 413 only until the queue is empty
  }

  /** Split entries into batches of at most `limit` events and {@link MAX_BATCH_BYTES}. */
  _batches(entries, limit) {
    const out = [];
    let current = [];
    let bytes = 0;
    for (const entry of entries) {
      const size = JSON.stringify(entry.event).length + 1;
      if (current.length && (current.length >= limit || bytes + size > MAX_BATCH_BYTES)) {
        out.push(current);
        current = [];
        bytes = 0;
      }
      current.push(entry);
      bytes += size;
    }
    if (current.length) out.push(current);
    return out;
  }

  /**
   * POST one batch. Resolves to `{kind}`: `ok` (stored; refused events dropped), `refused`
   * (the whole batch is malformed: dropped), `split` (too large: send smaller batches), or
   * `transient` (try again later, `retryAfterMs` when the server said).
   */
  async _send(batch) {
    const controller = typeof AbortController === 'function' ? new AbortController() : null;
    const timer = setTimeout(() => controller?.abort(), SEND_TIMEOUT_MS);
    try {
      const response = await this._fetch(this.url, {
        method: 'POST',
        credentials: 'same-origin',
        headers: { accept: 'application/json', 'content-type': 'application/json' },
        body: JSON.stringify({ sentAt: Date.now(), events: batch.map((e) => e.event) }),
        signal: controller?.signal,
      });
      return await this._outcome(response, batch);
    } catch {
      return { kind: 'transient' }; // network error or our timeout
    } finally {
      clearTimeout(timer);
    }
  }

  async _outcome(response, batch) {
    let body;
    try {
      body = await response.json();
    } catch {
      body = undefined;
    }
    if (response.ok) {
      for (const r of Array.isArray(body?.rejected) ? body.rejected : []) {
        debug(`the server refused ${batch[r.index]?.event?.name ?? 'an event'}: ${r.error?.code} ${r.error?.message ?? ''}`);
      }
      return { kind: 'ok' };
    }
    const status = response.status;
    if (status === 429) return { kind: 'transient', retryAfterMs: retryAfterMs(response.headers?.get?.('retry-after')) };
    if (status === 413 || body?.error?.code === 'batch-too-large') return { kind: 'split' };
    if (status >= 500 || status === 408) return { kind: 'transient' };
    debug(`the server refused a batch of ${batch.length}: ${status} ${body?.error?.code ?? ''}`);
    return { kind: 'refused' };
  }

  _beaconBatch(batch) {
    const body = JSON.stringify({ sentAt: Date.now(), events: batch.map((e) => e.event) });
    const nav = globalThis.navigator;
    try {
      if (typeof nav?.sendBeacon === 'function' && nav.sendBeacon(this.url, new Blob([body], { type: 'application/json' }))) {
        return;
      }
    } catch {
      // refused (too large, a cross-origin JSON beacon in an old browser): try keepalive
    }
    let sent;
    try {
      sent = this._fetch(this.url, {
        method: 'POST',
        credentials: 'same-origin',
        keepalive: true,
        headers: { 'content-type': 'application/json' },
        body,
      });
    } catch {
      sent = Promise.reject(new Error('keepalive fetch refused'));
    }
    // If this page lives on (it was only hidden), anything that did not get through is queued again.
    Promise.resolve(sent)
      .then((response) => this._outcome(response, batch))
      .catch(() => ({ kind: 'transient' }))
      .then((outcome) => {
        if (outcome.kind === 'transient' || outcome.kind === 'split') {
          this._queue.unshift(...batch);
          this._schedule();
        }
      })
      .catch(() => {});
  }
}

const shared = new Map();

/**
 * The page's queue for an events endpoint, made on first use.
 * @param {string} url of `POST /api/v1/events`
 * @returns {EventQueue}
 */
export function sharedQueue(url) {
  let queue = shared.get(url);
  if (!queue) {
    queue = new EventQueue({ url });
    shared.set(url, queue);
  }
  return queue;
}
