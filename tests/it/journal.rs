//! The operators' journal: the deploy lock, which refuses every deploy
//! command while someone holds it, and the history of every change, in each
//! mode (noproxy, proxy with local state, remote state in a directory, in
//! S3 through moto and in a real etcd cluster).

use std::process::Child;
use std::time::Duration;

use crate::common::etcd::Cluster;
use crate::common::{gate::Gate, wait_until, Env, Moto, ReleaseBuilder};
use crate::remote::{self, Backend};
use serde_json::{json, Value};

/// Where the lock and the history live.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Noproxy,
    Local,
    Dir,
    S3,
    Etcd,
}

const ALL: [Mode; 5] = [Mode::Noproxy, Mode::Local, Mode::Dir, Mode::S3, Mode::Etcd];
const PROXY: [Mode; 4] = [Mode::Local, Mode::Dir, Mode::S3, Mode::Etcd];

impl Mode {
    /// A machine in this mode; proxy modes have endpoint `main`.
    fn env(self) -> Env {
        match self {
            Mode::Noproxy => Env::new(),
            Mode::Local => {
                let mut env = Env::new();
                env.proxy(&[("main", "main.example")]);
                env
            }
            Mode::Dir => remote::master_on(&Backend::Dir),
            Mode::S3 => remote::master_on(&Backend::S3(Moto::shared())),
            Mode::Etcd => remote::master_on(&Backend::Etcd(Cluster::shared())),
        }
    }

    /// The deploy lock file, where it is a file.
    fn lock_file(self) -> Option<&'static str> {
        match self {
            Mode::Noproxy | Mode::Local => Some("deploys/frontend-proxy/lock.json"),
            Mode::Dir => Some("shared/lock.json"),
            Mode::S3 | Mode::Etcd => None,
        }
    }
}

/// Puts a release where `env`'s release store is (a directory or S3).
fn publish(env: &Env, release: ReleaseBuilder) {
    match env.config()["releases"]["s3"].as_str() {
        Some(url) => {
            let (bucket, prefix) = url.strip_prefix("s3://").unwrap().split_once('/').unwrap();
            release.publish_s3(Moto::shared(), bucket, prefix);
        }
        None => release.publish(),
    }
}

/// `user@host` as c2 names whoever runs the tests.
fn me() -> String {
    let user = nix::unistd::User::from_uid(nix::unistd::getuid())
        .unwrap()
        .unwrap()
        .name;
    let host = nix::unistd::gethostname().unwrap();
    format!("{user}@{}", host.to_string_lossy())
}

/// What the deploy commands can see: the state in proxy modes, `current`
/// in noproxy mode.
fn deploys_seen(env: &Env, mode: Mode) -> Value {
    match mode {
        Mode::Noproxy => json!(env.current()),
        _ => env.c2(&["status", "--json-output"]).ok().stdout.into(),
    }
}

/// `c2 history` lines with the time (checked to be RFC 3339 UTC seconds)
/// replaced by `T`.
fn history(env: &Env, args: &[&str]) -> Vec<String> {
    let mut all = vec!["history"];
    all.extend_from_slice(args);
    env.c2(&all)
        .ok()
        .stdout
        .lines()
        .map(|l| {
            let (time, rest) = l.split_once(' ').unwrap();
            assert!(
                time.len() == 20 && humantime::parse_rfc3339(time).is_ok(),
                "{l}"
            );
            format!("T {rest}")
        })
        .collect()
}

#[test]
fn while_the_lock_is_held_every_deploy_command_is_refused() {
    for mode in ALL {
        let env = mode.env();
        publish(&env, env.release("app-1.zip"));
        assert_eq!(env.c2(&["lock", "status"]).ok().stdout, "unlocked\n");

        let out = env.c2(&["lock", "acquire", "-m", "release freeze"]).ok();
        let lock: Value =
            serde_json::from_str(&env.c2(&["lock", "status", "--json-output"]).ok().stdout)
                .unwrap();
        let time = lock["time"].as_str().unwrap();
        assert!(
            time.len() == 20 && humantime::parse_rfc3339(time).is_ok(),
            "{lock}"
        );
        assert_eq!(
            format!(
                "{}@{}",
                lock["user"].as_str().unwrap(),
                lock["host"].as_str().unwrap()
            ),
            me()
        );
        assert_eq!(lock["message"], "release freeze");
        let holder = format!("{} since {time}: release freeze", me());
        assert_eq!(out.log_messages(), [format!("Deploys locked by {holder}")]);
        assert_eq!(
            env.c2(&["lock", "status"]).ok().stdout,
            format!("locked by {holder}\n")
        );
        if let Some(file) = mode.lock_file() {
            let on_disk: Value = serde_json::from_str(&env.read(file)).unwrap();
            assert_eq!(on_disk, lock, "{mode:?}");
        }

        let before = deploys_seen(&env, mode);
        let mut refused: Vec<&[&str]> = vec![&["start", "app-1.zip"], &["stop", "app-1"]];
        if mode != Mode::Noproxy {
            refused.extend([
                &["connect", "main", "app-1"][..],
                &["disconnect", "main"],
                &["rollback", "main"],
            ]);
        }
        for args in refused {
            let out = env.c2(args).output();
            assert_eq!(out.code, Some(1), "{mode:?} {args:?}:\n{out}");
            assert_eq!(
                out.error_line(),
                format!(
                    "c2: error: deploys are locked by {holder}; `c2 lock release` lifts the lock"
                )
            );
        }
        assert_eq!(deploys_seen(&env, mode), before, "{mode:?}");
        assert!(!env.exists("deploys/app-1"));

        // With remote state the lock is every operator's: another machine
        // sees it too.
        let other;
        let taker = if matches!(mode, Mode::Dir | Mode::S3) {
            other = env.slave("ops-2");
            &other
        } else {
            &env
        };
        let out = taker.c2(&["lock", "acquire", "-m", "mine now"]).output();
        assert_eq!(out.code, Some(1), "{out}");
        assert_eq!(
            out.error_line(),
            format!("c2: error: deploys are already locked by {holder}")
        );

        let out = taker.c2(&["lock", "release"]).ok();
        assert_eq!(
            out.log_messages(),
            [format!("Deploys unlocked (they were locked by {holder})")]
        );
        if let Some(file) = mode.lock_file() {
            assert!(!env.exists(file), "{mode:?}");
        }
        env.c2(&["start", "app-1.zip"]).ok();
        let out = env.c2(&["lock", "release"]).ok();
        assert_eq!(
            out.log_messages(),
            ["Deploys were not locked: nothing to release"]
        );
        assert_eq!(
            env.c2(&["lock", "status", "--json-output"]).ok().stdout,
            "null\n"
        );
    }
}

#[test]
fn of_operators_racing_for_the_lock_exactly_one_gets_it() {
    for mode in [Mode::Noproxy, Mode::Dir, Mode::S3, Mode::Etcd] {
        let env = mode.env();
        let runs: Vec<_> = (0..8)
            .map(|n| env.c2(&["lock", "acquire", "-m", &format!("operator {n}")]))
            .map(|run| std::thread::spawn(move || run.output()))
            .collect();
        let outs: Vec<_> = runs.into_iter().map(|r| r.join().unwrap()).collect();
        let winners: Vec<usize> = (0..8).filter(|&n| outs[n].code == Some(0)).collect();
        assert_eq!(winners.len(), 1, "{mode:?}: {winners:?}");
        let lock: Value =
            serde_json::from_str(&env.c2(&["lock", "status", "--json-output"]).ok().stdout)
                .unwrap();
        assert_eq!(lock["message"], format!("operator {}", winners[0]));
        for out in outs.iter().filter(|o| o.code != Some(0)) {
            assert!(
                out.error_line()
                    .starts_with("c2: error: deploys are already locked by"),
                "{out}"
            );
        }
    }
}

#[test]
fn an_unreadable_lock_refuses_deploys_and_says_how_to_lift_it() {
    for mode in PROXY {
        let env = mode.env();
        publish(&env, env.release("app-1.zip"));
        let write = |bytes: &[u8]| match mode.lock_file() {
            Some(file) => {
                std::fs::create_dir_all(env.path(file).parent().unwrap()).unwrap();
                std::fs::write(env.path(file), bytes).unwrap();
            }
            None if mode == Mode::Etcd => Cluster::shared().put(
                &remote::etcd_key(&env, "lock.json"),
                std::str::from_utf8(bytes).unwrap(),
            ),
            None => {
                let url = env.config()["deployMode"]["proxy"]["remoteStateS3"]["just"]
                    .as_str()
                    .unwrap();
                let (bucket, base) = url.strip_prefix("s3://").unwrap().split_once('/').unwrap();
                Moto::shared().put(bucket, &format!("{base}/lock.json"), bytes);
            }
        };
        let location = match mode.lock_file() {
            Some(file) => env.path(file).display().to_string(),
            None => format!(
                "{}/lock.json",
                env.config()["deployMode"]["proxy"]["remoteStateS3"]["just"]
                    .as_str()
                    .unwrap()
            ),
        };

        write(b"{\"user\": ");
        let error = env.c2(&["start", "app-1.zip"]).fails_with("").error_line();
        assert!(
            error.starts_with(&format!("c2: error: {location}: invalid deploy lock: "))
                && error.ends_with("; `c2 lock release` removes it"),
            "{error}"
        );
        env.c2(&["lock", "status"])
            .fails_with("invalid deploy lock");
        let out = env.c2(&["lock", "release"]).ok();
        assert!(
            out.log_messages()[0].starts_with("Removed the unreadable deploy lock"),
            "{out}"
        );
        env.c2(&["start", "app-1.zip"]).ok();

        write(&vec![b' '; 100_000]);
        env.c2(&["stop", "app-1"]).fails_with(&format!(
            "cannot read the deploy lock: {location} is larger than 65536 bytes; `c2 lock release` removes it"
        ));
        env.c2(&["lock", "release"]).ok();
        env.c2(&["stop", "app-1"]).ok();
    }
}

#[test]
fn slaves_keep_following_the_master_while_it_is_locked() {
    let master = remote::master_on(&Backend::Dir);
    publish(&master, master.release("app-1.zip"));
    master.c2(&["start", "app-1.zip"]).ok();
    master.c2(&["lock", "acquire", "-m", "incident 42"]).ok();
    let slave = master.slave("web1");
    slave.c2(&["slave-update"]).ok();
    assert!(slave.exists("deploys/app-1"));
}

#[test]
fn twenty_concurrent_starts_each_appear_in_the_history_exactly_once() {
    for mode in PROXY {
        let mut env = mode.env();
        env.proxy_set("dynamicPortRange", json!({"v1": 31000, "v2": 31100}));
        publish(&env, env.release("app.zip"));
        let runs: Vec<_> = (0..20)
            .map(|n| env.c2(&["start", "app.zip", &format!("app-{n}")]))
            .map(|run| std::thread::spawn(move || run.output()))
            .collect();
        for r in runs {
            let out = r.join().unwrap();
            assert_eq!(out.code, Some(0), "{mode:?}: {out}");
        }
        let events: Vec<Value> = serde_json::from_str(
            &env.c2(&["history", "--limit", "100", "--json-output"])
                .ok()
                .stdout,
        )
        .unwrap();
        assert_eq!(events.len(), 20, "{mode:?}");
        let mut labels: Vec<String> = events
            .iter()
            .map(|e| {
                let label = e["command"][2].as_str().unwrap().to_string();
                assert_eq!(e["command"], json!(["start", "app.zip", label]));
                // Each event holds the state its own write went from and to.
                assert!(e["before"]["deploys"].get(&label).is_none(), "{e}");
                assert_eq!(e["after"]["deploys"][&label]["release"], "app.zip", "{e}");
                label
            })
            .collect();
        labels.sort();
        labels.dedup();
        assert_eq!(labels.len(), 20, "{mode:?}: {labels:?}");
        assert_eq!(history(&env, &["--limit", "100"]).len(), 20);
    }
}

#[test]
fn history_lines_say_when_who_what_and_what_changed() {
    let mut env = Env::new();
    env.proxy(&[("main", "main.example")]);
    let (port, _) = env.port_range();
    for name in ["shop-1.4.zip", "shop-1.5.zip"] {
        env.http_release(name).publish();
        env.c2(&["start", name]).ok();
    }
    env.c2(&["connect", "main", "shop-1.4"]).ok();
    env.c2(&["connect", "main", "shop-1.5"]).ok();
    // Refused by the rules: recorded nowhere.
    env.c2(&["stop", "shop-1.5"])
        .fails_with("deploy is connected to main");
    env.c2(&["stop", "shop-1.4"]).ok();
    env.c2(&["--verbose", "disconnect", "main"]).ok();
    env.c2(&["lock", "acquire", "-m", "freeze"]).ok();
    env.c2(&["lock", "release"]).ok();

    let me = me();
    assert_eq!(
        history(&env, &[]),
        [
            format!("T {me} lock release (unlocked)"),
            format!("T {me} lock acquire -m freeze (locked: freeze)"),
            format!("T {me} disconnect main (main: shop-1.5 -> (none))"),
            format!("T {me} stop shop-1.4 (-shop-1.4)"),
            format!("T {me} connect main shop-1.5 (main: shop-1.4 -> shop-1.5)"),
            format!("T {me} connect main shop-1.4 (main: (none) -> shop-1.4)"),
            format!(
                "T {me} start shop-1.5.zip (+shop-1.5 (shop-1.5.zip on {}))",
                port + 1
            ),
            format!("T {me} start shop-1.4.zip (+shop-1.4 (shop-1.4.zip on {port}))"),
        ]
    );
    assert_eq!(
        history(&env, &["--limit", "2"]),
        [
            format!("T {me} lock release (unlocked)"),
            format!("T {me} lock acquire -m freeze (locked: freeze)"),
        ]
    );

    let events: Vec<Value> = serde_json::from_str(
        &env.c2(&["history", "--limit", "6", "--json-output"])
            .ok()
            .stdout,
    )
    .unwrap();
    let disconnect = &events[2];
    assert_eq!(disconnect["command"], json!(["disconnect", "main"]));
    assert_eq!(disconnect["after"], env.state());
    assert_eq!(
        disconnect["before"]["connections"],
        json!({"main": "shop-1.5"})
    );
    assert_eq!(
        format!(
            "{}@{}",
            disconnect["user"].as_str().unwrap(),
            disconnect["host"].as_str().unwrap()
        ),
        me
    );
    // One JSON line per event in the file, oldest first.
    let file = env.read("deploys/frontend-proxy/history.jsonl");
    assert_eq!(file.lines().count(), 8);
    let first: Value = serde_json::from_str(file.lines().next().unwrap()).unwrap();
    assert_eq!(first["command"], json!(["start", "shop-1.4.zip"]));
    assert_eq!(first["before"], json!({"deploys": {}, "connections": {}}));
}

#[test]
fn with_remote_state_the_history_is_the_masters() {
    for backend in remote::backends() {
        let master = remote::master_on(&backend);
        remote::publish_http(&master, &backend, "blue.zip");
        master.c2(&["start", "blue.zip"]).ok();
        master.c2(&["connect", "main", "blue"]).ok();
        master.c2(&["start", "blue.zip"]).ok();
        master
            .c2(&["stop", "blue"])
            .fails_with("deploy is connected to main");
        let (port, _) = master.port_range();
        // Another operator's machine reads the same history.
        let other = master.slave("ops-2");
        let me = me();
        assert_eq!(
            history(&other, &[]),
            [
                format!("T {me} start blue.zip (no change)"),
                format!("T {me} connect main blue (main: (none) -> blue)"),
                format!("T {me} start blue.zip (+blue (blue.zip on {port}))"),
            ]
        );
        if matches!(backend, Backend::Dir) {
            let names: Vec<String> = std::fs::read_dir(master.path("shared/history"))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
                .collect();
            assert_eq!(names.len(), 3, "{names:?}");
            let host = me.split_once('@').unwrap().1.to_string();
            for name in names {
                // 2026-11-23T03:12:09.123Z-<host>-<random>.json
                let (time, rest) = name.split_at(24);
                assert!(humantime::parse_rfc3339(time).is_ok(), "{name}");
                assert!(
                    rest.starts_with(&format!("-{host}-")) && rest.ends_with(".json"),
                    "{name}"
                );
            }
        }
    }
}

#[test]
fn noproxy_starts_and_stops_are_in_the_history() {
    let env = Env::new();
    for name in ["app-1.zip", "app-2.zip"] {
        env.release(name).publish();
        env.c2(&["start", name]).ok();
    }
    env.c2(&["stop", "app-2"]).ok();
    let me = me();
    assert_eq!(
        history(&env, &[]),
        [
            format!("T {me} stop app-2 (current: app-2 -> (none))"),
            format!("T {me} start app-2.zip (current: app-1 -> app-2)"),
            format!("T {me} start app-1.zip (current: (none) -> app-1)"),
        ]
    );
}

#[test]
fn a_malformed_event_is_skipped_with_a_warning() {
    // Local: a line of the history file.
    let env = Env::new();
    env.release("app-1.zip").publish();
    env.c2(&["start", "app-1.zip"]).ok();
    let file = env.path("deploys/frontend-proxy/history.jsonl");
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str("{\"time\": \n");
    std::fs::write(&file, text).unwrap();
    let out = env.c2(&["history"]).ok();
    assert_eq!(out.stdout.lines().count(), 1, "{out}");
    assert!(
        out.stderr.contains(&format!(
            "warning: {} line 2: invalid history event",
            file.display()
        )),
        "{out}"
    );

    // Remote: an object of the history folder.
    let master = remote::master_on(&Backend::Dir);
    publish(&master, master.release("app-1.zip"));
    master.c2(&["start", "app-1.zip"]).ok();
    let bad = master.path("shared/history/9999-12-31T00:00:00.000Z-x-0.json");
    std::fs::write(&bad, "[]").unwrap();
    let out = master.c2(&["history"]).ok();
    assert_eq!(out.stdout.lines().count(), 1, "{out}");
    assert!(
        out.stderr.contains(&format!(
            "warning: {}: invalid history event: expected a JSON object, found an array; skipped",
            bad.display()
        )),
        "{out}"
    );
}

/// A crash or a full disk in the middle of an append leaves a last line
/// without its end: the next event starts a line of its own instead of
/// being glued onto it, and `--limit N` counts only events it can read.
#[test]
fn a_torn_last_line_loses_no_later_event_and_limit_counts_readable_events() {
    let env = Env::new();
    env.release("app-1.zip").publish();
    env.release("app-2.zip").publish();
    env.c2(&["start", "app-1.zip"]).ok();
    let file = env.path("deploys/frontend-proxy/history.jsonl");
    let mut torn = std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap();
    std::io::Write::write_all(&mut torn, b"{\"time\": \"2026-12-").unwrap();
    env.c2(&["start", "app-2.zip"]).ok();
    let me = me();
    assert_eq!(
        history(&env, &[]),
        [
            format!("T {me} start app-2.zip (current: app-1 -> app-2)"),
            format!("T {me} start app-1.zip (current: (none) -> app-1)"),
        ]
    );

    // Unreadable lines after the newest event are not counted.
    std::io::Write::write_all(&mut torn, b"garbage\n[]\n{\"time\": 1}\n").unwrap();
    assert_eq!(
        history(&env, &["--limit", "1"]),
        [format!("T {me} start app-2.zip (current: app-1 -> app-2)")]
    );

    let master = remote::master_on(&Backend::Dir);
    publish(&master, master.release("app-1.zip"));
    master.c2(&["start", "app-1.zip"]).ok();
    for i in 0..3 {
        let bad = master.path(&format!(
            "shared/history/9999-12-31T00:00:0{i}.000Z-x-0.json"
        ));
        std::fs::write(&bad, "[]").unwrap();
    }
    assert_eq!(
        history(&master, &["--limit", "1"]),
        [format!(
            "T {me} start app-1.zip (+app-1 (app-1.zip on {}))",
            master.port_range().0
        )]
    );
}

/// The exit code and stderr of a spawned command, once it ends.
fn error_of(child: Child) -> (Option<i32>, String) {
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// The lock taken while a command waits for this machine (behind a slow
/// start) still stops it: the check that counts is the one made once the
/// command holds the machine, not the one made when it was typed.
#[test]
fn a_command_queued_behind_a_slow_start_is_refused_once_the_lock_is_taken() {
    for mode in [Mode::Noproxy, Mode::Local] {
        let env = mode.env();
        publish(&env, env.release("app-1.zip"));
        let go = env.path("go");
        let waiting = env.path("slow-is-preparing");
        publish(
            &env,
            env.release("slow.zip").set(
                "prestartCommand",
                json!(format!(
                    "touch {}; while [ ! -e {} ]; do sleep 0.05; done",
                    waiting.display(),
                    go.display()
                )),
            ),
        );
        if mode == Mode::Local {
            publish(&env, env.release("blue.zip"));
            env.c2(&["start", "blue.zip"]).ok();
        }
        let slow = env.c2(&["start", "slow.zip"]).spawn();
        wait_until(Duration::from_secs(30), "the slow prestart", || {
            waiting.exists()
        });
        let queued = match mode {
            Mode::Noproxy => env.c2(&["start", "app-1.zip"]).spawn(),
            _ => env.c2(&["connect", "main", "blue"]).spawn(),
        };
        wait_until(
            Duration::from_secs(30),
            "the second command to wait for the machine",
            || {
                std::fs::read_to_string(env.path("log/c2.log"))
                    .is_ok_and(|log| log.contains("Waiting for another c2 run to finish"))
            },
        );
        env.c2(&["lock", "acquire", "-m", "incident 42"]).ok();
        std::fs::write(&go, "").unwrap();
        let (code, _) = error_of(slow);
        assert_eq!(
            code,
            Some(0),
            "{mode:?}: the slow start began before the lock"
        );
        let (code, stderr) = error_of(queued);
        assert_eq!(code, Some(1), "{mode:?}: {stderr}");
        assert!(
            stderr.contains("c2: error: deploys are locked by") && stderr.contains("incident 42"),
            "{mode:?}: {stderr}"
        );
        match mode {
            Mode::Noproxy => assert_eq!(env.current().as_deref(), Some("slow")),
            _ => assert_eq!(env.state()["connections"], json!({})),
        }
        env.c2(&["lock", "release"]).ok();
    }
}

/// With remote state the master is checked for the lock right before it is
/// written: a start held up on the release store (here, its S3 request held
/// at a gate) while someone locks deploys does not write the master.
#[test]
fn a_master_change_held_up_before_its_write_is_refused_once_the_lock_is_taken() {
    let moto = Moto::shared();
    let mut master = remote::master_on(&Backend::Dir);
    let bucket = Moto::unique_bucket("lockrace");
    master.use_s3(moto, &bucket, "releases");
    master
        .release("app-1.zip")
        .publish_s3(moto, &bucket, "releases");
    let gate = Gate::start(moto.port, 0);
    let mut held = master.slave("master");
    held.env("S3_ENDPOINT", &format!("http://127.0.0.1:{}", gate.port));
    let start = held.c2(&["start", "app-1.zip"]).spawn();
    wait_until(
        Duration::from_secs(30),
        "the start to ask the release store",
        || gate.connections() >= 1,
    );
    master.c2(&["lock", "acquire", "-m", "incident 43"]).ok();
    gate.open();
    let (code, stderr) = error_of(start);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("deploys are locked by"), "{stderr}");
    assert_eq!(master.status_json()["master"]["deploys"], json!({}));
}

/// A lock.json that is a directory, or a FIFO (which would block a plain
/// read forever), refuses deploys at once with a hint that is true: c2
/// removes neither, the operator moves it away. The same holds for the
/// history and the state file.
#[test]
fn c2s_own_files_that_are_not_files_are_named_and_never_hang() {
    for mode in [Mode::Local, Mode::Dir] {
        let env = mode.env();
        publish(&env, env.release("app-1.zip"));
        let lock = env.path(mode.lock_file().unwrap());
        std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
        let expected = format!(
            "cannot read the deploy lock: {} is not a regular file (c2 neither reads nor removes it: move it away)",
            lock.display()
        );
        for make in ["dir", "fifo"] {
            match make {
                "dir" => std::fs::create_dir(&lock).unwrap(),
                _ => assert!(std::process::Command::new("mkfifo")
                    .arg(&lock)
                    .status()
                    .unwrap()
                    .success()),
            }
            for args in [
                &["lock", "status"][..],
                &["start", "app-1.zip"],
                &["lock", "release"],
            ] {
                let mut child = env.c2(args).spawn();
                wait_until(Duration::from_secs(20), "c2 to answer", || {
                    child.try_wait().unwrap().is_some()
                });
                let (code, stderr) = error_of(child);
                assert_eq!(code, Some(1), "{mode:?} {make} {args:?}: {stderr}");
                assert!(
                    stderr.contains(&expected),
                    "{mode:?} {make} {args:?}: {stderr}"
                );
            }
            assert!(lock.symlink_metadata().is_ok(), "{make} left in place");
            match make {
                "dir" => std::fs::remove_dir(&lock).unwrap(),
                _ => std::fs::remove_file(&lock).unwrap(),
            }
        }
        env.c2(&["start", "app-1.zip"]).ok();
    }

    let env = Mode::Local.env();
    for (file, args) in [
        ("history.jsonl", &["history"][..]),
        ("state.json", &["status"][..]),
    ] {
        let path = env.path(&format!("deploys/frontend-proxy/{file}"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        assert!(std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap()
            .success());
        let mut child = env.c2(args).spawn();
        wait_until(Duration::from_secs(20), "c2 to answer", || {
            child.try_wait().unwrap().is_some()
        });
        let (code, stderr) = error_of(child);
        assert_eq!(code, Some(1), "{file}: {stderr}");
        assert!(
            stderr.contains(&format!("{} is not a regular file", path.display())),
            "{file}: {stderr}"
        );
        std::fs::remove_file(&path).unwrap();
    }
}
