//! The recipes in `examples/fleet/` run as they are shipped, against a
//! master in S3 (moto) and real slaves behind real nginx. EC2 user-data
//! waits for the instance context, then asks systemd to start the slave
//! unit: systemd is stood in for by a `systemctl` on PATH that records its
//! calls and runs the unit's `ExecStart` line. The CI deploy script
//! publishes, starts, connects, and cleans up or rolls back when the fleet
//! does not follow.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::await_slaves::Follower;
use crate::common::{wait_until, write_file, Env, Moto, ReleaseBuilder};

const FLEET: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fleet");

fn recipe(name: &str) -> PathBuf {
    Path::new(FLEET).join(name)
}

/// A master in S3 (endpoint `main`) with `blue.zip` published.
fn master(moto: &Moto) -> (Env, String) {
    let bucket = Moto::unique_bucket("recipes");
    let master = Env::s3_master(moto, &bucket);
    master
        .http_release("blue.zip")
        .publish_s3(moto, &bucket, "releases");
    (master, bucket)
}

/// A stand-in for systemd: `systemctl` records each call in `calls`;
/// `enable --now <unit>` starts the unit's ExecStart (with the c2 under
/// test in place of /opt/bin/c2) in the background, its pid in
/// `unit.pid`, and `reload <unit>` runs its ExecReload, as systemd would.
struct Systemd {
    dir: PathBuf,
}

impl Systemd {
    fn install(under: &Path) -> Systemd {
        let dir = under.join("systemd");
        write_file(
            &dir.join("bin/systemctl"),
            &format!(
                r#"#!/bin/sh
echo "$*" >> {dir}/calls
if [ "$1" = enable ] && [ "$2" = --now ]; then
  command=$(sed -n 's|^ExecStart=/opt/bin/c2 ||p' {units}/"$3")
  $C2 $command > {dir}/unit.out 2>&1 &
  echo $! > {dir}/unit.pid
fi
if [ "$1" = reload ]; then
  command=$(sed -n 's|^ExecReload=||p' {units}/"$2" | sed "s|\$MAINPID|$(cat {dir}/unit.pid)|")
  sh -c "$command"
fi
"#,
                dir = dir.display(),
                units = FLEET,
            ),
        );
        std::process::Command::new("chmod")
            .args(["+x", &dir.join("bin/systemctl").to_string_lossy()])
            .status()
            .unwrap();
        Systemd { dir }
    }

    fn path_var(&self) -> String {
        format!(
            "{}:{}",
            self.dir.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }

    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Systemd {
    fn drop(&mut self) {
        if let Some(pid) = std::fs::read_to_string(self.dir.join("unit.pid"))
            .ok()
            .and_then(|p| p.trim().parse().ok())
        {
            crate::common::terminate(pid);
        }
    }
}

/// A slave of `master` whose context `app` comes from
/// `s3://<bucket>/context/app.json`.
fn slave_with_s3_context(master: &Env, bucket: &str, label: &str) -> Env {
    let mut slave = master.slave(label);
    slave.set(
        "configSources",
        json!({"app": {"s3": format!("s3://{bucket}/context/app.json")}}),
    );
    slave
}

#[test]
fn user_data_waits_for_the_context_then_starts_the_slave_unit() {
    let moto = Moto::shared();
    let (master, bucket) = master(moto);
    master.c2(&["start", "blue.zip"]).ok();
    master.c2(&["connect", "main", "blue"]).ok();
    let slave = slave_with_s3_context(&master, &bucket, "web1");
    let systemd = Systemd::install(slave.root.path());

    let out = std::fs::File::create(slave.path("user-data.out")).unwrap();
    let mut user_data: Child = slave
        .script(&recipe("user-data.sh"), &[])
        .env("PATH", &systemd.path_var())
        .env("CONTEXT_TIMEOUT", "5m")
        .cmd
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(30), "fetch-context to wait", || {
        std::fs::read_to_string(slave.path("user-data.out"))
            .unwrap_or_default()
            .contains("Waiting for s3://")
    });
    assert!(systemd.calls().is_empty(), "systemd asked too early");

    // The provisioning run writes the context: the boot carries on.
    moto.put(&bucket, "context/app.json", br#"{"db": "db.internal"}"#);
    let status = user_data.wait().unwrap();
    let said = slave.read("user-data.out");
    assert!(status.success(), "{said}");
    assert_eq!(slave.read("cache/app.json"), r#"{"db": "db.internal"}"#);
    assert_eq!(
        systemd.calls(),
        ["daemon-reload", "enable --now c2-slave.service"]
    );

    // The unit's own command converges the machine and reports it.
    wait_until(Duration::from_secs(60), "the slave to serve blue", || {
        slave.state()["connections"]["main"] == json!("blue")
    });
    assert_eq!(slave.get("main.example", "/").body, "blue /");
    assert!(master.slave_report("web1").is_some());
}

#[test]
fn user_data_gives_up_when_the_context_never_comes() {
    let moto = Moto::shared();
    let (master, bucket) = master(moto);
    let slave = slave_with_s3_context(&master, &bucket, "web1");
    let systemd = Systemd::install(slave.root.path());

    let started = Instant::now();
    let out = slave
        .script(&recipe("user-data.sh"), &[])
        .env("PATH", &systemd.path_var())
        .env("CONTEXT_TIMEOUT", "2s")
        .output();
    assert_eq!(out.code, Some(1), "{out}");
    assert!(started.elapsed() < Duration::from_secs(60), "{out}");
    assert!(
        out.error_line().contains("still missing: app (s3://"),
        "{out}"
    );
    assert!(
        out.stderr.contains(
            "user-data: the instance context is incomplete (see above); c2-slave not started"
        ),
        "{out}"
    );
    assert!(systemd.calls().is_empty());
    assert!(master.slave_report("web1").is_none());
}

/// Unpacks a release into `<root>/work/<label>`: what a CI job checks out.
fn release_dir(env: &Env, release: ReleaseBuilder, label: &str) -> String {
    let dir = env.path(&format!("work/{label}"));
    let bytes = release.zip_bytes();
    zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .unwrap()
        .extract(&dir)
        .unwrap();
    dir.to_string_lossy().to_string()
}

/// A release serving `<label> <path>` over HTTP on its port. Both slaves
/// of a test share this host, and a deploy has the same port on every
/// slave: only web1 serves; web2 (with `<root>/quiet`) just runs a
/// process that holds no port.
fn fleet_release(master: &Env, name: &str) -> ReleaseBuilder {
    let label = name.trim_end_matches(".zip");
    master
        .http_release(name)
        .set(
            "startCommand",
            json!(format!(
                "if [ -e ../../quiet ]; then sleep 3600 >/dev/null 2>&1 & echo $! > server.pid; else python3 serve.py $(cat port) {label}; fi"
            )),
        )
}

/// Runs `slave`'s rounds until it runs `deploy`, then stops: a machine
/// that dies right after starting the new release. Gives up when `over`.
fn follow_until_it_runs(slave: &Env, deploy: &str, over: &AtomicBool) {
    while slave.state()["deploys"][deploy].is_null() && !over.load(Ordering::Relaxed) {
        slave.c2(&["slave-update"]).output();
    }
}

fn connection(slave: &Env) -> serde_json::Value {
    slave.state()["connections"]["main"].clone()
}

#[test]
fn ci_deploy_switches_the_fleet_and_undoes_what_it_cannot_finish() {
    let _heavy = crate::common::heavy();
    let moto = Moto::shared();
    let (master, _) = master(moto);
    let (web1, web2) = (master.slave("web1"), master.slave("web2"));
    write_file(&web2.path("cannot-run"), "");
    write_file(&web2.path("quiet"), "");
    let follower1 = Follower::start(&web1);
    let follower2 = Follower::start(&web2);
    wait_until(Duration::from_secs(30), "both slaves to report", || {
        master.status_json()["slaves"]
            .as_array()
            .is_some_and(|s| s.len() == 2)
    });
    let deploy = |dir: &str| {
        master
            .script(&recipe("ci-deploy.sh"), &[dir, "main"])
            .env("MIN_SLAVES", "2")
            .env("TIMEOUT", "60s")
            .output()
    };

    // A release both machines run: published, started, connected.
    let blue = release_dir(&master, fleet_release(&master, "blue-2.zip"), "blue-2");
    let out = deploy(&blue);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stderr.contains("ci-deploy: main serves blue-2"),
        "{out}"
    );
    let releases = master.c2(&["list-releases"]).ok().stdout;
    assert!(releases.lines().any(|r| r == "blue-2.zip"), "{releases}");
    assert_eq!(web1.get("main.example", "/").body, "blue-2 /");
    assert_eq!(connection(&web2), json!("blue-2"));

    // One that web2 cannot start: taken away again, traffic untouched.
    let green = fleet_release(&master, "green.zip").set(
        "startCommand",
        json!("test ! -e ../../cannot-run && python3 serve.py $(cat port) green"),
    );
    let green = release_dir(&master, green, "green");
    let out = deploy(&green);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr
            .contains("ci-deploy: green did not start on every live slave; removing it"),
        "{out}"
    );
    assert!(master.status_json()["master"]["deploys"]["green"].is_null());
    for slave in [&web1, &web2] {
        wait_until(Duration::from_secs(60), "green to go", || {
            slave.state()["deploys"]["green"].is_null() && !slave.exists("deploys/green")
        });
        assert_eq!(connection(slave), json!("blue-2"));
    }
    assert_eq!(web1.get("main.example", "/").body, "blue-2 /");

    // web2 starts red, then stops answering: the switch cannot complete,
    // so the endpoint goes back to blue-2.
    drop(follower2);
    let red = release_dir(&master, fleet_release(&master, "red.zip"), "red");
    let over = AtomicBool::new(false);
    let out = std::thread::scope(|s| {
        s.spawn(|| follow_until_it_runs(&web2, "red", &over));
        let out = master
            .script(&recipe("ci-deploy.sh"), &[&red, "main"])
            .env("MIN_SLAVES", "2")
            .env("TIMEOUT", "15s")
            .output();
        over.store(true, Ordering::Relaxed);
        out
    });
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr
            .contains("ci-deploy: the fleet did not follow the switch to red; rolling main back"),
        "{out}"
    );
    assert!(
        !out.stderr.contains("rollback of main did not complete"),
        "{out}"
    );
    assert_eq!(
        master.status_json()["master"]["connections"]["main"],
        json!("blue-2")
    );
    assert_eq!(web1.get("main.example", "/").body, "blue-2 /");
    assert_eq!(connection(&web2), json!("blue-2"));
    drop(follower1);
}

/// `c2-heal.service` as shipped, on a machine with local state: its
/// ExecStart (`heal --repeat 10s`) brings a killed deploy back, and
/// traffic through nginx with it, within the three checks and a restart.
#[test]
fn the_heal_unit_brings_a_killed_deploy_back_behind_nginx() {
    let mut env = Env::new();
    env.proxy(&[("main", "main.example")]);
    env.http_release("blue.zip")
        .set("healthCheck", json!({"path": "/up", "timeoutSeconds": 10}))
        .publish();
    env.c2(&["start", "blue.zip"]).ok();
    env.c2(&["connect", "main", "blue"]).ok();
    let systemd = Systemd::install(env.root.path());
    let systemctl = systemd.dir.join("bin/systemctl");
    env.script(&systemctl, &["enable", "--now", "c2-heal.service"])
        .ok();
    assert_eq!(systemd.calls(), ["enable --now c2-heal.service"]);
    wait_until(Duration::from_secs(30), "the first round", || {
        env.exists("deploys/frontend-proxy/health.json")
    });

    let pid: i32 = env.read("deploys/blue/server.pid").trim().parse().unwrap();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
    let killed = Instant::now();
    wait_until(Duration::from_secs(10), "the endpoint to fail", || {
        env.get("main.example", "/").status == 502
    });
    wait_until(
        Duration::from_secs(60),
        "the endpoint to answer again",
        || env.get("main.example", "/").status == 200,
    );
    // Three checks 10 s apart, then the restart: well under a minute.
    eprintln!("back {:?} after the kill", killed.elapsed());
    let log = std::fs::read_to_string(systemd.dir.join("unit.out")).unwrap();
    assert!(log.contains("Restarting deploy blue: "), "{log}");
}

/// `c2-api.service` as shipped: its ExecStart serves the API on the
/// config's address, and `systemctl reload` (its ExecReload) makes a token
/// added since count.
#[test]
fn the_api_unit_serves_and_reload_picks_up_a_new_token() {
    let mut env = Env::new();
    let port = crate::common::moto::free_port();
    env.set(
        "api",
        json!({"listen": format!("127.0.0.1:{port}"), "tokensFile": env.path("etc/tokens.json")}),
    );
    let first = env
        .c2(&["api-token", "add", "ci", "--role", "read"])
        .ok()
        .stdout;
    let systemd = Systemd::install(env.root.path());
    let systemctl = systemd.dir.join("bin/systemctl");
    env.script(&systemctl, &["enable", "--now", "c2-api.service"])
        .ok();
    let status = |token: &str| {
        let out = std::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H"])
            .arg(format!("Authorization: Bearer {}", token.trim()))
            .arg(format!("http://127.0.0.1:{port}/v1/status"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    wait_until(Duration::from_secs(20), "the API to answer", || {
        status(&first) == "200"
    });
    let second = env
        .c2(&["api-token", "add", "bot", "--role", "deploy"])
        .ok()
        .stdout;
    assert_eq!(status(&second), "401");
    env.script(&systemctl, &["reload", "c2-api.service"]).ok();
    wait_until(Duration::from_secs(10), "the new token to count", || {
        status(&second) == "200"
    });
    assert_eq!(
        systemd.calls(),
        ["enable --now c2-api.service", "reload c2-api.service"]
    );
}
