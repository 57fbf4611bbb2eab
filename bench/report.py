#!/usr/bin/env python3
"""Turns the loadgen's JSON lines from bench/run.sh into bench/RESULTS.md.

Every number in the output comes from the measurements in the JSON lines or from the machine
(/proc, tool versions); nothing is typed in by hand. The profile section between the
`<!-- profile:start -->` and `<!-- profile:end -->` markers of an existing RESULTS.md is kept,
since bench/profile.sh writes it separately.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import subprocess
from statistics import mean

PROFILE_START = "<!-- profile:start -->"
PROFILE_END = "<!-- profile:end -->"
# A hand-written reading of the numbers (dated, citing the run it read); kept across runs.
ANALYSIS_START = "<!-- analysis:start -->"
ANALYSIS_END = "<!-- analysis:end -->"


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=20).stdout.strip()
    except Exception:  # noqa: BLE001 - a missing tool only blanks one line of the report
        return ""


def machine():
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem_kb = int(line.split()[1])
    return {
        "cpus": os.cpu_count(),
        "model": model,
        "memory": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "rustc": sh("rustc --version"),
        "node": sh("node --version"),
        "postgres": sh("psql -h 127.0.0.1 -U postgres -Atc 'show server_version'"),
        "peer_sqlite": sh(
            "cd bench/peer-node && node -e \"const D=require('better-sqlite3');"
            "console.log(new D(':memory:').prepare('select sqlite_version() v').get().v)\""
        ),
        "peer_versions": sh(
            "cd bench/peer-node && node -e \"const fs=require('fs');for (const p of ['@simplewebauthn/server','better-sqlite3','pg'])"
            " console.log(p+'@'+JSON.parse(fs.readFileSync('node_modules/'+p+'/package.json')).version)\" | paste -sd ' '"
        ),
        "revision": sh("git rev-parse --short HEAD 2>/dev/null") or "uncommitted work tree",
        "dirty": bool(sh("git status --porcelain 2>/dev/null | head -1")),
    }


def agg(rows, key):
    vals = [r[key] for r in rows if key in r]
    return mean(vals) if vals else None


def fmt(x, digits=2):
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:,.{digits}f}"
    return f"{x:,}"


def summarize(rows):
    """Mean over rounds of each measure (sums for counts)."""
    return {
        "signins": sum(r["signins"] for r in rows),
        "errors": sum(r["errors"] for r in rows),
        "perSecond": agg(rows, "perSecond"),
        "p50Ms": agg(rows, "p50Ms"),
        "p90Ms": agg(rows, "p90Ms"),
        "p99Ms": agg(rows, "p99Ms"),
        "serverCpuMsPerSignin": sum(r.get("serverCpuMs", 0) for r in rows) / max(1, sum(r["signins"] for r in rows)),
        "serverCpuCores": agg(rows, "serverCpuCores"),
        "dbCpuMsPerSignin": (
            sum(r["dbCpuMs"] for r in rows) / max(1, sum(r["signins"] for r in rows)) if all("dbCpuMs" in r for r in rows) else None
        ),
        "loadgenCpuMsPerSignin": sum(r["loadgenCpuMs"] for r in rows) / max(1, sum(r["signins"] for r in rows)),
        "otherCpuCores": agg(rows, "otherCpuCores"),
        "rssMb": agg(rows, "rssKb") / 1024 if agg(rows, "rssKb") is not None else None,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("out")
    for a in ["started", "users", "concurrency", "duration", "warmup", "rounds", "clk-tck", "peer-sqlite-synchronous", "handoff"]:
        ap.add_argument(f"--{a}", required=True)
    ap.add_argument("--baseline", help="an older Handoff binary run beside this one (server kind `baseline`)")
    args = ap.parse_args()

    with open(args.results) as f:
        results = [json.loads(line) for line in f if line.strip()]

    old_profile = ""
    old_analysis = ""
    if os.path.exists(args.out):
        text = open(args.out).read()
        a = re.search(re.escape(ANALYSIS_START) + r".*?" + re.escape(ANALYSIS_END), text, re.S)
        if a:
            old_analysis = a.group(0)
        m = re.search(re.escape(PROFILE_START) + r".*?" + re.escape(PROFILE_END), text, re.S)
        if m:
            old_profile = m.group(0)
    if not old_profile:
        old_profile = f"{PROFILE_START}\n_No profile yet: run `bench/profile.sh`._\n{PROFILE_END}"

    m = machine()
    env_knobs = " ".join(
        f"{k}={shlex.quote(v)}"
        for k, v in [
            ("BENCH_USERS", args.users),
            ("BENCH_CONCURRENCY", args.concurrency),
            ("BENCH_DURATION", args.duration),
            ("BENCH_WARMUP", args.warmup),
            ("BENCH_ROUNDS", args.rounds),
        ]
        + [(k, os.environ[k]) for k in ("BENCH_SKIP_BUILD", "BENCH_QUIET_WAIT", "BENCH_RETRIES", "BENCH_MAX_OTHER", "BENCH_DBS", "BENCH_SERVERS") if os.environ.get(k)]
    )
    dbs = []
    for r in results:
        if r["db"] not in dbs:
            dbs.append(r["db"])

    out = []
    w = out.append
    w("# Sign-in benchmark: Handoff vs a Node peer (`@simplewebauthn/server`)")
    w("")
    w("Written by `bench/run.sh` (numbers) and `bench/profile.sh` (profile section); do not edit by hand.")
    w("")
    w("A *sign-in* is one complete identifier-first passkey login over HTTP: `POST /api/v1/login/start`")
    w("(account and credentials read, challenge stored), a real ES256 assertion by a software authenticator")
    w("in the load generator, then `POST /api/v1/login/finish` (ceremony taken once, credential read,")
    w("signature verified, counter/last-used updated, session row written, `handoff_session` cookie set).")
    w("Only sign-ins whose finish returned 200 with the cookie count; anything else is an error.")
    w("")
    w("## Machine and run")
    w("")
    w(f"- Date (UTC): {args.started}")
    w(f"- CPU: {m['cpus']} × {m['model']}; memory {m['memory']}; kernel {m['kernel']}")
    w(f"- Toolchain: {m['rustc']}; Node {m['node']}; PostgreSQL {m['postgres']}")
    w(f"- Peer: {m['peer_versions']}; its SQLite {m['peer_sqlite']} (WAL, synchronous={args.peer_sqlite_synchronous})")
    w(f"- Handoff revision: {m['revision']}{' (with uncommitted changes)' if m['dirty'] else ''}; binary `{args.handoff}` "
      f"built {datetime.datetime.fromtimestamp(os.path.getmtime(args.handoff), datetime.timezone.utc):%Y-%m-%dT%H:%M:%SZ}")
    if args.baseline:
        w(f"- Baseline: `{args.baseline}` (an older Handoff build, `{sh(shlex.quote(args.baseline) + ' --version')}`), "
          "started with the same settings and run in the same rounds")
    w(f"- Load: {args.users} users with one passkey each, {args.concurrency} closed-loop workers, "
      f"{args.warmup} warm-up then a {args.duration} measured window, {args.rounds} round(s) per server and database")
    w("- The load generator runs on the same 2 cores as the server, so throughput and latency are for a shared")
    w("  machine; *server CPU per sign-in* (utime+stime of the server's whole process group over the measured")
    w("  window, from `/proc/<pid>/stat`) is the figure that does not depend on the client. With PostgreSQL,")
    w("  the database's own CPU (all `postgres` processes) is reported apart. *Other CPU* is machine-wide busy")
    w("  time minus server, database and load generator: anything well above 0 means the run was disturbed.")
    w("")
    w("## Commands")
    w("")
    w("```sh")
    w(f"{env_knobs} bench/run.sh")
    w("# which, per server and database kind, starts the server with setsid and then runs:")
    w(f"handoff-loadgen --url http://127.0.0.1:PORT --origin http://localhost:PORT --users {args.users} \\")
    w(f"  --concurrency {args.concurrency} --duration {args.duration} --warmup {args.warmup} \\")
    w(f"  --server-pgid PGID --clk-tck {args.clk_tck} [--db-comm postgres]")
    w("# servers (PORT: a free port picked per start):")
    w("#   HANDOFF_LISTEN=127.0.0.1:PORT HANDOFF_ORIGIN=http://localhost:PORT HANDOFF_RP_ID=localhost \\")
    w("#   HANDOFF_DATA_DIR=$TMP [HANDOFF_DATABASE_URL=postgres://…/bench_handoff_…] RUST_LOG=warn handoff serve")
    w("#   PEER_LISTEN=127.0.0.1:PORT PEER_ORIGIN=http://localhost:PORT PEER_SQLITE_PATH=$TMP/peer.sqlite3 \\")
    w("#   [PEER_DATABASE_URL=postgres://…/bench_peer_…] NODE_ENV=production node bench/peer-node/server.js")
    w("#   FLOOR_LISTEN=127.0.0.1:PORT FLOOR_ORIGIN=http://localhost:PORT handoff-bench-floor   # SQLite pass only")
    w("```")
    w("")
    w("## Results")
    w("")

    verdicts = []
    for db in dbs:
        ours_rows = [r for r in results if r["db"] == db and r["server"] == "handoff"]
        peer_rows = [r for r in results if r["db"] == db and r["server"] == "peer"]
        floor_rows = [r for r in results if r["db"] == db and r["server"] == "floor"]
        base_rows = [r for r in results if r["db"] == db and r["server"] == "baseline"]
        if not ours_rows and not peer_rows:
            continue
        o = summarize(ours_rows) if ours_rows else None
        p = summarize(peer_rows) if peer_rows else None
        fl = summarize(floor_rows) if floor_rows else None
        b = summarize(base_rows) if base_rows else None
        title = "SQLite (file)" if db == "sqlite" else "PostgreSQL"
        w(f"### {title}")
        w("")
        w("| server | sign-ins/s | p50 ms | p90 ms | p99 ms | server CPU ms/sign-in | server cores | "
          + ("DB CPU ms/sign-in | " if db == "postgres" else "")
          + "loadgen CPU ms/sign-in | other CPU cores | sign-ins | errors | RSS MiB |")
        w("|---|---:|---:|---:|---:|---:|---:|" + ("---:|" if db == "postgres" else "") + "---:|---:|---:|---:|---:|")
        for name, s in (("Handoff (Rust)", o), ("Handoff baseline (older build)", b), ("peer (Node)", p),
                        ("floor (memory only, stores nothing)", fl)):
            if s is None:
                continue
            w(f"| {name} | {fmt(s['perSecond'], 1)} | {fmt(s['p50Ms'])} | {fmt(s['p90Ms'])} | {fmt(s['p99Ms'])} | "
              f"{fmt(s['serverCpuMsPerSignin'], 3)} | {fmt(s['serverCpuCores'])} | "
              + (f"{fmt(s['dbCpuMsPerSignin'], 3)} | " if db == "postgres" else "")
              + f"{fmt(s['loadgenCpuMsPerSignin'], 3)} | {fmt(s['otherCpuCores'])} | {fmt(s['signins'])} | "
              f"{fmt(s['errors'])} | {fmt(s['rssMb'], 0)} |")
        if o is not None and b is not None:
            w("")
            w("| ratio (Handoff / baseline, same run) | value |")
            w("|---|---:|")
            for label, key in (("server CPU per sign-in", "serverCpuMsPerSignin"), ("throughput (sign-ins/s)", "perSecond"),
                               ("p50 latency", "p50Ms"), ("p99 latency", "p99Ms")):
                w(f"| {label} | {fmt(o[key] / b[key] if b[key] else None, 3)} |")
            if len(ours_rows) > 1:
                med = lambda rows: sorted(r["serverCpuMsPerSignin"] for r in rows)[len(rows) // 2]
                w(f"| server CPU per sign-in, median of rounds ({len(ours_rows)} vs {len(base_rows)}) | "
                  f"{fmt(med(ours_rows) / med(base_rows), 3)} |")
        if o is None or p is None:
            w("")
            continue
        disturbed = [r for r in ours_rows + base_rows + peer_rows + floor_rows if r.get("otherCpuCores", 0) > 0.25]
        if disturbed:
            w("")
            w(f"⚠ {len(disturbed)} of these windows were disturbed: other processes used more than 0.25 of a core "
              "(see *other CPU cores*); their throughput and latency are less reliable than their CPU per sign-in.")
        cpu_ratio = o["serverCpuMsPerSignin"] / p["serverCpuMsPerSignin"] if p["serverCpuMsPerSignin"] else None
        tput_ratio = o["perSecond"] / p["perSecond"] if p["perSecond"] else None
        p99_ratio = o["p99Ms"] / p["p99Ms"] if p["p99Ms"] else None
        w("")
        w("| ratio (Handoff / peer) | value | target | met |")
        w("|---|---:|---|---|")
        rows = [
            ("server CPU per sign-in", cpu_ratio, "≤ 0.333", cpu_ratio is not None and cpu_ratio <= 1 / 3),
            ("throughput (sign-ins/s)", tput_ratio, "> 1", tput_ratio is not None and tput_ratio > 1),
            ("p99 latency", p99_ratio, "< 1", p99_ratio is not None and p99_ratio < 1),
        ]
        if db == "postgres" and o["dbCpuMsPerSignin"] is not None and p["dbCpuMsPerSignin"]:
            both = (o["serverCpuMsPerSignin"] + o["dbCpuMsPerSignin"]) / (p["serverCpuMsPerSignin"] + p["dbCpuMsPerSignin"])
            rows.append(("server + database CPU per sign-in", both, "(information)", None))
        if fl is not None and p["serverCpuMsPerSignin"]:
            rows.append(("floor's server CPU per sign-in / peer's", fl["serverCpuMsPerSignin"] / p["serverCpuMsPerSignin"],
                         "(information: no server that stores anything goes below it)", None))
        for label, val, target, met in rows:
            w(f"| {label} | {fmt(val, 3)} | {target} | {'' if met is None else ('yes' if met else '**no**')} |")
            if met is not None:
                verdicts.append((title, label, met))
        w("")
        if len(ours_rows) > 1:
            w("<details><summary>per round</summary>")
            w("")
            w("| server | round | sign-ins/s | p50 ms | p99 ms | server CPU ms/sign-in | other CPU cores |")
            w("|---|---:|---:|---:|---:|---:|---:|")
            for r in sorted(ours_rows + base_rows + peer_rows + floor_rows, key=lambda r: (r["round"], r["server"])):
                w(f"| {r['server']} | {r['round']} | {fmt(r['perSecond'], 1)} | {fmt(r['p50Ms'])} | {fmt(r['p99Ms'])} | "
                  f"{fmt(r.get('serverCpuMsPerSignin'), 3)} | {fmt(r.get('otherCpuCores'))} |")
            w("")
            w("</details>")
            w("")

    if verdicts:
        missed = [f"{t}: {l}" for t, l, met in verdicts if not met]
        w("**Targets** (at most a third of the peer's server CPU per sign-in, higher throughput, lower p99): "
          + ("all met." if not missed else "not met — " + "; ".join(missed) + "."))
        w("")
    if old_analysis:
        w(old_analysis)
        w("")
    w("## Raw measurements")
    w("")
    w("One JSON object per loadgen run, as printed (`seconds` is the measured window):")
    w("")
    w("```json")
    for r in results:
        w(json.dumps(r, separators=(",", ":")))
    w("```")
    w("")
    w("## Profile")
    w("")
    w(old_profile)
    w("")
    with open(args.out, "w") as f:
        f.write("\n".join(out))


if __name__ == "__main__":
    main()
