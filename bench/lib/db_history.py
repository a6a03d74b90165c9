"""Generates one long migration history for the db-revert benchmark, in every layout
the compared tools read, from the SAME SQL text:

  diesel/<vvvv>_m<vvvv>/up.sql + down.sql     (diesel_cli and lastgood)
  sqlx/<vvvv>_m<vvvv>.up.sql + .down.sql      (sqlx-cli)
  alembic/versions/r<vvvv>.py                 (op.execute(<the same SQL>))
  seed.sql                                    (tables created OUTSIDE the history)
  floor_downs.sql, floor_downs_1tx.sql, per/<vvvv>.sql  (the psql floors)
  expected.json                               (fingerprint after the revert)

Migration i (1..N) works on seeded table t<i mod 10> and is one of five kinds,
every down script non-destructive (no DROP TABLE/COLUMN, TRUNCATE, DELETE):
  0 index:      CREATE INDEX idx_i ON t (a)              / DROP INDEX idx_i
  1 view:       CREATE VIEW v_i AS SELECT ... WHERE a>i  / DROP VIEW v_i
  2 check:      ALTER TABLE t ADD CONSTRAINT ck_i CHECK  / ALTER TABLE t DROP CONSTRAINT ck_i
  3 function:   CREATE FUNCTION f_i(integer) ...         / DROP FUNCTION f_i(integer)
  4 backfill:   UPDATE t SET c = c + 1 WHERE mod(id,20)=r / UPDATE t SET c = c - 1 WHERE mod(id,20)=r
                (1,000 of the table's 20,000 rows each way)

No SQL contains ':' or '%' so that Alembic's op.execute (SQLAlchemy text()) passes
it through unchanged.

usage: db_history.py OUTDIR N REVERT ROWS_PER_TABLE
"""

import json
import os
import sys

TABLES = 10


def migration(i):
    t = "t%d" % (i % TABLES)
    kind = i % 5
    if kind == 0:
        return ("CREATE INDEX idx_%d ON %s (a, id);\n" % (i, t),
                "DROP INDEX idx_%d;\n" % i)
    if kind == 1:
        return ("CREATE VIEW v_%d AS SELECT id, a, b FROM %s WHERE a > %d;\n" % (i, t, i),
                "DROP VIEW v_%d;\n" % i)
    if kind == 2:
        return ("ALTER TABLE %s ADD CONSTRAINT ck_%d CHECK (a >= -%d);\n" % (t, i, i),
                "ALTER TABLE %s DROP CONSTRAINT ck_%d;\n" % (t, i))
    if kind == 3:
        return ("CREATE FUNCTION f_%d(x integer) RETURNS integer LANGUAGE sql IMMUTABLE AS 'SELECT x + %d';\n" % (i, i),
                "DROP FUNCTION f_%d(integer);\n" % i)
    r = i % 20
    return ("UPDATE %s SET c = c + 1 WHERE mod(id, 20) = %d;\n" % (t, r),
            "UPDATE %s SET c = c - 1 WHERE mod(id, 20) = %d;\n" % (t, r))


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def main():
    out, n, revert, rows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    assert 0 < revert <= n
    seed = []
    for k in range(TABLES):
        seed.append(
            "CREATE TABLE t{k} (id integer PRIMARY KEY, a integer NOT NULL, b text NOT NULL, c integer NOT NULL);\n"
            "INSERT INTO t{k} SELECT g, (g * 7919) % 100000, md5(g::text), 0 FROM generate_series(1, {rows}) g;\n"
            .format(k=k, rows=rows))
    seed.append("ANALYZE;\n")
    write(os.path.join(out, "seed.sql"), "".join(seed))

    floor, floor1, = [], []
    lock = "SELECT pg_advisory_lock(7809650172625907556);\n"
    unlock = "SELECT pg_advisory_unlock(7809650172625907556);\n"
    floor.append(lock)
    floor1.append(lock)
    for i in range(1, n + 1):
        v = "%04d" % i
        up, down = migration(i)
        write(os.path.join(out, "diesel", "%s_m%s" % (v, v), "up.sql"), up)
        write(os.path.join(out, "diesel", "%s_m%s" % (v, v), "down.sql"), down)
        write(os.path.join(out, "sqlx", "%s_m%s.up.sql" % (v, v)), up)
        write(os.path.join(out, "sqlx", "%s_m%s.down.sql" % (v, v)), down)
        prev = repr("r%04d" % (i - 1)) if i > 1 else "None"
        write(os.path.join(out, "alembic", "versions", "r%s.py" % v),
              '"""m%s"""\nfrom alembic import op\n\nrevision = "r%s"\ndown_revision = %s\n'
              'branch_labels = None\ndepends_on = None\n\n\n'
              'def upgrade():\n    op.execute(%r)\n\n\ndef downgrade():\n    op.execute(%r)\n'
              % (v, v, prev, up, down))
    # The floors revert the newest REVERT migrations against lastgood's bookkeeping
    # table: each migration's down script and the removal of its bookkeeping row in
    # one transaction, newest first, as lastgood (and sqlx, diesel, Alembic with
    # transaction_per_migration) do.
    for i in range(n, n - revert, -1):
        v = "%04d" % i
        _, down = migration(i)
        book = "DELETE FROM lastgood.migrations WHERE version = '%s';\n" % v
        floor.append("BEGIN;\n" + down + book + "COMMIT;\n")
        floor1.append(down + book)
        write(os.path.join(out, "per", "%s.sql" % v), "BEGIN;\n" + down + book + "COMMIT;\n")
    floor.append(unlock)
    floor1.append(unlock)
    write(os.path.join(out, "floor_downs.sql"), "".join(floor))
    write(os.path.join(out, "floor_downs_1tx.sql"), "".join(floor1))

    kept = range(1, n - revert + 1)
    expected = {
        "idx": sum(1 for i in kept if i % 5 == 0),
        "views": sum(1 for i in kept if i % 5 == 1),
        "checks": sum(1 for i in kept if i % 5 == 2),
        "functions": sum(1 for i in kept if i % 5 == 3),
        # every backfill adds 1 to rows/20 rows
        "sum_c": sum(rows // 20 for i in kept if i % 5 == 4),
        "remaining": n - revert,
    }
    write(os.path.join(out, "expected.json"), json.dumps(expected))


if __name__ == "__main__":
    main()
