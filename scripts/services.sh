#!/usr/bin/env bash
# Starts what lastgood's tests need and prints the variables that point at it:
#   PostgreSQL 15 (Debian's cluster `15 main`), with a role `lastgood_test` that may create
#   databases (each test makes its own and drops it), and Alembic from PyPI.
# Idempotent: safe to run when everything is already up. Needs root (apt, pg_ctlcluster).
# Also a role `root` (peer authentication over the socket, for the tests that connect
# the way operators do) and pgbouncer.
# Usage: eval "$(scripts/services.sh)"
set -euo pipefail
log() { echo "services: $*" >&2; }

# Programs the tests drive besides PostgreSQL: sqlite3 (reading ledgers), curl
# (webhook delivery), psql (fixtures), pgbouncer (migrations through a pooler in
# transaction mode: each test starts its own on a loopback port; the system service is
# never started).
missing=()
for tool in sqlite3 curl; do command -v "$tool" >/dev/null || missing+=("$tool"); done
[ -x /usr/sbin/pgbouncer ] || missing+=(pgbouncer)
# The ssh test fleet (lastgood-testkit's fleet.rs, bench/fleet.sh): sshd, ssh, ssh-keygen,
# unshare/nsenter (util-linux) and setsid.
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
for tool in ssh ssh-keygen; do command -v "$tool" >/dev/null || missing+=(openssh-client); done
for tool in unshare nsenter setsid; do command -v "$tool" >/dev/null || missing+=(util-linux); done
# The dashboard's browser tests (tests/it/browser.rs): Debian's Chromium and its
# WebDriver, the same version from the same archive (nothing is downloaded at run time).
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
# The bake window's metric signal (tests/it/bake_prometheus.rs, bench/bake.sh): Debian's
# Prometheus server; each test runs a private instance on a loopback port (the system
# service is never started).
[ -x /usr/bin/prometheus ] || missing+=(prometheus)
if [ ${#missing[@]} -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  log "installing ${missing[*]}"
  apt-get update -qq >&2
  # The tests start their own sshd per loopback address (and pgbouncer); keep the
  # packages from starting system services (policy-rc.d: no service starts during this
  # install).
  policy_made=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && policy_made=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2 || { [ -n "$policy_made" ] && rm -f /usr/sbin/policy-rc.d; exit 1; }
  if [ -n "$policy_made" ]; then rm -f /usr/sbin/policy-rc.d; fi
fi
[ -x /usr/sbin/sshd ] || { log "/usr/sbin/sshd is missing after installing openssh-server"; exit 1; }
mkdir -p /run/sshd

if ! command -v pg_ctlcluster >/dev/null || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  log "installing postgresql"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
fi
version=$(ls /usr/lib/postgresql | sort -n | tail -1)
if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main"' | grep -q .; then
  log "creating cluster $version main"
  pg_createcluster "$version" main >&2
fi
if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" && $4 == "online"' | grep -q .; then
  log "starting postgresql $version"
  pg_ctlcluster "$version" main start >&2
fi
port=$(pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" {print $3}')
for _ in $(seq 1 50); do
  pg_isready -q -h 127.0.0.1 -p "$port" && break
  sleep 0.2
done
pg_isready -q -h 127.0.0.1 -p "$port" || { log "postgresql did not come up on port $port"; exit 1; }
su postgres -c "psql -q -p $port -v ON_ERROR_STOP=1" >&2 <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'lastgood_test') THEN
    CREATE ROLE lastgood_test LOGIN CREATEDB;
  END IF;
  -- The tests run as root: Debian's `local all all peer` lets the OS user root in
  -- through the Unix socket as the role root, with no password.
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'root') THEN
    CREATE ROLE root LOGIN CREATEDB;
  END IF;
  -- The team ledger's two roles (`lastgood ledger init` prints their grants), and a
  -- login in each for the tests that run those grants and then try what they forbid.
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'lastgood_operator') THEN
    CREATE ROLE lastgood_operator NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'lastgood_viewer') THEN
    CREATE ROLE lastgood_viewer NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'lastgood_op_test') THEN
    CREATE ROLE lastgood_op_test LOGIN IN ROLE lastgood_operator;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'lastgood_view_test') THEN
    CREATE ROLE lastgood_view_test LOGIN IN ROLE lastgood_viewer;
  END IF;
  -- A superuser login, for the test that lastgood refuses to write a team ledger as one.
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'lastgood_super_test') THEN
    CREATE ROLE lastgood_super_test LOGIN SUPERUSER;
  END IF;
END $$;
ALTER ROLE lastgood_super_test PASSWORD 'super-pw';
ALTER ROLE lastgood_op_test PASSWORD 'operator-pw';
ALTER ROLE lastgood_view_test PASSWORD 'viewer-pw';
-- A password unlike anything else in the output, so tests can search for leaks of it.
ALTER ROLE lastgood_test PASSWORD 'canary-pw-Zq81x';
SQL
# Alembic (PyPI), driven by the alembic adapter's tests.
if ! python3 -c "import alembic, psycopg2" 2>/dev/null; then
  log "installing alembic and psycopg2-binary"
  python3 -m pip install -q alembic psycopg2-binary >&2
fi
command -v alembic >/dev/null || { log "alembic is not on PATH after installing it"; exit 1; }

# Docker (the compose and swarm runtimes' tests, bench/containers.sh): a reachable
# engine, a compose CLI (v2 plugin or v1), Debian's busybox-static for the test images,
# and a single-node swarm on loopback. No registry: images are built here, offline.
docker_missing=()
command -v docker >/dev/null || docker_missing+=(docker.io)
docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null || docker_missing+=(docker-compose)
dpkg -s busybox-static >/dev/null 2>&1 || docker_missing+=(busybox-static)
if [ ${#docker_missing[@]} -gt 0 ]; then
  log "installing ${docker_missing[*]}"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${docker_missing[@]}" >&2
fi
if ! docker info >/dev/null 2>&1 && command -v dockerd >/dev/null && [ ! -S /var/run/docker.sock ]; then
  log "starting dockerd (log: /var/log/lastgood-dockerd.log)"
  (setsid dockerd >/var/log/lastgood-dockerd.log 2>&1 < /dev/null &)
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
fi
docker info >/dev/null 2>&1 || {
  log "the Docker engine is not reachable ($(docker info 2>&1 | tail -1)); the container tests need it: start dockerd"
  exit 1
}
if [ "$(docker info --format '{{.Swarm.LocalNodeState}}')" != active ]; then
  log "initialising a single-node swarm on 127.0.0.1"
  docker swarm init --advertise-addr 127.0.0.1 --listen-addr 127.0.0.1:2377 >&2
fi
# Test images: lastgood-test/app:{v1,v2,v3-broken}, busybox httpd serving /www
# (`/version`; `/health`, missing from v3-broken so its healthcheck fails).
images_rev=1
if [ "$(docker image inspect -f '{{index .Config.Labels "lastgood.test.rev"}}' lastgood-test/app:v3-broken 2>/dev/null)" != "$images_rev" ]; then
  log "building the container test images"
  work=$(mktemp -d)
  mkdir -p "$work/rootfs/bin"
  cp /bin/busybox "$work/rootfs/bin/busybox"
  for a in sh httpd wget cat; do ln -s busybox "$work/rootfs/bin/$a"; done
  tar --owner=0 --group=0 -C "$work/rootfs" -cf "$work/rootfs.tar" .
  docker import --change 'ENTRYPOINT ["/bin/busybox"]' "$work/rootfs.tar" lastgood-test/busybox:1 >&2
  for v in v1 v2 v3-broken; do
    mkdir -p "$work/$v/www"
    printf '%s\n' "$v" > "$work/$v/www/version"
    case "$v" in *broken*) ;; *) echo ok > "$work/$v/www/health" ;; esac
    printf 'FROM lastgood-test/busybox:1\nCOPY www /www\nLABEL lastgood.test.rev=%s\n' "$images_rev" > "$work/$v/Dockerfile"
    DOCKER_BUILDKIT=0 docker build -q --network none -t "lastgood-test/app:$v" "$work/$v" >&2
  done
  rm -rf "$work"
fi

# ---- BEGIN lastgood-test/python-alembic (lastgood-testkit's compose_app.rs) ------------
# A Debian bookworm image with Python 3.11 and a venv at /opt/venv (on PATH) holding
# Alembic, SQLAlchemy and psycopg2-binary, for apps that docker-compose builds from
# source and whose schema Alembic migrates inside the app's container. No registry: the
# root filesystem is debootstrapped from the Debian mirror apt uses here and imported
# once as lastgood-test/bookworm-python3:<rev>; the venv is pip-installed by a
# `docker build` (PyPI from inside, host networking; else wheels the host downloads).
# Both are cached by tag and the label lastgood.test.rev: bump pyimg_rev to rebuild.
pyimg_rev=1
pyimg=lastgood-test/python-alembic:$pyimg_rev
pyimg_base=lastgood-test/bookworm-python3:$pyimg_rev
pyimg_pins=(alembic==1.20.1 sqlalchemy==2.1.9 psycopg2-binary==2.9.13)
pyimg_label() { docker image inspect -f '{{index .Config.Labels "lastgood.test.rev"}}' "$1" 2>/dev/null || true; }

# The Debian mirror apt uses: an enabled `deb` source (deb822 `URIs:` in
# sources.list.d/*.sources, or a `deb` line of sources.list or sources.list.d/*.list)
# of a release suite (not -updates, -security, -backports) with `main`; a Debian URI
# (*debian.org/..., .../debian) before any third party's.
pyimg_mirror() {
  {
    for f in /etc/apt/sources.list.d/*.sources; do
      [ -f "$f" ] || continue
      awk 'function flush(  n, m, i, s, u, ok) {
             if (types ~ /(^| )deb( |$)/ && enabled != "no" && comps ~ /(^| )main( |$)/) {
               n = split(suites, s, " "); for (i = 1; i <= n; i++) if (s[i] !~ /-/) ok = 1
               if (ok) { m = split(uris, u, " "); for (i = 1; i <= m; i++) print u[i] }
             }
             types = uris = suites = comps = enabled = ""
           }
           /^[ \t]*#/ { next }
           /^[ \t]*$/ { flush(); next }
           { key = tolower($1); $1 = ""; sub(/^ +/, "")
             if (key == "types:") types = $0; else if (key == "uris:") uris = $0
             else if (key == "suites:") suites = $0; else if (key == "components:") comps = $0
             else if (key == "enabled:") enabled = tolower($0) }
           END { flush() }' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
      [ -f "$f" ] || continue
      sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" |
        awk '$1 == "deb" && $3 !~ /-/ { for (i = 4; i <= NF; i++) if ($i == "main") { print $2; break } }'
    done
  } | awk '{ sub(/\/+$/, "") }
           /^[a-z]+:\/\/[^\/]*debian\.org\// || /\/debian$/ { print; found = 1; exit }
           first == "" { first = $0 }
           END { if (!found && first != "") print first }'
}

# In a subshell: its EXIT trap removes the work folder however the build ends.
pyimg_build() (
  local work dlog mirror proxy arch rc=0
  work=$(mktemp -d /var/tmp/lastgood-python-alembic.XXXXXX)
  # --one-file-system: never descend into anything debootstrap left mounted.
  trap 'rm -rf --one-file-system "$work"' EXIT
  if [ "$(pyimg_label "$pyimg_base")" != "$pyimg_rev" ]; then
    if ! command -v debootstrap >/dev/null; then
      log "installing debootstrap"
      apt-get update -qq >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >&2
    fi
    mirror=$(pyimg_mirror)
    [ -n "$mirror" ] || { log "no Debian mirror in apt's sources (/etc/apt/sources.list{,.d/})"; return 1; }
    # apt's proxy, if it has one, for debootstrap's downloads.
    proxy=$(apt-config dump Acquire::http::Proxy 2>/dev/null | sed -n 's/^Acquire::http::Proxy "\(.*\)";$/\1/p')
    dlog=/var/log/lastgood-debootstrap.log
    log "debootstrap bookworm from $mirror (log: $dlog)"
    http_proxy=${http_proxy:-$proxy} debootstrap --variant=minbase --include=python3,python3-venv \
      bookworm "$work/rootfs" "$mirror" >"$dlog" 2>&1 || rc=$?
    if [ "$rc" != 0 ]; then tail -n 20 "$dlog" >&2; log "debootstrap failed (exit $rc)"; return 1; fi
    # Small: no package caches or lists, docs, man pages, translations or logs; no host
    # name or resolver of this machine (the engine provides both).
    local r=$work/rootfs
    rm -rf "$r"/var/cache/apt/*.bin "$r"/var/cache/apt/archives/*.deb "$r"/var/lib/apt/lists/* \
      "$r"/usr/share/man/* "$r"/usr/share/info/* "$r"/usr/share/locale/* "$r"/var/log/* \
      "$r"/var/cache/debconf/*-old "$r"/etc/hostname "$r"/etc/resolv.conf
    find "$r/usr/share/doc" -type f ! -name copyright -delete
    tar --numeric-owner -C "$r" --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -cf - . |
      docker import --change "LABEL lastgood.test.rev=$pyimg_rev" --change 'CMD ["python3"]' - "$pyimg_base" >/dev/null
    rm -rf --one-file-system "$r"
  fi
  # The venv keeps no pip or setuptools (`python -m ensurepip` brings pip back offline).
  mkdir -p "$work/build"
  {
    echo "FROM $pyimg_base"
    echo 'ARG PIP_OPTS='
    echo 'RUN python3 -m venv /opt/venv \'
    echo " && /opt/venv/bin/pip install -q --no-cache-dir --disable-pip-version-check \$PIP_OPTS ${pyimg_pins[*]} \\"
    echo ' && /opt/venv/bin/pip uninstall -q -y pip setuptools'
    echo 'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \'
    echo '    VIRTUAL_ENV=/opt/venv PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1'
    echo "LABEL lastgood.test.rev=$pyimg_rev"
  } > "$work/build/Dockerfile"
  log "building $pyimg (pip install ${pyimg_pins[*]})"
  if ! DOCKER_BUILDKIT=0 docker build -q --force-rm --network host --build-arg 'PIP_OPTS=--retries 1' \
    -t "$pyimg" "$work/build" >/dev/null 2>"$work/build.err"; then
    # PyPI is not reachable from inside a build (here: a TLS-intercepting proxy the
    # image does not trust): the host downloads the wheels for bookworm's CPython 3.11
    # on this architecture and serves them on loopback to the build, which installs
    # only those (no wheel is left in a layer).
    log "pip inside the build failed ($(grep -m1 -o 'ERROR: .*\|SSLError([^(]*' "$work/build.err" || tail -n 1 "$work/build.err")); downloading the wheels on the host"
    arch=$(uname -m)
    mkdir -p "$work/wheels"
    python3 -m pip download -q --disable-pip-version-check --only-binary=:all: --python-version 3.11 \
      --implementation cp --abi cp311 --platform "manylinux_2_28_$arch" --platform "manylinux2014_$arch" \
      -d "$work/wheels" "${pyimg_pins[@]}" >&2
    python3 -c 'import functools, http.server, sys
h = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), h)
print(s.server_address[1], flush=True)
s.serve_forever()' "$work/wheels" >"$work/wheels.port" 2>/dev/null &
    local server=$! port=
    for _ in $(seq 1 50); do port=$(cat "$work/wheels.port"); [ -n "$port" ] && break; sleep 0.1; done
    rc=0
    [ -n "$port" ] && DOCKER_BUILDKIT=0 docker build -q --force-rm --network host \
      --build-arg "PIP_OPTS=--no-index --trusted-host 127.0.0.1 --find-links http://127.0.0.1:$port/" \
      -t "$pyimg" "$work/build" >/dev/null 2>"$work/build.err" || rc=1
    kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true
    [ "$rc" = 0 ] || { grep -v -i -e deprecated -e buildkit "$work/build.err" >&2; log "pip from the host's wheels failed too"; return 1; }
  fi
  [ "$(pyimg_label "$pyimg")" = "$pyimg_rev" ] || { log "$pyimg was not built"; return 1; }
)

if [ "$(pyimg_label "$pyimg")" != "$pyimg_rev" ]; then
  # One build at a time on this engine: a concurrent run waits, then finds the image.
  mkdir -p /run/lock
  exec 9>/run/lock/lastgood-test-python-alembic.lock
  flock 9
  if [ "$(pyimg_label "$pyimg")" != "$pyimg_rev" ]; then
    pyimg_start=$SECONDS
    pyimg_build || { log "could not build $pyimg"; exit 1; }
    log "built $pyimg in $((SECONDS - pyimg_start))s"
  fi
  exec 9>&-
fi
# ---- END lastgood-test/python-alembic ----------------------------------------------------

echo "export LASTGOOD_TEST_PG=postgres://lastgood_test:canary-pw-Zq81x@127.0.0.1:$port/postgres"
