#!/usr/bin/env bash
# The dashboard under load: p50 and p99 latency of `/env/production` (the timeline page:
# status, a page of 50 releases, the operations, and the plan back to the last good
# release) and of `/api/v1/environments/production/releases` (50 releases as
# `history --format json`), with 1,000 and with 100,000 releases in the ledger.
#
#   bash bench/dashboard.sh                     # builds target/release/lastgood
#   LASTGOOD=/path/to/lastgood SIZES="1000 100000" DURATION=10s CONNECTIONS=4 bash bench/dashboard.sh
#   KEEP=1 bash bench/dashboard.sh              # keep the temp dir (printed)
#
# Load: `wrk` (Debian's), one thread, CONNECTIONS connections (default 4), DURATION
# (default 10 s) per URL, against `lastgood serve` on 127.0.0.1 only; it stops by itself.
# The machine's load average is printed with each run: on a shared 2-core machine
# it is part of the number.
# Goals (issue 17): p99 <= 20 ms, and at 100,000 releases at most 1.5x the time at 1,000.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/lib/common.sh"
SIZES="${SIZES:-1000 100000}"
DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-4}"

if ! command -v wrk >/dev/null; then
    echo "installing wrk (Debian)" >&2
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >&2
fi
bench_binary
bench_workdir dashboard

SEED="$WORK/seed"
mkdir -p "$SEED"
git init -q "$SEED/repo"
(
    cd "$SEED/repo"
    git config user.email bench@example.invalid
    git config user.name bench
    echo 1 > VERSION; git add VERSION; git commit -qm "first"; git tag v1
)
cat > "$SEED/lastgood.toml" <<'TOML'
[environments.production]
source = "repo"
deploy_to = "srv"
restart = ["true"]
keep_releases = 5
TOML
(cd "$SEED" && "$LASTGOOD" --config lastgood.toml -q deploy production v1 --reason seed >/dev/null)

TOKEN="bench-token-0123456789abcdef"
SERVER=
stop_server() { if [[ -n "$SERVER" ]]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; SERVER=; fi; }
trap 'stop_server; [[ -n "${KEEP:-}" ]] || rm -rf "$WORK"' EXIT

echo "lastgood: $LASTGOOD ($("$LASTGOOD" --version))" >&2
echo "machine: nproc=$(nproc) kernel=$(uname -r) date=$(date -u +%Y-%m-%dT%H:%MZ)" >&2
echo "| releases | URL | p50 | p99 | requests/s | load average before (1, 5, 15 min) |"
echo "|---:|---|---:|---:|---:|---|"
for size in $SIZES; do
    d="$WORK/$size"
    cp -a "$SEED" "$d"
    python3 "$HERE/lib/fill_ledger.py" "$d/.lastgood/ledger.db" "$size" "$d/srv"
    sync
    (cd "$d" && LASTGOOD_SERVE_TOKEN="$TOKEN" exec "$LASTGOOD" --config lastgood.toml serve --listen 127.0.0.1:0 2>"$d/serve.log") &
    SERVER=$!
    for _ in $(seq 1 100); do grep -q '^log in: ' "$d/serve.log" 2>/dev/null && break; sleep 0.1; done
    base=$(sed -n 's|^log in: \(http://[^/]*\)/login.*|\1|p' "$d/serve.log")
    [[ -n "$base" ]] || { cat "$d/serve.log" >&2; echo "serve did not start" >&2; exit 1; }
    for path in /env/production /api/v1/environments/production/releases /metrics; do
        # Sanity and warm-up: the page answers 200 with the newest release on it.
        body=$(curl -sf -H "Authorization: Bearer $TOKEN" "$base$path")
        grep -q "$size" <<<"$body" || { echo "$path does not show release $size" >&2; exit 1; }
        for _ in $(seq 1 20); do curl -sf -o /dev/null -H "Authorization: Bearer $TOKEN" "$base$path"; done
        load=$(cut -d' ' -f1-3 /proc/loadavg)
        out=$(wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency -H "Authorization: Bearer $TOKEN" "$base$path")
        p50=$(awk '$1 == "50%" { print $2 }' <<<"$out")
        p99=$(awk '$1 == "99%" { print $2 }' <<<"$out")
        rps=$(awk '$1 == "Requests/sec:" { print $2 }' <<<"$out")
        errors=$(grep -E 'Non-2xx|Socket errors' <<<"$out" || true)
        [[ -z "$errors" ]] || { echo "$out" >&2; echo "errors under load" >&2; exit 1; }
        echo "| $size | \`$path\` | $p50 | $p99 | $rps | $load |"
    done
    stop_server
done
