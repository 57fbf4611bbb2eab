#!/usr/bin/env bash
# Sign-in benchmark: Handoff (release binary) against a minimal Node peer using
# @simplewebauthn/server, on SQLite and on PostgreSQL, in one run. Writes bench/RESULTS.md.
# Beside them, on the SQLite pass, the *floor* (bench/floor): the same HTTP API served from
# memory by axum and webauthn-rs, storing nothing; what HTTP, JSON and verification alone cost.
#
#   bench/run.sh                      # full run (both database kinds)
#   BENCH_DBS=sqlite bench/run.sh     # one kind
#
# Knobs (environment): BENCH_USERS (200), BENCH_CONCURRENCY (16), BENCH_DURATION (20s),
# BENCH_WARMUP (3s), BENCH_ROUNDS (1; each round runs ours then the peer, alternating which
# goes first), BENCH_DBS ("sqlite postgres"), BENCH_PG (postgres://postgres@127.0.0.1:5432),
# BENCH_SKIP_BUILD (non-empty: use the binaries already built), BENCH_SERVERS ("handoff peer floor"; add
# "baseline" to run BENCH_BASELINE, an older Handoff binary, beside this one with the same settings),
# BENCH_HANDOFF (the Handoff binary; default the release build), BENCH_OUT (bench/RESULTS.md), CARGO_TARGET_DIR ($HOME/.cache/handoff-target),
# PEER_SQLITE_SYNCHRONOUS (the peer's SQLite `synchronous` pragma; keep it equal to ours).
#
# Each server runs in its own process group (setsid); the loadgen reads utime+stime of every
# process in that group from /proc/<pid>/stat at the exact edges of the measured window, and
# the CPU of `postgres` processes separately. The loadgen is a different process that shares
# the machine's cores, which is why the servers' own CPU per sign-in is the fair measure.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/handoff-target}"
USERS="${BENCH_USERS:-200}"
CONCURRENCY="${BENCH_CONCURRENCY:-16}"
DURATION="${BENCH_DURATION:-20s}"
WARMUP="${BENCH_WARMUP:-3s}"
ROUNDS="${BENCH_ROUNDS:-1}"
DBS="${BENCH_DBS:-sqlite postgres}"
SERVERS="${BENCH_SERVERS:-handoff peer floor}"
PG="${BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
OUT="${BENCH_OUT:-$ROOT/bench/RESULTS.md}"
export PEER_SQLITE_SYNCHRONOUS="${PEER_SQLITE_SYNCHRONOUS:-NORMAL}"
CLK_TCK="$(getconf CLK_TCK)"

WORK="$(mktemp -d /tmp/handoff-bench.XXXXXX)"
RESULTS="$WORK/results.jsonl"
: >"$RESULTS"
PGIDS=()
DATABASES=()

# A port nobody listens on right now (chosen per server start; the origin follows it).
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

log() { printf '[bench] %s\n' "$*" >&2; }

cleanup() {
  for g in "${PGIDS[@]:-}"; do
    [ -n "$g" ] && kill -TERM -- "-$g" 2>/dev/null || true
  done
  sleep 0.5
  for d in "${DATABASES[@]:-}"; do
    [ -n "$d" ] && dropdb --if-exists -h 127.0.0.1 -U postgres "$d" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- build -------------------------------------------------------------------------------
log "building release binaries into $CARGO_TARGET_DIR"
PACKAGES=(-p handoff-loadgen -p handoff-bench-floor)
case " $SERVERS " in *" handoff "*) PACKAGES+=(-p handoff-server) ;; esac
if [ -n "${BENCH_SKIP_BUILD:-}" ]; then
  log "BENCH_SKIP_BUILD set: using the binaries already in $CARGO_TARGET_DIR/release"
else
  cargo build --release --locked "${PACKAGES[@]}"
fi
HANDOFF="${BENCH_HANDOFF:-$CARGO_TARGET_DIR/release/handoff}"
LOADGEN="$CARGO_TARGET_DIR/release/handoff-loadgen"
BASELINE="${BENCH_BASELINE:-}"
case " $SERVERS " in *" baseline "*)
  [ -x "$BASELINE" ] || { log "BENCH_SERVERS names baseline: set BENCH_BASELINE to an older handoff binary"; exit 1; } ;;
esac
FLOOR="$CARGO_TARGET_DIR/release/handoff-bench-floor"

PEER_DIR="$ROOT/bench/peer-node"
STAMP="$PEER_DIR/node_modules/.bench-stamp"
WANT="$(sha256sum "$PEER_DIR/package-lock.json" | cut -d' ' -f1) $(node --version)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  log "installing the peer's npm dependencies (better-sqlite3 compiles from source, ~2 min)"
  (cd "$PEER_DIR" && npm_config_build_from_source=true npm ci --nodedir=/usr --no-audit --no-fund)
  echo "$WANT" >"$STAMP"
fi

# --- helpers -----------------------------------------------------------------------------
# start_group LOGFILE CMD... : runs CMD in a new session/process group; prints its pgid.
start_group() {
  local logfile=$1
  shift
  setsid "$@" >"$logfile" 2>&1 &
  local pid=$!
  sleep 0.2
  local pgid
  pgid="$(ps -o pgid= -p "$pid" | tr -d ' ')"
  [ -n "$pgid" ] || { log "process exited at once:"; cat "$logfile" >&2; return 1; }
  echo "$pgid"
}

wait_healthy() {
  local port=$1 logfile=$2
  for _ in $(seq 1 150); do
    if curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  log "server on port $port did not become healthy:"
  tail -20 "$logfile" >&2
  return 1
}

# Waits (up to BENCH_QUIET_WAIT seconds, 180 by default) until the machine is idle — less than
# 0.25 of a core busy over one second — so another build or test run does not skew a
# measurement. The loadgen reports what else ran during the window as otherCpuCores anyway.
busy_cores() {
  local a b
  a=($(head -1 /proc/stat)); sleep 1; b=($(head -1 /proc/stat))
  local busy=0 i
  for i in 1 2 3 6 7 8; do busy=$((busy + b[i] - a[i])); done
  echo $((busy * 100 / CLK_TCK))  # in hundredths of a core
}
wait_quiet() {
  local deadline=$((SECONDS + ${BENCH_QUIET_WAIT:-180})) b
  while :; do
    b="$(busy_cores)"
    [ "$b" -lt 25 ] && return 0
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "machine still busy ($b/100 of a core in use by others); measuring anyway"
      return 0
    fi
    log "machine busy ($b/100 of a core in use by others); waiting"
    sleep 4
  done
}

stop_group() {
  local pgid=$1
  kill -TERM -- "-$pgid" 2>/dev/null || true
  for _ in $(seq 1 50); do
    if ! ps -o pid= -g "$pgid" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  kill -KILL -- "-$pgid" 2>/dev/null || true
}

# run_one SERVER DB ROUND
run_one() {
  local server=$1 db=$2 round=$3
  local dir="$WORK/$server-$db-$round" port pgid dbname=""
  # The floor stores nothing, so it runs once per round, on the SQLite pass.
  [ "$server" = floor ] && [ "$db" != sqlite ] && return 0
  mkdir -p "$dir"
  wait_quiet
  if [ "$db" = postgres ]; then
    dbname="bench_${server}_$$_${round}"
    createdb -h 127.0.0.1 -U postgres "$dbname"
    DATABASES+=("$dbname")
  fi
  if [ "$server" = handoff ] || [ "$server" = baseline ]; then
    local bin="$HANDOFF"
    [ "$server" = baseline ] && bin="$BASELINE"
    port="$(free_port)"
    local env=(HANDOFF_LISTEN="127.0.0.1:$port" HANDOFF_ORIGIN="http://localhost:$port" HANDOFF_RP_ID=localhost
      HANDOFF_DATA_DIR="$dir/data" RUST_LOG=warn
      # The load comes from one address and a few identifiers: limits high enough never to
      # refuse it, while every request still pays for counting.
      HANDOFF_LOGIN_START_PER_MINUTE=100000000 HANDOFF_LOGIN_START_PER_IDENTIFIER=100000000
      HANDOFF_REGISTRATION_START_PER_MINUTE=100000000 HANDOFF_REGISTRATION_START_PER_IDENTIFIER=100000000)
    [ -n "$dbname" ] && env+=(HANDOFF_DATABASE_URL="$PG/$dbname")
    mkdir -p "$dir/data"
    pgid="$(start_group "$dir/server.log" env "${env[@]}" "$bin" serve)"
  elif [ "$server" = floor ]; then
    port="$(free_port)"
    pgid="$(start_group "$dir/server.log" env FLOOR_LISTEN="127.0.0.1:$port" FLOOR_ORIGIN="http://localhost:$port" "$FLOOR")"
  else
    port="$(free_port)"
    local env=(PEER_LISTEN="127.0.0.1:$port" PEER_ORIGIN="http://localhost:$port" PEER_RP_ID=localhost
      PEER_SQLITE_PATH="$dir/peer.sqlite3" NODE_ENV=production)
    [ -n "$dbname" ] && env+=(PEER_DATABASE_URL="$PG/$dbname")
    pgid="$(start_group "$dir/server.log" env "${env[@]}" node "$PEER_DIR/server.js")"
  fi
  PGIDS+=("$pgid")
  wait_healthy "$port" "$dir/server.log"
  local extra=()
  [ "$db" = postgres ] && extra=(--db-comm postgres)
  local attempt other
  for attempt in $(seq 0 "${BENCH_RETRIES:-2}"); do
    log "$server on $db (round $round, attempt $attempt): pgid $pgid, loadgen running"
    # A fresh set of users per attempt (random identifier prefix), on the same server.
    if ! "$LOADGEN" --url "http://127.0.0.1:$port" --origin "http://localhost:$port" \
      --users "$USERS" --concurrency "$CONCURRENCY" --duration "$DURATION" --warmup "$WARMUP" \
      --server-pgid "$pgid" --clk-tck "$CLK_TCK" "${extra[@]}" >"$dir/result.json" 2>"$dir/loadgen.log"; then
      log "loadgen failed against $server on $db:"
      cat "$dir/loadgen.log" >&2
      tail -20 "$dir/server.log" >&2
      stop_group "$pgid"
      return 1
    fi
    other="$(jq -r '.otherCpuCores // 0' "$dir/result.json")"
    # Disturbed: something else used more than BENCH_MAX_OTHER cores (0.25) during the window.
    if awk -v o="$other" -v m="${BENCH_MAX_OTHER:-0.25}" 'BEGIN { exit !(o > m) }'; then
      log "window disturbed (other processes used $other cores); $( [ "$attempt" -lt "${BENCH_RETRIES:-2}" ] && echo retrying || echo keeping it, marked)"
      [ "$attempt" -lt "${BENCH_RETRIES:-2}" ] && { wait_quiet; continue; }
    fi
    break
  done
  cat "$dir/loadgen.log" >&2
  local rss
  rss="$(ps -o rss= -g "$pgid" | awk '{s+=$1} END {print s+0}')"
  stop_group "$pgid"
  if [ -n "$dbname" ]; then dropdb --if-exists -h 127.0.0.1 -U postgres "$dbname"; fi
  jq -c --arg server "$server" --arg db "$db" --argjson round "$round" --argjson rssKb "$rss" \
    '. + {server: $server, db: $db, round: $round, rssKb: $rssKb}' "$dir/result.json" >>"$RESULTS"
  log "$(tail -1 "$RESULTS")"
}

# --- run ---------------------------------------------------------------------------------
STARTED="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
for db in $DBS; do
  for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) -eq 1 ]; then order="$SERVERS"; else order="$(echo "$SERVERS" | tr ' ' '\n' | tac | tr '\n' ' ')"; fi
    for server in $order; do
      run_one "$server" "$db" "$round"
    done
  done
done

python3 "$ROOT/bench/report.py" "$RESULTS" "$OUT" \
  --started "$STARTED" --users "$USERS" --concurrency "$CONCURRENCY" \
  --duration "$DURATION" --warmup "$WARMUP" --rounds "$ROUNDS" --clk-tck "$CLK_TCK" \
  --peer-sqlite-synchronous "$PEER_SQLITE_SYNCHRONOUS" --handoff "$HANDOFF" ${BASELINE:+--baseline "$BASELINE"}
log "wrote $OUT"
