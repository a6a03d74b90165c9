#!/usr/bin/env bash
# The docker-compose server runbook's full rollback (code + one Alembic downgrade +
# health) on an ssh host: `lastgood rollback` against the runbook's own commands run over
# ssh by a shell script, in one run on the same app, engine and database server:
#
#   lastgood       `lastgood rollback production --to 1 --allow-data-loss`: stop the app,
#                  back up the database (template copy), `alembic downgrade` in v2's
#                  recorded image, bring up v1's recorded image, wait until /health
#                  answers `ok v1`. Never builds.
#   runbook        one ssh session on the host, in the team's checkout: `docker-compose
#                  down`, `docker-compose run --rm app alembic downgrade -1` (v2's image:
#                  only it knows v2's revision), `git checkout v1`, `docker-compose build
#                  --no-cache app`, `docker-compose up -d app`, poll /health for `ok v1`.
#   runbook, cached build   the same with `build` instead of `build --no-cache`: the
#                  runbook at its fastest (every layer of v1 still in the build cache).
#
# Each side has its own compose project, port and database (same templates: the test
# fixture crates/lastgood-testkit/src/compose_app/); between timed runs each side is put
# back on v2 untimed. The host is a real sshd on a loopback address with a private tmpfs
# over its deploy folder (bench/lib/fleet-hosts.sh), sharing the machine's Docker engine.
#
#   bash bench/compose-server.sh                   # ITER=5
#   ITER=3 LASTGOOD=/path/to/lastgood KEEP=1 bash bench/compose-server.sh
#
# Needs what scripts/services.sh sets up (engine, docker-compose, the image
# lastgood-test/python-alembic:1, PostgreSQL; LASTGOOD_TEST_PG names an admin URL).
# Goal (issue 14): lastgood at least 3x faster than the runbook, and not slower than the
# runbook with a cached build.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/lib/common.sh"
source "$HERE/lib/fleet-hosts.sh"
ITER="${ITER:-5}"

[[ -n "${LASTGOOD_TEST_PG:-}" ]] || { echo "LASTGOOD_TEST_PG is not set: eval \"\$(scripts/services.sh)\" first" >&2; exit 2; }
docker image inspect lastgood-test/python-alembic:1 >/dev/null 2>&1 ||
    { echo "lastgood-test/python-alembic:1 is missing: run scripts/services.sh first" >&2; exit 2; }
command -v docker-compose >/dev/null || { echo "docker-compose is missing: run scripts/services.sh" >&2; exit 2; }
bench_binary
bench_workdir compose-server
cleanup() {
    fleet_cleanup
    [[ -n "${KEEP:-}" ]] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The deploy user drives the host's Docker engine, as a deploy user in group docker does.
id "$FLEET_USER" >/dev/null 2>&1 || useradd -M -d /nonexistent -s /bin/sh "$FLEET_USER"
usermod -aG docker "$FLEET_USER"
chmod 755 "$WORK"
BASE="/var/lib/lastgood-fleet/bench-cs-$$"
fleet_start 1 "$WORK/fleet" "$BASE"
{
    echo "lastgood: $LASTGOOD ($("$LASTGOOD" --version 2>&1 | head -1))"
    echo "docker: $(docker version --format 'client {{.Client.Version}}, engine {{.Server.Version}}'); $(docker-compose version | head -1)"
    echo "host: ${FLEET_ADDRS[1]}:${FLEET_PORTS[1]} as $FLEET_USER, deploy folder $BASE"
    echo "date: $(date -u +%Y-%m-%dT%H:%MZ), nproc=$(nproc), load $(cut -d' ' -f1-3 /proc/loadavg)"
} >&2
python3 "$HERE/lib/compose_server_driver.py" "$WORK" "$BASE" "${FLEET_ADDRS[1]}" "$ITER"
