#!/usr/bin/env bash
# lastgood's test command (README.md, .ci/run): builds every binary first, because the
# integration tests drive the real `lastgood` and the sample app it deploys, then runs
# every test of the workspace and closes with one summary line. Extra arguments go to
# `cargo test`.
set -uo pipefail
cd "$(dirname "$0")/.."
cargo build --workspace --bins --locked || exit 1
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
counts=$(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } } END { printf "%d passed, %d failed", p, f }' "$log")
echo
echo "tests: $counts"
exit "$status"
