use std::process::Stdio;

use lastgood_testkit::Config;
use serde_json::json;

use crate::{deploy_ok, env_with_versions};

#[test]
fn a_lock_held_by_hand_stops_operations_until_unlocked() {
    let env = env_with_versions(2);
    deploy_ok(&env, "v1");
    env.test().args(["lock", "production", "--reason", "incident 42"]).run();
    env.test()
        .args(["deploy", "production", "v2"])
        .status(3)
        .stderr_has("locked by tester@")
        .stderr_has("incident 42")
        .run();
    env.test().args(["rollback", "production", "--to", "1", "--reason", "t"]).status(3).run();
    let st = env.status();
    assert_eq!(st["lock"]["reason"], "incident 42");
    assert_eq!(st["lock"]["expires_at"], json!(null));
    // A second lock by hand is refused too.
    env.test().args(["lock", "production", "--reason", "me too"]).status(3).run();
    env.test().args(["unlock", "production"]).run();
    deploy_ok(&env, "v2");
    env.test().args(["unlock", "production"]).run();
}

#[test]
fn a_running_operation_holds_the_lock_and_names_itself() {
    let env = env_with_versions(2);
    env.configure(&Config::new().build(["sleep", "2"]));
    deploy_ok(&env, "v1");
    let mut slow =
        env.cmd(&["deploy", "production", "v2"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    // Wait until it holds the lock.
    let mut held = false;
    for _ in 0..100 {
        if env.status()["lock"]["operation"].is_u64() {
            held = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(held, "the slow deploy never took the lock");
    env.test()
        .args(["rollback", "production", "--to", "1", "--reason", "t", "--no-preempt"])
        .status(3)
        .stderr_has("(operation ")
        .stderr_has("expires at")
        .run();
    env.test().args(["unlock", "production"]).status(3).run();
    assert!(slow.wait().unwrap().success());
    assert_eq!(env.serving().as_deref(), Some("v2"));
}

#[test]
fn a_dead_holders_lock_is_taken_over_and_recorded() {
    let env = env_with_versions(2);
    deploy_ok(&env, "v1");
    let crashed = env.run_crashing("locked", &["deploy", "production", "v2"]);
    assert_eq!(crashed.signal, Some(9), "{crashed:?}");
    let st = env.status();
    assert_eq!(st["lock_holder_gone"], true);
    assert_eq!(st["interrupted"], json!(null));
    env.test().args(["deploy", "production", "v2"]).stderr_has("took over the lock").run();
    assert!(env.ledger_sql("SELECT event FROM audit_events").contains("lock.takeover"));
    env.test().args(["audit", "verify"]).run();
}

/// Eight processes race for one environment, many times: exactly one wins each round.
#[test]
fn eight_processes_racing_for_the_lock_have_exactly_one_winner() {
    let env = env_with_versions(1);
    for round in 0..15 {
        let children: Vec<_> = (0..8)
            .map(|i| {
                env.cmd(&["lock", "production", "--reason", &format!("racer {i}")])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let codes: Vec<i32> =
            children.into_iter().map(|c| c.wait_with_output().unwrap().status.code().unwrap()).collect();
        assert_eq!(codes.iter().filter(|&&c| c == 0).count(), 1, "round {round}: {codes:?}");
        assert_eq!(codes.iter().filter(|&&c| c == 3).count(), 7, "round {round}: {codes:?}");
        env.test().args(["unlock", "production"]).run();
    }
}

#[test]
fn eight_racing_deploys_have_exactly_one_winner() {
    let env = env_with_versions(3);
    env.configure(&Config::new().build(["sleep", "1"]));
    for (round, version) in ["v1", "v2", "v3"].iter().enumerate() {
        let children: Vec<_> = (0..8)
            .map(|_| {
                env.cmd(&["deploy", "production", version]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap()
            })
            .collect();
        let codes: Vec<i32> =
            children.into_iter().map(|c| c.wait_with_output().unwrap().status.code().unwrap()).collect();
        assert_eq!(codes.iter().filter(|&&c| c == 0).count(), 1, "round {round}: {codes:?}");
        assert_eq!(codes.iter().filter(|&&c| c == 3).count(), 7, "round {round}: {codes:?}");
        assert_eq!(env.serving().as_deref(), Some(*version));
    }
    assert_eq!(env.history().as_array().unwrap().len(), 3);
}

/// Another machine's holder cannot be seen dying: its lock is taken over only when
/// its lease expires, and the heartbeat keeps a live holder's lease from expiring.
#[test]
fn a_holder_on_another_machine_keeps_its_lease_by_heartbeat_and_loses_it_when_dead() {
    let env = env_with_versions(3);
    env.configure(&Config::new().key("lease", "3s").build(["sleep", "5"]));
    deploy_ok(&env, "v1");
    // Machine a: a deploy whose build outlasts the lease; the heartbeat must renew it.
    let mut a = env.cmd(&["deploy", "production", "v2"]).env("LASTGOOD_HOSTNAME", "machine-a").spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(4500));
    env.test()
        .args(["rollback", "production", "--to", "1", "--reason", "t", "--no-preempt"])
        .env("LASTGOOD_HOSTNAME", "machine-b")
        .status(3)
        .run();
    assert!(a.wait().unwrap().success());

    // Machine a dies holding the lock: machine b must wait out the lease.
    let crashed = env
        .cmd(&["deploy", "production", "v3"])
        .env("LASTGOOD_HOSTNAME", "machine-a")
        .env("LASTGOOD_FAILPOINT", "intent:build")
        .output()
        .unwrap();
    assert!(crashed.status.code().is_none());
    // Before the lease expires.
    env.test().args(["resume", "production"]).env("LASTGOOD_HOSTNAME", "machine-b").status(3).run();
    // Expiry is kept in whole seconds and errs late: wait lease + 1 s.
    std::thread::sleep(std::time::Duration::from_millis(4200));
    env.test().args(["resume", "production"]).env("LASTGOOD_HOSTNAME", "machine-b").run();
    assert_eq!(env.serving().as_deref(), Some("v3"));
}

/// A holder paused past its lease wakes up fenced: the ledger refuses its writes, so
/// it cannot undo what the operator who took over did.
#[test]
fn a_paused_holder_whose_lease_was_taken_over_is_fenced_out() {
    let env = env_with_versions(2);
    env.configure(&Config::new().key("lease", "3s").build(["sleep", "1"]));
    deploy_ok(&env, "v1");
    let a = env
        .cmd(&["deploy", "production", "v2"])
        .env("LASTGOOD_HOSTNAME", "machine-a")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = a.id().to_string();
    // Pause it once it holds the lock for its operation (its build sleeps a second).
    for _ in 0..200 {
        if env.status()["lock"]["operation"].is_u64() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // Pause it outside a ledger write: a process stopped inside a SQLite write
    // transaction (its heartbeat writes every second) holds the file's write lock until
    // it runs again, and no one can write at all; fencing is about what others CAN write.
    let writable = || env.ledger_writable();
    let mut paused = false;
    for _ in 0..50 {
        std::process::Command::new("kill").args(["-STOP", &pid]).status().unwrap();
        if writable() {
            paused = true;
            break;
        }
        std::process::Command::new("kill").args(["-CONT", &pid]).status().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(37));
    }
    assert!(paused, "could not pause the holder outside a ledger write");
    // Expiry is kept in whole seconds and errs late: wait the lease plus 1.5 s.
    std::thread::sleep(std::time::Duration::from_millis(4500));
    env.test().args(["resume", "production", "--abort"]).env("LASTGOOD_HOSTNAME", "machine-b").run();
    assert_eq!(env.serving().as_deref(), Some("v1"));
    std::process::Command::new("kill").args(["-CONT", &pid]).status().unwrap();
    let a = a.wait_with_output().unwrap();
    assert_eq!(a.status.code(), Some(5), "{}", String::from_utf8_lossy(&a.stderr));
    assert!(String::from_utf8_lossy(&a.stderr).contains("lost its lock"), "{}", String::from_utf8_lossy(&a.stderr));
    // Nothing the woken holder did reached the environment.
    assert_eq!(env.serving().as_deref(), Some("v1"));
    assert_eq!(env.current_link(), Some(1));
    assert_eq!(env.state_of(2), "failed");
    assert_eq!(env.status()["lock"], json!(null));
}
