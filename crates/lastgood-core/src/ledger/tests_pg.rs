//! What only the team ledger promises, against the real server: leases on the
//! server's clock, one gapless audit chain under concurrent writers (and tampering
//! found), its schema version, its roles, and a lease that outlives its connection.

use std::time::Duration;

use super::*;

fn admin(db: &TestPg) -> ::postgres::Client {
    db.client()
}

fn opened() -> (TestPg, PgLedger) {
    let db = TestPg::new("ledgerpg");
    let url = pg_url(&db);
    PgLedger::init(&url, "lastgood").unwrap();
    let l = PgLedger::open(&url, "lastgood").unwrap();
    (db, l)
}

#[test]
fn client_clocks_skewed_by_an_hour_decide_nothing() {
    let (_db, l) = opened();
    let ctx = Context::from_env();
    // One reading of the clock: a second boundary may pass during the test.
    let now = ctx.now();
    let mut ann = request("ann@h1", Some(Duration::from_secs(60)));
    ann.now = now - 3600;
    l.acquire(&ann, &never).unwrap();
    // Bob's clock is two hours ahead: by it, Ann's lease expired long ago.
    let mut bob = request("bob@h2", Some(Duration::from_secs(60)));
    bob.now = now + 7200;
    let err = l.acquire(&bob, &|i| crate::lock::is_stale(&ctx, i, bob.now)).unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err}");
    // Ann's lease runs on the server's clock, whatever hers said.
    let info = l.lock_info(&env()).unwrap().unwrap();
    assert_eq!(info.expired, Some(false));
    assert!((info.expires_at.unwrap() - now - 60).abs() <= 5, "{info:?}");
    assert_eq!(info.acquired_at, now - 3600, "times written are the client's, for display");
}

#[test]
fn a_lease_outlives_its_connection() {
    let (db, l) = opened();
    let e = l.acquire(&request("ann@h1", Some(Duration::from_secs(60))), &never).unwrap().epoch;
    let mut c = admin(&db);
    let killed: i64 = c
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE datname = current_database() AND application_name = 'lastgood-ledger'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(killed, 1);
    // The next write reconnects; the lock is still Ann's, at the same epoch.
    l.apply(&fence(e), vec![Change::SetCurrent(Some(ReleaseId(3)))]).unwrap();
    assert_eq!(l.lock_info(&env()).unwrap().map(|i| i.epoch), Some(e));
    assert!(matches!(l.acquire(&request("bob@h2", None), &never), Err(Error::Locked { .. })));
}

#[test]
fn one_gapless_chain_under_concurrent_writers_and_tampering_is_found() {
    let (db, l) = opened();
    let url = pg_url(&db);
    let writers: Vec<_> = (0..32)
        .map(|w| {
            let url = url.clone();
            std::thread::spawn(move || {
                let l = PgLedger::open(&url, "lastgood").unwrap();
                let env = EnvName::parse(&format!("env{}", w % 8)).unwrap();
                for i in 0..32 {
                    l.apply_unfenced(&env, vec![Change::Audit(event(&format!("w{w}.{i}"), None))]).unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    assert_eq!(l.verify_audit().unwrap(), AuditCheck::Intact { events: 1024 });
    let mut c = admin(&db);
    let row = c
        .query_one("SELECT count(*), min(seq), max(seq), count(DISTINCT prev_hash) FROM lastgood.audit_events", &[])
        .unwrap();
    assert_eq!(
        (row.get::<_, i64>(0), row.get::<_, i64>(1), row.get::<_, i64>(2), row.get::<_, i64>(3)),
        (1024, 1, 1024, 1024)
    );
    // Append-only, even for the owner.
    for sql in [
        "UPDATE lastgood.audit_events SET detail = '{}' WHERE seq = 5",
        "DELETE FROM lastgood.audit_events WHERE seq = 5",
        "TRUNCATE lastgood.audit_events CASCADE",
    ] {
        let err = c.batch_execute(sql).unwrap_err();
        assert!(pg_client_message(&err).contains("append-only"), "{sql}: {err}");
    }
    // Around the triggers, as a superuser may: every kind of tampering is found.
    c.batch_execute("ALTER TABLE lastgood.audit_events DISABLE TRIGGER USER").unwrap();
    let tamper = [
        ("UPDATE lastgood.audit_events SET detail = '{\"k\":\"x\"}' WHERE seq = 500", "edited"),
        ("DELETE FROM lastgood.audit_events WHERE seq = 300", "removed"),
        ("DELETE FROM lastgood.audit_events WHERE seq = 1024", "tail cut"),
    ];
    for (sql, what) in tamper {
        let mut tx = c.transaction().unwrap();
        tx.batch_execute(sql).unwrap();
        // Check while the change is visible only to this transaction's view: verify
        // through a second connection cannot see it, so check it from here.
        let rows = tx
            .query(
                "SELECT id, seq, at, actor, host, env, operation, event, detail, prev_hash, hash
                 FROM lastgood.audit_events ORDER BY seq",
                &[],
            )
            .unwrap();
        let head: i64 = tx.query_one("SELECT seq FROM lastgood.audit_heads", &[]).unwrap().get(0);
        let gapless = rows.iter().enumerate().all(|(i, r)| r.get::<_, i64>(1) == i as i64 + 1);
        let chain = audit::verify(rows.iter().map(|r| {
            Ok::<_, ()>(audit::ChainedEvent {
                id: r.get(0),
                event: AuditEvent {
                    at: r.get(2),
                    actor: r.get(3),
                    host: r.get(4),
                    env: r.get(5),
                    operation: r.get::<_, Option<i64>>(6).map(|o| o as u64),
                    event: r.get(7),
                    detail: serde_json::from_str(&r.get::<_, String>(8)).unwrap(),
                },
                prev_hash: r.get(9),
                hash: r.get(10),
            })
        }))
        .unwrap();
        let found = !gapless || !matches!(chain, AuditCheck::Intact { events } if events as i64 == head);
        assert!(found, "{what} was not found");
        tx.rollback().unwrap();
    }
    // And committed, through the ledger itself.
    c.batch_execute("UPDATE lastgood.audit_events SET detail = '{\"k\":\"x\"}' WHERE seq = 500").unwrap();
    assert!(matches!(l.verify_audit().unwrap(), AuditCheck::Broken { .. }));
}

fn pg_client_message(e: &::postgres::Error) -> String {
    crate::database::pg_client::message(e)
}

#[test]
fn a_newer_schema_is_read_and_never_written_and_none_is_never_created_by_opening() {
    let db = TestPg::new("ledgerver");
    let url = pg_url(&db);
    let err = PgLedger::open(&url, "lastgood").err().unwrap().to_string();
    assert!(err.contains("no ledger in schema `lastgood`") && err.contains("lastgood ledger init"), "{err}");
    let mut c = admin(&db);
    let schemas: i64 = c.query_one("SELECT count(*) FROM pg_namespace WHERE nspname = 'lastgood'", &[]).unwrap().get(0);
    assert_eq!(schemas, 0, "opening created nothing");
    PgLedger::init(&url, "lastgood").unwrap();
    assert_eq!(PgLedger::init(&url, "lastgood").unwrap(), postgres::Init::AlreadyThere { version: 1 });
    let l = PgLedger::open(&url, "lastgood").unwrap();
    l.acquire(&request("ann@h1", None), &never).unwrap();
    c.batch_execute("UPDATE lastgood.meta SET value = '2'").unwrap();
    let old = PgLedger::open(&url, "lastgood").unwrap();
    assert_eq!(old.lock_info(&env()).unwrap().map(|i| i.holder), Some("ann@h1".into()));
    assert!(old.verify_audit().is_ok());
    let err = old.force_unlock(&env(), Some(1), event("lock.release", None)).unwrap_err().to_string();
    assert!(err.contains("may read but not write"), "{err}");
    assert!(old.apply_unfenced(&env(), vec![Change::Audit(event("x", None))]).is_err());
    assert!(old.lock_info(&env()).unwrap().is_some(), "nothing was written");
    c.batch_execute("UPDATE lastgood.meta SET value = '0'").unwrap();
    let err = PgLedger::open(&url, "lastgood").err().unwrap().to_string();
    assert!(err.contains("older than this lastgood"), "{err}");
}

/// The printed grants, run as given: an operator login does an operation's work and
/// cannot change or remove audit events, delete lock rows or change the schema; the
/// viewer reads and writes nothing.
#[test]
fn the_operator_role_writes_the_ledger_and_cannot_rewrite_it() {
    let (db, _) = opened();
    // The roles and their logins are the server's (scripts/services.sh creates them).
    let mut c = admin(&db);
    c.batch_execute(&postgres_schema::grants("lastgood")).unwrap();
    let (login, viewer) = ("lastgood_op_test", "lastgood_view_test");
    let as_role = |user: &str, password: &str| {
        let mut u = pg_url(&db);
        u.user = user.to_owned();
        u.set_password(password);
        u
    };
    let op_url = as_role(login, "operator-pw");
    let l = PgLedger::open(&op_url, "lastgood").unwrap();
    let e = l.acquire(&request("ann@h1", Some(Duration::from_secs(60))), &never).unwrap().epoch;
    let op = l.begin_operation(&fence(e), new_operation(1)).unwrap();
    l.apply(&fence(e), vec![Change::Audit(event("deploy.finish", Some(op))), Change::ReleaseLock]).unwrap();
    let who: String =
        c.query_one("SELECT db_user FROM lastgood.audit_events ORDER BY seq DESC LIMIT 1", &[]).unwrap().get(0);
    assert_eq!(who, login, "the server records who wrote, beside the actor claimed");
    let mut oc = op_url.client_config("test").connect(::postgres::NoTls).unwrap();
    for sql in [
        "UPDATE lastgood.audit_events SET detail = '{}'",
        "DELETE FROM lastgood.audit_events",
        "TRUNCATE lastgood.audit_events",
        "DELETE FROM lastgood.locks",
        "DELETE FROM lastgood.releases",
        "CREATE TABLE lastgood.x (a int)",
        "ALTER TABLE lastgood.locks ADD COLUMN x int",
        "DROP TABLE lastgood.steps",
    ] {
        let err = oc.batch_execute(sql).unwrap_err();
        let m = pg_client_message(&err);
        assert!(m.contains("permission denied") || m.contains("must be owner"), "{sql}: {m}");
    }
    let mut vc = as_role(viewer, "viewer-pw").client_config("test").connect(::postgres::NoTls).unwrap();
    assert_eq!(vc.query_one("SELECT count(*) FROM lastgood.releases", &[]).unwrap().get::<_, i64>(0), 1);
    for sql in ["INSERT INTO lastgood.meta VALUES ('x', 'y')", "SELECT * FROM lastgood.blobs"] {
        let err = vc.batch_execute(sql).unwrap_err();
        assert!(pg_client_message(&err).contains("permission denied"), "{sql}: {err}");
    }
}
