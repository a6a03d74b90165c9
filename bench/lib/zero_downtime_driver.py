"""Drives bench/zero-downtime.sh: operations under load, without and with the proxy,
then the proxy's added latency and throughput. Prints markdown tables."""

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from benchlib import median  # noqa: E402

LASTGOOD, LOAD, WORK = sys.argv[1], sys.argv[2], sys.argv[3]
DIRECT_PORT, PROXY_PORT = int(sys.argv[4]), int(sys.argv[5])
ROUNDS, THREADS, WARMUP_MS = int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8])
MODES = [("direct", DIRECT_PORT, "no proxy"), ("proxied", PROXY_PORT, "proxy")]


def lg(mode, *args, expect=0):
    p = subprocess.run([LASTGOOD, "--config", "lastgood.toml", "-q", *args], cwd=os.path.join(WORK, mode),
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if p.returncode != expect:
        sys.exit("lastgood %s in %s: exit %d (expected %d)\n%s" % (" ".join(args), mode, p.returncode, expect,
                                                                     p.stderr.decode(errors="replace")))


def load(port, threads, seconds, path="/version"):
    """Starts the load generator; returns (process, stop) where stop() gives its JSON."""
    p = subprocess.Popen([LOAD, "127.0.0.1:%d" % port, "--threads", str(threads), "--seconds", str(seconds),
                          "--path", path, "--until-stdin-closes"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def stop():
        out, _ = p.communicate()
        return json.loads(out)
    return stop


def under_load(mode, port, op):
    stop = load(port, THREADS, 300)
    time.sleep(0.5)
    t0 = time.perf_counter()
    op()
    took = (time.perf_counter() - t0) * 1000
    time.sleep(0.5)
    r = stop()
    r["op_ms"] = took
    return r


def write_env(mode, health):
    with open(os.path.join(WORK, mode, "app.env"), "w") as f:
        f.write("HEALTH=%s\n" % health)


def round_of(mode, port):
    """v1 serves: deploy v2, roll back to v1, failed deploy of v2; v1 serves again."""
    out = {}
    out["deploy"] = under_load(mode, port, lambda: lg(mode, "deploy", "production", "v2", "--reason", "bench"))
    out["rollback"] = under_load(mode, port, lambda: lg(mode, "rollback", "production", "--reason", "bench", "--yes"))

    def failed():
        write_env(mode, "fail")
        lg(mode, "deploy", "production", "v2", "--reason", "bench", expect=1)
    out["failed deploy"] = under_load(mode, port, failed)
    write_env(mode, "ok")
    return out


results = {m: {"deploy": [], "rollback": [], "failed deploy": []} for m, _, _ in MODES}
for i in range(ROUNDS):
    for mode, port, _ in MODES:
        for op, r in round_of(mode, port).items():
            results[mode][op].append(r)
    sys.stderr.write("round %d/%d done\n" % (i + 1, ROUNDS))


def fmt_runs(rs, key, f="%d"):
    vals = [r[key] for r in rs]
    return "%s (%s)" % (f % median(vals), ", ".join(f % v for v in vals))


print("## Operations under load (%d threads, one request per connection; app warm-up %d ms; %d rounds)\n"
      % (THREADS, WARMUP_MS, ROUNDS))
print("| operation | mode | failed requests, median (each run) | longest gap ms, median (each run) "
      "| answered by the failed release (all runs) | requests per run, median | operation ms, median |")
print("|---|---|---|---|---|---|---|")
for op in ["deploy", "failed deploy", "rollback"]:
    for mode, _, label in MODES:
        rs = results[mode][op]
        wrong = sum(r["bodies"].get("2", 0) for r in rs) if op == "failed deploy" else None
        print("| %s | %s | %s | %s | %s | %d | %.0f |" % (
            op, label, fmt_runs(rs, "failed"), fmt_runs(rs, "longest_gap_ms", "%.0f"),
            "-" if wrong is None else str(wrong), median([r["ok"] + r["failed"] for r in rs]),
            median([r["op_ms"] for r in rs])))

# Added latency and throughput: the proxied environment's serving release, reached on
# its own port and through the proxy, alternately.
status = json.loads(subprocess.run([LASTGOOD, "--config", "lastgood.toml", "status", "production", "--format",
                                    "json"], cwd=os.path.join(WORK, "proxied"), capture_output=True).stdout)
app_port = status["proxy"]["port"]
lat = {"direct": [], "proxy": []}
thr = {"direct": [], "proxy": []}
ALTERNATIONS = int(os.environ.get("ALTERNATIONS", "5"))
for _ in range(ALTERNATIONS):
    for name, port in [("direct", app_port), ("proxy", PROXY_PORT)]:
        stop = load(port, 1, 30)
        time.sleep(4)
        lat[name].append(stop())
        stop = load(port, THREADS, 30)
        time.sleep(4)
        r = stop()
        thr[name].append(r["ok"] / r["elapsed_s"])
p50 = {k: median([r["p50_us"] for r in v]) for k, v in lat.items()}
p99 = {k: median([r["p99_us"] for r in v]) for k, v in lat.items()}
tput = {k: median(v) for k, v in thr.items()}
print("\n## The proxy's cost (GET /version, one request per connection, %d alternating runs of 4 s each; "
      "medians of the runs)\n" % ALTERNATIONS)
print("| measure | direct to the app | through the proxy | added |")
print("|---|---:|---:|---:|")
print("| p50 latency, 1 thread | %d µs | %d µs | %+d µs |" % (p50["direct"], p50["proxy"], p50["proxy"] - p50["direct"]))
print("| p99 latency, 1 thread | %d µs | %d µs | %+d µs |" % (p99["direct"], p99["proxy"], p99["proxy"] - p99["direct"]))
print("| throughput, %d threads | %.0f req/s | %.0f req/s | %.2f× |" % (THREADS, tput["direct"], tput["proxy"],
                                                                     tput["proxy"] / tput["direct"]))
print("\np99 of each run, µs: direct %s; proxy %s" % ([r["p99_us"] for r in lat["direct"]],
                                                    [r["p99_us"] for r in lat["proxy"]]))
print("requests per latency run, median: direct %d; proxy %d" % (median([r["ok"] for r in lat["direct"]]),
                                                               median([r["ok"] for r in lat["proxy"]])))
ok = all(r["failed"] == 0 for op in results["proxied"].values() for r in op) and p99["proxy"] - p99["direct"] <= 1000
print("\nGoals (0 failed requests with the proxy; p99 added <= 1 ms): %s" % ("PASS" if ok else "FAIL"))
