#!/usr/bin/env node
// Signs a fresh person up on a running Handoff with a software passkey (softkey.mjs) and prints
// the session cookie Handoff set, as NAME=VALUE on one line: the `--handoff-cookie` that
// exchange.mjs mints authorization codes with. Setup only, never inside a measured window.
//
//   node bench/oidc/session.mjs --url http://127.0.0.1:PORT --origin http://localhost:PORT
//
// It posts what a browser posts: POST /api/v1/passkeys/registration/start
// {identifier, displayName} -> {ceremonyId, publicKey}, creates the passkey, then
// POST /api/v1/passkeys/registration/finish {ceremonyId, credential}, which answers 200 and
// sets `handoff_session` (`__Host-handoff_session` on https).

import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { request } from 'undici';
import { createCredential } from './softkey.mjs';

const { values: opt } = parseArgs({
  options: {
    url: { type: 'string' },
    origin: { type: 'string' },
    identifier: { type: 'string' },
  },
  strict: true,
});
if (!opt.url) {
  process.stderr.write('usage: session.mjs --url http://127.0.0.1:PORT [--origin http://localhost:PORT] [--identifier ID]\n');
  process.exit(2);
}
const base = new URL(opt.url);
const origin = opt.origin || base.origin;
const identifier = opt.identifier || `oidc-bench-${randomBytes(6).toString('hex')}@bench.example`;
const USER_AGENT = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36 handoff-bench-oidc';

async function post(path, body) {
  const res = await request(new URL(path, base), {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'user-agent': USER_AGENT, origin },
    body: JSON.stringify(body),
  });
  const text = await res.body.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.statusCode, headers: res.headers, json };
}

const start = await post('/api/v1/passkeys/registration/start', { identifier, displayName: 'OIDC Bench' });
if (start.status !== 200) {
  process.stderr.write(`session.mjs: registration/start: ${start.status} ${JSON.stringify(start.json)}\n`);
  process.exit(1);
}
const { credential } = createCredential(start.json.publicKey, origin);
const finish = await post('/api/v1/passkeys/registration/finish', { ceremonyId: start.json.ceremonyId, credential });
const setCookie = [finish.headers['set-cookie'] ?? []].flat();
const session = setCookie
  .map((c) => c.split(';')[0].trim())
  .find((c) => /^(__Host-)?handoff_session=./.test(c));
if (finish.status !== 200 || !session) {
  process.stderr.write(`session.mjs: registration/finish: ${finish.status} cookie=${Boolean(session)} ${JSON.stringify(finish.json)}\n`);
  process.exit(1);
}
process.stderr.write(`session.mjs: signed up ${identifier}\n`);
process.stdout.write(`${session}\n`);
