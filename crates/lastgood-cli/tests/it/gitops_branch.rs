//! GitOps the way the Codefresh and Spryker runbooks use it (issue 15): a release
//! branch whose commits are the releases (branch mode), `git revert` of everything
//! after the chosen commit or `git reset` to it, a pipeline triggered after the push,
//! and targets picked by hash from `history`. A local bare repository stands in for
//! the hosting; the trigger stand-in records its argv and applies the branch (it is
//! the pipeline that deploys), so the sample app serves the branch's `VERSION`.

use std::path::PathBuf;

use crate::BIN;
use crate::runtimes::{World, git, launcher, write_script};
use lastgood_testkit::TestEnv;

struct Branch {
    bare: PathBuf,
    dev: PathBuf,
    /// Tag name -> commit.
    commits: Vec<(String, String)>,
}

impl Branch {
    /// `app-1` on main; `app-2`, `app-3` tagged on top of it, main not moved yet (CI
    /// has not merged them).
    fn new(env: &TestEnv) -> Self {
        let bare = env.path().join("app.git");
        let dev = env.path().join("dev");
        git(env.path(), &["init", "-q", "--bare", "-b", "main", &bare.to_string_lossy()]);
        git(env.path(), &["clone", "-q", &bare.to_string_lossy(), &dev.to_string_lossy()]);
        let mut b = Self { bare, dev, commits: Vec::new() };
        for n in 1..=3 {
            b.commit(&format!("app-{n}"), &format!("Feature {n}"));
            if n == 1 {
                git(&b.dev, &["push", "-q", "origin", "HEAD:main"]);
            }
        }
        git(&b.dev, &["push", "-q", "--tags", "origin"]);
        b
    }

    fn commit(&mut self, tag: &str, subject: &str) -> String {
        std::fs::write(self.dev.join("VERSION"), format!("{tag}\n")).unwrap();
        std::fs::write(self.dev.join(format!("{tag}.txt")), subject).unwrap();
        git(&self.dev, &["add", "-A"]);
        git(&self.dev, &["commit", "-qm", subject]);
        git(&self.dev, &["tag", tag]);
        let sha = git(&self.dev, &["rev-parse", "HEAD"]).trim().to_owned();
        self.commits.push((tag.to_owned(), sha.clone()));
        sha
    }

    fn sha(&self, tag: &str) -> &str {
        &self.commits.iter().find(|(t, _)| t == tag).unwrap().1
    }

    fn tip(&self) -> String {
        git(&self.bare, &["rev-parse", "main"]).trim().to_owned()
    }

    fn serves(&self) -> String {
        git(&self.bare, &["show", "main:VERSION"]).trim().to_owned()
    }

    fn subjects(&self) -> Vec<String> {
        git(&self.bare, &["log", "--format=%s", "main"]).lines().map(str::to_owned).collect()
    }
}

/// Branch mode with a trigger: `ci/deploy.sh {commit} {version}` records its argv and
/// the branch tip in `world/triggers`, then launches the app with main's VERSION.
fn branch_env(mode: &str) -> (TestEnv, Branch, World) {
    let env = TestEnv::new(BIN);
    let branch = Branch::new(&env);
    let launch = launcher(&env);
    let work = env.path().join("world");
    std::fs::create_dir_all(env.path().join("ci")).unwrap();
    let trigger = format!(
        r#"#!/bin/sh
set -eu
tip=$(git --git-dir="{bare}" rev-parse main)
printf '%s %s %s\n' "$1" "$2" "$tip" >> "{work}/triggers"
if [ -f "{work}/pipeline-fails" ]; then rm "{work}/pipeline-fails"; exit 3; fi
"{launch}" "$(git --git-dir="{bare}" show main:VERSION)"
"#,
        bare = branch.bare.display(),
        work = work.display(),
        launch = launch.display()
    );
    write_script(&env.path().join("ci/deploy.sh"), &trigger);
    // The check: the app serves the VERSION of the release's commit (`{commit}`).
    let serves = format!(
        "#!/bin/sh\nwant=$(git --git-dir=\"{}\" show \"$1:VERSION\")\ncurl -sf http://127.0.0.1:{}/version | grep -qx \"$want\"\n",
        branch.bare.display(),
        env.port
    );
    let serves = write_script(&env.path().join("ci/serves.sh"), &serves);
    env.write(
        "lastgood.toml",
        &format!(
            "[environments.production]\nruntime = \"gitops\"\nrepo = \"app.git\"\nbranch = \"main\"\nmode = \"{mode}\"\n\
             trigger = [\"./ci/deploy.sh\", \"{{commit}}\", \"{{version}}\"]\n\n\
             [[environments.production.checks]]\ncommand = [\"{}\", \"{{commit}}\"]\ninterval = \"100ms\"\nretries = 40\n",
            serves.display()
        ),
    );
    (env, branch, World { dir: work, controller: None })
}

fn triggers(world: &World) -> Vec<String> {
    std::fs::read_to_string(world.dir.join("triggers")).unwrap_or_default().lines().map(str::to_owned).collect()
}

fn operations(env: &TestEnv) -> String {
    lastgood_testkit::sqlite(&env.path().join(".lastgood/ledger.db"), "SELECT count(*) FROM operations")
}

#[test]
fn branch_mode_deploys_commits_reverts_them_and_picks_targets_by_hash() {
    let (env, b, world) = branch_env("revert");
    // app-1 is where main already is (CI merged it): recorded, nothing pushed, trigger once.
    env.run(&["deploy", "production", "app-1"]).expect(0);
    assert_eq!(b.tip(), b.sha("app-1"));
    // app-2 fast-forwards main; a full hash works as the version too.
    env.run(&["deploy", "production", "app-2"]).expect(0);
    env.run(&["deploy", "production", b.sha("app-3")]).expect(0);
    assert_eq!(b.tip(), b.sha("app-3"));
    assert_eq!(env.serving().as_deref().map(str::trim), Some("app-3"));
    let t = triggers(&world);
    assert_eq!(t.len(), 3, "{t:?}");
    assert_eq!(t[1], format!("{} app-2 {}", b.sha("app-2"), b.sha("app-2")));

    // The timeline the runbook reads: commit, deploy commit and features per release.
    let h = env.history();
    assert_eq!(h[1]["commit"], b.sha("app-2"));
    assert_eq!(h[1]["deploy_commit"], b.sha("app-2"));
    assert_eq!(h[1]["features"], serde_json::json!(["Feature 2"]), "{h}");
    let text = env.run(&["history", "production"]).expect(0).stdout.clone();
    assert!(text.contains("DEPLOYED") && text.contains(&b.sha("app-2")[..12]), "{text}");

    // A commit that does not fast-forward main is refused before anything is recorded.
    let ops = operations(&env);
    let run = env.run(&["deploy", "production", "app-1"]);
    run.expect(4);
    assert!(run.stderr.contains("does not fast-forward main"), "{}", run.stderr);
    assert_eq!(operations(&env), ops);
    // A preview never refuses: it lists the refusal.
    let dry = env.run(&["deploy", "production", "app-1", "--dry-run", "--format", "json"]);
    assert!(dry.expect(0).json()["refusals"][0]["reason"].as_str().unwrap().contains("fast-forward"), "{}", dry.stdout);

    // `git revert --no-edit <hash>; git push`, as lastgood: the target picked by a
    // 7-digit prefix; every commit after it reverted in one commit; history kept.
    let prefix = &b.sha("app-1")[..7];
    let dry = env.run(&["rollback", "production", "--to", prefix, "--dry-run"]);
    assert!(dry.expect(0).stdout.contains("revert every commit on main after #1"), "{}", dry.stdout);
    env.run(&["rollback", "production", "--to", prefix, "--reason", "checkout broken"]).expect(0);
    assert_eq!(b.serves(), "app-1");
    let revert = b.tip();
    assert_eq!(git(&b.bare, &["rev-parse", "main~1"]).trim(), b.sha("app-3"), "history was not kept");
    let body = git(&b.bare, &["log", "-1", "--format=%B", "main"]);
    assert!(body.contains("Reason: checkout broken"), "{body}");
    assert!(body.contains(&b.sha("app-3")[..12]) && body.contains(&b.sha("app-2")[..12]), "{body}");
    assert_eq!(env.serving().as_deref().map(str::trim), Some("app-1"));
    assert_eq!(triggers(&world).len(), 4);
    // The release now names the revert commit as its deploy commit; it resolves too.
    assert_eq!(env.history()[2]["deploy_commit"], revert.as_str());
    let plan = env.run(&["rollback", "production", "--to", &revert[..10], "--dry-run", "--format", "json"]);
    assert_eq!(plan.expect(0).json()["to"]["id"], 1);

    // Forward again to app-3 by id: a new commit on top restores its tree.
    env.run(&["rollback", "production", "--to", "#3", "--yes", "--reason", "fixed"]).expect(0);
    assert_eq!(b.serves(), "app-3");
    assert_eq!(b.subjects().iter().filter(|s| s.starts_with("lastgood: roll back")).count(), 2);

    // Hostile targets: refused as input, nothing runs them.
    for bad in ["--upload-pack=x", "$(x)", "a;b", "a\nb"] {
        let run = env.run(&["rollback", "production", "--to", bad, "--reason", "x"]);
        assert!(run.code == Some(2), "{bad:?}: {:?} {}", run.code, run.stderr);
        env.run(&["deploy", "production", "--", bad]).expect(2);
    }
}

#[test]
fn branch_mode_reset_moves_the_branch_and_never_drops_someone_elses_commit() {
    let (env, mut b, _world) = branch_env("reset");
    env.run(&["deploy", "production", "app-1"]).expect(0);
    env.run(&["deploy", "production", "app-2"]).expect(0);
    env.run(&["deploy", "production", "app-3"]).expect(0);
    let dry = env.run(&["rollback", "production", "--to", "app-2", "--dry-run"]);
    assert!(dry.expect(0).stdout.contains("--force-with-lease"), "{}", dry.stdout);
    env.run(&["rollback", "production", "--to", "app-2", "--reason", "bad"]).expect(0);
    assert_eq!(b.tip(), b.sha("app-2"));

    // Someone commits on main: a reset would drop it, so it is refused (exit 4).
    git(&b.dev, &["checkout", "-q", "-B", "hot", b.sha("app-2").to_owned().as_str()]);
    let theirs = b.commit("hotfix", "Hotfix by hand");
    git(&b.dev, &["push", "-q", "origin", "HEAD:main"]);
    let ops = operations(&env);
    let run = env.run(&["rollback", "production", "--to", "app-1", "--reason", "bad"]);
    run.expect(4);
    assert!(run.stderr.contains("would drop commit"), "{}", run.stderr);
    assert_eq!(b.tip(), theirs);
    assert_eq!(operations(&env), ops);
}

#[test]
fn a_failing_trigger_fails_the_deploy_and_it_returns_by_itself() {
    let (env, b, world) = branch_env("revert");
    env.run(&["deploy", "production", "app-1"]).expect(0);
    std::fs::write(world.dir.join("pipeline-fails"), "").unwrap();
    let run = env.run(&["deploy", "production", "app-2", "--format", "json"]);
    run.expect(1);
    assert_eq!(run.json()["outcome"], "rolled_back", "{}", run.stdout);
    assert!(run.stderr.contains("trigger"), "{}", run.stderr);
    // The way back reverted the pushed commit and triggered the pipeline again.
    assert_eq!(b.serves(), "app-1");
    assert_eq!(triggers(&world).len(), 3);
    assert_eq!(env.serving().as_deref().map(str::trim), Some("app-1"));
    assert!(git(&b.bare, &["merge-base", "--is-ancestor", b.sha("app-2"), "main"]).is_empty());
}

/// kill -9 at each step of a branch-mode deploy and rollback, then `resume` or
/// `resume --abort`: the branch ends where the ledger says, no revert commit twice,
/// the trigger at most once per push.
#[test]
fn branch_mode_crash_loop() {
    let points = ["intent:switch", "mid:switch", "mid:pushed", "mid:trigger", "apply:switch", "done:switch"];
    for (i, point) in points.iter().enumerate() {
        let abort = i % 2 == 1;
        let (env, b, world) = branch_env("revert");
        env.run(&["deploy", "production", "app-1"]).expect(0);
        // The deploy, killed.
        let run = env.run_crashing(point, &["deploy", "production", "app-2"]);
        if run.signal == Some(9) {
            let args: &[&str] = if abort { &["resume", "production", "--abort"] } else { &["resume", "production"] };
            let r = env.run(args);
            assert!(matches!(r.code, Some(0 | 1)), "{point}: {:?} {}", r.code, r.stderr);
        }
        settled(&env, &b, &world, point);
        // The rollback, killed.
        let current = env.status()["current"]["version"].as_str().unwrap().to_owned();
        if current != "app-2" {
            continue;
        }
        let run = env.run_crashing(point, &["rollback", "production", "--to", "app-1", "--reason", "crash test"]);
        if run.signal == Some(9) {
            let args: &[&str] = if abort { &["resume", "production", "--abort"] } else { &["resume", "production"] };
            let r = env.run(args);
            assert!(matches!(r.code, Some(0 | 1)), "{point}: {:?} {}", r.code, r.stderr);
        }
        settled(&env, &b, &world, point);
        let reverts = b.subjects().iter().filter(|s| s.contains("roll back production to #1")).count();
        assert!(reverts <= 1, "{point}: {reverts} revert commits: {:?}", b.subjects());
    }
}

/// The branch says what the ledger's current release is, and no push was triggered twice.
fn settled(env: &TestEnv, b: &Branch, world: &World, point: &str) {
    let status = env.status();
    let current = status["current"]["version"].as_str().unwrap_or_default().to_owned();
    assert_eq!(b.serves(), current, "{point}: the branch and the ledger disagree: {status}");
    assert!(status["interrupted"].is_null(), "{point}: {status}");
    let t = triggers(world);
    let mut tips: Vec<&str> = t.iter().map(|l| l.rsplit(' ').next().unwrap()).collect();
    let n = tips.len();
    tips.dedup();
    assert_eq!(tips.len(), n, "{point}: a push was triggered twice in a row: {t:?}");
}
