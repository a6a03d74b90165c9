"""Lock acquire + release under contention: P processes, each taking and freeing the lock
of `production` C times with the real binary.

Usage: lock_contention.py LASTGOOD CONFIG P C

A cycle is `lastgood lock production --format json` retried every 20 ms while it exits 3
(someone else holds it), then `lastgood unlock production --epoch N` with the epoch it was granted
(so a worker never frees another's grant). Each cycle is timed from its first attempt to
the end of its unlock; throughput is grants per second of wall time. Checks that every
grant's epoch is unique.
"""

import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import summary, fmt, percentile  # noqa: E402

lastgood, config, procs, cycles = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
env = dict(os.environ)
env.pop("LASTGOOD_CONFIG", None)
samples, epochs, attempts = [], [], [0]
lock = threading.Lock()


def worker(i):
    e = dict(env, LASTGOOD_HOSTNAME="bench-%d" % (i % 2))
    for _ in range(cycles):
        t0 = time.perf_counter_ns()
        while True:
            r = subprocess.run([lastgood, "--config", config, "--format", "json", "lock", "production",
                                "--reason", "bench"], env=e, capture_output=True)
            with lock:
                attempts[0] += 1
            if r.returncode == 0:
                break
            assert r.returncode == 3, r.stderr
            time.sleep(0.02)
        epoch = json.loads(r.stdout)["epoch"]
        u = subprocess.run([lastgood, "--config", config, "-q", "unlock", "production", "--epoch", str(epoch)],
                           env=e, capture_output=True)
        assert u.returncode == 0, u.stderr
        t1 = time.perf_counter_ns()
        with lock:
            samples.append((t1 - t0) / 1e6)
            epochs.append(epoch)


start = time.perf_counter()
threads = [threading.Thread(target=worker, args=(i,)) for i in range(procs)]
for t in threads:
    t.start()
for t in threads:
    t.join()
wall = time.perf_counter() - start
assert len(set(epochs)) == len(epochs), "an epoch was granted twice"
s = summary(samples)
print("| %d | %d | %s | %s | %.1f | %d |" % (procs, len(samples), fmt(s["median"]), fmt(percentile(samples, 99)),
                                          len(samples) / wall, attempts[0]))
