//! The team ledger on the real PostgreSQL 15: workspaces playing operators on
//! different machines (`LASTGOOD_HOSTNAME`) share one ledger; the failure table of
//! docs/team-ledger.md, through the built binary.

use std::process::Stdio;
use std::time::Duration;

use lastgood_testkit::{Config, Database, PgBouncer, PgDb, TestEnv, free_port};

use crate::env_with_versions;

/// A workspace with versions v1..=v`n` whose ledger is `url`, created if needed.
fn team_env(n: u32, url: &str, config: Config) -> TestEnv {
    let env = env_with_versions(n);
    env.configure(&config.table(&format!("[ledger]\nurl = \"{url}\"")));
    env.test().args(["ledger", "init"]).run();
    env
}

fn on(env: &TestEnv, machine: &str, args: &[&str]) -> std::process::Command {
    let mut c = env.cmd(args);
    c.env("LASTGOOD_HOSTNAME", machine);
    c
}

fn kill(signal: &str, pid: u32) {
    assert!(std::process::Command::new("kill").args([signal, &pid.to_string()]).status().unwrap().success());
}

/// 2, 8 and 32 processes on two machines race for the lock, round after round:
/// exactly one winner per grant, each grant's epoch above the last, and one chain.
#[test]
fn processes_racing_the_lock_across_two_machines_have_one_winner_per_grant() {
    let db = PgDb::new("race");
    let env = team_env(1, &db.url, Config::new());
    let mut last_epoch = 0;
    for (racers, rounds) in [(2, 6), (8, 4), (32, 3)] {
        for round in 0..rounds {
            let children: Vec<_> = (0..racers)
                .map(|i| {
                    let machine = if i % 2 == 0 { "machine-a" } else { "machine-b" };
                    on(&env, machine, &["lock", "production", "--reason", &format!("racer {i}"), "--format", "json"])
                        .stdout(Stdio::piped())
                        .stderr(Stdio::piped())
                        .spawn()
                        .unwrap()
                })
                .collect();
            let outs: Vec<_> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
            let codes: Vec<i32> = outs.iter().map(|o| o.status.code().unwrap_or(-1)).collect();
            let winners: Vec<_> = outs.iter().filter(|o| o.status.success()).collect();
            assert_eq!(winners.len(), 1, "{racers} racers, round {round}: {codes:?}");
            assert_eq!(codes.iter().filter(|&&c| c == 3).count(), racers - 1, "{codes:?}");
            let won: serde_json::Value = serde_json::from_slice(&winners[0].stdout).unwrap();
            let epoch = won["epoch"].as_i64().unwrap();
            assert!(epoch > last_epoch, "epoch {epoch} after {last_epoch}");
            last_epoch = epoch;
            env.test().args(["unlock", "production", "--epoch", &epoch.to_string()]).run();
        }
    }
    env.test().args(["audit", "verify"]).stdout_has("audit chain ok").run();
    // Every grant and release is one event of one gapless chain, written by the server's user.
    assert_eq!(db.sql("SELECT count(*) = max(seq) FROM lastgood.audit_events"), "t");
    assert_eq!(db.sql("SELECT count(DISTINCT db_user) FROM lastgood.audit_events"), "1");
}

/// Two operators' workspaces on two machines share history, the lock and the audit
/// chain; `ledger status` names the lock's epoch and `unlock --epoch` breaks only it.
#[test]
fn two_workspaces_share_history_the_lock_and_the_chain() {
    let db = PgDb::new("share");
    let a = team_env(2, &db.url, Config::new());
    let b = team_env(2, &db.url, Config::new());
    b.test().args(["ledger", "init"]).stderr_has("found the ledger in schema `lastgood`").stdout_has("GRANT").run();
    on(&a, "laptop-a", &["deploy", "production", "v1", "--reason", "t"]).status().unwrap();
    let history = b.history();
    assert_eq!(history.as_array().map(Vec::len), Some(1), "{history}");
    b.test().args(["lock", "production", "--reason", "maintenance"]).env("LASTGOOD_HOSTNAME", "laptop-b").run();
    a.test()
        .args(["deploy", "production", "v2"])
        .env("LASTGOOD_HOSTNAME", "laptop-a")
        .status(3)
        .stderr_has("locked by tester@laptop-b")
        .run();
    let status =
        a.test().args(["ledger", "status"]).stdout_has("production: release 1, locked by tester@laptop-b").run();
    let epoch = status.stdout.split("at epoch ").nth(1).and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next());
    let epoch: i64 = epoch.unwrap().parse().unwrap();
    a.test()
        .args(["unlock", "production", "--force", "--epoch", &(epoch - 1).to_string()])
        .status(3)
        .stderr_has(&format!("is not at epoch {}", epoch - 1))
        .run();
    a.test().args(["unlock", "production", "--force", "--epoch", &epoch.to_string()]).run();
    a.test().args(["deploy", "production", "v2", "--reason", "t"]).run();
    b.test().args(["audit", "verify"]).stdout_has("audit chain ok").run();
}

/// Files that live on one machine (an environment without hosts keeps its release
/// directories and backups where they were written) are named with that machine and
/// path; another operator's plan refuses to use them (exit 4) and says where they are.
#[test]
fn files_of_one_machine_are_named_with_it_and_refused_elsewhere() {
    let ledger = PgDb::new("machines");
    let app = PgDb::new("machines_app");
    let migration = |name: &str, table: &str| {
        [
            (format!("migrations/{name}/up.sql"), format!("CREATE TABLE {table} (id integer);\n")),
            (format!("migrations/{name}/down.sql"), format!("DROP TABLE {table};\n")),
        ]
    };
    let make = || {
        let mut env = TestEnv::new(crate::BIN);
        for (tag, files) in [
            ("v1", migration("2024-01-01-000000_orders", "orders")),
            ("v2", migration("2024-01-02-000000_items", "items")),
        ] {
            let files: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();
            env.commit_version(tag, &files);
        }
        env.configure(
            &Config::new()
                .database(Database::url(&app.url).migrations("migrations").key("backup_method", "pg_dump"))
                .table(&format!("[ledger]\nurl = \"{}\"", ledger.url)),
        );
        env.test().args(["ledger", "init"]).run();
        env
    };
    let (a, b) = (make(), make());
    a.test().args(["deploy", "production", "v1", "--reason", "t"]).env("LASTGOOD_HOSTNAME", "laptop-a").run();
    let taken =
        a.test().args(["db", "backup", "production", "--format", "json"]).env("LASTGOOD_HOSTNAME", "laptop-a").run();
    let backup: serde_json::Value = serde_json::from_str(&taken.stdout).unwrap();
    let (id, path) = (backup["id"].as_u64().unwrap().to_string(), backup["location"].as_str().unwrap().to_owned());

    // Listed by any operator with its machine and path.
    let listed =
        b.test().args(["db", "backups", "production", "--format", "json"]).env("LASTGOOD_HOSTNAME", "laptop-b").run();
    let listed: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(listed[0]["place"], format!("laptop-a:{path}"), "{listed}");
    // A restore's plan names where its backup is kept.
    let preview = ["db", "restore", "production", "--id", &id, "--dry-run"];
    a.test().args(preview).env("LASTGOOD_HOSTNAME", "laptop-a").stdout_has(&format!("kept at laptop-a:{path}")).run();

    // The file gone from where this machine looks: on laptop-b it is "on laptop-a"; on
    // laptop-a itself it is missing.
    std::fs::rename(&path, format!("{path}.away")).unwrap();
    let restore = ["db", "restore", "production", "--id", &id, "--reason", "t", "--yes"];
    b.test()
        .args(restore)
        .env("LASTGOOD_HOSTNAME", "laptop-b")
        .status(4)
        .stderr_has(&format!("backup {id} (laptop-a:{path}) lives on the machine `laptop-a`, and this is `laptop-b`"))
        .run();
    a.test().args(restore).env("LASTGOOD_HOSTNAME", "laptop-a").status(4).stderr_has(" is gone").run();

    // Release directories too: laptop-b has none of laptop-a's.
    a.test().args(["deploy", "production", "v2", "--reason", "t"]).env("LASTGOOD_HOSTNAME", "laptop-a").run();
    b.test()
        .args(["rollback", "production", "--to", "1", "--reason", "t"])
        .env("LASTGOOD_HOSTNAME", "laptop-b")
        .status(4)
        .stderr_has("release #1 (v1) lives on the machine `laptop-a`, and this is `laptop-b`")
        .run();
    // Its plan also says where a backup it takes would go.
    a.test()
        .args(["rollback", "production", "--to", "1", "--dry-run", "--allow-data-loss"])
        .env("LASTGOOD_HOSTNAME", "laptop-a")
        .stdout_has("the backup before the migration is written to laptop-a:")
        .run();
}

/// A holder stopped past its lease is taken over from another machine; when it runs
/// again, its writes are fenced (exit 5) and change nothing.
#[test]
fn a_paused_holder_past_its_lease_is_fenced_out() {
    let db = PgDb::new("pause");
    let env = team_env(2, &db.url, Config::new().key("lease", "3s").build(["sleep", "1"]));
    env.test().args(["deploy", "production", "v1"]).run();
    let a = on(&env, "machine-a", &["deploy", "production", "v2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..300 {
        if env.status()["lock"]["operation"].is_u64() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // Stop it outside a transaction: one stopped inside holds its row locks (until
    // idle_in_transaction_session_timeout ends its session).
    let in_tx = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND application_name = 'lastgood-ledger' AND state LIKE 'idle in transaction%'";
    let mut paused = false;
    for _ in 0..50 {
        kill("-STOP", a.id());
        if db.sql(in_tx) == "0" {
            paused = true;
            break;
        }
        kill("-CONT", a.id());
        std::thread::sleep(Duration::from_millis(37));
    }
    assert!(paused, "could not pause the holder outside a transaction");
    std::thread::sleep(Duration::from_millis(4000));
    env.test().args(["resume", "production", "--abort"]).env("LASTGOOD_HOSTNAME", "machine-b").run();
    assert_eq!(env.serving().as_deref(), Some("v1"));
    let events_before = db.sql("SELECT count(*) FROM lastgood.audit_events");
    kill("-CONT", a.id());
    let a = a.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&a.stderr);
    assert_eq!(a.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("lost its lock"), "{stderr}");
    assert_eq!(env.serving().as_deref(), Some("v1"));
    assert_eq!(env.current_link(), Some(1));
    assert_eq!(db.sql("SELECT count(*) FROM lastgood.audit_events"), events_before, "the old holder wrote nothing");
    assert_eq!(env.status()["lock"], serde_json::json!(null));
}

/// `pg_terminate_backend` of the holder's connections: it reconnects, the lease
/// lives in the table, nobody takes over before it expires, and the deploy finishes.
#[test]
fn the_lease_survives_the_holders_connections_being_terminated() {
    let db = PgDb::new("term");
    // The build outlasts the lease several times: only the heartbeat keeps it.
    let env = team_env(2, &db.url, Config::new().key("lease", "3s").build(["sleep", "10"]));
    env.test().args(["deploy", "production", "v1"]).run();
    let mut a = on(&env, "machine-a", &["deploy", "production", "v2"]).stderr(Stdio::null()).spawn().unwrap();
    for _ in 0..300 {
        if env.status()["lock"]["operation"].is_u64() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    for round in 0..3 {
        assert!(a.try_wait().unwrap().is_none(), "the holder finished before round {round}");
        let killed = db.sql(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() \
             AND application_name = 'lastgood-ledger' AND pid <> pg_backend_pid()",
        );
        // The first time it holds connections; later it reconnects when it next writes.
        assert!(round > 0 || killed != "0", "no connection of the holder's to terminate");
        env.test()
            .args(["rollback", "production", "--to", "1", "--reason", "t", "--no-preempt"])
            .env("LASTGOOD_HOSTNAME", "machine-b")
            .status(3)
            .run();
        std::thread::sleep(Duration::from_millis(700));
    }
    assert!(a.wait().unwrap().success());
    assert_eq!(env.serving().as_deref(), Some("v2"));
    env.test().args(["audit", "verify"]).run();
}

/// The ledger's server down: every command fails closed (exit 1) and changes nothing.
#[test]
fn the_ledger_down_fails_every_command_closed() {
    let env = env_with_versions(1);
    let url = format!("postgres://nobody:pw@127.0.0.1:{}/ledger", free_port());
    env.configure(&Config::new().table(&format!("[ledger]\nurl = \"{url}\"")));
    for args in [
        &["deploy", "production", "v1"][..],
        &["status", "production"],
        &["lock", "production", "--reason", "x"],
        &["rollback", "production", "--reason", "x"],
        &["ledger", "status"],
    ] {
        let run = env.test().args(args).status(1).stderr_has("cannot reach the ledger's server").run();
        assert!(!run.stderr.contains(":pw@"), "{}", run.stderr);
    }
    assert!(!env.deploy_to().join("current").exists());
}

/// A COMMIT whose acknowledgement is lost: the retry finds its write id; no step or
/// audit event is written twice.
#[test]
fn a_lost_commit_acknowledgement_writes_nothing_twice() {
    let db = PgDb::new("ack");
    let env = team_env(1, &db.url, Config::new());
    for nth in [1, 3, 6] {
        env.test()
            .args(["deploy", "production", "v1", "--reason", "t"])
            .env("LASTGOOD_FAILPOINT", &format!("ledger:ack-lost@{nth}"))
            .run();
    }
    assert_eq!(db.sql("SELECT count(*) FROM lastgood.operations"), "3");
    assert_eq!(db.sql("SELECT count(*) FROM lastgood.releases"), "3");
    assert_eq!(db.sql("SELECT count(*) FROM lastgood.audit_events WHERE event = 'deploy.start'"), "3");
    assert_eq!(db.sql("SELECT count(*) FROM lastgood.audit_events WHERE event = 'lock.acquire'"), "3");
    assert_eq!(
        db.sql("SELECT count(*) FROM (SELECT operation, seq FROM lastgood.steps GROUP BY 1, 2) s"),
        db.sql("SELECT count(*) FROM lastgood.steps")
    );
    env.test().args(["audit", "verify"]).run();
}

/// The ledger in an environment's own database, however the URL is written: refused.
#[test]
fn the_ledger_may_not_be_an_environments_application_database() {
    let db = PgDb::new("appdb");
    let env = env_with_versions(1);
    let other_spelling = db.url.replace("127.0.0.1", "localhost");
    env.configure(
        &Config::new()
            .database(lastgood_testkit::Database::url(&other_spelling))
            .table(&format!("[ledger]\nurl = \"{}\"", db.url)),
    );
    env.test().args(["status", "production"]).status(2).stderr_has("is the application database of `production`").run();
}

/// Through PgBouncer in transaction mode (Debian's 1.18): supported, since nothing
/// the ledger relies on outlives a transaction.
#[test]
fn the_team_ledger_works_through_pgbouncer_in_transaction_mode() {
    let bouncer = PgBouncer::start();
    let db = PgDb::new("bouncer");
    let url = bouncer.url(&db.name);
    let env = team_env(2, &url, Config::new());
    env.test().args(["deploy", "production", "v1", "--reason", "t"]).run();
    env.test().args(["deploy", "production", "v2", "--reason", "t"]).run();
    env.test().args(["rollback", "production", "--reason", "t"]).run();
    assert_eq!(env.serving().as_deref(), Some("v1"));
    for _ in 0..3 {
        let codes: Vec<i32> = (0..8)
            .map(|i| {
                on(&env, &format!("m{}", i % 2), &["lock", "production", "--reason", "r"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|c| c.wait_with_output().unwrap().status.code().unwrap_or(-1))
            .collect();
        assert_eq!(codes.iter().filter(|&&c| c == 0).count(), 1, "{codes:?}\n{}", bouncer.log());
        env.test().args(["unlock", "production"]).run();
    }
    env.test().args(["audit", "verify"]).stdout_has("audit chain ok").run();
}

/// A newer schema that this lastgood may not write: reads work, writes refuse.
#[test]
fn an_old_client_reads_a_newer_ledger_and_refuses_to_write() {
    let db = PgDb::new("newer");
    let env = team_env(1, &db.url, Config::new());
    env.test().args(["deploy", "production", "v1"]).run();
    db.sql("UPDATE lastgood.meta SET value = '2'");
    env.test().args(["history", "production"]).stdout_has("v1").run();
    env.test().args(["ledger", "status"]).stdout_has("read-only").run();
    env.test().args(["lock", "production", "--reason", "x"]).status(1).stderr_has("may read but not write").run();
    assert_eq!(db.sql("SELECT count(*) FROM lastgood.locks WHERE holder IS NOT NULL"), "0");
}

/// A superuser bypasses the grants that keep the audit chain append-only: lastgood
/// reads a team ledger as one but refuses to write it, unless the config allows it.
#[test]
fn a_superuser_connection_reads_but_does_not_write_unless_allowed() {
    let db = PgDb::new("superuser");
    let url = db.url_as("lastgood_super_test", "super-pw");
    let env = team_env(1, &url, Config::new());
    // The schema is the superuser's (it ran `ledger init`): read it as that role.
    let releases = || {
        let out = std::process::Command::new("psql")
            .args([&url, "-qAt", "-c", "SELECT count(*) FROM lastgood.releases"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    env.test().args(["ledger", "status"]).stdout_has("a superuser; see [ledger] allow_superuser: read-only").run();
    env.test().args(["history", "production"]).run();
    env.test()
        .args(["deploy", "production", "v1", "--reason", "t"])
        .status(1)
        .stderr_has("is connected as `lastgood_super_test`, a superuser")
        .stderr_has("allow_superuser = true")
        .run();
    assert_eq!(releases(), "0");
    env.configure(&Config::new().table(&format!("[ledger]\nurl = \"{url}\"\nallow_superuser = true")));
    env.test().args(["deploy", "production", "v1", "--reason", "t"]).run();
    assert_eq!(releases(), "1");
}

/// A workspace on the SQLite ledger with some history: three deploys, a rollback.
fn sqlite_history() -> TestEnv {
    let env = env_with_versions(3);
    for v in ["v1", "v2", "v3"] {
        env.test().args(["deploy", "production", v, "--reason", "t"]).run();
    }
    env.test().args(["rollback", "production", "--reason", "t"]).run();
    env
}

/// `ledger migrate` killed before and after its copy commits: the rerun finishes or
/// says it already did; the team ledger then holds the same history, both audit
/// chains verify, epochs are above the SQLite ones, and the SQLite ledger refuses writes.
#[test]
fn an_sqlite_ledger_moves_to_postgres_and_a_killed_migration_reruns() {
    for stage in ["migrate:read", "migrate:copied"] {
        let env = sqlite_history();
        let db = PgDb::new("migrate");
        let history = env.history();
        let sqlite = env.path().join(".lastgood/ledger.db");
        // Not while a lock is held.
        env.test().args(["lock", "production", "--reason", "x"]).run();
        env.test().args(["ledger", "migrate", "--to", &db.url]).status(2).stderr_has("a lock is held").run();
        env.test().args(["unlock", "production"]).run();
        let sqlite_epoch: i64 =
            lastgood_testkit::sqlite(&sqlite, "SELECT epoch FROM environments WHERE name = 'production'")
                .parse()
                .unwrap();

        let crashed = env.run_crashing(stage, &["ledger", "migrate", "--to", &db.url]);
        assert_eq!(crashed.signal, Some(9), "{stage}: {crashed:?}");
        let copied = if stage == "migrate:read" { "0" } else { "3" };
        let counted = "SELECT count(*) FROM lastgood.releases";
        assert_eq!(db.sql(counted), copied, "{stage}");
        let rerun = env.test().args(["ledger", "migrate", "--to", &db.url]).run();
        let said = if stage == "migrate:read" { "moved 3 releases, 4 operations" } else { "already migrated" };
        assert!(rerun.stdout.contains(said), "{stage}: {}", rerun.stdout);
        env.test().args(["ledger", "migrate", "--to", &db.url]).stdout_has("already migrated").run();
        assert!(!rerun.stdout.contains(&db.password()) || db.password().is_empty());

        // The SQLite ledger refuses writes and names where it went.
        env.test()
            .args(["deploy", "production", "v2"])
            .status(2)
            .stderr_has("this ledger was moved to postgres://")
            .run();
        env.test().args(["history", "production"]).stdout_has("v3").run();

        // The same history through the team ledger.
        env.configure(&Config::new().table(&format!("[ledger]\nurl = \"{}\"", db.url)));
        assert_eq!(env.history(), history, "{stage}");
        env.test().args(["audit", "verify"]).stdout_has("audit chain ok").run();
        assert_eq!(db.sql("SELECT count(*) FROM lastgood.audit_heads"), "2");
        assert_eq!(db.sql("SELECT count(*) FROM lastgood.audit_events WHERE event = 'ledger.migrate'"), "1", "{stage}");
        let pg_epoch: i64 =
            db.sql("SELECT epoch FROM lastgood.environments WHERE name = 'production'").parse().unwrap();
        assert_eq!(pg_epoch, sqlite_epoch + 1);
        // And it carries on from there.
        env.test().args(["deploy", "production", "v3", "--reason", "t"]).run();
        assert_eq!(env.serving().as_deref(), Some("v3"));
        let ids = db.sql("SELECT string_agg(id::text, ',' ORDER BY id) FROM lastgood.operations");
        assert_eq!(ids, "1,2,3,4,5", "operation ids continue after the imported ones");
    }
}

/// A TCP proxy of the test's own on loopback in front of the test server: `cut` makes
/// it stop forwarding in both directions (what an operator sees as a network
/// partition: requests go out and nothing comes back); clearing it heals.
struct Proxy {
    port: u16,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Proxy {
    fn start(upstream: std::net::SocketAddr) -> Self {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let c = cut.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = std::net::TcpStream::connect(upstream) else { continue };
                for (mut from, mut to) in [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server, client)]
                {
                    let cut = c.clone();
                    std::thread::spawn(move || {
                        use std::io::{Read, Write};
                        let mut buf = [0u8; 16384];
                        loop {
                            while cut.load(Ordering::SeqCst) {
                                std::thread::sleep(Duration::from_millis(20));
                            }
                            match from.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => {
                                    while cut.load(Ordering::SeqCst) {
                                        std::thread::sleep(Duration::from_millis(20));
                                    }
                                    if to.write_all(&buf[..n]).is_err() {
                                        break;
                                    }
                                }
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Self { port, cut }
    }

    fn set_cut(&self, cut: bool) {
        self.cut.store(cut, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The holder's network to the ledger is cut mid-operation: its heartbeat gets no
/// answer, another machine takes over once the lease expires on the server's clock,
/// and when the network heals the old holder's writes are refused (exit 5).
#[test]
fn a_holder_cut_off_from_the_ledger_is_taken_over_after_its_lease_and_fenced_after_healing() {
    let db = PgDb::new("cut");
    let direct = team_env(2, &db.url, Config::new().key("lease", "3s").build(["sleep", "5"]));
    direct.test().args(["deploy", "production", "v1", "--reason", "t"]).run();
    let proxy = Proxy::start("127.0.0.1:5432".parse().unwrap());
    let through = db.url.replace("127.0.0.1:5432", &format!("127.0.0.1:{}", proxy.port));
    assert_ne!(through, db.url, "the test server is expected on 127.0.0.1:5432");
    // The same workspace (releases, app, repository), its ledger reached through the proxy.
    let cfg = std::fs::read_to_string(direct.path().join("lastgood.toml")).unwrap();
    direct.write("through-proxy.toml", &cfg.replace(&db.url, &through));
    let mut a = on(&direct, "machine-a", &["deploy", "production", "v2", "--reason", "t"]);
    a.args(["--config", &direct.path().join("through-proxy.toml").display().to_string()]);
    let a = a.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    for _ in 0..300 {
        if direct.status()["lock"]["operation"].is_u64() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(direct.status()["lock"]["operation"].is_u64(), "machine-a never held the lock");
    proxy.set_cut(true);
    // Before the lease expires, nobody may take over.
    direct.test().args(["resume", "production", "--abort"]).env("LASTGOOD_HOSTNAME", "machine-b").status(3).run();
    std::thread::sleep(Duration::from_millis(4500));
    direct.test().args(["resume", "production", "--abort"]).env("LASTGOOD_HOSTNAME", "machine-b").run();
    assert_eq!(direct.serving().as_deref(), Some("v1"));
    let events = db.sql("SELECT count(*) FROM lastgood.audit_events");
    std::thread::sleep(Duration::from_millis(2000));
    proxy.set_cut(false);
    let a = a.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&a.stderr);
    assert_eq!(a.status.code(), Some(5), "{stderr}");
    assert_eq!(direct.serving().as_deref(), Some("v1"));
    assert_eq!(db.sql("SELECT count(*) FROM lastgood.audit_events"), events, "the cut-off holder wrote nothing");
    direct.test().args(["audit", "verify"]).run();
}
