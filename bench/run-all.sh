#!/usr/bin/env bash
# Runs every lastgood benchmark against one release build; prints markdown.
#   bash bench/run-all.sh            # NO_FSYNC=1 skips the strace-based fsync sensitivity run
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
if [[ -z "${LASTGOOD:-}" ]]; then
    (cd "$ROOT" && cargo build --release -q -p lastgood-cli -p lastgood-sample-app) >&2
    export LASTGOOD="$ROOT/target/release/lastgood"
fi
echo "## lastgood benchmarks — $(date -u +%Y-%m-%dT%H:%MZ), nproc=$(nproc), kernel $(uname -r), $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
echo
status=0
bash "$HERE/rollback.sh" || status=$?
echo
bash "$HERE/ledger.sh" || status=$?
echo
bash "$HERE/gitops.sh" || status=$?
echo
bash "$HERE/bake.sh" || status=$?
echo
bash "$HERE/zero-downtime.sh" || status=$?   # needs lastgood-sample-app and lastgood-load beside $LASTGOOD
if command -v strace >/dev/null && [[ -z "${NO_FSYNC:-}" ]]; then
    echo
    bash "$HERE/fsync-sensitivity.sh" || status=$?
fi
exit $status
