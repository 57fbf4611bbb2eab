/**
 * node-rp — the example from the README's "Use it for your app" section: a tiny web app that
 * signs people in with Handoff over OpenID Connect (authorization code flow with PKCE S256,
 * state and nonce), written with `openid-client` and `node:http` only. The browser test
 * `e2e/tests/oidc.test.mjs` starts it and drives it through Handoff's sign-in and consent.
 *
 *   HANDOFF_ISSUER=http://localhost:8080 CLIENT_ID=… CLIENT_SECRET=… node server.mjs
 *
 * Env: HANDOFF_ISSUER and CLIENT_ID (required), CLIENT_SECRET (leave it out for a public
 * client: PKCE only), PORT (3000), APP_URL (http://localhost:PORT; `${APP_URL}/callback` is
 * the redirect URI to register, `${APP_URL}/` the post-logout redirect URI).
 *
 * Sessions live in memory (a Map keyed by a random HttpOnly cookie): fine for an example,
 * not for several processes. Every error becomes a 400 page with `<p id="error">`.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import * as client from 'openid-client';

const PORT = Number(process.env.PORT || 3000);
const APP_URL = (process.env.APP_URL || `http://localhost:${PORT}`).replace(/\/+$/, '');
const { HANDOFF_ISSUER, CLIENT_ID, CLIENT_SECRET } = process.env;
if (!HANDOFF_ISSUER || !CLIENT_ID) {
  console.error('Set HANDOFF_ISSUER and CLIENT_ID (and CLIENT_SECRET for a confidential client); see README.md.');
  process.exit(1);
}
const REDIRECT_URI = `${APP_URL}/callback`;

// Discovery (/.well-known/openid-configuration) once, on first use; a failure is retried later.
// Over plain http (a local Handoff) TLS vouches for nothing, so the ID token's signature is
// checked against the issuer's JWKS as well (enableNonRepudiationChecks).
let discovered;
function config() {
  const auth = CLIENT_SECRET ? client.ClientSecretBasic(CLIENT_SECRET) : client.None();
  const execute = [client.enableNonRepudiationChecks];
  if (new URL(HANDOFF_ISSUER).protocol === 'http:') execute.push(client.allowInsecureRequests);
  discovered ??= client.discovery(new URL(HANDOFF_ISSUER), CLIENT_ID, CLIENT_SECRET, auth, { execute }).catch((error) => {
    discovered = undefined; // try again on the next request
    throw error;
  });
  return discovered;
}

// ---- sessions: a random id in an HttpOnly cookie, the data in memory ------------------
const COOKIE = 'node_rp_session';
const sessions = new Map();
function newSession(res) {
  const id = randomBytes(18).toString('base64url');
  sessions.set(id, {});
  res.setHeader('set-cookie', `${COOKIE}=${id}; Path=/; HttpOnly; SameSite=Lax`);
  return sessions.get(id);
}
function sessionOf(req) {
  const id = new RegExp(`(?:^|;\\s*)${COOKIE}=([\\w-]+)`).exec(req.headers.cookie ?? '')?.[1];
  return { id, data: sessions.get(id) };
}

// ---- pages ---------------------------------------------------------------------------
const esc = (value) => String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const json = (value) => esc(JSON.stringify(value, null, 2));
function page(res, status, body) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(`<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Example app</title></head>
<body><main><h1>Example app</h1>${body}</main></body></html>`);
}
const signedIn = (s) => `<p>Signed in as <strong>${esc(s.claims.preferred_username ?? s.claims.sub)}</strong>.</p>
<h2>ID token claims (verified)</h2><pre id="claims">${json(s.claims)}</pre>
<h2>UserInfo</h2><pre id="userinfo">${json(s.userinfo)}</pre><p><a href="/logout">Sign out</a></p>`;
const redirect = (res, location) => res.writeHead(302, { location, 'cache-control': 'no-store' }).end();

// ---- routes --------------------------------------------------------------------------
const routes = {
  '/': async (req, res) => {
    const s = sessionOf(req).data;
    page(res, 200, s?.claims ? signedIn(s) : '<p>You are signed out.</p><p><a href="/login">Sign in with Handoff</a></p>');
  },

  '/login': async (req, res) => {
    const cfg = await config();
    const pending = { verifier: client.randomPKCECodeVerifier(), state: client.randomState(), nonce: client.randomNonce() };
    const url = client.buildAuthorizationUrl(cfg, {
      redirect_uri: REDIRECT_URI,
      scope: 'openid profile email',
      code_challenge: await client.calculatePKCECodeChallenge(pending.verifier),
      code_challenge_method: 'S256',
      state: pending.state,
      nonce: pending.nonce,
    });
    (sessionOf(req).data ?? newSession(res)).pending = pending;
    redirect(res, url.href);
  },

  '/callback': async (req, res) => {
    const { id, data } = sessionOf(req);
    const pending = data?.pending;
    if (!pending) throw new Error('No sign-in was started in this browser. Start again from the home page.');
    delete data.pending; // one try per /login
    const cfg = await config();
    const tokens = await client.authorizationCodeGrant(cfg, new URL(req.url, APP_URL), {
      pkceCodeVerifier: pending.verifier,
      expectedState: pending.state,
      expectedNonce: pending.nonce,
    });
    const claims = tokens.claims();
    const userinfo = await client.fetchUserInfo(cfg, tokens.access_token, claims.sub);
    sessions.delete(id); // a new session id once signed in
    const s = Object.assign(newSession(res), { claims, userinfo, idToken: tokens.id_token });
    page(res, 200, signedIn(s));
  },

  '/logout': async (req, res) => {
    const { id, data } = sessionOf(req);
    sessions.delete(id);
    if (!data?.idToken) return redirect(res, '/');
    const url = client.buildEndSessionUrl(await config(), { id_token_hint: data.idToken, post_logout_redirect_uri: `${APP_URL}/` });
    redirect(res, url.href);
  },
};

// "access_denied: …" from Handoff, else the library's message (and the network error's code).
const describe = (e) =>
  [e?.error, e?.error_description ?? e?.message ?? String(e)].filter(Boolean).join(': ') + (e?.cause?.code ? ` (${e.cause.code})` : '');

http
  .createServer(async (req, res) => {
    const route = routes[new URL(req.url, APP_URL).pathname];
    if (!route) return page(res, 404, '<p>Not found. <a href="/">Home</a></p>');
    try {
      await route(req, res);
    } catch (error) {
      console.error(`${req.method} ${req.url}:`, error);
      if (!res.headersSent) page(res, 400, `<p id="error" role="alert">${esc(describe(error))}</p><p><a href="/">Back to the home page</a></p>`);
    }
  })
  .listen(PORT, () => console.log(`node-rp listening on ${APP_URL}`));
