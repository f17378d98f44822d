//! Fleet acknowledgement: with `--await-slaves`, a master command knows
//! whether the fleet followed. Real slave processes (`slave-update
//! --repeat`) on the directory backend and on S3 (moto); one of them cannot
//! run the new release.

use std::process::{Child, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::common::{wait_until, write_file, Env};
use crate::remote::{backends, master_on, publish, Backend};

/// A `slave-update --repeat 0.3` process, killed when dropped.
pub(crate) struct Follower(Child);

impl Follower {
    pub(crate) fn start(slave: &Env) -> Follower {
        Follower::every(slave, "0.3")
    }

    /// A follower whose periodic round comes every `period`.
    pub(crate) fn every(slave: &Env, period: &str) -> Follower {
        let mut run = slave.c2(&["slave-update", "--repeat", period]);
        let out = std::fs::File::create(slave.path("follower.out")).unwrap();
        let err = std::fs::File::create(slave.path("follower.err")).unwrap();
        Follower(
            run.cmd
                .stdout(Stdio::from(out))
                .stderr(Stdio::from(err))
                .spawn()
                .unwrap(),
        )
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A master with two following slaves, web1 and web2; web2 cannot run
/// `green.zip` (its start command fails there). Both have reported.
fn fleet(backend: &Backend) -> (Env, Env, Env, Vec<Follower>) {
    let master = master_on(backend);
    let (web1, web2) = (master.slave("web1"), master.slave("web2"));
    write_file(&web2.path("cannot-run"), "");
    publish(&master, backend, master.release("blue.zip"));
    publish(
        &master,
        backend,
        master
            .release("green.zip")
            .set("startCommand", json!("test ! -e ../../cannot-run")),
    );
    let followers = vec![Follower::start(&web1), Follower::start(&web2)];
    wait_until(Duration::from_secs(30), "both slaves to report", || {
        master.status_json()["slaves"]
            .as_array()
            .is_some_and(|s| s.len() == 2)
    });
    (master, web1, web2, followers)
}

fn connection(env: &Env) -> serde_json::Value {
    env.state()["connections"]["main"].clone()
}

#[test]
fn start_and_connect_await_the_fleet_and_refuse_what_a_slave_cannot_run() {
    for backend in backends() {
        let (master, web1, web2, _followers) = fleet(&backend);
        let out = master
            .c2(&[
                "start",
                "blue.zip",
                "--await-slaves",
                "--min-slaves",
                "2",
                "--timeout",
                "60s",
            ])
            .ok();
        assert!(out.stderr.contains("2/2 slaves in sync"), "{out}");
        master
            .c2(&[
                "connect",
                "main",
                "blue",
                "--await-slaves",
                "--timeout",
                "60s",
            ])
            .ok();
        assert_eq!(
            (connection(&web1), connection(&web2)),
            (json!("blue"), json!("blue"))
        );

        // web2 answers with an error as soon as it tried: no need to wait
        // for the time-out.
        let out = master
            .c2(&["start", "green.zip", "--await-slaves", "--timeout", "60s"])
            .fails_with("1 of 2 slaves failed to apply the change: web2 (error: ");
        assert!(!out.error_line().contains("web1"), "{out}");

        // connect refuses to route to a deploy web2 does not run, and
        // changes nothing.
        master
            .c2(&["connect", "main", "green", "--await-slaves"])
            .fails_with("not every live slave runs deploy green: web2 (error: ");
        assert_eq!(
            master.status_json()["master"]["connections"],
            json!({"main": "blue"})
        );
        assert_eq!(
            (connection(&web1), connection(&web2)),
            (json!("blue"), json!("blue"))
        );

        // --force switches the others; web2 cannot follow and is named
        // (10 s leave web1 time to follow on a loaded machine).
        let out = master
            .c2(&["connect", "main", "green", "--await-slaves", "--force", "--timeout", "10s"])
            .fails_with("timed out after 10s waiting for the fleet (the master change stays written): web2 (error: ");
        assert!(!out.error_line().contains("web1"), "{out}");
        assert_eq!(connection(&web1), json!("green"));
        assert_eq!(connection(&web2), json!("blue"));
    }
}

#[test]
fn a_slave_that_stops_reporting_makes_the_wait_time_out_naming_it() {
    let backend = Backend::Dir;
    let (master, _web1, _web2, mut followers) = fleet(&backend);
    master
        .c2(&["start", "blue.zip", "--await-slaves", "--timeout", "60s"])
        .ok();
    drop(followers.remove(0)); // web1 is killed
    let out = master
        .c2(&["stop", "blue", "--await-slaves", "--timeout", "10s"])
        .fails_with("timed out after 10s waiting for the fleet");
    assert!(out.error_line().contains("web1 (not yet)"), "{out}");
    assert!(!out.error_line().contains("web2"), "{out}");
}

#[test]
fn bad_await_options_change_nothing() {
    let (master, _web1, _web2, _followers) = fleet(&Backend::Dir);
    let before = master.status_json()["master"].clone();
    let out = master
        .c2(&["start", "blue.zip", "--await-slaves", "--timeout", "soon"])
        .output();
    assert_eq!(out.code, Some(2), "{out}");
    master
        .c2(&["start", "blue.zip", "--await-slaves", "--min-slaves", "3"])
        .fails_with("2 live slave(s), fewer than --min-slaves 3: nothing changed");
    let out = master
        .c2(&["start", "blue.zip", "--timeout", "5s"])
        .output();
    assert_eq!(out.code, Some(2), "--timeout needs --await-slaves: {out}");
    assert_eq!(master.status_json()["master"], before);

    let mut local = Env::new();
    local.proxy(&[("main", "main.example")]);
    local.release("blue.zip").publish();
    local
        .c2(&["start", "blue.zip", "--await-slaves"])
        .fails_with("--await-slaves needs remote state");
    assert!(!local.exists("deploys/blue"));
}

/// A deploy that fails its health gate on a slave is retried every round,
/// but no longer holds back changes that do not depend on it: the endpoint
/// switches to another deploy, and is disconnected, on that slave too,
/// while its report still names the failure.
#[test]
fn a_deploy_failing_on_a_slave_does_not_hold_back_other_endpoint_changes() {
    let backend = Backend::Dir;
    let master = master_on(&backend);
    let web1 = master.slave("web1");
    for name in ["good1.zip", "good2.zip"] {
        publish(&master, &backend, master.http_release(name));
    }
    publish(
        &master,
        &backend,
        master
            .http_release("bad.zip")
            .file("up", "500 database unreachable")
            .set("healthCheck", json!({"path": "/up", "timeoutSeconds": 1})),
    );
    let _follower = Follower::start(&web1);
    wait_until(Duration::from_secs(30), "web1 to report", || {
        master.slave_report("web1").is_some()
    });
    master.c2(&["start", "good1.zip", "--await-slaves"]).ok();
    master
        .c2(&["connect", "main", "good1", "--await-slaves"])
        .ok();
    assert_eq!(web1.get("main.example", "/").body, "good1 /");

    master
        .c2(&["start", "bad.zip", "--await-slaves"])
        .fails_with("1 of 1 slaves failed to apply the change: web1 (error: deploy bad: health check /up failed");
    master.c2(&["start", "good2.zip"]).ok();
    master
        .c2(&[
            "connect",
            "main",
            "good2",
            "--force",
            "--await-slaves",
            "--timeout",
            "60s",
        ])
        .ok();
    assert_eq!(web1.get("main.example", "/").body, "good2 /");
    let report = master.slave_report("web1").unwrap();
    let error = report["state"]["status"]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(
        error.contains("deploy bad: health check /up failed"),
        "{report}"
    );

    master
        .c2(&["disconnect", "main", "--await-slaves", "--timeout", "60s"])
        .ok();
    assert_eq!(web1.get("main.example", "/").status, 503);
    assert!(web1.state()["deploys"]["bad"].is_null());
}

/// An error report written a moment before a start is not that start's
/// answer: the start waits for the slave to try the change (here the
/// report is dated at the start of the very second the start begins, which
/// once counted as "after" it).
#[test]
fn an_error_reported_just_before_a_start_is_not_its_answer() {
    let backend = Backend::Dir;
    let master = master_on(&backend);
    let web1 = master.slave("web1");
    publish(&master, &backend, master.http_release("good.zip"));
    publish(
        &master,
        &backend,
        master
            .release("bad.zip")
            .set("startCommand", json!("exit 3")),
    );
    master.c2(&["start", "bad.zip"]).ok();
    web1.c2(&["slave-update"])
        .fails_with("startCommand of bad.zip failed");
    master.c2(&["stop", "bad"]).ok();

    let report = master.path("shared/slaves/web1/state.json");
    wait_until(Duration::from_secs(5), "the start of a second", || {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        now.subsec_millis() < 300
    });
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let second = std::time::UNIX_EPOCH + Duration::from_secs(now.as_secs());
    std::fs::File::options()
        .write(true)
        .open(&report)
        .unwrap()
        .set_modified(second)
        .unwrap();
    let start = master
        .c2(&["start", "good.zip", "--await-slaves", "--timeout", "60s"])
        .spawn();
    wait_until(Duration::from_secs(30), "the master to have good", || {
        master.status_json()["master"]["deploys"]["good"].is_object()
    });
    web1.c2(&["slave-update"]).ok();
    let out = start.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("1/1 slaves in sync"), "{stderr}");
}
