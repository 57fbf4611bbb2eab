#!/usr/bin/env bash
# Diagnosis accuracy (issue #6): runs the release server with short lifetimes (so journeys
# that do not end in a session are diagnosed within seconds), plays `handoff simulate` with
# planted root causes against it, and scores the diagnosis against the ground truth:
# precision and recall per root cause, and phases reported observed that nobody emitted.
#   bench/accuracy.sh [--journeys N] [--rate R] [--seed S] [--pg URL|none]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/handoff-target}"
journeys=2000 rate=100 seed=11 pg="postgres://postgres@127.0.0.1:5432/postgres"
while [ $# -gt 0 ]; do
  case "$1" in
    --journeys) journeys="$2"; shift 2 ;;
    --rate) rate="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --pg) pg="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
cargo build --release -q -p handoff-server
bin="$CARGO_TARGET_DIR/release/handoff"
out=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$out"' EXIT
token=bench-operator-token-0123456789

run() { # backend database-url
  local backend=$1 url=$2 port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  HANDOFF_LISTEN=127.0.0.1:$port HANDOFF_ORIGIN=http://localhost:$port HANDOFF_DATA_DIR="$out/$backend" \
  HANDOFF_DATABASE_URL="$url" HANDOFF_OPERATOR_TOKEN=$token RUST_LOG=warn \
  HANDOFF_QR_TTL_SECONDS=5 HANDOFF_JOURNEY_IDLE_SECONDS=5 HANDOFF_QR_CREATE_PER_MINUTE=1000000 \
  HANDOFF_QR_APPROVE_PER_MINUTE=1000000 HANDOFF_EVENTS_PER_MINUTE=10000000 \
  HANDOFF_LOGIN_START_PER_MINUTE=100000000 HANDOFF_LOGIN_START_PER_IDENTIFIER=100000000 \
  HANDOFF_REGISTRATION_START_PER_MINUTE=100000000 HANDOFF_REGISTRATION_START_PER_IDENTIFIER=100000000 \
    "$bin" serve >"$out/$backend.log" 2>&1 &
  server=$!
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  echo "== $backend: $journeys attempts at $rate/s, seed $seed"
  "$bin" simulate --url "http://127.0.0.1:$port" --origin "http://localhost:$port" --journeys "$journeys" \
    --rate "$rate" --seed "$seed" --truth "$out/$backend-truth.jsonl" --score --score-json "$out/$backend-score.json" \
    --score-timeout 120 --operator-token $token --quiet
  kill $server; wait $server 2>/dev/null || true
}

mkdir -p "$out/sqlite"
run sqlite "sqlite://$out/sqlite/handoff.db"
if [ "$pg" != none ] && psql "$pg" -qAtc 'select 1' >/dev/null 2>&1; then
  db="handoff_bench_accuracy_$$"
  psql "$pg" -qc "create database $db" >/dev/null
  run postgres "${pg%/*}/$db"
  psql "$pg" -qc "drop database $db" >/dev/null
fi
