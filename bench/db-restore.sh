#!/usr/bin/env bash
# Restoring a >= 500 MB PostgreSQL database: `lastgood db restore` (the newest backup
# recorded by `lastgood db backup`) against `psql` replaying a plain `pg_dump` into an
# empty database, with `pg_restore` (-Fc, -j1 and -j2) and a TEMPLATE copy as
# references. Each restore is verified (row counts, sums, index count).
#
#   bash bench/db-restore.sh                    # ROWS=2500000 events (about 0.65 GB), ITER=3
#   ROWS=5000000 ITER=5 bash bench/db-restore.sh
#   TOOLS=lastgood,psql_plain bash bench/db-restore.sh
#   LASTGOOD=/path/to/lastgood KEEP=1 bash bench/db-restore.sh
#
# Needs PostgreSQL 15 client binaries in PG_BIN (/usr/lib/postgresql/15/bin) and a
# server (PGHOST_BENCH / PGPORT_BENCH / PGUSER_BENCH / PGPASSWORD_BENCH, default those of
# LASTGOOD_TEST_PG from scripts/services.sh, else
# 127.0.0.1:5432 lastgood_test/lastgood_test with CREATEDB). Creates and drops
# databases named lg_bench_rs_*; needs about 3x the database size free on disk.
# Goals (issue): restoring a template-copy backup at least 3x faster than the runbook's
# `dropdb && createdb && psql < dump.sql`; a pg_dump backup no slower than
# `pg_restore -j 2`. Median of ITER=5, every tool in one run on the same data.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/lib/common.sh"
ITER="${ITER:-5}"
ROWS="${ROWS:-2500000}"

bench_binary

WORK="$(mktemp -d "${TMPDIR:-/tmp}/lastgood-bench-db-restore.XXXXXX")"
if [[ -n "${KEEP:-}" ]]; then echo "keeping $WORK" >&2; else trap 'rm -rf "$WORK"' EXIT; fi
{
    echo "lastgood: $LASTGOOD ($("$LASTGOOD" --version 2>&1 | head -1))"
    echo "psql: $(psql --version); pg_dump: $("${PG_BIN:-/usr/lib/postgresql/15/bin}/pg_dump" --version)"
    echo "date: $(date -u +%Y-%m-%dT%H:%MZ), nproc=$(nproc), kernel $(uname -r)"
} >&2
python3 "$HERE/lib/db_restore_driver.py" "$WORK" "$ITER" "$ROWS"
