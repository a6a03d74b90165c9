//! Bad input: every case exits 2 with a clear message and changes nothing.

use crate::{BIN, env_with_versions};
use lastgood_testkit::{Config, TestEnv};

fn assert_untouched(env: &TestEnv) {
    assert!(!env.deploy_to().exists(), "deploy_to was created");
    let ledger = env.path().join(".lastgood/ledger.db");
    if ledger.exists() {
        assert_eq!(env.history(), serde_json::json!([]));
    }
}

#[test]
fn hostile_versions_are_refused_before_git_sees_them() {
    let env = env_with_versions(1);
    let marker = env.path().join("pwned");
    for v in [
        "--upload-pack=touch pwned",
        "-x",
        "$(touch pwned)",
        "`touch pwned`",
        "v1;touch pwned",
        "v1\ntouch pwned",
        "v1 && touch pwned",
        "v1|x",
        "zzz\";echo${IFS}\"hello\";#",
        "HEAD~1",
        "v1^{tree}",
        "../v1",
    ] {
        // Option-like values stop at the argument parser; after `--` they reach
        // lastgood's own validation. Both refuse with exit 2.
        env.test().args(["deploy", "production", v]).status(2).run();
        env.test()
            .args(["deploy", "--", "production", v])
            .status(2)
            .stderr_has("version")
            .stderr_lacks("panicked")
            .run();
        env.test().args(["rollback", "production", "--to", v]).status(2).run();
    }
    assert!(!marker.exists());
    assert_untouched(&env);
}

#[test]
fn unknown_version_and_environment() {
    let env = env_with_versions(1);
    env.test().args(["deploy", "production", "v9"]).status(2).stderr_has("version `v9` was not found").run();
    env.test()
        .args(["deploy", "staging", "v1"])
        .status(2)
        .stderr_has("unknown environment `staging`")
        .stderr_has("production")
        .run();
    env.test().args(["status", "Prod$"]).status(2).run();
    assert_untouched(&env);
}

#[test]
fn malformed_configs_name_file_line_and_column() {
    let env = env_with_versions(1);
    let cases: &[(&str, &str)] = &[
        ("[environments.production]\ndeploy_to = \"srv\"\nsource = \"repo\"\nbuidl = [\"make\"]\n", ":4:1:"),
        ("[environments.production]\ndeploy_to = \"srv\"\nkeep_releases = \"five\"\n", ":3:17:"),
        (
            "[environments.production]\ndeploy_to = \"srv\"\nkeep_releases = 0\n",
            ":3:17: environments.production.keep_releases",
        ),
        ("[environments.production\n", ":1:"),
        ("[environments.production]\nruntime = \"heroku\"\ndeploy_to = \"srv\"\n", ":2:11:"),
        ("[environments.production]\ndeploy_to = \"srv\"\nhosts = [\"-oProxyCommand=x\"]\n", ":3:9:"),
        (
            "[environments.production]\ndeploy_to = \"srv\"\n[[environments.production.checks]]\nhttp = \"http://x\"\ntimeout = \"soon\"\n",
            "not a duration",
        ),
        ("[environments.production]\nsource = \"repo\"\n", "deploy_to: missing"),
        ("[ledger]\nurl = \"mysql://x\"\n", ":2:7: ledger.url"),
    ];
    for (text, want) in cases {
        env.write("lastgood.toml", text);
        env.test().args(["deploy", "production", "v1"]).status(2).stderr_has("lastgood.toml").stderr_has(want).run();
    }
    assert_untouched(&env);
}

/// Outside any workspace and without --config: the default `./lastgood.toml`.
#[test]
fn a_missing_config_says_how_to_make_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(BIN)
        .arg("status")
        .current_dir(dir.path())
        .env_remove("LASTGOOD_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no config file") && err.contains("lastgood init"), "{err}");
}

#[test]
fn unreadable_sources_and_config_files() {
    let env = env_with_versions(1);
    env.configure(&Config::new());
    std::fs::remove_file(env.path().join("app.env")).unwrap();
    env.test().args(["deploy", "production", "v1"]).status(2).stderr_has("app.env").run();
    env.write("app.env", "HEALTH=ok\n");
    std::fs::rename(env.repo(), env.path().join("elsewhere")).unwrap();
    env.test().args(["deploy", "production", "v1"]).status(2).stderr_has("repo").run();
    assert_untouched(&env);
}

#[test]
fn bad_flags_are_usage_errors() {
    let env = env_with_versions(1);
    for args in [
        &["rollback", "production", "--scope", "everything"][..],
        &["deploy", "production"],
        &["history", "production", "--limit", "-1"],
        &["lock", "production"],
    ] {
        env.test().args(args).status(2).run();
    }
    assert_untouched(&env);
}
