#!/usr/bin/env bash
# Profiles Handoff's release binary under the sign-in load and writes the "Profile" section of
# bench/RESULTS.md: where the server's CPU goes, by area (crypto, database, JSON, HTTP, …).
#
#   bench/profile.sh                  # SQLite, then PostgreSQL
#   PROFILE_DBS=sqlite bench/profile.sh
#
# Uses `perf record -e cpu-clock --call-graph dwarf` (a software clock: hardware counters are
# not available in this VM) on the server process only, while handoff-loadgen drives sign-ins.
# Run bench/run.sh first (it builds the binaries); this script does not rebuild.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/handoff-target}"
HANDOFF="$CARGO_TARGET_DIR/release/handoff"
LOADGEN="$CARGO_TARGET_DIR/release/handoff-loadgen"
DBS="${PROFILE_DBS:-sqlite postgres}"
SECONDS_TO_PROFILE="${PROFILE_SECONDS:-8}"
PG="${BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
OUT="${BENCH_OUT:-$ROOT/bench/RESULTS.md}"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
command -v perf >/dev/null || { echo "perf is missing: apt-get install -y linux-perf" >&2; exit 1; }
[ -x "$HANDOFF" ] && [ -x "$LOADGEN" ] || { echo "build first: bench/run.sh" >&2; exit 1; }

WORK="$(mktemp -d /tmp/handoff-profile.XXXXXX)"
PGID=""
DBNAME=""
cleanup() {
  [ -n "$PGID" ] && kill -TERM -- "-$PGID" 2>/dev/null || true
  sleep 0.3
  [ -n "$DBNAME" ] && dropdb --if-exists -h 127.0.0.1 -U postgres "$DBNAME" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

SUMMARIES=()
for db in $DBS; do
  dir="$WORK/$db"
  mkdir -p "$dir/data"
  env=(HANDOFF_LISTEN="127.0.0.1:$PORT" HANDOFF_ORIGIN="http://localhost:$PORT" HANDOFF_RP_ID=localhost
    HANDOFF_DATA_DIR="$dir/data" RUST_LOG=warn
      # The load comes from one address and a few identifiers: limits high enough never to
      # refuse it, while every request still pays for counting.
      HANDOFF_LOGIN_START_PER_MINUTE=100000000 HANDOFF_LOGIN_START_PER_IDENTIFIER=100000000
      HANDOFF_REGISTRATION_START_PER_MINUTE=100000000 HANDOFF_REGISTRATION_START_PER_IDENTIFIER=100000000)
  if [ "$db" = postgres ]; then
    DBNAME="bench_profile_$$"
    createdb -h 127.0.0.1 -U postgres "$DBNAME"
    env+=(HANDOFF_DATABASE_URL="$PG/$DBNAME")
  fi
  setsid env "${env[@]}" "$HANDOFF" serve >"$dir/server.log" 2>&1 &
  pid=$!
  PGID=$pid
  for _ in $(seq 1 150); do curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
  # Warm-up 3 s with the registrations, then perf attaches for the measured part.
  "$LOADGEN" --url "http://127.0.0.1:$PORT" --origin "http://localhost:$PORT" --users 200 --concurrency 16 \
    --warmup 3s --duration "$((SECONDS_TO_PROFILE + 2))s" --server-pgid "$PGID" >"$dir/loadgen.json" 2>"$dir/loadgen.log" &
  lg=$!
  # Attach after setup and warm-up (registration of 200 users takes well under 2 s).
  sleep 4
  # Syscall counts over the same seconds: SQLite's busy handler sleeps (clock_nanosleep), thread
  # hand-offs (futex), durability (fsync/fdatasync), network writes and reads.
  perf stat -x, -o "$dir/syscalls.csv" -p "$pid" \
    -e syscalls:sys_enter_clock_nanosleep,syscalls:sys_enter_futex,syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync \
    -e syscalls:sys_enter_write,syscalls:sys_enter_sendto,syscalls:sys_enter_writev,syscalls:sys_enter_recvfrom,syscalls:sys_enter_read \
    -- sleep "$SECONDS_TO_PROFILE" 2>/dev/null &
  pstat=$!
  perf record -q -e cpu-clock -F 499 --call-graph dwarf,32768 -p "$pid" -o "$dir/perf.data" -- sleep "$SECONDS_TO_PROFILE" 2>"$dir/perf.log" || true
  wait "$pstat" || true
  wait "$lg" || { cat "$dir/loadgen.log" >&2; exit 1; }
  kill -TERM -- "-$PGID" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  PGID=""
  if [ -n "$DBNAME" ]; then dropdb --if-exists -h 127.0.0.1 -U postgres "$DBNAME"; DBNAME=""; fi
  perf script -i "$dir/perf.data" -F comm,tid,ip,sym,dso 2>/dev/null >"$dir/perf.txt"
  python3 "$ROOT/bench/profile_areas.py" "$dir/perf.txt" --db "$db" --loadgen "$dir/loadgen.json" \
    --syscalls "$dir/syscalls.csv" --seconds "$SECONDS_TO_PROFILE" >"$dir/summary.md"
  SUMMARIES+=("$dir/summary.md")
  cat "$dir/summary.md" >&2
done

python3 - "$OUT" "${SUMMARIES[@]}" <<'EOF'
import re, sys, datetime
out, parts = sys.argv[1], sys.argv[2:]
body = "\n".join(open(p).read() for p in parts)
section = ("<!-- profile:start -->\n"
           f"Written by `bench/profile.sh` on {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%dT%H:%M:%SZ} "
           "(perf, cpu-clock at 499 Hz, DWARF call graphs, server process only, 200 users, 16 workers).\n\n"
           + body + "\n<!-- profile:end -->")
try:
    text = open(out).read()
except FileNotFoundError:
    text = "# Sign-in benchmark\n\n## Profile\n\n<!-- profile:start -->\n<!-- profile:end -->\n"
text = re.sub(r"<!-- profile:start -->.*?<!-- profile:end -->", lambda _: section, text, flags=re.S)
open(out, "w").write(text)
EOF
echo "[profile] wrote the profile section of $OUT" >&2
