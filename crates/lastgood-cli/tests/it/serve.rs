//! `lastgood serve` over real HTTP: every route, status code and security header,
//! against the real binary and a real ledger; writes checked through the CLI.

use lastgood_testkit::serve::{Server, TOKEN, wait_until};
use lastgood_testkit::{Config, Database, TestEnv};

use crate::{BIN, deploy_ok};

const CSP: &str = "default-src 'self'; frame-ancestors 'none'";

/// v1 (a table) and v2 (a table whose down drops it: destructive), both deployed on
/// a SQLite database; v2 current, v1 the last good release.
fn schema_env() -> TestEnv {
    let mut env = TestEnv::new(BIN);
    env.commit_version(
        "v1",
        &[("migrations/1_t/up.sql", "CREATE TABLE t (a int);\n"), ("migrations/1_t/down.sql", "DROP TABLE t;\n")],
    );
    env.commit_version(
        "v2",
        &[
            ("migrations/2_audit/up.sql", "CREATE TABLE audit_log (x int);\n"),
            ("migrations/2_audit/down.sql", "DROP TABLE audit_log;\n"),
        ],
    );
    env.configure(&Config::new().database(Database::sqlite("app.db").migrations("migrations")));
    deploy_ok(&env, "v1");
    deploy_ok(&env, "v2");
    env
}

/// v1, v2, v3 deployed and good, no database.
fn plain_env() -> TestEnv {
    crate::three_good(crate::env_with_versions(3))
}

/// The CSRF token on a page of the session.
fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("the page has a CSRF field") + 19;
    page[at..].split('"').next().unwrap_or_default().to_owned()
}

#[test]
fn without_a_login_or_the_token_every_route_answers_401_and_every_answer_carries_the_headers() {
    let env = plain_env();
    let s = Server::start(&env, &[]);
    assert!(s.login_url.starts_with(&format!("http://{}/login?token={TOKEN}", s.addr)), "{}", s.login_url);
    for path in ["/", "/env/production", "/env/production/release/2", "/operation/1", "/audit"] {
        let r = s.get(path).send();
        r.expect(401).has("login URL");
        assert_eq!(r.header("content-security-policy"), Some(CSP), "{path}");
        assert_eq!(r.header("x-frame-options"), Some("DENY"));
        assert_eq!(r.header("referrer-policy"), Some("same-origin"));
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    }
    for path in ["/api/v1/environments", "/api/v1/environments/production/releases", "/api/v1/operations/1"] {
        s.get(path).send().expect(401);
        s.get(path).header("Authorization", "Bearer wrong-token-0123456789abcdef").send().expect(401);
        s.get(path).header("Authorization", &format!("Basic {TOKEN}")).send().expect(401);
    }
    let r = s.request("POST", "/api/v1/environments/production/rollback").json(&serde_json::json!({})).send();
    r.expect(401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    // The style sheet and the script need no login, and carry the headers too.
    let css = s.get("/static/style.css").send();
    css.expect(200);
    assert_eq!(css.header("content-security-policy"), Some(CSP));
    s.get("/static/live.js").send().expect(200).has("EventSource");
    // A wrong login token sets no cookie.
    let r = s.get("/login?token=wrong-token-0123456789abcdef").send();
    r.expect(401);
    assert!(r.header("set-cookie").is_none());
    s.get(&format!("/login?token={TOKEN}&user=<script>")).send().expect(422);
    assert_eq!(env.serving().as_deref(), Some("v3"), "nothing changed");
}

#[test]
fn a_request_for_another_host_name_gets_421_dns_rebinding() {
    let env = plain_env();
    let s = Server::start(&env, &[]);
    for host in ["evil.example", "evil.example:80", &format!("attacker.test:{}", s.addr.split(':').nth(1).unwrap()), ""]
    {
        let r = s.get("/api/v1/environments").bearer().header("Host", host).send();
        r.expect(421);
        assert_eq!(r.header("content-security-policy"), Some(CSP));
        s.get(&format!("/login?token={TOKEN}")).header("Host", host).send().expect(421);
    }
    let port = s.addr.split(':').nth(1).unwrap().to_owned();
    s.get("/api/v1/environments").bearer().header("Host", &format!("localhost:{port}")).send().expect(200);
    // --host NAME adds a name.
    let named = Server::start(&env, &["--host", "deploys.example.org"]);
    assert!(named.login_url.starts_with("http://deploys.example.org:"), "{}", named.login_url);
    named.get("/api/v1/environments").bearer().header("Host", "deploys.example.org").send().expect(200);
    named.get("/api/v1/environments").bearer().header("Host", "other.example.org").send().expect(421);
}

#[test]
fn the_login_url_gives_a_strict_httponly_session_that_opens_every_page() {
    let env = plain_env();
    env.run(&["lock", "production", "--reason", "db maintenance until 14:00"]).expect(0);
    let s = Server::start(&env, &[]);
    let r = s.get(&format!("/login?token={TOKEN}&user=alice")).send();
    r.expect(200).has("url=/").has("alice");
    let cookie = r.header("set-cookie").unwrap();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    let session = s.login("alice");
    // `/`: runtime, current and last good, readiness, the lock's holder and reason, the last operation.
    let home = s.get("/").cookie(&session).send();
    home.expect(200).has("signed in as alice").has("read-only").has("releases").has("#3 <strong>v3</strong>");
    home.has("#2 <strong>v2</strong>").has("ready").has("held by").has("db maintenance until 14:00").has("#3 deploy");
    // A forged cookie is no session.
    s.get("/").cookie("lastgood_session=0000").send().expect(401);
    // The bearer token opens pages too (for scripts and the benchmark).
    s.get("/env/production").bearer().send().expect(200);
    s.get("/nope").cookie(&session).send().expect(404);
    s.request("DELETE", "/env/production").cookie(&session).send().expect(405);
    s.get("/operation/999").cookie(&session).send().expect(404);
    s.get("/env/staging").cookie(&session).send().expect(404);
    s.get("/env/production/release/99").cookie(&session).send().expect(404);
}

#[test]
fn the_timeline_marks_current_and_last_good_and_the_release_page_shows_the_plan_with_its_sql() {
    let env = schema_env();
    let s = Server::start(&env, &[]);
    let session = s.login("alice");
    let t = s.get("/env/production").cookie(&session).send();
    t.expect(200);
    // Newest first, with state badges and the marks.
    let (v2, v1) = (t.body.find("release/2\">#2").unwrap(), t.body.find("release/1\">#1").unwrap());
    assert!(v2 < v1, "newest first");
    t.has("<tr class=\"current\">")
        .has("<tr class=\"last-good\">")
        .has("badge mark\">current")
        .has("badge mark\">last good");
    t.has("Release v2").has("badge good").has("<code>2</code>").has("tester@");
    // Operations with outcome and duration.
    t.has("Operations").has("/operation/2\">#2").has("succeeded");
    // Read-only: no form, and it says how to roll back.
    t.lacks("name=\"csrf\"");
    let r = s.get("/env/production/release/1").cookie(&session).send();
    r.expect(200).has("Rollback plan to #1").has("migrate-down").has("DROP TABLE audit_log");
    r.has("A real run would refuse").has("--allow-data-loss").has("What differs from the current release");
    r.has("lastgood serve --allow-writes");
    // The audit trail, newest first, with the chain verified.
    let a = s.get("/audit").cookie(&session).send();
    a.expect(200).has("Hash chain verified").has("deploy.start");
}

#[test]
fn the_api_answers_with_the_documents_of_the_cli() {
    let env = plain_env();
    let s = Server::start(&env, &[]);
    let cli = |args: &[&str]| env.run(args).expect(0).json();
    let all = s.api("/api/v1/environments");
    all.expect(200);
    assert_eq!(all.header("content-type"), Some("application/json"));
    assert_eq!(all.json(), serde_json::Value::Array(vec![cli(&["status", "production", "--format", "json"])]));
    assert_eq!(s.api("/api/v1/environments/production").json(), cli(&["status", "production", "--format", "json"]));
    assert_eq!(
        s.api("/api/v1/environments/production/releases").json(),
        cli(&["history", "production", "--format", "json", "--limit", "50"])
    );
    let page = s.api("/api/v1/environments/production/releases?before=3&limit=1").json();
    assert_eq!(page.as_array().unwrap().len(), 1);
    assert_eq!(page[0]["id"], 2);
    assert_eq!(s.api("/api/v1/operations/1").json(), cli(&["report", "1", "--format", "json"]));
    s.api("/api/v1/environments/production/releases?limit=0").expect(400);
    s.api("/api/v1/environments/staging").expect(404);
    s.api("/api/v1/operations/99").expect(404);
    s.api("/api/v1/nothing").expect(404);
    s.request("DELETE", "/api/v1/environments").bearer().send().expect(405);
}

#[test]
fn writes_need_allow_writes_a_session_csrf_token_the_same_origin_and_the_typed_name() {
    let env = plain_env();
    // Read-only: the form and the API refuse with 403.
    let ro = Server::start(&env, &[]);
    let session = ro.login("alice");
    let post = |s: &Server, session: &str, fields: &[(&str, &str)]| {
        s.request("POST", "/env/production/rollback").cookie(session).form(fields).send()
    };
    post(&ro, &session, &[("to", "2"), ("confirm_env", "production"), ("reason", "r")]).expect(403);
    let api = ro.request("POST", "/api/v1/environments/production/rollback").bearer();
    api.json(&serde_json::json!({"to": 2, "reason": "r"})).send().expect(403).has("read-only");
    drop(ro);

    let s = Server::start(&env, &["--allow-writes"]);
    let session = s.login("alice");
    let page = s.get("/env/production/release/2").cookie(&session).send();
    page.expect(200).has("action=\"/env/production/rollback\"").has("name=\"confirm_env\"");
    let csrf = csrf_of(&page.body);
    let good = [("csrf", csrf.as_str()), ("to", "2"), ("confirm_env", "production"), ("reason", "v3 is slow")];
    let with = |field: &str, value: &str| -> Vec<(&str, String)> {
        good.iter().map(|(k, v)| (*k, if *k == field { value.to_owned() } else { (*v).to_owned() })).collect()
    };
    let send = |fields: Vec<(&str, String)>| {
        let f: Vec<(&str, &str)> =
            fields.iter().map(|(k, v)| (*k, v.as_str())).filter(|(_, v)| !v.is_empty()).collect();
        post(&s, &session, &f)
    };
    send(with("csrf", "")).expect(403).has("no CSRF token");
    send(with("csrf", "0123")).expect(403).has("CSRF token is wrong");
    send(with("confirm_env", "prod")).expect(422).has("type the environment");
    send(with("reason", "")).expect(422).has("needs a reason");
    // Another session's token is not this one's.
    let other = s.login("bob");
    let f: Vec<(&str, &str)> = good.to_vec();
    s.request("POST", "/env/production/rollback").cookie(&other).form(&f).send().expect(403);
    // From another origin, or another site.
    let cross = |name: &str, value: &str| {
        s.request("POST", "/env/production/rollback").cookie(&session).header(name, value).form(&f).send()
    };
    cross("Origin", "http://evil.example").expect(403).has("another origin");
    cross("Sec-Fetch-Site", "cross-site").expect(403).has("another site");
    // The form with the bearer token and no session: 403 (programs use the API).
    s.request("POST", "/env/production/rollback").bearer().form(&f).send().expect(403);
    // A JSON body to the form is refused as well.
    s.request("POST", "/env/production/rollback").cookie(&session).json(&serde_json::json!({})).send().expect(403);
    assert_eq!(env.serving().as_deref(), Some("v3"), "nothing changed so far");

    // Right: 303 to the operation, which the CLI sees, by web:alice.
    let origin = format!("http://{}", s.addr);
    let r = s
        .request("POST", "/env/production/rollback")
        .cookie(&session)
        .header("Origin", &origin)
        .header("Sec-Fetch-Site", "same-origin")
        .form(&f)
        .send();
    r.expect(303);
    let location = r.header("location").unwrap().to_owned();
    assert!(location.starts_with("/operation/"), "{location}");
    let op = location.trim_start_matches("/operation/").to_owned();
    assert!(wait_until(30, || env.run(&["report", &op, "--format", "json"]).json()["outcome"] == "succeeded"));
    assert_eq!(env.serving().as_deref(), Some("v2"));
    let report = env.run(&["report", &op, "--format", "json"]).json();
    assert!(report["actor"].as_str().unwrap().starts_with("web:alice@"), "{report}");
    assert_eq!(report["reason"], "v3 is slow");
    s.get(&location).cookie(&session).send().expect(200).has("Incident report").has("web:alice@");

    // The API: 202 with the operation; the actor is the user running serve.
    let r = s
        .request("POST", "/api/v1/environments/production/rollback")
        .bearer()
        .json(&serde_json::json!({"to": 3, "reason": "v3 was fine", "yes": true}))
        .send();
    r.expect(202);
    let op = r.json()["operation"].as_u64().unwrap().to_string();
    assert!(wait_until(30, || env.run(&["report", &op, "--format", "json"]).json()["outcome"] == "succeeded"));
    assert_eq!(env.serving().as_deref(), Some("v3"));
    let post_api = |body: serde_json::Value| {
        s.request("POST", "/api/v1/environments/production/rollback").bearer().json(&body).send()
    };
    post_api(serde_json::json!({"to": 2})).expect(422).has("reason");
    post_api(serde_json::json!({"to": 2, "reason": "r", "extra": 1})).expect(400);
    post_api(serde_json::json!({"to": 99, "reason": "r"})).expect(404).has("candidate");
    s.request("POST", "/api/v1/environments/production/rollback").bearer().form(&[("to", "2")]).send().expect(415);
    // A browser session may not use the API's POST.
    s.request("POST", "/api/v1/environments/production/rollback")
        .cookie(&session)
        .json(&serde_json::json!({"to": 2, "reason": "r"}))
        .send()
        .expect(403);
}

#[test]
fn a_locked_environment_answers_409_naming_the_holder_and_a_refusal_names_its_consent() {
    let env = schema_env();
    let s = Server::start(&env, &["--allow-writes"]);
    let session = s.login("alice");
    let page = s.get("/env/production/release/1").cookie(&session).send();
    page.expect(200).has("name=\"allow_data_loss\"");
    let csrf = csrf_of(&page.body);
    let base = [("csrf", csrf.as_str()), ("to", "1"), ("confirm_env", "production"), ("reason", "bad v2")];
    let post = |extra: &[(&str, &str)]| {
        let mut f = base.to_vec();
        f.extend_from_slice(extra);
        s.request("POST", "/env/production/rollback").cookie(&session).form(&f).send()
    };
    // A destructive down without consent: 422, the refusal and the checkbox it needs.
    post(&[]).expect(422).has("destructive").has("--allow-data-loss").has("name=\"allow_data_loss\"");
    s.request("POST", "/api/v1/environments/production/rollback")
        .bearer()
        .json(&serde_json::json!({"to": 1, "reason": "r"}))
        .send()
        .expect(422)
        .has("--allow-data-loss");
    // Locked by hand: 409 naming the holder and the reason, on the form and the API.
    env.run(&["lock", "production", "--reason", "migrating the disks"]).expect(0);
    post(&[("allow_data_loss", "1")]).expect(409).has("tester@").has("migrating the disks");
    s.request("POST", "/api/v1/environments/production/rollback")
        .bearer()
        .json(&serde_json::json!({"to": 1, "reason": "r", "allow_data_loss": true}))
        .send()
        .expect(409)
        .has("migrating the disks");
    assert_eq!(env.status()["current"]["id"], 2, "nothing changed");
    env.run(&["unlock", "production"]).expect(0);
    // With consent it runs.
    let r = post(&[("allow_data_loss", "1")]);
    r.expect(303);
    let op = r.header("location").unwrap().trim_start_matches("/operation/").to_owned();
    assert!(wait_until(30, || env.run(&["report", &op, "--format", "json"]).json()["outcome"] == "succeeded"));
    assert_eq!(env.status()["current"]["id"], 1);
}

#[test]
fn events_replay_a_finished_operation_resume_after_last_event_id_and_close() {
    let env = plain_env();
    let s = Server::start(&env, &[]);
    let r = s.api("/api/v1/operations/3/events");
    r.expect(200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    r.has("event: audit").has("deploy.start").has("event: steps").has("\"outcome\":\"succeeded\"").has("event: end");
    let ids: Vec<i64> =
        r.body.lines().filter_map(|l| l.strip_prefix("id: ")).map(|i| i.parse().unwrap()).collect::<Vec<_>>();
    assert!(ids.len() >= 2, "{}", r.body);
    let resumed = s.get("/api/v1/operations/3/events").bearer().header("Last-Event-ID", &ids[0].to_string()).send();
    assert!(!resumed.body.contains(&format!("id: {}\n", ids[0])), "{}", resumed.body);
    assert!(resumed.body.contains(&format!("id: {}\n", ids[1])), "{}", resumed.body);
    s.api("/api/v1/operations/77/events").expect(404);
}

#[test]
fn metrics_on_loopback_need_no_token_and_say_what_runs() {
    let env = plain_env();
    env.run(&["rollback", "production", "--reason", "t"]).expect(0);
    let s = Server::start(&env, &[]);
    let m = s.get("/metrics").send();
    m.expect(200);
    assert!(m.header("content-type").unwrap().starts_with("text/plain; version=0.0.4"));
    m.has("lastgood_current_release{env=\"production\"} 2\n");
    m.has("lastgood_release_state{env=\"production\",release=\"3\",version=\"v3\",state=\"bad\"} 1\n");
    m.has("lastgood_rollback_ready{env=\"production\"} 1\n").has("lastgood_lock_held{env=\"production\"} 0\n");
    m.has("lastgood_operations_total{env=\"production\",kind=\"deploy\",outcome=\"succeeded\"} 3\n");
    m.has("lastgood_operations_total{env=\"production\",kind=\"rollback\",outcome=\"succeeded\"} 1\n");
    env.run(&["lock", "production", "--reason", "x"]).expect(0);
    s.get("/metrics").send().has("lastgood_lock_held{env=\"production\"} 1\n");
}

#[test]
fn oversized_chunked_and_slow_requests_are_cut_off() {
    let env = crate::env_with_versions(1);
    let s = Server::start(&env, &[]);
    let big = s.request("POST", "/api/v1/environments/production/rollback").bearer().json(&serde_json::json!({}));
    big.body(vec![b'x'; 17 * 1024]).send().expect(413);
    s.get("/").header("X-Padding", &"p".repeat(17 * 1024)).send().expect(431);
    s.get("/").header("Transfer-Encoding", "chunked").send().expect(501);
    // Half a request, then silence: 408 within the request time limit (10 s).
    use std::io::Write;
    let mut c = std::net::TcpStream::connect(&s.addr).unwrap();
    c.write_all(format!("GET / HTTP/1.1\r\nHost: {}\r\n", s.addr).as_bytes()).unwrap();
    let started = std::time::Instant::now();
    let r = lastgood_testkit::serve::read_response(&mut c);
    assert_eq!(r.status, 408, "{r:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
    // The server still answers.
    s.api("/api/v1/environments").expect(200);
}

#[test]
fn a_non_loopback_listener_warns_and_metrics_need_the_token_there() {
    let env = crate::env_with_versions(1);
    deploy_ok(&env, "v1");
    // 0.0.0.0 is reached here through 127.0.0.1, with Host naming the listen address.
    let mut cmd = env.cmd(&["serve", "--listen", "0.0.0.0:0"]);
    cmd.env("LASTGOOD_SERVE_TOKEN", TOKEN).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped());
    let s = Server::spawn(cmd);
    assert!(s.banner.contains("not a loopback address"), "{}", s.banner);
    let port = s.addr.rsplit(':').next().unwrap().to_owned();
    let local = format!("127.0.0.1:{port}");
    let host = format!("0.0.0.0:{port}");
    let get = |path: &str| {
        let mut c = std::net::TcpStream::connect(&local).unwrap();
        use std::io::Write;
        write!(c, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").unwrap();
        lastgood_testkit::serve::read_response(&mut c)
    };
    assert_eq!(get("/metrics").status, 401);
    // A short token is refused at start.
    let out = env.cmd(&["serve", "--listen", "127.0.0.1:0"]).env("LASTGOOD_SERVE_TOKEN", "short").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn an_interrupted_operation_stands_out_and_its_events_end() {
    let env = plain_env();
    let out = env.run_crashing("apply:switch", &["rollback", "production", "--reason", "crash"]);
    assert!(out.signal.is_some(), "the failpoint killed it: {out:?}");
    let s = Server::start(&env, &[]);
    let session = s.login("alice");
    let home = s.get("/").cookie(&session).send();
    home.expect(200).has("Interrupted: </strong>rollback #4").has("lastgood resume production");
    let op = s.get("/operation/4").cookie(&session).send();
    op.expect(200).has("data-outcome=\"running\"").has("nothing runs this operation").lacks("live.js");
    let events = s.api("/api/v1/operations/4/events");
    events.expect(200).has("event: end").has("\"interrupted\":true");
    env.run(&["resume", "production"]).expect(0);
    s.get("/operation/4").cookie(&session).send().has("Incident report");
}
