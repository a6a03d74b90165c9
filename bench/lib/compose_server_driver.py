"""Driver of bench/compose-server.sh: a full rollback of a compose stack on an ssh host,
lastgood against the runbook's shell commands. See the script's header."""

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import median  # noqa: E402

work, base, host, iters = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
tmpl = os.path.join(root, "crates", "lastgood-testkit", "src", "compose_app")
lastgood = os.environ["LASTGOOD"]
admin = os.environ["LASTGOOD_TEST_PG"]
ssh_config = os.path.join(work, "fleet", "ssh_config")
user = os.environ.get("FLEET_USER", "lgbench")
BASE_IMAGE = "lastgood-test/python-alembic:1"
REVISIONS = ["3f1c9a2b7d10_create_items.py", "8b4e6d0c2a91_add_items_price.py"]
tag = "%d" % os.getpid()


def sh(argv, cwd=None, env=None, check=True, input=None):
    p = subprocess.run(argv, cwd=cwd, env=env, input=input, capture_output=True, text=True)
    if check and p.returncode != 0:
        sys.exit("failed (exit %d): %s\n%s%s" % (p.returncode, " ".join(argv), p.stdout, p.stderr))
    return p.stdout.strip()


def ssh(script, check=True):
    """Runs a shell script on the host in one ssh session, as a person would."""
    return sh(["ssh", "-F", ssh_config, host, "sh -s"], input=script, check=check)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read(*parts):
    with open(os.path.join(tmpl, *parts)) as f:
        return f.read()


def db_url(name):
    u = urllib.parse.urlsplit(admin)
    return urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + name, u.query, u.fragment))


def files(project, port, version):
    """The tree of `version` (v1 or v2) of the fixture's app, as the testkit writes it."""
    def fill(t):
        return t.replace("@PROJECT@", project).replace("@PORT@", str(port)).replace("@BASE_IMAGE@", BASE_IMAGE)
    column = "None" if version == "v1" else '"price"'
    out = {
        "Dockerfile": fill(read("Dockerfile")),
        "docker-compose.prod.yml": fill(read("docker-compose.prod.yml")),
        ".env": fill(read("env")),
        ".dockerignore": read("dockerignore"),
        "app.py": read("app.py").replace("@COLUMN@", column).replace("@SETTINGS@", ""),
        "alembic.ini": read("alembic.ini"),
        "alembic/env.py": read("alembic", "env.py"),
        "alembic/script.py.mako": read("alembic", "script.py.mako"),
        "VERSION": version + "\n",
    }
    for f in REVISIONS[: 1 if version == "v1" else 2]:
        out["alembic/versions/" + f] = read("alembic", "versions", f)
    return out


class Side:
    """One compose project with its own port, database and repository (v1, v2 tagged)."""

    def __init__(self, name):
        self.name = name
        self.dir = os.path.join(work, name)
        self.project = "lgbench-cs-%s-%s" % (tag, name.lower())
        self.port = free_port()
        self.db = "lg_bench_cs_%s_%s" % (tag, name.lower())
        self.url = db_url(self.db)
        sh(["psql", admin, "-qc", "DROP DATABASE IF EXISTS %s" % self.db])
        sh(["psql", admin, "-qc", "CREATE DATABASE %s" % self.db])
        self.repo = os.path.join(self.dir, "repo")
        os.makedirs(self.repo)
        git = ["git", "-C", self.repo]
        sh(git + ["init", "-q"])
        sh(git + ["config", "user.email", "bench@example.invalid"])
        sh(git + ["config", "user.name", "bench"])
        for v in ("v1", "v2"):
            for path, text in files(self.project, self.port, v).items():
                p = os.path.join(self.repo, path)
                os.makedirs(os.path.dirname(p), exist_ok=True)
                with open(p, "w") as f:
                    f.write(text)
            sh(git + ["add", "-A"])
            sh(git + ["commit", "-qm", "Release " + v])
            sh(git + ["tag", v])
        sh(["chmod", "-R", "a+rX", self.dir])

    def health(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.settimeout(3)
                s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
            return data.decode(errors="replace").split("\r\n\r\n", 1)[-1].strip()
        except OSError:
            return ""

    def wait(self, want, limit=120):
        t = time.monotonic()
        while self.health() != want:
            if time.monotonic() - t > limit:
                sys.exit("%s: /health never answered %r (last %r)" % (self.name, want, self.health()))
            time.sleep(0.2)

    def remove(self):
        label = "label=com.docker.compose.project=" + self.project
        ids = sh(["docker", "ps", "-aq", "--filter", label], check=False).split()
        if ids:
            sh(["docker", "rm", "-f", "-v"] + ids, check=False)
        images = set(sh(["docker", "images", "-q", "--no-trunc", "--filter",
                         "label=org.opencontainers.image.title=" + self.project], check=False).split())
        images |= set(sh(["docker", "images", "-q", "--no-trunc", self.project + "-app"], check=False).split())
        if images:
            sh(["docker", "rmi", "-f"] + sorted(images), check=False)
        sh(["psql", admin, "-qc", "DROP DATABASE IF EXISTS %s WITH (FORCE)" % self.db], check=False)
        for name in sh(["psql", admin, "-Atc", "SELECT datname FROM pg_database WHERE datname LIKE '%s%%'"
                        % self.db], check=False).split():
            sh(["psql", admin, "-qc", 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name], check=False)


class Lastgood(Side):
    def setup(self):
        with open(os.path.join(self.dir, ".env"), "w") as f:
            f.write("COMPOSE_PROJECT_NAME=%s\nDATABASE_URL=%s\n" % (self.project, self.url))
        with open(os.path.join(self.dir, "lastgood.toml"), "w") as f:
            f.write('''[environments.production]
runtime = "compose"
hosts = ["ssh://%s@%s"]
ssh_config = "%s"
source = "repo"
deploy_to = "%s/lastgood"
compose_file = "docker-compose.prod.yml"
project = "%s"
build = ["docker-compose", "-f", "docker-compose.prod.yml", "build", "app"]
config_files = [".env"]

[environments.production.database]
url = "%s"
adapter = "alembic"
run_in = "app"

[[environments.production.checks]]
http = "http://127.0.0.1:%d/health"
expect_body = "ok {version}"
interval = "200ms"
timeout = "2s"
retries = 100
''' % (user, host, ssh_config, base, self.project, self.url, self.port))
        self.lg("deploy", "production", "v1", "--reason", "bench")
        self.lg("deploy", "production", "v2", "--reason", "bench")
        self.wait("ok v2")

    def lg(self, *args):
        return sh([lastgood, "--config", os.path.join(self.dir, "lastgood.toml"), "-q"] + list(args))

    def reset(self):
        """Back on v2: a rollback to the newest v2 release (migrates up, no build)."""
        self.lg("rollback", "production", "--to", "2", "--yes", "--reason", "bench: back to v2")
        self.wait("ok v2")

    def rollback(self):
        since = time.time()
        t = time.perf_counter_ns()
        out = self.lg("rollback", "production", "--to", "1", "--allow-data-loss", "--yes", "--reason", "bench",
                      "--format", "json")
        ms = (time.perf_counter_ns() - t) / 1e6
        if self.health() != "ok v1":
            sys.exit("lastgood's rollback ended but /health answers %r" % self.health())
        # Where the time went: the steps, and the one-off containers it started.
        op = json.loads(out)
        steps = ", ".join("%s %.1fs" % (st["name"], st.get("duration_ms", 0) / 1e3) for st in op.get("steps", []))
        created = sh(["docker", "events", "--since", "%.3f" % since, "--until", "%.3f" % time.time(),
                      "--filter", "type=container", "--filter", "event=create"], check=False).splitlines()
        print("  lastgood: %s; %d container(s) created" % (steps, len(created)), file=sys.stderr)
        return ms


class Runbook(Side):
    def setup(self):
        self.checkout = "%s/runbook" % base
        sh(["chown", "-R", user, self.repo])  # the deploy user's clone source (git's ownership check)
        self.env = "cd %s && export DATABASE_URL=%s && C='docker-compose -f docker-compose.prod.yml'\n" % (
            shlex.quote(self.checkout), shlex.quote(self.url))
        ssh("set -e; git clone -q %s %s && cd %s && git -c advice.detachedHead=false checkout -q v1\n"
            % (shlex.quote(self.repo), shlex.quote(self.checkout), shlex.quote(self.checkout)))
        ssh("set -e; " + self.env + "$C build -q app >/dev/null\n$C run --rm -T app alembic upgrade head\n"
            "$C up -d app\n")
        self.wait("ok v1")
        self.reset()

    def reset(self):
        """Back on v2 the runbook's way (untimed)."""
        ssh("set -e; " + self.env + "$C down\ngit -c advice.detachedHead=false checkout -q v2\n"
            "$C build -q app >/dev/null\n$C run --rm -T app alembic upgrade head\n$C up -d app\n")
        self.wait("ok v2")

    def rollback(self, no_cache):
        build = "$C build --no-cache -q app >/dev/null" if no_cache else "$C build -q app >/dev/null"
        script = ("set -e; " + self.env + "$C down\n"
                  "$C run --rm -T app alembic downgrade -1\n"
                  "git -c advice.detachedHead=false checkout -q v1\n"
                  + build + "\n$C up -d app\n"
                  "until [ \"$(curl -s http://127.0.0.1:%d/health)\" = 'ok v1' ]; do sleep 0.2; done\n" % self.port)
        t = time.perf_counter_ns()
        ssh(script)
        return (time.perf_counter_ns() - t) / 1e6


def main():
    lg, rb = Lastgood("L"), Runbook("R")
    try:
        lg.setup()
        rb.setup()
        cols = sh(["psql", lg.url, "-Atc", "SELECT string_agg(column_name, ',') FROM information_schema.columns "
                   "WHERE table_name = 'items'"])
        print("set up: both sides serve v2 (items: %s)" % cols, file=sys.stderr)
        res = {"lastgood rollback": [], "runbook (build --no-cache)": [], "runbook (cached build)": []}
        for i in range(iters):
            res["lastgood rollback"].append(lg.rollback())
            lg.reset()
            res["runbook (build --no-cache)"].append(rb.rollback(True))
            rb.reset()
            res["runbook (cached build)"].append(rb.rollback(False))
            rb.reset()
            print("round %d: %s" % (i + 1, ", ".join("%s %.0f ms" % (k, v[-1]) for k, v in res.items())),
                  file=sys.stderr)
        ref = median(res["lastgood rollback"])
        print("\n### Full rollback of a compose stack on an ssh host (code + Alembic downgrade + health), "
              "median of %d, load %s\n" % (iters, open("/proc/loadavg").read().split()[0]))
        print("| what | median s | min | max | ratio to lastgood |")
        print("|---|---:|---:|---:|---:|")
        for k, v in res.items():
            m = median(v)
            print("| %s | %.2f | %.2f | %.2f | %.2fx |" % (k, m / 1e3, min(v) / 1e3, max(v) / 1e3, m / ref))
    finally:
        lg.remove()
        rb.remove()


main()
