"""Driver for bench/db-restore.sh: restoring a >= 500 MB PostgreSQL database from
lastgood's recorded backup (`lastgood db restore`) against `psql` replaying a plain
`pg_dump` into an empty database (the baseline), with pg_restore and a TEMPLATE copy
as references.

usage: db_restore_driver.py WORK ITER ROWS   (env: see db-restore.sh)
"""

import json
import os
import urllib.parse
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

WORK, ITER, ROWS = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
# The server and role: PG*_BENCH, else those of LASTGOOD_TEST_PG (scripts/services.sh).
_test = urllib.parse.urlsplit(os.environ.get("LASTGOOD_TEST_PG", "postgres://lastgood_test:lastgood_test@127.0.0.1:5432/postgres"))
HOST = os.environ.get("PGHOST_BENCH", _test.hostname or "127.0.0.1")
PORT = os.environ.get("PGPORT_BENCH", str(_test.port or 5432))
USER = os.environ.get("PGUSER_BENCH", urllib.parse.unquote(_test.username or "lastgood_test"))
PASSWORD = os.environ.get("PGPASSWORD_BENCH", urllib.parse.unquote(_test.password or "lastgood_test"))
BIN = os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin")
PSQL_REAL = os.path.join(BIN, "psql")
LASTGOOD = os.environ["LASTGOOD"]
ONLY = set(filter(None, os.environ.get("TOOLS", "").split(",")))
MIN_MB = int(os.environ.get("MIN_MB", "500"))
ENV = dict(os.environ, PGPASSWORD=PASSWORD)
P = "lg_bench_rs_"
SRC = P + "src"


def log(msg):
    sys.stderr.write("[db-restore] %s\n" % msg)
    sys.stderr.flush()


def conn(db):
    return ["-h", HOST, "-p", PORT, "-U", USER, "-d", db]


def psql(sql, db="postgres"):
    p = subprocess.run([PSQL_REAL, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1"] + conn(db) + ["-c", sql],
                       env=ENV, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit("psql failed: %s\n%s" % (sql, p.stderr))
    return p.stdout.strip()


def run(argv, cwd=None):
    t0 = time.perf_counter()
    p = subprocess.run(argv, cwd=cwd, env=ENV, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit("failed (exit %d): %s\n%s\n%s" % (p.returncode, " ".join(argv), p.stdout[-3000:],
                                                           p.stderr[-3000:]))
    return p.stdout, (time.perf_counter() - t0) * 1000


def drop(db):
    benchlib.drop_database(db, PSQL_REAL, ["-h", HOST, "-p", PORT, "-U", USER], ENV)


def drop_asides():
    """The copies lastgood keeps aside when no check verifies a restore (these configs
    have none): untimed cleanup between samples, as an operator would do."""
    for name in psql("SELECT string_agg(datname, ' ') FROM pg_database WHERE datname LIKE 'lastgood_aside_%%' AND position('lg_bench_rs' in datname) > 0").split():
        drop(name)


def fresh(db):
    drop(db)
    psql("CREATE DATABASE " + db)


FINGERPRINT = ("SELECT json_build_object("
               "'events', (SELECT count(*) FROM events), 'events_sum', (SELECT sum(account_id) FROM events),"
               "'docs', (SELECT count(*) FROM documents), 'docs_len', (SELECT sum(length(body)) FROM documents),"
               "'accounts', (SELECT count(*) FROM accounts),"
               "'indexes', (SELECT count(*) FROM pg_indexes WHERE schemaname = 'public'))")

GENERATE = """
CREATE TABLE accounts (id integer PRIMARY KEY, name text NOT NULL, email text NOT NULL, created_at timestamptz NOT NULL);
INSERT INTO accounts SELECT g, 'user ' || g, 'user' || g || '@example.invalid', timestamptz '2024-01-01' + g * interval '1 minute'
  FROM generate_series(1, 100000) g;
CREATE TABLE events (id bigint PRIMARY KEY, account_id integer NOT NULL REFERENCES accounts, kind text NOT NULL,
  created_at timestamptz NOT NULL, payload text NOT NULL);
INSERT INTO events SELECT g, 1 + (g::bigint * 7919) % 100000, 'kind_' || (g % 17), timestamptz '2024-01-01' + g * interval '1 second',
  md5(g::text) || md5((g + 1)::text) || md5((g * 3)::text)
  FROM generate_series(1, {rows}) g;
CREATE INDEX events_account ON events (account_id, created_at);
CREATE TABLE documents (id integer PRIMARY KEY, title text NOT NULL, body text NOT NULL);
INSERT INTO documents SELECT g, 'doc ' || g, repeat(md5(g::text) || ' ' || md5((-g)::text) || E'\\n', 12)
  FROM generate_series(1, {docs}) g;
CREATE INDEX documents_title ON documents (title);
ANALYZE;
"""


def lastgood_config(db, name, method):
    """A config (and so a ledger) of its own per backup method; method None = lastgood's default."""
    d = os.path.join(WORK, name)
    os.makedirs(d, exist_ok=True)
    run(["git", "init", "-q", d])
    # A restore returns a running environment's data: deploy one release first (no
    # migrations, a no-op restart, no checks), so `db restore` stops and starts nothing.
    with open(os.path.join(d, "VERSION"), "w") as f:
        f.write("1\n")
    run(["git", "-C", d, "add", "VERSION"])
    run(["git", "-C", d, "-c", "user.name=bench", "-c", "user.email=bench@example.invalid", "commit", "-q", "-m", "v1"])
    run(["git", "-C", d, "tag", "v1"])
    cfg = os.path.join(d, "lastgood.toml")
    with open(cfg, "w") as f:
        f.write('[environments.production]\nsource = "."\ndeploy_to = "srv"\nrestart = ["true"]\n'
                '[environments.production.database]\nurl = "postgres://%s:%s@%s:%s/%s"\n'
                'backup = "never"\n%s' % (USER, PASSWORD, HOST, PORT, db,
                                          'backup_method = "%s"\n' % method if method else ""))
    timed_lastgood(cfg, "deploy", "production", "v1", "--reason", "bench")
    return cfg


class Failed(Exception):
    pass


def timed_lastgood(cfg, *args):
    t0 = time.perf_counter_ns()
    p = subprocess.run([LASTGOOD, "--config", cfg, "-q"] + list(args), cwd=os.path.dirname(cfg), env=ENV,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t1 = time.perf_counter_ns()
    if p.returncode != 0:
        raise Failed("exit %d: lastgood %s: %s" % (p.returncode, " ".join(args),
                                                   p.stderr.decode(errors="replace").strip()[-600:]))
    return (t1 - t0) / 1e6


def main():
    fresh(SRC)
    t0 = time.time()
    run([PSQL_REAL, "-X", "-q", "-v", "ON_ERROR_STOP=1"] + conn(SRC) + ["-c", GENERATE.format(rows=ROWS, docs=ROWS // 20)])
    size = int(psql("SELECT pg_database_size('%s')" % SRC))
    log("generated %s: %.0f MB in %.0f s" % (SRC, size / 1e6, time.time() - t0))
    if size < MIN_MB * 1e6:
        raise SystemExit("database is only %.0f MB (< %d MB): raise ROWS" % (size / 1e6, MIN_MB))
    want = json.loads(psql(FINGERPRINT, SRC))
    rel = psql("SELECT string_agg(relname || '=' || pg_size_pretty(pg_total_relation_size(oid)), ', ' ORDER BY relname) "
               "FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace", SRC)

    notes = {"db_size_mb": round(size / 1e6), "tables": rel}
    plain = os.path.join(WORK, "plain.sql")
    _, notes["pg_dump_plain_ms"] = run([os.path.join(BIN, "pg_dump"), "--no-owner", "-f", plain] + conn(SRC)[:-2] +
                                       [SRC])
    notes["plain_mb"] = round(os.path.getsize(plain) / 1e6)
    custom = os.path.join(WORK, "custom.dump")
    _, notes["pg_dump_Fc_ms"] = run([os.path.join(BIN, "pg_dump"), "--no-owner", "-Fc", "-f", custom] +
                                    conn(SRC)[:-2] + [SRC])
    notes["custom_mb"] = round(os.path.getsize(custom) / 1e6)

    # lastgood: one ledger per backup method. "lastgood" uses the default method (auto: a
    # TEMPLATE copy when nobody else is connected, else pg_dump; nobody is connected here),
    # "lastgood_pg_dump" forces backup_method = "pg_dump". Each backs up twice (the second
    # timed and restored); methods the binary does not know are reported, not fatal.
    lg = {}
    lg_failed = {}
    for name, method in (("lastgood_pg_dump", os.environ.get("LG_DUMP_METHOD", "pg_dump")), ("lastgood", None)):
        if ONLY and name not in ONLY:
            continue
        cfg = lastgood_config(SRC, "cfg_" + name, method)
        try:
            timed_lastgood(cfg, "db", "backup", "production")
            ms = timed_lastgood(cfg, "db", "backup", "production")
        except Failed as e:
            lg_failed[name] = str(e)
            log("%s: backup failed: %s" % (name, e))
            continue
        listing = subprocess.run([LASTGOOD, "--config", cfg, "db", "backups", "production"], cwd=os.path.dirname(cfg),
                                 env=ENV, capture_output=True, text=True).stdout.strip()
        notes[name] = "`db backup` %.1f s; newest: `%s`" % (ms / 1000, listing.splitlines()[0] if listing else "?")
        lg[name] = cfg
    rows = {}
    for name, cfg in lg.items():
        rows[name] = ("`lastgood db restore production --yes` (%s: a fresh database, swapped in)" % (
            "default backup_method (auto → template copy)" if name == "lastgood" else "backup_method = \"pg_dump\", pg_restore -j 2"),
            drop_asides,
            (lambda c: lambda: timed_lastgood(c, "db", "restore", "production", "--yes", "--reason", "bench"))(cfg), SRC)
        if name == "lastgood":
            rows["lastgood_plain"] = ("`lastgood db restore production --from plain.sql --yes` (psql into a fresh database, swapped in)",
                                      drop_asides,
                                      (lambda c: lambda: timed_lastgood(c, "db", "restore", "production", "--from", plain,
                                                                        "--yes", "--reason", "bench"))(cfg), SRC)
    # The runbook's way, timed whole: drop the database, create it again, replay the dump.
    def runbook():
        t0 = time.perf_counter_ns()
        run([PSQL_REAL, "-X", "-q"] + conn("postgres") + ["-c", "DROP DATABASE IF EXISTS %spsql" % P])
        run([PSQL_REAL, "-X", "-q"] + conn("postgres") + ["-c", "CREATE DATABASE %spsql" % P])
        run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1"] + conn(P + "psql") + ["-f", plain])
        return (time.perf_counter_ns() - t0) / 1e6
    rows["psql_plain"] = ("`dropdb && createdb && psql < plain.sql` (the runbook's way; baseline)",
                          lambda: fresh(P + "psql"), runbook, P + "psql")
    rows["pg_restore"] = ("`pg_restore -d` of a `pg_dump -Fc` into an empty database (reference)",
                          lambda: fresh(P + "pgr"),
                          lambda: benchlib.run_timed([os.path.join(BIN, "pg_restore"), "--no-owner", "-d", P + "pgr",
                                                      "-h", HOST, "-p", PORT, "-U", USER, custom], env=ENV), P + "pgr")
    rows["pg_restore_j2"] = ("`pg_restore -j 2 -d` of the same dump (reference)",
                             lambda: fresh(P + "pgr2"),
                             lambda: benchlib.run_timed([os.path.join(BIN, "pg_restore"), "--no-owner", "-j", "2", "-d",
                                                         P + "pgr2", "-h", HOST, "-p", PORT, "-U", USER, custom],
                                                        env=ENV), P + "pgr2")
    rows["template_copy"] = ("`CREATE DATABASE … TEMPLATE src` (WAL_LOG; reference: copy, not a restore from a file)",
                             lambda: drop(P + "tpl"),
                             lambda: benchlib.run_timed([PSQL_REAL, "-X", "-q"] + conn("postgres") +
                                                        ["-c", "CREATE DATABASE %stpl TEMPLATE %s" % (P, SRC)],
                                                        env=ENV), P + "tpl")
    names = [n for n in rows if not ONLY or n in ONLY]
    samples = {n: [] for n in names}
    for it in range(ITER):
        k = it % len(names)
        for name in names[k:] + names[:k]:
            desc, prep, timed, db = rows[name]
            if name in lg_failed:
                continue
            prep()
            subprocess.run(["sync"])
            try:
                ms = timed()
            except Failed as e:
                lg_failed[name] = str(e)
                log("%s FAILED: %s" % (name, e))
                continue
            got = json.loads(psql(FINGERPRINT, db))
            if got != want:
                raise SystemExit("%s: restored database differs: %s vs %s" % (name, got, want))
            samples[name].append(ms)
            log("iteration %d %s: %.0f ms" % (it + 1, name, ms))
            if db != SRC:
                drop(db)
    for name in lg_failed:
        if name in samples:
            del samples[name]
        if name in names:
            names.remove(name)
    copies = psql("SELECT string_agg(datname, ' ') FROM pg_database WHERE datname LIKE 'lastgood\\_backup\\_%s%%'"
                  % SRC)
    for db in (SRC, P + "psql", P + "pgr", P + "pgr2", P + "tpl") + tuple(copies.split()):
        drop(db)

    base = benchlib.median(samples["psql_plain"]) if "psql_plain" in samples else float("nan")
    print("database: %d MB (`pg_database_size`); %s; plain dump %d MB (pg_dump %.1f s); -Fc dump %d MB (pg_dump -Fc %.1f s)"
          % (notes["db_size_mb"], notes["tables"], notes["plain_mb"], notes["pg_dump_plain_ms"] / 1000,
             notes["custom_mb"], notes["pg_dump_Fc_ms"] / 1000))
    for name in ("lastgood_pg_dump", "lastgood"):
        if name in notes:
            print("%s: %s" % (name, notes[name]))
    for name, why in lg_failed.items():
        print("%s: **FAILED**: `%s`" % (name, why.replace("\n", " / ")))
    print()
    print("| what | how | median s | p90 s | min s | max s | baseline / this |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name in names:
        s = benchlib.summary(samples[name])
        print("| %s | %s | %.2f | %.2f | %.2f | %.2f | %.2f× |" % (
            name, rows[name][0], s["median"] / 1000, s["p90"] / 1000, s["min"] / 1000, s["max"] / 1000,
            base / s["median"]))
    print()
    print("raw samples (ms): " + json.dumps({n: [round(x) for x in v] for n, v in samples.items()}))
    print("machine: " + benchlib.machine())
    print()
    print("| goal | lastgood | median | reference | reference median | ratio | result |")
    print("|---|---|---:|---|---:|---:|---|")
    goals = (
        ("template copy restore ≥ 3× faster than the runbook's `dropdb && createdb && psql < dump`", "lastgood",
         "psql_plain", lambda r: r >= 3),
        ("pg_dump restore no slower than `pg_restore -j 2` (within 5%)", "lastgood_pg_dump", "pg_restore_j2",
         lambda r: r >= 0.95),
    )
    for goal, name, ref, ok in goals:
        if name in samples and ref in samples:
            lgm, refm = benchlib.median(samples[name]), benchlib.median(samples[ref])
            print("| %s | %s | %.2f s | %s | %.2f s | %.2f× | **%s** |" % (
                goal, name, lgm / 1000, ref, refm / 1000, refm / lgm, "PASS" if ok(refm / lgm) else "FAIL"))
        elif name in lg_failed:
            print("| %s | %s | — | %s | — | — | **FAIL** (failed) |" % (goal, name, ref))


if __name__ == "__main__":
    main()
