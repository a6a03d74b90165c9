//! `lastgood report`: the incident record of a deploy, of a failed deploy that rolled
//! back by itself, and of an explicit rollback, in Markdown and JSON.
//!
//! Step start times come from the real clock, so the assertions are on structure (the
//! sections, the timeline's rows, the ticks of the checklist) rather than whole bytes;
//! `LASTGOOD_NOW` pins everything else. (`outputs` snapshots one record whole.)

use lastgood_testkit::{Run, TestEnv};

use crate::env_with_versions;

const NOW: &str = lastgood_testkit::PINNED_NOW;

fn run(env: &TestEnv, args: &[&str], status: i32) -> Run {
    env.test().args(args).env("LASTGOOD_NOW", NOW).status(status).run()
}

fn operation_of(out: &Run) -> u64 {
    out.json()["operation"].as_u64().expect("an operation id")
}

/// Operation 1 deploys v1; operation 2 deploys v2 with a broken config and returns to
/// v1 by itself; operation 3 deploys v3; operation 4 rolls v3 back to v1.
struct Story {
    env: TestEnv,
    deploy: u64,
    failed: u64,
    rollback: u64,
}

fn story() -> Story {
    let mut env = env_with_versions(1);
    env.write("app.env", "HEALTH=ok\nGREETING=hi\nAPI_TOKEN=s3cret-one\n");
    let deploy = operation_of(&run(&env, &["deploy", "production", "v1", "--reason", "first", "--format", "json"], 0));
    env.commit_version("v2", &[]);
    env.write("app.env", "HEALTH=fail\nGREETING=hi\nAPI_TOKEN=s3cret-one\n");
    let failed =
        operation_of(&run(&env, &["deploy", "production", "v2", "--reason", "ship v2", "--format", "json"], 1));
    env.commit_version("v3", &[]);
    env.write("app.env", "HEALTH=ok\nGREETING=yo\nAPI_TOKEN=s3cret-two\nNEW_FLAG=on\n");
    run(&env, &["deploy", "production", "v3", "--reason", "ship v3", "--format", "json"], 0);
    let rollback =
        operation_of(&run(&env, &["rollback", "production", "--reason", "v3 is slow", "--format", "json"], 0));
    Story { env, deploy, failed, rollback }
}

fn report(env: &TestEnv, op: u64, format: &str) -> String {
    run(env, &["report", &op.to_string(), "--format", format], 0).stdout
}

/// The lines of one `## ` section, without its heading.
fn section<'a>(md: &'a str, name: &str) -> Vec<&'a str> {
    let heading = format!("## {name}");
    md.lines()
        .skip_while(|l| *l != heading)
        .skip(1)
        .take_while(|l| !l.starts_with("## "))
        .filter(|l| !l.trim().is_empty())
        .collect()
}

/// The checklist as `x label` / `  label` lines, evidence dropped.
fn ticks(md: &str) -> Vec<String> {
    section(md, "Checklist")
        .iter()
        .map(|l| {
            let done = l.starts_with("- [x]");
            let label = l[6..].split(':').next().unwrap_or("");
            format!("{} {label}", if done { "x" } else { " " })
        })
        .collect()
}

/// Timeline rows as `phase:step:state`.
fn timeline(md: &str) -> Vec<String> {
    section(md, "Timeline")
        .iter()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| #"))
        .map(|l| {
            let cells: Vec<&str> = l.split(" | ").map(str::trim).collect();
            format!("{}:{}:{}", cells[2], cells[1], cells[4])
        })
        .collect()
}

#[test]
fn report_of_an_explicit_rollback_has_every_section_and_ticks_the_checklist_from_its_steps() {
    let s = story();
    let md = report(&s.env, s.rollback, "text");
    assert!(md.starts_with(&format!("# Incident record: rollback {} of production\n", s.rollback)), "{md}");
    let headings: Vec<&str> = md.lines().filter(|l| l.starts_with("## ")).collect();
    assert_eq!(
        headings,
        ["## What changed", "## Plan", "## Timeline", "## Verification", "## Checklist", "## Follow-up"],
        "{md}"
    );
    assert!(md.contains("| Environment | `production` |"), "{md}");
    assert!(md.contains("| Outcome | succeeded |"), "{md}");
    assert!(md.contains("| From | #3 v3 (commit `"), "{md}");
    assert!(md.contains("| To | #1 v1 (commit `"), "{md}");
    assert!(md.contains(&format!("created {NOW} by tester@")), "created_at is pinned: {md}");
    assert!(md.contains("| Reason | v3 is slow |"), "{md}");
    assert!(md.contains(&format!("| Started (UTC) | {NOW} |")), "{md}");

    // Going back from v3 to v1 takes out two commits, newest first, with authors.
    let changed = section(&md, "What changed");
    assert!(changed.contains(&"From #3 to #1 takes out 2 commit(s):"), "{md}");
    let commits: Vec<&&str> = changed.iter().filter(|l| l.starts_with("- `")).collect();
    assert!(commits[0].ends_with(" Release v3 (Test)") && commits[1].ends_with(" Release v2 (Test)"), "{md}");

    // Config, key by key, with the token masked and never printed.
    assert!(changed.contains(&"- `app.env` changed"), "{md}");
    assert!(changed.contains(&"  - `API_TOKEN`: `***` -> `***` (masked)"), "{md}");
    assert!(changed.contains(&"  - `GREETING`: `yo` -> `hi`"), "{md}");
    assert!(changed.contains(&"  - `NEW_FLAG` removed (was `on`)"), "{md}");
    assert!(!md.contains("s3cret"), "a secret leaked: {md}");
    assert!(changed.contains(&"Schema revision unchanged (none)."), "{md}");

    assert_eq!(
        section(&md, "Plan"),
        [
            "1. `switch` point current at releases/1",
            "2. `config` restore config files of #1",
            "3. `restart` restart the app on #1",
            "4. `verify` run the health checks against #1"
        ]
    );
    assert_eq!(
        timeline(&md),
        ["forward:switch:done", "forward:config:done", "forward:restart:done", "forward:verify:done"]
    );
    assert!(section(&md, "Timeline")[2].contains(" | +0.000s | "), "offsets count from the first step: {md}");
    assert!(
        section(&md, "Verification")
            .iter()
            .any(|l| l.starts_with("| http http://127.0.0.1:") && l.contains("| passed |")),
        "{md}"
    );

    assert_eq!(
        ticks(&md),
        [
            "x Issue type identified",
            "x Last good state found",
            "  Services stopped",
            "x Reverted",
            "x Restarted",
            "x Verified",
            "  Monitored",
            "  Team informed",
            "  Incident documented",
        ],
        "{md}"
    );
    assert!(
        md.contains(
            "- [ ] Services stopped: no stop step ran before step 1 `switch` (forward): the services kept running"
        ),
        "restarting after the change is not stopping before it: {md}"
    );
    assert!(
        md.contains(&format!(
            "- [ ] Incident documented: fill in the follow-up below, or add a note: `lastgood report {} --note TEXT`",
            s.rollback
        )),
        "{md}"
    );
    assert_eq!(section(&md, "Follow-up"), ["- Root cause: _to fill in_", "- Prevention: _to fill in_"]);
}

#[test]
fn report_of_a_failed_deploy_shows_the_automatic_rollback_and_the_failed_checks() {
    let s = story();
    let md = report(&s.env, s.failed, "text");
    assert!(md.starts_with(&format!("# Incident record: deploy {} of production\n", s.failed)), "{md}");
    assert!(md.contains("| Outcome | rolled_back |"), "{md}");
    assert!(md.contains("| From | #1 v1 ("), "{md}");
    assert!(md.contains("| To | #2 v2 (commit `") && md.contains(", now failed,"), "{md}");
    assert!(md.contains("| Returned to | #1 v1 (") && md.contains("(returned to by itself) |"), "{md}");
    assert!(md.contains("| Error | step `verify` failed: "), "{md}");

    let changed = section(&md, "What changed");
    assert!(changed.contains(&"From #1 to #2 brings in 1 commit(s):"), "{md}");
    assert!(changed.contains(&"  - `HEALTH`: `ok` -> `fail`"), "the change that broke it: {md}");
    assert!(!changed.iter().any(|l| l.contains("API_TOKEN")), "an unchanged key is not listed: {md}");

    assert!(section(&md, "Plan").contains(&"Added after the failure, to return to the last good release:"), "{md}");
    assert_eq!(
        timeline(&md),
        [
            "forward:export:done",
            "forward:switch:done",
            "forward:restart:done",
            "forward:verify:failed",
            "forward:cleanup:skipped",
            "rollback:switch:done",
            "rollback:config:done",
            "rollback:restart:done",
            "rollback:verify:done",
        ],
        "{md}"
    );
    let verification = section(&md, "Verification");
    assert!(verification.iter().any(|l| l.contains("| FAILED |")), "{md}");
    assert!(verification.iter().any(|l| l.contains("| passed |")), "{md}");

    let ticks = ticks(&md);
    assert_eq!(
        &ticks[..6],
        [
            "x Issue type identified",
            "x Last good state found",
            "  Services stopped",
            "x Reverted",
            "x Restarted",
            "x Verified"
        ],
        "{md}"
    );
    let verified = section(&md, "Checklist").into_iter().find(|l| l.contains("Verified")).unwrap();
    assert!(verified.contains("passed") && verified.contains("failed"), "says that one verify failed: {verified}");
    let last_good = section(&md, "Checklist").into_iter().find(|l| l.contains("Last good state")).unwrap();
    assert!(last_good.contains("returned by itself to the last good release #1 v1"), "{last_good}");
}

#[test]
fn report_of_a_plain_deploy_has_nothing_to_revert() {
    let s = story();
    let md = report(&s.env, s.deploy, "text");
    assert!(md.contains("| From | nothing deployed |"), "{md}");
    assert!(md.contains("| Outcome | succeeded |"), "{md}");
    let changed = section(&md, "What changed");
    assert!(changed.contains(&"From nothing to #1 brings in 1 commit(s):"), "{md}");
    assert!(changed.contains(&"- `app.env` added"), "{md}");
    assert!(changed.contains(&"  - `API_TOKEN` added: `***` (masked)"), "{md}");
    assert!(changed.contains(&"  - `GREETING` added: `hi`"), "{md}");
    assert_eq!(
        ticks(&md),
        [
            "x Issue type identified",
            "x Last good state found",
            "  Services stopped",
            "  Reverted",
            "x Restarted",
            "x Verified",
            "  Monitored",
            "  Team informed",
            "  Incident documented",
        ],
        "{md}"
    );
}

#[test]
fn report_json_has_stable_keys_and_the_same_content() {
    let s = story();
    let text = report(&s.env, s.rollback, "json");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    let mut expected = vec![
        "operation",
        "kind",
        "environment",
        "outcome",
        "scope",
        "reason",
        "actor",
        "host",
        "started_at",
        "finished_at",
        "error",
        "auto_rollback",
        "allow_data_loss",
        "from",
        "to",
        "returned_to",
        "diff",
        "plan",
        "timeline",
        "hosts",
        "verification",
        "checklist",
        "follow_up",
        "schema_ahead",
    ];
    expected.sort_unstable();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, expected);
    assert_eq!(v["operation"], s.rollback);
    assert_eq!(v["kind"], "rollback");
    assert_eq!(v["from"]["id"], 3);
    assert_eq!(v["to"]["id"], 1);
    assert_eq!(v["to"]["created_at"], NOW);
    assert_eq!(v["diff"]["commits_removed"].as_array().unwrap().len(), 2);
    assert_eq!(v["diff"]["commits_removed"][0]["subject"], "Release v3");
    assert_eq!(v["diff"]["commits_removed"][0]["author"], "Test");
    let token = v["diff"]["config"][0]["keys"].as_array().unwrap().iter().find(|k| k["key"] == "API_TOKEN").unwrap();
    assert_eq!(token["from"], "***");
    assert_eq!(token["masked"], true);
    assert!(!text.contains("s3cret"));
    assert_eq!(v["timeline"][0]["offset_ms"], 0);
    assert!(v["timeline"][0]["started_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(v["verification"]["checks"][0]["passed"], true);
    let items: Vec<(&str, bool)> = v["checklist"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["item"].as_str().unwrap(), c["done"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        items,
        [
            ("issue_type_identified", true),
            ("last_good_state_found", true),
            ("services_stopped", false),
            ("reverted", true),
            ("restarted", true),
            ("verified", true),
            ("monitored", false),
            ("team_informed", false),
            ("incident_documented", false),
        ]
    );
    assert_eq!(v["follow_up"], serde_json::json!({ "root_cause": null, "prevention": null, "notes": [] }));
}

#[test]
fn the_same_report_twice_is_byte_identical() {
    let s = story();
    for format in ["text", "json"] {
        for op in [s.deploy, s.failed, s.rollback] {
            assert_eq!(report(&s.env, op, format), report(&s.env, op, format), "{format} of {op}");
        }
    }
    // Markdown is the default.
    assert_eq!(run(&s.env, &["report", &s.rollback.to_string()], 0).stdout, report(&s.env, s.rollback, "text"));
}

#[test]
fn an_unknown_operation_exits_2_and_lists_the_newest() {
    let s = story();
    s.env
        .test()
        .args(["report", "999"])
        .status(2)
        .stderr_has("no operation 999 in the ledger")
        .stderr_has(&format!("candidate: {} rollback of `production` to #1 (succeeded", s.rollback))
        .stderr_has(&format!("candidate: {} deploy of `production` to #1 (succeeded", s.deploy))
        .stdout("")
        .run();
    s.env.test().args(["report", "not-a-number"]).status(2).run();
}

#[test]
fn notes_append_to_the_follow_up_and_tick_incident_documented() {
    let s = story();
    let op = s.rollback.to_string();
    let note = |text: &str, user: &str| {
        s.env.test().args(["report", &op, "--note", text]).env("LASTGOOD_NOW", NOW).env("LASTGOOD_USER", user).run()
    };
    // The record is printed with the note in it.
    let printed = note("v3's cache warm-up was the cause", "alice");
    assert!(printed.stdout.contains("v3's cache warm-up was the cause"), "{}", printed.stdout);
    note("Prevention: warm the cache\nbefore switching", "bob");

    let md = report(&s.env, s.rollback, "text");
    assert_eq!(
        section(&md, "Follow-up"),
        [
            "- Root cause: _to fill in_",
            "- Prevention: _to fill in_",
            "Notes:",
            &format!("- {NOW} by alice@{}: v3's cache warm-up was the cause", host(&md)),
            &format!("- {NOW} by bob@{}: Prevention: warm the cache", host(&md)),
            "  before switching",
        ],
        "{md}"
    );
    assert_eq!(ticks(&md).last().map(String::as_str), Some("x Incident documented"), "{md}");
    assert!(
        md.contains(&format!(
            "- [x] Incident documented: 2 note(s) in the follow-up, the latest by bob@{} at {NOW}",
            host(&md)
        )),
        "{md}"
    );

    let v: serde_json::Value = serde_json::from_str(&report(&s.env, s.rollback, "json")).unwrap();
    let notes = v["follow_up"]["notes"].as_array().unwrap();
    assert_eq!(notes.len(), 2);
    assert_eq!(notes[0]["text"], "v3's cache warm-up was the cause");
    assert_eq!(notes[0]["at"], NOW);
    assert!(notes[1]["actor"].as_str().unwrap().starts_with("bob@"));
    let documented = v["checklist"].as_array().unwrap().iter().find(|c| c["item"] == "incident_documented").unwrap();
    assert_eq!(documented["done"], true);
    // Other operations' records are untouched; the notes are audit events of this one.
    assert!(report(&s.env, s.deploy, "text").contains("- [ ] Incident documented"));
    let audit = run(&s.env, &["audit", "verify"], 0);
    assert!(audit.stdout.starts_with("audit chain ok"), "{}", audit.stdout);
    // An empty note, or one for an operation that does not exist, changes nothing.
    run(&s.env, &["report", &op, "--note", "  "], 2);
    run(&s.env, &["report", "999", "--note", "x"], 2);
}

/// The host part of the actor the record shows (`tester@HOST`).
fn host(md: &str) -> String {
    let actor = md.lines().find(|l| l.starts_with("| Actor | ")).expect("an actor row");
    actor["| Actor | ".len()..].split('@').nth(1).unwrap().split(' ').next().unwrap().to_owned()
}

/// The runbook stops the app before a database down: that ticks "services stopped";
/// a rollback that only switches and restarts does not.
#[test]
fn services_stopped_is_ticked_only_when_a_stop_ran_before_the_first_change() {
    use lastgood_testkit::{Config, Database};
    let mut env = TestEnv::new(crate::BIN);
    env.commit_version(
        "v1",
        &[("migrations/1_t/up.sql", "CREATE TABLE t (a int);\n"), ("migrations/1_t/down.sql", "DROP TABLE t;\n")],
    );
    env.commit_version(
        "v2",
        &[("migrations/2_i/up.sql", "CREATE INDEX t_a ON t (a);\n"), ("migrations/2_i/down.sql", "DROP INDEX t_a;\n")],
    );
    env.configure(&Config::new().database(Database::sqlite("app.db").migrations("migrations")));
    crate::deploy_ok(&env, "v1");
    crate::deploy_ok(&env, "v2");
    let out = run(&env, &["rollback", "production", "--reason", "the index is slow", "--format", "json"], 0);
    let op = operation_of(&out);
    let md = report(&env, op, "text");
    assert_eq!(timeline(&md)[..3], ["forward:stop:done", "forward:migrate-down:done", "forward:switch:done"], "{md}");
    assert!(
        md.contains("- [x] Services stopped: step 1 `stop` (forward) ran before step 2 `migrate-down` (forward) changed anything"),
        "{md}"
    );
    // Back to v2: a migrate-up and a switch with the app running all along.
    let out = run(&env, &["rollback", "production", "--to", "2", "--reason", "back", "--yes", "--format", "json"], 0);
    let md = report(&env, operation_of(&out), "text");
    assert!(ticks(&md).contains(&"  Services stopped".to_owned()), "{md}");
}
