"""Times `lastgood rollback` flips against a hand-made atomic symlink flip.

Usage: rollback_driver.py LASTGOOD WORKDIR N WARMUP

WORKDIR holds lastgood.toml (env `production`, deploy_to = srv, releases #1 and #2
deployed, #2 current) and floor/ (releases/1, releases/2, current) plus flip.sh.
Each iteration runs, interleaved so drift hits both alike:
  (a) lastgood -q rollback production --to T --yes --reason bench   (T alternates 1/2)
  (b) sh flip.sh floor T     (ln -sfn + mv -T + /bin/true)
and, for analysis, `lastgood --version` (process spawn floor) and a read-only
`lastgood -q rollback ... --dry-run`. Every call is timed on its own with
time.perf_counter_ns; every flip is checked with readlink.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import run_timed, summary, fmt, machine  # noqa: E402

lastgood, work, n, warmup = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
goal_ms = float(os.environ.get("GOAL_MS", "50"))
cfg = os.path.join(work, "lastgood.toml")
srv_current = os.path.join(work, "srv", "current")
floor_dir = os.path.join(work, "floor")
flip = os.path.join(work, "flip.sh")

env = dict(os.environ)
env.pop("LASTGOOD_CONFIG", None)


def lg_rollback(target, dry=False):
    argv = [lastgood, "--config", cfg, "-q", "rollback", "production", "--to", str(target),
            "--yes", "--reason", "bench"]
    if dry:
        argv.append("--dry-run")
    return run_timed(argv, cwd=work, env=env)


def floor_flip(target):
    return run_timed(["sh", flip, floor_dir, str(target)], cwd=work, env=env)


def version():
    return run_timed([lastgood, "--version"], cwd=work, env=env)


def expect_link(path, target):
    got = os.readlink(path)
    if os.path.basename(got.rstrip("/")) != str(target):
        sys.stderr.write("flip did not happen: %s -> %s, wanted releases/%s\n" % (path, got, target))
        sys.exit(1)


samples = {"lastgood rollback": [], "hand flip (floor)": [], "lastgood --version": [],
           "lastgood rollback --dry-run": []}
target = 1  # #2 is current after setup
for i in range(warmup + n):
    a = lg_rollback(target)
    expect_link(srv_current, target)
    b = floor_flip(target)
    expect_link(os.path.join(floor_dir, "current"), target)
    c = version()
    d = lg_rollback(3 - target, dry=True)  # plan only; current stays at `target`
    expect_link(srv_current, target)
    if i >= warmup:
        samples["lastgood rollback"].append(a)
        samples["hand flip (floor)"].append(b)
        samples["lastgood --version"].append(c)
        samples["lastgood rollback --dry-run"].append(d)
    target = 3 - target

stats = {k: summary(v) for k, v in samples.items()}
floor = stats["hand flip (floor)"]["median"]
lg = stats["lastgood rollback"]

if os.environ.get("BENCH_JSON"):
    with open(os.environ["BENCH_JSON"], "w") as f:
        json.dump({"samples": samples, "stats": stats}, f, indent=1)

print("### rollback (N=%d per row, %d warm-up, %s)" % (n, warmup, machine()))
print()
print("| command | median ms | p90 ms | min ms | max ms | median / floor |")
print("|---|---:|---:|---:|---:|---:|")
for k in ["lastgood rollback", "hand flip (floor)", "lastgood --version", "lastgood rollback --dry-run"]:
    s = stats[k]
    print("| %s | %s | %s | %s | %s | %.1fx |" % (k, fmt(s["median"]), fmt(s["p90"]), fmt(s["min"]),
                                                fmt(s["max"]), s["median"] / floor))
print()
verdict = "PASS" if lg["median"] <= goal_ms else "FAIL"
print("| benchmark | goal | lastgood median | p90 | floor median | ratio | result |")
print("|---|---|---:|---:|---:|---:|---|")
print("| rollback flip | median <= %g ms | %s | %s | %s | %.1fx | %s |" % (
    goal_ms, fmt(lg["median"]), fmt(lg["p90"]), fmt(floor), lg["median"] / floor, verdict))
