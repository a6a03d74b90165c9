#!/usr/bin/env bash
# Zero-downtime switch (issue 18): what users see during a deploy, a failed deploy and
# a rollback of the releases runtime with `run`, without a proxy (stop old, start new,
# check) and with lastgood's proxy (start beside, check, route, drain, stop), side by
# side in one run; then the proxy's added latency and throughput against the app
# reached directly.
#
#   bash bench/zero-downtime.sh             # builds target/release/{lastgood,lastgood-sample-app,lastgood-load}
#   LASTGOOD=/path/to/lastgood ROUNDS=5 THREADS=4 WARMUP_MS=300 bash bench/zero-downtime.sh
#   KEEP=1 bash bench/zero-downtime.sh      # keep the temp dir (printed)
#
# The load: THREADS client threads on loopback, one GET /version per connection, as
# fast as answers come, from 0.5 s before each operation to 0.5 s after it. A failed
# request is any connection refused or reset, or any status but 200; the longest gap
# is the longest time without a single successful answer. The sample app waits
# WARMUP_MS before it listens (an app loading its data) and finishes its requests on
# SIGTERM. Goals: 0 failed requests with the proxy in every operation; p99 added
# latency <= 1 ms on loopback.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/lib/common.sh"
ROUNDS="${ROUNDS:-5}"
THREADS="${THREADS:-4}"
WARMUP_MS="${WARMUP_MS:-300}"

if [[ -z "${LASTGOOD:-}" ]]; then
    (cd "$ROOT" && cargo build --release -q -p lastgood-cli -p lastgood-sample-app) >&2
    LASTGOOD="${CARGO_TARGET_DIR:-$ROOT/target}/release/lastgood"
fi
bench_binary
BIN_DIR="$(dirname "$LASTGOOD")"
for b in lastgood-sample-app lastgood-load; do
    [[ -x "$BIN_DIR/$b" ]] || { echo "missing $BIN_DIR/$b: cargo build --release -p lastgood-sample-app" >&2; exit 2; }
done

bench_workdir zero-downtime
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Two environments of the same app: `direct` (the app on a fixed port, no proxy) and
# `proxied` (the proxy on a fixed port, each release on {port}).
setup() {  # setup NAME PORT PROXY(0|1)
    local dir="$WORK/$1" port="$2" proxy="$3"
    mkdir -p "$dir"
    bench_repo "$dir/repo"
    echo "HEALTH=ok" > "$dir/app.env"
    local app_port="$port" check_port="$port"
    if [[ $proxy == 1 ]]; then app_port="{port}"; check_port="{port}"; fi
    cat > "$dir/lastgood.toml" <<TOML
[environments.production]
source = "repo"
deploy_to = "srv"
run = ["$BIN_DIR/lastgood-sample-app", "--listen", "127.0.0.1:$app_port", "--config", "$dir/app.env", "--warmup", "$WARMUP_MS"]
config_files = ["app.env"]
stop_timeout = "5s"

[[environments.production.checks]]
http = "http://127.0.0.1:$check_port/health"
interval = "50ms"
timeout = "1s"
retries = 60
TOML
    if [[ $proxy == 1 ]]; then
        printf '\n[environments.production.proxy]\nlisten = "127.0.0.1:%s"\ndrain = "5s"\n' "$port" >> "$dir/lastgood.toml"
    fi
    (cd "$dir" && "$LASTGOOD" --config lastgood.toml -q deploy production v1 --reason bench >/dev/null) || { echo "setup of $1 failed" >&2; exit 1; }
}
stop_all() {
    for d in "$WORK/direct" "$WORK/proxied"; do
        for f in "$d"/srv/.lastgood/app.pid "$d"/srv/.lastgood/instances/*.pid "$d"/srv/.lastgood/proxy/proxy.pid; do
            [[ -f $f ]] || continue
            pid="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$f")"
            kill -TERM -- "-$pid" 2>/dev/null || true
        done
    done
}
trap 'stop_all; [[ -n "${KEEP:-}" ]] || rm -rf "$WORK"' EXIT
DIRECT_PORT="$(free_port)"
PROXY_PORT="$(free_port)"
setup direct "$DIRECT_PORT" 0
setup proxied "$PROXY_PORT" 1

echo "lastgood: $LASTGOOD ($("$LASTGOOD" --version))" >&2
echo "machine: nproc=$(nproc) kernel=$(uname -r) load=$(cut -d' ' -f1-3 /proc/loadavg) date=$(date -u +%Y-%m-%dT%H:%MZ)" >&2
python3 "$HERE/lib/zero_downtime_driver.py" "$LASTGOOD" "$BIN_DIR/lastgood-load" "$WORK" \
    "$DIRECT_PORT" "$PROXY_PORT" "$ROUNDS" "$THREADS" "$WARMUP_MS"
