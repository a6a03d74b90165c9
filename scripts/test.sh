#!/usr/bin/env bash
# lastgood's test command (README.md, .ci/run): builds every binary first, because the
# integration tests drive the real `lastgood` and the sample app it deploys, then runs
# every test of the workspace and closes with one summary line. PostgreSQL is started
# by scripts/services.sh unless LASTGOOD_TEST_PG already points at a server. Extra arguments go to
# `cargo test`.
set -uo pipefail
cd "$(dirname "$0")/.."
# The services the tests use (PostgreSQL); a test never skips for a missing service.
if [ -z "${LASTGOOD_TEST_PG:-}" ]; then
  eval "$(scripts/services.sh)" || { echo "could not start the test services (scripts/services.sh)" >&2; exit 1; }
fi
cargo build --workspace --bins --locked || exit 1
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
counts=$(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } } END { printf "%d passed, %d failed", p, f }' "$log")
echo
echo "tests: $counts"
exit "$status"
