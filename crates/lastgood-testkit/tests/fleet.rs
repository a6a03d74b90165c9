//! The ssh test fleet works: separate files per host behind one path, host down and
//! back, host key trouble, and nothing left running afterwards. The docker-compose app
//! the tests deploy to fleet hosts works by hand ([`compose_app`]).

use std::path::{Path, PathBuf};

use lastgood_testkit::fleet::{Fleet, pids_in_namespace};

#[path = "fleet/compose_app.rs"]
mod compose_app;

#[track_caller]
fn ok(fleet: &Fleet, i: usize, cmd: &str) -> String {
    let out = fleet.ssh(i, cmd);
    assert!(out.status.success(), "ssh host {i} `{cmd}`: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[track_caller]
fn fails(fleet: &Fleet, i: usize, cmd: &str) -> String {
    let out = fleet.ssh(i, cmd);
    assert!(!out.status.success(), "ssh host {i} `{cmd}` should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rsplit(')').next().and_then(|r| r.split_whitespace().next()) != Some("Z"))
        .unwrap_or(false)
}

#[test]
fn fleet_hosts_are_separate_survive_restarts_and_leave_nothing_behind() {
    let fleet = Fleet::start(3);
    let d = fleet.deploy_to();
    let d = d.display();
    assert_eq!(fleet.hosts().len(), 3);
    let addrs: std::collections::HashSet<_> = fleet.hosts().iter().map(|h| h.addr.clone()).collect();
    assert_eq!(addrs.len(), 3, "addresses are unique");
    for (i, h) in fleet.hosts().iter().enumerate() {
        assert!(h.addr.starts_with("127."), "loopback only: {}", h.addr);
        assert_eq!(fleet.url(i), format!("ssh://root@{}:{}", h.addr, h.port));
        let pinned = std::fs::read_to_string(fleet.known_hosts()).unwrap();
        assert!(pinned.contains(&format!("[{}]:{} ssh-ed25519 ", h.addr, h.port)), "{pinned}");
    }
    assert_eq!(fleet.urls().len(), 3);

    // Each host writes its own file under the same path.
    for i in 0..3 {
        ok(
            &fleet,
            i,
            &format!("cd {d} && echo host{i} > who && mkdir -p releases/{i} && ln -sfn releases/{i} current"),
        );
    }
    for i in 0..3 {
        assert_eq!(std::fs::read_to_string(fleet.file(i, "who")).unwrap(), format!("host{i}\n"));
        assert_eq!(fleet.read_link(i, "current"), Some(PathBuf::from(format!("releases/{i}"))));
        assert_eq!(ok(&fleet, i, &format!("cat {d}/who")), format!("host{i}"));
    }
    assert!(!fleet.deploy_to().join("who").exists(), "the host's files are not in the test's own view");
    assert_eq!(fleet.read_link(0, "missing"), None);

    // An app started with setsid on host 1 outlives the session and the host's sshd.
    ok(&fleet, 1, &format!("cd {d} && setsid -f sh -c 'echo $$ > app.pid; exec sleep 600' </dev/null >/dev/null 2>&1"));
    let app_file = fleet.file(1, "app.pid");
    let mut app = None;
    for _ in 0..200 {
        app = std::fs::read_to_string(&app_file).ok().and_then(|s| s.trim().parse::<u32>().ok());
        if app.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let app = app.expect("the app wrote its pid");
    assert!(
        alive(app),
        "app {app}: {}",
        String::from_utf8_lossy(
            &std::process::Command::new("ps").args(["-eo", "pid,ppid,sid,stat,cmd"]).output().unwrap().stdout
        )
    );

    // Host 1 down: ssh fails, the others still answer, files and the app stay.
    fleet.stop(1);
    fails(&fleet, 1, "true");
    ok(&fleet, 0, "true");
    ok(&fleet, 2, "true");
    assert!(alive(app), "stop keeps the apps running");
    assert_eq!(std::fs::read_to_string(fleet.file(1, "who")).unwrap(), "host1\n");

    // Host 1 back: same address, port, key and files.
    fleet.start_again(1);
    assert_eq!(ok(&fleet, 1, &format!("cat {d}/who")), "host1");

    // Key mismatch, then unknown host; trust undoes both.
    fleet.wrong_key(2);
    let err = fails(&fleet, 2, "true");
    assert!(
        err.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") || err.contains("Host key verification failed"),
        "{err}"
    );
    ok(&fleet, 0, "true");
    fleet.trust(2);
    ok(&fleet, 2, "true");
    fleet.forget(0);
    let err = fails(&fleet, 0, "true");
    assert!(err.contains("Host key verification failed") || err.contains("No ED25519 host key is known"), "{err}");
    fleet.trust(0);
    ok(&fleet, 0, "true");

    // Dropped: nothing is left in any host's namespace, and the mount point is gone.
    let namespaces: Vec<String> = fleet.hosts().iter().map(|h| h.namespace().to_owned()).collect();
    let holders: Vec<u32> = fleet.hosts().iter().map(|h| h.holder_pid()).collect();
    let deploy_to = fleet.deploy_to();
    let dir = fleet.dir().to_owned();
    assert!(namespaces.iter().all(|ns| !pids_in_namespace(ns).is_empty()));
    drop(fleet);
    for ns in &namespaces {
        assert_eq!(pids_in_namespace(ns), Vec::<u32>::new(), "processes left in {ns}");
    }
    for pid in holders.into_iter().chain([app]) {
        assert!(!alive(pid), "pid {pid} still runs");
    }
    assert!(!Path::new(&deploy_to).exists());
    assert!(!dir.exists());
}

#[test]
fn a_panicking_test_leaves_nothing_behind() {
    let mut seen = None;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let fleet = Fleet::start(1);
        let d = fleet.deploy_to();
        ok(&fleet, 0, &format!("cd {} && setsid -f sleep 600 </dev/null >/dev/null 2>&1", d.display()));
        seen = Some(fleet.hosts()[0].namespace().to_owned());
        panic!("the test fails here");
    }));
    assert!(result.is_err());
    let ns = seen.expect("the fleet started");
    assert_eq!(pids_in_namespace(&ns), Vec::<u32>::new(), "processes left in {ns}");
}
