"""Driver for bench/db-revert.sh: reverting the newest REVERT of N applied migrations
with lastgood, the psql floors and the peer tools, from identical database copies.

Every tool applies the whole history itself (untimed), into its own template
database, so each has its own bookkeeping. In every iteration, for every tool (in an
order rotated per iteration): the run database is recreated from that template with
CREATE DATABASE ... TEMPLATE ... STRATEGY FILE_COPY (which checkpoints, so the
measured revert does not compete with the copy's writes), `sync`, then the revert
is timed as one child process (or a loop of child processes, timed around the whole
loop), and then the result is verified (schema fingerprint and bookkeeping).

usage: db_revert_driver.py WORK N REVERT ITER WARMUP  (env: see db-revert.sh)
"""

import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

WORK, N, REVERT, ITER, WARMUP = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
HOST, PORT = os.environ.get("PGHOST_BENCH", "127.0.0.1"), os.environ.get("PGPORT_BENCH", "5432")
USER, PASSWORD = os.environ.get("PGUSER_BENCH", "lastgood_test"), os.environ.get("PGPASSWORD_BENCH", "lastgood_test")
PSQL_REAL = os.environ.get("PSQL_REAL", "/usr/lib/postgresql/15/bin/psql")
PSQL_WRAPPER = os.environ.get("PSQL_WRAPPER", "psql")
LASTGOOD = os.environ["LASTGOOD"]
DIESEL = os.environ.get("DIESEL", "")
SQLX = os.environ.get("SQLX", "")
ALEMBIC = os.environ.get("ALEMBIC", "")
ONLY = set(filter(None, os.environ.get("TOOLS", "").split(",")))
PREFIX = "lg_bench_rv_"
KEPT = N - REVERT

ENV = dict(os.environ, PGPASSWORD=PASSWORD, PGCONNECT_TIMEOUT="10")
# lastgood's migrator connects without TLS (the `postgres` crate with NoTls). libpq
# (psql, diesel, psycopg2) and sqlx default to sslmode=prefer, which negotiates TLS
# whenever the server has it on (Debian's does). SSLMODE=disable (the default here)
# gives every client lastgood's plaintext transport; SSLMODE=prefer keeps their defaults.
SSLMODE = os.environ.get("SSLMODE", "disable")
if SSLMODE:
    ENV["PGSSLMODE"] = SSLMODE


def log(msg):
    sys.stderr.write("[db-revert] %s\n" % msg)
    sys.stderr.flush()


def url(db, scheme="postgres", peer=True):
    u = "%s://%s:%s@%s:%s/%s" % (scheme, USER, PASSWORD, HOST, PORT, db)
    return u + ("?sslmode=" + SSLMODE if peer and SSLMODE else "")


def psql(sql, db="postgres", check=True):
    p = subprocess.run([PSQL_REAL, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", HOST, "-p", PORT, "-U", USER,
                        "-d", db, "-c", sql], env=ENV, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise SystemExit("psql failed: %s\n%s" % (sql, p.stderr))
    return p.stdout.strip()


def run(argv, cwd=None, env=None):
    p = subprocess.run(argv, cwd=cwd, env=env or ENV, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit("failed (exit %d): %s\n%s\n%s" % (p.returncode, " ".join(argv), p.stdout[-3000:],
                                                           p.stderr[-3000:]))
    return p.stdout


class ToolFailed(Exception):
    pass


def timed(argv, cwd=None, env=None):
    """benchlib.run_timed, but a failure is reported in the table instead of ending the run."""
    t0 = time.perf_counter_ns()
    p = subprocess.run(argv, cwd=cwd, env=env or ENV, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    t1 = time.perf_counter_ns()
    if p.returncode != 0:
        raise ToolFailed("exit %d: %s: %s" % (p.returncode, " ".join(argv).replace(PASSWORD, "***"),
                                              p.stderr.decode(errors="replace").strip()[-600:]))
    return (t1 - t0) / 1e6


def drop(db):
    benchlib.drop_database(db, PSQL_REAL, ["-h", HOST, "-p", PORT, "-U", USER], ENV)


def copy(src, dst):
    drop(dst)
    psql("CREATE DATABASE %s TEMPLATE %s STRATEGY FILE_COPY" % (dst, src))


def lastgood_config(dirname, db):
    d = os.path.join(WORK, dirname)
    os.makedirs(d, exist_ok=True)
    if not os.path.isdir(os.path.join(d, ".git")):
        run(["git", "init", "-q", d])
    # lastgood reads the migrations from the source's working tree: the same files as diesel's.
    if not os.path.isdir(os.path.join(d, "migrations")):
        shutil.copytree(os.path.join(WORK, "hist", "diesel"), os.path.join(d, "migrations"))
    cfg = os.path.join(d, "lastgood.toml")
    with open(cfg, "w") as f:
        f.write('[environments.production]\nsource = "."\ndeploy_to = "srv"\n'
                '[environments.production.database]\nurl = "%s"\nmigrations = "migrations"\nbackup = "never"\n'
                % url(db, peer=False))
    return cfg


def alembic_env(db, one_tx):
    e = dict(ENV, ALEMBIC_URL=url(db, "postgresql+psycopg2"))
    if one_tx:
        e["ALEMBIC_ONE_TX"] = "1"
    return e


H = os.path.join(WORK, "hist")
ALEMBIC_INI = os.path.join(H, "alembic.ini")

# name -> (template tool, description, run(db) -> ms, bookkeeping check(db) -> bool)
TOOLS = {}


def tool(name, tpl, desc):
    def deco(fn):
        TOOLS[name] = (tpl, desc, fn)
        return fn
    return deco


def psql_args(db, binary=PSQL_REAL):
    return [binary, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", HOST, "-p", PORT, "-U", USER, "-d", db]


@tool("floor", "lastgood", "psql, one session, each down + bookkeeping DELETE in its own tx (floor)")
def t_floor(db):
    return timed(psql_args(db) + ["-f", os.path.join(H, "floor_downs.sql")])


@tool("floor_1tx", "lastgood", "psql, one session, all downs in ONE tx (`-1`; reference, weaker semantics)")
def t_floor_1tx(db):
    return timed(psql_args(db) + ["-1", "-f", os.path.join(H, "floor_downs_1tx.sql")])


@tool("lastgood", "lastgood", "lastgood db down --steps REVERT")
def t_lastgood(db):
    return timed([LASTGOOD, "--config", CFG_RUN, "-q", "db", "down", "production", "--steps", str(REVERT)],
                 cwd=os.path.dirname(CFG_RUN))


@tool("diesel", "diesel", "diesel migration revert -n REVERT")
def t_diesel(db):
    return timed([DIESEL, "migration", "revert", "-n", str(REVERT), "--database-url", url(db),
                  "--migration-dir", os.path.join(H, "diesel")], cwd=WORK)


@tool("sqlx", "sqlx", "sqlx migrate revert --target-version KEPT")
def t_sqlx(db):
    return timed([SQLX, "migrate", "revert", "--target-version", str(KEPT), "--database-url", url(db),
                  "--source", os.path.join(H, "sqlx")], cwd=WORK)


@tool("sqlx_1by1", "sqlx", "sqlx migrate revert, REVERT calls (one migration each; reference)")
def t_sqlx_1by1(db):
    t = 0.0
    for _ in range(REVERT):
        t += timed([SQLX, "migrate", "revert", "--database-url", url(db), "--source", os.path.join(H, "sqlx")],
                   cwd=WORK)
    return t


@tool("alembic", "alembic", "alembic downgrade -REVERT (transaction_per_migration=True)")
def t_alembic(db):
    return timed([ALEMBIC, "-c", ALEMBIC_INI, "downgrade", "-%d" % REVERT], cwd=WORK, env=alembic_env(db, False))


@tool("alembic_1tx", "alembic", "alembic downgrade -REVERT (Alembic's PG default: one tx; reference)")
def t_alembic_1tx(db):
    return timed([ALEMBIC, "-c", ALEMBIC_INI, "downgrade", "-%d" % REVERT], cwd=WORK, env=alembic_env(db, True))


@tool("psql_each", "lastgood", "one `psql -f` process per migration (Debian psql wrapper; shell runbook)")
def t_psql_each(db):
    t = 0.0
    for i in range(N, KEPT, -1):
        t += timed(psql_args(db, PSQL_WRAPPER) + ["-f", os.path.join(H, "per", "%04d.sql" % i)])
    return t


BOOKKEEPING = {
    "lastgood": "SELECT count(*) = %d FROM lastgood.migrations" % KEPT,
    "diesel": "SELECT count(*) = %d FROM __diesel_schema_migrations" % KEPT,
    "sqlx": "SELECT count(*) = %d FROM _sqlx_migrations" % KEPT,
    "alembic": "SELECT string_agg(version_num, ',') = 'r%04d' FROM alembic_version" % KEPT,
}
FINGERPRINT = (
    "SELECT json_build_object("
    "'idx', (SELECT count(*) FROM pg_class WHERE relkind = 'i' AND relname LIKE 'idx\\_%'),"
    "'views', (SELECT count(*) FROM pg_views WHERE schemaname = 'public' AND viewname LIKE 'v\\_%'),"
    "'checks', (SELECT count(*) FROM pg_constraint WHERE conname LIKE 'ck\\_%'),"
    "'functions', (SELECT count(*) FROM pg_proc WHERE proname LIKE 'f\\_%'),"
    "'sum_c', (" + " + ".join("(SELECT sum(c) FROM t%d)" % k for k in range(10)) + "))"
)


def verify(name, db, expect):
    tpl = TOOLS[name][0]
    fp = json.loads(psql(FINGERPRINT, db))
    want = {k: expect[k] for k in fp}
    if fp != want:
        raise SystemExit("%s: wrong schema after the revert: %s, expected %s" % (name, fp, want))
    if psql(BOOKKEEPING[tpl], db) != "t":
        raise SystemExit("%s: wrong bookkeeping after the revert: %s" % (name, BOOKKEEPING[tpl]))


def available(name):
    tpl = TOOLS[name][0]
    if ONLY and name not in ONLY:
        return False
    return {"lastgood": True, "diesel": bool(DIESEL), "sqlx": bool(SQLX), "alembic": bool(ALEMBIC)}[tpl]


def setup(templates):
    seed = PREFIX + "seed"
    drop(seed)
    psql("CREATE DATABASE " + seed)
    run(psql_args(seed) + ["-f", os.path.join(H, "seed.sql")])
    for tpl in templates:
        db = PREFIX + "tpl_" + tpl
        copy(seed, db)
        t0 = time.time()
        if tpl == "lastgood":
            run([LASTGOOD, "--config", lastgood_config("cfg_tpl", db), "-q", "db", "up", "production"],
                cwd=os.path.join(WORK, "cfg_tpl"))
        elif tpl == "diesel":
            run([DIESEL, "migration", "run", "--database-url", url(db), "--migration-dir", os.path.join(H, "diesel")],
                cwd=WORK)
        elif tpl == "sqlx":
            run([SQLX, "migrate", "run", "--database-url", url(db), "--source", os.path.join(H, "sqlx")], cwd=WORK)
        elif tpl == "alembic":
            run([ALEMBIC, "-c", ALEMBIC_INI, "upgrade", "head"], cwd=WORK, env=alembic_env(db, False))
        log("template %s: applied %d migrations in %.1f s" % (tpl, N, time.time() - t0))
        # Full history applied: check before anything is timed.
        full = {"remaining": N}
        for k in ("idx", "views", "checks", "functions"):
            full[k] = N // 5 + (1 if N % 5 >= {"idx": 5, "views": 1, "checks": 2, "functions": 3}[k] else 0)
        fp = json.loads(psql(FINGERPRINT, db))
        if any(fp[k] != full[k] for k in ("idx", "views", "checks", "functions")):
            raise SystemExit("template %s: wrong schema after applying: %s vs %s" % (tpl, fp, full))


def main():
    global CFG_RUN
    expect = json.load(open(os.path.join(H, "expected.json")))
    names = [n for n in TOOLS if available(n)]
    missing = [n for n in TOOLS if not available(n)]
    templates = sorted({TOOLS[n][0] for n in names})
    log("tools: %s; skipped: %s" % (", ".join(names), ", ".join(missing) or "none"))
    setup(templates)
    CFG_RUN = lastgood_config("cfg_run", PREFIX + "run_lastgood")
    samples = {n: [] for n in names}
    failed = {}
    for it in range(WARMUP + ITER):
        k = it % len(names)
        order = names[k:] + names[:k]
        for name in order:
            if name in failed:
                continue
            tpl = TOOLS[name][0]
            db = PREFIX + "run_" + tpl
            copy(PREFIX + "tpl_" + tpl, db)
            subprocess.run(["sync"])
            try:
                ms = TOOLS[name][2](db)
            except ToolFailed as e:
                failed[name] = str(e)
                log("%s FAILED: %s" % (name, e))
                continue
            verify(name, db, expect)
            if it >= WARMUP:
                samples[name].append(ms)
        log("iteration %d/%d done%s" % (it + 1, WARMUP + ITER, " (warm-up)" if it < WARMUP else ""))

    for db in [PREFIX + "seed"] + [PREFIX + "tpl_" + t for t in templates] + [PREFIX + "run_" + t for t in templates]:
        drop(db)

    for name in failed:
        names.remove(name)
        del samples[name]
    floor = benchlib.median(samples["floor"]) if "floor" in samples else float("nan")
    print("N=%d migrations applied, the newest %d reverted; %d measured iterations per row (+%d warm-up); "
          "peers' sslmode=%s (lastgood: no TLS)" % (N, REVERT, ITER, WARMUP, SSLMODE or "default"))
    print()
    print("| tool | what runs | median ms | p90 ms | min ms | max ms | median / floor |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name in names:
        s = benchlib.summary(samples[name])
        print("| %s | %s | %s | %s | %s | %s | %.2f× |" % (
            name, TOOLS[name][1].replace("REVERT", str(REVERT)).replace("KEPT", str(KEPT)),
            benchlib.fmt(s["median"]), benchlib.fmt(s["p90"]), benchlib.fmt(s["min"]), benchlib.fmt(s["max"]),
            s["median"] / floor))
    for name, why in failed.items():
        print("| %s | %s | **FAILED**: `%s` | | | | |" % (
            name, TOOLS[name][1].replace("REVERT", str(REVERT)).replace("KEPT", str(KEPT)),
            why.replace("\n", " / ").replace("|", "\\|")))
    for name in missing:
        print("| %s | %s | not run (not installed or not selected) | | | | |" % (
            name, TOOLS[name][1].replace("REVERT", str(REVERT)).replace("KEPT", str(KEPT))))
    print()
    print("raw samples (ms): " + json.dumps({n: [round(x, 1) for x in v] for n, v in samples.items()}))
    print()
    print("machine: " + benchlib.machine())
    if "lastgood" in failed:
        print()
        print("| goal | result |")
        print("|---|---|")
        print("| within 1.15× the floor; faster than every tool | **FAIL** (lastgood db down failed, see above) |")
    if "lastgood" in samples and "floor" in samples:
        lg = benchlib.median(samples["lastgood"])
        peers = {n: benchlib.median(samples[n]) for n in ("diesel", "sqlx", "sqlx_1by1", "alembic", "alembic_1tx",
                                                           "psql_each") if n in samples}
        ok1 = lg <= 1.15 * floor
        ok2 = all(lg < v for v in peers.values())
        print()
        print("| goal | lastgood median | compared with | ratio | result |")
        print("|---|---:|---|---:|---|")
        print("| within 1.15× the floor | %s | floor %s | %.2f× | **%s** |" % (
            benchlib.fmt(lg), benchlib.fmt(floor), lg / floor, "PASS" if ok1 else "FAIL"))
        if peers:
            best = min(peers, key=peers.get)
            print("| faster than every tool | %s | fastest peer: %s %s | %.2f× | **%s** |" % (
                benchlib.fmt(lg), best, benchlib.fmt(peers[best]), lg / peers[best], "PASS" if ok2 else "FAIL"))


if __name__ == "__main__":
    main()
