#!/usr/bin/env bash
# How `lastgood rollback` latency grows with the disk's fsync latency.
# Uses strace fault injection (delay_exit on fsync/fdatasync) to make every fsync of
# the lastgood process slower by D microseconds, and reports median wall time per D.
# strace itself adds a constant overhead; read the slope (ms added per ms of fsync
# latency ~= number of fsyncs per rollback), not the absolute numbers.
#
#   bash bench/fsync-sensitivity.sh                 # DELAYS="0 1000 3000 5000" N=15
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/lib/common.sh"
N="${N:-15}"
DELAYS="${DELAYS:-0 1000 3000 5000}"
command -v strace >/dev/null || { echo "needs strace" >&2; exit 2; }
bench_binary
WORK="$(mktemp -d "${TMPDIR:-/tmp}/lastgood-bench-fsync.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
bench_repo "$WORK/repo"   # tags v1 and v2
printf '[environments.production]\nsource = "repo"\ndeploy_to = "srv"\nrestart = ["true"]\nkeep_releases = 5\n' > "$WORK/lastgood.toml"
cd "$WORK"
"$LASTGOOD" --config lastgood.toml -q deploy production v1 >/dev/null
"$LASTGOOD" --config lastgood.toml -q deploy production v2 >/dev/null
sync
python3 - "$LASTGOOD" "$N" $DELAYS <<'PY'
import os, subprocess, sys, time
lg, n, delays = sys.argv[1], int(sys.argv[2]), [int(d) for d in sys.argv[3:]]
def med(xs):
    xs = sorted(xs); k = len(xs)
    return xs[k // 2] if k % 2 else (xs[k // 2 - 1] + xs[k // 2]) / 2
# Count fsyncs of one real flip.
out = subprocess.run(["strace", "-f", "-c", "-e", "trace=fsync,fdatasync", "-o", "/dev/stderr", lg,
                      "--config", "lastgood.toml", "-q", "rollback", "production", "--to", "1", "--yes",
                      "--reason", "count"], capture_output=True, text=True, check=True).stderr
calls = sum(int(l.split()[3]) for l in out.splitlines() if l.strip().endswith(("fsync", "fdatasync")))
target, rows = 2, []
for d in delays:
    xs = []
    for i in range(n + 2):
        argv = ["strace", "-f", "--seccomp-bpf", "-o", "/dev/null", "-e", "trace=fsync,fdatasync",
                "-e", "inject=fsync,fdatasync:delay_exit=%d" % d, lg, "--config", "lastgood.toml", "-q",
                "rollback", "production", "--to", str(target), "--yes", "--reason", "fsync"]
        t0 = time.perf_counter_ns()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if i >= 2:
            xs.append((time.perf_counter_ns() - t0) / 1e6)
        target = 3 - target
    rows.append((d, med(xs)))
print("### rollback vs fsync latency (N=%d each; %d fsync calls per flip; strace overhead included)" % (n, calls))
print()
print("| added fsync latency | rollback median ms (under strace) | added vs 0 |")
print("|---:|---:|---:|")
for d, m in rows:
    print("| %.1f ms | %.1f | +%.1f ms |" % (d / 1000, m, m - rows[0][1]))
if len(rows) > 1 and rows[-1][0] > rows[0][0]:
    slope = (rows[-1][1] - rows[0][1]) / ((rows[-1][0] - rows[0][0]) / 1000)
    print()
    print("slope: %.1f ms of rollback time per 1 ms of fsync latency" % slope)
PY
