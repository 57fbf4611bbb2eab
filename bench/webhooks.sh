#!/usr/bin/env bash
# Webhook benchmark (PRODUCT §6.4, issue #21): what the durable outbox costs a sign-in, and how
# soon a subscriber hears of it. Release binary, one server per (db, mode, round), same run:
#   none     no webhook endpoint: the sign-in builds no message and writes no outbox row
#   webhook  one endpoint subscribed to session.created, a receiver on loopback
#            (tests/webhooks-receiver/receiver.mjs: Node, verifies every delivery with the npm
#            standardwebhooks package and answers 204)
# Per server: bench/oidc/signin.mjs signs BENCH_WH_USERS (200) people up (not measured), runs
# BENCH_WH_WARMUP (300) unmeasured sign-ins, then BENCH_WH_SIGNINS (3000) measured closed-loop
# passkey sign-ins (login/start + login/finish, a fresh cookie jar each) with BENCH_CONCURRENCY
# (8) workers: sign-ins/s, latency, and server CPU per sign-in from /proc (every process of the
# server's group; the receiver runs in a group of its own and is not counted). The webhook
# server then also runs BENCH_WH_RATE (200) sign-ins per second, open loop, for
# BENCH_WH_RATE_SIGNINS (3000) sign-ins, and the delivery lag of each of those sign-ins'
# session.created (receipt at the receiver minus the event's timestamp, both from this
# machine's clock) is reported as p50/p99/max, with the count delivered.
#
#   bench/webhooks.sh                        # SQLite → bench/out/webhooks.jsonl
#   BENCH_DBS="sqlite postgres" bench/webhooks.sh
#
# Knobs: BENCH_DBS (sqlite), BENCH_PG (postgres://postgres@127.0.0.1:5432), BENCH_ROUNDS (2;
# modes alternate which goes first), BENCH_SKIP_BUILD, BENCH_HANDOFF (default the release
# build in CARGO_TARGET_DIR), BENCH_WH_RESULTS (bench/out/webhooks.jsonl, overwritten).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/handoff-target}"
DBS="${BENCH_DBS:-sqlite}"
PG="${BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
ROUNDS="${BENCH_ROUNDS:-2}"
USERS="${BENCH_WH_USERS:-200}"
WARMUP="${BENCH_WH_WARMUP:-300}"
SIGNINS="${BENCH_WH_SIGNINS:-3000}"
CONCURRENCY="${BENCH_CONCURRENCY:-8}"
RATE="${BENCH_WH_RATE:-200}"
RATE_SIGNINS="${BENCH_WH_RATE_SIGNINS:-3000}"
RESULTS="${BENCH_WH_RESULTS:-$ROOT/bench/out/webhooks.jsonl}"
CLK_TCK="$(getconf CLK_TCK)"
TOKEN="webhooks-bench-operator-token-0123456789"
WORK="$(mktemp -d /tmp/handoff-webhooks-bench.XXXXXX)"
mkdir -p "$(dirname "$RESULTS")"
: >"$RESULTS"
PGIDS=()
DATABASES=()

log() { printf '[webhooks-bench] %s\n' "$*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
cleanup() {
  for g in "${PGIDS[@]:-}"; do [ -n "$g" ] && kill -TERM -- "-$g" 2>/dev/null || true; done
  sleep 0.5
  for d in "${DATABASES[@]:-}"; do [ -n "$d" ] && dropdb --if-exists -h 127.0.0.1 -U postgres "$d" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

HANDOFF="${BENCH_HANDOFF:-$CARGO_TARGET_DIR/release/handoff}"
if [ -z "${BENCH_SKIP_BUILD:-}" ]; then
  log "building the release handoff binary into $CARGO_TARGET_DIR"
  cargo build --release --locked -p handoff-server
fi
[ -x "$HANDOFF" ] || { log "no handoff binary at $HANDOFF"; exit 1; }
for dir in bench/oidc tests/webhooks-receiver; do
  [ -d "$dir/node_modules" ] || (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
done

start_group() {
  local logfile=$1
  shift
  setsid "$@" >"$logfile" 2>&1 &
  local pid=$!
  sleep 0.3
  ps -o pgid= -p "$pid" | tr -d ' '
}
stop_group() {
  kill -TERM -- "-$1" 2>/dev/null || true
  for _ in $(seq 1 50); do ps -o pid= -g "$1" >/dev/null 2>&1 || return 0; sleep 0.1; done
  kill -KILL -- "-$1" 2>/dev/null || true
}
wait_url() {
  for _ in $(seq 1 150); do curl -fsS "$1" >/dev/null 2>&1 && return 0; sleep 0.2; done
  log "$1 did not answer"; return 1
}

# The receiver, for the whole run.
RECEIVER_PGID="$(start_group "$WORK/receiver.log" node "$ROOT/tests/webhooks-receiver/receiver.mjs")"
PGIDS+=("$RECEIVER_PGID")
sleep 0.5
RECEIVER_PORT="$(head -1 "$WORK/receiver.log" | jq -r .port)"
RECEIVER="http://127.0.0.1:$RECEIVER_PORT"
log "receiver on $RECEIVER"

# run_one DB MODE ROUND
run_one() {
  local db=$1 mode=$2 round=$3 dir="$WORK/$db-$mode-$round" port pgid dbname=""
  mkdir -p "$dir/data"
  port="$(free_port)"
  local env=(HANDOFF_LISTEN="127.0.0.1:$port" HANDOFF_ORIGIN="http://localhost:$port" HANDOFF_RP_ID=localhost
    HANDOFF_DATA_DIR="$dir/data" HANDOFF_OPERATOR_TOKEN="$TOKEN" RUST_LOG=warn HANDOFF_WEBHOOKS_ALLOW_INSECURE=true
    HANDOFF_LOGIN_START_PER_MINUTE=100000000 HANDOFF_LOGIN_START_PER_IDENTIFIER=100000000
    HANDOFF_REGISTRATION_START_PER_MINUTE=100000000 HANDOFF_REGISTRATION_START_PER_IDENTIFIER=100000000)
  local db_args=()
  if [ "$db" = postgres ]; then
    dbname="webhooks_bench_$$_${mode}_${round}"
    createdb -h 127.0.0.1 -U postgres "$dbname"
    DATABASES+=("$dbname")
    env+=(HANDOFF_DATABASE_URL="$PG/$dbname")
    db_args=(--db-comm postgres)
  fi
  pgid="$(start_group "$dir/server.log" env "${env[@]}" "$HANDOFF" serve)"
  PGIDS+=("$pgid")
  wait_url "http://127.0.0.1:$port/healthz"
  curl -fsS -X POST "$RECEIVER/reset" >/dev/null
  if [ "$mode" = webhook ]; then
    local secret
    secret="$(curl -fsS -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
      -d "{\"url\": \"$RECEIVER/hook\", \"events\": [\"session.created\"]}" "http://127.0.0.1:$port/api/v1/webhooks" | jq -r .secret)"
    curl -fsS -H 'content-type: application/json' -d "{\"secret\": \"$secret\", \"fail\": 0}" "$RECEIVER/control" >/dev/null
  fi
  local common=(--url "http://127.0.0.1:$port" --origin "http://localhost:$port" --modes plain --alg ES256
    --server "handoff-$mode" --users "$USERS" --clk-tck "$CLK_TCK" --server-pgid "$pgid" "${db_args[@]}")
  log "$db $mode round $round: closed loop"
  node "$ROOT/bench/oidc/signin.mjs" "${common[@]}" --signins "$SIGNINS" --warmup "$WARMUP" \
    --concurrency "$CONCURRENCY" >"$dir/closed.jsonl" 2>>"$dir/driver.log" || { cat "$dir/driver.log" >&2; return 1; }
  jq -c --arg db "$db" --arg mode "$mode" --argjson round "$round" '. + {db: $db, webhook: $mode, round: $round, loop: "closed"}' \
    "$dir/closed.jsonl" >>"$RESULTS"
  if [ "$mode" = webhook ]; then
    # Let the closed loop's deliveries drain, then measure lag at a steady rate.
    sleep 3
    curl -fsS -X POST "$RECEIVER/reset" >/dev/null
    log "$db $mode round $round: $RATE sign-ins/s, open loop"
    node "$ROOT/bench/oidc/signin.mjs" "${common[@]}" --users 50 --signins "$RATE_SIGNINS" --warmup 0 \
      --concurrency 64 --rate "$RATE" >"$dir/rate.jsonl" 2>>"$dir/driver.log" || { cat "$dir/driver.log" >&2; return 1; }
    # The 50 sign-ups' own session.created are in the log too: keep the last RATE_SIGNINS.
    local want=$((RATE_SIGNINS + 50))
    for _ in $(seq 1 300); do
      [ "$(curl -fsS "$RECEIVER/log" | jq '.verified | length')" -ge "$want" ] && break
      sleep 0.2
    done
    curl -fsS "$RECEIVER/log" >"$dir/receiver.json"
    python3 - "$dir/receiver.json" "$RATE_SIGNINS" "$dir/rate.jsonl" <<'EOF' >>"$RESULTS"
import json, math, sys
log = json.load(open(sys.argv[1])); n = int(sys.argv[2]); rate = json.loads(open(sys.argv[3]).readline())
lags = sorted(v["lagMs"] for v in log["verified"][-n:])
pct = lambda p: lags[max(0, min(len(lags), math.ceil(p / 100 * len(lags))) - 1)] if lags else None
rate.update({"loop": "rate", "delivered": len(lags), "rejected": log["rejected"], "lagP50Ms": pct(50),
             "lagP99Ms": pct(99), "lagMaxMs": lags[-1] if lags else None})
print(json.dumps(rate))
EOF
    tail -1 "$RESULTS" | jq -c --arg db "$db" --argjson round "$round" '. + {db: $db, webhook: "webhook", round: $round}' >"$dir/last"
    sed -i '$ d' "$RESULTS"; cat "$dir/last" >>"$RESULTS"
  fi
  stop_group "$pgid"
  [ -n "$dbname" ] && dropdb --if-exists -h 127.0.0.1 -U postgres "$dbname"
  return 0
}

for round in $(seq 1 "$ROUNDS"); do
  for db in $DBS; do
    if [ $((round % 2)) -eq 1 ]; then order="none webhook"; else order="webhook none"; fi
    for mode in $order; do run_one "$db" "$mode" "$round"; done
  done
done

log "wrote $RESULTS"
python3 - "$RESULTS" >&2 <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(f"{'db':8} {'webhook':8} {'loop':6} {'round':>5} {'sign-ins/s':>10} {'p50 ms':>7} {'p99 ms':>7} {'CPU ms/sign-in':>14} {'other':>5} {'lag p50':>8} {'lag p99':>8} {'delivered':>9}")
for r in rows:
    print(f"{r['db']:8} {r['webhook']:8} {r['loop']:6} {r['round']:>5} {r['perSecond']:>10.1f} {r['p50Ms']:>7.2f} {r['p99Ms']:>7.2f} "
          f"{r.get('serverCpuMsPerSignIn', 0):>14.3f} {r.get('otherCpuCores', 0):>5.2f} {str(r.get('lagP50Ms', '')):>8} "
          f"{str(r.get('lagP99Ms', '')):>8} {str(r.get('delivered', '')):>9}")
EOF
