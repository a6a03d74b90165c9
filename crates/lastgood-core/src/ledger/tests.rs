//! The same ledger tests against both stores: SQLite in a temporary folder, and
//! PostgreSQL in a fresh database of the test server (`LASTGOOD_TEST_PG`). Each test
//! is written once against the [`Ledger`] trait; `both!` runs it on each store.
//! Tests of what only the team ledger promises (the server's clock, concurrent
//! writers on one audit chain, its schema version) follow, on PostgreSQL only.

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::context::Context;
use crate::database::test_pg::TestPg;
use crate::database::url::DbUrl;
use crate::error::Error;
use crate::model::{CommitId, EnvName, OperationKind, Outcome, ReleaseId, ReleaseState, Scope};
use crate::plan::{Phase, Step};

/// A store to test, and whatever keeps it alive (the folder, the database).
struct Store {
    ledger: Box<dyn Ledger>,
    open: Box<dyn Fn() -> Box<dyn Ledger>>,
    _keep: Box<dyn std::any::Any>,
}

fn sqlite() -> Store {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    let p = path.clone();
    Store {
        ledger: Box::new(SqliteLedger::open(&path).unwrap()),
        open: Box::new(move || Box::new(SqliteLedger::open(&p).unwrap())),
        _keep: Box::new(dir),
    }
}

fn pg_url(db: &TestPg) -> crate::database::url::PgUrl {
    let DbUrl::Postgres(u) = &db.url else { unreachable!() };
    u.clone()
}

fn postgres() -> Store {
    let db = TestPg::new("ledger");
    let url = pg_url(&db);
    assert_eq!(PgLedger::init(&url, "lastgood").unwrap(), postgres::Init::Created);
    let u = url.clone();
    Store {
        ledger: Box::new(PgLedger::open(&url, "lastgood").unwrap()),
        open: Box::new(move || Box::new(PgLedger::open(&u, "lastgood").unwrap())),
        _keep: Box::new(db),
    }
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite { $(#[test] fn $name() { super::$name(&super::sqlite()); })* }
        mod on_postgres { $(#[test] fn $name() { super::$name(&super::postgres()); })* }
    };
}

both!(
    each_grant_raises_the_epoch_and_a_held_lock_refuses,
    a_stale_holder_changes_nothing,
    an_operation_and_its_release_round_trip,
    unlock_by_epoch_breaks_only_the_lock_it_names,
    the_heartbeat_renews_only_the_holders_lease,
    backups_are_recorded_and_read_back,
    apply_unfenced_cannot_free_the_lock,
    an_expired_lease_is_taken_over,
);

fn env() -> EnvName {
    EnvName::parse("production").unwrap()
}

fn request(holder: &str, lease: Option<Duration>) -> LockRequest {
    LockRequest {
        env: env(),
        holder: holder.into(),
        host: "h1".into(),
        pid: Some(1),
        pid_start: Some(1),
        reason: Some("test".into()),
        now: 1_700_000_000,
        lease,
        machine: None,
    }
}

fn fence(epoch: i64) -> Fence {
    Fence { env: env(), epoch }
}

fn event(name: &str, op: Option<u64>) -> AuditEvent {
    AuditEvent {
        at: 1_700_000_000,
        actor: "ann@h1".into(),
        host: "h1".into(),
        env: Some("production".into()),
        operation: op,
        event: name.into(),
        detail: serde_json::json!({ "k": name }),
    }
}

fn new_operation(id: u64) -> NewOperation {
    let release = ReleaseId(id);
    NewOperation {
        kind: OperationKind::Deploy,
        from: None,
        to: release,
        scope: Scope::Full,
        auto_rollback: true,
        reason: Some("ship".into()),
        actor: "ann@h1".into(),
        host: "h1".into(),
        pid: 42,
        started_at: 1_700_000_000,
        steps: vec![
            (Step::Switch { release }, Phase::Forward, "local".into()),
            (Step::Verify { release }, Phase::Forward, "local".into()),
        ],
        release: Some(NewRelease {
            id: release,
            version: format!("v{id}"),
            commit: Some(CommitId::parse(&"a".repeat(40)).unwrap()),
            features: vec!["a feature".into()],
            config: BTreeMap::from([("app.env".into(), SHA.into())]),
            blobs: vec![(SHA.into(), b"HEALTH=ok\n".to_vec())],
        }),
        allow_data_loss: false,
    }
}

const SHA: &str = "5f2b8f2a1b8d1f0e6d8f3a2c4b6e8d0a1c3e5f7a9b2d4f6e8a0c2e4f6a8b0c2d";

fn never(_: &LockInfo) -> bool {
    false
}
fn always(_: &LockInfo) -> bool {
    true
}

fn each_grant_raises_the_epoch_and_a_held_lock_refuses(s: &Store) {
    let l = s.ledger.as_ref();
    assert_eq!(l.acquire(&request("ann@h1", None), &never).unwrap().epoch, 1);
    let err = l.acquire(&request("bob@h2", None), &never).unwrap_err();
    assert!(matches!(&err, Error::Locked { holder, .. } if holder == "ann@h1"), "{err}");
    let info = l.lock_info(&env()).unwrap().unwrap();
    assert_eq!((info.holder.as_str(), info.epoch, info.expires_at), ("ann@h1", 1, None));
    l.release_lock(&fence(1)).unwrap();
    assert!(l.lock_info(&env()).unwrap().is_none());
    // The environment remembers the last grant (a plan reads it before the lock).
    assert_eq!(l.env_state(&env()).unwrap().epoch, 1);
    // Freed, and the epoch never goes back.
    assert_eq!(l.acquire(&request("bob@h2", None), &never).unwrap().epoch, 2);
    assert_eq!(l.env_state(&env()).unwrap().epoch, 2);
    let took = l.acquire(&request("cy@h3", None), &always).unwrap();
    assert_eq!((took.epoch, took.took_over.map(|t| t.holder)), (3, Some("bob@h2".into())));
    assert!(matches!(l.verify_audit().unwrap(), AuditCheck::Intact { events: 3 }));
}

fn a_stale_holder_changes_nothing(s: &Store) {
    let l = s.ledger.as_ref();
    let old = l.acquire(&request("ann@h1", Some(Duration::from_secs(60))), &never).unwrap().epoch;
    let op = l.begin_operation(&fence(old), new_operation(1)).unwrap();
    let new = l.acquire(&request("bob@h2", Some(Duration::from_secs(60))), &always).unwrap().epoch;
    assert_eq!(new, old + 1);
    let before = l.verify_audit().unwrap();
    let err = l
        .apply(&fence(old), vec![Change::SetCurrent(Some(ReleaseId(1))), Change::Audit(event("stale", Some(op)))])
        .unwrap_err();
    assert!(matches!(err, Error::Fenced { epoch, .. } if epoch == old), "{err}");
    assert_eq!(err.exit_code(), 5);
    assert_eq!(l.env_state(&env()).unwrap().current, None);
    assert_eq!(l.verify_audit().unwrap(), before);
    assert!(l.begin_operation(&fence(old), new_operation(2)).is_err());
    // The old holder's free leaves the new holder's lock alone.
    l.release_lock(&fence(old)).unwrap();
    assert_eq!(l.lock_info(&env()).unwrap().map(|i| i.epoch), Some(new));
    l.apply(&fence(new), vec![Change::SetCurrent(Some(ReleaseId(1)))]).unwrap();
    assert_eq!(l.env_state(&env()).unwrap().current, Some(ReleaseId(1)));
}

fn an_operation_and_its_release_round_trip(s: &Store) {
    let l = s.ledger.as_ref();
    let e = l.acquire(&request("ann@h1", Some(Duration::from_secs(60))), &never).unwrap().epoch;
    assert_eq!(l.next_release_id(&env()).unwrap(), ReleaseId(1));
    let op = l.begin_operation(&fence(e), new_operation(1)).unwrap();
    assert_eq!(l.lock_info(&env()).unwrap().unwrap().operation, Some(op));
    assert_eq!(l.running_operation(&env()).unwrap().map(|o| o.id), Some(op));
    let r = l.release(&env(), ReleaseId(1)).unwrap().unwrap();
    assert_eq!((r.version.as_str(), r.state, r.operation), ("v1", ReleaseState::Pending, Some(op)));
    assert_eq!(r.features, vec!["a feature".to_owned()]);
    assert_eq!(l.blob(SHA).unwrap().as_deref(), Some(&b"HEALTH=ok\n"[..]));
    l.apply(
        &fence(e),
        vec![
            Change::StepIntended { op, seq: 1, at_ms: 5 },
            Change::StepFinished { op, seq: 1, state: StepState::Done, duration_ms: 7, detail: Some("ok".into()) },
            Change::SkipRemaining { op, from_seq: 2 },
            Change::AppendSteps { op, steps: vec![(Step::Cleanup, Phase::Forward, "local".into())] },
            Change::SetCurrent(Some(ReleaseId(1))),
            Change::SetConfigRelease(Some(ReleaseId(1))),
            Change::SetSchemaAhead(2),
            Change::SetReleaseState { release: ReleaseId(1), state: ReleaseState::Good },
            Change::SetSchemaRevision { release: ReleaseId(1), revision: Some("3".into()) },
            Change::FinishOperation { op, outcome: Outcome::Succeeded, at: 1_700_000_100, error: None },
            Change::Audit(event("deploy.finish", Some(op))),
            Change::ReleaseLock,
        ],
    )
    .unwrap();
    let steps = l.steps(op).unwrap();
    let states: Vec<_> = steps.iter().map(|s| (s.seq, s.step.name(), s.state)).collect();
    assert_eq!(
        states,
        vec![(1, "switch", StepState::Done), (2, "verify", StepState::Skipped), (3, "cleanup", StepState::Planned)]
    );
    assert_eq!((steps[0].duration_ms, steps[0].detail.as_deref()), (Some(7), Some("ok")));
    let state = l.env_state(&env()).unwrap();
    assert_eq!((state.current, state.config_release, state.schema_ahead), (Some(ReleaseId(1)), Some(ReleaseId(1)), 2));
    assert!(l.lock_info(&env()).unwrap().is_none());
    assert!(l.running_operation(&env()).unwrap().is_none());
    let o = l.operation(op).unwrap().unwrap();
    assert_eq!((o.outcome, o.epoch, o.finished_at), (Outcome::Succeeded, e, Some(1_700_000_100)));
    let good = l.last_good(&env(), None).unwrap().unwrap();
    assert_eq!((good.id, good.schema_revision.as_deref()), (ReleaseId(1), Some("3")));
    assert!(l.last_good(&env(), Some(ReleaseId(1))).unwrap().is_none());
    assert_eq!(l.release_by_version(&env(), "v1").unwrap().map(|r| r.id), Some(ReleaseId(1)));
    assert!(l.release_before(&env(), ReleaseId(1)).unwrap().is_none());
    assert_eq!(l.releases(&env(), 10).unwrap().len(), 1);
    assert_eq!(l.releases_with_artifacts(&env()).unwrap().len(), 1);
    let events: Vec<_> = l.audit_events(op).unwrap().into_iter().map(|a| a.event.event).collect();
    assert_eq!(events, vec!["deploy.start", "deploy.finish"]);
    assert_eq!(l.verify_audit().unwrap(), AuditCheck::Intact { events: 3 });
    // What one connection wrote, another reads.
    let other = (s.open)();
    assert_eq!(other.env_state(&env()).unwrap().current, Some(ReleaseId(1)));
}

fn unlock_by_epoch_breaks_only_the_lock_it_names(s: &Store) {
    let l = s.ledger.as_ref();
    l.acquire(&request("ann@h1", None), &never).unwrap();
    l.acquire(&request("bob@h2", None), &always).unwrap();
    let err = l.force_unlock(&env(), Some(1), event("lock.release", None)).unwrap_err();
    assert!(matches!(err, Error::LockChanged { asked: 1, held: Some(2), .. }), "{err}");
    assert_eq!(err.exit_code(), 3);
    assert_eq!(l.lock_info(&env()).unwrap().map(|i| i.holder), Some("bob@h2".into()));
    let freed = l.force_unlock(&env(), Some(2), event("lock.release", None)).unwrap();
    assert_eq!(freed.map(|i| i.epoch), Some(2));
    assert!(l.lock_info(&env()).unwrap().is_none());
    assert!(matches!(
        l.force_unlock(&env(), Some(2), event("lock.release", None)),
        Err(Error::LockChanged { held: None, .. })
    ));
}

fn the_heartbeat_renews_only_the_holders_lease(s: &Store) {
    let l = s.ledger.as_ref();
    l.acquire(&request("ann@h1", Some(Duration::from_secs(5))), &never).unwrap();
    let before = l.lock_info(&env()).unwrap().unwrap().expires_at.unwrap();
    assert!(l.heartbeat(&fence(1), 1_700_000_100, Duration::from_secs(600)).unwrap());
    assert!(l.lock_info(&env()).unwrap().unwrap().expires_at.unwrap() > before + 100);
    l.acquire(&request("bob@h2", Some(Duration::from_secs(5))), &always).unwrap();
    assert!(!l.heartbeat(&fence(1), 1_700_000_100, Duration::from_secs(600)).unwrap());
}

fn backups_are_recorded_and_read_back(s: &Store) {
    let l = s.ledger.as_ref();
    let e = l.acquire(&request("ann@h1", None), &never).unwrap().epoch;
    let record = |n: u64| BackupRecord {
        id: 0,
        operation: None,
        release: Some(ReleaseId(n)),
        file: BackupFile {
            path: format!("/b/{n}.dump").into(),
            kind: BackupKind::PgDump,
            sha256: "ab".into(),
            bytes: n,
            duration_ms: 0,
        },
        schema_revision: Some("2".into()),
        created_at: 5,
        created_by: "ann@h1".into(),
    };
    l.apply(&fence(e), vec![Change::RecordBackup(record(1)), Change::RecordBackup(record(2))]).unwrap();
    let got = l.backups(&env(), 10).unwrap();
    assert_eq!(got.iter().map(|b| b.file.bytes).collect::<Vec<_>>(), vec![2, 1]);
    assert_eq!((got[0].file.kind, got[0].schema_revision.as_deref()), (BackupKind::PgDump, Some("2")));
}

fn apply_unfenced_cannot_free_the_lock(s: &Store) {
    let l = s.ledger.as_ref();
    l.acquire(&request("ann@h1", None), &never).unwrap();
    assert!(l.apply_unfenced(&env(), vec![Change::ReleaseLock]).is_err());
    assert!(l.lock_info(&env()).unwrap().is_some());
    l.apply_unfenced(&env(), vec![Change::Audit(event("note", None))]).unwrap();
    assert_eq!(l.verify_audit().unwrap(), AuditCheck::Intact { events: 2 });
}

/// A one-second lease, judged the way the engine judges it: by the store's clock when
/// it has one, else by the caller's.
fn an_expired_lease_is_taken_over(s: &Store) {
    let l = s.ledger.as_ref();
    let ctx = Context::from_env();
    let mut req = request("ann@h1", Some(Duration::from_secs(1)));
    req.now = ctx.now();
    l.acquire(&req, &never).unwrap();
    let stale = |i: &LockInfo| crate::lock::is_stale(&ctx, i, ctx.now());
    let mut bob = request("bob@h2", Some(Duration::from_secs(60)));
    bob.now = ctx.now();
    assert!(matches!(l.acquire(&bob, &stale), Err(Error::Locked { .. })));
    std::thread::sleep(Duration::from_millis(2100));
    bob.now = ctx.now();
    let took = l.acquire(&bob, &|i| crate::lock::is_stale(&ctx, i, ctx.now())).unwrap();
    assert_eq!(took.took_over.map(|t| t.holder), Some("ann@h1".into()));
}

#[path = "tests_pg.rs"]
mod pg_only;
