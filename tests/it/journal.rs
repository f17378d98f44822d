//! The operators' journal: the deploy lock, which refuses every deploy
//! command while someone holds it, and the history of every change, in each
//! mode (noproxy, proxy with local state, remote state in a directory and
//! in S3 through moto).

use crate::common::{Env, Moto, ReleaseBuilder};
use crate::remote::{self, Backend};
use serde_json::{json, Value};

/// Where the lock and the history live.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Noproxy,
    Local,
    Dir,
    S3,
}

const ALL: [Mode; 4] = [Mode::Noproxy, Mode::Local, Mode::Dir, Mode::S3];
const PROXY: [Mode; 3] = [Mode::Local, Mode::Dir, Mode::S3];

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
        }
    }

    /// The deploy lock file, where it is a file.
    fn lock_file(self) -> Option<&'static str> {
        match self {
            Mode::Noproxy | Mode::Local => Some("deploys/frontend-proxy/lock.json"),
            Mode::Dir => Some("shared/lock.json"),
            Mode::S3 => None,
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
    for mode in [Mode::Noproxy, Mode::Dir, Mode::S3] {
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
