"""The bake window's benchmark (bench/bake.sh): what a window costs the controller, and
how long a regression takes to be rolled back.

1. Cost: the same deploy with and without a window of WINDOW seconds measuring three
   signals every second (the checks, the app's log, a command), run N_COST times each;
   the CPU time (user + system, the lastgood process and the children it waited for:
   the command signal's runs) and the peak RSS come from wait4's rusage. CPU per minute
   of window = (CPU with window - CPU without) / window minutes.
2. Time to the old release: a window with a command signal that fails once a flag file
   exists (interval 1 s, failures 2); the flag is created at T0 while the window runs,
   and GET /version is polled every 5 ms until the old version answers (T1). Goal:
   T1 - T0 <= interval x failures + 1 s. The same with the app killed (kill -9) at T0:
   the process signal, a regression at once (goal: interval + 1 s).
"""

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time

from benchlib import median, percentile

LASTGOOD = os.environ["LASTGOOD"]
SAMPLE_APP = os.environ["SAMPLE_APP"]
WORK = sys.argv[1]
WINDOW = int(os.environ.get("WINDOW", "60"))
N_COST = int(os.environ.get("N_COST", "3"))
N_REGRESS = int(os.environ.get("N_REGRESS", "5"))
INTERVAL = 1
FAILURES = 2


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


PORT = free_port()
FLAG = os.path.join(WORK, "bad")


def config(command_signal):
    sig = (
        '[[environments.production.monitor.signals]]\nlog = "app"\nmatch = ["ERROR"]\n\n'
        "[[environments.production.monitor.signals]]\n"
        + ('command = ["sh", "-c", "test ! -e %s"]\n' % FLAG if command_signal else 'command = ["true"]\n')
    )
    return (
        "[environments.production]\n"
        'source = "repo"\ndeploy_to = "srv"\n'
        'run = ["%s", "--listen", "127.0.0.1:%d"]\n'
        'stop_timeout = "2s"\nkeep_releases = 3\n\n'
        "[[environments.production.checks]]\n"
        'http = "http://127.0.0.1:%d/health"\ninterval = "50ms"\nretries = 40\n\n'
        "[environments.production.monitor]\n"
        'interval = "%ds"\nfailures = %d\nprocess = %s\n\n%s'
        % (SAMPLE_APP, PORT, PORT, INTERVAL, FAILURES, "true" if not command_signal else "true", sig)
    )


def write_config(command_signal, process=False):
    text = config(command_signal)
    if not process:
        text = text.replace("process = true", "process = false")
    with open(os.path.join(WORK, "lastgood.toml"), "w") as f:
        f.write(text)


def lastgood(*args):
    return [LASTGOOD, "--config", os.path.join(WORK, "lastgood.toml"), *args]


def run_rusage(argv):
    """Runs argv; returns (exit code, cpu seconds, max rss KiB, wall seconds)."""
    t0 = time.monotonic()
    p = subprocess.Popen(argv, cwd=WORK, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    err = []
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    err = p.stderr.read().decode(errors="replace")
    code = os.waitstatus_to_exitcode(status)
    return code, ru.ru_utime + ru.ru_stime, ru.ru_maxrss, wall, err


def get_version():
    try:
        s = socket.create_connection(("127.0.0.1", PORT), timeout=0.5)
        s.settimeout(0.5)
        s.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        buf = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
        s.close()
        return buf.split(b"\r\n\r\n", 1)[1].decode().strip() if b"\r\n\r\n" in buf else None
    except OSError:
        return None


def status():
    out = subprocess.run(lastgood("status", "production", "--format", "json"), cwd=WORK,
                         capture_output=True, check=True).stdout
    return json.loads(out)


def cost():
    write_config(command_signal=False)
    code, *_ , err = run_rusage(lastgood("deploy", "production", "v1", "--reason", "bench", "--no-monitor"))
    assert code == 0, err
    tags = ["v2", "v1"]
    without, with_window = [], []
    for i in range(N_COST):
        for monitor in (False, True):
            tag = tags[(2 * i + int(monitor)) % 2]
            flag = ["--no-monitor"] if not monitor else ["--monitor", "%ds" % WINDOW]
            code, cpu, rss, wall, err = run_rusage(lastgood("deploy", "production", tag, "--reason", "bench", *flag))
            assert code == 0, err
            (with_window if monitor else without).append((cpu, rss, wall))
    c0 = median([c for c, _, _ in without])
    c1 = median([c for c, _, _ in with_window])
    per_min = (c1 - c0) / (WINDOW / 60.0)
    print("### Controller cost of a %d s window, 3 signals every %d s (N=%d each)\n" % (WINDOW, INTERVAL, N_COST))
    print("| deploy | CPU s (median) | max RSS MiB (median) | wall s (median) |")
    print("|---|---:|---:|---:|")
    print("| `--no-monitor` | %.3f | %.1f | %.2f |" % (c0, median([r for _, r, _ in without]) / 1024,
                                                     median([w for _, _, w in without])))
    print("| `--monitor %ds` | %.3f | %.1f | %.2f |" % (WINDOW, c1, median([r for _, r, _ in with_window]) / 1024,
                                                      median([w for _, _, w in with_window])))
    print("\nCPU per minute of window: **%.3f s** (%.2f%% of one core)\n" % (per_min, per_min / 60 * 100))
    return per_min


def wait_for_window(deadline_s=60):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        b = status().get("bake")
        if b and b.get("signals"):
            return
        time.sleep(0.05)
    raise SystemExit("no bake window started")


def regressions(kind):
    """kind: 'command' (a flag file makes the command signal fail) or 'crash' (kill -9)."""
    write_config(command_signal=True, process=(kind == "crash"))
    if os.path.exists(FLAG):
        os.remove(FLAG)
    code, *_, err = run_rusage(lastgood("deploy", "production", "v1", "--reason", "bench", "--no-monitor"))
    assert code == 0, err
    times = []
    for i in range(N_REGRESS):
        if os.path.exists(FLAG):
            os.remove(FLAG)
        old = get_version()
        new_tag = "v2" if old == "1" else "v1"
        p = subprocess.Popen(lastgood("deploy", "production", new_tag, "--reason", "bench", "--monitor", "120s"),
                             cwd=WORK, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for_window()
        # A moment into the window, at a random phase of the interval.
        time.sleep(0.3 + (i * 0.37) % 1.0)
        serving = get_version()
        t0 = time.monotonic()
        if kind == "command":
            open(FLAG, "w").close()
        else:
            pid = status()["app"]["pid"]
            os.killpg(pid, signal.SIGKILL)
        while get_version() != old:
            time.sleep(0.005)
            if time.monotonic() - t0 > 30:
                raise SystemExit("the old release did not come back in 30 s")
        t1 = time.monotonic()
        err = p.stderr.read().decode(errors="replace")
        code = p.wait()
        assert code == 1, "the deploy should fail (exit 1), got %d: %s" % (code, err)
        assert serving != old
        times.append(t1 - t0)
        if os.path.exists(FLAG):
            os.remove(FLAG)
    return times


def main():
    per_min = cost()
    goal_cmd = INTERVAL * FAILURES + 1
    goal_crash = INTERVAL + 1
    print("### From a regression to the old release serving (N=%d each)\n" % N_REGRESS)
    print("| regression | signal | goal s | median s | p90 s | max s | result |")
    print("|---|---|---:|---:|---:|---:|---|")
    ok = True
    for kind, sig, goal in (("command", "command, failures 2", goal_cmd), ("crash", "process (at once)", goal_crash)):
        t = regressions(kind)
        worst = max(t)
        res = "**PASS**" if worst <= goal else "**FAIL**"
        ok = ok and worst <= goal
        print("| %s | %s | %.1f | %.2f | %.2f | %.2f | %s |" % (
            "flag file makes the command exit 1" if kind == "command" else "the app is killed (kill -9)",
            sig, goal, median(t), percentile(t, 90), worst, res))
    print()
    print("summary: cpu_per_min=%.3f goal_met=%s" % (per_min, ok))


if __name__ == "__main__":
    main()
