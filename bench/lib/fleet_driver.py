"""Times rollbacks across ssh fleets: `lastgood rollback` on 1, 4, 16 hosts against the
same symlink flip done by an Ansible playbook with forks = hosts.

Usage: fleet_driver.py WORK FLEET_DIR BASE ANSIBLE_PLAYBOOK N WARMUP "1 4 16"
(bench/fleet.sh prepares everything; LASTGOOD in the environment is the binary.)

FLEET_DIR/hosts has one "ADDR PORT HOLDER_PID" line per host; every host has a
private tmpfs over BASE, seen from here at /proc/<HOLDER_PID>/root/BASE.
  lastgood: WORK/lg<H>/lastgood.toml deploys to BASE/lg<H> on the first H hosts.
  ansible:  BASE/ansible/{releases/1,releases/2,current} on every host, flipped by
            WORK/flip.yml with `-f H` over WORK/inventory-<H>.ini.
Each call is timed with time.perf_counter_ns around fork+exec+wait; each flip is
checked on every host with readlink. Runs alternate targets so each one changes
`current`. Exit 1 if lastgood failed (its stderr is printed), after the Ansible half.
"""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import summary, fmt, machine  # noqa: E402

work, fleet_dir, base, playbook = sys.argv[1:5]
n, warmup = int(sys.argv[5]), int(sys.argv[6])
counts = [int(x) for x in sys.argv[7].split()]
lastgood = os.environ.get("LASTGOOD", "")

hosts = []  # (addr, port, holder)
with open(os.path.join(fleet_dir, "hosts")) as f:
    for line in f:
        addr, port, holder = line.split()
        hosts.append((addr, int(port), int(holder)))
ssh_config = os.path.join(fleet_dir, "ssh_config")
identity = os.path.join(fleet_dir, "id_ed25519")

env = dict(os.environ)
env.pop("LASTGOOD_CONFIG", None)


def timed(argv, cwd, env=env):
    """(milliseconds, exit code, stderr) of one run."""
    t0 = time.perf_counter_ns()
    p = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t1 = time.perf_counter_ns()
    return (t1 - t0) / 1e6, p.returncode, p.stderr.decode(errors="replace")


def on_host(k, rel):
    return "/proc/%d/root%s/%s" % (hosts[k][2], base, rel)


def links(h, rel):
    out = []
    for k in range(h):
        try:
            out.append(os.readlink(on_host(k, rel)))
        except OSError:
            out.append(None)
    return out


def check_links(h, rel, want, what):
    got = links(h, rel)
    bad = [(hosts[k][0], got[k]) for k in range(h) if got[k] != want[k]]
    if bad:
        sys.stderr.write("%s: %s is not %s on %s\n" % (what, rel, want, bad))
        sys.exit(1)


results = {}  # h -> {"lastgood": summary, "ansible": summary}
lastgood_failed = False


# lastgood --------------------------------------------------------------------
def lastgood_half(h):
    d = os.path.join(work, "lg%d" % h)
    os.makedirs(d, exist_ok=True)
    cfg = os.path.join(d, "lastgood.toml")
    user = os.environ.get("FLEET_USER", "lgbench")
    urls = ", ".join('"ssh://%s@%s:%d"' % (user, a, p) for a, p, _ in hosts[:h])
    with open(cfg, "w") as f:
        f.write("""[environments.production]
hosts = [ %s ]
ssh_config = "%s"
source = "%s"
deploy_to = "%s/lg%d"
restart = ["true"]
parallel = %d
""" % (urls, ssh_config, os.path.join(work, "repo"), base, h, h))
    lg = [lastgood, "--config", cfg, "-q"]
    targets = {}
    for v in ("v1", "v2"):
        ms, rc, err = timed(lg + ["deploy", "production", v, "--reason", "bench"], cwd=d)
        if rc != 0:
            return "lastgood deploy %s on %d hosts failed (exit %d):\n%s" % (v, h, rc, err)
        targets[v] = links(h, "lg%d/current" % h)
        if None in targets[v]:
            return "after deploy %s, current is missing on some host: %s" % (v, targets[v])
    if targets["v1"] == targets["v2"]:
        return "deploy v2 did not change current: %s" % targets["v2"]
    samples = []
    target = "v1"  # v2 is current
    for i in range(warmup + n):
        ms, rc, err = timed(lg + ["rollback", "production", "--to", target, "--yes", "--reason", "bench"], cwd=d)
        if rc != 0:
            return "lastgood rollback --to %s on %d hosts failed (exit %d):\n%s" % (target, h, rc, err)
        check_links(h, "lg%d/current" % h, targets[target], "lastgood rollback --to %s" % target)
        if i >= warmup:
            samples.append(ms)
        target = "v2" if target == "v1" else "v1"
    return summary(samples)


# ansible ---------------------------------------------------------------------
ansible_env = dict(env)
ansible_env.update({
    "ANSIBLE_PIPELINING": os.environ.get("ANSIBLE_PIPELINING", "True"),
    "ANSIBLE_SSH_CONTROL_PATH_DIR": os.path.join(work, "cp"),
    "ANSIBLE_LOCAL_TEMP": os.path.join(work, "ansible-local"),
    "ANSIBLE_RETRY_FILES_ENABLED": "False",
    "ANSIBLE_NOCOLOR": "1",
    "ANSIBLE_CONFIG": os.path.join(work, "ansible.cfg"),
})
with open(ansible_env["ANSIBLE_CONFIG"], "w") as f:
    f.write("[defaults]\n")  # nothing from ~/.ansible.cfg or /etc/ansible


def ansible_half(h):
    inv = os.path.join(work, "inventory-%d.ini" % h)
    with open(inv, "w") as f:
        f.write("[fleet]\n")
        for k, (a, p, _) in enumerate(hosts[:h]):
            f.write("h%d ansible_host=%s ansible_port=%d ansible_user=%s ansible_ssh_private_key_file=%s "
                    "ansible_ssh_common_args='-F %s' ansible_python_interpreter=/usr/bin/python3\n"
                    % (k + 1, a, p, os.environ.get("FLEET_USER", "lgbench"), identity, ssh_config))
    samples = []
    target = 1  # releases/2 is current
    for i in range(warmup + n):
        argv = [playbook, "-i", inv, "-f", str(h), os.path.join(work, "flip.yml"),
                "-e", "target=%d" % target, "-e", "dir=%s/ansible" % base]
        ms, rc, err = timed(argv, cwd=work, env=ansible_env)
        if rc != 0:
            sys.stderr.write("ansible-playbook failed (exit %d): %s\n%s\n" % (rc, " ".join(argv), err))
            sys.exit(1)
        check_links(h, "ansible/current", ["releases/%d" % target] * h, "ansible flip to %d" % target)
        if i >= warmup:
            samples.append(ms)
        target = 3 - target
    return summary(samples)


for h in counts:
    if h > len(hosts):
        sys.exit("%d hosts asked, %d started" % (h, len(hosts)))
    results[h] = {}
    if lastgood and not lastgood_failed:
        r = lastgood_half(h)
        if isinstance(r, str):
            sys.stderr.write("lastgood: %s\n(continuing with Ansible)\n" % r)
            lastgood_failed = True
        else:
            results[h]["lastgood"] = r
    results[h]["ansible"] = ansible_half(h)
    sys.stderr.write("%d hosts done\n" % h)


def cell(h, tool, key):
    s = results[h].get(tool)
    return fmt(s[key]) if s else "-"


print()
print("Rollback across ssh hosts (wall ms, N=%d per cell after %d warm-up; Ansible pipelining=%s, forks = hosts)"
      % (n, warmup, ansible_env["ANSIBLE_PIPELINING"]))
print()
print("| hosts | lastgood median ms | p90 | ansible median ms | p90 | ansible/lastgood | lastgood H / lastgood 1 |")
print("|---:|---:|---:|---:|---:|---:|---:|")
one = results.get(1, {}).get("lastgood") if 1 in results else None
for h in counts:
    lg, an = results[h].get("lastgood"), results[h]["ansible"]
    ratio = "%.1fx" % (an["median"] / lg["median"]) if lg else "-"
    scale = "%.2f" % (lg["median"] / one["median"]) if lg and one else "-"
    print("| %d | %s | %s | %s | %s | %s | %s |" % (
        h, cell(h, "lastgood", "median"), cell(h, "lastgood", "p90"),
        cell(h, "ansible", "median"), cell(h, "ansible", "p90"), ratio, scale))
print()
lg16, an16 = results.get(16, {}).get("lastgood"), results.get(16, {}).get("ansible")
if lg16 and one:
    print("Goal: 16 hosts within 2x one host: %.2fx (%s)" % (
        lg16["median"] / one["median"], "met" if lg16["median"] <= 2 * one["median"] else "NOT met"))
if lg16 and an16:
    print("Goal: at least 5x faster than Ansible at 16 hosts: %.1fx (%s)" % (
        an16["median"] / lg16["median"], "met" if an16["median"] >= 5 * lg16["median"] else "NOT met"))
print()
print("machine: %s" % machine())
if lastgood_failed or not lastgood:
    sys.stderr.write("lastgood was not measured (see above)\n")
    sys.exit(1)
