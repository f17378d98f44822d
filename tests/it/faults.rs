//! Fault tests (issue #7): nothing is lost when c2 is killed, when S3 goes
//! away, or when the disk fills.
//!
//! `kill -9` trials run a few times per command here; set
//! `C2_LONG_FAULTS=1` for the long variant (50 trials per command).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::common::{self, wait_until, Env, Moto, Run};
use serde_json::{json, Value};

fn trials() -> usize {
    if std::env::var_os("C2_LONG_FAULTS").is_some() {
        50
    } else {
        4
    }
}

/// A small deterministic PRNG (xorshift), seeded per test and printed, so a
/// failing trial can be replayed.
struct Rng(u64);

impl Rng {
    fn new(name: &str) -> Rng {
        let seed = std::env::var("C2_FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("{name}: C2_FAULT_SEED={seed}");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Starts `args` and SIGKILLs it after `after` (if still running). The
/// delay is the fault itself (a kill at a random moment), not a wait for
/// anything: each trial then checks the outcome, whatever the moment hit.
fn kill_midway(run: Run, after: Duration) {
    let mut child: Child = {
        let mut cmd = run.cmd;
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    std::thread::sleep(after);
    let _ = child.kill();
    let _ = child.wait();
}

/// Releases whose commands take a moment (so kills land inside them) and
/// whose stop is idempotent, as real ones (`docker compose down`) are.
fn publish_slow(env: &Env, name: &str) {
    let label = name.trim_end_matches(".zip");
    env.http_release(name)
        .set("prestartCommand", json!("sleep 0.1"))
        .set(
            "startCommand",
            json!(format!("sleep 0.1; python3 serve.py $(cat port) {label}")),
        )
        .set(
            "stopCommand",
            json!("[ -f server.pid ] && kill $(cat server.pid) 2>/dev/null; sleep 0.1; true"),
        )
        .publish();
}

/// Test http servers (serve.py) running from under `root`, by deploy dir.
fn servers_under(root: &Path) -> Vec<(u32, PathBuf)> {
    let root = root.canonicalize().unwrap();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if !String::from_utf8_lossy(&cmdline).contains("serve.py") {
            continue;
        }
        if let Ok(cwd) = std::fs::read_link(e.path().join("cwd")) {
            if cwd.starts_with(&root) {
                out.push((pid, cwd));
            }
        }
    }
    out
}

/// The deploys of an Env's local state (asserting the file parses).
fn state_deploys(env: &Env, rel: &str) -> BTreeSet<String> {
    let path = env.path(rel);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let v: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} does not parse: {e}\n{text}", path.display()));
            v["deploys"].as_object().unwrap().keys().cloned().collect()
        }
        Err(_) => BTreeSet::new(),
    }
}

/// What the state says runs is exactly what runs: one deploy directory,
/// one server answering on its port per deploy, nothing else.
fn assert_consistent(env: &Env, what: &str) {
    let deploys = state_deploys(env, "deploys/frontend-proxy/state.json");
    let dirs: BTreeSet<String> = std::fs::read_dir(env.path("deploys"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| n != "frontend-proxy" && !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        dirs, deploys,
        "{what}: deploy directories differ from the state"
    );
    let servers = servers_under(&env.path("deploys"));
    let mut by_deploy: Vec<String> = servers
        .iter()
        .map(|(_, cwd)| cwd.file_name().unwrap().to_string_lossy().to_string())
        .collect();
    by_deploy.sort();
    assert_eq!(
        by_deploy,
        deploys.iter().cloned().collect::<Vec<_>>(),
        "{what}: running servers differ from the state (orphans or missing)"
    );
    let state: Value =
        serde_json::from_str(&env.read("deploys/frontend-proxy/state.json")).unwrap_or(json!({}));
    for label in &deploys {
        let port = state["deploys"][label]["port"].as_u64().unwrap() as u16;
        let r = common::http::get(port, "x", "/");
        assert_eq!(
            r.body,
            format!("{label} /"),
            "{what}: {label}'s port {port}"
        );
    }
}

fn proxy_env() -> Env {
    let mut env = Env::new();
    env.proxy(&[("main", "main.example")]);
    publish_slow(&env, "blue.zip");
    publish_slow(&env, "green.zip");
    env
}

#[test]
fn kill_9_during_start_then_start_again_converges() {
    let _heavy = common::heavy();
    let env = proxy_env();
    let mut rng = Rng::new("start");
    for trial in 0..trials() {
        let after = Duration::from_millis(rng.below(600));
        kill_midway(env.c2(&["start", "blue.zip"]), after);
        state_deploys(&env, "deploys/frontend-proxy/state.json");
        env.c2(&["start", "blue.zip"]).ok();
        assert_consistent(
            &env,
            &format!("start trial {trial}, killed after {after:?}"),
        );
        env.c2(&["stop", "blue"]).ok();
        assert_consistent(&env, &format!("stop after start trial {trial}"));
    }
}

#[test]
fn kill_9_during_stop_then_stop_again_converges() {
    let _heavy = common::heavy();
    let env = proxy_env();
    let mut rng = Rng::new("stop");
    for trial in 0..trials() {
        env.c2(&["start", "blue.zip"]).ok();
        let after = Duration::from_millis(rng.below(400));
        kill_midway(env.c2(&["stop", "blue"]), after);
        state_deploys(&env, "deploys/frontend-proxy/state.json");
        // Again: either it finishes the stop, or the first one had finished.
        let out = env.c2(&["stop", "blue"]).output();
        if out.code != Some(0) {
            assert!(out.error_line().contains("no deploy called blue"), "{out}");
        }
        assert_consistent(&env, &format!("stop trial {trial}, killed after {after:?}"));
    }
}

#[test]
fn kill_9_during_connect_then_connect_again_converges() {
    let _heavy = common::heavy();
    let env = proxy_env();
    env.c2(&["start", "blue.zip"]).ok();
    env.c2(&["start", "green.zip"]).ok();
    env.c2(&["connect", "main", "blue"]).ok();
    let mut rng = Rng::new("connect");
    for trial in 0..trials() {
        let target = if trial % 2 == 0 { "green" } else { "blue" };
        let after = Duration::from_millis(rng.below(200));
        kill_midway(env.c2(&["connect", "main", target]), after);
        state_deploys(&env, "deploys/frontend-proxy/state.json");
        env.c2(&["connect", "main", target]).ok();
        assert_eq!(env.get("main.example", "/").body, format!("{target} /"));
        assert_eq!(env.state()["connections"], json!({"main": target}));
        assert_consistent(
            &env,
            &format!("connect trial {trial}, killed after {after:?}"),
        );
        // One nginx, whatever was interrupted.
        let masters = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|e| {
                let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
                let cmd = String::from_utf8_lossy(&cmd);
                cmd.starts_with("nginx: master")
                    && cmd.contains(&*env.path("deploys").to_string_lossy())
            })
            .count();
        assert_eq!(masters, 1, "connect trial {trial}: {masters} nginx masters");
    }
}

#[test]
fn kill_9_during_slave_update_then_again_converges() {
    let _heavy = common::heavy();
    let mut master = proxy_env();
    master.remote(&master.path("shared").to_string_lossy());
    let slave = master.slave("web1");
    let mut rng = Rng::new("slave-update");
    for trial in 0..trials() {
        // Alternate the master between blue and green so every round acts.
        let (up, down) = if trial % 2 == 0 {
            ("blue", "green")
        } else {
            ("green", "blue")
        };
        master.c2(&["start", &format!("{up}.zip")]).ok();
        let _ = master.c2(&["stop", down]).output();
        let after = Duration::from_millis(rng.below(700));
        kill_midway(slave.c2(&["slave-update"]), after);
        state_deploys(&slave, "deploys/frontend-proxy/state.json");
        slave.c2(&["slave-update"]).ok();
        assert_eq!(
            state_deploys(&slave, "deploys/frontend-proxy/state.json"),
            BTreeSet::from([up.to_string()])
        );
        assert_consistent(
            &slave,
            &format!("slave-update trial {trial}, killed after {after:?}"),
        );
    }
}

#[test]
fn the_s3_server_stopped_and_restarted_during_repeat() {
    let _heavy = common::heavy();
    let moto = Moto::start();
    let port = moto.port;
    let bucket = Moto::unique_bucket("restart");
    let master = Env::s3_master(&moto, &bucket);
    master
        .release("a.zip")
        .publish_s3(&moto, &bucket, "releases");
    master.c2(&["start", "a.zip"]).ok();
    let slave = master.slave("web1");
    let log = slave.path("follower.out");
    let mut follower = slave
        .c2(&["slave-update", "--repeat", "0.5"])
        .cmd
        .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let in_sync = |m: &Env| {
        m.slave_report("web1")
            .is_some_and(|r| r["inSync"] == json!(true))
    };
    wait_until(
        Duration::from_secs(30),
        "convergence before the outage",
        || in_sync(&master),
    );

    drop(moto);
    wait_until(
        Duration::from_secs(30),
        "a failed round during the outage",
        || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("Exception: ")
        },
    );
    assert!(follower.try_wait().unwrap().is_none(), "the loop died");

    // Back, empty (moto keeps nothing): the operator re-publishes and
    // writes a new master state.
    let moto = Moto::start_on(port);
    moto.create_bucket(&bucket);
    master
        .release("b.zip")
        .publish_s3(&moto, &bucket, "releases");
    master.c2(&["start", "b.zip"]).ok();
    wait_until(
        Duration::from_secs(30),
        "convergence after the outage",
        || in_sync(&master),
    );
    assert!(slave.exists("deploys/b"));
    assert!(
        !slave.exists("deploys/a"),
        "a is not in the new master state"
    );
    common::terminate(follower.id());
    assert_eq!(follower.wait().unwrap().code(), Some(0));
}

/// A small tmpfs, unmounted when dropped.
struct SmallDisk {
    dir: PathBuf,
}

impl SmallDisk {
    fn mount(dir: PathBuf, size: &str) -> Option<SmallDisk> {
        std::fs::create_dir_all(&dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output()
            .is_ok_and(|o| o.status.success());
        ok.then_some(SmallDisk { dir })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .output();
    }
}

#[test]
fn a_full_disk_while_unpacking_is_a_clear_error_and_the_live_release_stays() {
    let mut env = Env::new();
    let deploys = env.path("deploys");
    let Some(_disk) = SmallDisk::mount(deploys.clone(), "8m") else {
        eprintln!("SKIPPED: cannot mount a tmpfs here (not root?): full-disk test not run");
        return;
    };
    env.context_file("infra", "{}");
    env.release("app-1.zip")
        .template("app.conf.tpl", "live\n")
        .publish();
    // 12 MB that does not compress: it cannot fit in 8 MB.
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let noise: String = (0..12_000_000)
        .map(|_| char::from(b'!' + rng.below(90) as u8))
        .collect();
    env.release("big.zip").file("blob.bin", &noise).publish();

    env.c2(&["start", "app-1.zip"]).ok();
    let out = env.c2(&["start", "big.zip"]).output();
    assert_ne!(out.code, Some(0), "{out}");
    let err = out.error_line();
    assert!(err.contains("No space left on device"), "{err}");
    assert_eq!(env.current().as_deref(), Some("app-1"));
    assert_eq!(env.read("deploys/app-1/app.conf"), "live\n");
    assert!(
        !env.exists("deploys/big"),
        "the failed release's files were left"
    );
    // And the next deploy still works.
    env.c2(&["start", "app-1.zip"]).ok();
    let _ = &mut env;
}
