#!/usr/bin/env bash
# Token-endpoint benchmark: Handoff's OpenID Connect provider (release binary) against Node's
# `oidc-provider` (panva, OpenID Certified; bench/oidc-peer), same driver, same run, for ID
# tokens signed with RS256 and with ES256. Only the token endpoint is measured:
#   authorization_code  client_secret_basic + PKCE S256 + redirect_uri, code used once,
#                       answer 200 with access, refresh and ID token (signed with the alg)
#   refresh_token       a refresh token from those answers, used once, rotated (new one back)
# Codes are minted BEFORE each measured window (Handoff: its authorization endpoint answering a
# signed-in session for a first-party client; the peer: its bench-only minting port, which
# writes the same records through oidc-provider's models) and never count.
#
#   bench/oidc.sh                              # both servers, both algs → bench/out/oidc.jsonl
#   BENCH_SERVERS=peer bench/oidc.sh           # the peer alone
#
# Knobs (environment): BENCH_OIDC_ALGS ("RS256 ES256"), BENCH_SERVERS ("handoff peer"),
# BENCH_DBS ("sqlite"; Handoff's database, add "postgres" for a PostgreSQL pass; the peer keeps
# everything in memory and runs once per round and alg), BENCH_PG (postgres://postgres@127.0.0.1:5432),
# BENCH_OIDC_EXCHANGES (10000 measured exchanges per grant), BENCH_OIDC_WARMUP (1000 unmeasured
# exchanges before each window), BENCH_OIDC_BATCH (5000: codes minted per window; codes live
# 60 s on both servers), BENCH_CONCURRENCY (8 closed-loop workers), BENCH_ROUNDS (1; each round
# runs every server once per alg, alternating which goes first), BENCH_SKIP_BUILD,
# BENCH_HANDOFF (the Handoff binary; default the release build), CARGO_TARGET_DIR
# ($HOME/.cache/handoff-target), BENCH_OIDC_RESULTS (bench/out/oidc.jsonl, overwritten),
# BENCH_QUIET_WAIT (180), BENCH_RETRIES (2), BENCH_MAX_OTHER (0.25) as in run.sh.
#
# Complete sign-ins (Handoff only; BENCH_OIDC_SIGNIN=1, the default; 0 skips them): per db and
# alg, after the token-endpoint runs and on the same server, bench/oidc/signin.mjs signs
# BENCH_OIDC_SIGNIN_USERS (200) people up with software passkeys (not measured), then measures
# BENCH_OIDC_SIGNINS (2000) sign-ins per mode after BENCH_OIDC_SIGNIN_WARMUP (200) unmeasured,
# round-robin over the people, BENCH_CONCURRENCY workers, a fresh cookie jar per sign-in:
#   signin-plain  login/start + login/finish (the session cookie)
#   signin-oidc   GET /oauth2/authorize (first-party client, PKCE, state, nonce, no session)
#                 → 303 to the sign-in page; login/start + login/finish; GET
#                 /oauth2/authorize/continue → 303 with a code; POST /oauth2/token; GET
#                 /oauth2/userinfo — every step's answer checked
# Their lines carry "grant": "signin-plain" / "signin-oidc", perSecond = sign-ins/s, the
# latency of the whole sequence, and serverCpuMsPerSignIn (also as serverCpuMsPerExchange, the
# column oidc_report.py renders). The sign-in rate limits are lifted for the server, as run.sh does.
#
# Each server runs in its own process group (setsid); the driver reads utime+stime of every
# process in it from /proc/<pid>/stat at the exact edges of each measured window. The driver
# shares the machine's 2 cores with the server, so server CPU per exchange is the fair measure.
# Output: one JSON line per (server, db, alg, grant, round) in BENCH_OIDC_RESULTS, the
# driver's fields (bench/oidc/exchange.mjs) plus db, round, rssKb (the server group's RSS after
# the run), impl (implementation and version) and started (when the run began, UTC).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/handoff-target}"
ALGS="${BENCH_OIDC_ALGS:-RS256 ES256}"
SERVERS="${BENCH_SERVERS:-handoff peer}"
DBS="${BENCH_DBS:-sqlite}"
PG="${BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
EXCHANGES="${BENCH_OIDC_EXCHANGES:-10000}"
WARMUP="${BENCH_OIDC_WARMUP:-1000}"
BATCH="${BENCH_OIDC_BATCH:-5000}"
CONCURRENCY="${BENCH_CONCURRENCY:-8}"
ROUNDS="${BENCH_ROUNDS:-1}"
RESULTS="${BENCH_OIDC_RESULTS:-$ROOT/bench/out/oidc.jsonl}"
REDIRECT_URI="http://localhost:9/cb"
CLK_TCK="$(getconf CLK_TCK)"
DRIVER="$ROOT/bench/oidc/exchange.mjs"
SIGNIN_DRIVER="$ROOT/bench/oidc/signin.mjs"
SIGNIN="${BENCH_OIDC_SIGNIN:-1}"
SIGNINS="${BENCH_OIDC_SIGNINS:-2000}"
SIGNIN_WARMUP="${BENCH_OIDC_SIGNIN_WARMUP:-200}"
SIGNIN_USERS="${BENCH_OIDC_SIGNIN_USERS:-200}"
PEER_DIR="$ROOT/bench/oidc-peer"

WORK="$(mktemp -d /tmp/handoff-oidc-bench.XXXXXX)"
mkdir -p "$(dirname "$RESULTS")"
: >"$RESULTS"
PGIDS=()
DATABASES=()

log() { printf '[oidc-bench] %s\n' "$*" >&2; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

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

# --- build and install ---------------------------------------------------------------------
HANDOFF="${BENCH_HANDOFF:-$CARGO_TARGET_DIR/release/handoff}"
case " $SERVERS " in *" handoff "*)
  if [ -n "${BENCH_SKIP_BUILD:-}" ]; then
    log "BENCH_SKIP_BUILD set: using $HANDOFF"
  else
    log "building the release handoff binary into $CARGO_TARGET_DIR"
    cargo build --release --locked -p handoff-server
  fi
  [ -x "$HANDOFF" ] || { log "no handoff binary at $HANDOFF"; exit 1; } ;;
esac

# npm ci when node_modules is missing or stale (a stamp of the lock file and node version,
# as run.sh keeps for peer-node). Both are pure JavaScript: nothing compiles.
npm_install() {
  local dir=$1 stamp="$1/node_modules/.bench-stamp" want
  want="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1) $(node --version)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    log "installing npm dependencies in ${dir#"$ROOT"/}"
    (cd "$dir" && npm ci --no-audit --no-fund >&2)
    echo "$want" >"$stamp"
  fi
}
npm_install "$ROOT/bench/oidc"
case " $SERVERS " in *" peer "*) npm_install "$PEER_DIR" ;; esac

# --- helpers (as in run.sh) ----------------------------------------------------------------
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

# wait_url URL LOGFILE: until URL answers 2xx.
wait_url() {
  local url=$1 logfile=$2
  for _ in $(seq 1 150); do
    if curl -fsS "$url" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  log "$url did not answer:"
  tail -20 "$logfile" >&2
  return 1
}

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

# --- Handoff hooks -------------------------------------------------------------------------
# The environment `handoff serve` and `handoff clients` share for one run (set by run_one).
HANDOFF_ENV=()

# handoff_register_client ALG: registers the bench's client on the server's database and
# prints `handoff clients add --json`'s answer, {"clientId": "...", "clientSecret": "..."}.
# Confidential (a secret, client_secret_basic at the token endpoint), first-party (no consent
# screen, so the authorization endpoint redirects straight back with a code), ID tokens
# signed with ALG. Called after the server is healthy (its migrations have run).
handoff_register_client() {
  local alg=$1
  env "${HANDOFF_ENV[@]}" "$HANDOFF" clients add --name "oidc-bench-$alg" --redirect-uri "$REDIRECT_URI" \
    --first-party --id-token-alg "$alg" --json
}

# handoff_session_cookie PORT: signs a fresh person up with a software passkey (ES256,
# "none" attestation, user verified) through /api/v1/passkeys/registration/{start,finish}
# and prints the session cookie the server set, NAME=VALUE (handoff_session=…).
handoff_session_cookie() {
  local port=$1
  node "$ROOT/bench/oidc/session.mjs" --url "http://127.0.0.1:$port" --origin "http://localhost:$port"
}

# --- one server, one alg --------------------------------------------------------------------
# measure_with_retries WHAT DIR RESULTS LOG PGID CMD...: runs the driver CMD (its JSON lines are
# appended to RESULTS, its stderr goes to LOG), again up to BENCH_RETRIES times while a window
# was disturbed (other processes used more than BENCH_MAX_OTHER cores; the last try is kept).
# On failure: shows the logs, stops the server group and returns 1.
measure_with_retries() {
  local what=$1 dir=$2 results=$3 logfile=$4 pgid=$5
  shift 5
  local attempt other
  for attempt in $(seq 0 "${BENCH_RETRIES:-2}"); do
    log "$what, attempt $attempt: pgid $pgid, driver running"
    if ! "$@" >"$dir/attempt.jsonl" 2>"$logfile"; then
      log "driver failed: $what:"
      cat "$logfile" >&2
      tail -20 "$dir/server.log" >&2
      stop_group "$pgid"
      return 1
    fi
    other="$(jq -s 'map(.otherCpuCores // 0) | max' "$dir/attempt.jsonl")"
    # Disturbed: something else used more than BENCH_MAX_OTHER cores during a window.
    if awk -v o="$other" -v m="${BENCH_MAX_OTHER:-0.25}" 'BEGIN { exit !(o > m) }'; then
      log "window disturbed (other processes used $other cores); $( [ "$attempt" -lt "${BENCH_RETRIES:-2}" ] && echo retrying || echo keeping it, marked)"
      [ "$attempt" -lt "${BENCH_RETRIES:-2}" ] && { wait_quiet; continue; }
    fi
    break
  done
  cat "$dir/attempt.jsonl" >>"$results"
  cat "$logfile" >&2
}

# run_one SERVER DB ALG ROUND
run_one() {
  local server=$1 db=$2 alg=$3 round=$4
  local dir="$WORK/$server-$db-$alg-$round" port pgid dbname="" impl client_id="" client_secret=""
  local args=(--alg "$alg" --server "$server" --exchanges "$EXCHANGES" --warmup "$WARMUP" --batch "$BATCH"
    --concurrency "$CONCURRENCY" --clk-tck "$CLK_TCK" --redirect-uri "$REDIRECT_URI")
  mkdir -p "$dir"
  wait_quiet
  port="$(free_port)"
  if [ "$server" = handoff ]; then
    if [ "$db" = postgres ]; then
      dbname="oidc_bench_$$_${alg}_${round}"
      createdb -h 127.0.0.1 -U postgres "$dbname"
      DATABASES+=("$dbname")
      args+=(--db-comm postgres)
    fi
    HANDOFF_ENV=(HANDOFF_LISTEN="127.0.0.1:$port" HANDOFF_ORIGIN="http://localhost:$port" HANDOFF_RP_ID=localhost
      HANDOFF_DATA_DIR="$dir/data" RUST_LOG=warn
      HANDOFF_LOGIN_START_PER_MINUTE=100000000 HANDOFF_LOGIN_START_PER_IDENTIFIER=100000000
      HANDOFF_REGISTRATION_START_PER_MINUTE=100000000 HANDOFF_REGISTRATION_START_PER_IDENTIFIER=100000000)
    [ -n "$dbname" ] && HANDOFF_ENV+=(HANDOFF_DATABASE_URL="$PG/$dbname")
    mkdir -p "$dir/data"
    pgid="$(start_group "$dir/server.log" env "${HANDOFF_ENV[@]}" "$HANDOFF" serve)"
    PGIDS+=("$pgid")
    wait_url "http://127.0.0.1:$port/healthz" "$dir/server.log"
    local client cookie
    client="$(handoff_register_client "$alg")"
    cookie="$(handoff_session_cookie "$port")"
    client_id="$(jq -r .clientId <<<"$client")"
    client_secret="$(jq -r .clientSecret <<<"$client")"
    args+=(--discovery "http://127.0.0.1:$port/.well-known/openid-configuration"
      --client-id "$client_id" --client-secret "$client_secret" --handoff-cookie "$cookie")
    impl="handoff $("$HANDOFF" --version 2>/dev/null | awk '{print $NF}')"
  else
    local mint_port secret
    mint_port="$(free_port)"
    secret="$(head -c 24 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
    pgid="$(start_group "$dir/server.log" env PEER_LISTEN="127.0.0.1:$port" PEER_ISSUER="http://localhost:$port" \
      PEER_MINT_LISTEN="127.0.0.1:$mint_port" PEER_ID_TOKEN_ALG="$alg" PEER_CLIENT_ID=oidc-bench \
      PEER_CLIENT_SECRET="$secret" PEER_REDIRECT_URI="$REDIRECT_URI" NODE_ENV=production \
      node "$PEER_DIR/server.mjs")"
    PGIDS+=("$pgid")
    wait_url "http://127.0.0.1:$mint_port/healthz" "$dir/server.log"
    wait_url "http://127.0.0.1:$port/.well-known/openid-configuration" "$dir/server.log"
    args+=(--discovery "http://127.0.0.1:$port/.well-known/openid-configuration"
      --client-id oidc-bench --client-secret "$secret" --mint-url "http://127.0.0.1:$mint_port/bench/codes")
    impl="oidc-provider $(jq -r .version "$PEER_DIR/node_modules/oidc-provider/package.json"), node $(node --version)"
  fi
  args+=(--server-pgid "$pgid")
  if ! measure_with_retries "$server ($db) $alg, round $round" "$dir" "$dir/result.jsonl" "$dir/driver.log" "$pgid" \
    node "$DRIVER" "${args[@]}"; then
    return 1
  fi
  # Complete sign-ins on the same server (Handoff only): plain, then through the OIDC provider.
  if [ "$server" = handoff ] && [ "$SIGNIN" = 1 ]; then
    local signin_db=()
    [ "$db" = postgres ] && signin_db=(--db-comm postgres)
    if ! measure_with_retries "$server ($db) $alg sign-ins, round $round" "$dir" "$dir/result.jsonl" "$dir/signin.log" "$pgid" \
      node "$SIGNIN_DRIVER" --url "http://127.0.0.1:$port" --origin "http://localhost:$port" --modes plain,oidc \
      --alg "$alg" --server "$server" --client-id "$client_id" --client-secret "$client_secret" \
      --redirect-uri "$REDIRECT_URI" --users "$SIGNIN_USERS" --signins "$SIGNINS" --warmup "$SIGNIN_WARMUP" \
      --concurrency "$CONCURRENCY" --clk-tck "$CLK_TCK" --server-pgid "$pgid" "${signin_db[@]}"; then
      return 1
    fi
  fi
  local rss
  rss="$(ps -o rss= -g "$pgid" | awk '{s+=$1} END {print s+0}')"
  stop_group "$pgid"
  if [ -n "$dbname" ]; then dropdb --if-exists -h 127.0.0.1 -U postgres "$dbname"; fi
  jq -c --arg db "$db" --argjson round "$round" --argjson rssKb "$rss" --arg impl "$impl" --arg started "$STARTED" \
    '. + {db: $db, round: $round, rssKb: $rssKb, impl: $impl, started: $started}' "$dir/result.jsonl" >>"$RESULTS"
}

# --- run ------------------------------------------------------------------------------------
STARTED="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
log "started $STARTED: servers '$SERVERS', algs '$ALGS', $EXCHANGES exchanges per grant, concurrency $CONCURRENCY"
for round in $(seq 1 "$ROUNDS"); do
  for alg in $ALGS; do
    if [ $((round % 2)) -eq 1 ]; then order="$SERVERS"; else order="$(echo "$SERVERS" | tr ' ' '\n' | tac | tr '\n' ' ')"; fi
    for server in $order; do
      if [ "$server" = peer ]; then
        run_one peer memory "$alg" "$round"
      else
        for db in $DBS; do run_one "$server" "$db" "$alg" "$round"; done
      fi
    done
  done
done

log "wrote $RESULTS"
# A quick look (the report is rendered from the JSON lines; nothing here is typed by hand).
python3 - "$RESULTS" >&2 <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(f"{'server':8} {'db':7} {'alg':5} {'grant':18} {'round':>5} {'ex/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'CPU ms/ex':>9} {'other':>5} {'errors':>6}")
for r in rows:
    print(f"{r['server']:8} {r['db']:7} {r['alg']:5} {r['grant']:18} {r['round']:>5} {r['perSecond']:>9.1f} {r['p50Ms']:>7.2f} "
          f"{r['p99Ms']:>7.2f} {r.get('serverCpuMsPerExchange', 0):>9.3f} {r.get('otherCpuCores', 0):>5.2f} {r['errors']:>6}")
EOF
