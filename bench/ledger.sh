#!/usr/bin/env bash
# Read latency against a big ledger: `lastgood status` and `lastgood history --limit 20`
# (text and --format json) with 1,000 and with 100,000 releases for `production`.
#
#   bash bench/ledger.sh                          # builds target/release/lastgood
#   LASTGOOD=/path/to/lastgood N=50 SIZES="1000 100000" bash bench/ledger.sh
#   KEEP=1 bash bench/ledger.sh                   # keep the temp dir (printed)
#
# Goals (issue): median <= 10 ms at 100,000 releases, and at most 1.5x the time at 1,000.
#
# With PG=<admin URL> (e.g. PG="$LASTGOOD_TEST_PG" after `eval "$(scripts/services.sh)"`,
# or a template with {db}: PG='postgresql:///{db}?host=/var/run/postgresql' for the socket),
# the same reads again with a PostgreSQL team ledger on that server: each filled SQLite
# ledger is moved there with `lastgood ledger migrate` (timed), into a database of its
# own that is dropped at the end. Then lock acquire + release under CONTENDERS (32)
# processes on two machine names, CYCLES (5) each, on both ledgers.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/lib/common.sh"
N="${N:-50}"
SIZES="${SIZES:-1000 100000}"

bench_binary

bench_workdir ledger

# One real deploy makes the ledger and its schema.
SEED="$WORK/seed"
mkdir -p "$SEED"
git init -q "$SEED/repo"
(
    cd "$SEED/repo"
    git config user.email bench@example.invalid
    git config user.name bench
    echo 1 > VERSION; git add VERSION; git commit -qm "first"; git tag v1
)
cat > "$SEED/lastgood.toml" <<'TOML'
[environments.production]
source = "repo"
deploy_to = "srv"
restart = ["true"]
keep_releases = 5
TOML
(cd "$SEED" && "$LASTGOOD" --config lastgood.toml -q deploy production v1 --reason seed >/dev/null)

args=()
for size in $SIZES; do
    d="$WORK/$size"
    cp -a "$SEED" "$d"
    python3 "$HERE/lib/fill_ledger.py" "$d/.lastgood/ledger.db" "$size" "$d/srv"
    # Sanity: lastgood reads it and agrees on the current release.
    (cd "$d" && "$LASTGOOD" --config lastgood.toml --format json status production) |
        python3 -c "import json,sys; d=json.load(sys.stdin); assert d['current']['id']==$size, d; assert d['last_good'], d"
    (cd "$d" && "$LASTGOOD" --config lastgood.toml --format json history production --limit 20) |
        python3 -c "import json,sys; d=json.load(sys.stdin); assert len(d)==20 and d[0]['id']==$size, d[0]"
    echo "ledger @$size: $(du -h "$d/.lastgood/ledger.db" | cut -f1)" >&2
    args+=("$size=$d")
done
# Let writeback of the freshly written ledgers finish before timing anything.
sync

pg_args=()
if [[ -n "${PG:-}" ]]; then
    dbs=()
    pg_url() { if [[ $PG == *"{db}"* ]]; then echo "${PG//\{db\}/$1}"; else echo "${PG%/*}/$1"; fi; }
    PG_ADMIN="$(pg_url postgres)"
    # (An autovacuum worker on a freshly filled database cannot be forced out by a
    # non-superuser: retry for a while.)
    drop_db() { for _ in $(seq 1 30); do psql "$PG_ADMIN" -qAt -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" >/dev/null 2>&1 && return; sleep 2; done; echo "could not drop $1" >&2; }
    trap 'for db in "${dbs[@]}"; do drop_db "$db"; done; [[ -n "${KEEP:-}" ]] || rm -rf "$WORK"' EXIT
    for size in $SIZES; do
        db="lg_bench_${size}_$$"
        dbs+=("$db")
        psql "$PG_ADMIN" -qAt -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
        url="$(pg_url "$db")"
        d="$WORK/pg-$size"
        cp -a "$WORK/$size" "$d"
        t0=$(date +%s.%N)
        (cd "$d" && "$LASTGOOD" --config lastgood.toml -q ledger migrate --to "$url" >/dev/null)
        t1=$(date +%s.%N)
        echo "ledger migrate @$size: $(python3 -c "print('%.1f s' % ($t1 - $t0))")" >&2
        printf '\n[ledger]\nurl = "%s"\n' "$url" >> "$d/lastgood.toml"
        (cd "$d" && "$LASTGOOD" --config lastgood.toml --format json status production) |
            python3 -c "import json,sys; d=json.load(sys.stdin); assert d['current']['id']==$size, d; assert d['last_good'], d"
        pg_args+=("$size=$d")
    done
fi

echo "lastgood: $LASTGOOD ($("$LASTGOOD" --version))" >&2
echo "machine: nproc=$(nproc) kernel=$(uname -r) date=$(date -u +%Y-%m-%dT%H:%MZ)" >&2
echo "#### SQLite ledger"
python3 "$HERE/lib/ledger_driver.py" "$LASTGOOD" "$N" "${args[@]}"
if [[ ${#pg_args[@]} -gt 0 ]]; then
    echo
    echo "#### PostgreSQL ledger (loopback)"
    python3 "$HERE/lib/ledger_driver.py" "$LASTGOOD" "$N" "${pg_args[@]}"
fi

# Lock acquire + release under contention, on the smallest ledger of each kind.
first="${SIZES%% *}"
echo
echo "#### lock acquire + release, ${CONTENDERS:-32} contending processes, ${CYCLES:-5} cycles each (ms)"
echo
echo "| ledger | processes | grants | p50 | p99 | grants/s | lock attempts |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for kind in sqlite pg; do
    d="$WORK/$first"
    [[ $kind == pg ]] && { [[ -n "${PG:-}" ]] || continue; d="$WORK/pg-$first"; }
    printf '| %s ' "$kind"
    python3 "$HERE/lib/lock_contention.py" "$LASTGOOD" "$d/lastgood.toml" "${CONTENDERS:-32}" "${CYCLES:-5}"
done
