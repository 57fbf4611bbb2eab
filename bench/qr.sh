#!/usr/bin/env bash
# QR approval benchmarks (issue #4): waiting desktops per instance, their memory and the
# server's CPU while they wait, and approval-to-desktop latency on one instance and across
# two on PostgreSQL.
#   bench/qr.sh [WAITERS] [SAMPLES]
# Waiting desktops are measured twice: over HTTP/2 (cleartext, streams multiplexed over
# connections, as a reverse proxy speaking HTTP/2 to Handoff delivers them) with WAITERS
# streams, and over HTTP/1.1 (one connection per desktop) with as many as the
# file-descriptor limit allows (both ends of each connection are in this machine's processes).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/handoff-target}"
cargo build --release -q -p handoff-server -p handoff-bench-qr
ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)"
waiters="${1:-100000}"
http1_waiters=$(( $(ulimit -n) - 1000 ))
[ "$http1_waiters" -gt "$waiters" ] && http1_waiters="$waiters"
bin="$CARGO_TARGET_DIR/release/handoff"
bench="$CARGO_TARGET_DIR/release/handoff-bench-qr"
"$bench" --bin "$bin" latency --samples "${2:-300}"
"$bench" --bin "$bin" capacity --waiters "$waiters" --protocol http2 --streams-per-connection 100
"$bench" --bin "$bin" capacity --waiters "$http1_waiters" --protocol http1
