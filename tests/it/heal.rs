//! Deploys that stay up: `c2 heal` (local state) and every `slave-update`
//! round ask each deploy that has a health check, restart one that stopped
//! answering, give up on one that keeps dying, and say so in `status` and
//! in the slave's report. The deploys are tests/support/serve.py servers,
//! killed by their PID; traffic goes through the real nginx.

use std::process::{Child, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::await_slaves::Follower;
use crate::common::{wait_until, Env};
use crate::remote::{self, master_on, Backend};

/// The health check the watched releases carry in their release.json.
fn check() -> Value {
    json!({"path": "/up", "timeoutSeconds": 5})
}

/// Proxy mode with endpoint `main`, `blue` (with a health check) started
/// and connected, and `plain` (without one) started beside it.
fn watched_env() -> Env {
    let mut env = Env::new();
    env.proxy(&[("main", "main.example")]);
    env.http_release("blue.zip")
        .set("healthCheck", check())
        .publish();
    env.http_release("plain.zip").publish();
    env.c2(&["start", "blue.zip"]).ok();
    env.c2(&["start", "plain.zip"]).ok();
    env.c2(&["connect", "main", "blue"]).ok();
    env
}

/// Kills deploy `label`'s server (SIGKILL: it gets no say) and waits until
/// its port refuses connections.
fn kill_server(env: &Env, label: &str) {
    let pid: i32 = env
        .read(&format!("deploys/{label}/server.pid"))
        .trim()
        .parse()
        .unwrap();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
    let port = env.state()["deploys"][label]["port"].as_u64().unwrap() as u16;
    wait_until(Duration::from_secs(10), "the server to go", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
    });
}

/// `health.json`, parsed.
fn book(env: &Env) -> Value {
    serde_json::from_str(&env.read("deploys/frontend-proxy/health.json")).unwrap()
}

/// The line `status` prints for deploy `label`.
fn status_line(env: &Env, label: &str) -> String {
    env.c2(&["status"])
        .ok()
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{label} ")))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn heal_restarts_a_killed_deploy_after_three_failed_checks_and_leaves_one_without_a_check_alone() {
    let env = watched_env();
    env.c2(&["heal"]).ok();
    assert_eq!(book(&env)["deploys"]["blue"]["failures"], json!(0));
    assert!(
        book(&env)["deploys"]["plain"].is_null(),
        "no check, not watched"
    );

    kill_server(&env, "blue");
    kill_server(&env, "plain");
    assert_eq!(env.get("main.example", "/").status, 502);
    for n in 1..=2 {
        let out = env.c2(&["heal"]).ok();
        assert!(
            out.stdout.contains(&format!(
                "Deploy blue failed its health check ({n} of 3 before a restart): cannot connect"
            )),
            "{out}"
        );
        assert_eq!(env.get("main.example", "/").status, 502);
    }
    assert!(
        status_line(&env, "blue").contains(") unhealthy: cannot connect"),
        "{}",
        status_line(&env, "blue")
    );

    let out = env.c2(&["heal"]).ok();
    assert!(
        out.stdout
            .contains("Restarting deploy blue: cannot connect"),
        "{out}"
    );
    let answer = env.get("main.example", "/");
    assert_eq!((answer.status, answer.body.as_str()), (200, "blue /"));
    let record = &book(&env)["deploys"]["blue"];
    assert_eq!(
        (record["failures"].clone(), record["restartCount"].clone()),
        (json!(0), json!(1))
    );
    assert!(status_line(&env, "blue").ends_with(") healthy"));

    // The deploy without a check was never touched: still down.
    assert!(!out.stdout.contains("plain"), "{out}");
    let plain = env.state()["deploys"]["plain"]["port"].as_u64().unwrap() as u16;
    assert!(std::net::TcpStream::connect(("127.0.0.1", plain)).is_err());
}

/// Waits (boundedly) for `child` to exit.
fn finished(child: &mut Child) -> std::process::ExitStatus {
    let mut status = None;
    wait_until(Duration::from_secs(60), "the process to exit", || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    status.unwrap()
}

/// A `c2 heal --repeat` process, killed when dropped.
struct Loop(Child);

impl Loop {
    fn start(env: &Env, args: &[&str]) -> Loop {
        let out = std::fs::File::create(env.path("heal.out")).unwrap();
        let err = std::fs::File::create(env.path("heal.err")).unwrap();
        Loop(
            env.c2(args)
                .cmd
                .stdout(Stdio::from(out))
                .stderr(Stdio::from(err))
                .spawn()
                .unwrap(),
        )
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_release_that_dies_after_every_start_ends_flapping_after_five_restarts_and_stays_down() {
    let mut env = Env::new();
    env.proxy(&[("main", "main.example")]);
    env.http_release("brittle.zip")
        .set("healthCheck", check())
        .file("die-after", "1")
        .publish();
    env.c2(&["start", "brittle.zip"]).ok();
    let mut heal = Loop::start(&env, &["heal", "--repeat", "0.2"]);
    let restarts = || {
        std::fs::read_to_string(env.path("heal.out"))
            .unwrap_or_default()
            .matches("Restarting deploy brittle")
            .count()
    };
    wait_until(Duration::from_secs(120), "brittle to be flapping", || {
        env.exists("deploys/frontend-proxy/health.json")
            && book(&env)["deploys"]["brittle"]["flapping"] == json!(true)
    });
    assert_eq!(restarts(), 5);
    let err = env.read("heal.err");
    assert!(
        err.contains(
            "warning: deploy brittle is flapping (5 restarts within an hour): not restarting it"
        ),
        "{err}"
    );
    // Rounds go on (each counts a failed check), and none restarts it.
    let failures = book(&env)["deploys"]["brittle"]["failures"]
        .as_u64()
        .unwrap();
    wait_until(Duration::from_secs(60), "ten more rounds", || {
        book(&env)["deploys"]["brittle"]["failures"]
            .as_u64()
            .unwrap()
            >= failures + 10
    });
    assert_eq!(restarts(), 5);
    let line = status_line(&env, "brittle");
    let flapping = "; flapping: 5 restarts within an hour, not restarted until it answers again";
    assert!(
        line.contains("unhealthy: cannot connect") && line.ends_with(flapping),
        "{line}"
    );
    let json: Value =
        serde_json::from_str(&env.c2(&["status", "--json-output"]).ok().stdout).unwrap();
    let health = json["health"]["brittle"].as_str().unwrap_or_default();
    assert!(
        health.starts_with("unhealthy: ") && health.ends_with(flapping),
        "{json}"
    );

    // SIGTERM: the round under way ends, and so does the loop.
    crate::common::terminate(heal.0.id());
    let status = finished(&mut heal.0);
    assert!(status.success(), "{status:?}");
    assert!(env
        .read("heal.out")
        .contains("Stop requested: heal exiting"));
}

#[test]
fn a_corrupt_health_json_is_warned_about_and_rebuilt() {
    let env = watched_env();
    let file = env.path("deploys/frontend-proxy/health.json");
    for garbage in ["{\"deploys\": [", "[]", "\u{0}\u{ff}"] {
        std::fs::write(&file, garbage).unwrap();
        let out = env.c2(&["heal"]).ok();
        assert!(
            out.stderr.contains(&format!(
                "warning: {}: invalid health bookkeeping",
                file.display()
            )) && out.stderr.contains("; starting it afresh"),
            "{out}"
        );
        assert_eq!(book(&env)["deploys"]["blue"]["failures"], json!(0));
    }
    // A directory in its place is named, and nothing is restarted blindly.
    std::fs::remove_file(&file).unwrap();
    std::fs::create_dir(&file).unwrap();
    let out = env.c2(&["heal"]).output();
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("is not a regular file"), "{out}");
}

#[test]
fn heal_refuses_what_it_cannot_do_in_one_line() {
    let env = watched_env();
    for (period, why) in [
        ("soon", "'soon' is not a positive number of seconds"),
        ("0", "'0' is not a positive number of seconds"),
        (
            "1e-300",
            "1e-300 seconds is less than the shortest period, 0.1",
        ),
        (
            "2days",
            "2days seconds is more than the longest period, 86400 (one day)",
        ),
    ] {
        let out = env.c2(&["heal", "--repeat", period]).output();
        assert_eq!(out.code, Some(2), "{out}");
        assert!(
            out.stderr.contains(&format!(
                "invalid value '{period}' for '--repeat <PERIOD>': {why}"
            )),
            "{out}"
        );
    }
    Env::new()
        .c2(&["heal"])
        .fails_with("heal needs proxy mode (deployMode is noproxy in the config)");
    master_on(&Backend::Dir).c2(&["heal"]).fails_with(
        "heal watches a machine with local state; with remote state, slave-update watches each machine's deploys",
    );
}

/// The report of slave `label`'s deploy `deploy`, if any.
fn reported(master: &Env, label: &str, deploy: &str) -> Value {
    master
        .slave_report(label)
        .map(|r| r["state"]["deploys"][deploy].clone())
        .unwrap_or(Value::Null)
}

#[test]
fn a_slave_restarts_a_killed_deploy_reports_it_and_await_refuses_an_unhealthy_one() {
    for backend in remote::backends() {
        let master = master_on(&backend);
        for name in ["blue.zip", "green.zip"] {
            let release = master.http_release(name).set("healthCheck", check());
            remote::publish(&master, &backend, release);
        }
        master.c2(&["start", "blue.zip"]).ok();
        master.c2(&["start", "green.zip"]).ok();
        master.c2(&["connect", "main", "blue"]).ok();
        let web1 = master.slave("web1");
        let _follower = Follower::start(&web1);
        wait_until(
            Duration::from_secs(60),
            "web1 to report blue healthy",
            || reported(&master, "web1", "blue") == json!({"health": "healthy", "restarts": 0}),
        );
        assert_eq!(web1.get("main.example", "/").body, "blue /");

        // blue is killed, and answers 503 once restarted until the test
        // lets it be healthy: time to see the report say so.
        std::fs::write(web1.path("deploys/blue/up"), "503 warming up").unwrap();
        kill_server(&web1, "blue");
        wait_until(
            Duration::from_secs(60),
            "web1 to report blue unhealthy",
            || {
                reported(&master, "web1", "blue")["health"]
                    .as_str()
                    .is_some_and(|h| h.starts_with("unhealthy: "))
            },
        );
        wait_until(Duration::from_secs(60), "web1 to restart blue", || {
            web1.read("follower.out")
                .contains("Restarting deploy blue: ")
        });
        std::fs::remove_file(web1.path("deploys/blue/up")).unwrap();
        wait_until(Duration::from_secs(60), "blue healthy again", || {
            let now = reported(&master, "web1", "blue");
            now["health"] == "healthy" && now["restarts"].as_u64() >= Some(1)
        });
        assert_eq!(web1.get("main.example", "/").body, "blue /");
        let report = master.slave_report("web1").unwrap();
        assert_eq!(report["state"]["status"], json!("ok"), "{report}");

        // green stops answering on web1: its restart cannot help.
        std::fs::write(web1.path("deploys/green/up"), "500 sick").unwrap();
        wait_until(
            Duration::from_secs(60),
            "web1 to report green unhealthy",
            || {
                reported(&master, "web1", "green")["health"]
                    .as_str()
                    .is_some_and(|h| h.starts_with("unhealthy: 500 Internal Server Error"))
            },
        );
        let text = master.c2(&["status", "--show-slaves"]).ok().stdout;
        assert!(
            text.contains("  green (green.zip): (localhost:") && text.contains(") unhealthy: "),
            "{text}"
        );
        let out = master
            .c2(&["connect", "main", "green", "--await-slaves"])
            .fails_with("not every live slave runs deploy green: web1 (deploy green unhealthy: ");
        assert!(
            out.error_line().contains("500 Internal Server Error"),
            "{out}"
        );
        assert_eq!(web1.get("main.example", "/").body, "blue /");
        master
            .c2(&[
                "connect",
                "main",
                "green",
                "--await-slaves",
                "--force",
                "--timeout",
                "60s",
            ])
            .ok();
        assert_eq!(web1.state()["connections"]["main"], json!("green"));
    }
}

/// A restart waits for this machine's lock, and then restarts only the
/// very deploy it asked: here blue is being stopped (its stop command
/// held until the test says so) while heal, its third check under way,
/// is about to restart it.
#[test]
fn a_deploy_stopped_while_heal_waits_for_the_machine_is_not_restarted() {
    let mut env = Env::new();
    env.proxy(&[("main", "main.example")]);
    let go = env.path("go");
    env.http_release("blue.zip")
        .set("healthCheck", check())
        .set(
            "stopCommand",
            json!(format!(
                "kill $(cat server.pid); touch ../../stopping; while [ ! -e {} ]; do sleep 0.05; done",
                go.display()
            )),
        )
        .publish();
    env.c2(&["start", "blue.zip"]).ok();
    // A first round while healthy: this boot is known, no restart at once.
    env.c2(&["heal"]).ok();
    std::fs::write(env.path("deploys/blue/up"), "500 sick").unwrap();
    env.c2(&["heal"]).ok();
    env.c2(&["heal"]).ok();

    // The third check hangs: the stop begins meanwhile and holds the machine.
    std::fs::write(env.path("deploys/blue/up-hang"), "").unwrap();
    let mut heal = Loop::start(&env, &["heal"]);
    wait_until(Duration::from_secs(30), "heal's third check", || {
        env.exists("deploys/blue/hanging")
    });
    let mut stop = env
        .c2(&["stop", "blue"])
        .cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(
        Duration::from_secs(30),
        "blue's stop command to run",
        || env.exists("stopping"),
    );
    wait_until(
        Duration::from_secs(30),
        "heal to wait for the machine",
        || {
            env.read("heal.out")
                .contains("Waiting for another c2 run to finish")
        },
    );
    std::fs::write(&go, "").unwrap();
    assert!(finished(&mut stop).success());
    assert!(finished(&mut heal.0).success());
    let out = env.read("heal.out");
    assert!(
        out.contains("Deploy blue was stopped meanwhile: not restarting it"),
        "{out}"
    );
    assert!(!out.contains("Restarting deploy blue"), "{out}");
    assert!(!env.exists("deploys/blue"));
    // The next round forgets it.
    env.c2(&["heal"]).ok();
    assert!(book(&env)["deploys"]["blue"].is_null());
}
