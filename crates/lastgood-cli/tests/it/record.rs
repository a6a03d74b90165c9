//! The record: notifications that never hold an operation up, the audit chain, and
//! secrets that never leak.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::{BIN, deploy_ok, env_with_versions};
use lastgood_testkit::{PgDb, Run, TestEnv, sqlite};

/// A webhook receiver on loopback: answers 200 and hands each JSON body over.
pub(crate) fn receiver() -> (String, mpsc::Receiver<serde_json::Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook/secret-token-Yq42", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut len = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
            if let Ok(v) = serde_json::from_slice(&body) {
                let _ = tx.send(v);
            }
        }
    });
    (url, rx)
}

/// A webhook that accepts connections and never answers.
fn hanging() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hang", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming() {
            held.push(s);
        }
    });
    url
}

fn down() -> String {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    format!("http://127.0.0.1:{port}/down")
}

fn audit_count(env: &TestEnv, event: &str) -> usize {
    sqlite(
        &env.path().join(".lastgood/ledger.db"),
        &format!("SELECT count(*) FROM audit_events WHERE event = '{event}'"),
    )
    .parse()
    .unwrap_or(0)
}

#[test]
fn notifications_reach_chat_and_a_dead_or_hanging_webhook_never_holds_an_operation_up() {
    let mut env = env_with_versions(1);
    let (good, rx) = receiver();
    let cfg = std::fs::read_to_string(env.path().join("lastgood.toml")).unwrap().replace(
        "[[environments.production.checks]]",
        &format!(
            "[environments.production.notify]\nwebhooks = [\"{}\", \"{}\", \"{good}\"]\ntimeout = \"1s\"\nattempts = 2\n\n[[environments.production.checks]]",
            hanging(),
            down()
        ),
    );
    env.write("lastgood.toml", &cfg);
    let t = Instant::now();
    deploy_ok(&env, "v1");
    assert!(t.elapsed() < Duration::from_secs(3), "the deploy waited for webhooks: {:?}", t.elapsed());

    env.commit_version("v2", &[]);
    env.write("app.env", "HEALTH=fail\n");
    env.run(&["deploy", "production", "v2"]).expect(1);

    let mut events: Vec<(u64, String, String)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while events.iter().filter(|e| e.0 == 2).count() < 4 && Instant::now() < deadline {
        if let Ok(v) = rx.recv_timeout(Duration::from_millis(200)) {
            events.push((
                v["operation"].as_u64().unwrap(),
                v["event"].as_str().unwrap().into(),
                v["text"].as_str().unwrap().into(),
            ));
        }
    }
    let mut op2: Vec<&str> = events.iter().filter(|e| e.0 == 2).map(|e| e.1.as_str()).collect();
    op2.sort();
    assert_eq!(op2, ["automatic_rollback", "finished", "started", "step_failed"], "{events:?}");
    let finished = &events.iter().find(|e| e.0 == 2 && e.1 == "finished").unwrap().2;
    assert!(finished.contains("failed and was rolled back") && finished.contains("runs #1 (v1)"), "{finished}");

    // Six notifications (two for the first deploy, four for the second) to three
    // webhooks: the good one delivered six, the dead and the hanging one failed twelve,
    // recorded by host only.
    let deadline = Instant::now() + Duration::from_secs(20);
    while (audit_count(&env, "notify.failed") < 12 || audit_count(&env, "notify.delivered") < 6)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(audit_count(&env, "notify.failed"), 12);
    assert_eq!(audit_count(&env, "notify.delivered"), 6);
    let dump = sqlite(&env.path().join(".lastgood/ledger.db"), "SELECT group_concat(detail, ' ') FROM audit_events");
    assert!(!dump.contains("secret-token-Yq42"), "a webhook URL reached the ledger");
    env.run(&["audit", "verify"]).expect(0);
}

#[test]
fn tampering_with_one_audit_event_is_found() {
    let env = env_with_versions(2);
    deploy_ok(&env, "v1");
    deploy_ok(&env, "v2");
    env.run(&["audit", "verify"]).expect(0);
    let ledger = env.path().join(".lastgood/ledger.db");
    // The ledger refuses edits of events...
    let refused = std::process::Command::new("sqlite3")
        .arg(&ledger)
        .arg("UPDATE audit_events SET actor = 'mallory' WHERE id = 3")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    // ...so someone with the file drops the guard first.
    sqlite(&ledger, "DROP TRIGGER audit_events_no_update; UPDATE audit_events SET actor = 'mallory' WHERE id = 3");
    let out = env.run(&["audit", "verify"]);
    out.expect(1);
    assert!(out.stdout.contains("BROKEN at event 3"), "{}", out.stdout);
}

/// A canary password and webhook token, planted in the config, never appear in
/// anything lastgood writes: output, logs, the ledger, backups' names, webhooks.
#[test]
fn canary_secrets_never_leave_the_config() {
    let db = PgDb::new("canary");
    let env = canary_env(&db.url);
    let (good, _rx) = receiver();
    env.write_config(&format!(
        "[environments.production.database]\nurl = \"{}\"\nmigrations = \"migrations\"\n\n[environments.production.notify]\nwebhooks = [\"{good}\"]\n",
        db.url
    ));
    // A third canary in a config file: restoring needs its content, which is kept in the
    // snapshot store beside the ledger, never in the ledger, output or reports.
    env.write("app.env", "HEALTH=ok\nAPI_TOKEN=canary-token-Kx9\n");
    let everything = everything_written(&env, &[]);
    let password = db.password();
    let stored = walk(&env.path().join(".lastgood/snapshots"))
        .iter()
        .any(|f| std::fs::read_to_string(f).unwrap_or_default().contains("canary-token-Kx9"));
    assert!(stored, "the snapshot store keeps the config for restores");
    let everything = without_snapshots(&everything);
    // The dashboard was read: its pages, the API and the metrics are part of it.
    for seen in [
        "== GET /env/production (200 200)",
        "== GET /api/v1/operations/3/events (200 200)",
        "lastgood_current_release",
        "Incident report",
    ] {
        assert!(everything.contains(seen), "the dashboard's answers lack {seen:?}");
    }
    for canary in [password.as_str(), "secret-token-Yq42", "canary-token-Kx9"] {
        assert!(!everything.contains(canary), "{canary} leaked:\n{}", around(everything, canary));
    }
}

/// The same for a password lastgood finds itself, in `PGPASSWORD` or a password file:
/// it is in no string lastgood shows or keeps, the config snapshots included.
#[test]
fn a_password_from_pgpassword_or_the_password_file_never_leaves_the_process() {
    use std::os::unix::fs::PermissionsExt;
    let db = PgDb::new("canary_env");
    let password = db.password();
    let no_password = db.url.replacen(&format!(":{password}@"), "@", 1);
    let dir = tempfile::tempdir().unwrap();
    let passfile = dir.path().join("pgpass");
    std::fs::write(&passfile, format!("*:*:*:lastgood_test:{password}\n")).unwrap();
    std::fs::set_permissions(&passfile, std::fs::Permissions::from_mode(0o600)).unwrap();
    let passfile = passfile.display().to_string();
    for var in [("PGPASSWORD", password.as_str()), ("PGPASSFILE", passfile.as_str())] {
        db.sql("DROP SCHEMA IF EXISTS lastgood CASCADE; DROP TABLE IF EXISTS t");
        let env = canary_env(&no_password);
        let everything = everything_written(&env, &[var]);
        assert!(everything.contains("applied 1 migration"), "{everything}");
        assert!(!everything.contains(&password), "{var:?}: the password leaked:\n{}", around(&everything, &password));
    }
}

/// A workspace whose v1 and v2 each add a migration, on the database at `url`.
fn canary_env(url: &str) -> TestEnv {
    let mut env = TestEnv::new(BIN);
    env.commit_version(
        "v1",
        &[("migrations/1_t/up.sql", "CREATE TABLE t (a int);\n"), ("migrations/1_t/down.sql", "DROP TABLE t;\n")],
    );
    env.commit_version(
        "v2",
        &[("migrations/2_u/up.sql", "CREATE INDEX t_a ON t (a);\n"), ("migrations/2_u/down.sql", "DROP INDEX t_a;\n")],
    );
    env.write_config(&format!("[environments.production.database]\nurl = \"{url}\"\nmigrations = \"migrations\"\n"));
    env
}

/// Deploys, rolls back, backs up, reports... with `vars` set, and returns every output,
/// a dump of the ledger and every file lastgood wrote (the config snapshots included,
/// after a `== SNAPSHOTS` line).
fn everything_written(env: &TestEnv, vars: &[(&str, &str)]) -> String {
    let mut everything = String::new();
    for args in [
        &["-vv", "deploy", "production", "v1"][..],
        &["-vv", "deploy", "production", "v2"],
        &["rollback", "production", "--reason", "canary", "--format", "json"],
        &["status", "production", "--format", "json"],
        &["db", "status", "production"],
        &["db", "history", "production"],
        &["db", "backup", "production"],
        &["db", "backups", "production", "--format", "json"],
        &["rollback", "production", "--to", "2", "--yes", "--reason", "canary", "--sql"],
        &["db", "up", "production", "--sql"],
        &["deploy", "production", "nope"],
        &["report", "3"],
        &["report", "3", "--format", "json"],
        &["diff", "production", "1", "2"],
        &["db", "restore", "production", "--dry-run", "--format", "json"],
        &["-vv", "db", "restore", "production", "--yes", "--reason", "canary"],
        &["report", "4", "--format", "json"],
    ] {
        let out = Run::from(env.cmd(args).envs(vars.iter().copied()).output().unwrap());
        everything += &out.stdout;
        everything += &out.stderr;
    }
    everything += &dashboard_pages(env, vars);
    std::thread::sleep(Duration::from_secs(2));
    everything += "\n== LEDGER\n";
    everything += &sqlite(&env.path().join(".lastgood/ledger.db"), ".dump");
    // Every file lastgood wrote: the ledger, logs, pid files, spool, backups.
    let snapshots = env.path().join(".lastgood/snapshots");
    let mut files = walk(env.path());
    files.sort_by_key(|f| f.starts_with(&snapshots));
    let mut in_snapshots = false;
    for entry in files {
        if entry.starts_with(env.repo()) || entry.file_name().is_some_and(|n| n == "lastgood.toml" || n == "app.env") {
            continue;
        }
        if entry.starts_with(&snapshots) && !in_snapshots {
            everything += "\n== SNAPSHOTS\n";
            in_snapshots = true;
        }
        if let Ok(bytes) = std::fs::read(&entry) {
            everything += &format!("\n== {}\n", entry.display());
            everything += &String::from_utf8_lossy(&bytes);
        }
    }
    everything
}

/// Every page, API document, event stream and metric of `lastgood serve` over the
/// same workspace, as a person and a program would read them.
fn dashboard_pages(env: &TestEnv, vars: &[(&str, &str)]) -> String {
    use lastgood_testkit::serve::{Server, TOKEN};
    let mut cmd = env.cmd(&["serve", "--listen", "127.0.0.1:0", "--allow-writes"]);
    cmd.envs(vars.iter().copied()).env("LASTGOOD_SERVE_TOKEN", TOKEN);
    cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped());
    let s = Server::spawn(cmd);
    let session = s.login("canary");
    let mut out = format!("\n== SERVE\n{}{}\n", s.banner, s.login_url);
    let ops = env.run(&["history", "production", "--format", "json"]).json();
    let mut paths = vec!["/".to_owned(), "/env/production".into(), "/audit".into(), "/metrics".into()];
    for r in ops.as_array().into_iter().flatten() {
        paths.push(format!("/env/production/release/{}", r["id"]));
    }
    for op in 1..=6 {
        paths.push(format!("/operation/{op}"));
        paths.push(format!("/api/v1/operations/{op}"));
        paths.push(format!("/api/v1/operations/{op}/events"));
    }
    paths.extend(["/api/v1/environments".into(), "/api/v1/environments/production/releases".into()]);
    for path in &paths {
        let page = s.get(path).cookie(&session).send();
        let api = s.api(path);
        out += &format!("\n== GET {path} ({} {})\n{}\n{}\n", page.status, api.status, page.body, api.body);
    }
    // A refused rollback from the form shows the plan and the error.
    let form = s.get("/env/production").cookie(&session).send();
    if let Some(at) = form.body.find("name=\"csrf\" value=\"") {
        let csrf = form.body[at + 19..].split('"').next().unwrap_or_default().to_owned();
        let fields = [("csrf", csrf.as_str()), ("to", "1"), ("confirm_env", "production"), ("reason", "canary")];
        out += &s.request("POST", "/env/production/rollback").cookie(&session).form(&fields).send().body;
    }
    out
}

/// What [`everything_written`] found outside the config snapshots, which keep config
/// files as they are (their secrets included) for restores.
fn without_snapshots(everything: &str) -> &str {
    everything.split("\n== SNAPSHOTS\n").next().unwrap_or(everything)
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_symlink() {
                continue;
            }
            if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
        }
    }
    out
}

fn around(text: &str, needle: &str) -> String {
    let i = text.find(needle).unwrap_or(0);
    let start = text[..i].char_indices().rev().nth(200).map(|(j, _)| j).unwrap_or(0);
    text[start..(i + needle.len() + 100).min(text.len())].to_owned()
}
