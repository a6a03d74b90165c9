#!/usr/bin/env bash
# Container rollbacks on the machine's Docker engine, against their floors:
#   compose: `lastgood rollback` (no checks configured) vs a bare `<compose> up -d` with
#            the old tag (floor 1) and `up -d` then polling until the container is healthy
#            (floor 2, the same end state lastgood waits for)
#   swarm:   `lastgood rollback` vs `docker service update --image <old> --detach` then
#            polling the Engine API until UpdateStatus is completed and the task runs
# Each is measured with a healthcheck on the app (HEALTH=1, interval 500ms) and without
# (HEALTH=0). Rollbacks alternate between two releases (v1 <-> v2), interleaved with the
# floors, so drift hits all alike.
#
#   bash bench/containers.sh                  # N=6 rollbacks each way, both runtimes, HEALTH="0 1"
#   N=10 RUNTIMES=compose HEALTH=0 bash bench/containers.sh
#   LASTGOOD=/path/to/lastgood bash bench/containers.sh
#
# Needs what scripts/services.sh sets up (engine, compose CLI, swarm, lastgood-test/app images).
# Goal (issue): a rollback within 1.2x its floor.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/lib/common.sh"
N="${N:-6}"
RUNTIMES="${RUNTIMES:-compose swarm}"
HEALTH="${HEALTH:-0 1}"

bench_binary
bench_workdir containers
docker image inspect lastgood-test/app:v1 lastgood-test/app:v2 >/dev/null 2>&1 || {
    echo "the test images are missing: run scripts/services.sh first" >&2
    exit 2
}
if docker compose version >/dev/null 2>&1; then COMPOSE="docker compose"; else COMPOSE="docker-compose"; fi
{
    echo "lastgood: $LASTGOOD"
    echo "docker: $(docker version --format 'client {{.Client.Version}}, engine {{.Server.Version}} (API {{.Server.APIVersion}})')"
    echo "compose: $($COMPOSE version | head -1)"
    echo "date: $(date -u +%Y-%m-%dT%H:%MZ), nproc=$(nproc), load $(cut -d' ' -f1-3 /proc/loadavg)"
} >&2

export WORK N COMPOSE
for rt in $RUNTIMES; do
    for h in $HEALTH; do
        python3 - "$rt" "$h" <<'PY'
import json, os, socket, statistics, subprocess, sys, time

rt, health = sys.argv[1], sys.argv[2] == "1"
work, n, compose = os.environ["WORK"], int(os.environ["N"]), os.environ["COMPOSE"].split()
lastgood = os.environ["LASTGOOD"]
d = os.path.join(work, f"{rt}-{'h' if health else 'n'}")
os.makedirs(d)
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
name = f"lgbench-{rt}-{'h' if health else 'n'}-{port}"
repo = f"{name}/app"

def sh(*args, env=None, check=True):
    r = subprocess.run(args, cwd=d, env=env, capture_output=True, text=True)
    if check and r.returncode != 0:
        sys.exit(f"{args} failed: {r.stdout}{r.stderr}")
    return r.stdout.strip()

def timed(*args, env=None):
    t = time.perf_counter_ns()
    sh(*args, env=env)
    return (time.perf_counter_ns() - t) / 1e6

def engine(path):
    s = socket.socket(socket.AF_UNIX)
    s.connect("/var/run/docker.sock")
    s.sendall(f"GET /v1.41{path} HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    if b"chunked" in head.lower():
        out, rest = b"", body
        while rest:
            size, _, rest = rest.partition(b"\r\n")
            k = int(size or b"0", 16)
            if k == 0:
                break
            out, rest = out + rest[:k], rest[k + 2:]
        body = out
    return json.loads(body)

for v in ("v1", "v2"):
    sh("docker", "tag", f"lastgood-test/app:{v}", f"{repo}:{v}")
hc = ["wget", "-q", "-O", "/dev/null", f"http://127.0.0.1:{port}/health"]
cfg = f'[environments.production]\nruntime = "{rt}"\n'
try:
    if rt == "compose":
        lines = [
            "services:", "  web:", f"    image: {repo}:${{LASTGOOD_VERSION}}", "    network_mode: host",
            f'    command: ["httpd", "-f", "-p", "127.0.0.1:{port}", "-h", "/www"]', "    stop_signal: SIGKILL",
        ]
        if health:
            lines += ["    healthcheck:", f"      test: {json.dumps(['CMD'] + hc)}", "      interval: 500ms",
                      "      timeout: 2s", "      retries: 2"]
        open(os.path.join(d, "compose.yaml"), "w").write("\n".join(lines) + "\n")
        cfg += f'compose_file = "compose.yaml"\nproject = "{name}"\n'
    else:
        args = ["docker", "service", "create", "--quiet", "--detach=false", "--no-resolve-image", "--name", name,
                "--network", "host", "--update-order", "stop-first", "--update-monitor", "1s",
                "--stop-signal", "SIGKILL"]
        if health:
            args += ["--health-cmd", " ".join(hc), "--health-interval", "500ms", "--health-retries", "2"]
        sh(*args, f"{repo}:v1", "httpd", "-f", "-p", f"127.0.0.1:{port}", "-h", "/www")
        cfg += f'service = "{name}"\n'
    open(os.path.join(d, "lastgood.toml"), "w").write(cfg)
    lg = lambda *a: (lastgood, "--config", os.path.join(d, "lastgood.toml"), "-q", *a)
    sh(*lg("deploy", "production", "v1", "--reason", "bench"))
    sh(*lg("deploy", "production", "v2", "--reason", "bench"))

    def floor_compose(version, wait):
        env = dict(os.environ, LASTGOOD_VERSION=version)
        t = time.perf_counter_ns()
        sh(*compose, "--file", "compose.yaml", "--project-name", name, "up", "--detach", env=env)
        want = sh("docker", "image", "inspect", "-f", "{{.Id}}", f"{repo}:{version}")
        while wait:
            cs = engine(f"/containers/json?all=1&filters=" + json.dumps({"label": [f"com.docker.compose.project={name}"]}).replace(" ", ""))
            c = engine(f"/containers/{cs[0]['Id']}/json") if cs else None
            if c and c["Image"] == want and c["State"]["Status"] == "running" and \
                    c["State"].get("Health", {}).get("Status", "healthy") == "healthy":
                break
            time.sleep(0.05)
        return (time.perf_counter_ns() - t) / 1e6

    def floor_swarm(version):
        t = time.perf_counter_ns()
        before = engine(f"/services/{name}").get("UpdateStatus", {}).get("StartedAt")
        sh("docker", "service", "update", "--quiet", "--detach", "--no-resolve-image", "--image", f"{repo}:{version}", name)
        while True:
            s = engine(f"/services/{name}")
            u = s.get("UpdateStatus", {})
            if u.get("StartedAt") != before and u.get("State") == "completed":
                tasks = engine("/tasks?filters=" + json.dumps({"service": [name], "desired-state": ["running"]}).replace(" ", ""))
                if tasks and all(t["Status"]["State"] == "running" and t["Spec"]["ContainerSpec"]["Image"] == f"{repo}:{version}" for t in tasks):
                    break
            if u.get("State") in ("paused", "rollback_completed"):
                sys.exit(f"floor update failed: {u}")
            time.sleep(0.05)
        return (time.perf_counter_ns() - t) / 1e6

    res = {"lastgood rollback": [], "floor": []}
    if rt == "compose":
        res["floor + wait healthy"] = []
    # Warm-up: one round trip each (not measured).
    sh(*lg("rollback", "production", "--to", "1", "--yes", "--reason", "warm"))
    sh(*lg("rollback", "production", "--to", "2", "--yes", "--reason", "warm"))
    state = "v2"
    for i in range(2 * n):
        target, other = ("v1", "v2") if state == "v2" else ("v2", "v1")
        rid = target[1:]
        res["lastgood rollback"].append(timed(*lg("rollback", "production", "--to", rid, "--yes", "--reason", "bench")))
        # Each floor starts where lastgood started (`other` serving) and ends on `target`,
        # where lastgood's ledger already is.
        if rt == "compose":
            floor_compose(other, True)
            res["floor"].append(floor_compose(target, False))
            floor_compose(other, True)
            res["floor + wait healthy"].append(floor_compose(target, True))
        else:
            floor_swarm(other)
            res["floor"].append(floor_swarm(target))
        state = target
    med = {k: statistics.median(v) for k, v in res.items()}
    label = f"{rt}, {'healthcheck 500ms' if health else 'no healthcheck'}"
    print(f"\n### {label} (N={len(res['lastgood rollback'])})\n")
    print("| what | median ms | min | max | ratio to lastgood |")
    print("|---|---:|---:|---:|---:|")
    for k, v in res.items():
        print(f"| {k} | {med[k]:.0f} | {min(v):.0f} | {max(v):.0f} | {med['lastgood rollback'] / med[k]:.2f}x |")
finally:
    if rt == "swarm":
        sh("docker", "service", "rm", name, check=False)
    else:
        ids = sh("docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={name}", check=False).split()
        if ids:
            sh("docker", "rm", "-f", *ids, check=False)
    tags = sh("docker", "images", "--format", "{{.Repository}}:{{.Tag}}", check=False).split()
    mine = [t for t in tags if t.startswith(f"{repo}:") or t.startswith(f"lastgood-keep/{name}:")]
    if mine:
        sh("docker", "rmi", "--no-prune", *mine, check=False)
PY
    done
done
