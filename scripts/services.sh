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
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
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

echo "export LASTGOOD_TEST_PG=postgres://lastgood_test:canary-pw-Zq81x@127.0.0.1:$port/postgres"
