//! Remote state: commands edit a master state in S3 (moto) or a
//! shared directory; slaves, run as separate real processes, converge to it
//! and report back.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::common::etcd::{self, Cluster};
use crate::common::{self, wait_until, Env, Moto, ReleaseBuilder};
use serde_json::{json, Value};

/// The three backends: a moto bucket, a directory, and an etcd cluster.
pub(crate) enum Backend {
    S3(&'static Moto),
    Dir,
    Etcd(&'static Cluster),
}

/// A master Env on `backend` with one endpoint, and its remote location.
/// Releases are in S3 with an S3 master, else in a local directory.
pub(crate) fn master_on(backend: &Backend) -> Env {
    let mut env = Env::new();
    env.proxy(&[("main", "main.example")]);
    let location = match backend {
        Backend::S3(moto) => {
            let bucket = Moto::unique_bucket("remote");
            env.use_s3(moto, &bucket, "releases");
            moto.create_bucket(&bucket);
            format!("s3://{bucket}/camus2")
        }
        Backend::Dir => env.path("shared").to_string_lossy().to_string(),
        Backend::Etcd(cluster) => cluster.url(&etcd::unique_prefix()),
    };
    env.remote(&location);
    env
}

/// Puts `release` in `master`'s release store.
pub(crate) fn publish(master: &Env, backend: &Backend, release: ReleaseBuilder) {
    match backend {
        Backend::S3(moto) => {
            let url = master.config()["releases"]["s3"].as_str().unwrap();
            let (bucket, prefix) = url.strip_prefix("s3://").unwrap().split_once('/').unwrap();
            release.publish_s3(moto, bucket, prefix);
        }
        Backend::Dir | Backend::Etcd(_) => release.publish(),
    }
}

pub(crate) fn publish_http(master: &Env, backend: &Backend, name: &str) {
    publish(master, backend, master.http_release(name));
}

/// The etcd key of `name` in `master`'s remote state.
pub(crate) fn etcd_key(master: &Env, name: &str) -> String {
    let url = master.config()["deployMode"]["proxy"]["remoteStateS3"]["just"]
        .as_str()
        .unwrap();
    let (_, prefix) = url.split_once("://").unwrap().1.split_once('/').unwrap();
    format!("{prefix}/{name}")
}

pub(crate) fn backends() -> Vec<Backend> {
    vec![
        Backend::Dir,
        Backend::S3(Moto::shared()),
        Backend::Etcd(Cluster::shared()),
    ]
}

#[test]
fn master_commands_edit_only_the_master_and_slaves_converge() {
    for backend in backends() {
        let master = master_on(&backend);
        publish_http(&master, &backend, "blue.zip");
        let slave = master.slave("web1");

        master.c2(&["start", "blue.zip"]).ok();
        master.c2(&["connect", "main", "blue"]).ok();
        // Nothing ran on the master machine: it only edited the master state.
        assert!(!master.exists("deploys/blue"));
        let status = master.status_json();
        assert_eq!(status["master"]["connections"], json!({"main": "blue"}));

        slave.c2(&["slave-update"]).ok();
        assert_eq!(slave.get("main.example", "/").body, "blue /");
        let report = master.slave_report("web1").expect("no report from web1");
        assert_eq!(report["state"]["status"], json!("ok"));
        assert_eq!(report["state"]["ipAddress"], json!("127.0.0.1"));
        assert_eq!(report["state"]["state"], status["master"]);
        assert_eq!(report["inSync"], json!(true));

        master.c2(&["disconnect", "main"]).ok();
        master.c2(&["stop", "blue"]).ok();
        let report = master.slave_report("web1").unwrap();
        assert_eq!(report["inSync"], json!(false), "the master moved on");
        slave.c2(&["slave-update"]).ok();
        assert!(!slave.exists("deploys/blue"), "the deploy was not removed");
        assert_eq!(slave.get("main.example", "/").status, 503);
        assert_eq!(master.slave_report("web1").unwrap()["inSync"], json!(true));
    }
}

#[test]
fn the_master_rules_apply_to_the_master_state() {
    for backend in backends() {
        let master = master_on(&backend);
        publish_http(&master, &backend, "blue.zip");
        master.c2(&["start", "blue.zip"]).ok();
        master.c2(&["connect", "main", "blue"]).ok();
        master
            .c2(&["stop", "blue"])
            .fails_with("deploy is connected to main");
        master
            .c2(&["connect", "nope", "blue"])
            .fails_with("no endpoint called nope");
        master
            .c2(&["start", "missing.zip"])
            .fails_with("Release missing.zip does not exist");
        assert_eq!(
            master.status_json()["master"]["deploys"]
                .as_object()
                .unwrap()
                .len(),
            1
        );
    }
}

#[test]
fn twenty_concurrent_master_commands_lose_no_update() {
    for backend in backends() {
        let mut master = master_on(&backend);
        master.proxy_set("dynamicPortRange", json!({"v1": 30000, "v2": 30100}));
        publish_http(&master, &backend, "app.zip");
        let runs: Vec<_> = (0..20)
            .map(|n| master.c2(&["start", "app.zip", &format!("app-{n}")]))
            .map(|run| std::thread::spawn(move || run.output()))
            .collect();
        for r in runs {
            let out = r.join().unwrap();
            assert_eq!(out.code, Some(0), "{out}");
        }
        let deploys = master.status_json()["master"]["deploys"].clone();
        let labels: Vec<&String> = deploys.as_object().unwrap().keys().collect();
        assert_eq!(labels.len(), 20, "lost updates: {deploys}");
        let ports: std::collections::BTreeSet<u64> = deploys
            .as_object()
            .unwrap()
            .values()
            .map(|d| d["port"].as_u64().unwrap())
            .collect();
        assert_eq!(ports.len(), 20, "two deploys share a port: {deploys}");
    }
}

/// A `slave-update --repeat 1` process that is stopped when dropped.
struct Follower {
    child: Child,
    log: std::path::PathBuf,
}

impl Follower {
    fn start(slave: &Env, extra_env: &[(&str, &str)]) -> Follower {
        let log = slave.path("follower.out");
        let mut run = slave.c2(&["slave-update", "--repeat", "1"]);
        for (k, v) in extra_env {
            run.cmd.env(k, v);
        }
        let child = run
            .cmd
            .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
            .stderr(Stdio::from(
                std::fs::File::create(slave.path("follower.err")).unwrap(),
            ))
            .spawn()
            .unwrap();
        Follower { child, log }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then the exit code.
    fn terminate(mut self) -> Option<i32> {
        common::terminate(self.child.id());
        let status = self.child.wait().unwrap();
        status.code()
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_slave_whose_release_fails_once_reports_the_error_and_converges_next_round() {
    let master = master_on(&Backend::Dir);
    // The start command fails the first time it runs on a machine.
    master
        .http_release("flaky.zip")
        .set(
            "startCommand",
            json!("if [ ! -e ../tried ]; then touch ../tried; echo boom; exit 5; fi; python3 serve.py $(cat port) flaky"),
        )
        .publish();
    master.c2(&["start", "flaky.zip"]).ok();
    master.c2(&["connect", "main", "flaky"]).ok();
    let slave = master.slave("web1");

    // Once: the round fails, the report says why, the local state is true.
    slave
        .c2(&["slave-update"])
        .fails_with("startCommand of flaky.zip failed with exit code 5");
    let report = master.slave_report("web1").unwrap();
    let error = report["state"]["status"]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(error.contains("exit code 5"), "{report}");
    assert_eq!(report["state"]["state"]["deploys"], json!({}));
    assert!(!slave.exists("deploys/flaky"));

    // Repeating: the next round converges.
    let follower = Follower::start(&slave, &[]);
    wait_until(Duration::from_secs(30), "the slave to converge", || {
        master
            .slave_report("web1")
            .is_some_and(|r| r["inSync"] == json!(true) && r["state"]["status"] == json!("ok"))
    });
    assert_eq!(slave.get("main.example", "/").body, "flaky /");
    assert_eq!(follower.terminate(), Some(0), "SIGTERM must exit 0");
}

#[test]
fn a_slave_started_while_s3_is_down_keeps_looping_and_converges_once_it_is_back() {
    let moto = Moto::start();
    let port = moto.port;
    let bucket = Moto::unique_bucket("downtime");
    let master = Env::s3_master(&moto, &bucket);
    let slave = master.slave("web1");
    drop(moto);

    let follower = Follower::start(&slave, &[]);
    wait_until(
        Duration::from_secs(30),
        "a failed round to be logged",
        || follower.output().contains("Exception: "),
    );
    assert!(follower.output().contains("(slave state not updated)"));

    // The server comes back (empty, as a restarted moto is), and an
    // operator writes a master state.
    let moto = Moto::start_on(port);
    moto.create_bucket(&bucket);
    master
        .http_release("blue.zip")
        .publish_s3(&moto, &bucket, "releases");
    master.c2(&["start", "blue.zip"]).ok();
    wait_until(
        Duration::from_secs(30),
        "the slave to converge after the outage",
        || {
            master
                .slave_report("web1")
                .is_some_and(|r| r["inSync"] == json!(true))
        },
    );
    assert!(slave.exists("deploys/blue"));
    assert_eq!(follower.terminate(), Some(0));
}

#[test]
fn status_shows_slaves_as_text() {
    let master = master_on(&Backend::Dir);
    master.http_release("blue.zip").publish();
    master.c2(&["start", "blue.zip"]).ok();
    let slave = master.slave("web1");
    slave.c2(&["slave-update"]).ok();
    let out = master.c2(&["status", "--show-slaves"]).ok().stdout;
    let lines: Vec<&str> = out.lines().collect();
    let at = lines.iter().position(|l| l.contains("SLAVES")).unwrap();
    assert_eq!(
        lines[at],
        "---------------------SLAVES-------------------------------------------"
    );
    assert_eq!(lines[at + 1], "Slave: web1");
    assert_eq!(lines[at + 2], "Slave IP: 127.0.0.1");
    assert!(lines[at + 3].starts_with("Slave Hostname: "));
    assert_eq!(lines[at + 4], "Status: OK");
    assert!(lines[at + 5].starts_with("Updated: 20"));
    assert_eq!(lines[at + 6], "In sync with master: yes");
    assert_eq!(lines[at + 7], "Endpoints:");
    assert_eq!(*lines.last().unwrap(), "-".repeat(70));
}

#[test]
fn slave_flush_removes_reports_older_than_five_minutes() {
    let master = master_on(&Backend::Dir);
    for label in ["old", "fresh"] {
        master.slave(label).c2(&["slave-update"]).ok();
    }
    let old = master.path("shared/slaves/old/state.json");
    let six_minutes_ago = std::time::SystemTime::now() - Duration::from_secs(360);
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(six_minutes_ago)
        .unwrap();
    let out = master.c2(&["slave-flush"]).ok();
    assert!(out.stdout.contains("Flushing slave old"), "{out}");
    assert_eq!(slave_labels(&master), [json!("fresh")]);
}

/// The labels of the slaves `status --show-slaves` lists.
fn slave_labels(master: &Env) -> Vec<Value> {
    master.status_json()["slaves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["label"].clone())
        .collect()
}

/// Seconds since slave `label`'s report was written, from `status`.
fn report_age(master: &Env, label: &str) -> Option<Duration> {
    let report = master.slave_report(label)?;
    let written = humantime::parse_rfc3339(report["lastModified"].as_str()?).ok()?;
    std::time::SystemTime::now().duration_since(written).ok()
}

#[test]
fn slave_flush_older_than_takes_any_age() {
    // On etcd reports expire by themselves (etcd::…_flush_has_nothing_to_do).
    for backend in [Backend::Dir, Backend::S3(Moto::shared())] {
        let master = master_on(&backend);
        master.slave("old").c2(&["slave-update"]).ok();
        // A report's time has whole seconds in S3: wait until it is surely
        // more than 3 s old, then write a fresh one beside it.
        wait_until(Duration::from_secs(30), "old's report to age", || {
            report_age(&master, "old").is_some_and(|age| age > Duration::from_secs(4))
        });
        master.slave("fresh").c2(&["slave-update"]).ok();
        let out = master.c2(&["slave-flush", "--older-than", "3s"]).ok();
        assert!(out.stdout.contains("Flushing slave old"), "{out}");
        assert!(!out.stdout.contains("fresh"), "{out}");
        assert_eq!(slave_labels(&master), [json!("fresh")]);
        // The default is still 5 minutes: nothing more goes.
        let out = master.c2(&["slave-flush"]).ok();
        assert!(!out.stdout.contains("Flushing"), "{out}");
        assert!(master.slave_report("fresh").is_some());
    }
    let out = Env::new()
        .c2(&["slave-flush", "--older-than", "soon"])
        .output();
    assert_eq!(out.code, Some(2), "{out}");
    assert!(
        out.stderr
            .starts_with("error: invalid value 'soon' for '--older-than <DURATION>'"),
        "{out}"
    );
}

#[test]
fn a_slave_run_once_writes_its_report_only_when_it_changed_or_is_a_minute_old() {
    for backend in backends() {
        let master = master_on(&backend);
        publish_http(&master, &backend, "blue.zip");
        let slave = master.slave("web1");
        // How many times the report has been written so far.
        let writes = || -> usize {
            match &backend {
                Backend::Dir => {
                    // Every write replaces the file: count distinct inodes.
                    use std::os::unix::fs::MetadataExt;
                    let path = master.path("shared/slaves/web1/state.json");
                    std::fs::metadata(path)
                        .map(|m| m.ino() as usize)
                        .unwrap_or(0)
                }
                Backend::S3(moto) => {
                    let url = master.config()["releases"]["s3"].as_str().unwrap();
                    let bucket = url
                        .strip_prefix("s3://")
                        .unwrap()
                        .split('/')
                        .next()
                        .unwrap();
                    let log = moto.log();
                    let key = format!("PUT /{bucket}/camus2/slaves/web1/state.json");
                    moto_requests(&log, 0)
                        .iter()
                        .filter(|r| r.starts_with(&key))
                        .count()
                }
                Backend::Etcd(cluster) => {
                    cluster.mod_revision(&etcd_key(&master, "slaves/web1/state.json")) as usize
                }
            }
        };
        slave.c2(&["slave-update"]).ok();
        let first = writes();
        slave.c2(&["slave-update"]).ok();
        assert_eq!(
            writes(),
            first,
            "an unchanged, fresh report was written again"
        );

        master.c2(&["start", "blue.zip"]).ok();
        slave.c2(&["slave-update"]).ok();
        let second = writes();
        assert_ne!(second, first, "a changed report was not written");
        assert_eq!(master.slave_report("web1").unwrap()["inSync"], json!(true));

        if let Backend::Dir = backend {
            // A report a minute old is written again: the heartbeat that
            // keeps the slave from being flushed.
            let report = master.path("shared/slaves/web1/state.json");
            std::fs::File::options()
                .write(true)
                .open(&report)
                .unwrap()
                .set_modified(std::time::SystemTime::now() - Duration::from_secs(61))
                .unwrap();
            slave.c2(&["slave-update"]).ok();
            assert_ne!(writes(), second, "a minute-old report was not refreshed");
        }
    }
}

#[test]
fn slave_commands_need_remote_state() {
    let mut env = Env::new();
    env.proxy(&[("main", "main.example")]);
    env.c2(&["slave-update"])
        .fails_with("slave-update needs remote state");
    env.c2(&["slave-flush"])
        .fails_with("slave-flush needs remote state");
    env.c2(&["status", "--show-slaves"])
        .fails_with("--show-slaves needs remote state");
}

#[test]
fn the_slave_label_can_come_from_the_instance_metadata_service() {
    let moto = Moto::shared();
    let master = master_on(&Backend::Dir);
    let mut slave = master.slave("unused");
    slave.proxy_set("slaveLabel", json!("ec2InstanceId"));
    let out = slave
        .c2(&["slave-update"])
        .env("AWS_EC2_METADATA_DISABLED", "false")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &moto.endpoint)
        .ok();
    let status = master.status_json();
    let labels: Vec<&str> = status["slaves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels.len(), 1, "{out}");
    assert!(
        labels[0].starts_with("i-"),
        "not an instance id: {labels:?}"
    );
}

/// Requests moto logged (method, path, status) since the log had `skip` lines.
fn moto_requests(log: &std::path::Path, skip: usize) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("\" "))
        .skip(skip)
        .filter_map(|l| {
            let (_, rest) = l.split_once('"')?;
            let (request, after) = rest.split_once('"')?;
            let mut parts = request.split_whitespace();
            let method = parts.next()?;
            let path = parts.next()?.split('?').next()?;
            let status = after.split_whitespace().next()?;
            Some(format!("{method} {path} {status}"))
        })
        .collect()
}

#[test]
fn an_idle_slave_sends_one_conditional_get_per_round_and_no_put() {
    let moto = Box::leak(Box::new(Moto::start()));
    let backend = Backend::S3(moto);
    let master = master_on(&backend);
    publish_http(&master, &backend, "blue.zip");
    master.c2(&["start", "blue.zip"]).ok();
    let slave = master.slave("web1");
    let log = moto.log();

    let _heavy = common::heavy();
    let follower = Follower::start(&slave, &[]);
    wait_until(Duration::from_secs(30), "the slave to converge", || {
        master
            .slave_report("web1")
            .is_some_and(|r| r["inSync"] == json!(true))
    });
    let master_key = "/camus2/master/state.json";
    let master_reads = |skip: usize| {
        moto_requests(&log, skip)
            .iter()
            .filter(|r| r.starts_with("GET ") && r.contains(master_key))
            .count()
    };
    // Settled once an idle round has read the master; then count what the
    // next 5 idle rounds send, and how long they took.
    let converged = moto_requests(&log, 0).len();
    wait_until(Duration::from_secs(30), "an idle round", || {
        master_reads(converged) >= 1
    });
    let before = moto_requests(&log, 0).len();
    let watch_start = Instant::now();
    wait_until(Duration::from_secs(30), "5 idle rounds", || {
        master_reads(before) >= 5
    });
    let idle = moto_requests(&log, before);
    let rounds = watch_start.elapsed().as_secs();
    drop(follower);

    let gets: Vec<&String> = idle.iter().filter(|r| r.contains(master_key)).collect();
    assert!(
        idle.iter()
            .all(|r| r.starts_with("GET ") && r.contains(master_key) && r.ends_with(" 304")),
        "an idle round sent more than a conditional GET: {idle:?}"
    );
    assert!(
        gets.len() as u64 >= rounds - 1 && gets.len() as u64 <= rounds + 1,
        "{} GETs in {rounds} rounds: {idle:?}",
        gets.len()
    );
    eprintln!(
        "idle slave: {} requests in {rounds} rounds of --repeat 1, all `GET master 304`, 0 PUT",
        idle.len()
    );
}

#[test]
fn sigterm_during_an_action_finishes_it_records_it_and_exits_0() {
    let master = master_on(&Backend::Dir);
    for name in ["slow-a.zip", "slow-b.zip"] {
        master
            .release(name)
            .set("startCommand", json!("sleep 2"))
            .publish();
        master.c2(&["start", name]).ok();
    }
    let slave = master.slave("web1");
    let follower = Follower::start(&slave, &[]);
    wait_until(Duration::from_secs(10), "the first deploy to start", || {
        follower.output().contains("Running start script")
    });
    assert_eq!(follower.terminate(), Some(0));
    // The action under way (slow-a, created first) finished and is recorded;
    // the next one was left for the next run.
    let local: Value =
        serde_json::from_str(&slave.read("deploys/frontend-proxy/state.json")).unwrap();
    let labels: Vec<&String> = local["deploys"].as_object().unwrap().keys().collect();
    assert_eq!(labels, ["slow-a"]);
    assert!(slave.exists("deploys/slow-a") && !slave.exists("deploys/slow-b"));
}

/// A master (directory backend) with `main` connected to blue, and a slave
/// web1 that has applied it and serves blue.
fn a_slave_serving_blue() -> (Env, Env) {
    let master = master_on(&Backend::Dir);
    publish_http(&master, &Backend::Dir, "blue.zip");
    master.c2(&["start", "blue.zip"]).ok();
    master.c2(&["connect", "main", "blue"]).ok();
    let slave = master.slave("web1");
    slave.c2(&["slave-update"]).ok();
    assert_eq!(slave.get("main.example", "/").body, "blue /");
    (master, slave)
}

/// The slave's report as written in the directory backend.
fn report_file(master: &Env, slave: &str) -> Value {
    serde_json::from_str(&master.read(&format!("shared/slaves/{slave}/state.json"))).unwrap()
}

#[test]
fn a_master_state_that_is_not_an_object_is_refused_and_the_slave_keeps_its_deploys() {
    let (master, slave) = a_slave_serving_blue();

    // serde reads a struct from its sequence form too: `[]` was an empty
    // master, and every slave destroyed all its deploys.
    let file = master.path("shared/master/state.json");
    std::fs::write(&file, "[]").unwrap();
    let needle = format!(
        "{}: invalid state: expected a JSON object, found an array",
        file.display()
    );
    slave.c2(&["slave-update"]).fails_with(&needle);
    assert_eq!(slave.get("main.example", "/").body, "blue /");
    assert!(slave.exists("deploys/blue"));
    assert_eq!(
        slave.state()["deploys"].as_object().unwrap().len(),
        1,
        "the local state changed"
    );
    let report = report_file(&master, "web1");
    assert!(
        report["status"]["error"]
            .as_str()
            .is_some_and(|e| e.contains(&needle)),
        "{report}"
    );
}

#[test]
fn a_broken_destroy_does_not_stop_the_rest_of_the_slaves_plan() {
    let master = master_on(&Backend::Dir);
    master
        .http_release("broken.zip")
        .set("stopCommand", json!("exit 3"))
        .publish();
    publish_http(&master, &Backend::Dir, "green.zip");
    master.c2(&["start", "broken.zip"]).ok();
    let slave = master.slave("web1");
    slave.c2(&["slave-update"]).ok();
    assert!(slave.exists("deploys/broken"));

    // green takes broken's port: destroying broken comes first in the plan.
    master.c2(&["stop", "broken"]).ok();
    master.c2(&["start", "green.zip"]).ok();
    master.c2(&["connect", "main", "green"]).ok();
    let failure = "deploy broken: stopCommand failed with exit code 3";
    slave.c2(&["slave-update"]).fails_with(failure);
    assert_eq!(slave.get("main.example", "/").body, "green /");
    assert!(!slave.exists("deploys/broken"), "directory left behind");
    assert_eq!(slave.state(), master.status_json()["master"]);
    let report = report_file(&master, "web1");
    assert!(
        report["status"]["error"]
            .as_str()
            .is_some_and(|e| e.contains(failure)),
        "{report}"
    );

    // The next round is not blocked, and reports ok.
    slave.c2(&["slave-update"]).ok();
    assert_eq!(report_file(&master, "web1")["status"], json!("ok"));
}

#[test]
fn a_restarted_slave_host_serves_again_after_one_round() {
    let (master, slave) = a_slave_serving_blue();

    // The host restarts: its nginx is gone (master and workers), its local
    // state (equal to the master) stays.
    let stop_nginx = || {
        let (_, workers) = crate::proxy::kill_nginx_master(&slave);
        for w in workers {
            crate::proxy::signal(w, nix::sys::signal::Signal::SIGKILL);
        }
        wait_until(Duration::from_secs(10), "port 80 to refuse", || {
            slave.get("main.example", "/").status == 0
        });
    };
    stop_nginx();
    slave.c2(&["slave-update"]).ok();
    assert_eq!(slave.get("main.example", "/").body, "blue /");
    let report = master.slave_report("web1").unwrap();
    assert_eq!(report["state"]["status"], json!("ok"));
    assert_eq!(report["inSync"], json!(true));

    // When it cannot be brought back (something else took the port), the
    // report says so rather than OK.
    stop_nginx();
    let squatter = std::net::TcpListener::bind(("127.0.0.1", slave.http_port())).unwrap();
    slave
        .c2(&["slave-update"])
        .fails_with("the frontend proxy is not serving");
    let report = master.slave_report("web1").unwrap();
    let error = report["state"]["status"]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(
        error.contains("the frontend proxy is not serving")
            && error.contains("Address already in use"),
        "{report}"
    );
    drop(squatter);
    slave.c2(&["slave-update"]).ok();
    assert_eq!(slave.get("main.example", "/").body, "blue /");
    assert_eq!(
        master.slave_report("web1").unwrap()["state"]["status"],
        json!("ok")
    );
}

#[test]
fn a_slave_whose_interface_is_missing_reports_an_error_naming_it() {
    let master = master_on(&Backend::Dir);
    let mut slave = master.slave("web1");
    let status = |master: &Env| master.slave_report("web1").unwrap()["state"].clone();
    let assert_names_the_interface = |report: &Value| {
        let error = report["status"]["error"].as_str().unwrap_or_default();
        assert!(error.contains("slaveInterfaceName nosuchif0"), "{report}");
        assert_eq!(report["ipAddress"], json!(""), "{report}");
        assert_eq!(report["state"], json!({"deploys": {}, "connections": {}}));
    };

    // Run once: the OK report is replaced by an error, and the run fails.
    slave.c2(&["slave-update"]).ok();
    assert_eq!(status(&master)["status"], json!("ok"));
    slave.proxy_set("slaveInterfaceName", json!("nosuchif0"));
    slave
        .c2(&["slave-update"])
        .fails_with("slaveInterfaceName nosuchif0");
    assert_names_the_interface(&status(&master));

    // Under --repeat too.
    slave.proxy_set("slaveInterfaceName", json!("lo"));
    slave.c2(&["slave-update"]).ok();
    assert_eq!(status(&master)["status"], json!("ok"));
    slave.proxy_set("slaveInterfaceName", json!("nosuchif0"));
    let follower = Follower::start(&slave, &[]);
    wait_until(Duration::from_secs(20), "an error report", || {
        status(&master)["status"] != json!("ok")
    });
    assert_names_the_interface(&status(&master));
    wait_until(
        Duration::from_secs(10),
        "the round's error in the log",
        || {
            follower
                .output()
                .contains("Exception: slaveInterfaceName nosuchif0")
        },
    );
    assert_eq!(follower.terminate(), Some(0));
}

/// Reports c2 did not write as it writes them: one dated a year ahead (a
/// clock far off) ages like one a year old, so it is neither live forever,
/// blocking `--await-slaves` with its stale error, nor never flushed; a
/// slave directory named `a b` is flushed like any other, and the ones
/// after it too.
#[test]
fn odd_reports_neither_live_forever_nor_stop_a_flush() {
    let master = master_on(&Backend::Dir);
    publish_http(&master, &Backend::Dir, "blue.zip");
    master.c2(&["start", "blue.zip"]).ok();
    let web1 = master.slave("web1");
    web1.c2(&["slave-update"]).ok();

    let year = Duration::from_secs(365 * 24 * 3600);
    let hand_made = |label: &str, when: std::time::SystemTime| {
        let path = master.path(&format!("shared/slaves/{label}/state.json"));
        crate::common::write_file(
            &path,
            &json!({"status": {"error": "disk on fire"}, "ipAddress": "", "hostName": label, "state": {}})
                .to_string(),
        );
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(when)
            .unwrap();
    };
    let now = std::time::SystemTime::now();
    hand_made("future", now + year);

    // The future report is not live: connect waits only for web1.
    let _follower = crate::await_slaves::Follower::start(&web1);
    let out = master
        .c2(&["connect", "main", "blue", "--await-slaves"])
        .ok();
    assert!(
        out.stderr
            .contains("ignoring slaves silent for 5 minutes: future"),
        "{out}"
    );
    assert_eq!(web1.state()["connections"], json!({"main": "blue"}));

    hand_made("a b", now - Duration::from_secs(600));
    hand_made("zz", now - Duration::from_secs(600));
    let out = master.c2(&["slave-flush"]).ok();
    for gone in ["future", "a b", "zz"] {
        assert!(
            out.stdout.contains(&format!("Flushing slave {gone} ")),
            "{out}"
        );
    }
    assert_eq!(slave_labels(&master), [json!("web1")]);
}

/// An object too large to be a state (65 MiB of blanks at a slave's report,
/// then at the master) is refused before its body is read: one hostile
/// object neither exhausts memory nor hides the other slaves.
#[test]
fn an_object_too_large_to_be_a_state_is_refused_before_it_is_read() {
    let moto = Moto::shared();
    let master = master_on(&Backend::S3(moto));
    master.slave("web1").c2(&["slave-update"]).ok();
    let url = master.config()["deployMode"]["proxy"]["remoteStateS3"]["just"]
        .as_str()
        .unwrap()
        .to_string();
    let (bucket, base) = url.strip_prefix("s3://").unwrap().split_once('/').unwrap();
    let blanks = vec![b' '; (65 << 20) + 1];
    moto.put(bucket, &format!("{base}/slaves/huge/state.json"), &blanks);
    let status = master.status_json();
    let slaves = status["slaves"].as_array().unwrap();
    assert_eq!(slaves.len(), 2, "{status}");
    assert_eq!(slaves[0]["label"], "huge");
    assert_eq!(
        slaves[0]["error"],
        format!("{url}/slaves/huge/state.json is larger than 67108864 bytes")
    );
    assert_eq!(slaves[1]["label"], "web1");
    assert_eq!(slaves[1]["state"]["status"], "ok");

    moto.put(bucket, &format!("{base}/master/state.json"), &blanks);
    master.c2(&["status"]).fails_with(&format!(
        "{url}/master/state.json is larger than 67108864 bytes"
    ));
}
