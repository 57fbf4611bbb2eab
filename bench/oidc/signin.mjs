#!/usr/bin/env node
// handoff-bench-oidc sign-in driver: whole passkey sign-ins against Handoff, closed loop, one
// JSON line per mode on stdout, beside exchange.mjs's token-endpoint lines.
//
// Setup (NOT measured): signs --users people up with software passkeys (session.mjs's signUp,
// softkey.mjs's createCredential), keeping each passkey. Then, per mode (--modes, in order):
// --warmup unmeasured sign-ins, a snapshot of the CPU counters, --signins measured sign-ins
// with --concurrency closed-loop workers (each starts its next sign-in as soon as its previous
// one is done), a second snapshot. Sign-ins go round-robin over the people. Each sign-in starts
// with an empty cookie jar (a fresh browser) and keeps the cookies the server sets (as a
// browser would) until it ends:
//
//   plain  POST /api/v1/login/start {identifier} -> 200 {ceremonyId, publicKey}
//          POST /api/v1/login/finish {ceremonyId, credential} -> 200, sets handoff_session
//   oidc   GET  /oauth2/authorize (first-party confidential client, PKCE S256, state, nonce,
//               scope "openid profile email", no session) -> 303 /?request=ID&client=…
//          login/start + login/finish as above (a new session cookie)
//          GET  /oauth2/authorize/continue?request=ID with the session -> 303 to the redirect
//               URI with ?code=…&state=… (state checked, iss checked when present)
//          POST /oauth2/token (client_secret_basic, code, code_verifier, redirect_uri) -> 200
//               with an access_token and an id_token signed with --alg carrying our nonce
//          GET  /oauth2/userinfo (Bearer access token) -> 200 with the id_token's sub
//
// --rate N makes the loop open: sign-in number i starts at i/N s into the window (or as soon as
// a worker is free after that), so the server sees a steady N sign-ins per second
// (bench/webhooks.sh measures webhook delivery lag at a steady rate with it).
//
// A sign-in counts when every step answered as above; its latency is the whole sequence. Any
// other status or shape is an error (sampled on stderr). Server CPU: utime+stime of every
// process of --server-pgid (or --server-pid and its descendants) over the measured window,
// exactly as exchange.mjs reads it; --db-comm NAME reports processes named NAME apart.
// serverCpuMsPerSignIn is also written as serverCpuMsPerExchange (the column
// bench/oidc_report.py and bench/oidc.sh's summary read) and `grant` is signin-<mode>.
//
//   node bench/oidc/signin.mjs --url http://127.0.0.1:PORT --origin http://localhost:PORT \
//     --client-id ID --client-secret SECRET --redirect-uri http://localhost:9/cb --alg ES256 \
//     --modes plain,oidc --signins 2000 --server-pgid PGID

import { createHash, randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { formEncode, percentile, round2, round3, snapshotter } from './measure.mjs';
import { signUp, USER_AGENT } from './session.mjs';
import { getAssertion } from './softkey.mjs';

const USAGE = `usage: signin.mjs --url http://127.0.0.1:PORT [--origin http://localhost:PORT]
  [--modes plain,oidc] [--alg ES256] [--client-id ID --client-secret SECRET (oidc)]
  [--redirect-uri http://localhost:9/cb] [--scope "openid profile email"]
  [--users 200] [--signins 2000] [--warmup 200] [--concurrency 8] [--server handoff]
  [--server-pgid PGID | --server-pid PID] [--db-comm postgres] [--clk-tck 100]`;

const { values: opt } = parseArgs({
  options: {
    url: { type: 'string' },
    origin: { type: 'string' },
    modes: { type: 'string', default: 'plain,oidc' },
    alg: { type: 'string', default: 'ES256' },
    server: { type: 'string', default: 'handoff' },
    'client-id': { type: 'string' },
    'client-secret': { type: 'string' },
    'redirect-uri': { type: 'string', default: 'http://localhost:9/cb' },
    scope: { type: 'string', default: 'openid profile email' },
    users: { type: 'string', default: '200' },
    signins: { type: 'string', default: '2000' },
    warmup: { type: 'string', default: '200' },
    concurrency: { type: 'string', default: '8' },
    'server-pgid': { type: 'string' },
    'server-pid': { type: 'string' },
    'db-comm': { type: 'string' },
    'clk-tck': { type: 'string', default: '100' },
    rate: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
  strict: true,
});

function die(message) {
  process.stderr.write(`signin.mjs: ${message}\n`);
  process.exit(2);
}
if (opt.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const int = (name, min = 0) => {
  const n = Number(opt[name]);
  if (!Number.isInteger(n) || n < min) die(`--${name} must be an integer >= ${min}`);
  return n;
};
if (!opt.url) die(`--url is required\n${USAGE}`);
const BASE = new URL(opt.url);
const ORIGIN = opt.origin || BASE.origin;
const MODES = opt.modes.split(',').map((m) => m.trim()).filter(Boolean);
for (const m of MODES) if (!['plain', 'oidc'].includes(m)) die(`unknown mode ${m} (plain or oidc)`);
if (MODES.includes('oidc') && (!opt['client-id'] || !opt['client-secret'])) die('mode oidc needs --client-id and --client-secret');
const ALG = opt.alg;
const USERS = int('users', 1);
const SIGNINS = int('signins', 1);
const WARMUP = int('warmup', 0);
const CONCURRENCY = int('concurrency', 1);
const CLK_TCK = int('clk-tck', 1);
const RATE = opt.rate ? int('rate', 1) : undefined;
const SERVER_PGID = opt['server-pgid'] ? Number(opt['server-pgid']) : undefined;
const SERVER_PID = opt['server-pid'] ? Number(opt['server-pid']) : undefined;
const log = (m) => process.stderr.write(`signin.mjs [${opt.server} ${ALG}]: ${m}\n`);

const pool = new Pool(BASE.origin, {
  connections: CONCURRENCY,
  pipelining: 1,
  keepAliveTimeout: 60_000,
  keepAliveMaxTimeout: 600_000,
});

const snapshot = snapshotter({ pgid: SERVER_PGID, pid: SERVER_PID, dbComm: opt['db-comm'] });

// --- endpoints ---------------------------------------------------------------------------------
// From the provider's metadata, rebased on --url (the issuer says http://localhost:PORT).
let authorizeUrl;
let tokenUrl;
let userinfoUrl;
let issuer;
if (MODES.includes('oidc')) {
  const res = await fetch(new URL('/.well-known/openid-configuration', BASE));
  if (res.status !== 200) die(`discovery: ${res.status}`);
  const meta = await res.json();
  issuer = meta.issuer;
  const rebase = (u) => {
    const x = new URL(u);
    return new URL(x.pathname + x.search, BASE.origin);
  };
  authorizeUrl = rebase(meta.authorization_endpoint);
  tokenUrl = rebase(meta.token_endpoint);
  userinfoUrl = rebase(meta.userinfo_endpoint);
}
const BASIC = opt['client-id']
  && `Basic ${Buffer.from(`${formEncode(opt['client-id'])}:${formEncode(opt['client-secret'])}`).toString('base64')}`;
const REDIRECT = new URL(opt['redirect-uri']);

// --- one browser: a cookie jar, and requests that keep it -----------------------------------------
class StepError extends Error {}

class Browser {
  constructor() {
    this.jar = new Map();
    this.steps = [];
  }

  cookieHeader() {
    return [...this.jar].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  keep(setCookie) {
    for (const c of [setCookie ?? []].flat()) {
      const pair = c.split(';')[0];
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      if (!value || /;\s*max-age=0/i.test(c)) this.jar.delete(name);
      else this.jar.set(name, value);
    }
  }

  // One request; records its time under `step`. Returns { status, headers, text }.
  async send(step, path, { method = 'GET', headers = {}, body, cookies = true } = {}) {
    const h = { 'user-agent': USER_AGENT, ...headers };
    if (cookies && this.jar.size) h.cookie = this.cookieHeader();
    const t0 = process.hrtime.bigint();
    const res = await pool.request({ path, method, headers: h, body });
    const text = await res.body.text();
    this.steps.push([step, Number(process.hrtime.bigint() - t0) / 1000]);
    if (cookies) this.keep(res.headers['set-cookie']);
    return { status: res.statusCode, headers: res.headers, text };
  }

  async postJson(step, path, value) {
    const r = await this.send(step, path, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json', origin: ORIGIN },
      body: JSON.stringify(value),
    });
    let json;
    try {
      json = JSON.parse(r.text);
    } catch {
      json = undefined;
    }
    return { ...r, json };
  }
}

const expect = (cond, what) => {
  if (!cond) throw new StepError(what);
};
const b64sha256 = (s) => createHash('sha256').update(s).digest('base64url');
const jwtPart = (jwt, i) => {
  try {
    return JSON.parse(Buffer.from(jwt.split('.')[i], 'base64url').toString());
  } catch {
    return undefined;
  }
};

// login/start + login/finish; leaves the session cookie in the browser's jar.
async function passkeySignIn(b, user) {
  const start = await b.postJson('login/start', '/api/v1/login/start', { identifier: user.identifier });
  expect(start.status === 200 && start.json?.ceremonyId && start.json?.publicKey,
    `login/start: ${start.status} ${start.text.slice(0, 200)}`);
  const credential = getAssertion(start.json.publicKey, ORIGIN, user.key);
  const finish = await b.postJson('login/finish', '/api/v1/login/finish', { ceremonyId: start.json.ceremonyId, credential });
  const session = [...b.jar.keys()].some((k) => /^(__Host-)?handoff_session$/.test(k));
  expect(finish.status === 200 && session, `login/finish: ${finish.status} session=${session} ${finish.text.slice(0, 200)}`);
}

async function oidcSignIn(b, user) {
  const verifier = randomBytes(32).toString('base64url');
  const state = randomBytes(12).toString('base64url');
  const nonce = randomBytes(12).toString('base64url');
  const q = new URLSearchParams({
    response_type: 'code',
    client_id: opt['client-id'],
    redirect_uri: opt['redirect-uri'],
    scope: opt.scope,
    state,
    nonce,
    code_challenge: b64sha256(verifier),
    code_challenge_method: 'S256',
  });
  // 1. The application sends the browser to the authorization endpoint; no session yet.
  const auth = await b.send('authorize', `${authorizeUrl.pathname}?${q}`, { headers: { accept: 'text/html' } });
  const toPage = typeof auth.headers.location === 'string' && new URL(auth.headers.location, BASE);
  const request = toPage && toPage.searchParams.get('request');
  expect(auth.status === 303 && toPage.pathname === '/' && request,
    `authorize: expected 303 to /?request=…, got ${auth.status} ${auth.headers.location ?? ''}`);
  // 2. The sign-in page: a passkey sign-in.
  await passkeySignIn(b, user);
  // 3. The page hands back to the authorization endpoint, which redirects with a code.
  const cont = await b.send('authorize/continue', `/oauth2/authorize/continue?request=${encodeURIComponent(request)}`,
    { headers: { accept: 'text/html' } });
  const back = typeof cont.headers.location === 'string' && new URL(cont.headers.location, BASE);
  const code = back && back.searchParams.get('code');
  expect(cont.status === 303 && back.origin + back.pathname === REDIRECT.origin + REDIRECT.pathname && code,
    `authorize/continue: expected 303 to ${opt['redirect-uri']} with a code, got ${cont.status} ${cont.headers.location ?? ''}`);
  expect(back.searchParams.get('state') === state, `authorize/continue: state mismatch in ${cont.headers.location}`);
  expect(!back.searchParams.has('iss') || back.searchParams.get('iss') === issuer,
    `authorize/continue: iss ${back.searchParams.get('iss')} is not ${issuer}`);
  // 4. The application's back end exchanges the code (no browser cookies).
  const tok = await b.send('token', tokenUrl.pathname, {
    method: 'POST',
    cookies: false,
    headers: { authorization: BASIC, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: opt['redirect-uri'] }).toString(),
  });
  expect(tok.status === 200, `token: ${tok.status} ${tok.text.slice(0, 200)}`);
  const t = JSON.parse(tok.text);
  expect(typeof t.access_token === 'string' && typeof t.id_token === 'string', 'token: no access_token or id_token');
  const alg = jwtPart(t.id_token, 0)?.alg;
  expect(alg === ALG, `token: id_token signed with ${alg}, expected ${ALG}`);
  const claims = jwtPart(t.id_token, 1);
  expect(claims?.nonce === nonce, 'token: id_token nonce mismatch');
  // 5. … and asks who signed in.
  const ui = await b.send('userinfo', userinfoUrl.pathname, {
    cookies: false,
    headers: { authorization: `Bearer ${t.access_token}`, accept: 'application/json' },
  });
  expect(ui.status === 200, `userinfo: ${ui.status} ${ui.text.slice(0, 200)}`);
  expect(JSON.parse(ui.text).sub === claims.sub, 'userinfo: sub is not the id_token sub');
}

// --- setup: sign the people up -------------------------------------------------------------------
const prefix = `signin-${randomBytes(4).toString('hex')}`;
const users = new Array(USERS);
const setupStarted = process.hrtime.bigint();
{
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, USERS) }, async () => {
    while (next < USERS) {
      const i = next++;
      const { identifier, key } = await signUp({ url: BASE, origin: ORIGIN, identifier: `${prefix}-${i}@bench.example`, dispatcher: pool });
      users[i] = { identifier, key };
    }
  }));
}
const setupSeconds = Number(process.hrtime.bigint() - setupStarted) / 1e9;
log(`signed up ${USERS} people in ${setupSeconds.toFixed(1)} s`);

// --- the closed loop ------------------------------------------------------------------------------
let turn = 0; // round-robin over the people, across modes

async function runLoop(mode, count) {
  const latencies = [];
  const samples = new Map();
  const stepTotals = new Map();
  let errors = 0;
  let requests = 0;
  let started = 0;
  const begin = process.hrtime.bigint();
  async function worker() {
    while (started < count) {
      started += 1;
      if (RATE) {
        // Open loop: wait for this sign-in's start time.
        const due = begin + BigInt(Math.round(((started - 1) * 1e9) / RATE));
        const waitMs = Number(due - process.hrtime.bigint()) / 1e6;
        if (waitMs > 0) await new Promise((r) => setTimeout(r, waitMs));
      }
      const user = users[turn++ % USERS];
      const b = new Browser();
      const t0 = process.hrtime.bigint();
      let err;
      try {
        if (mode === 'plain') await passkeySignIn(b, user);
        else await oidcSignIn(b, user);
      } catch (e) {
        err = e instanceof StepError ? e.message : `${e?.code || ''} ${e?.message || e}`;
      }
      const t1 = process.hrtime.bigint();
      requests += b.steps.length;
      if (err) {
        errors += 1;
        samples.set(err, (samples.get(err) || 0) + 1);
      } else {
        latencies.push(Number(t1 - t0) / 1000);
        for (const [step, us] of b.steps) stepTotals.set(step, (stepTotals.get(step) || 0) + us);
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, count) }, worker));
  return { latencies, errors, samples, stepTotals, requests };
}


async function measure(mode) {
  if (WARMUP) {
    const warm = await runLoop(mode, WARMUP);
    if (warm.errors) log(`${mode} warm-up errors: ${[...warm.samples.keys()].slice(0, 3).join(' | ')}`);
  }
  const a = snapshot();
  const r = await runLoop(mode, SIGNINS);
  const b = snapshot();
  const seconds = Number(b.at - a.at) / 1e9;
  const lat = Float64Array.from(r.latencies).sort();
  const n = lat.length;
  const tickMs = 1000 / CLK_TCK;
  const stepsMeanMs = {};
  for (const [step, us] of r.stepTotals) stepsMeanMs[step] = round3(us / Math.max(1, n) / 1000);
  const out = {
    server: opt.server,
    alg: ALG,
    grant: `signin-${mode}`,
    mode,
    signins: n,
    errors: r.errors,
    seconds: round2(seconds),
    perSecond: round2(n / seconds),
    p50Ms: round2(percentile(lat, 50)),
    p90Ms: round2(percentile(lat, 90)),
    p99Ms: round2(percentile(lat, 99)),
    maxMs: round2(n ? lat[n - 1] / 1000 : 0),
    concurrency: CONCURRENCY,
    rate: RATE ?? null,
    warmup: WARMUP,
    users: USERS,
    requestsPerSignIn: round2(r.requests / Math.max(1, n + r.errors)),
    stepsMeanMs,
    setupSeconds: round2(setupSeconds),
    loadgenCpuMs: round2((b.self - a.self) * tickMs),
  };
  const machineMs = (b.machine - a.machine) * tickMs;
  out.machineBusyCores = round2(machineMs / 1000 / seconds);
  const dbMs = opt['db-comm'] ? (b.db - a.db) * tickMs : 0;
  if (opt['db-comm']) {
    out.dbCpuMs = round2(dbMs);
    out.dbCpuMsPerSignIn = n ? round3(dbMs / n) : 0;
    out.dbCpuMsPerExchange = out.dbCpuMsPerSignIn;
  }
  if (a.server !== undefined) {
    const ms = (b.server - a.server) * tickMs;
    const others = machineMs - ms - dbMs - (b.self - a.self) * tickMs;
    out.otherCpuCores = round2(Math.max(0, others / 1000 / seconds));
    out.serverCpuMs = round2(ms);
    out.serverCpuMsPerSignIn = n ? round3(ms / n) : 0;
    // The column oidc_report.py and oidc.sh's summary read: here, per sign-in.
    out.serverCpuMsPerExchange = out.serverCpuMsPerSignIn;
    out.serverCpuCores = round2(ms / 1000 / seconds);
  }
  for (const [k, v] of [...r.samples].slice(0, 5)) log(`${mode} error sample (${v}×): ${k}`);
  return out;
}

let failed = false;
try {
  for (const mode of MODES) {
    const line = await measure(mode);
    process.stdout.write(`${JSON.stringify(line)}\n`);
    log(`${mode}: ${line.perSecond} sign-ins/s p50 ${line.p50Ms} ms p99 ${line.p99Ms} ms, server CPU ${line.serverCpuMsPerSignIn ?? '?'} ms/sign-in, ${line.errors} errors`);
    if (line.errors > 0 || line.signins === 0) failed = true;
  }
} catch (e) {
  log(String(e?.stack || e));
  failed = true;
} finally {
  await pool.close();
}
process.exit(failed ? 1 : 0);
