//! Pipelines the way their teams use them (issue 15): the OMS Jenkins job re-run with
//! an old image tag, and Spryker's `desired_version` parameter plus pipeline. The
//! pipeline stand-in is a real script beside lastgood.toml, named by a relative path,
//! that records the argv it got (one element per line), writes the parameter store and
//! (re)starts the sample app, which reports the version it serves.

use crate::BIN;
use crate::runtimes::{World, checks, launcher, write_script};
use lastgood_testkit::TestEnv;

/// `ci/oms-update.sh` beside lastgood.toml: argv recorded in `world/argv` (each element
/// on its own line, a `--` line after each run), the tag written to `world/store`, then
/// the app launched with it. `current` prints the store.
fn oms_env(extra: &str) -> (TestEnv, World) {
    let env = TestEnv::new(BIN);
    let launch = launcher(&env);
    let work = env.path().join("world");
    std::fs::create_dir_all(env.path().join("ci")).unwrap();
    let update = format!(
        r#"#!/bin/sh
set -eu
for a in "$@"; do printf '%s\n' "$a" >> "{work}/argv"; done
echo -- >> "{work}/argv"
# --tag TAG --host ENV, as the Jenkins job's form asks
[ "$1" = "--tag" ] && [ "$3" = "--host" ] || exit 64
printf '%s\n' "$2" > "{work}/store"
"{launch}" "$2"
"#,
        work = work.display(),
        launch = launch.display()
    );
    write_script(&env.path().join("ci/oms-update.sh"), &update);
    write_script(&env.path().join("ci/current.sh"), &format!("#!/bin/sh\ncat \"{}/store\"\n", work.display()));
    env.write(
        "lastgood.toml",
        &format!(
            "[environments.production]\nruntime = \"command\"\n\
             switch = [\"./ci/oms-update.sh\", \"--tag\", \"{{version}}\", \"--host\", \"{{env}}\"]\n\
             current = [\"./ci/current.sh\"]\n{extra}\n{}",
            checks(&env)
        ),
    );
    (env, World { dir: work, controller: None })
}

fn argv_runs(world: &World) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(world.dir.join("argv")).unwrap_or_default();
    text.split("--\n").filter(|r| !r.is_empty()).map(|r| r.lines().map(str::to_owned).collect()).collect()
}

fn operations(env: &TestEnv) -> String {
    lastgood_testkit::sqlite(&env.path().join(".lastgood/ledger.db"), "SELECT count(*) FROM operations")
}

#[test]
fn oms_runbook_placeholders_relative_program_and_the_major_guard() {
    let (env, world) = oms_env("");
    env.run(&["deploy", "production", "1.9.0"]).expect(0);
    env.run(&["deploy", "production", "2.0.0"]).expect(0);
    assert_eq!(env.serving().as_deref(), Some("2.0.0"));
    // Placeholders are replaced inside each element; the program is the config folder's.
    assert_eq!(argv_runs(&world)[1], ["--tag", "2.0.0", "--host", "production"]);

    // Rolling back across a major release is refused, says why, and records nothing.
    let ops = operations(&env);
    let run = env.run(&["rollback", "production", "--to", "1.9.0", "--reason", "bug"]);
    run.expect(4);
    assert!(run.stderr.contains("lowers the major version"), "{}", run.stderr);
    assert!(run.stderr.contains("developers"), "{}", run.stderr);
    assert!(run.stderr.contains("--allow-major"), "{}", run.stderr);
    assert_eq!(operations(&env), ops, "a refused rollback was recorded");
    assert_eq!(argv_runs(&world).len(), 2, "the pipeline ran for a refused rollback");
    // A preview shows the refusal and its consent, and exits 0.
    let dry = env.run(&["rollback", "production", "--to", "1.9.0", "--dry-run", "--format", "json"]);
    dry.expect(0);
    let refusals = dry.json()["refusals"].clone();
    assert_eq!(refusals[0]["consent"], "--allow-major", "{refusals}");
    // With consent it runs; the old tag reaches the job as one argument.
    env.run(&["rollback", "production", "--to", "1.9.0", "--reason", "bug", "--allow-major"]).expect(0);
    assert_eq!(env.serving().as_deref(), Some("1.9.0"));
    assert_eq!(argv_runs(&world)[2], ["--tag", "1.9.0", "--host", "production"]);
    // A deploy that lowers the major is guarded too; build numbers are not versions with a major.
    env.run(&["deploy", "production", "2.1.0", "--allow-major"]).expect(0);
    env.run(&["deploy", "production", "0.9.1"]).expect(4);
    env.run(&["deploy", "production", "41"]).expect(0);

    // Hostile versions reach the job as one element each, never through a shell.
    let pwned = env.path().join("pwned");
    let hostile = format!("$(touch${{IFS}}{});x", pwned.display());
    env.run(&["deploy", "production", "--", &hostile]).expect(0);
    let last = argv_runs(&world).pop().unwrap();
    assert_eq!(last, ["--tag", hostile.as_str(), "--host", "production"]);
    assert!(!pwned.exists(), "a version was run by a shell");
    for bad in ["--upload-pack=x", "a\nb", "a b"] {
        env.run(&["deploy", "production", "--", bad]).expect(2);
    }
}

#[test]
fn major_guard_false_turns_the_guard_off() {
    let (env, _world) = oms_env("major_guard = false");
    env.run(&["deploy", "production", "v2.0.0"]).expect(0);
    env.run(&["deploy", "production", "v1.9.0"]).expect(0);
    assert_eq!(env.serving().as_deref(), Some("v1.9.0"));
}

#[test]
fn a_missing_or_non_executable_pipeline_is_bad_config_and_records_nothing() {
    let (env, world) = oms_env("");
    let cfg = std::fs::read_to_string(env.path().join("lastgood.toml")).unwrap();
    env.write("lastgood.toml", &cfg.replace("./ci/oms-update.sh", "./ci/missing.sh"));
    for args in [&["deploy", "production", "v1", "--dry-run"][..], &["deploy", "production", "v1"]] {
        let run = env.run(args);
        run.expect(2);
        assert!(run.stderr.contains("switch: `"), "{}", run.stderr);
        assert!(run.stderr.contains("ci/missing.sh` does not exist"), "{}", run.stderr);
    }
    std::fs::write(env.path().join("ci/missing.sh"), "#!/bin/sh\nexit 0\n").unwrap();
    let run = env.run(&["deploy", "production", "v1"]);
    run.expect(2);
    assert!(run.stderr.contains("is not executable"), "{}", run.stderr);
    assert_eq!(env.history().as_array().map(Vec::len), Some(0), "a failed release was left in history");
    assert!(!world.dir.join("store").exists());
}

#[test]
fn spryker_parameter_changed_by_hand_refuses_until_yes() {
    let (env, world) = oms_env("");
    env.run(&["deploy", "production", "v1.4.0"]).expect(0);
    env.run(&["deploy", "production", "v1.5.0"]).expect(0);
    // Someone sets desired_version by hand.
    std::fs::write(world.dir.join("store"), "v1.5.1-hotfix\n").unwrap();
    let ops = operations(&env);
    for args in [
        &["rollback", "production", "--reason", "bug"][..],
        &["deploy", "production", "v1.6.0"],
        &["rollback", "production", "--to", "v1.4.0", "--reason", "bug"],
    ] {
        let run = env.run(args);
        run.expect(4);
        assert!(run.stderr.contains("says v1.5.1-hotfix"), "{}", run.stderr);
        assert!(run.stderr.contains("#2 (v1.5.0)"), "{}", run.stderr);
        assert!(run.stderr.contains("--yes"), "{}", run.stderr);
    }
    assert_eq!(operations(&env), ops, "a refusal was recorded");
    assert_eq!(std::fs::read_to_string(world.dir.join("store")).unwrap(), "v1.5.1-hotfix\n");
    env.run(&["rollback", "production", "--reason", "bug", "--yes"]).expect(0);
    assert_eq!(env.serving().as_deref(), Some("v1.4.0"));
}

#[test]
fn targets_by_id_number_version_and_never_the_wrong_build() {
    let (env, _world) = oms_env("");
    // Build numbers as versions: release #1 is build 41, release #2 is build 1.
    env.run(&["deploy", "production", "41"]).expect(0);
    env.run(&["deploy", "production", "1"]).expect(0);
    env.run(&["deploy", "production", "42"]).expect(0);
    let run = env.run(&["rollback", "production", "--to", "1", "--reason", "x"]);
    run.expect(2);
    assert!(run.stderr.contains("`1` names more than one release"), "{}", run.stderr);
    assert!(run.stderr.contains("#1 41 (good) (by release id)"), "{}", run.stderr);
    assert!(run.stderr.contains("#2 1 (good) (by version)"), "{}", run.stderr);
    assert!(run.stderr.contains("version:1"), "{}", run.stderr);
    env.run(&["rollback", "production", "--to", "version:1", "--reason", "x", "--dry-run"]).expect(0);
    let plan = env.run(&["rollback", "production", "--to", "version:1", "--dry-run", "--format", "json"]);
    assert_eq!(plan.expect(0).json()["to"]["id"], 2);
    let plan = env.run(&["rollback", "production", "--to", "#1", "--dry-run", "--format", "json"]);
    assert_eq!(plan.expect(0).json()["to"]["version"], "41");
    // An all-digit value only one release has, as a version: that release.
    let plan = env.run(&["rollback", "production", "--to", "41", "--dry-run", "--format", "json"]);
    assert_eq!(plan.expect(0).json()["to"]["id"], 1);
    // Spryker's desired_version as an all-digit commit hash: read as the version it is.
    env.run(&["deploy", "production", "5189843"]).expect(0);
    let plan = env.run(&["rollback", "production", "--to", "5189843", "--dry-run", "--format", "json"]);
    assert_eq!(plan.expect(0).json()["to"]["id"], 4);
    // A miss lists the candidates with ids and versions.
    let run = env.run(&["rollback", "production", "--to", "nope", "--reason", "x"]);
    run.expect(2);
    assert!(run.stderr.contains("candidate: #2 1 (good)"), "{}", run.stderr);
    assert!(run.stderr.contains("candidate: #4 5189843 (good)"), "{}", run.stderr);
}
