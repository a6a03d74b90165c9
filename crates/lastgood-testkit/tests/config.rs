//! The typed config renders the TOML the integration tests always wrote, and quotes
//! what it is given so that no argv element can break out of its string.

use lastgood_testkit::config::quote;
use lastgood_testkit::{Check, Config, Database, TestEnv};

/// A workspace whose binaries are the workspace's own build (`cargo build --workspace
/// --bins` first, as for every integration test: `run` names the sample app).
fn env() -> TestEnv {
    let deps = std::env::current_exe().unwrap();
    let bin = deps.parent().and_then(|d| d.parent()).unwrap().join("lastgood");
    TestEnv::new(bin.to_str().unwrap())
}

#[test]
fn the_default_config_is_the_sample_app_with_its_health_check() {
    let env = env();
    let port = env.port;
    let text = Config::new().render(&env);
    let app = env.bin.with_file_name("lastgood-sample-app");
    let want = format!(
        "[environments.production]\nsource = \"repo\"\ndeploy_to = \"srv\"\nrun = [\"{}\", \"--listen\", \"127.0.0.1:{port}\", \"--config\", \"{}\"]\nconfig_files = [\"app.env\"]\nstop_timeout = \"2s\"\n\n[[environments.production.checks]]\nhttp = \"http://127.0.0.1:{port}/health\"\nexpect_body = \"{{version}}\"\ninterval = \"50ms\"\ntimeout = \"1s\"\nretries = 8\n",
        app.display(),
        env.path().join("app.env").display()
    );
    assert_eq!(text, want);
}

#[test]
fn every_part_lands_in_its_table() {
    let env = env();
    let text = Config::new()
        .environment("staging")
        .runtime("command")
        .hosts(["local"])
        .source(None)
        .deploy_to(None)
        .build(["make"])
        .restart(["systemctl", "restart", "app"])
        .config_files([])
        .key("keep_releases", 2)
        .key("major_guard", false)
        .key("stop_timeout", "5s")
        .extra("switch = [\"./ci.sh\"]")
        .database(Database::sqlite("app.db").migrations("migrations").adapter("builtin"))
        .checks(vec![Check::tcp(), Check::command(["true"]).key("retries", 1)])
        .table("[ledger]\nurl = \"sqlite://ledger.db\"")
        .render(&env);
    let port = env.port;
    assert_eq!(
        text,
        format!(
            "[environments.staging]\nruntime = \"command\"\nhosts = [\"local\"]\nbuild = [\"make\"]\nrestart = [\"systemctl\", \"restart\", \"app\"]\nstop_timeout = \"5s\"\nkeep_releases = 2\nmajor_guard = false\nswitch = [\"./ci.sh\"]\n\n[environments.staging.database]\nurl = \"sqlite://app.db\"\nmigrations = \"migrations\"\nadapter = \"builtin\"\n\n[[environments.staging.checks]]\ntcp = \"127.0.0.1:{port}\"\n\n[[environments.staging.checks]]\ncommand = [\"true\"]\nretries = 1\n\n[ledger]\nurl = \"sqlite://ledger.db\"\n"
        )
    );
}

#[test]
fn strings_are_quoted_so_nothing_escapes_them() {
    assert_eq!(quote(r#"echo "$V" \ done"#), r#""echo \"$V\" \\ done""#);
    assert_eq!(quote("a\nb\tc\u{1}"), r#""a\nb\tc\u0001""#);
}
