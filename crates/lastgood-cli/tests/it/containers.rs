//! The `compose` and `swarm` runtimes on the machine's real Docker engine, with no
//! registry: `scripts/services.sh` builds `lastgood-test/app:{v1,v2,v3-broken}` (busybox
//! httpd serving `/version`; v3-broken has no `/health`, so its healthcheck fails) and
//! a single-node swarm. Each test tags those images into a repository of its own
//! (`lgt-<name>/app`), so tests can move tags without disturbing each other, and binds
//! its app to its own loopback port with host networking.
//!
//! When the engine or the images are missing the tests fail and say what to run; they
//! never skip.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::BIN;
use lastgood_testkit::TestEnv;

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("docker is installed (scripts/services.sh)");
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The engine answers and the test images exist; else a failure that says what to run.
fn engine_ready() {
    let info = Command::new("docker").args(["info", "--format", "{{.Swarm.LocalNodeState}}"]).output();
    let swarm = match info {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        Ok(o) => panic!(
            "the Docker engine is not reachable: {}; run scripts/services.sh (it installs and starts what the container tests need)",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!("docker is not installed ({e}); run scripts/services.sh"),
    };
    assert_eq!(swarm, "active", "the engine is not a swarm manager; run scripts/services.sh");
    for v in ["v1", "v2", "v3-broken"] {
        let ok = Command::new("docker")
            .args(["image", "inspect", &format!("lastgood-test/app:{v}")])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(ok, "test image lastgood-test/app:{v} is missing; run scripts/services.sh");
    }
}

/// `docker compose` (v2) or `docker-compose` (v1), as lastgood picks it.
fn compose_cli() -> Vec<String> {
    let v2 = Command::new("docker").args(["compose", "version"]).output().is_ok_and(|o| o.status.success());
    if v2 { vec!["docker".into(), "compose".into()] } else { vec!["docker-compose".into()] }
}

/// A test's own image repository, project and port, removed when dropped.
struct Stack {
    env: TestEnv,
    name: String,
    swarm: bool,
}

impl Stack {
    fn repo(&self) -> String {
        format!("{}/app", self.name)
    }

    /// Tags the test images into this test's repository: v1, v2, v3-broken.
    fn tag_images(&self) {
        for v in ["v1", "v2", "v3-broken"] {
            docker(&["tag", &format!("lastgood-test/app:{v}"), &format!("{}:{v}", self.repo())]);
        }
    }

    fn run(&self, args: &[&str]) -> lastgood_testkit::Run {
        self.env.run(args)
    }

    fn serving(&self) -> Option<String> {
        self.env.get("/version").map(|s| s.trim().to_owned())
    }

    /// Waits (briefly) for the app to serve `version`: a compose/swarm update finishes
    /// before every listener is guaranteed to answer.
    fn serves(&self, version: &str) -> bool {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if self.serving().as_deref() == Some(version) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    fn status(&self) -> serde_json::Value {
        self.env.status()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let quiet = |args: &[&str]| {
            let _ = Command::new("docker").args(args).output();
        };
        if self.swarm {
            quiet(&["service", "rm", &self.name]);
        } else {
            let ids = Command::new("docker")
                .args(["ps", "-aq", "--filter", &format!("label=com.docker.compose.project={}", self.name)])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).split_whitespace().map(str::to_owned).collect::<Vec<_>>())
                .unwrap_or_default();
            for id in ids {
                quiet(&["rm", "-f", &id]);
            }
        }
        let tags = Command::new("docker")
            .args(["images", "--format", "{{.Repository}}:{{.Tag}}"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let keep = format!("lastgood-keep/{}:", self.name);
        for t in tags.lines().filter(|t| t.starts_with(&format!("{}:", self.repo())) || t.starts_with(&keep)) {
            quiet(&["rmi", "--no-prune", t]);
        }
    }
}

const CHECK: &str = r#"
[[environments.production.checks]]
http = "http://127.0.0.1:PORT/version"
expect_body = "{version}"
interval = "100ms"
timeout = "1s"
retries = 30
"#;

fn compose_file(port: u16, repo: &str, motd: bool) -> String {
    let volumes = if motd { "    volumes:\n      - ./motd:/www/motd:ro\n" } else { "" };
    format!(
        r#"version: "3.8"
services:
  web:
    image: {repo}:${{LASTGOOD_VERSION:?set by lastgood}}
    network_mode: host
    command: ["httpd", "-f", "-p", "127.0.0.1:{port}", "-h", "/www"]
    stop_signal: SIGKILL
{volumes}    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:{port}/health"]
      interval: 500ms
      timeout: 2s
      retries: 2
"#
    )
}

/// A compose project `lgt-<tag>-<port>` with this test's images and an HTTP check.
fn compose_stack(tag: &str, extra: &str) -> Stack {
    engine_ready();
    let env = TestEnv::new(BIN);
    let name = format!("lgt-{tag}-{}", env.port);
    let stack = Stack { name, swarm: false, env };
    stack.tag_images();
    let motd = extra.contains("motd");
    stack.env.write("compose.yaml", &compose_file(stack.env.port, &stack.repo(), motd));
    stack.env.write("motd", "one\n");
    stack.env.write(
        "lastgood.toml",
        &format!(
            "[environments.production]\nruntime = \"compose\"\ncompose_file = \"compose.yaml\"\nproject = \"{}\"\nservices = [\"web\"]\nkeep_releases = 2\n{extra}\n{}",
            stack.name,
            CHECK.replace("PORT", &stack.env.port.to_string())
        ),
    );
    stack
}

/// A Swarm service `lgt-<tag>-<port>` created on v1, and a config updating it.
fn swarm_stack(tag: &str, extra: &str) -> Stack {
    engine_ready();
    let env = TestEnv::new(BIN);
    let name = format!("lgt-{tag}-{}", env.port);
    let stack = Stack { name, swarm: true, env };
    stack.tag_images();
    let port = stack.env.port;
    stack.env.write("motd", "one\n");
    let motd = stack.env.path().join("motd");
    let health = format!("wget -q -O /dev/null http://127.0.0.1:{port}/health");
    let mut args = vec![
        "service".to_owned(),
        "create".into(),
        "--quiet".into(),
        "--detach=false".into(),
        "--no-resolve-image".into(),
        "--name".into(),
        stack.name.clone(),
        "--network".into(),
        "host".into(),
        "--update-order".into(),
        "stop-first".into(),
        "--update-monitor".into(),
        "1s".into(),
        "--stop-signal".into(),
        "SIGKILL".into(),
        "--health-cmd".into(),
        health,
        "--health-interval".into(),
        "500ms".into(),
        "--health-retries".into(),
        "2".into(),
    ];
    if extra.contains("motd") {
        args.extend(["--mount".into(), format!("type=bind,src={},dst=/www/motd,readonly", motd.display())]);
    }
    args.extend([format!("{}:v1", stack.repo()), "httpd".into(), "-f".into(), "-p".into()]);
    args.extend([format!("127.0.0.1:{port}"), "-h".into(), "/www".into()]);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    docker(&argv);
    stack.env.write(
        "lastgood.toml",
        &format!(
            "[environments.production]\nruntime = \"swarm\"\nservice = \"{}\"\nkeep_releases = 2\n{extra}\n{}",
            stack.name,
            CHECK.replace("PORT", &port.to_string())
        ),
    );
    stack
}

fn state_of(stack: &Stack, id: u64) -> String {
    stack.env.state_of(id)
}

/// Deploys v1 and v2 (healthy), then v3-broken (unhealthy: put back), then rolls back
/// explicitly, with the same assertions for both runtimes.
fn deploy_unhealthy_and_rollback(stack: &Stack) {
    stack.run(&["deploy", "production", "v1", "--reason", "first"]).expect(0);
    assert!(stack.serves("v1"));
    stack.run(&["deploy", "production", "v2", "--reason", "second"]).expect(0);
    assert!(stack.serves("v2"));
    let status = stack.status();
    assert_eq!(status["runtime_version"], "v2", "{status}");
    assert_eq!(status["rollback_ready"], true, "{status}");
    assert_eq!(state_of(stack, 2), "good");

    // Unhealthy after the update: the deploy fails and v2 serves again, healthy.
    let run = stack.run(&["deploy", "production", "v3-broken", "--reason", "broken"]);
    run.expect(1);
    assert!(run.stderr.contains("unhealthy") || run.stderr.contains("did not"), "{}", run.stderr);
    assert!(stack.serves("v2"), "v2 does not serve after the failed deploy: {:?}", stack.serving());
    assert_eq!(state_of(stack, 3), "failed");
    let status = stack.status();
    assert_eq!(status["current"]["version"], "v2", "{status}");
    assert_eq!(status["runtime_version"], "v2", "{status}");

    // An explicit rollback to the last good release (v1), verified.
    stack.run(&["rollback", "production", "--reason", "explicit"]).expect(0);
    assert!(stack.serves("v1"));
    let status = stack.status();
    assert_eq!(status["current"]["version"], "v1", "{status}");
    assert_eq!(status["runtime_version"], "v1", "{status}");
    assert_eq!(state_of(stack, 2), "bad");
}

/// A missing image refuses the deploy (exit 4) before anything is recorded; an invalid
/// tag is a usage error (exit 2). Keep tags protect the newest `keep_releases` (2)
/// releases; a rollback target whose image is gone is refused and `status` says so; a
/// tag that moved since its release ran is pointed back at the recorded image.
fn missing_images_are_refused(stack: &Stack) {
    stack.run(&["deploy", "production", "v1", "--reason", "first"]).expect(0);
    let run = stack.run(&["deploy", "production", "v9", "--reason", "nope"]);
    run.expect(4);
    assert!(run.stderr.contains(":v9") && run.stderr.contains("not on the Docker engine"), "{}", run.stderr);
    let run = stack.run(&["deploy", "production", "v2;rm", "--reason", "nope"]);
    run.expect(2);
    assert!(run.stderr.contains("not a valid image tag"), "{}", run.stderr);
    assert_eq!(stack.env.history().as_array().map(Vec::len), Some(1), "a refused deploy recorded a release");
    assert!(stack.serves("v1"));

    // An image of this test's own (v4), so it can really be deleted later.
    let ctx = stack.env.path().join("v4");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("version"), "v4\n").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM lastgood-test/app:v1\nCOPY version /www/version\nLABEL lgt={}\n", stack.name),
    )
    .unwrap();
    let out = Command::new("docker")
        .args(["build", "-q", "--network", "none", "-t", &format!("{}:v4", stack.repo())])
        .arg(&ctx)
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    stack.run(&["deploy", "production", "v4", "--reason", "second"]).expect(0);
    assert!(stack.serves("v4"));
    stack.run(&["deploy", "production", "v2", "--reason", "third"]).expect(0);
    assert!(stack.serves("v2"));
    let id_of = |r: &str| docker(&["image", "inspect", "-f", "{{.Id}}", r]);
    let keep = |n: u32| format!("lastgood-keep/{}:r{n}-0", stack.name);
    assert_eq!(id_of(&keep(2)), id_of(&format!("{}:v4", stack.repo())), "release 2's image is not protected");
    assert_eq!(id_of(&keep(3)), id_of(&format!("{}:v2", stack.repo())));
    let old = Command::new("docker").args(["image", "inspect", &keep(1)]).output().unwrap();
    assert!(!old.status.success(), "release 1 is beyond keep_releases = 2 but still carries a keep tag");
    assert_eq!(stack.status()["rollback_ready"], true);

    // v4's image goes (its tags, and for swarm the exited task containers using it).
    if stack.swarm {
        let exited = docker(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=com.docker.swarm.service.name={}", stack.name),
            "--filter",
            "status=exited",
        ]);
        for id in exited.split_whitespace() {
            docker(&["rm", id]);
        }
    }
    docker(&["rmi", &format!("{}:v4", stack.repo()), &keep(2)]);
    let status = stack.status();
    assert_eq!(status["rollback_ready"], false, "{status}");
    assert_eq!(status["readiness"]["target"], 2, "{status}");
    assert!(status["readiness"]["reasons"][0].as_str().unwrap().contains("no longer on the Docker engine"), "{status}");
    let run = stack.run(&["rollback", "production", "--reason", "to a gone image"]);
    run.expect(4);
    assert!(run.stderr.contains("no longer on the Docker engine"), "{}", run.stderr);
    assert!(stack.serves("v2"));

    // v1's tag now names v2's image; a rollback to release 1 runs what release 1 ran.
    let v1 = id_of(&format!("{}:v1", stack.repo()));
    docker(&["tag", "lastgood-test/app:v2", &format!("{}:v1", stack.repo())]);
    stack.run(&["rollback", "production", "--to", "1", "--yes", "--reason", "v1 by digest"]).expect(0);
    assert!(stack.serves("v1"), "the moved tag was used instead of the recorded image: {:?}", stack.serving());
    assert_eq!(id_of(&format!("{}:v1", stack.repo())), v1);
}

/// Killed after the switch ran: `resume` finishes (v2 verified); killed again after
/// switching to v1, `resume --abort` brings v2 back.
fn killed_then_resumed(stack: &Stack) {
    stack.run(&["deploy", "production", "v1", "--reason", "first"]).expect(0);
    let run = stack.env.run_crashing("apply:switch", &["deploy", "production", "v2", "--reason", "crash"]);
    assert_eq!(run.code, None, "the failpoint did not kill lastgood: {}", run.stderr);
    stack.run(&["resume", "production"]).expect(0);
    assert!(stack.serves("v2"));
    assert_eq!(stack.status()["current"]["version"], "v2");
    assert_eq!(state_of(stack, 2), "good");

    let run = stack.env.run_crashing("apply:switch", &["deploy", "production", "v1", "--reason", "crash"]);
    assert!(stack.serves("v1"), "the switch did not run before the crash");
    assert_eq!(run.code, None, "the failpoint did not kill lastgood: {}", run.stderr);
    stack.run(&["resume", "production", "--abort"]).expect(0);
    assert!(stack.serves("v2"));
    let status = stack.status();
    assert_eq!(status["current"]["version"], "v2", "{status}");
    assert_eq!(status["runtime_version"], "v2", "{status}");
}

/// `--scope config`: the config file goes back and `restart` restarts the containers
/// (the code stays); the container sees the restored file only after the restart.
fn restart_only_rollback(stack: &Stack) {
    stack.run(&["deploy", "production", "v1", "--reason", "first"]).expect(0);
    assert_eq!(stack.env.get("/motd").map(|s| s.trim().to_owned()).as_deref(), Some("one"));
    // A new release with a new config file (written in place: the mount sees it).
    std::fs::write(stack.env.path().join("motd"), "two\n").unwrap();
    stack.run(&["deploy", "production", "v2", "--reason", "new motd"]).expect(0);
    assert!(stack.serves("v2"));
    assert_eq!(stack.env.get("/motd").map(|s| s.trim().to_owned()).as_deref(), Some("two"));
    stack.run(&["rollback", "production", "--scope", "config", "--reason", "motd was fine"]).expect(0);
    assert_eq!(std::fs::read_to_string(stack.env.path().join("motd")).unwrap(), "one\n");
    let start = Instant::now();
    while stack.env.get("/motd").map(|s| s.trim().to_owned()).as_deref() != Some("one") {
        assert!(start.elapsed() < Duration::from_secs(10), "the restored config is not served");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(stack.serving().as_deref(), Some("v2"), "a config rollback moved the code");
}

// ---- compose ------------------------------------------------------------------------

#[test]
fn compose_deploys_puts_back_an_unhealthy_release_and_rolls_back() {
    let stack = compose_stack("cunh", "");
    deploy_unhealthy_and_rollback(&stack);
}

#[test]
fn compose_refuses_missing_images_and_restores_moved_tags() {
    let stack = compose_stack("cmis", "");
    missing_images_are_refused(&stack);
}

#[test]
fn compose_killed_mid_switch_resumes() {
    let stack = compose_stack("ckil", "");
    killed_then_resumed(&stack);
}

#[test]
fn compose_restart_only_rollback() {
    let cli = compose_cli();
    let file = PathBuf::from("compose.yaml");
    let mut restart: Vec<String> = cli.clone();
    // The project name is filled in below; the file is relative to the config's folder.
    restart.extend(["--file".into(), file.display().to_string(), "--project-name".into(), "PROJECT".into()]);
    restart.push("restart".into());
    let placeholder = format!(
        "config_files = [\"motd\"]\nrestart = [{}]\n",
        restart.iter().map(|a| format!("\"{a}\"")).collect::<Vec<_>>().join(", ")
    );
    let stack = compose_stack("crst", &placeholder);
    let cfg = std::fs::read_to_string(stack.env.path().join("lastgood.toml")).unwrap();
    stack.env.write("lastgood.toml", &cfg.replace("PROJECT", &stack.name));
    restart_only_rollback(&stack);
}

#[test]
fn compose_config_errors_name_the_line() {
    engine_ready();
    let env = TestEnv::new(BIN);
    env.write(
        "lastgood.toml",
        "[environments.production]\nruntime = \"compose\"\nproject = \"Bad Name\"\ncompose_file = \"c.yaml\"\n",
    );
    let run = env.run(&["status", "production"]);
    run.expect(2);
    assert!(run.stderr.contains("lastgood.toml:3:") && run.stderr.contains("project"), "{}", run.stderr);
    env.write("lastgood.toml", "[environments.production]\nruntime = \"swarm\"\n");
    let run = env.run(&["status", "production"]);
    run.expect(2);
    assert!(run.stderr.contains("service: missing"), "{}", run.stderr);
}

// ---- swarm --------------------------------------------------------------------------

#[test]
fn swarm_deploys_puts_back_an_unhealthy_release_and_rolls_back() {
    let stack = swarm_stack("sunh", "");
    deploy_unhealthy_and_rollback(&stack);
}

/// The same with the service driven by lastgood's agent on an ssh host (the host shares
/// this machine's engine and swarm): the agent sets the image and watches the tasks.
#[test]
fn swarm_on_an_ssh_host_deploys_puts_back_an_unhealthy_release_and_rolls_back() {
    let fleet = lastgood_testkit::fleet::Fleet::start(1);
    let hosts = format!(
        "hosts = [\"{}\"]\nssh_config = \"{}\"\ndeploy_to = \"{}\"\n",
        fleet.url(0),
        fleet.ssh_config().display(),
        fleet.deploy_to().display()
    );
    let stack = swarm_stack("ssh", &hosts);
    deploy_unhealthy_and_rollback(&stack);
    // Each host says which version its engine runs; the text compares it with the ledger.
    let st = stack.status();
    assert_eq!(st["hosts"][0]["version"], "v1", "{st}");
    let text = stack.run(&["status", "production"]).expect(0).stdout.clone();
    assert!(text.contains("runs v1") && !text.contains("DIFFERS"), "{text}");
}

#[test]
fn swarm_refuses_missing_images() {
    let stack = swarm_stack("smis", "");
    missing_images_are_refused(&stack);
}

#[test]
fn swarm_killed_mid_switch_resumes() {
    let stack = swarm_stack("skil", "");
    killed_then_resumed(&stack);
}

#[test]
fn swarm_restart_only_rollback() {
    let stack = swarm_stack(
        "srst",
        "config_files = [\"motd\"]\nrestart = [\"docker\", \"service\", \"update\", \"--quiet\", \"--detach=false\", \"--force\", \"SERVICE\"]\n",
    );
    let cfg = std::fs::read_to_string(stack.env.path().join("lastgood.toml")).unwrap();
    stack.env.write("lastgood.toml", &cfg.replace("SERVICE", &stack.name));
    restart_only_rollback(&stack);
}

#[test]
fn compose_restart_brings_back_removed_containers_and_restarts_one_service() {
    let stack = compose_stack("crsv", "");
    stack.run(&["deploy", "production", "v1", "--reason", "first"]).expect(0);
    assert!(stack.serves("v1"));
    // The runbook's `docker rm` gone wrong: the containers are gone.
    let ids = docker(&["ps", "-aq", "--filter", &format!("label=com.docker.compose.project={}", stack.name)]);
    for id in ids.split_whitespace() {
        docker(&["rm", "-f", id]);
    }
    assert!(!stack.serves("v1"));
    let out = stack.run(&["restart", "production", "--reason", "containers gone", "--format", "json"]);
    out.expect(0);
    let r = out.json();
    assert_eq!((r["kind"].as_str(), r["outcome"].as_str()), (Some("restart"), Some("succeeded")), "{r}");
    assert!(r["steps"][0]["detail"].as_str().unwrap().contains("brought v1 back up"), "{r}");
    assert!(stack.serves("v1"));
    let out = stack.run(&["restart", "production", "--service", "web", "--reason", "config reload"]);
    out.expect(0);
    assert!(out.stderr.contains("restarted web"), "{}", out.stderr);
    let out = stack.run(&["restart", "production", "--service", "nope", "--reason", "x"]);
    out.expect(2);
    assert!(out.stderr.contains("no service `nope`"), "{}", out.stderr);
    assert_eq!(state_of(&stack, 1), "good", "a restart changes no release's state");
    assert_eq!(stack.status()["interrupted"], serde_json::json!(null));
}

/// The engine runs a healthcheck first an `interval` after the start (an hour here):
/// lastgood runs the service's own test in the container as soon as it runs, and a
/// pass counts as healthy, so the deploy does not wait for the engine.
#[test]
fn compose_runs_the_healthcheck_itself_without_waiting_for_the_engines_interval() {
    let stack = compose_stack("cprb", "");
    let file = stack.env.path().join("compose.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    stack.env.write("compose.yaml", &text.replace("interval: 500ms", "interval: 1h"));
    let run = stack.run(&["deploy", "production", "v1", "--reason", "first"]);
    run.expect(0);
    assert!(stack.serves("v1"));
    let ids = docker(&["ps", "-q", "--filter", &format!("label=com.docker.compose.project={}", stack.name)]);
    let id = ids.split_whitespace().next().expect("the web container runs");
    let health = docker(&["inspect", "--format", "{{.State.Health.Status}}", id]);
    assert_eq!(health.trim(), "starting", "the engine has not run its check yet");
}
