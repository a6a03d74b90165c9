#!/usr/bin/env bash
# Rollback latency: `lastgood rollback` flipping between two releases, against the
# floor of doing the same atomic symlink flip (+ a no-op restart) by hand.
#
#   bash bench/rollback.sh            # builds target/release/lastgood
#   LASTGOOD=/path/to/lastgood N=100 WARMUP=5 bash bench/rollback.sh
#   KEEP=1 bash bench/rollback.sh     # keep the temp dir (printed) for poking at
#
# Prints markdown tables. Goal (issue): lastgood rollback median <= 50 ms (GOAL_MS).
#
#   PG="$LASTGOOD_TEST_PG" bash bench/rollback.sh   # the same on a PostgreSQL team ledger
#                                                   # (a database of its own, dropped at exit)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/lib/common.sh"
N="${N:-30}"
WARMUP="${WARMUP:-3}"

bench_binary

bench_workdir rollback

bench_repo "$WORK/repo"   # tags v1 and v2

cat > "$WORK/lastgood.toml" <<'TOML'
[environments.production]
source = "repo"
deploy_to = "srv"
restart = ["true"]
keep_releases = 5
TOML

# The floor: the same atomic flip by hand, and the same no-op restart (an exec of true).
mkdir -p "$WORK/floor/releases/1" "$WORK/floor/releases/2"
ln -s releases/2 "$WORK/floor/current"
cat > "$WORK/flip.sh" <<'SH'
cd "$1" || exit 1
ln -sfn "releases/$2" current.tmp && mv -T current.tmp current && /bin/true
SH

if [[ -n "${PG:-}" ]]; then
    db="lg_bench_rollback_$$"
    # PG is an admin URL, or a template with {db} (the socket: postgresql:///{db}?host=/var/run/postgresql).
    pg_url() { if [[ $PG == *"{db}"* ]]; then echo "${PG//\{db\}/$1}"; else echo "${PG%/*}/$1"; fi; }
    PG_ADMIN="$(pg_url postgres)"
    psql "$PG_ADMIN" -qAt -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
    trap 'psql "$PG_ADMIN" -qAt -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null; [[ -n "${KEEP:-}" ]] || rm -rf "$WORK"' EXIT
    printf '\n[ledger]\nurl = "%s"\n' "$(pg_url "$db")" >> "$WORK/lastgood.toml"
    (cd "$WORK" && "$LASTGOOD" --config lastgood.toml -q ledger init >/dev/null)
    echo "ledger: PostgreSQL database $db" >&2
fi

cd "$WORK"
"$LASTGOOD" --config lastgood.toml -q deploy production v1 --reason bench >/dev/null
"$LASTGOOD" --config lastgood.toml -q deploy production v2 --reason bench >/dev/null
[[ "$(readlink srv/current)" == *2 ]] || { echo "setup: current is not #2" >&2; exit 1; }

sync
echo "lastgood: $LASTGOOD ($("$LASTGOOD" --version))" >&2
echo "machine: nproc=$(nproc) kernel=$(uname -r) date=$(date -u +%Y-%m-%dT%H:%MZ)" >&2
python3 "$HERE/lib/rollback_driver.py" "$LASTGOOD" "$WORK" "$N" "$WARMUP"
