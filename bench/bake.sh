#!/usr/bin/env bash
# The bake window (issue 19): what a window costs the controller (CPU per minute of
# window with 3 signals measured every second, peak RSS), and the time from a
# regression starting to the old release serving (goal: <= interval x failures + 1 s).
#
#   bash bench/bake.sh                                   # builds target/release/lastgood
#   LASTGOOD=/path/to/lastgood WINDOW=60 N_COST=3 N_REGRESS=5 bash bench/bake.sh
#
# The sample app (lastgood-sample-app) is taken from beside LASTGOOD, else SAMPLE_APP.
# Prints markdown tables.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/lib/common.sh"

bench_binary
SAMPLE_APP="${SAMPLE_APP:-$(dirname "$LASTGOOD")/lastgood-sample-app}"
if [[ ! -x "$SAMPLE_APP" ]]; then
    (cd "$ROOT" && cargo build --release -q -p lastgood-sample-app) >&2
    SAMPLE_APP="$ROOT/target/release/lastgood-sample-app"
fi
export SAMPLE_APP

bench_workdir bake
bench_repo "$WORK/repo"   # tags v1 and v2

echo "## Bake window: \`bench/bake.sh\` ($(date -u +%Y-%m-%dT%H:%MZ), load $(cut -d' ' -f1 /proc/loadavg))"
echo
python3 "$HERE/lib/bake_driver.py" "$WORK"
