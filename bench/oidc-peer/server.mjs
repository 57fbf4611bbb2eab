// The token-endpoint benchmark's peer: panva's `oidc-provider` (OpenID Certified), set up the
// way Handoff's provider is, so that `bench/oidc.sh` can put the two token endpoints side by
// side with the same driver (`bench/oidc/exchange.mjs`) in the same run.
//
// What is compared is ONLY the provider's token endpoint (POST {issuer}/token): the
// `authorization_code` grant (client_secret_basic, PKCE S256 verified, code consumed once,
// opaque access token and rotating refresh token stored, ID token signed with RS256 or ES256)
// and the `refresh_token` grant (old refresh token consumed, new one stored, new access token
// and ID token).
//
// The provider, configured like Handoff (docs/decisions/0014-oidc-provider.md):
//   - one confidential client, client_secret_basic, redirect_uri http://localhost:9/cb,
//     grant types authorization_code + refresh_token, scopes openid profile email
//     offline_access, ID tokens signed with PEER_ID_TOKEN_ALG (RS256 | ES256);
//   - PKCE required for every client (Handoff requires S256 whenever a code_challenge is
//     sent, and the bench always sends one); rotateRefreshToken: true (every refresh
//     consumes the old token and issues a new one, as Handoff does);
//   - lifetimes as Handoff's defaults: code 60 s, access token 10 min, ID token 1 h,
//     refresh token / grant 30 days;
//   - conformIdTokenClaims: false, so that the ID token from the token endpoint carries the
//     profile and email claims the scopes release (sub, preferred_username, name, email,
//     email_verified, plus auth_time, amr, sid, nonce), as Handoff's ID token does;
//   - keys generated at start: one RSA 2048 and one P-256 signing key in the JWKS;
//   - storage: the library's own in-memory adapter (lib/adapters/memory_adapter.js, the
//     default one) with its LRU made large enough that codes and refresh tokens minted
//     ahead of a run are not evicted before they are used (the default store holds only
//     1000 entries, fewer than one run's pre-minted codes);
//   - NODE_ENV=production behaviour: development interactions are off (no login page is ever
//     needed: codes come from the minting port below).
//
// MINTING (bench-only, NOT part of what is compared): an authorization code normally needs an
// interactive login at the provider. A second, tiny node:http server in this same process (on
// PEER_MINT_LISTEN, a different port from the provider) creates codes and refresh tokens
// directly through the provider's own models (provider.Grant, provider.AuthorizationCode,
// provider.RefreshToken), exactly the records the authorization endpoint would have stored.
// The driver calls it BEFORE the measured window; the CPU it costs is outside the window and
// is not counted against the peer (Handoff's codes are likewise minted before its window).
//   POST /bench/codes?n=N    -> [{"code": "...", "verifier": "..."}]  (PKCE S256 pairs)
//   POST /bench/refresh?n=N  -> [{"refreshToken": "..."}]
//   GET  /healthz            -> ok
//
// Environment: PEER_LISTEN (127.0.0.1:8091), PEER_ISSUER (http://localhost:<port>),
// PEER_MINT_LISTEN (127.0.0.1:8092), PEER_ID_TOKEN_ALG (RS256), PEER_CLIENT_ID (bench-client),
// PEER_CLIENT_SECRET (bench-secret), PEER_REDIRECT_URI (http://localhost:9/cb).

import http from 'node:http';
import { createHash, generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import Provider from 'oidc-provider';
// The library's default in-memory adapter and its LRU (no "exports" map, so deep imports
// resolve); only the store's size differs from the default.
import MemoryAdapter from 'oidc-provider/lib/adapters/memory_adapter.js';
import LRU from 'oidc-provider/lib/helpers/lru.js';

const splitListen = (listen) => [listen.slice(0, listen.lastIndexOf(':')), Number(listen.slice(listen.lastIndexOf(':') + 1))];
const [host, port] = splitListen(process.env.PEER_LISTEN || '127.0.0.1:8091');
const [mintHost, mintPort] = splitListen(process.env.PEER_MINT_LISTEN || '127.0.0.1:8092');
const issuer = process.env.PEER_ISSUER || `http://localhost:${port}`;
const alg = process.env.PEER_ID_TOKEN_ALG || 'RS256';
if (!['RS256', 'ES256'].includes(alg)) throw new Error(`PEER_ID_TOKEN_ALG must be RS256 or ES256, not ${alg}`);
const clientId = process.env.PEER_CLIENT_ID || 'bench-client';
const clientSecret = process.env.PEER_CLIENT_SECRET || 'bench-secret';
const redirectUri = process.env.PEER_REDIRECT_URI || 'http://localhost:9/cb';
const SCOPE = 'openid profile email offline_access';
const DAY = 24 * 3600;

// Signing keys, generated at start: RSA 2048 and P-256.
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
const jwks = {
  keys: [
    { ...rsa, kid: `rsa-${randomUUID()}`, use: 'sig', alg: 'RS256' },
    { ...ec, kid: `ec-${randomUUID()}`, use: 'sig', alg: 'ES256' },
  ],
};

// Accounts, in memory. The bench signs in as one person (as Handoff's side does with one
// session cookie); findAccount reads it per grant like Handoff reads its account row.
const accounts = new Map();
const BENCH_ACCOUNT = 'bench-user-1';
accounts.set(BENCH_ACCOUNT, { identifier: 'bench-user-1@bench.example', displayName: 'Bench User One' });

// One store shared by every model, as the default adapter shares its own.
const store = new LRU({ maxSize: 10_000_000 });

const provider = new Provider(issuer, {
  adapter: (model) => new MemoryAdapter(model, store, 0),
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: alg,
    },
  ],
  jwks,
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  scopes: ['openid', 'profile', 'email', 'offline_access'],
  claims: {
    // auth_time and amr always, as Handoff's ID token has them.
    openid: ['sub', 'auth_time', 'amr'],
    profile: ['preferred_username', 'name'],
    email: ['email', 'email_verified'],
  },
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  rotateRefreshToken: true,
  features: {
    devInteractions: { enabled: false },
    revocation: { enabled: true },
    introspection: { enabled: true },
    userinfo: { enabled: true },
  },
  ttl: {
    AuthorizationCode: 60,
    AccessToken: 600,
    IdToken: 3600,
    RefreshToken: 30 * DAY,
    Grant: 30 * DAY,
    Session: 30 * DAY,
    Interaction: 30 * 60,
  },
  async findAccount(_ctx, sub) {
    const account = accounts.get(sub);
    if (!account) return undefined;
    return {
      accountId: sub,
      async claims() {
        return {
          sub,
          preferred_username: account.identifier,
          name: account.displayName,
          email: account.identifier,
          email_verified: false,
        };
      },
    };
  },
});
provider.proxy = false;

const server = http.createServer(provider.callback());
server.keepAliveTimeout = 65_000;
server.listen(port, host, () => {
  console.error(`oidc peer: issuer ${issuer}, token endpoint ${issuer}/token, ID tokens ${alg}, listening on ${host}:${port}`);
});

// ---------------------------------------------------------------------------------------------
// Bench-only minting (see the header): outside the measured window, not part of the comparison.

const b64sha256 = (s) => createHash('sha256').update(s).digest('base64url');
const AMR = ['pop', 'mfa']; // what Handoff records for a passkey session

async function newGrant(accountId) {
  const grant = new provider.Grant({ accountId, clientId });
  grant.addOIDCScope(SCOPE);
  return grant.save();
}

async function mintCode(accountId) {
  const verifier = randomBytes(32).toString('base64url');
  const grantId = await newGrant(accountId);
  const code = await new provider.AuthorizationCode({
    accountId,
    clientId,
    grantId,
    scope: SCOPE,
    redirectUri,
    codeChallenge: b64sha256(verifier),
    codeChallengeMethod: 'S256',
    nonce: randomBytes(16).toString('base64url'),
    authTime: Math.floor(Date.now() / 1000),
    amr: AMR,
    sid: randomUUID(),
    expiresWithSession: false,
  }).save();
  return { code, verifier };
}

async function mintRefresh(accountId) {
  const grantId = await newGrant(accountId);
  const refreshToken = await new provider.RefreshToken({
    accountId,
    clientId,
    grantId,
    scope: SCOPE,
    authTime: Math.floor(Date.now() / 1000),
    amr: AMR,
    sid: randomUUID(),
    gty: 'authorization_code',
    rotations: 0,
    expiresWithSession: false,
  }).save();
  return { refreshToken };
}

const MAX_MINT = 200_000;
const mint = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://mint');
  const reply = (status, body) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  try {
    if (req.method === 'GET' && url.pathname === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok');
      return;
    }
    const fn = { '/bench/codes': mintCode, '/bench/refresh': mintRefresh }[url.pathname];
    if (req.method !== 'POST' || !fn) return reply(404, { error: 'not found' });
    const n = Number(url.searchParams.get('n') || '1');
    if (!Number.isInteger(n) || n < 1 || n > MAX_MINT) return reply(400, { error: `n must be 1..${MAX_MINT}` });
    const accountId = url.searchParams.get('account') || BENCH_ACCOUNT;
    if (!accounts.has(accountId)) return reply(400, { error: 'unknown account' });
    const out = new Array(n);
    for (let i = 0; i < n; i += 1) out[i] = await fn(accountId);
    reply(200, out);
  } catch (e) {
    console.error('oidc peer: mint failed', e);
    reply(500, { error: String(e?.message || e) });
  }
});
mint.listen(mintPort, mintHost, () => {
  console.error(`oidc peer: bench-only minting on http://${mintHost}:${mintPort} (POST /bench/codes?n=N, /bench/refresh?n=N)`);
});

const stop = () => {
  server.close();
  mint.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
