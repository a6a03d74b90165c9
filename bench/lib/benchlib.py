"""Shared helpers for the lastgood benchmarks: timing child processes with a
monotonic clock, and summarising samples (median, p90) as markdown."""

import os
import subprocess
import sys
import time


def run_timed(argv, cwd=None, env=None, check=True):
    """Runs argv once; returns wall time in milliseconds (time.perf_counter_ns,
    a monotonic clock), measured around fork+exec+wait only."""
    t0 = time.perf_counter_ns()
    p = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t1 = time.perf_counter_ns()
    if check and p.returncode != 0:
        sys.stderr.write("command failed (exit %d): %s\n%s\n" % (
            p.returncode, " ".join(argv), p.stderr.decode(errors="replace")))
        sys.exit(1)
    return (t1 - t0) / 1e6


def percentile(samples, q):
    """Nearest-rank percentile (q in 0..100)."""
    s = sorted(samples)
    if not s:
        return float("nan")
    k = max(0, min(len(s) - 1, int(-(-q * len(s) // 100)) - 1))
    return s[k]


def median(samples):
    s = sorted(samples)
    n = len(s)
    if n == 0:
        return float("nan")
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def summary(samples):
    return {
        "n": len(samples),
        "median": median(samples),
        "p90": percentile(samples, 90),
        "min": min(samples),
        "max": max(samples),
        "mean": sum(samples) / len(samples),
    }


def fmt(ms):
    return "%.2f" % ms


def machine():
    import platform
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        with open("/proc/loadavg") as f:
            load = " ".join(f.read().split()[:3])
    except OSError:
        load = "?"
    return "nproc=%d, kernel %s, %s, python %s, loadavg at end %s" % (
        os.cpu_count() or 0, platform.release(), cpu or "unknown cpu",
        platform.python_version(), load)


def drop_database(db, psql, conn, env):
    """Drops a PostgreSQL database. A plain DROP DATABASE makes autovacuum workers on it
    exit (and waits for them); WITH (FORCE) would instead fail on them for a
    non-superuser ("must be a member of the role whose process is being terminated"), so
    it is only the fallback."""
    for attempt in range(10):
        p = subprocess.run([psql, "-X", "-q", "-At"] + conn + ["-d", "postgres"] +
                           ["-c", "DROP DATABASE IF EXISTS %s%s" % (db, " WITH (FORCE)" if attempt % 2 else "")],
                           env=env, capture_output=True, text=True)
        if p.returncode == 0:
            return
        time.sleep(0.5)
    raise SystemExit("cannot drop %s: %s" % (db, p.stderr))
