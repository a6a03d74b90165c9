"""Times read commands against ledgers of different sizes.

Usage: ledger_driver.py LASTGOOD N SIZE=DIR [SIZE=DIR ...]

Each DIR holds a lastgood.toml whose ledger has SIZE releases for `production`.
Calls are interleaved (size x command per iteration) and each is timed on its own
with time.perf_counter_ns. Goals (GOAL_MS, GOAL_RATIO): median <= 10 ms at the
largest size, and largest/smallest median <= 1.5.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import run_timed, summary, fmt, machine  # noqa: E402

lastgood, n = sys.argv[1], int(sys.argv[2])
warmup = int(os.environ.get("WARMUP", "3"))
goal_ms = float(os.environ.get("GOAL_MS", "10"))
goal_ratio = float(os.environ.get("GOAL_RATIO", "1.5"))
sizes = []
for a in sys.argv[3:]:
    k, d = a.split("=", 1)
    sizes.append((int(k), d))
sizes.sort()
env = dict(os.environ)
env.pop("LASTGOOD_CONFIG", None)

commands = [
    ("status production", ["status", "production"]),
    ("history production --limit 20", ["history", "production", "--limit", "20"]),
    ("history production --limit 20 --format json", ["--format", "json", "history", "production", "--limit", "20"]),
    ("status production --format json", ["--format", "json", "status", "production"]),
    ("--version (spawn floor)", ["--version"]),
]
goal_cmds = {"status production", "history production --limit 20", "history production --limit 20 --format json"}

samples = {(name, size): [] for name, _ in commands for size, _ in sizes}
for i in range(warmup + n):
    for size, d in sizes:
        cfg = os.path.join(d, "lastgood.toml")
        for name, args in commands:
            argv = [lastgood] + (["--config", cfg] if args != ["--version"] else []) + args
            t = run_timed(argv, cwd=d, env=env)
            if i >= warmup:
                samples[(name, size)].append(t)

stats = {k: summary(v) for k, v in samples.items()}
if os.environ.get("BENCH_JSON"):
    with open(os.environ["BENCH_JSON"], "w") as f:
        json.dump({"%s @%d" % k: {"samples": samples[k], "stats": stats[k]} for k in samples}, f, indent=1)

small, big = sizes[0][0], sizes[-1][0]
print("### ledger reads (N=%d per cell, %d warm-up, %s)" % (n, warmup, machine()))
print()
hdr = "| command | " + " | ".join("median @%d | p90 @%d" % (s, s) for s, _ in sizes) + \
      " | ratio %d/%d | goal | result |" % (big, small)
print(hdr)
print("|---|" + "---:|---:|" * len(sizes) + "---:|---|---|")
for name, _ in commands:
    cells = " | ".join("%s | %s" % (fmt(stats[(name, s)]["median"]), fmt(stats[(name, s)]["p90"])) for s, _ in sizes)
    ratio = stats[(name, big)]["median"] / stats[(name, small)]["median"]
    if name in goal_cmds:
        ok_abs = stats[(name, big)]["median"] <= goal_ms
        ok_ratio = ratio <= goal_ratio
        goal = "<= %g ms @%d; ratio <= %g" % (goal_ms, big, goal_ratio)
        result = "PASS" if ok_abs and ok_ratio else "FAIL (%s)" % ", ".join(
            x for x, ok in (("time", ok_abs), ("ratio", ok_ratio)) if not ok)
    else:
        goal, result = "(reference)", ""
    print("| %s | %s | %.2fx | %s | %s |" % (name, cells, ratio, goal, result))
