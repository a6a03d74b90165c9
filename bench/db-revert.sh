#!/usr/bin/env bash
# Reverting a long migration history: `lastgood db down --steps R` against the psql
# floor and the peer tools (diesel_cli, sqlx-cli, Alembic, one psql per migration),
# all from identical copies of the same database and the same SQL files.
#
#   bash bench/db-revert.sh                         # N=200 applied, newest REVERT=100 reverted
#   N=400 REVERT=200 ITER=7 WARMUP=1 bash bench/db-revert.sh
#   TOOLS=floor,lastgood bash bench/db-revert.sh    # only some rows
#   LASTGOOD=/path/to/lastgood DIESEL=... SQLX=... ALEMBIC=... bash bench/db-revert.sh
#   KEEP=1 bash bench/db-revert.sh                  # keep the temp dir
#   SSLMODE=prefer bash bench/db-revert.sh          # peers on their default (TLS when the server offers it)
#
# Needs PostgreSQL (PGHOST_BENCH=127.0.0.1 PGPORT_BENCH=5432 PGUSER_BENCH=lastgood_test
# PGPASSWORD_BENCH=lastgood_test by default; the role needs CREATEDB). Creates and drops
# databases named lg_bench_rv_*. Peers are found on PATH, in ~/.cargo/bin, and Alembic
# also in /tmp/bench-alembic-venv (python3 -m venv ... && pip install alembic
# psycopg2-binary); a peer that is missing is reported as not run.
# Goals (issue): lastgood median <= 1.15x the floor, and faster than every tool.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/lib/common.sh"
N="${N:-200}"
REVERT="${REVERT:-100}"
ITER="${ITER:-7}"
WARMUP="${WARMUP:-1}"
ROWS="${ROWS:-20000}"

bench_binary
find_tool() { # name [extra candidates...]
    local name="$1"; shift
    if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return; fi
    for c in "$HOME/.cargo/bin/$name" "$@"; do [[ -x "$c" ]] && { echo "$c"; return; }; done
    echo ""
}
export DIESEL="${DIESEL-$(find_tool diesel)}"
export SQLX="${SQLX-$(find_tool sqlx)}"
if [[ -z "${ALEMBIC+x}" && -x /tmp/bench-alembic-venv/bin/alembic ]]; then ALEMBIC=/tmp/bench-alembic-venv/bin/alembic; fi
export ALEMBIC="${ALEMBIC-$(find_tool alembic)}"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/lastgood-bench-db-revert.XXXXXX")"
if [[ -n "${KEEP:-}" ]]; then echo "keeping $WORK" >&2; else trap 'rm -rf "$WORK"' EXIT; fi

python3 "$HERE/lib/db_history.py" "$WORK/hist" "$N" "$REVERT" "$ROWS"
cat > "$WORK/hist/alembic.ini" <<INI
[alembic]
script_location = $WORK/hist/alembic
INI
cat > "$WORK/hist/alembic/env.py" <<'PY'
import os
from alembic import context
from sqlalchemy import create_engine

# transaction_per_migration=True gives each revision its own transaction (as lastgood,
# sqlx and diesel do); ALEMBIC_ONE_TX=1 keeps Alembic's PostgreSQL default (one tx).
engine = create_engine(os.environ["ALEMBIC_URL"])
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=None,
                      transaction_per_migration=os.environ.get("ALEMBIC_ONE_TX") != "1")
    with context.begin_transaction():
        context.run_migrations()
PY
cp "$HERE/lib/db_history.py" "$WORK/hist/" # for reference when KEEP=1

{
    echo "lastgood: $LASTGOOD ($("$LASTGOOD" --version 2>&1 | head -1))"
    [[ -n "$DIESEL" ]] && echo "diesel: $DIESEL ($("$DIESEL" --version 2>&1 | head -1))" || echo "diesel: not found"
    [[ -n "$SQLX" ]] && echo "sqlx: $SQLX ($("$SQLX" --version 2>&1 | head -1))" || echo "sqlx: not found"
    [[ -n "$ALEMBIC" ]] && echo "alembic: $ALEMBIC ($("$ALEMBIC" --version 2>&1 | head -1))" || echo "alembic: not found"
    echo "psql: $(psql --version) (wrapper $(command -v psql)); floor uses ${PSQL_REAL:-/usr/lib/postgresql/15/bin/psql}"
    echo "date: $(date -u +%Y-%m-%dT%H:%MZ), nproc=$(nproc), kernel $(uname -r)"
} >&2
python3 "$HERE/lib/db_revert_driver.py" "$WORK" "$N" "$REVERT" "$ITER" "$WARMUP"
