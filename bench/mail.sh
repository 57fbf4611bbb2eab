#!/usr/bin/env bash
# Email code latency (issue #22): time from POST /api/v1/email-code/start to the mail being
# accepted by the SMTP server, p50/p99, at a steady BENCH_MAIL_RATE (50) requests/s for
# BENCH_MAIL_SECONDS (20), against the release `handoff serve` with a real SMTP server on
# loopback (tests/smtp/server.py: aiosmtpd on Debian's Python, which stamps X-Received-At on
# every mail it accepts). One person signed up per request (software passkeys, not measured),
# so each mail is matched to its request by its recipient. The email code limits are lifted
# for the run (they allow 10 codes per address and 3 per identifier a minute).
#
#   bench/mail.sh                        # SQLite → bench/out/mail.jsonl
#   BENCH_DBS="sqlite postgres" bench/mail.sh
#
# Knobs: BENCH_MAIL_RATE, BENCH_MAIL_SECONDS, BENCH_DBS ("sqlite"), BENCH_PG
# (postgres://postgres@127.0.0.1:5432), BENCH_SKIP_BUILD, BENCH_HANDOFF (the release binary),
# CARGO_TARGET_DIR ($HOME/.cache/handoff-target), BENCH_MAIL_RESULTS (bench/out/mail.jsonl).
# Output: one JSON line per database (bench/mail/latency.mjs's fields plus db and started).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/handoff-target}"
RATE="${BENCH_MAIL_RATE:-50}"
SECONDS_="${BENCH_MAIL_SECONDS:-20}"
DBS="${BENCH_DBS:-sqlite}"
PG="${BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
RESULTS="${BENCH_MAIL_RESULTS:-$ROOT/bench/out/mail.jsonl}"
HANDOFF="${BENCH_HANDOFF:-$CARGO_TARGET_DIR/release/handoff}"
WORK="$(mktemp -d /tmp/handoff-mail-bench.XXXXXX)"
mkdir -p "$(dirname "$RESULTS")"
: >"$RESULTS"
PIDS=()
DATABASES=()

log() { printf '[mail-bench] %s\n' "$*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -TERM -- "-$p" 2>/dev/null || true; done
  sleep 0.3
  for d in "${DATABASES[@]:-}"; do [ -n "$d" ] && dropdb --if-exists -h 127.0.0.1 -U postgres "$d" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

/usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || { log "needs python3-aiosmtpd (apt-get install python3-aiosmtpd)"; exit 1; }
if [ -z "${BENCH_SKIP_BUILD:-}" ]; then
  log "building the release handoff binary into $CARGO_TARGET_DIR"
  cargo build --release --locked -p handoff-server
fi
[ -x "$HANDOFF" ] || { log "no handoff binary at $HANDOFF"; exit 1; }
if [ ! -d "$ROOT/bench/oidc/node_modules/undici" ]; then (cd "$ROOT/bench/oidc" && npm ci --no-audit --no-fund >&2); fi

for db in $DBS; do
  mail_dir="$WORK/mail-$db"
  mkdir -p "$mail_dir"
  smtp_port="$(free_port)"
  setsid /usr/bin/python3 "$ROOT/tests/smtp/server.py" --port "$smtp_port" --dir "$mail_dir" >"$WORK/smtp-$db.log" 2>&1 &
  PIDS+=("$!")
  port="$(free_port)"
  case $db in
    sqlite) url="sqlite://$WORK/handoff-$db.db" ;;
    postgres)
      name="handoff_mail_bench_$$"
      createdb -h 127.0.0.1 -U postgres "$name"
      DATABASES+=("$name")
      url="$PG/$name" ;;
  esac
  env HANDOFF_LISTEN="127.0.0.1:$port" HANDOFF_ORIGIN="http://localhost:$port" HANDOFF_RP_ID=localhost \
    HANDOFF_DATA_DIR="$WORK/data-$db" HANDOFF_DATABASE_URL="$url" RUST_LOG=warn \
    HANDOFF_SMTP_URL="smtp://127.0.0.1:$smtp_port" HANDOFF_SMTP_ALLOW_PLAINTEXT=true \
    HANDOFF_MAIL_FROM="Handoff bench <login@bench.example>" \
    HANDOFF_EMAIL_CODE_PER_MINUTE=100000000 HANDOFF_EMAIL_CODE_PER_IDENTIFIER=100000000 \
    HANDOFF_REGISTRATION_START_PER_MINUTE=100000000 HANDOFF_REGISTRATION_START_PER_IDENTIFIER=100000000 \
    setsid "$HANDOFF" serve >"$WORK/handoff-$db.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  for _ in $(seq 1 150); do curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
  log "$db: $RATE requests/s for $SECONDS_ s"
  started="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  line="$(node "$ROOT/bench/mail/latency.mjs" --url "http://127.0.0.1:$port" --origin "http://localhost:$port" \
    --mail-dir "$mail_dir" --rate "$RATE" --seconds "$SECONDS_" --pgid "$pid" --clk-tck "$(getconf CLK_TCK)")"
  echo "$line" | python3 -c "import json,sys; d=json.loads(sys.stdin.read()); d.update(db='$db', started='$started', rate=$RATE); print(json.dumps(d))" >>"$RESULTS"
  log "$db: $line"
  kill -TERM -- "-$pid" 2>/dev/null || true
done
log "results in ${RESULTS#"$ROOT"/}"
