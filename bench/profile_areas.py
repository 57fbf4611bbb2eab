#!/usr/bin/env python3
"""Summarises `perf script -F comm,tid,ip,sym,dso` output by area of the server.

Each sample's whole call stack is matched against the areas below. "Inclusive" is the share of
samples with at least one frame in the area. "Attributed" gives each sample to exactly one area,
the first in the priority order that any frame of its stack matches (crypto inside a handler
counts as crypto, not as HTTP), so attributed shares add up to 100 %.
"""

import argparse
import json
import re
from collections import Counter

# Priority order: first match wins for the attributed column.
AREAS = [
    ("crypto (signature verification, hashing, RNG)",
     r"libcrypto|openssl|\bp256::|\becdsa::|\bsha2::|\bring::|aws_lc|EVP_|ecp_nistz256|\bBN_|\bbn_|sha256_block|"
     r"ecdsa_|ECDSA_|EC_POINT|ec_GFp|RAND_|getrandom|rand_core|rand::|ChaCha|webauthn_rs_core::crypto"),
    ("database (sqlx, SQLite, PostgreSQL protocol)",
     r"sqlx|libsqlite3|\bsqlite3|sqlite3[A-Z]|postgres|tokio_postgres|sqlx-sqlite-worker"),
    ("WebAuthn parsing and checks (CBOR, client data, authenticator data)",
     r"webauthn_rs|serde_cbor|ciborium|cbor"),
    ("JSON and encoding (serde_json, base64)",
     r"serde_json|\bserde::|base64|utoipa"),
    ("logging and tracing", r"\btracing|tracing_subscriber"),
    ("Handoff domain and handlers", r"handoff_core|handoff_server|handoff_store|woothee|uuid"),
    ("HTTP (hyper, axum, tower, sockets)",
     r"\bhyper|\baxum|\btower|\bhttp::|httparse|\bh1|\bmio::|tcp_|__tcp|\bip_|ip_finish|__sys_send|__sys_recv|sock_|"
     r"inet_|\bnet_rx|__netif|loopback|skb|__x64_sys_(sendto|recvfrom|write|read|writev|epoll)|do_epoll|ep_poll"),
    ("async runtime and synchronisation (tokio, futex, scheduling)",
     r"\btokio|futex|parking_lot|schedule|__x64_sys_futex|pthread_cond|crossbeam|std::sync"),
    ("memory allocation", r"malloc|_int_free|cfree|\bfree\b|realloc|memalign|\bje_|\bmi_|mmap|brk"),
]
COMPILED = [(name, re.compile(pat)) for name, pat in AREAS]


def samples(path):
    comm, frames = None, []
    with open(path, errors="replace") as f:
        for line in f:
            if not line.strip():
                if comm is not None:
                    yield comm, frames
                comm, frames = None, []
                continue
            if not line[0].isspace():
                comm, frames = line.split()[0], []
            else:
                parts = line.strip().split(None, 1)
                frames.append(parts[1] if len(parts) > 1 else parts[0])
    if comm is not None:
        yield comm, frames


def short(sym):
    if sym.startswith("[unknown]"):
        dso = re.search(r"\(([^()]*)\)\s*$", sym)
        return f"[unknown] in {dso.group(1).rsplit('/', 1)[-1]}" if dso else sym
    sym = re.sub(r"\s*\(.*?\)\s*$", "", sym)  # drop the "(dso)" suffix
    sym = re.sub(r"::h[0-9a-f]{16}$", "", sym)
    sym = re.sub(r"\+0x[0-9a-f]+$", "", sym)
    return sym[:110]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("perf_script")
    ap.add_argument("--db", required=True)
    ap.add_argument("--loadgen")
    ap.add_argument("--syscalls", help="perf stat -x, output over the profiled seconds")
    ap.add_argument("--seconds", type=float)
    args = ap.parse_args()

    total = 0
    attributed, inclusive, leaf = Counter(), Counter(), Counter()
    for comm, frames in samples(args.perf_script):
        total += 1
        text = [comm] + frames
        hit = [name for name, rx in COMPILED if any(rx.search(fr) for fr in text)]
        for name in hit:
            inclusive[name] += 1
        attributed[hit[0] if hit else "other (std, kernel, unresolved)"] += 1
        if frames:
            leaf[short(frames[0])] += 1

    title = "SQLite" if args.db == "sqlite" else "PostgreSQL"
    print(f"### Handoff on {title}: where the server's CPU goes")
    print()
    if args.loadgen:
        try:
            lg = json.load(open(args.loadgen))
            print(f"{total} samples. Under perf the run did {lg['perSecond']} sign-ins/s at "
                  f"{lg.get('serverCpuMsPerSignin', '–')} ms server CPU per sign-in (profiling adds overhead).")
        except (OSError, ValueError, KeyError):
            print(f"{total} samples.")
    print()
    print("| area | attributed | inclusive |")
    print("|---|---:|---:|")
    names = [n for n, _ in AREAS] + ["other (std, kernel, unresolved)"]
    for name in sorted(names, key=lambda n: -attributed[n]):
        if attributed[name] == 0 and inclusive[name] == 0:
            continue
        pct = lambda c: f"{100 * c / total:.1f} %" if total else "–"
        print(f"| {name} | {pct(attributed[name])} | {pct(inclusive[name]) if name in inclusive else '–'} |")
    print()
    if args.syscalls and args.loadgen and args.seconds:
        try:
            rate = json.load(open(args.loadgen))["perSecond"]
            rows = []
            for line in open(args.syscalls):
                parts = line.strip().split(",")
                if len(parts) > 2 and parts[0].replace(".", "").isdigit() and "sys_enter_" in parts[2]:
                    rows.append((parts[2].split("sys_enter_")[1], int(float(parts[0]))))
            if rows and rate:
                n = rate * args.seconds
                print(f"System calls per sign-in (perf stat over the same {args.seconds:g} s, about {n:,.0f} sign-ins):")
                print()
                print("| syscall | per sign-in |")
                print("|---|---:|")
                for name, count in rows:
                    print(f"| {name} | {count / n:.2f} |")
                print()
        except (OSError, ValueError, KeyError):
            pass
    print("<details><summary>hottest functions (self time)</summary>")
    print()
    print("| self | function |")
    print("|---:|---|")
    for sym, c in leaf.most_common(15):
        print(f"| {100 * c / total:.1f} % | `{sym}` |")
    print()
    print("</details>")
    print()


if __name__ == "__main__":
    main()
