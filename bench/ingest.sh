#!/usr/bin/env bash
# Event ingestion benchmark (issue #5): sustained batched events/s with journeys kept up to
# date, on SQLite and PostgreSQL, and the lag from an event's arrival to its journey.
#   bench/ingest.sh [extra handoff-bench-ingest flags, e.g. --duration 30 --concurrency 32]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/handoff-target}"
cargo build --release -q -p handoff-server -p handoff-bench-ingest
"$CARGO_TARGET_DIR/release/handoff-bench-ingest" --bin "$CARGO_TARGET_DIR/release/handoff" "$@"
