#!/usr/bin/env bash
# Operator query latency (issue #6) with a million journeys stored, on SQLite and PostgreSQL.
# Needs the sqlite3 and psql command-line shells (to fill the databases quickly).
#   bench/views.sh [--journeys N] [--samples N] [--pg URL|none]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/handoff-target}"
cargo build --release -q -p handoff-server -p handoff-bench-views
"$CARGO_TARGET_DIR/release/handoff-bench-views" --bin "$CARGO_TARGET_DIR/release/handoff" "$@"
