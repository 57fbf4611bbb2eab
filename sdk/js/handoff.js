/**
 * Handoff browser SDK: passkey sign-up and sign-in against a Handoff server.
 *
 * An ES module with no dependencies and no build step. The server serves it at
 * `/sdk/handoff.js`; it also works copied into any site that talks to Handoff
 * on the same origin.
 *
 * Why it is built this way:
 * - The WebAuthn options and results travel as the W3C JSON encodings
 *   (`PublicKeyCredentialCreationOptionsJSON`, `RegistrationResponseJSON`, …).
 *   The browser's own `parse*OptionsFromJSON` / `toJSON()` are used where they
 *   exist; a small base64url fallback produces the same JSON elsewhere, so the
 *   server sees one format whatever the browser.
 * - Every failure surfaces as one {@link HandoffError} with a stable `code`:
 *   the server's error code, or the DOMException name of a WebAuthn failure
 *   (`NotAllowedError`, `AbortError`, …), so a page can branch on it.
 * - What this browser can do (client capabilities, platform authenticator,
 *   autofill, User-Agent Client Hints, the passkey it used last) is sent to
 *   `/login/start` so the server can pick the method most likely to work.
 *   Anything the browser cannot tell is left out ("unknown"), never reported
 *   as `false`.
 * - Sign-in is two steps, {@link Handoff#startSignIn} (ask the server which
 *   method fits) and {@link Handoff#completeSignIn} (run the passkey
 *   ceremony), so a page can explain a cross-device sign-in *before* the
 *   operating system's dialog opens. {@link Handoff#signIn} does both.
 * - A failed ceremony is reported to the server (`/login/failure`,
 *   fire-and-forget) so it stops offering a method that keeps failing in this
 *   browser.
 * - Every observable step of a sign-in (identifier submitted, ceremony started,
 *   WebAuthn completed or failed, another method chosen, the page hidden or
 *   shown) is recorded as a product event (PRODUCT.md §4.2) without the page
 *   writing code. Events go through the queue in `events.js`, which batches
 *   and retries on its own: a sign-in never waits for it.
 *
 * The W3C JSON encoding lives in `encoding.js`, the event queue in
 * `events.js`; both are imported by relative path, so the three files are
 * served (or copied) side by side.
 *
 * @module handoff
 */

import {
  EncodingError,
  authenticationToJSON,
  fromBase64url as decodeBase64url,
  parseCreationOptions as decodeCreationOptions,
  parseRequestOptions as decodeRequestOptions,
  registrationToJSON,
  toBase64url,
} from './encoding.js';
import { EventQueue, flowOf, sharedQueue } from './events.js';

export { toBase64url };

const API = '/api/v1';
/** How long `clientInfo()` waits for the User-Agent Client Hints before sending without them. */
const CLIENT_HINTS_TIMEOUT_MS = 250;
const LAST_CREDENTIAL_KEY = 'handoff:lastCredentialId';
const RP_ID_KEY = 'handoff:rpId';

/**
 * The one error type the SDK throws.
 *
 * `code` is the server's error code (e.g. `identifier-taken`,
 * `not-signed-in`), the DOMException name of a WebAuthn failure (e.g.
 * `NotAllowedError` when the user cancels, `AbortError` when the ceremony was
 * aborted, `InvalidStateError` when the authenticator already holds a passkey
 * for this account), `network-error` when the server could not be reached,
 * `unsupported` when the browser has no WebAuthn, `no-passkey-offered` when
 * the server decided against a passkey ceremony (see `decision`),
 * `ceremony-expired` when a started sign-in was completed after its timeout,
 * or `http-<status>` for an error response without a JSON body.
 *
 * During a sign-in, `decision` holds the server's decision: on a WebAuthn
 * failure, offer `decision.retry.then` (or one of `decision.alternatives`).
 */
export class HandoffError extends Error {
  /**
   * @param {string} code stable, machine-readable code (see the class doc)
   * @param {string} message human-readable sentence
   * @param {{status?: number, retryAfter?: number, cause?: unknown, decision?: Decision, journeyId?: string, ceremonyId?: string, elapsedMs?: number, timedOut?: boolean, triesLeft?: number}} [details]
   *   `status`: HTTP status of a server error; `retryAfter`: the seconds of
   *   its `Retry-After` header (e.g. on `rate-limited`); `cause`: the underlying
   *   exception; `decision`/`journeyId`/`ceremonyId`: the server's login
   *   decision and attempt, when the error happened during a sign-in;
   *   `elapsedMs`: how long the WebAuthn dialog was open; `timedOut`: the
   *   dialog ran into the ceremony's timeout (a `NotAllowedError` that took
   *   the whole time).
   */
  constructor(code, message, details = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'HandoffError';
    /** @type {string} */
    this.code = code;
    /** @type {number|undefined} */
    this.status = details.status;
    /** @type {number|undefined} */
    this.retryAfter = details.retryAfter;
    /** @type {Decision|undefined} */
    this.decision = details.decision;
    /** @type {string|undefined} */
    this.journeyId = details.journeyId;
    /** @type {string|undefined} */
    this.ceremonyId = details.ceremonyId;
    /** @type {number|undefined} */
    this.elapsedMs = details.elapsedMs;
    /** @type {boolean} */
    this.timedOut = details.timedOut === true;
    /** @type {number|undefined} `code-wrong`: how many more codes may be tried */
    this.triesLeft = details.triesLeft;
  }
}

/**
 * @typedef {object} Decision
 * @property {'local'|'cross-device'|'qr-approval'|'try-once'|'fallback'} verdict
 * @property {{code: string, message: string}[]} reasons
 * @property {number} confidence 0..1
 * @property {{verdict: string, reason?: string}[]} alternatives
 * @property {{maxAttempts: number, then: string}} retry
 * @property {string[]} [fallbacks] the server's fallback methods by name (`email-code`, `recovery-code`)
 */

/**
 * @typedef {object} Passkey
 * @property {string} credentialId base64url
 * @property {{name: string, aaguid: string, iconLight?: string, iconDark?: string}} provider
 * @property {string[]} transports
 * @property {'platform'|'cross-platform'|null} authenticatorAttachment
 * @property {boolean} backupEligible BE flag: the passkey may be synced
 * @property {boolean} backupState BS flag: the passkey is backed up / synced now
 * @property {string} createdAt RFC 3339
 * @property {string|null} lastUsedAt RFC 3339
 * @property {{os: string, browser: string, formFactor: string}} createdOn
 * @property {{os: string, browser: string, formFactor: string}|null} lastUsedOn
 */

/**
 * @typedef {object} Session
 * @property {string} userId
 * @property {string} identifier
 * @property {string} [displayName]
 * @property {string} createdAt
 * @property {Passkey[]} passkeys
 */

/**
 * @typedef {object} SignInResult
 * @property {string} userId
 * @property {string} identifier
 * @property {string} credentialId the passkey that was used (base64url)
 * @property {string} journeyId the login journey the server recorded
 * @property {string} [flow] the product flow the sign-in took (`passkey-local`, `cross-device`, …)
 * @property {{reason: string}|null} appendOffer present after a sign-in with a phone on a
 *   device that can hold a passkey: offer {@link Handoff#appendPasskey} ("Create a passkey
 *   here"), and call {@link Handoff#skipAppend} when the user declines
 * @property {Decision} decision the server's decision for this attempt
 */

/**
 * A started sign-in: the server's decision and, when it involves a passkey, the
 * ceremony to run with {@link Handoff#completeSignIn}.
 *
 * @typedef {object} SignInAttempt
 * @property {string} journeyId
 * @property {Decision} decision `decision.verdict` says what to do next
 * @property {boolean} hasCeremony true for `local`, `try-once` and `cross-device`
 *   (the server sent a ceremony); false for `fallback` and `qr-approval`
 * @property {string} [ceremonyId]
 * @property {object} [publicKey] `PublicKeyCredentialRequestOptionsJSON`, with the server's `hints`
 * @property {number} [timeoutMs] the ceremony's timeout (`publicKey.timeout`)
 * @property {number} [expiresAt] `Date.now()` value after which the ceremony has expired
 */

/**
 * @typedef {object} SignUpResult
 * @property {string} userId
 * @property {string} credentialId the new passkey (base64url)
 * @property {{name: string, aaguid: string}} provider where the passkey lives
 */

/**
 * A displayed QR code of an attempt (from {@link Handoff#createQr} / {@link Handoff#rotateQr}).
 *
 * @typedef {object} QrCode
 * @property {string} qrId the attempt
 * @property {string} journeyId
 * @property {string} svg the QR code as SVG markup
 * @property {string} url what the QR encodes (for typing on the phone)
 * @property {string} matchCode the two-digit number the phone must pick
 * @property {string} expiresAt RFC 3339: the attempt's end
 * @property {number} expiresIn seconds until `expiresAt`, measured by the server when it answered
 * @property {string} codeExpiresAt RFC 3339: this code's end (rotate before it)
 */

/**
 * @typedef {object} QrStatus
 * @property {'created'|'scanned'|'approved'|'redeemed'|'denied'|'expired'|'cancelled'|'rejected'} state
 * @property {string} [reason] e.g. `wrong-number`, `timeout`
 * @property {string} [codeExpiresAt]
 */

/**
 * What the phone sees after {@link Handoff#claimQr}.
 *
 * @typedef {object} QrClaim
 * @property {string} journeyId
 * @property {{identifier: string, displayName?: string}} account who this phone approves as
 * @property {string} [requestedIdentifier] what was typed on the computer
 * @property {{browser: string, os: string, formFactor: string, ip?: string, place?: string, requestedAt: string}} requester
 * @property {string[]} matchChoices the numbers to offer
 * @property {boolean} [farApart]
 * @property {number} [distanceKm]
 * @property {boolean} [passkeyGrantOffered]
 * @property {'wrong-account'|'far-apart'} [refusal] the operator refuses this approval: offer only Deny
 * @property {string} expiresAt
 */

/**
 * What the confirming browser sees after {@link Handoff#claimDevice} (a device sign-in,
 * RFC 8628).
 *
 * @typedef {object} DeviceClaim
 * @property {string} journeyId
 * @property {'claimed'|'approved'|'denied'|'rejected'|'redeemed'|'expired'|'pending'} state
 * @property {{id: string, name: string}} client the application asking
 * @property {string[]} scope
 * @property {{ip?: string, place?: string, software: string, requestedAt: string}} device the device asking
 * @property {{identifier: string, displayName?: string}} account who approving signs in
 * @property {string[]} [choices] for a scanned code: three codes, one on the device's screen
 * @property {string} expiresAt
 */

/**
 * A client for one Handoff server.
 *
 * @example
 * import { Handoff } from '/sdk/handoff.js';
 * const handoff = new Handoff();
 * await handoff.signUp({ identifier: 'ada@example.com', displayName: 'Ada' });
 */
export class Handoff {
  /**
   * @param {object} [options]
   * @param {string} [options.baseUrl=''] URL prefix of the Handoff server; ''
   *   means this page's origin. On the page's origin requests use
   *   `credentials: 'same-origin'`; with another origin (an application's page
   *   calling its Handoff server, PRODUCT §6.3) `credentials: 'include'`, which
   *   the server allows only from a client's registered `allowedOrigins`.
   * @param {typeof fetch} [options.fetch] fetch implementation (for tests or
   *   instrumentation); defaults to the global `fetch`. Product events use it
   *   too (then this instance keeps its own event queue).
   * @param {boolean} [options.events=true] `false` records no product events:
   *   no `POST /events`, no beacon, no visibility listeners. The server still
   *   records what it sees itself (decisions, verifications, sessions).
   */
  constructor({ baseUrl = '', fetch: fetchImpl, events = true } = {}) {
    /** @type {string} */
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    /** @private */
    const here = globalThis.location?.origin;
    this._credentials = this.baseUrl && here && new URL(this.baseUrl, here).origin !== here ? 'include' : 'same-origin';
    this._fetch = fetchImpl ?? globalThis.fetch.bind(globalThis);
    const eventsUrl = `${this.baseUrl}${API}/events`;
    /** @private @type {EventQueue|null} */
    this._events = null;
    if (events !== false) {
      try {
        this._events = fetchImpl ? new EventQueue({ url: eventsUrl, fetch: fetchImpl }) : sharedQueue(eventsUrl);
      } catch {
        this._events = null; // events are best effort; the SDK works without them
      }
    }
  }

  /**
   * Create an account with a new passkey — or, while signed in to the account
   * with this identifier, add another passkey to it. Opens the browser's
   * passkey creation dialog. On success the server sets the session cookie.
   *
   * @param {{identifier: string, displayName?: string}} params
   * @returns {Promise<SignUpResult>}
   * @throws {HandoffError} e.g. `identifier-taken`, `InvalidStateError`
   *   (this authenticator already has a passkey for the account),
   *   `NotAllowedError` (cancelled or timed out)
   */
  async signUp({ identifier, displayName } = {}) {
    requireWebAuthn();
    const body = { identifier };
    if (displayName) body.displayName = displayName;
    const start = await this._post('/passkeys/registration/start', body);
    const publicKey = parseCreationOptions(start.publicKey);
    rememberRpId(start.publicKey?.rp?.id);
    const credential = await webauthn(() => navigator.credentials.create({ publicKey }));
    let result;
    try {
      result = await this._post('/passkeys/registration/finish', {
        ceremonyId: start.ceremonyId,
        credential: registrationToJSON(credential),
      });
    } catch (error) {
      // The server kept nothing (e.g. the identifier is taken): tell the passkey provider,
      // where the browser can, so it does not keep offering a passkey that signs in nowhere.
      if (error instanceof HandoffError && error.status >= 400 && error.status < 500) {
        await signalUnknown(start.publicKey?.rp?.id ?? globalThis.location?.hostname, credential.id);
      }
      throw error;
    }
    rememberCredential(result.credentialId ?? credential.id);
    return result;
  }

  /**
   * Identifier-first sign-in in one call: {@link Handoff#startSignIn}, then,
   * when the server's decision runs a passkey ceremony (`local`, `try-once`,
   * `cross-device`), {@link Handoff#completeSignIn}.
   *
   * A page that wants to explain a cross-device sign-in before the operating
   * system's dialog opens should call the two steps itself.
   *
   * @param {{identifier: string, journeyId?: string}} params `journeyId`
   *   continues an attempt the server already knows (optional).
   * @returns {Promise<SignInResult>}
   * @throws {HandoffError} `NotAllowedError` (cancelled, timed out or no
   *   matching passkey here; `error.decision.retry.then` is what to offer
   *   next), `no-passkey-offered` (the decision, on `error.decision`, is
   *   `fallback` or `qr-approval`: nothing to run), or a server code
   */
  async signIn({ identifier, journeyId } = {}) {
    const attempt = await this.startSignIn({ identifier, journeyId });
    return this.completeSignIn(attempt);
  }

  /**
   * Step 1 of a sign-in: send what this browser can do and ask the server
   * which method fits. Nothing is shown to the user; no dialog opens.
   *
   * `prefer` asks for a particular method after the previous one failed — pass the
   * previous decision's `retry.then` (e.g. `'cross-device'` after a failed try on
   * this device); the server honours it when that method can work here.
   *
   * It works in a browser without WebAuthn too: the decision then still names the ways in
   * that need none here (Handoff QR approval with a phone, `decision.fallbacks`); only
   * {@link Handoff#completeSignIn} needs WebAuthn.
   *
   * @param {{identifier?: string, journeyId?: string, prefer?: string, signal?: AbortSignal}} [params]
   * @returns {Promise<SignInAttempt>}
   * @throws {HandoffError} a server code, `network-error`
   */
  async startSignIn({ identifier, journeyId, prefer, signal } = {}) {
    const submittedAt = Date.now();
    const body = { client: await this.clientInfo() };
    const hasIdentifier = identifier !== undefined && identifier !== null && identifier !== '';
    if (hasIdentifier) body.identifier = identifier;
    if (journeyId) body.journeyId = journeyId;
    if (prefer) body.prefer = prefer;
    throwIfAborted(signal);
    const start = await this._post('/login/start', body, signal);
    const hasCeremony = !!(start?.ceremonyId && start?.publicKey);
    // The journey is known only now; the events keep the moment the person submitted.
    const flow = flowOf(start?.decision?.verdict);
    if (prefer) {
      this._record('fallback.chosen', { journeyId: start?.journeyId, flow, ts: submittedAt, attrs: { method: prefer } });
    } else if (hasIdentifier) {
      this._record('identifier.submitted', { journeyId: start?.journeyId, flow, ts: submittedAt, attrs: journeyId ? { again: true } : undefined });
    }
    /** @type {SignInAttempt} */
    const attempt = { journeyId: start?.journeyId, decision: start?.decision, hasCeremony };
    if (hasCeremony) {
      attempt.ceremonyId = start.ceremonyId;
      attempt.publicKey = start.publicKey;
      const timeout = Number(start.publicKey.timeout);
      if (Number.isFinite(timeout) && timeout > 0) {
        attempt.timeoutMs = timeout;
        attempt.expiresAt = Date.now() + timeout;
      }
    }
    return attempt;
  }

  /**
   * Step 2 of a sign-in: open the browser's passkey dialog for a started
   * attempt and, when the user confirms, finish it on the server (which sets
   * the session cookie). Call it from the user's click where you can (Safari
   * wants a user gesture).
   *
   * A WebAuthn failure is reported to the server (fire-and-forget) and thrown
   * as a {@link HandoffError} whose `code` is the DOMException name and whose
   * `decision` says what to offer next (`decision.retry.then`).
   *
   * @param {SignInAttempt} attempt from {@link Handoff#startSignIn}
   * @param {{signal?: AbortSignal, hints?: string[]}} [options] `hints`
   *   replaces the server's WebAuthn hints (e.g. `['hybrid']` to lead with the
   *   phone's QR code)
   * @returns {Promise<SignInResult>}
   * @throws {HandoffError} `no-passkey-offered` (the attempt has no ceremony),
   *   `ceremony-expired`, a DOMException name, or a server code
   */
  async completeSignIn(attempt, { signal, hints } = {}) {
    requireWebAuthn();
    return this._ceremony(attempt, { signal, hints });
  }

  /**
   * Accept the passkey-append offer: create a passkey on this device for the
   * signed-in account (the same registration as adding a passkey).
   *
   * @param {{identifier?: string, displayName?: string}} [params] defaults to
   *   the signed-in account's identifier and display name
   * @returns {Promise<SignUpResult>}
   * @throws {HandoffError} `not-signed-in`, `InvalidStateError` (this device
   *   already has a passkey for the account), `NotAllowedError`, …
   */
  async appendPasskey({ identifier, displayName } = {}) {
    if (!identifier) {
      const session = await this.session();
      if (!session) throw new HandoffError('not-signed-in', 'Sign in first, then create a passkey on this device.', { status: 401 });
      identifier = session.identifier;
      displayName = displayName ?? session.displayName ?? undefined;
    }
    return this.signUp({ identifier, displayName });
  }

  /**
   * Decline the passkey-append offer ("Not now"). The server waits before
   * offering again and stops after a few refusals.
   *
   * @returns {Promise<void>}
   * @throws {HandoffError} `not-signed-in`
   */
  async skipAppend() {
    await this._post('/passkeys/append/skip', {});
  }

  /**
   * Usernameless sign-in through the browser's autofill (WebAuthn conditional
   * mediation). Call it when the page loads, with an input that has
   * `autocomplete="username webauthn"`; the promise settles only when the user
   * picks a passkey from the autofill list — or when `signal` aborts it
   * (rejects with code `AbortError`). Abort it before starting any other
   * ceremony on the page.
   *
   * @param {{signal?: AbortSignal, journeyId?: string}} [params]
   * @returns {Promise<SignInResult>}
   * @throws {HandoffError} `AbortError`, `unsupported` (no conditional
   *   mediation), or a server code
   */
  async signInWithAutofill({ signal, journeyId } = {}) {
    requireWebAuthn();
    if (!(await this.isConditionalMediationAvailable())) {
      throw new HandoffError('unsupported', 'This browser does not offer passkeys in autofill.');
    }
    throwIfAborted(signal);
    return this._login({ journeyId, mediation: 'conditional', signal });
  }

  /**
   * Usernameless sign-in with the browser's passkey picker, for a
   * "Sign in with a passkey" button: the user chooses any passkey this site
   * has on this device, a phone or a security key.
   *
   * @param {{signal?: AbortSignal, journeyId?: string}} [params]
   * @returns {Promise<SignInResult>}
   * @throws {HandoffError} `NotAllowedError` (cancelled or no passkey), or a
   *   server code such as an unknown credential
   */
  async signInDiscoverable({ signal, journeyId } = {}) {
    requireWebAuthn();
    return this._login({ journeyId, signal });
  }

  /**
   * Step-up: confirm with a passkey in this browser that the signed-in person is still
   * here. Adding or deleting a passkey, ending another device's session and approving
   * a QR request need one within the last 2 minutes (they fail with
   * `reauth-required` otherwise); a session made by QR approval has none until then.
   * Opens the browser's passkey picker (a passkey here, a security key, or a phone).
   *
   * @param {{signal?: AbortSignal}} [params]
   * @returns {Promise<SignInResult>}
   * @throws {HandoffError} `not-signed-in`, `wrong-account` (the passkey picked
   *   belongs to another account, which is now the one signed in), a DOMException
   *   name such as `NotAllowedError`, or a server code
   */
  async stepUp({ signal } = {}) {
    const before = await this.session();
    if (!before) throw new HandoffError('not-signed-in', 'Sign in first.', { status: 401 });
    const result = await this.signInDiscoverable({ signal });
    if (result?.userId && result.userId !== before.userId) {
      throw new HandoffError(
        'wrong-account',
        `That passkey belongs to another account${result.identifier ? ` (${result.identifier})` : ''}, which is now signed in here.`,
      );
    }
    return result;
  }

  /**
   * Runs `action`; when the server answers `reauth-required`, runs
   * {@link Handoff#stepUp} once and runs `action` again.
   *
   * @template T
   * @param {() => Promise<T>} action
   * @param {{signal?: AbortSignal, onStepUp?: () => void}} [params] `onStepUp`
   *   is called just before the passkey dialog opens (to say why it does)
   * @returns {Promise<T>}
   */
  async withStepUp(action, { signal, onStepUp } = {}) {
    try {
      return await action();
    } catch (error) {
      if (!(error instanceof HandoffError) || error.code !== 'reauth-required') throw error;
      onStepUp?.();
      await this.stepUp({ signal });
      return action();
    }
  }

  /**
   * A signed proof of who is signed in, for the application's backend (PRODUCT §6.3):
   * `{token, expiresAt}`, a JWT for `clientId` that lives at most two minutes. The
   * backend checks it with the JWKS (any JOSE library) or with
   * `POST /api/v1/session/token/verify`, which also refuses a proof used before.
   *
   * @param {string} clientId the application's client id (the token's `aud`)
   * @returns {Promise<{token: string, expiresAt: string}>}
   * @throws {HandoffError} `not-signed-in` (401), `unknown-client` (400)
   */
  async signedProof(clientId) {
    return this._post('/session/token', { clientId });
  }

  /**
   * The signed-in user, with their passkeys, or `null` when nobody is signed in.
   *
   * @returns {Promise<Session|null>}
   * @throws {HandoffError} on any error other than "not signed in"
   */
  async session() {
    try {
      return await this._request('GET', '/session');
    } catch (error) {
      if (error instanceof HandoffError && (error.status === 401 || error.code === 'not-signed-in')) {
        return null;
      }
      throw error;
    }
  }

  /**
   * Sign out: the server revokes the session and clears the cookie. The
   * remembered "last passkey used in this browser" hint is kept, so the next
   * sign-in can still be routed well.
   *
   * @returns {Promise<void>}
   */
  async signOut() {
    await this._request('DELETE', '/session');
  }

  /**
   * The signed-in user's passkeys.
   *
   * @returns {Promise<Passkey[]>}
   * @throws {HandoffError} `not-signed-in` when nobody is signed in
   */
  async passkeys() {
    const body = await this._request('GET', '/passkeys');
    return body?.passkeys ?? [];
  }

  /**
   * Delete one of the signed-in user's passkeys on the server. When the
   * browser supports the WebAuthn Signal API, it is also told that the
   * credential is gone, so the passkey provider can stop offering it
   * (best effort: a browser that cannot is not an error).
   *
   * @param {string} credentialId base64url credential id
   * @returns {Promise<void>}
   * @throws {HandoffError} `passkey-not-found`, `not-signed-in`
   */
  async deletePasskey(credentialId) {
    await this._request('DELETE', `/passkeys/${encodeURIComponent(credentialId)}`);
    if (storageGet(LAST_CREDENTIAL_KEY) === credentialId) storageRemove(LAST_CREDENTIAL_KEY);
    await signalUnknown(storageGet(RP_ID_KEY) ?? globalThis.location?.hostname, credentialId);
  }

  /**
   * Whether the browser can offer passkeys in autofill (conditional
   * mediation). Never throws.
   *
   * @returns {Promise<boolean>}
   */
  async isConditionalMediationAvailable() {
    const PKC = globalThis.PublicKeyCredential;
    if (typeof PKC?.isConditionalMediationAvailable !== 'function') return false;
    try {
      return (await PKC.isConditionalMediationAvailable()) === true;
    } catch {
      return false;
    }
  }

  /**
   * What this browser can tell about itself, for `/login/start`. Each field is
   * present only when the browser answered.
   *
   * `userAgentData` holds the User-Agent Client Hints (`platform`,
   * `platformVersion`, `mobile`, `model`, `formFactors`) where the browser
   * offers them; they are waited for at most a quarter of a second.
   *
   * @returns {Promise<{userAgent?: string, capabilities?: object, platformAuthenticator?: boolean, conditionalMediation?: boolean, lastCredentialId?: string, userAgentData?: {platform?: string, platformVersion?: string, mobile?: boolean, model?: string, formFactors?: string[]}}>}
   */
  async clientInfo() {
    const client = {};
    const PKC = globalThis.PublicKeyCredential;
    if (typeof navigator !== 'undefined' && navigator.userAgent) client.userAgent = navigator.userAgent;
    // Asked in parallel; each answer that does not come (or throws) stays "unknown".
    const [capabilities, platformAuthenticator, conditionalMediation, userAgentData] = await Promise.all([
      ask(PKC, 'getClientCapabilities'),
      ask(PKC, 'isUserVerifyingPlatformAuthenticatorAvailable'),
      ask(PKC, 'isConditionalMediationAvailable'),
      userAgentHints(),
    ]);
    if (capabilities && typeof capabilities === 'object') client.capabilities = { ...capabilities };
    if (typeof platformAuthenticator === 'boolean') client.platformAuthenticator = platformAuthenticator;
    if (typeof conditionalMediation === 'boolean') client.conditionalMediation = conditionalMediation;
    if (userAgentData) client.userAgentData = userAgentData;
    const last = storageGet(LAST_CREDENTIAL_KEY);
    if (last) client.lastCredentialId = last;
    return client;
  }

  // ---- internals -----------------------------------------------------------

  /** @private Usernameless sign-in (autofill or passkey picker). */
  async _login({ journeyId, mediation, signal }) {
    const attempt = await this.startSignIn({ journeyId, signal });
    return this._ceremony(attempt, { mediation, signal });
  }

  /** @private Run the WebAuthn `get` of a started attempt and finish it on the server. */
  async _ceremony(attempt, { mediation, signal, hints }) {
    const details = { decision: attempt?.decision, journeyId: attempt?.journeyId, ceremonyId: attempt?.ceremonyId };
    if (!attempt?.hasCeremony || !attempt.publicKey || !attempt.ceremonyId) {
      const why = attempt?.decision?.reasons?.[0]?.message;
      throw new HandoffError(
        'no-passkey-offered',
        why || 'The server did not offer a passkey sign-in for this attempt.',
        details,
      );
    }
    const json = { ...attempt.publicKey };
    if (Array.isArray(hints)) json.hints = hints;
    const modal = mediation !== 'conditional';
    if (modal && attempt.expiresAt) {
      // The server's ceremony started at /login/start: give the dialog only the time that is left.
      const left = attempt.expiresAt - Date.now();
      if (left <= 0) {
        throw new HandoffError('ceremony-expired', 'This sign-in request expired. Start again.', details);
      }
      json.timeout = Math.max(1000, Math.floor(left));
    }
    const publicKey = parseRequestOptions(json);
    rememberRpId(json.rpId);
    /** @type {CredentialRequestOptions} */
    const options = { publicKey };
    if (mediation) options.mediation = mediation;
    if (signal) options.signal = signal;
    const mediationName = mediation ?? 'optional';
    // A hybrid-led ceremony is the cross-device flow whatever the first verdict was.
    const flow = Array.isArray(hints) && hints.includes('hybrid') ? 'cross-device' : flowOf(attempt.decision?.verdict);
    const journey = { journeyId: attempt.journeyId, flow };
    this._record('ceremony.started', {
      ...journey,
      attrs: { mediation: mediationName, hints: Array.isArray(json.hints) ? json.hints : [], ceremonyId: attempt.ceremonyId },
    });
    const began = now();
    let credential;
    try {
      credential = await webauthn(() => navigator.credentials.get(options), details);
    } catch (error) {
      const elapsedMs = Math.max(0, Math.round(now() - began));
      error.elapsedMs = elapsedMs;
      error.timedOut = error.code === 'NotAllowedError' && modal && json.timeout > 0 && elapsedMs >= json.timeout - 250;
      // Our own abort (the page moved on) is not a failure of a passkey.
      const ours = error.code === 'AbortError' && signal?.aborted;
      if (!ours) {
        const failed = {
          ...journey,
          ts: Date.now(),
          attrs: { errorName: error.code, elapsedMs, mediation: mediationName, ceremonyId: attempt.ceremonyId, timedOut: error.timedOut },
        };
        // The server records webauthn.failed itself from /login/failure; the event queue carries it
        // only when that report is not made (autofill) or does not get through.
        if (modal) {
          this._reportFailure({ ceremonyId: attempt.ceremonyId, errorName: error.code, elapsedMs }, () =>
            this._record('webauthn.failed', failed),
          );
        } else {
          this._record('webauthn.failed', failed);
        }
      }
      throw error;
    }
    this._record('webauthn.completed', {
      ...journey,
      attrs: {
        elapsedMs: Math.max(0, Math.round(now() - began)),
        authenticatorAttachment: credential.authenticatorAttachment ?? null,
        mediation: mediationName,
      },
    });
    let result;
    try {
      result = await this._post(
        '/login/finish',
        { ceremonyId: attempt.ceremonyId, credential: authenticationToJSON(credential) },
        undefined,
        details,
      );
    } catch (error) {
      // The passkey the user picked is not on the server (deleted elsewhere): tell the provider,
      // so it stops offering it in this browser.
      if (error instanceof HandoffError && error.code === 'unknown-credential') {
        await signalUnknown(json.rpId ?? globalThis.location?.hostname, credential.id);
      }
      throw error;
    }
    rememberCredential(credential.id);
    // The session is established: page.hidden / page.visible no longer tell anything about this journey.
    this.endJourney(result?.journeyId ?? attempt.journeyId);
    return {
      ...result,
      credentialId: credential.id,
      journeyId: result?.journeyId ?? attempt.journeyId,
      appendOffer: result?.appendOffer ?? null,
      decision: attempt.decision,
    };
  }

  /**
   * @private Tell the server a ceremony failed in the browser. Fire-and-forget: never awaited,
   * never throws, survives a page navigation (`keepalive`). `notReported` runs when the
   * report did not get through (network error or an error status), so the failure can
   * still reach the journey as an event.
   */
  _reportFailure(body, notReported = () => {}) {
    let sent;
    try {
      sent = this._fetch(`${this.baseUrl}${API}/login/failure`, {
        method: 'POST',
        credentials: this._credentials,
        keepalive: true,
        headers: { accept: 'application/json', 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    } catch (error) {
      sent = Promise.reject(error);
    }
    Promise.resolve(sent)
      .then((response) => response?.ok === true, () => false)
      .then((ok) => {
        if (!ok) notReported();
      })
      .catch(() => {});
  }

  /**
   * The signed-in devices (sessions) of the signed-in account, newest first.
   *
   * @returns {Promise<Array<{id: string, current: boolean, createdAt: string, verifiedAt: string, device: {os: string, browser: string, formFactor: string}, ip: string|null}>>}
   * @throws {HandoffError} `not-signed-in`
   */
  async devices() {
    const body = await this._request('GET', '/sessions');
    return body?.sessions ?? [];
  }

  /**
   * Signs out one of the account's devices (an id from {@link Handoff#devices}).
   *
   * @param {string} id
   * @returns {Promise<void>}
   * @throws {HandoffError} `session-not-found`, `not-signed-in`
   */
  async endDevice(id) {
    await this._request('DELETE', `/sessions/${encodeURIComponent(id)}`);
  }

  /**
   * Sign out everywhere: every session of the signed-in account ends, this browser's
   * included. Needs a recent passkey check on this device (wrap it in
   * {@link Handoff#withStepUp}).
   *
   * @returns {Promise<number>} how many sessions ended
   * @throws {HandoffError} `reauth-required`, `not-signed-in`
   */
  async signOutEverywhere() {
    const body = await this._request('DELETE', '/sessions');
    return body?.ended ?? 0;
  }

  // ---- QR approval (PRODUCT.md: sign in on a computer by approving on a signed-in phone) ----

  /**
   * Desktop: start a QR approval attempt. The server answers with the code to show (an SVG
   * with its quiet zone, the URL it encodes, the two-digit match number) and sets the
   * redemption secret as an `HttpOnly` cookie scoped to the attempt, which this SDK never sees.
   *
   * @param {{identifier?: string, journeyId?: string}} [params] `identifier`: what the person
   *   typed (the phone warns on a mismatch); `journeyId`: the journey this attempt continues
   * @returns {Promise<QrCode>}
   * @throws {HandoffError} `rate-limited` (see `error.retryAfter`), `network-error`, …
   */
  async createQr({ identifier, journeyId } = {}) {
    const body = {};
    if (identifier) body.identifier = identifier;
    if (journeyId) body.journeyId = journeyId;
    return this._post('/qr', body);
  }

  /**
   * Desktop: replace the displayed code of an attempt nobody has scanned yet (the attempt,
   * its `qrId` and its journey stay the same), so a photo of an old screen stops working.
   *
   * @param {string} qrId
   * @returns {Promise<QrCode>}
   * @throws {HandoffError} status 409 (scanned meanwhile), 410 (expired), …
   */
  async rotateQr(qrId) {
    return this._request('POST', `/qr/${encodeURIComponent(qrId)}/rotate`);
  }

  /**
   * Desktop: the attempt's state. With `wait` (seconds; the server caps it at 30) this is a
   * long-poll: the server answers when the state changes or the time is up.
   *
   * @param {string} qrId
   * @param {{wait?: number, signal?: AbortSignal}} [options]
   * @returns {Promise<QrStatus>}
   * @throws {HandoffError} status 403 (this browser lacks the attempt's cookie), 404, `AbortError`, …
   */
  async qrStatus(qrId, { wait, signal } = {}) {
    const query = wait ? `?wait=${wait}` : '';
    return this._request('GET', `/qr/${encodeURIComponent(qrId)}${query}`, undefined, signal);
  }

  /**
   * Desktop: follow an attempt's state changes. Uses server-sent events
   * (`GET /qr/{id}/events`); when the stream errors (a proxy that buffers or cuts it) or the
   * browser has no `EventSource`, it switches on its own to long-polling
   * ({@link Handoff#qrStatus} with `wait`), backing off after failures. Both paths call the
   * same `onState`.
   *
   * @param {string} qrId
   * @param {object} handlers
   * @param {(status: QrStatus, via: 'sse'|'poll') => void} handlers.onState every state received
   *   (the same state may arrive more than once)
   * @param {(failures: number) => void} [handlers.onTrouble] the long-poll failed 3 times in a
   *   row; it keeps trying
   * @param {(error: HandoffError) => void} [handlers.onLost] the attempt can no longer be
   *   followed from this browser (403: its cookie is missing; 404: removed); watching stops
   * @param {number} [handlers.wait=25] long-poll length in seconds
   * @returns {{close: () => void}} stops watching (closes the stream, aborts the poll)
   */
  watchQr(qrId, { onState, onTrouble, onLost, wait = 25 } = {}) {
    let closed = false;
    let source = null;
    let pollAbort = null;
    const close = () => {
      closed = true;
      source?.close();
      source = null;
      pollAbort?.abort();
      pollAbort = null;
    };
    const poll = async () => {
      let failures = 0;
      while (!closed) {
        const ctrl = new AbortController();
        pollAbort = ctrl;
        try {
          const status = await this.qrStatus(qrId, { wait, signal: ctrl.signal });
          failures = 0;
          if (!closed) onState?.(status, 'poll');
        } catch (error) {
          if (closed || error?.code === 'AbortError') return;
          if (error.status === 403 || error.status === 404) {
            close();
            onLost?.(error);
            return;
          }
          failures += 1;
          if (failures === 3) onTrouble?.(failures);
          await new Promise((r) => setTimeout(r, Math.min(15_000, 1000 * 2 ** failures)));
        }
      }
    };
    if (typeof EventSource !== 'function') {
      poll();
    } else {
      const es = new EventSource(`${this.baseUrl}${API}/qr/${encodeURIComponent(qrId)}/events`, { withCredentials: true });
      source = es;
      es.addEventListener('state', (e) => {
        if (closed) return;
        try {
          onState?.(JSON.parse(e.data), 'sse');
        } catch {
          // a malformed event: ignore, the next one (or the long-poll) carries the state
        }
      });
      es.addEventListener('error', () => {
        if (source !== es) return;
        es.close();
        source = null;
        if (!closed) poll(); // the stream failed or was cut: keep going by long-polling
      });
    }
    return { close };
  }

  /**
   * Desktop: finish an approved attempt. Sends the attempt's cookie; the server sets the
   * session cookie, so this browser is signed in.
   *
   * @param {string} qrId
   * @returns {Promise<{userId: string, identifier: string, journeyId: string, flow: string}>}
   * @throws {HandoffError} status 410 (expired), …
   */
  async redeemQr(qrId) {
    return this._request('POST', `/qr/${encodeURIComponent(qrId)}/redeem`);
  }

  /**
   * Desktop: end an attempt (the person chose another method or wants a new code).
   *
   * @param {string} qrId
   * @returns {Promise<void>}
   * @throws {HandoffError} when it is already over on the server
   */
  async cancelQr(qrId) {
    await this._request('POST', `/qr/${encodeURIComponent(qrId)}/cancel`);
  }

  /**
   * Phone: claim a scanned code for this phone's (signed-in) session. The answer says who is
   * asking, as which account this phone would approve, and which numbers to offer.
   *
   * @param {string} token the token from the scanned URL (`/q/{token}`); sent in the body only
   * @returns {Promise<QrClaim>}
   * @throws {HandoffError} `not-signed-in`, `qr-not-found`, `qr-expired`, `qr-already-scanned`,
   *   `qr-wrong-state`, …
   */
  async claimQr(token) {
    return this._post('/qr/claim', { token });
  }

  /**
   * Phone: approve a claimed code with the number the person picked.
   *
   * @param {string} token
   * @param {{matchCode: string, allowPasskey?: boolean}} params `allowPasskey`: let the computer
   *   save a passkey without asking again (honoured only when the claim offered it)
   * @returns {Promise<void>}
   * @throws {HandoffError} `reauth-required` (verify with a passkey, then approve again),
   *   `wrong-number`, `wrong-account`, `far-apart`, `rate-limited`, `qr-*`, …
   */
  async approveQr(token, { matchCode, allowPasskey } = {}) {
    await this._post('/qr/approve', { token, matchCode, allowPasskey });
  }

  /**
   * Phone: deny a claimed code; nobody is signed in on the computer.
   *
   * @param {string} token
   * @returns {Promise<void>}
   * @throws {HandoffError} `qr-*`, …
   */
  async denyQr(token) {
    await this._post('/qr/deny', { token });
  }

  /**
   * Ask for a one-time code by email (PRODUCT §7). The answer is the same whether or not
   * the identifier has an account; the code arrives only when it does.
   *
   * @param {{identifier: string, journeyId?: string}} params
   * @returns {Promise<{attemptId: string, journeyId: string, expiresIn: number}>}
   * @throws {HandoffError} `email-disabled`, `invalid-identifier`, `rate-limited`, …
   */
  async startEmailCode({ identifier, journeyId }) {
    return this._post('/email-code/start', { identifier, journeyId });
  }

  /**
   * How the mail of an email code is going: `queued`, `retrying`, `sent` or `failed`.
   *
   * @param {string} attemptId
   * @returns {Promise<'queued'|'retrying'|'sent'|'failed'>}
   */
  async emailCodeDelivery(attemptId) {
    return (await this._request('GET', `/email-code/${encodeURIComponent(attemptId)}`)).delivery;
  }

  /**
   * Sign in with the code from the mail: a recovery session (it may add a passkey on this
   * device; other sensitive actions need a passkey check here first).
   *
   * @param {string} attemptId from {@link Handoff#startEmailCode}
   * @param {string} code the 6 digits
   * @returns {Promise<{userId: string, identifier: string, journeyId: string}>}
   * @throws {HandoffError} `code-wrong` (with `triesLeft`), `too-many-tries`, `code-expired`, …
   */
  async finishEmailCode(attemptId, code) {
    return this._post('/email-code/finish', { attemptId, code });
  }

  /**
   * Sign in with one of the account's recovery codes: a recovery session.
   *
   * @param {{identifier: string, code: string, journeyId?: string}} params
   * @returns {Promise<{userId: string, identifier: string, journeyId: string, codesLeft: number}>}
   * @throws {HandoffError} `code-wrong`, `rate-limited`, …
   */
  async redeemRecoveryCode({ identifier, code, journeyId }) {
    return this._post('/recovery-codes/redeem', { identifier, code, journeyId });
  }

  /**
   * Signed in: ten new recovery codes, shown once (earlier ones stop working). Needs a
   * recent passkey check on this device (use with {@link Handoff#withStepUp}).
   *
   * @returns {Promise<string[]>}
   */
  async makeRecoveryCodes() {
    return (await this._post('/recovery-codes')).codes;
  }

  /**
   * Signed in: how many unused recovery codes the account has.
   *
   * @returns {Promise<number>}
   */
  async recoveryCodesLeft() {
    return (await this._request('GET', '/recovery-codes')).codesLeft;
  }

  /**
   * Signed-in browser: enter (typed) or scan a device's code (RFC 8628) and get what to
   * show. The first browser to do so owns the confirmation; any other is refused.
   *
   * @param {string} userCode as the device shows it, e.g. `BCDF-GHJK`
   * @param {{via?: 'typed'|'scanned'}} [options] `scanned` when the code came from the QR
   * @returns {Promise<DeviceClaim>}
   * @throws {HandoffError} `not-signed-in`, `invalid-user-code`, `device-code-not-found`,
   *   `device-code-expired`, `device-code-claimed`, `rate-limited`, …
   */
  async claimDevice(userCode, { via = 'typed' } = {}) {
    return this._post('/device/claim', { userCode, via });
  }

  /**
   * Signed-in browser: approve the device sign-in it claimed.
   *
   * @param {string} userCode
   * @param {{pick?: string}} [options] for a scanned code, the code picked among the choices
   * @returns {Promise<void>}
   * @throws {HandoffError} `reauth-required` (verify with a passkey, then approve again),
   *   `wrong-code` (the sign-in is stopped), `pick-required`, `device-*`, …
   */
  async approveDevice(userCode, { pick } = {}) {
    await this._post('/device/approve', { userCode, pick });
  }

  /**
   * Signed-in browser: deny the device sign-in it claimed.
   *
   * @param {string} userCode
   * @returns {Promise<void>}
   */
  async denyDevice(userCode) {
    await this._post('/device/deny', { userCode });
  }

  /**
   * Records a product event of a journey (PRODUCT.md §4.2), e.g. `qr.shown` or
   * `confirmation.completed`. It is queued and sent in a batch with the others (see
   * `events.js`): this returns at once, never throws and never delays a sign-in, whatever
   * the events endpoint does. Without a `journeyId`, or with `events: false`, nothing is
   * sent. The SDK records the steps of its own sign-ins itself; this is for the rest.
   *
   * @param {string} name canonical event name (lower case, `a-z 0-9 . _ -`)
   * @param {{journeyId?: string, device?: 'desktop'|'mobile', flow?: string, attrs?: object, ts?: number}} [event]
   *   `device` defaults to this browser's (`mobile` from Client Hints or the User-Agent);
   *   `flow` is one of `passkey-local`, `cross-device`, `qr-approval`, `fallback` (a
   *   decision verdict is mapped to its flow); `attrs` at most 4 KiB of JSON; `ts` in
   *   milliseconds since the epoch, default now.
   */
  track(name, { journeyId, device, flow, attrs, ts } = {}) {
    this._record(name, { journeyId, device, flow, attrs, ts });
  }

  /**
   * Sends the queued product events now instead of at the next batch, and resolves when
   * the server has answered: with the number of events still waiting (0 when all were
   * delivered or dropped as invalid; more when the endpoint failed and they wait for a
   * retry). Never rejects. For tests, and for pages about to navigate on their own.
   *
   * @returns {Promise<number>}
   */
  flushEvents() {
    if (!this._events) return Promise.resolve(0);
    return this._events.flush().catch(() => 0);
  }

  /**
   * Says that a journey's sign-in finished (a session was established), so hiding the page
   * afterwards is no longer recorded for it (`page.hidden` / `page.visible`). The SDK calls
   * it after its own sign-ins; call it when your code finishes one another way.
   *
   * @param {string} journeyId
   */
  endJourney(journeyId) {
    try {
      this._events?.endJourney(journeyId);
    } catch {
      // events are best effort
    }
  }

  /** @private Queue a product event; never throws. */
  _record(name, fields) {
    try {
      this._events?.record(name, fields);
    } catch {
      // events are best effort
    }
  }

  /** @private */
  _post(path, body, signal, details) {
    return this._request('POST', path, body, signal, details);
  }

  /** @private */
  async _request(method, path, body, signal, details = {}) {
    const init = {
      method,
      credentials: this._credentials,
      headers: { accept: 'application/json' },
    };
    if (body !== undefined) {
      init.headers['content-type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    if (signal) init.signal = signal;
    let response;
    try {
      response = await this._fetch(`${this.baseUrl}${API}${path}`, init);
    } catch (error) {
      if (error?.name === 'AbortError') {
        throw new HandoffError('AbortError', 'The sign-in was aborted.', { ...details, cause: error });
      }
      throw new HandoffError('network-error', 'Could not reach the sign-in server. Check your connection and try again.', {
        ...details,
        cause: error,
      });
    }
    const text = await response.text();
    let json;
    if (text) {
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
    }
    if (!response.ok) {
      const err = json?.error;
      const code = typeof err?.code === 'string' ? err.code : `http-${response.status}`;
      const message =
        typeof err?.message === 'string' ? err.message : `The server answered ${response.status} ${response.statusText}`.trim();
      const retryAfter = Number(response.headers?.get?.('retry-after')) || undefined;
      const triesLeft = Number.isInteger(err?.triesLeft) ? err.triesLeft : undefined;
      throw new HandoffError(code, message, { ...details, status: response.status, retryAfter, triesLeft });
    }
    return json;
  }
}

// ---- WebAuthn helpers --------------------------------------------------------

/** Run a decoder from encoding.js; its EncodingError becomes the SDK's `bad-response`. */
function decoding(decode, value) {
  try {
    return decode(value);
  } catch (error) {
    if (error instanceof EncodingError) throw new HandoffError('bad-response', error.message, { cause: error });
    throw error;
  }
}

/**
 * Decode base64url (padded or not; plain base64 is accepted too).
 * @param {string} text
 * @returns {ArrayBuffer}
 * @throws {HandoffError} `bad-response` when `text` is not base64url
 */
export function fromBase64url(text) {
  return decoding(decodeBase64url, text);
}

function parseCreationOptions(json) {
  return decoding(decodeCreationOptions, json);
}

function parseRequestOptions(json) {
  return decoding(decodeRequestOptions, json);
}

function requireWebAuthn() {
  if (typeof globalThis.PublicKeyCredential === 'undefined' || !globalThis.navigator?.credentials) {
    throw new HandoffError('unsupported', 'This browser does not support passkeys.');
  }
}

function throwIfAborted(signal) {
  if (signal?.aborted) throw new HandoffError('AbortError', 'The sign-in was aborted.');
}

function now() {
  return globalThis.performance?.now?.() ?? Date.now();
}

/** Call an optional static WebAuthn query; `undefined` when it is missing or fails ("unknown"). */
async function ask(target, method) {
  if (typeof target?.[method] !== 'function') return undefined;
  try {
    return await target[method]();
  } catch {
    return undefined;
  }
}

/**
 * User-Agent Client Hints, high-entropy values included, or `undefined` when the browser has
 * none or does not answer within {@link CLIENT_HINTS_TIMEOUT_MS}. Empty strings (no model on a
 * desktop, no version on Linux) are left out: they say nothing.
 */
async function userAgentHints() {
  const uad = globalThis.navigator?.userAgentData;
  if (!uad) return undefined;
  let values;
  if (typeof uad.getHighEntropyValues === 'function') {
    let timer;
    try {
      values = await Promise.race([
        uad.getHighEntropyValues(['platform', 'platformVersion', 'model', 'formFactors', 'mobile']),
        new Promise((resolve) => {
          timer = setTimeout(() => resolve(undefined), CLIENT_HINTS_TIMEOUT_MS);
        }),
      ]);
    } catch {
      values = undefined;
    } finally {
      clearTimeout(timer);
    }
  }
  // Without the high-entropy answer, the low-entropy values are still there synchronously.
  values = values ?? { platform: uad.platform, mobile: uad.mobile };
  const out = {};
  for (const key of ['platform', 'platformVersion', 'model']) {
    if (typeof values[key] === 'string' && values[key] !== '') out[key] = values[key];
  }
  if (typeof values.mobile === 'boolean') out.mobile = values.mobile;
  if (Array.isArray(values.formFactors) && values.formFactors.length) {
    out.formFactors = values.formFactors.filter((f) => typeof f === 'string');
  }
  return Object.keys(out).length ? out : undefined;
}

/** Run a WebAuthn call and turn its DOMException into a HandoffError. */
async function webauthn(call, details = {}) {
  let credential;
  try {
    credential = await call();
  } catch (error) {
    const code = typeof error?.name === 'string' && error.name !== 'Error' ? error.name : 'UnknownError';
    throw new HandoffError(code, error?.message || 'The passkey operation failed.', { ...details, cause: error });
  }
  if (!credential) {
    throw new HandoffError('NotAllowedError', 'No passkey was returned.', details);
  }
  return credential;
}

/** WebAuthn Signal API, best effort: a browser without it, or a refusal, is not an error. */
async function signalUnknown(rpId, credentialId) {
  const PKC = globalThis.PublicKeyCredential;
  if (!rpId || !credentialId || typeof PKC?.signalUnknownCredential !== 'function') return;
  try {
    await PKC.signalUnknownCredential({ rpId, credentialId });
  } catch {
    // ignore
  }
}

// ---- first-party hints -------------------------------------------------------

function rememberCredential(credentialId) {
  if (credentialId) storageSet(LAST_CREDENTIAL_KEY, credentialId);
}

function rememberRpId(rpId) {
  if (rpId) storageSet(RP_ID_KEY, rpId);
}

function storageGet(key) {
  try {
    return globalThis.localStorage?.getItem(key) ?? null;
  } catch {
    return null; // storage disabled (privacy mode, sandboxed frame)
  }
}

function storageSet(key, value) {
  try {
    globalThis.localStorage?.setItem(key, value);
  } catch {
    // storage disabled: the hint is simply not kept
  }
}

function storageRemove(key) {
  try {
    globalThis.localStorage?.removeItem(key);
  } catch {
    // ignore
  }
}
