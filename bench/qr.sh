#!/usr/bin/env bash
# QR approval benchmarks (issue #4): waiting desktops per instance and their memory, and
# approval-to-desktop latency on one instance and across two on PostgreSQL.
#   bench/qr.sh [WAITERS] [SAMPLES]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/handoff-target}"
cargo build --release -q -p handoff-server -p handoff-bench-qr
# 100,000 open streams need more descriptors than the default, in this shell and the
# server it starts (the bench opens both ends).
ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)"
bin="$CARGO_TARGET_DIR/release/handoff"
"$CARGO_TARGET_DIR/release/handoff-bench-qr" --bin "$bin" latency --samples "${2:-300}"
"$CARGO_TARGET_DIR/release/handoff-bench-qr" --bin "$bin" capacity --waiters "${1:-100000}"
