// The benchmark's peer: a minimal Node server with the same four passkey endpoints and JSON
// shapes as Handoff (API-DRAFT.md), built the way a Node team would build it with
// @simplewebauthn/server. It does the same work per sign-in as Handoff: reads the account and
// its credentials at start and stores the challenge in the database; at finish takes the
// ceremony (single-use), reads the credential, verifies the assertion, records the use
// (counter compare-and-set, last used), writes a session and sets the session cookie.
//
// Environment: PEER_LISTEN (127.0.0.1:8090), PEER_ORIGIN (http://localhost:8090), PEER_RP_ID
// (localhost), PEER_DATABASE_URL (postgres://… selects PostgreSQL) else PEER_SQLITE_PATH
// (./peer.sqlite3).

import http from 'node:http';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import {
  generateAuthenticationOptions,
  generateRegistrationOptions,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
} from '@simplewebauthn/server';
import { openPostgres, openSqlite } from './db.js';

const listen = process.env.PEER_LISTEN || '127.0.0.1:8090';
const [host, portText] = [listen.slice(0, listen.lastIndexOf(':')), listen.slice(listen.lastIndexOf(':') + 1)];
const origin = process.env.PEER_ORIGIN || `http://localhost:${portText}`;
const rpID = process.env.PEER_RP_ID || 'localhost';
const rpName = process.env.PEER_RP_NAME || 'Handoff bench peer';
const secure = origin.startsWith('https:');
const CEREMONY_MS = 5 * 60 * 1000;
const SESSION_MS = 30 * 24 * 3600 * 1000;

const db = process.env.PEER_DATABASE_URL
  ? await openPostgres(process.env.PEER_DATABASE_URL)
  : await openSqlite(process.env.PEER_SQLITE_PATH || './peer.sqlite3');

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}
const bad = (code, message) => new ApiError(400, code, message);

function identifierOf(body) {
  const id = typeof body.identifier === 'string' ? body.identifier.trim() : '';
  if (id.length < 1 || id.length > 256) throw bad('invalid-identifier', 'The identifier must be 1 to 256 characters.');
  return id.toLowerCase();
}

async function startSession(res, req, userId, now) {
  const token = randomBytes(32).toString('base64url');
  await db.createSession({
    tokenDigest: createHash('sha256').update(token).digest('base64url'),
    userId,
    createdAt: now,
    expiresAt: now + SESSION_MS,
    verifiedAt: now,
    userAgent: req.headers['user-agent'] || null,
    ip: req.socket.remoteAddress || null,
  });
  res.setHeader(
    'Set-Cookie',
    `handoff_session=${token}; Path=/; HttpOnly; SameSite=Lax; Max-Age=${SESSION_MS / 1000}${secure ? '; Secure' : ''}`,
  );
}

async function takeCeremony(body, kind) {
  if (typeof body.ceremonyId !== 'string' || !body.credential) throw bad('invalid-request', 'ceremonyId and credential are required.');
  const c = await db.takeCeremony(body.ceremonyId, kind);
  if (!c) throw new ApiError(404, 'ceremony-not-found', 'This ceremony is unknown or was already used.');
  if (c.expiresAt < Date.now()) throw new ApiError(410, 'ceremony-expired', 'This ceremony expired; start again.');
  return JSON.parse(c.payload);
}

const routes = {
  async 'POST /api/v1/passkeys/registration/start'(body) {
    const identifier = identifierOf(body);
    if (await db.findUser(identifier)) throw new ApiError(409, 'identifier-taken', 'This identifier already has an account.');
    const userId = randomUUID();
    const displayName = typeof body.displayName === 'string' && body.displayName ? body.displayName : identifier;
    const publicKey = await generateRegistrationOptions({
      rpName,
      rpID,
      userName: identifier,
      userID: new TextEncoder().encode(userId),
      userDisplayName: displayName,
      attestationType: 'none',
      authenticatorSelection: { residentKey: 'required', requireResidentKey: true, userVerification: 'required' },
      supportedAlgorithmIDs: [-7],
      timeout: CEREMONY_MS,
    });
    const ceremonyId = randomUUID();
    const now = Date.now();
    const payload = JSON.stringify({ challenge: publicKey.challenge, userId, identifier, displayName });
    await db.putCeremony(ceremonyId, 'registration', payload, now, now + CEREMONY_MS);
    return { ceremonyId, publicKey };
  },

  async 'POST /api/v1/passkeys/registration/finish'(body, req, res) {
    const state = await takeCeremony(body, 'registration');
    let v;
    try {
      v = await verifyRegistrationResponse({
        response: body.credential,
        expectedChallenge: state.challenge,
        expectedOrigin: origin,
        expectedRPID: rpID,
        requireUserVerification: true,
        supportedAlgorithmIDs: [-7],
      });
    } catch (e) {
      throw bad('verification-failed', e.message);
    }
    if (!v.verified) throw bad('verification-failed', 'The passkey could not be verified.');
    const info = v.registrationInfo;
    const now = Date.now();
    await db.createWithPasskey(
      { id: state.userId, identifier: state.identifier, displayName: state.displayName, createdAt: now },
      {
        id: info.credential.id,
        userId: state.userId,
        publicKey: info.credential.publicKey,
        counter: info.credential.counter,
        transports: body.credential.response?.transports || [],
        aaguid: info.aaguid,
        be: info.credentialDeviceType === 'multiDevice',
        bs: info.credentialBackedUp,
        createdAt: now,
      },
    );
    await startSession(res, req, state.userId, now);
    return { userId: state.userId, credentialId: info.credential.id, provider: { name: 'unknown', aaguid: info.aaguid } };
  },

  async 'POST /api/v1/login/start'(body) {
    const identifier = body.identifier === undefined ? null : identifierOf(body);
    let allowCredentials = [];
    let userId = null;
    if (identifier) {
      const user = await db.findUser(identifier);
      if (user) {
        userId = user.id;
        allowCredentials = (await db.credentialsOf(user.id)).map((c) => ({ id: c.id, transports: c.transports }));
      }
    }
    const publicKey = await generateAuthenticationOptions({ rpID, allowCredentials, userVerification: 'required', timeout: CEREMONY_MS });
    const ceremonyId = randomUUID();
    const now = Date.now();
    await db.putCeremony(ceremonyId, 'authentication', JSON.stringify({ challenge: publicKey.challenge, userId }), now, now + CEREMONY_MS);
    return {
      journeyId: typeof body.journeyId === 'string' ? body.journeyId : randomUUID(),
      decision: { verdict: 'local', reasons: [], confidence: 1, alternatives: [], retry: { maxAttempts: 1, then: 'fallback' } },
      ceremonyId,
      publicKey,
    };
  },

  async 'POST /api/v1/login/finish'(body, req, res) {
    const state = await takeCeremony(body, 'authentication');
    const cred = typeof body.credential.id === 'string' ? await db.findCredential(body.credential.id) : null;
    if (!cred || (state.userId && state.userId !== cred.userId)) throw new ApiError(401, 'unknown-credential', 'This passkey is not registered here.');
    let v;
    try {
      v = await verifyAuthenticationResponse({
        response: body.credential,
        expectedChallenge: state.challenge,
        expectedOrigin: origin,
        expectedRPID: rpID,
        credential: { id: cred.id, publicKey: cred.publicKey, counter: cred.counter, transports: cred.transports },
        requireUserVerification: true,
      });
    } catch (e) {
      throw bad('verification-failed', e.message);
    }
    if (!v.verified) throw bad('verification-failed', 'The passkey could not be verified.');
    const now = Date.now();
    const info = v.authenticationInfo;
    if (!(await db.recordUse(cred.id, info.newCounter, now, info.credentialBackedUp))) {
      throw new ApiError(403, 'counter-regression', 'The signature counter did not advance.');
    }
    await startSession(res, req, cred.userId, now);
    return { userId: cred.userId, identifier: cred.identifier };
  },
};

function send(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

const server = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/healthz') {
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.end('ok');
    return;
  }
  const route = routes[`${req.method} ${req.url}`];
  if (!route) {
    send(res, 404, { error: { code: 'not-found', message: 'No such endpoint.' } });
    return;
  }
  const chunks = [];
  let size = 0;
  req.on('data', (c) => {
    size += c.length;
    if (size > 64 * 1024) req.destroy();
    else chunks.push(c);
  });
  req.on('end', async () => {
    try {
      let body;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        throw bad('invalid-json', 'The body is not JSON.');
      }
      if (!body || typeof body !== 'object') throw bad('invalid-json', 'The body is not a JSON object.');
      send(res, 200, await route(body, req, res));
    } catch (e) {
      if (e instanceof ApiError) send(res, e.status, { error: { code: e.code, message: e.message } });
      else {
        console.error(e);
        send(res, 500, { error: { code: 'internal', message: 'Something went wrong on our side.' } });
      }
    }
  });
});
server.keepAliveTimeout = 65_000;
server.listen(Number(portText), host, () => {
  console.error(`peer listening on http://${listen} (${db.kind}, origin ${origin})`);
});
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    server.close();
    server.closeAllConnections?.();
    db.close().finally(() => process.exit(0));
  });
}
