//! The `command` and `gitops` runtimes, end to end: a pipeline script standing in for a
//! CI job and a parameter store, a local bare repository standing in for a GitOps
//! repository with a controller polling it, and the sample app each of them (re)starts.
//! Health checks follow the switch: they pass only once the app serves the version.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::BIN;
use lastgood_testkit::TestEnv;

/// `launch.sh VERSION`: (re)starts the sample app serving VERSION on the test's port,
/// unhealthy when the version's name contains `broken`. What a CD system ends up doing.
pub(crate) fn launcher(env: &TestEnv) -> PathBuf {
    let work = env.path().join("world");
    std::fs::create_dir_all(&work).unwrap();
    let app = lastgood_testkit::sample_app(&env.bin);
    let script = format!(
        r#"#!/bin/sh
set -eu
v="$1"
d="{work}/apps/$(printf %s "$v" | tr -c 'A-Za-z0-9._-' _)"
mkdir -p "$d"
printf '%s\n' "$v" > "$d/VERSION"
case "$v" in *broken*) echo HEALTH=fail > "$d/app.env" ;; *) echo HEALTH=ok > "$d/app.env" ;; esac
if [ -f "{work}/app.pid" ]; then
  old=$(cat "{work}/app.pid")
  kill "$old" 2>/dev/null || true
  while kill -0 "$old" 2>/dev/null; do sleep 0.02; done
fi
cd "$d"
"{app}" --listen 127.0.0.1:{port} --config "$d/app.env" >> "{work}/app.log" 2>&1 < /dev/null &
echo $! > "{work}/app.pid"
"#,
        work = work.display(),
        app = app.display(),
        port = env.port,
    );
    write_script(&work.join("launch.sh"), &script)
}

pub(crate) fn write_script(path: &Path, text: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.to_path_buf()
}

/// Kills what a test started outside lastgood (the controller, the app).
pub(crate) struct World {
    pub(crate) dir: PathBuf,
    pub(crate) controller: Option<Child>,
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(c) = &mut self.controller {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("app.pid")) {
            let _ = Command::new("kill").args(["-9", pid.trim()]).status();
        }
    }
}

const CHECK: &str = r#"
[[environments.production.checks]]
http = "http://127.0.0.1:PORT/health"
expect_body = "{version}"
interval = "100ms"
timeout = "1s"
retries = 40
"#;

pub(crate) fn checks(env: &TestEnv) -> String {
    CHECK.replace("PORT", &env.port.to_string())
}

// ---- command ----------------------------------------------------------------------

/// A pipeline: writes the desired version into a parameter store, then deploys it,
/// unless `silent` is in the store's folder (a CI job that "succeeds" doing nothing).
fn pipeline_env() -> (TestEnv, World) {
    let env = TestEnv::new(BIN);
    let launch = launcher(&env);
    let work = env.path().join("world");
    let pipeline = format!(
        r#"#!/bin/sh
set -eu
echo "pipeline: desired_version=$LASTGOOD_VERSION release=$LASTGOOD_RELEASE env=$LASTGOOD_ENV"
[ -f "{work}/silent" ] && exit 0
printf '%s\n' "$LASTGOOD_VERSION" > "{work}/store"
"{launch}" "$LASTGOOD_VERSION"
"#,
        work = work.display(),
        launch = launch.display()
    );
    let script = write_script(&work.join("pipeline.sh"), &pipeline);
    env.write(
        "lastgood.toml",
        &format!(
            "[environments.production]\nruntime = \"command\"\nswitch = [\"{}\"]\ncurrent = [\"cat\", \"{}\"]\n{}",
            script.display(),
            work.join("store").display(),
            checks(&env)
        ),
    );
    (env, World { dir: work, controller: None })
}

#[test]
fn command_runtime_deploys_rolls_back_by_itself_and_on_request() {
    let (env, world) = pipeline_env();
    env.run(&["deploy", "production", "v1"]).expect(0);
    env.run(&["deploy", "production", "registry.local:5000/app:v2"]).expect(0);
    assert_eq!(env.serving().as_deref(), Some("registry.local:5000/app:v2"));
    let status = env.status();
    assert_eq!(status["runtime"], "command");
    assert_eq!(status["runtime_version"], "registry.local:5000/app:v2");
    assert_eq!(status["current"]["commit"], serde_json::Value::Null);

    // A release whose checks fail: the pipeline runs again with the good version.
    let run = env.run(&["deploy", "production", "v3-broken", "--format", "json"]);
    run.expect(1);
    let report = run.json();
    assert_eq!(report["outcome"], "rolled_back", "{report}");
    assert_eq!(env.serving().as_deref(), Some("registry.local:5000/app:v2"));
    assert_eq!(std::fs::read_to_string(world.dir.join("store")).unwrap().trim(), "registry.local:5000/app:v2");
    assert_eq!(env.state_of(3), "failed");

    // An explicit rollback, to a version with `:` and `/` in it first, then by id.
    env.run(&["rollback", "production", "--to", "v1", "--reason", "back to the first"]).expect(0);
    assert_eq!(env.serving().as_deref(), Some("v1"));
    env.run(&["rollback", "production", "--to", "registry.local:5000/app:v2", "--yes", "--reason", "test"]).expect(0);
    assert_eq!(env.serving().as_deref(), Some("registry.local:5000/app:v2"));
    // The pipeline got the values as environment variables.
    let log = std::fs::read_to_string(env.path().join(".lastgood/work/production/.lastgood/switch-1.log")).unwrap();
    assert!(log.contains("desired_version=v1 release=1 env=production"), "{log}");
}

#[test]
fn a_pipeline_that_exits_0_without_switching_is_a_failure() {
    let (env, world) = pipeline_env();
    env.run(&["deploy", "production", "v1"]).expect(0);
    std::fs::write(world.dir.join("silent"), "").unwrap();
    let run = env.run(&["deploy", "production", "v2"]);
    run.expect(1);
    assert!(run.stderr.contains("`current` prints v1, not v2"), "{}", run.stderr);
    assert_eq!(env.serving().as_deref(), Some("v1"));
    assert_eq!(env.state_of(2), "failed");
}

#[test]
fn command_runtime_versions_are_opaque_but_never_reach_a_shell() {
    let (env, world) = pipeline_env();
    for bad in ["--upload-pack=x", "-x", "a b", "v1\nv2", "tab\tbed", ""] {
        let run = env.run(&["deploy", "production", "--", bad]);
        run.expect(2);
        assert!(run.stderr.contains("version"), "{bad:?}: {}", run.stderr);
    }
    assert!(!world.dir.join("store").exists(), "a refused version reached the pipeline");
    // Shell syntax is just characters: it is deployed as a name and nothing runs it.
    let pwned = env.path().join("pwned");
    let hostile = format!("$(touch${{IFS}}{})", pwned.display());
    env.run(&["deploy", "production", "--", &hostile]).expect(0);
    assert_eq!(env.serving().as_deref(), Some(hostile.as_str()));
    assert!(!pwned.exists(), "the version was run by a shell");
    assert!(env.history()[0]["version"] == hostile.as_str());
}

#[test]
fn a_switch_killed_after_it_ran_is_resumed_without_running_twice() {
    let (env, world) = pipeline_env();
    env.run(&["deploy", "production", "v1"]).expect(0);
    let run = env.run_crashing("apply:switch", &["deploy", "production", "v2"]);
    assert_eq!(run.signal, Some(9), "{}", run.stderr);
    env.run(&["deploy", "production", "v3"]).expect(5);
    env.run(&["resume", "production"]).expect(0);
    assert_eq!(env.serving().as_deref(), Some("v2"));
    assert_eq!(env.state_of(2), "good");
    // `current` said v2 already: the resumed switch did not run the pipeline again.
    let log = std::fs::read_to_string(env.path().join(".lastgood/work/production/.lastgood/switch-2.log")).unwrap();
    assert_eq!(log.matches("pipeline:").count(), 1, "{log}");
    drop(world);
}

#[test]
fn diagnose_and_diff_for_opaque_versions_and_for_versions_in_git() {
    let (mut env, _world) = pipeline_env();
    env.run(&["deploy", "production", "build-101"]).expect(0);
    env.run(&["deploy", "production", "build-102"]).expect(0);
    env.run(&["mark", "production", "2", "bad", "--reason", "errors"]).expect(0);
    let d = env.run(&["diagnose", "production", "--format", "json"]).expect(0).json();
    assert_eq!(
        (d["code"].as_bool(), d["config"].as_bool(), d["scope"].as_str()),
        (Some(true), Some(false), Some("code")),
        "{d}"
    );
    let text = env.run(&["diff", "production", "1", "2"]).expect(0).stdout.clone();
    assert!(text.contains("opaque"), "{text}");

    // With `source`, a command runtime's versions are tags in git: features and commits.
    env.commit_version("v1", &[]);
    env.commit_version("v2", &[("src/feature.txt", "x")]);
    let cfg = std::fs::read_to_string(env.path().join("lastgood.toml")).unwrap();
    env.write("lastgood.toml", &cfg.replace("runtime = \"command\"\n", "runtime = \"command\"\nsource = \"repo\"\n"));
    env.run(&["deploy", "production", "v1"]).expect(0);
    env.run(&["deploy", "production", "v2"]).expect(0);
    let h = env.history();
    assert_eq!(h[0]["features"], serde_json::json!(["Release v2"]), "{h}");
    assert_eq!(h[0]["commit"].as_str().map(str::len), Some(40));
    env.run(&["deploy", "production", "no-such-tag"]).expect(2);
    let text = env.run(&["diff", "production", "3", "4"]).expect(0).stdout.clone();
    assert!(text.contains("Release v2"), "{text}");
}

#[test]
fn command_runtime_config_errors() {
    let env = TestEnv::new(BIN);
    for (toml, expect) in [
        ("runtime = \"command\"\n", "switch: missing"),
        ("runtime = \"command\"\nswitch = []\n", "switch: needs a program"),
        ("runtime = \"command\"\nswitch = [\"x\"]\nbuild = [\"make\"]\n", "build: applies to the releases runtime"),
        ("runtime = \"command\"\nswitch = [\"x\"]\nrepo = \"r\"\n", "repo: applies to another runtime, not `command`"),
        ("switch = [\"x\"]\ndeploy_to = \"d\"\n", "switch: applies to another runtime, not `releases`"),
    ] {
        env.write("lastgood.toml", &format!("[environments.production]\n{toml}"));
        let run = env.run(&["status", "production"]);
        run.expect(2);
        assert!(run.stderr.contains(expect), "{toml}: {}", run.stderr);
        assert!(run.stderr.contains("lastgood.toml:"), "{}", run.stderr);
    }
}

// ---- gitops -----------------------------------------------------------------------

struct GitRemote {
    bare: PathBuf,
    /// A clone where "someone else" works.
    other: PathBuf,
}

pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Alice")
        .env("GIT_AUTHOR_EMAIL", "alice@example.invalid")
        .env("GIT_COMMITTER_NAME", "Alice")
        .env("GIT_COMMITTER_EMAIL", "alice@example.invalid")
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl GitRemote {
    fn new(env: &TestEnv) -> Self {
        let bare = env.path().join("deployments.git");
        let other = env.path().join("alice");
        git(env.path(), &["init", "-q", "--bare", "-b", "main", &bare.to_string_lossy()]);
        git(env.path(), &["clone", "-q", &bare.to_string_lossy(), &other.to_string_lossy()]);
        std::fs::create_dir_all(other.join("apps/web")).unwrap();
        std::fs::write(other.join("README"), "desired state of our apps\n").unwrap();
        std::fs::write(other.join("apps/web/version"), "v0\n").unwrap();
        git(&other, &["add", "-A"]);
        git(&other, &["commit", "-qm", "Initial state"]);
        git(&other, &["push", "-q", "origin", "HEAD:main"]);
        Self { bare, other }
    }

    fn version(&self) -> String {
        git(&self.bare, &["show", "main:apps/web/version"]).trim().to_owned()
    }

    fn tip(&self) -> String {
        git(&self.bare, &["rev-parse", "main"]).trim().to_owned()
    }

    fn is_ancestor(&self, commit: &str) -> bool {
        Command::new("git")
            .args(["merge-base", "--is-ancestor", commit, "main"])
            .current_dir(&self.bare)
            .status()
            .unwrap()
            .success()
    }

    /// Someone else commits on top of main.
    fn push_other(&self, file: &str, content: &str, message: &str) -> String {
        git(&self.other, &["pull", "-q", "--ff-only", "origin", "main"]);
        let p = self.other.join(file);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
        git(&self.other, &["add", "-A"]);
        git(&self.other, &["commit", "-qm", message]);
        git(&self.other, &["push", "-q", "origin", "HEAD:main"]);
        self.tip()
    }
}

/// A GitOps setup: the bare repository, a controller applying its version file
/// within ~50 ms, and a config pointing lastgood at both.
fn gitops_env(extra: &str) -> (TestEnv, GitRemote, World) {
    let env = TestEnv::new(BIN);
    let remote = GitRemote::new(&env);
    let launch = launcher(&env);
    let work = env.path().join("world");
    let controller = format!(
        r#"#!/bin/sh
last=""
while :; do
  v=$(git --git-dir="{bare}" show main:apps/web/version 2>/dev/null || true)
  if [ -n "$v" ] && [ "$v" != "$last" ]; then "{launch}" "$v"; last="$v"; fi
  sleep 0.05
done
"#,
        bare = remote.bare.display(),
        launch = launch.display()
    );
    let script = write_script(&work.join("controller.sh"), &controller);
    let child = Command::new(script).stdout(std::process::Stdio::null()).spawn().unwrap();
    env.write(
        "lastgood.toml",
        &format!(
            "[environments.production]\nruntime = \"gitops\"\nrepo = \"deployments.git\"\nbranch = \"main\"\n\
             version_file = \"apps/web/version\"\n{extra}\n{}",
            checks(&env)
        ),
    );
    (env, remote, World { dir: work, controller: Some(child) })
}

fn trailer(remote: &GitRemote, rev: &str, key: &str) -> String {
    git(&remote.bare, &["log", "-1", &format!("--format=%(trailers:key={key},valueonly)"), rev]).trim().to_owned()
}

#[test]
fn gitops_deploys_push_commits_and_rollbacks_revert_them() {
    let (env, remote, _world) = gitops_env("");
    env.run(&["deploy", "production", "v1", "--reason", "first"]).expect(0);
    let c1 = remote.tip();
    assert_eq!(remote.version(), "v1");
    assert_eq!(env.serving().as_deref(), Some("v1"));
    let subject = git(&remote.bare, &["log", "-1", "--format=%s%n%an", "main"]);
    assert!(subject.starts_with("lastgood: deploy v1 to production as #1\ntester"), "{subject}");
    assert_eq!(trailer(&remote, "main", "Lastgood-Release"), "1");
    assert!(git(&remote.bare, &["log", "-1", "--format=%b", "main"]).contains("Reason: first"));

    env.run(&["deploy", "production", "v2"]).expect(0);
    let c2 = remote.tip();
    assert_eq!(env.serving().as_deref(), Some("v2"));

    // v3 is unhealthy once the controller applies it: lastgood reverts its own commit.
    let run = env.run(&["deploy", "production", "v3-broken", "--format", "json"]);
    run.expect(1);
    assert_eq!(run.json()["outcome"], "rolled_back", "{}", run.stderr);
    assert_eq!(remote.version(), "v2");
    assert_eq!(env.serving().as_deref(), Some("v2"));
    assert_eq!(trailer(&remote, "main", "Lastgood-Kind"), "rollback");
    assert!(git(&remote.bare, &["log", "-1", "--format=%B", "main"]).contains("This reverts commit"));

    // An explicit rollback to v1: every commit is still in the history (no force push).
    env.run(&["rollback", "production", "--to", "v1", "--reason", "test"]).expect(0);
    assert_eq!(remote.version(), "v1");
    assert_eq!(env.serving().as_deref(), Some("v1"));
    for c in [&c1, &c2] {
        assert!(remote.is_ancestor(c), "{c} was dropped from main");
    }
    // And forward again to the last good one after that (v2), reverting the revert.
    env.run(&["rollback", "production", "--to", "v2", "--yes", "--reason", "test"]).expect(0);
    assert_eq!(remote.version(), "v2");
    let status = env.status();
    assert_eq!(status["runtime"], "gitops");
    assert_eq!(status["runtime_version"], "v2");
}

#[test]
fn gitops_retries_when_the_branch_moves_and_never_overwrites_a_version_set_by_someone_else() {
    let (env, remote, world) = gitops_env("");
    env.run(&["deploy", "production", "v1"]).expect(0);
    // Alice pushes an unrelated change while lastgood is about to push: a pre-receive
    // hook moves main once, just before lastgood's push lands (a real race, in git).
    let hook = format!(
        r#"#!/bin/sh
[ -f "{mark}" ] && exit 0
touch "{mark}"
unset GIT_QUARANTINE_PATH GIT_OBJECT_DIRECTORY GIT_ALTERNATE_OBJECT_DIRECTORIES GIT_DIR
cd "{other}" && git pull -q --ff-only origin main && echo more >> README && git -c user.name=Alice -c user.email=a@x commit -qam "Alice: docs" && git push -q origin HEAD:main
"#,
        mark = world.dir.join("raced").display(),
        other = remote.other.display()
    );
    write_script(&remote.bare.join("hooks/pre-receive"), &hook);
    let run = env.run(&["deploy", "production", "v2"]);
    run.expect(0);
    std::fs::remove_file(remote.bare.join("hooks/pre-receive")).unwrap();
    assert!(world.dir.join("raced").exists(), "the hook did not run");
    assert_eq!(remote.version(), "v2");
    let log = git(&remote.bare, &["log", "--format=%s", "main"]);
    assert!(log.contains("Alice: docs"), "Alice's commit was lost:\n{log}");
    assert!(run.stderr.contains("the branch moved"), "{}", run.stderr);

    // Bob sets the version by hand: lastgood refuses to overwrite it, pushes nothing.
    // It is a refusal found before anything is recorded (exit 4), not a failed release.
    let hand = remote.push_other("apps/web/version", "v9-hotfix\n", "Hotfix by hand");
    let run = env.run(&["deploy", "production", "v3"]);
    run.expect(4);
    assert!(run.stderr.contains("someone else changed it"), "{}", run.stderr);
    assert!(run.stderr.contains("Hotfix by hand"), "{}", run.stderr);
    assert_eq!(remote.tip(), hand);
    assert_eq!(remote.version(), "v9-hotfix");
    assert_eq!(env.history().as_array().unwrap().len(), 2, "a refused deploy recorded a release");
    // A rollback meets the same refusal, and --yes does not overrule a commit.
    env.run(&["rollback", "production", "--to", "v1", "--reason", "x", "--yes"]).expect(4);
    assert_eq!(remote.tip(), hand);
}

#[test]
fn gitops_reset_mode_moves_the_branch_back_with_a_lease() {
    let (env, remote, _world) = gitops_env("mode = \"reset\"");
    env.run(&["deploy", "production", "v1"]).expect(0);
    let c1 = remote.tip();
    env.run(&["deploy", "production", "v2"]).expect(0);
    env.run(&["rollback", "production", "--reason", "test"]).expect(0);
    assert_eq!(remote.tip(), c1);
    assert_eq!(env.serving().as_deref(), Some("v1"));

    // With someone else's commit in between, reset would drop it: refused, nothing pushed.
    env.run(&["deploy", "production", "v3"]).expect(0);
    let theirs = remote.push_other("README", "changed\n", "Alice: readme");
    let ops = || lastgood_testkit::sqlite(&env.path().join(".lastgood/ledger.db"), "SELECT count(*) FROM operations");
    let before = ops();
    let dry = env.run(&["rollback", "production", "--to", "v1", "--dry-run"]);
    dry.expect(0);
    assert!(dry.stdout.contains("with --force-with-lease"), "{}", dry.stdout);
    assert!(dry.stdout.contains("would drop commit"), "{}", dry.stdout);
    let run = env.run(&["rollback", "production", "--to", "v1", "--reason", "test"]);
    run.expect(4);
    assert!(run.stderr.contains("would drop commit"), "{}", run.stderr);
    assert_eq!(remote.tip(), theirs);
    assert_eq!(ops(), before, "a refused rollback was recorded");
}

#[test]
fn gitops_killed_after_the_push_resumes_without_a_second_commit() {
    let (env, remote, _world) = gitops_env("");
    env.run(&["deploy", "production", "v1"]).expect(0);
    let run = env.run_crashing("apply:switch", &["deploy", "production", "v2"]);
    assert_eq!(run.signal, Some(9), "{}", run.stderr);
    assert_eq!(remote.version(), "v2");
    let tip = remote.tip();
    env.run(&["resume", "production"]).expect(0);
    assert_eq!(remote.tip(), tip, "resume pushed again");
    assert_eq!(env.state_of(2), "good");

    // Killed before the push: the abort returns to v1 (nothing of v2 was pushed).
    let run = env.run_crashing("intent:switch", &["deploy", "production", "v3"]);
    assert_eq!(run.signal, Some(9));
    env.run(&["resume", "production", "--abort"]).expect(0);
    assert_eq!(remote.version(), "v2");
    assert_eq!(env.serving().as_deref(), Some("v2"));
}

#[test]
fn gitops_hostile_settings_and_unreachable_repositories() {
    let (env, _remote, _world) = gitops_env("");
    let base = std::fs::read_to_string(env.path().join("lastgood.toml")).unwrap();
    for (from, to, expect) in [
        ("branch = \"main\"", "branch = \"--upload-pack=x\"", "branch:"),
        ("branch = \"main\"", "branch = \"main;x\"", "branch:"),
        ("repo = \"deployments.git\"", "repo = \"--upload-pack=touch x\"", "repo: must not start with `-`"),
        ("version_file = \"apps/web/version\"", "version_file = \"../outside\"", "version_file: must be a plain"),
        ("version_file = \"apps/web/version\"", "version_file = \"/etc/passwd\"", "version_file: must be a plain"),
    ] {
        env.write("lastgood.toml", &base.replace(from, to));
        let run = env.run(&["deploy", "production", "v1"]);
        run.expect(2);
        assert!(run.stderr.contains(expect), "{to}: {}", run.stderr);
    }
    // A repository that is not there: refused before anything is recorded.
    env.write("lastgood.toml", &base.replace("repo = \"deployments.git\"", "repo = \"missing.git\""));
    let run = env.run(&["deploy", "production", "v1"]);
    run.expect(4);
    assert!(run.stderr.contains("cannot be read"), "{}", run.stderr);
    env.write("lastgood.toml", &base.replace("branch = \"main\"", "branch = \"release\""));
    let run = env.run(&["deploy", "production", "v1"]);
    run.expect(4);
    assert!(run.stderr.contains("has no branch release"), "{}", run.stderr);
    assert_eq!(env.history().as_array().unwrap().len(), 0);
    let started = Instant::now();
    env.write("lastgood.toml", &base);
    env.run(&["deploy", "production", "v1"]).expect(0);
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn gitops_reason_in_the_revert_hash_targets_status_fetches_and_rewritten_history() {
    let (env, remote, _world) = gitops_env("");
    env.run(&["deploy", "production", "v1", "--reason", "first"]).expect(0);
    env.run(&["deploy", "production", "v2", "--reason", "second"]).expect(0);
    // The runbook picks the GitOps commit from the timeline: history shows it.
    let h = env.history();
    let deployed = h[1]["deploy_commit"].as_str().unwrap().to_owned();
    assert!(remote.is_ancestor(&deployed));
    env.run(&["rollback", "production", "--to", &deployed[..8], "--reason", "login broken"]).expect(0);
    let body = git(&remote.bare, &["log", "-1", "--format=%B", "main"]);
    assert!(body.contains("Reason: login broken"), "{body}");
    assert!(!body.contains("second"), "{body}");
    assert_eq!(remote.version(), "v1");

    // History rewritten (force-pushed): the deploy commits are gone, the version still
    // resolves, and the plan says how it will be reached.
    env.run(&["deploy", "production", "v3"]).expect(0);
    git(&remote.other, &["checkout", "-q", "--orphan", "rewritten"]);
    std::fs::write(remote.other.join("apps/web/version"), "v3\n").unwrap();
    git(&remote.other, &["add", "-A"]);
    git(&remote.other, &["commit", "-qm", "Squashed history"]);
    git(&remote.other, &["push", "-q", "--force", "origin", "HEAD:main"]);
    let dry = env.run(&["rollback", "production", "--to", "v2", "--dry-run"]);
    assert!(dry.expect(0).stdout.contains("written directly if #2's deploy commit is no longer"), "{}", dry.stdout);
    env.run(&["rollback", "production", "--to", "v2", "--yes", "--reason", "rewritten"]).expect(0);
    assert_eq!(remote.version(), "v2");
    let body = git(&remote.bare, &["log", "-1", "--format=%B", "main"]);
    assert!(body.contains("not in this branch's history"), "{body}");

    // `status` fetches before it reports: a version set by hand shows at once.
    remote.push_other("apps/web/version", "v7-by-hand\n", "By hand");
    let status = env.status();
    assert_eq!(status["runtime_version"], "v7-by-hand", "{status}");
}
