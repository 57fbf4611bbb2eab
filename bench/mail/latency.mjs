#!/usr/bin/env node
// Email code latency (issue #22): how long from POST /api/v1/email-code/start until the SMTP
// server has accepted the mail, at a steady open-loop rate, against a running Handoff whose
// SMTP server is tests/smtp/server.py (it stamps X-Received-At on every mail it accepts).
//
//   node bench/mail/latency.mjs --url http://127.0.0.1:PORT --origin http://localhost:PORT \
//        --mail-dir DIR --rate 50 --seconds 20 --pgid PGID
//
// Setup (not measured): signs up rate × seconds people with software passkeys (one per
// request, so each mail is matched to its request by its recipient). Then sends one request
// every 1000/rate ms, whatever the answers do (open loop), waits for every mail, and prints one
// JSON line: requests, mails, perSecond (achieved), request latency p50/p99 (the 202), mail
// latency p50/p99/max (request sent → mail accepted), and the server's CPU per request over
// the window (utime+stime of its process group, from /proc).

import { readFileSync, readdirSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { signUp, USER_AGENT } from '../oidc/session.mjs';
import { round2, round3, snapshotter } from '../oidc/measure.mjs';

const { values: opt } = parseArgs({
  options: {
    url: { type: 'string' },
    origin: { type: 'string' },
    'mail-dir': { type: 'string' },
    rate: { type: 'string', default: '50' },
    seconds: { type: 'string', default: '20' },
    pgid: { type: 'string' },
    pid: { type: 'string' },
    'clk-tck': { type: 'string', default: '100' },
  },
  strict: true,
});
const rate = Number(opt.rate);
/** The p-quantile (0–1) of sorted milliseconds, nearest rank. */
const percentile = (sorted, p) => (sorted.length ? sorted[Math.min(sorted.length, Math.max(1, Math.ceil(p * sorted.length))) - 1] : null);
const total = Math.round(rate * Number(opt.seconds));
const base = new URL(opt.url);
const origin = opt.origin ?? base.origin;

const people = [];
for (let i = 0; i < total; i++) {
  people.push((await signUp({ url: opt.url, origin, identifier: `mail-bench-${i}-${process.pid}@bench.example` })).identifier);
  if ((i + 1) % 200 === 0) process.stderr.write(`[mail-bench] signed up ${i + 1}/${total}\n`);
}

const sentAt = new Map();
const answered = [];
const failures = [];
const snap = snapshotter({ pgid: opt.pgid ? Number(opt.pgid) : undefined, pid: opt.pid ? Number(opt.pid) : undefined });
const before = snap();
const start = performance.now();
const inflight = [];
for (let i = 0; i < total; i++) {
  const due = start + (i * 1000) / rate;
  const wait = due - performance.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  const identifier = people[i];
  const t0 = Date.now();
  const p0 = performance.now();
  sentAt.set(identifier, t0);
  inflight.push(
    fetch(new URL('/api/v1/email-code/start', base), {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'user-agent': USER_AGENT, origin },
      body: JSON.stringify({ identifier }),
    }).then(async (res) => {
      await res.text();
      if (res.status !== 202) failures.push(res.status);
      answered.push(performance.now() - p0);
    }, (e) => failures.push(String(e))),
  );
}
await Promise.all(inflight);
const windowMs = performance.now() - start;

// Wait for the mails (at most 30 s after the last request).
const received = new Map();
const deadline = Date.now() + 30_000;
while (received.size < total && Date.now() < deadline) {
  for (const f of readdirSync(opt['mail-dir'])) {
    if (!f.endsWith('.eml') || received.has(f)) continue;
    const text = readFileSync(`${opt['mail-dir']}/${f}`, 'utf8');
    const to = text.match(/^X-Envelope-To: (.+)$/m)?.[1]?.trim();
    const at = Number(text.match(/^X-Received-At: (\d+)$/m)?.[1]);
    received.set(f, { to, at });
  }
  if (received.size < total) await new Promise((r) => setTimeout(r, 100));
}
const after = snap();
const latencies = [...received.values()].filter((m) => sentAt.has(m.to)).map((m) => m.at - sentAt.get(m.to)).sort((a, b) => a - b);
answered.sort((a, b) => a - b);
// The server's CPU over the requests and the mail they caused (until the last mail arrived).
const cpuMs = opt.pgid || opt.pid ? ((after.server - before.server) * 1000) / Number(opt['clk-tck']) : null;
process.stdout.write(
  `${JSON.stringify({
    requests: total,
    failures: failures.length,
    mails: latencies.length,
    perSecond: round2((answered.length * 1000) / windowMs),
    requestP50Ms: round2(percentile(answered, 0.5)),
    requestP99Ms: round2(percentile(answered, 0.99)),
    mailP50Ms: percentile(latencies, 0.5),
    mailP99Ms: percentile(latencies, 0.99),
    mailMaxMs: latencies.at(-1),
    serverCpuMsPerRequest: cpuMs === null ? null : round3(cpuMs / total),
  })}\n`,
);
