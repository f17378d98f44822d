//! Deploy health: a CreateDeploy with a health check is
//! complete only once the deploy answers its path with 2xx/3xx; connect
//! refuses an unhealthy deploy unless --force; local status shows health.
//! The releases are tests/support/serve.py, whose `GET /up` answers as the
//! file `up` in its deploy directory says. Time-outs are short to keep the
//! module fast.

use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{self, http, Env};

/// Proxy mode with endpoint `main` (main.example).
fn proxy_env() -> Env {
    let mut env = Env::new();
    env.proxy(&[("main", "main.example")]);
    env
}

/// serve.py processes of deploy `label` running from under the Env.
fn servers_of(env: &Env, label: &str) -> usize {
    let root = env.root.path().canonicalize().unwrap();
    let mut n = 0;
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if e.file_name().to_string_lossy().parse::<u32>().is_err() {
            continue;
        }
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).to_string())
            .collect();
        let cwd = std::fs::read_link(e.path().join("cwd")).unwrap_or_default();
        if args.iter().any(|a| a == "serve.py")
            && args.last().is_some_and(|a| a == label)
            && cwd.starts_with(&root)
        {
            n += 1;
        }
    }
    n
}

/// The ports of the Env's range that accept connections.
fn listening(env: &Env) -> Vec<u16> {
    let (lo, hi) = env.port_range();
    (lo..=hi)
        .map(|p| p as u16)
        .filter(|p| TcpStream::connect(("127.0.0.1", *p)).is_ok())
        .collect()
}

fn state_port(env: &Env, label: &str) -> u16 {
    env.state()["deploys"][label]["port"].as_u64().unwrap() as u16
}

/// Requests main.example / through nginx without pause until dropped;
/// every answer (status, body) is kept.
pub(crate) struct Load {
    stop: Arc<AtomicBool>,
    answers: Arc<Mutex<Vec<(u16, String)>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Load {
    pub(crate) fn start(env: &Env) -> Load {
        let port = env.http_port();
        let stop = Arc::new(AtomicBool::new(false));
        let answers = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, answers) = (stop.clone(), answers.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let r = http::get(port, "main.example", "/");
                    answers.lock().unwrap().push((r.status, r.body));
                }
            })
        };
        Load {
            stop,
            answers,
            thread: Some(thread),
        }
    }

    pub(crate) fn finish(mut self) -> Vec<(u16, String)> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        std::mem::take(&mut *self.answers.lock().unwrap())
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[test]
fn an_unhealthy_release_never_gets_traffic_and_leaves_nothing_behind() {
    let mut env = proxy_env();
    env.proxy_set(
        "deployHealthCheck",
        json!({"path": "/up", "timeoutSeconds": 2}),
    );
    env.http_release("blue.zip").publish();
    env.http_release("bad.zip")
        .file("up", "500 database unreachable")
        .publish();
    env.c2(&["start", "blue.zip"]).ok();
    env.c2(&["connect", "main", "blue"]).ok();
    let state_before = env.state();
    let load = Load::start(&env);

    let started = Instant::now();
    let out = env.c2(&["start", "bad.zip"]).output();
    let took = started.elapsed();
    assert_ne!(out.code, Some(0), "{out}");
    assert_eq!(
        out.error_line(),
        "c2: error: deploy bad: health check /up failed after 2 s: 500 Internal Server Error: \"database unreachable\"",
        "{out}"
    );
    assert!(took >= Duration::from_secs(2), "gave up after {took:?}");
    // Nothing left: no directory, no process, no port, no state entry.
    assert!(!env.exists("deploys/bad"));
    assert_eq!(servers_of(&env, "bad"), 0);
    assert_eq!(listening(&env), vec![state_port(&env, "blue")]);
    assert_eq!(env.state(), state_before);

    // A little more load after the failure, then the figures.
    let seen = load.answers.lock().unwrap().len();
    common::wait_until(Duration::from_secs(10), "more requests", || {
        load.answers.lock().unwrap().len() > seen + 20
    });
    let answers = load.finish();
    assert!(answers.len() > 50, "only {} requests", answers.len());
    let bad: Vec<_> = answers
        .iter()
        .filter(|(status, body)| *status != 200 || body != "blue /")
        .collect();
    assert!(
        bad.is_empty(),
        "{} of {} requests failed or went elsewhere: {:?}",
        bad.len(),
        answers.len(),
        &bad[..bad.len().min(5)]
    );
    // The endpoint still routes to blue, and connecting to bad is refused.
    assert_eq!(env.get("main.example", "/").body, "blue /");
    env.c2(&["connect", "main", "bad"]).fails_with("bad");
}

#[test]
fn a_release_healthy_after_a_few_seconds_passes_and_its_own_check_wins() {
    let mut env = proxy_env();
    // The config's check alone would give up after 1 s.
    env.proxy_set(
        "deployHealthCheck",
        json!({"just": {"path": "/up", "timeoutSeconds": 1}}),
    );
    env.http_release("slow.zip")
        .file("up-after", "2")
        .set(
            "healthCheck",
            json!({"just": {"path": "/up", "timeoutSeconds": 15}}),
        )
        .publish();
    let started = Instant::now();
    env.c2(&["start", "slow.zip"]).ok();
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert!(env.state()["deploys"]["slow"].is_object());
    env.c2(&["connect", "main", "slow"]).ok();
    assert_eq!(env.get("main.example", "/").body, "slow /");
}

#[test]
fn connect_refuses_an_unhealthy_deploy_unless_forced() {
    let env = proxy_env();
    env.http_release("blue.zip")
        .set("healthCheck", json!({"path": "/up"}))
        .publish();
    env.c2(&["start", "blue.zip"]).ok();
    common::write_file(&env.path("deploys/blue/up"), "503 maintenance");

    let out = env.c2(&["connect", "main", "blue"]).output();
    assert_eq!(
        out.error_line(),
        "c2: error: deploy blue is not healthy: 503 Service Unavailable: \"maintenance\"; not connecting (--force connects anyway)",
        "{out}"
    );
    assert_eq!(env.state()["connections"], json!({}));

    env.c2(&["connect", "main", "blue", "--force"]).ok();
    assert_eq!(env.state()["connections"], json!({"main": "blue"}));
    assert_eq!(env.get("main.example", "/").body, "blue /");
}

#[test]
fn rollback_refuses_to_go_back_to_an_unhealthy_deploy_unless_forced() {
    let env = proxy_env();
    for r in ["blue.zip", "green.zip"] {
        env.http_release(r)
            .set("healthCheck", json!({"path": "/up"}))
            .publish();
        env.c2(&["start", r]).ok();
    }
    env.c2(&["connect", "main", "blue"]).ok();
    env.c2(&["connect", "main", "green"]).ok();
    common::write_file(&env.path("deploys/blue/up"), "503 maintenance");

    let out = env.c2(&["rollback", "main"]).output();
    assert_eq!(
        out.error_line(),
        "c2: error: deploy blue is not healthy: 503 Service Unavailable: \"maintenance\"; not connecting (--force connects anyway)",
        "{out}"
    );
    assert_eq!(env.state()["connections"], json!({"main": "green"}));
    assert_eq!(env.get("main.example", "/").body, "green /");

    env.c2(&["rollback", "main", "--force"]).ok();
    assert_eq!(env.state()["connections"], json!({"main": "blue"}));
    assert_eq!(env.get("main.example", "/").body, "blue /");
}

#[test]
fn status_shows_the_health_of_each_deploy_with_a_check() {
    let env = proxy_env();
    let checked = json!({"path": "/up", "timeoutSeconds": 5});
    env.http_release("blue.zip")
        .set("healthCheck", checked.clone())
        .publish();
    env.http_release("green.zip")
        .set("healthCheck", checked)
        .publish();
    env.http_release("plain.zip").publish();
    for r in ["blue.zip", "green.zip", "plain.zip"] {
        env.c2(&["start", r]).ok();
    }
    common::write_file(&env.path("deploys/green/up"), "500 boom");
    let (blue, green, plain) = (
        state_port(&env, "blue"),
        state_port(&env, "green"),
        state_port(&env, "plain"),
    );

    let text = env.c2(&["status"]).ok().stdout;
    let deploys: Vec<&str> = text
        .lines()
        .skip_while(|l| *l != "Deploys:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    assert_eq!(
        deploys,
        vec![
            format!("  blue (blue.zip): (localhost:{blue}) healthy"),
            format!("  green (green.zip): (localhost:{green}) unhealthy: 500 Internal Server Error: \"boom\""),
            format!("  plain (plain.zip): (localhost:{plain})"),
        ],
        "{text}"
    );

    let out = env.c2(&["status", "--json-output"]).ok().stdout;
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["health"],
        json!({"blue": "healthy", "green": "unhealthy: 500 Internal Server Error: \"boom\""})
    );
    // The state's own shape is unchanged.
    assert_eq!(v["master"], env.state());
}

#[test]
fn bad_health_checks_are_one_line_errors_that_change_nothing() {
    for (check, field) in [
        (json!({"path": "up"}), "invalid URL path \"up\""),
        (
            json!({"path": "/up", "timeoutSeconds": 0}),
            "invalid timeoutSeconds 0",
        ),
        (
            json!({"path": "/up", "timeoutSeconds": -3}),
            "invalid timeoutSeconds -3",
        ),
        // Once accepted, and a panic after the start command had run.
        (
            json!({"path": "/up", "timeoutSeconds": i64::MAX}),
            "invalid timeoutSeconds 9223372036854775807: expected a whole number of seconds from 1 to 3600 (an hour)",
        ),
    ] {
        // In the config.
        let mut env = proxy_env();
        env.http_release("blue.zip").publish();
        env.proxy_set("deployHealthCheck", check.clone());
        let out = env.c2(&["start", "blue.zip"]).fails_with(field);
        assert!(
            out.error_line()
                .contains("deployMode.proxy.deployHealthCheck"),
            "{out}"
        );
        assert!(!env.exists("deploys/blue"));
        assert_eq!(env.state(), json!(null));

        // In release.json.
        let env = proxy_env();
        env.http_release("blue.zip")
            .set("healthCheck", json!({"just": check}))
            .publish();
        let out = env.c2(&["start", "blue.zip"]).fails_with(field);
        let line = out.error_line();
        assert!(line.contains("release.json: healthCheck"), "{out}");
        assert!(!env.exists("deploys/blue"));
        assert_eq!(env.state(), json!(null), "{out}");
    }
}

#[test]
fn a_slave_reports_a_failed_health_gate() {
    let mut master = proxy_env();
    let shared = master.path("shared").to_string_lossy().to_string();
    master.remote(&shared);
    master.proxy_set(
        "deployHealthCheck",
        json!({"path": "/up", "timeoutSeconds": 1}),
    );
    master
        .http_release("bad.zip")
        .file("up", "500 database unreachable")
        .publish();
    // The master cannot ask deploys that run on slaves: connect goes on.
    master.c2(&["start", "bad.zip"]).ok();
    master.c2(&["connect", "main", "bad"]).ok();
    let slave = master.slave("web1");

    let expected =
        "deploy bad: health check /up failed after 1 s: 500 Internal Server Error: \"database unreachable\"";
    slave.c2(&["slave-update"]).fails_with(expected);
    let report = master.slave_report("web1").expect("no report from web1");
    let error = report["state"]["status"]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(error.contains(expected), "{report}");
    assert_eq!(report["state"]["state"]["deploys"], json!({}));
    assert!(!slave.exists("deploys/bad"));
    assert_eq!(servers_of(&slave, "bad"), 0);
    assert!(!Path::new(&slave.path("deploys/bad")).exists());
}

/// A release.json with an absurd time-out is an error of that round on a
/// slave, never a panic: the slave goes on following the master.
#[test]
fn a_slave_given_an_absurd_health_time_out_reports_it_and_keeps_following() {
    let mut master = proxy_env();
    let shared = master.path("shared").to_string_lossy().to_string();
    master.remote(&shared);
    master
        .http_release("forever.zip")
        .set(
            "healthCheck",
            json!({"path": "/up", "timeoutSeconds": i64::MAX}),
        )
        .publish();
    master.c2(&["start", "forever.zip"]).ok();
    let slave = master.slave("web1");
    let out = slave
        .c2(&["slave-update"])
        .fails_with("invalid timeoutSeconds 9223372036854775807");
    assert!(!out.stderr.contains("panicked"), "{out}");
    assert!(!slave.exists("deploys/forever"));
    assert_eq!(servers_of(&slave, "forever"), 0);

    master.c2(&["stop", "forever"]).ok();
    slave.c2(&["slave-update"]).ok();
    let report = master.slave_report("web1").unwrap();
    assert_eq!(report["state"]["status"], json!("ok"), "{report}");

    // A wait too long for a clock is refused before the master is touched.
    let before = master.read("shared/master/state.json");
    let out = master
        .c2(&[
            "start",
            "forever.zip",
            "--await-slaves",
            "--timeout",
            "500000000000y",
        ])
        .output();
    assert_eq!(out.code, Some(2), "{out}");
    assert!(
        out.stderr
            .contains("'500000000000y' is longer than 1day, the longest allowed"),
        "{out}"
    );
    assert_eq!(master.read("shared/master/state.json"), before);
}

/// What a deploy answers, or a slave reports, is shown escaped: terminal
/// codes in a status line cannot recolour or clear the operator's screen.
#[test]
fn strings_from_deploys_and_slaves_reach_the_terminal_escaped() {
    let mut env = proxy_env();
    env.proxy_set(
        "deployHealthCheck",
        json!({"path": "/up", "timeoutSeconds": 1}),
    );
    let hostile = "\u{1b}[31mRED\u{1b}[2J\u{7}";
    env.http_release("red.zip")
        .file("up", "500 down")
        .file("up-reason", hostile)
        .publish();
    let out = env.c2(&["start", "red.zip"]).output();
    assert!(!out.stderr.contains('\u{1b}'), "{:?}", out.stderr);
    assert_eq!(
        out.error_line(),
        "c2: error: deploy red: health check /up failed after 1 s: 500 \\u{1b}[31mRED\\u{1b}[2J\\u{7}: \"down\""
    );

    env.http_release("blue.zip").publish();
    env.c2(&["start", "blue.zip"]).ok();
    std::fs::write(env.path("deploys/blue/up"), "500 down").unwrap();
    std::fs::write(env.path("deploys/blue/up-reason"), hostile).unwrap();
    let text = env.c2(&["status"]).ok().stdout;
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{7}'),
        "{text:?}"
    );
    assert!(text.contains("unhealthy: 500 \\u{1b}[31mRED"), "{text}");
    let json_text = env.c2(&["status", "--json-output"]).ok().stdout;
    let parsed: Value = serde_json::from_str(&json_text).unwrap();
    assert_eq!(
        parsed["health"]["blue"],
        "unhealthy: 500 \\u{1b}[31mRED\\u{1b}[2J\\u{7}: \"down\""
    );

    // A report with terminal codes and line breaks in every field.
    let mut master = proxy_env();
    let shared = master.path("shared").to_string_lossy().to_string();
    master.remote(&shared);
    common::write_file(
        &master.path("shared/slaves/web1/state.json"),
        &json!({
            "status": {"error": format!("bad\n{hostile}")},
            "ipAddress": format!("10.0.0.1{hostile}"),
            "hostName": "web\u{9b}2J\rweb9",
            "state": {},
        })
        .to_string(),
    );
    let text = master.c2(&["status", "--show-slaves"]).ok().stdout;
    assert!(
        !text.contains(['\u{1b}', '\u{9b}', '\r', '\u{7}']),
        "{text:?}"
    );
    assert!(
        text.contains("Slave Hostname: web\\u{9b}2J\\rweb9\n"),
        "{text}"
    );
    assert!(
        text.contains("Status: Error (bad\\n\\u{1b}[31mRED"),
        "{text}"
    );
    let json_text = master
        .c2(&["status", "--show-slaves", "--json-output"])
        .ok()
        .stdout;
    assert!(!json_text.contains('\u{9b}'), "{json_text:?}");
    let parsed: Value = serde_json::from_str(&json_text).unwrap();
    assert_eq!(
        parsed["slaves"][0]["state"]["hostName"], "web\u{9b}2J\rweb9",
        "JSON keeps the value, escaped"
    );
}

#[test]
fn a_redirect_is_healthy_and_a_silent_deploy_fails_with_the_connection_error() {
    let mut env = proxy_env();
    env.proxy_set(
        "deployHealthCheck",
        json!({"path": "/up", "timeoutSeconds": 1}),
    );
    env.http_release("moved.zip")
        .file("up", "302 elsewhere")
        .publish();
    env.c2(&["start", "moved.zip"]).ok();
    assert!(env.state()["deploys"]["moved"].is_object());

    // Its start command serves nothing.
    env.release("silent.zip")
        .set("startCommand", json!("true"))
        .set("stopCommand", json!("true"))
        .publish();
    let out = env.c2(&["start", "silent.zip"]).output();
    let line = out.error_line();
    assert!(
        line.starts_with(
            "c2: error: deploy silent: health check /up failed after 1 s: cannot connect to 127.0.0.1:"
        ) && line.ends_with("Connection refused (os error 111)"),
        "{out}"
    );
    assert!(!env.exists("deploys/silent"));
    assert!(env.state()["deploys"]["silent"].is_null());
}
