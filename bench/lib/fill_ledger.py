"""Fills a lastgood SQLite ledger with synthetic history for env `production`.

Usage: fill_ledger.py LEDGER_DB TOTAL DEPLOY_TO

The ledger must already exist (one real `lastgood deploy` made release #1 and the
schema); rows are inserted straight into that schema. Releases #2..#TOTAL get
increasing ids and created_at, semver-ish versions, random 40-hex commits, 1-4
feature subjects, a config snapshot hash, and a mix of states (about 85% good,
10% failed, 5% bad; the newest is good and current). One deploy operation per
release (outcome matching its state) and one rollback operation per bad release
are recorded too. Only the current release and the newest `keep_releases` (5) good
ones keep artifact = 1, as retention would leave them; their directories are
created under DEPLOY_TO/releases and `current` points at the newest.
Audit events and per-operation steps are not synthesised.
"""

import hashlib
import json
import os
import random
import shutil
import sqlite3
import sys

db, total, deploy_to = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rng = random.Random(42 + total)
con = sqlite3.connect(db, isolation_level=None)
con.execute("PRAGMA busy_timeout = 30000")
env = "production"

first = con.execute("SELECT id, created_at, created_by FROM releases WHERE env = ? ORDER BY id", (env,)).fetchall()
assert first and first[0][0] == 1 and len(first) == 1, "expected exactly release #1 from one real deploy"
base_at = first[0][1] - total * 3600
created_by = first[0][2]
con.execute("BEGIN IMMEDIATE")
# Move #1 back in time so ids and created_at both increase.
con.execute("UPDATE releases SET created_at = ? WHERE env = ? AND id = 1", (base_at, env))

verbs = ["add", "fix", "remove", "speed up", "refactor", "log", "validate", "cache", "retry", "document"]
nouns = ["login form", "invoice export", "search index", "rate limiter", "webhook retries",
         "session store", "pagination", "CSV import", "health endpoint", "email templates",
         "feature flags", "billing job", "audit trail", "S3 uploads", "dark mode"]
areas = ["api", "web", "worker", "db", "auth", "billing", "ui", "infra"]


def state_for(i):
    if i == total:
        return "good"
    r = rng.random()
    return "good" if r < 0.85 else ("failed" if r < 0.95 else "bad")


states = {i: state_for(i) for i in range(2, total + 1)}
states[1] = "good"
good_ids = [i for i in range(total, 0, -1) if states[i] == "good"]
with_artifact = set(good_ids[:5]) | {total}

max_op = con.execute("SELECT COALESCE(MAX(id), 0) FROM operations").fetchone()[0]
op = max_op
rel_rows, op_rows = [], []
pid = 4242
for i in range(2, total + 1):
    at = base_at + i * 3600
    st = states[i]
    op += 1
    version = "1.%d.%d" % (i // 100, i % 100)
    commit = "%040x" % rng.getrandbits(160)
    feats = ["%s(%s): %s %s (#%d)" % (rng.choice(["feat", "fix", "chore", "perf"]), rng.choice(areas),
                                      rng.choice(verbs), rng.choice(nouns), 1000 + i * 3 + k)
             for k in range(rng.randint(1, 4))]
    config = {"app.env": hashlib.sha256(b"cfg%d" % (i // 20)).hexdigest()}
    schema = "2024%08d" % (i // 40) if i % 7 else None
    rel_rows.append((env, i, version, commit, st, schema, at, created_by, "bench fill %d" % i, op,
                     json.dumps(feats), json.dumps(config, sort_keys=True), 1 if i in with_artifact else 0))
    outcome = {"good": "succeeded", "failed": "rolled_back", "bad": "succeeded"}[st]
    op_rows.append((op, env, "deploy", i - 1, i, "full", outcome, 1, "bench fill", created_by, "bench-host",
                    pid, 1, at, at + 40, None if outcome == "succeeded" else "checks failed"))
    if st == "bad":
        op += 1
        op_rows.append((op, env, "rollback", i, i - 1, "full", "succeeded", 0, "bad release", created_by,
                        "bench-host", pid, 1, at + 600, at + 603, None))

con.executemany(
    "INSERT INTO releases (env, id, version, commit_id, state, schema_revision, created_at, created_by,"
    " reason, operation, features, config, artifact) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rel_rows)
con.executemany(
    "INSERT INTO operations (id, env, kind, from_release, to_release, scope, outcome, auto_rollback, reason,"
    " actor, host, pid, epoch, started_at, finished_at, error) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", op_rows)
con.execute("UPDATE releases SET artifact = ? WHERE env = ? AND id = 1", (1 if 1 in with_artifact else 0, env))
con.execute("UPDATE environments SET current_release = ?, config_release = ? WHERE name = ?", (total, total, env))
con.execute("COMMIT")
con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
con.close()

# Directories as retention would leave them; `current` -> the newest.
rel = os.path.join(deploy_to, "releases")
src = os.path.join(rel, "1")
for i in sorted(with_artifact):
    d = os.path.join(rel, str(i))
    if not os.path.exists(d):
        shutil.copytree(src, d, symlinks=True)
if 1 not in with_artifact:
    shutil.rmtree(src)
tmp = os.path.join(deploy_to, "current.tmp")
os.symlink("releases/%d" % total, tmp)
os.replace(tmp, os.path.join(deploy_to, "current"))
print("filled %s: %d releases (%s)" % (db, total, ", ".join(
    "%s=%d" % (s, sum(1 for v in states.values() if v == s)) for s in ("good", "failed", "bad"))), file=sys.stderr)
