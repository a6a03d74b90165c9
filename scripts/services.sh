#!/usr/bin/env bash
# Starts what lastgood's tests need and prints the variables that point at it:
#   PostgreSQL 15 (Debian's cluster `15 main`), with a role `lastgood_test` that may create
#   databases (each test makes its own and drops it), and Alembic from PyPI.
# Idempotent: safe to run when everything is already up. Needs root (apt, pg_ctlcluster).
# Usage: eval "$(scripts/services.sh)"
set -euo pipefail
log() { echo "services: $*" >&2; }

# Programs the tests drive besides PostgreSQL: sqlite3 (reading ledgers), curl
# (webhook delivery), psql (fixtures).
missing=()
for tool in sqlite3 curl; do command -v "$tool" >/dev/null || missing+=("$tool"); done
# The ssh test fleet (lastgood-testkit's fleet.rs, bench/fleet.sh): sshd, ssh, ssh-keygen,
# unshare/nsenter (util-linux) and setsid.
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
for tool in ssh ssh-keygen; do command -v "$tool" >/dev/null || missing+=(openssh-client); done
for tool in unshare nsenter setsid; do command -v "$tool" >/dev/null || missing+=(util-linux); done
if [ ${#missing[@]} -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  log "installing ${missing[*]}"
  apt-get update -qq >&2
  # The tests start their own sshd per loopback address; keep the package from starting
  # a system sshd on port 22 (policy-rc.d: no service starts during this install).
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
END $$;
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

echo "export LASTGOOD_TEST_PG=postgres://lastgood_test:canary-pw-Zq81x@127.0.0.1:$port/postgres"
