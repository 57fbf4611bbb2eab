// Shared by the OIDC drivers (exchange.mjs, signin.mjs): server CPU from /proc over a measured
// window, latency percentiles and form encoding. CPU is utime+stime of the server's process
// group (or of a process and its live descendants), of the database's processes by command
// name, of this driver, and the machine's busy ticks.
import { readFileSync, readdirSync } from 'node:fs';

// (pid, ppid, pgrp, utime + stime) of one process, from /proc/<pid>/stat.
function procStat(pid) {
  let text;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const close = text.lastIndexOf(')');
  // The command name (field 2) may contain spaces; fields after the last ')' are fixed:
  // state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime …
  const f = text.slice(close + 2).split(' ');
  return {
    comm: text.slice(text.indexOf('(') + 1, close),
    ppid: Number(f[1]),
    pgrp: Number(f[2]),
    ticks: Number(f[11]) + Number(f[12]),
  };
}
function allProcs() {
  const out = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const s = procStat(name);
    if (s) out.set(Number(name), s);
  }
  return out;
}
// Server CPU ticks: every process of the group, or the process and its live descendants.
function serverTicks(procs, pgid, pid) {
  if (pgid !== undefined) {
    let t = 0;
    for (const s of procs.values()) if (s.pgrp === pgid) t += s.ticks;
    return t;
  }
  if (pid !== undefined) {
    const tree = new Set([pid]);
    let grew = true;
    while (grew) {
      grew = false;
      for (const [p, s] of procs) {
        if (!tree.has(p) && tree.has(s.ppid)) {
          tree.add(p);
          grew = true;
        }
      }
    }
    let t = 0;
    for (const p of tree) t += procs.get(p)?.ticks ?? 0;
    return t;
  }
  return undefined;
}
function commTicks(procs, comm) {
  let t = 0;
  for (const s of procs.values()) if (s.comm === comm) t += s.ticks;
  return t;
}
// Busy ticks of the whole machine (everything but idle and iowait), from /proc/stat.
function machineBusyTicks() {
  const v = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1, 9).map(Number);
  return v.reduce((a, x, i) => (i === 3 || i === 4 ? a : a + x), 0);
}

/** A function taking the CPU counters now, for the server named by `pgid` or `pid`. */
export function snapshotter({ pgid, pid, dbComm }) {
  return () => {
    const procs = allProcs();
    return {
      server: serverTicks(procs, pgid, pid),
      db: dbComm ? commTicks(procs, dbComm) : undefined,
      self: procs.get(process.pid)?.ticks ?? 0,
      machine: machineBusyTicks(),
      at: process.hrtime.bigint(),
    };
  };
}

/** The p-th percentile of sorted microseconds, in milliseconds (nearest rank). */
export function percentile(sorted, p) {
  if (!sorted.length) return 0;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(Math.max(rank, 1), sorted.length) - 1] / 1000;
}
export const round2 = (x) => Math.round(x * 100) / 100;
export const round3 = (x) => Math.round(x * 1000) / 1000;

/** application/x-www-form-urlencoded encoding of one value. */
export const formEncode = (s) => encodeURIComponent(s).replace(/%20/g, '+');
