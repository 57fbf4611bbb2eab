#!/usr/bin/env python3
"""Renders bench/oidc.sh's JSON lines (bench/out/oidc.jsonl) into the "OIDC token endpoint"
section of bench/RESULTS.md, between `<!-- oidc:start -->` and `<!-- oidc:end -->` (added at
the end when missing). Medians over rounds; ratios are Handoff / oidc-provider in the same run.
Nothing is typed in by hand.

    python3 bench/oidc_report.py [bench/out/oidc.jsonl] [bench/RESULTS.md]
"""
import json
import statistics
import sys
from collections import defaultdict

src = sys.argv[1] if len(sys.argv) > 1 else "bench/out/oidc.jsonl"
dst = sys.argv[2] if len(sys.argv) > 2 else "bench/RESULTS.md"

rows = [json.loads(line) for line in open(src) if line.strip().startswith("{")]
groups = defaultdict(list)
for r in rows:
    groups[(r["server"], r.get("db", "memory"), r["alg"], r["grant"])].append(r)


def med(rs, key):
    vals = [r[key] for r in rs if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def fmt(x, d=2):
    return "–" if x is None else f"{x:.{d}f}"


impls = sorted({r.get("impl", r["server"]) for r in rows})
started = min((r.get("started", "") for r in rows), default="")
lines = [
    "## OIDC token endpoint: Handoff against oidc-provider",
    "",
    f"`bench/oidc.sh`, run started {started}; {', '.join(impls)}. Each row: the median over rounds of "
    "exchanges per second, latency percentiles and the server's own CPU time per exchange "
    "(utime+stime of its process group over the measured window; the driver shares the 2 cores). "
    "Codes and refresh tokens are minted before each window and never count. The peer keeps "
    "everything in memory; Handoff writes codes and tokens to its database. "
    "Rows signin-plain and signin-oidc (Handoff only, bench/oidc/signin.mjs) count whole passkey "
    "sign-ins instead of exchanges: login/start + login/finish, and the same inside an OIDC "
    "authorization (authorize → sign-in → authorize/continue → token → userinfo); their "
    "columns are sign-ins/s, the latency of the whole sequence and server CPU ms per sign-in.",
    "",
    "| server | database | ID token | grant | exchanges/s | p50 ms | p99 ms | server CPU ms/exchange | errors |",
    "|---|---|---|---|---:|---:|---:|---:|---:|",
]
for (server, db, alg, grant), rs in sorted(groups.items()):
    lines.append(
        f"| {server} | {db} | {alg} | {grant} | {fmt(med(rs, 'perSecond'), 0)} | {fmt(med(rs, 'p50Ms'))} | "
        f"{fmt(med(rs, 'p99Ms'))} | {fmt(med(rs, 'serverCpuMsPerExchange'), 3)} | {sum(r.get('errors', 0) for r in rs)} |"
    )
lines += ["", "Handoff / oidc-provider (below 1: Handoff spends less):", "",
          "| database | ID token | grant | CPU per exchange | p99 | exchanges/s |", "|---|---|---|---:|---:|---:|"]
for (server, db, alg, grant), rs in sorted(groups.items()):
    if server != "handoff":
        continue
    peer = next((p for (s, _, a, g), p in groups.items() if s == "peer" and a == alg and g == grant), None)
    if not peer:
        continue
    ratio = lambda k: (med(rs, k) / med(peer, k)) if med(rs, k) and med(peer, k) else None
    lines.append(f"| {db} | {alg} | {grant} | {fmt(ratio('serverCpuMsPerExchange'), 3)} | {fmt(ratio('p99Ms'), 3)} | {fmt(ratio('perSecond'), 3)} |")
section = "<!-- oidc:start -->\n" + "\n".join(lines) + "\n<!-- oidc:end -->"

text = open(dst).read()
if "<!-- oidc:start -->" in text:
    head, rest = text.split("<!-- oidc:start -->", 1)
    tail = rest.split("<!-- oidc:end -->", 1)[1]
    text = head + section + tail
else:
    text = text.rstrip("\n") + "\n\n" + section + "\n"
open(dst, "w").write(text)
print(f"wrote the OIDC section of {dst} from {len(rows)} lines")
