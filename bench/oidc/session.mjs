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
//
// signin.mjs imports signUp() to sign its people up the same way (keeping their passkeys).

import { randomBytes } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { request } from 'undici';
import { createCredential } from './softkey.mjs';

export const USER_AGENT = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36 handoff-bench-oidc';

async function post(base, origin, path, body, dispatcher) {
  const res = await request(new URL(path, base), {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'user-agent': USER_AGENT, origin },
    body: JSON.stringify(body),
    ...(dispatcher ? { dispatcher } : {}),
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

/**
 * Signs `identifier` up on the Handoff at `url` (as a browser at `origin`) with a new software
 * passkey. Returns { identifier, session (NAME=VALUE), key (createCredential's answer, for
 * softkey.getAssertion) }; throws when a step fails.
 */
export async function signUp({ url, origin, identifier, dispatcher }) {
  const base = new URL(url);
  origin ||= base.origin;
  identifier ||= `oidc-bench-${randomBytes(6).toString('hex')}@bench.example`;
  const start = await post(base, origin, '/api/v1/passkeys/registration/start', { identifier, displayName: 'OIDC Bench' }, dispatcher);
  if (start.status !== 200) throw new Error(`registration/start: ${start.status} ${JSON.stringify(start.json)}`);
  const key = createCredential(start.json.publicKey, origin);
  const finish = await post(base, origin, '/api/v1/passkeys/registration/finish',
    { ceremonyId: start.json.ceremonyId, credential: key.credential }, dispatcher);
  const setCookie = [finish.headers['set-cookie'] ?? []].flat();
  const session = setCookie
    .map((c) => c.split(';')[0].trim())
    .find((c) => /^(__Host-)?handoff_session=./.test(c));
  if (finish.status !== 200 || !session) {
    throw new Error(`registration/finish: ${finish.status} cookie=${Boolean(session)} ${JSON.stringify(finish.json)}`);
  }
  return { identifier, session, key };
}

const isMain = process.argv[1] && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
if (isMain) {
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
  try {
    const { identifier, session } = await signUp(opt);
    process.stderr.write(`session.mjs: signed up ${identifier}\n`);
    process.stdout.write(`${session}\n`);
  } catch (e) {
    process.stderr.write(`session.mjs: ${e.message}\n`);
    process.exit(1);
  }
}
