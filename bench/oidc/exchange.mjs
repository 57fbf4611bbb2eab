#!/usr/bin/env node
// handoff-bench-oidc driver: the token endpoint alone, closed loop, Handoff or the
// oidc-provider peer (bench/oidc-peer), one JSON line per (server, alg, grant) on stdout.
//
// Per grant, per batch:
//   1. mint `warmup + batch` authorization codes with PKCE verifiers (NOT measured):
//        --server peer    : POST --mint-url (the peer's bench-only port, /bench/codes?n=N)
//        --server handoff : GET the authorization endpoint with a signed-in session cookie
//                           (--handoff-cookie) for a first-party client, reading `code` from
//                           the 302/303 Location (see mintHandoffCodes below)
//        or --codes-file FILE (a JSON array [{code, verifier}], one batch only);
//   2. exchange the first `warmup` codes (NOT measured), then read the server's CPU
//      (utime+stime from /proc/<pid>/stat), the machine's busy ticks and our own CPU;
//   3. exchange the remaining `batch` codes with --concurrency workers in a closed loop
//      (each worker sends its next request as soon as its previous answer is in), each code
//      exactly once: grant_type=authorization_code, client_secret_basic, code_verifier,
//      redirect_uri. Every answer must be 200 with an access_token, a refresh_token and an
//      id_token whose JOSE header says --alg; anything else counts as an error;
//   4. when the last answer is in, read the CPU counters again. The measured window is exactly
//      step 3: its time, its exchanges, its latencies, its CPU.
// Batches repeat until --exchanges measured exchanges are done (codes live 60 s on both
// servers, so a batch must be minted and used within that: --batch bounds it); windows add up.
//
// The refresh_token grant works the same way on refresh tokens: those the code exchanges
// returned (each used once, so every refresh is a first rotation of its own grant, as on a
// client refreshing its session), or, when the code grant is not run or there are not enough,
// refresh tokens from freshly minted codes exchanged outside any window (or from
// --refresh-mint-url, the peer's /bench/refresh). Every answer must be 200 with a NEW
// refresh_token (rotation) and an id_token signed with --alg.
//
// Server CPU: --server-pgid PGID sums every process of that process group (bench/oidc.sh
// starts each server with setsid, as bench/run.sh does); --server-pid PID sums that process
// and all its live descendants. --db-comm NAME reports the CPU of processes named NAME apart
// (postgres). Field names follow handoff-loadgen's (perSecond, p50Ms, serverCpuMs, …), with
// `exchanges` where the loadgen says `signins`.
//
// Usage (see bench/oidc.sh):
//   node bench/oidc/exchange.mjs --server peer --alg ES256 \
//     --discovery http://127.0.0.1:PORT/.well-known/openid-configuration \
//     --client-id bench-client --client-secret bench-secret --redirect-uri http://localhost:9/cb \
//     --mint-url http://127.0.0.1:MINTPORT/bench/codes --server-pgid PGID
//   node bench/oidc/exchange.mjs --server handoff --alg RS256 \
//     --discovery http://127.0.0.1:PORT/.well-known/openid-configuration \
//     --client-id ID --client-secret SECRET --redirect-uri http://localhost:9/cb \
//     --handoff-cookie handoff_session=TOKEN --server-pgid PGID

import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { formEncode, percentile, round2, round3, snapshotter } from './measure.mjs';

const USAGE = `usage: exchange.mjs --server handoff|peer --alg RS256|ES256
  (--discovery URL | --token-url URL [--authorize-url URL])
  --client-id ID --client-secret SECRET [--redirect-uri http://localhost:9/cb]
  [--scope "openid profile email offline_access"]
  code source: --mint-url URL (peer) | --handoff-cookie NAME=VALUE (handoff) | --codes-file FILE
  [--refresh-mint-url URL] [--grants authorization_code,refresh_token]
  [--exchanges 4000] [--warmup 1000] [--batch 4000] [--concurrency 8]
  [--server-pgid PGID | --server-pid PID] [--db-comm postgres] [--clk-tck 100]`;

const { values: opt } = parseArgs({
  options: {
    server: { type: 'string' },
    alg: { type: 'string' },
    discovery: { type: 'string' },
    'token-url': { type: 'string' },
    'authorize-url': { type: 'string' },
    'client-id': { type: 'string' },
    'client-secret': { type: 'string' },
    'redirect-uri': { type: 'string', default: 'http://localhost:9/cb' },
    scope: { type: 'string', default: 'openid profile email offline_access' },
    'mint-url': { type: 'string' },
    'refresh-mint-url': { type: 'string' },
    'handoff-cookie': { type: 'string' },
    'codes-file': { type: 'string' },
    grants: { type: 'string', default: 'authorization_code,refresh_token' },
    exchanges: { type: 'string', default: '4000' },
    warmup: { type: 'string', default: '1000' },
    batch: { type: 'string', default: '4000' },
    concurrency: { type: 'string', default: '8' },
    'server-pgid': { type: 'string' },
    'server-pid': { type: 'string' },
    'db-comm': { type: 'string' },
    'clk-tck': { type: 'string', default: '100' },
    help: { type: 'boolean', short: 'h' },
  },
  strict: true,
});

function die(message) {
  process.stderr.write(`exchange.mjs: ${message}\n`);
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
const SERVER = opt.server;
if (!['handoff', 'peer'].includes(SERVER)) die(`--server must be handoff or peer\n${USAGE}`);
const ALG = opt.alg;
if (!['RS256', 'ES256'].includes(ALG)) die('--alg must be RS256 or ES256');
if (!opt['client-id'] || !opt['client-secret']) die('--client-id and --client-secret are required');
const GRANTS = opt.grants.split(',').map((g) => g.trim()).filter(Boolean);
for (const g of GRANTS) if (!['authorization_code', 'refresh_token'].includes(g)) die(`unknown grant ${g}`);
const EXCHANGES = int('exchanges', 1);
const WARMUP = int('warmup', 0);
const BATCH = int('batch', 1);
const CONCURRENCY = int('concurrency', 1);
const CLK_TCK = int('clk-tck', 1);
const SERVER_PGID = opt['server-pgid'] ? Number(opt['server-pgid']) : undefined;
const SERVER_PID = opt['server-pid'] ? Number(opt['server-pid']) : undefined;
const log = (m) => process.stderr.write(`exchange.mjs [${SERVER} ${ALG}]: ${m}\n`);

// A browser's User-Agent, as handoff-loadgen sends (Handoff records the device of a request).
const USER_AGENT = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36 handoff-bench-oidc';

// --- endpoints ---------------------------------------------------------------------------------
// With --discovery, the endpoints come from the provider's metadata; their origin is replaced
// by the discovery URL's (the issuer says http://localhost:PORT, the server listens on
// 127.0.0.1:PORT; the path is what matters).
let tokenUrl = opt['token-url'] && new URL(opt['token-url']);
let authorizeUrl = opt['authorize-url'] && new URL(opt['authorize-url']);
let issuer;
if (opt.discovery) {
  const d = new URL(opt.discovery);
  const res = await fetch(d);
  if (res.status !== 200) die(`discovery ${d}: ${res.status}`);
  const meta = await res.json();
  issuer = meta.issuer;
  const rebase = (u) => {
    const x = new URL(u);
    return new URL(x.pathname + x.search, d.origin);
  };
  tokenUrl ??= rebase(meta.token_endpoint);
  authorizeUrl ??= meta.authorization_endpoint && rebase(meta.authorization_endpoint);
}
if (!tokenUrl) die('--token-url or --discovery is required');

const pool = (origin) => new Pool(origin, {
  connections: CONCURRENCY,
  pipelining: 1,
  keepAliveTimeout: 60_000,
  keepAliveMaxTimeout: 600_000,
});
const tokenPool = pool(tokenUrl.origin);
const authorizePool = authorizeUrl && (authorizeUrl.origin === tokenUrl.origin ? tokenPool : pool(authorizeUrl.origin));

// RFC 6749 §2.3.1: id and secret are form-encoded before Basic.
const BASIC = `Basic ${Buffer.from(`${formEncode(opt['client-id'])}:${formEncode(opt['client-secret'])}`).toString('base64')}`;
const TOKEN_HEADERS = {
  authorization: BASIC,
  'content-type': 'application/x-www-form-urlencoded',
  accept: 'application/json',
  'user-agent': USER_AGENT,
};

const snapshot = snapshotter({ pgid: SERVER_PGID, pid: SERVER_PID, dbComm: opt['db-comm'] });

// --- code sources (never inside a measured window) -----------------------------------------------
const b64sha256 = (s) => createHash('sha256').update(s).digest('base64url');

async function postJson(url, what) {
  const u = new URL(url);
  const p = pool(u.origin);
  try {
    const { statusCode, body } = await p.request({ path: u.pathname + u.search, method: 'POST' });
    const text = await body.text();
    if (statusCode !== 200) throw new Error(`${what} ${u}: ${statusCode} ${text.slice(0, 300)}`);
    return JSON.parse(text);
  } finally {
    await p.close();
  }
}

async function mintPeerCodes(n) {
  const url = new URL(opt['mint-url']);
  url.searchParams.set('n', String(n));
  const codes = await postJson(url, 'minting codes');
  if (!Array.isArray(codes) || codes.length !== n) throw new Error(`minting codes: expected ${n}, got ${codes?.length}`);
  return codes;
}

// Handoff: one signed-in session (the cookie), a first-party client (no consent screen), and
// the authorization endpoint answering each request with a redirect to redirect_uri carrying
// ?code=…&state=…&iss=…. Each request has its own PKCE pair, state and nonce.
async function mintHandoffCodes(n) {
  if (!authorizeUrl) throw new Error('no authorization endpoint (give --discovery or --authorize-url)');
  const cookie = opt['handoff-cookie'];
  const codes = new Array(n);
  let next = 0;
  async function worker() {
    while (next < n) {
      const i = next++;
      const verifier = randomBytes(32).toString('base64url');
      const state = randomBytes(12).toString('base64url');
      const q = new URLSearchParams({
        response_type: 'code',
        client_id: opt['client-id'],
        redirect_uri: opt['redirect-uri'],
        scope: opt.scope,
        state,
        nonce: randomBytes(12).toString('base64url'),
        code_challenge: b64sha256(verifier),
        code_challenge_method: 'S256',
      });
      const { statusCode, headers, body } = await authorizePool.request({
        path: `${authorizeUrl.pathname}?${q}`,
        method: 'GET',
        headers: { cookie, 'user-agent': USER_AGENT, accept: 'text/html' },
      });
      const text = await body.text();
      const location = headers.location;
      if (![302, 303].includes(statusCode) || typeof location !== 'string') {
        throw new Error(`authorize: expected a 302/303 redirect, got ${statusCode} ${location ?? ''} ${text.slice(0, 200)}`
          + ' (is the cookie a live session, and the client first-party with this redirect_uri?)');
      }
      const back = new URL(location, authorizeUrl);
      const target = new URL(opt['redirect-uri']);
      const code = back.searchParams.get('code');
      if (back.origin + back.pathname !== target.origin + target.pathname || !code) {
        throw new Error(`authorize: redirected to ${location}, not to ${opt['redirect-uri']} with a code`);
      }
      if (back.searchParams.get('state') !== state) throw new Error(`authorize: state mismatch in ${location}`);
      if (issuer && back.searchParams.has('iss') && back.searchParams.get('iss') !== issuer) {
        throw new Error(`authorize: iss ${back.searchParams.get('iss')} is not the issuer ${issuer}`);
      }
      codes[i] = { code, verifier };
    }
  }
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, n) }, worker));
  return codes;
}

let fileCodes;
async function mintCodes(n) {
  if (opt['codes-file']) {
    fileCodes ??= JSON.parse(readFileSync(opt['codes-file'], 'utf8'));
    if (fileCodes.length < n) throw new Error(`--codes-file has ${fileCodes.length} codes left, ${n} needed`);
    return fileCodes.splice(0, n);
  }
  if (SERVER === 'peer') {
    if (!opt['mint-url']) throw new Error('--server peer needs --mint-url (or --codes-file)');
    return mintPeerCodes(n);
  }
  if (!opt['handoff-cookie'] || !/^[^=;\s]+=[^;\s]+$/.test(opt['handoff-cookie'])) {
    throw new Error('--server handoff needs --handoff-cookie NAME=VALUE (or --codes-file)');
  }
  return mintHandoffCodes(n);
}

// --- the exchange -------------------------------------------------------------------------------
function jwtAlg(jwt) {
  try {
    return JSON.parse(Buffer.from(jwt.split('.')[0], 'base64url').toString()).alg;
  } catch {
    return undefined;
  }
}

function bodyFor(grant, item) {
  if (grant === 'authorization_code') {
    return new URLSearchParams({
      grant_type: 'authorization_code',
      code: item.code,
      code_verifier: item.verifier,
      redirect_uri: opt['redirect-uri'],
    }).toString();
  }
  return new URLSearchParams({ grant_type: 'refresh_token', refresh_token: item.refreshToken }).toString();
}

// One POST to the token endpoint; returns [error | undefined, parsed answer, bytes].
async function exchange(grant, item) {
  const { statusCode, body } = await tokenPool.request({
    path: tokenUrl.pathname,
    method: 'POST',
    headers: TOKEN_HEADERS,
    body: bodyFor(grant, item),
  });
  const text = await body.text();
  if (statusCode !== 200) return [`${grant}: ${statusCode} ${text.slice(0, 200)}`, undefined, text.length];
  let t;
  try {
    t = JSON.parse(text);
  } catch {
    return [`${grant}: 200 with a body that is not JSON`, undefined, text.length];
  }
  if (typeof t.id_token !== 'string') return [`${grant}: no id_token`, t, text.length];
  const alg = jwtAlg(t.id_token);
  if (alg !== ALG) return [`${grant}: id_token signed with ${alg}, expected ${ALG}`, t, text.length];
  if (typeof t.access_token !== 'string') return [`${grant}: no access_token`, t, text.length];
  if (typeof t.refresh_token !== 'string') return [`${grant}: no refresh_token (offline_access)`, t, text.length];
  if (grant === 'refresh_token' && t.refresh_token === item.refreshToken) {
    return [`${grant}: the refresh token was not rotated`, t, text.length];
  }
  return [undefined, t, text.length];
}

// Exchanges every item once with CONCURRENCY closed-loop workers. Returns latencies (µs) of the
// successes, the error count and samples, and the refresh tokens the answers carried.
async function runLoop(grant, items) {
  const latencies = [];
  const refreshTokens = [];
  const samples = new Map();
  let errors = 0;
  let bytes = 0;
  let next = 0;
  async function worker() {
    while (next < items.length) {
      const item = items[next++];
      const t0 = process.hrtime.bigint();
      let err;
      let answer;
      let n = 0;
      try {
        [err, answer, n] = await exchange(grant, item);
      } catch (e) {
        err = `${grant}: ${e?.code || ''} ${e?.message || e}`;
      }
      const t1 = process.hrtime.bigint();
      bytes += n;
      if (err) {
        errors += 1;
        samples.set(err, (samples.get(err) || 0) + 1);
      } else {
        latencies.push(Number(t1 - t0) / 1000);
        refreshTokens.push({ refreshToken: answer.refresh_token });
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, items.length) }, worker));
  return { latencies, errors, samples, refreshTokens, bytes };
}

// Refresh tokens kept from the code grant's answers (each used at most once).
const spareRefresh = [];

async function source(grant, n) {
  if (grant === 'authorization_code') return mintCodes(n);
  const out = spareRefresh.splice(0, n);
  if (out.length < n && opt['refresh-mint-url']) {
    const url = new URL(opt['refresh-mint-url']);
    url.searchParams.set('n', String(n - out.length));
    out.push(...await postJson(url, 'minting refresh tokens'));
  }
  while (out.length < n) {
    // Exchange fresh codes outside any window for their refresh tokens.
    const codes = await mintCodes(Math.min(BATCH, n - out.length));
    const r = await runLoop('authorization_code', codes);
    if (r.errors) throw new Error(`getting refresh tokens: ${[...r.samples.keys()][0]}`);
    out.push(...r.refreshTokens);
  }
  return out;
}


async function measure(grant) {
  const acc = { latencies: [], errors: 0, samples: new Map(), seconds: 0, server: 0, db: 0, self: 0, machine: 0, bytes: 0, setup: 0 };
  let done = 0;
  let batches = 0;
  while (done < EXCHANGES) {
    const size = Math.min(BATCH, EXCHANGES - done);
    const s0 = process.hrtime.bigint();
    const items = await source(grant, WARMUP + size);
    const warm = await runLoop(grant, items.slice(0, WARMUP));
    if (warm.errors) log(`warm-up errors: ${[...warm.samples.keys()].slice(0, 3).join(' | ')}`);
    if (grant === 'authorization_code') spareRefresh.push(...warm.refreshTokens);
    const a = snapshot();
    acc.setup += Number(a.at - s0) / 1e9;
    const r = await runLoop(grant, items.slice(WARMUP));
    const b = snapshot();
    acc.seconds += Number(b.at - a.at) / 1e9;
    if (a.server !== undefined) acc.server += b.server - a.server;
    if (a.db !== undefined) acc.db += b.db - a.db;
    acc.self += b.self - a.self;
    acc.machine += b.machine - a.machine;
    acc.latencies.push(...r.latencies);
    acc.errors += r.errors;
    acc.bytes += r.bytes;
    for (const [k, v] of r.samples) acc.samples.set(k, (acc.samples.get(k) || 0) + v);
    if (grant === 'authorization_code') spareRefresh.push(...r.refreshTokens);
    done += size;
    batches += 1;
  }
  const lat = Float64Array.from(acc.latencies).sort();
  const n = lat.length;
  const tickMs = 1000 / CLK_TCK;
  const out = {
    server: SERVER,
    alg: ALG,
    grant,
    exchanges: n,
    errors: acc.errors,
    seconds: round2(acc.seconds),
    perSecond: round2(n / acc.seconds),
    p50Ms: round2(percentile(lat, 50)),
    p90Ms: round2(percentile(lat, 90)),
    p99Ms: round2(percentile(lat, 99)),
    maxMs: round2(n ? lat[n - 1] / 1000 : 0),
    concurrency: CONCURRENCY,
    warmup: WARMUP,
    batches,
    meanResponseBytes: Math.round(acc.bytes / Math.max(1, n + acc.errors)),
    setupSeconds: round2(acc.setup),
    loadgenCpuMs: round2(acc.self * tickMs),
  };
  const machineMs = acc.machine * tickMs;
  out.machineBusyCores = round2(machineMs / 1000 / acc.seconds);
  const dbMs = opt['db-comm'] ? acc.db * tickMs : 0;
  if (opt['db-comm']) {
    out.dbCpuMs = round2(dbMs);
    out.dbCpuMsPerExchange = n ? round3(dbMs / n) : 0;
  }
  if (SERVER_PGID !== undefined || SERVER_PID !== undefined) {
    const ms = acc.server * tickMs;
    const others = machineMs - ms - dbMs - acc.self * tickMs;
    out.otherCpuCores = round2(Math.max(0, others / 1000 / acc.seconds));
    out.serverCpuMs = round2(ms);
    out.serverCpuMsPerExchange = n ? round3(ms / n) : 0;
    out.serverCpuCores = round2(ms / 1000 / acc.seconds);
  }
  for (const [k, v] of [...acc.samples].slice(0, 5)) log(`error sample (${v}×): ${k}`);
  return out;
}

let failed = false;
try {
  for (const grant of GRANTS) {
    const line = await measure(grant);
    process.stdout.write(`${JSON.stringify(line)}\n`);
    log(`${grant}: ${line.perSecond}/s p50 ${line.p50Ms} ms p99 ${line.p99Ms} ms, server CPU ${line.serverCpuMsPerExchange ?? '?'} ms/exchange, ${line.errors} errors`);
    if (line.errors > 0 || line.exchanges === 0) failed = true;
  }
} catch (e) {
  log(String(e?.stack || e));
  failed = true;
} finally {
  await tokenPool.close();
  if (authorizePool && authorizePool !== tokenPool) await authorizePool.close();
}
process.exit(failed ? 1 : 0);
