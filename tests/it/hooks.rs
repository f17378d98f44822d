//! Switch hooks: a release's own commands around every switch of traffic.
//! preConnectCommand may refuse a switch (nothing changes), a failing
//! postConnectCommand keeps the switch and fails the command, and
//! preDisconnectCommand is told and never blocks. Locally behind nginx
//! (under load), on slaves, and around noproxy's `current`.

use serde_json::json;

use crate::common::Env;
use crate::health::Load;
use crate::remote::{master_on, Backend};

/// A hook writing its endpoint (and its own name) to `<root>/<file>`, then
/// exiting with `code`.
fn hook(env: &Env, file: &str, code: i32) -> serde_json::Value {
    json!(format!(
        "echo \"$C2_DEPLOY_LABEL $C2_ENDPOINT\" >> {}; exit {code}",
        env.path(file).display()
    ))
}

/// Proxy mode with `blue` connected to `main` and `green` started; green's
/// release carries the `hooks` (release.json fields) made for the Env.
fn blue_and_green(hooks: impl Fn(&Env) -> Vec<(&'static str, serde_json::Value)>) -> Env {
    let mut env = Env::new();
    env.proxy(&[("main", "main.example")]);
    env.http_release("blue.zip")
        .set("preDisconnectCommand", hook(&env, "blue-leaving", 1))
        .publish();
    let mut green = env.http_release("green.zip");
    for (field, value) in hooks(&env) {
        green = green.set(field, value);
    }
    green.publish();
    env.c2(&["start", "blue.zip"]).ok();
    env.c2(&["start", "green.zip"]).ok();
    env.c2(&["connect", "main", "blue"]).ok();
    env
}

#[test]
fn a_refusing_pre_connect_keeps_the_endpoint_on_the_old_deploy_under_load() {
    let env = blue_and_green(|_| vec![("preConnectCommand", json!("exit 3"))]);
    let before = env.state();
    let load = Load::start(&env);
    for _ in 0..5 {
        let out = env.c2(&["connect", "main", "green"]).fails_with("");
        assert_eq!(
            out.error_line(),
            "c2: error: preConnectCommand of green failed with exit code 3: exit 3: the switch of main to green was refused, nothing changed"
        );
    }
    let answers = load.finish();
    assert!(answers.len() > 20, "{} requests", answers.len());
    let other: Vec<_> = answers
        .iter()
        .filter(|a| **a != (200, "blue /".into()))
        .collect();
    assert!(
        other.is_empty(),
        "{} of {}: {other:?}",
        other.len(),
        answers.len()
    );
    assert_eq!(env.state(), before, "nothing changed");
    assert!(
        !env.exists("blue-leaving"),
        "blue was never told it was leaving"
    );
    let history = env.c2(&["history", "--limit", "1"]).ok().stdout;
    assert!(history.contains("connect main blue"), "{history}");

    // The dry run names the hook it would run.
    let dry = env
        .c2(&["connect", "main", "green", "--dry-run"])
        .ok()
        .stdout;
    assert_eq!(
        dry,
        "Run preConnectCommand of green for main\nRun preDisconnectCommand of blue for main\nSetEndPoints main -> green\n"
    );
}

#[test]
fn a_failing_post_connect_keeps_the_switch_and_fails_the_command() {
    let env = blue_and_green(|env| {
        vec![
            ("preConnectCommand", hook(env, "green-coming", 0)),
            ("postConnectCommand", hook(env, "green-live", 4)),
        ]
    });

    let out = env.c2(&["connect", "main", "green"]).output();
    assert_eq!(out.code, Some(1), "{out}");
    assert_eq!(
        out.error_line(),
        "c2: error: postConnectCommand of green failed with exit code 4: ".to_string()
            + hook(&env, "green-live", 4).as_str().unwrap()
    );
    assert_eq!(
        env.get("main.example", "/").body,
        "green /",
        "the switch stays"
    );
    assert_eq!(env.state()["connections"], json!({"main": "green"}));
    assert_eq!(env.read("green-coming"), "green main\n");
    assert_eq!(env.read("green-live"), "green main\n");
    // Told it was leaving, failed, and did not block anything.
    assert_eq!(env.read("blue-leaving"), "blue main\n");
    // The switch was made: the history has it.
    let history = env.c2(&["history", "--limit", "1"]).ok().stdout;
    assert!(
        history.contains("connect main green (main: blue -> green)"),
        "{history}"
    );

    // Disconnecting tells green; its failing pre-disconnect blocks nothing.
    env.c2(&["disconnect", "main"]).ok();
    assert_eq!(env.get("main.example", "/").status, 503);
}

/// A release serving HTTP, except on a machine holding `<root>/quiet`: two
/// slaves on one test machine would share the master's ports.
fn serving_unless_quiet(master: &Env, name: &str) -> crate::common::ReleaseBuilder {
    let label = crate::common::stem(name);
    master
        .http_release(name)
        .set(
            "startCommand",
            json!(format!(
                "test -e ../../quiet || python3 serve.py $(cat port) {label}"
            )),
        )
        .set(
            "stopCommand",
            json!("test -e ../../quiet || kill $(cat server.pid)"),
        )
}

#[test]
fn on_a_slave_a_refusing_pre_connect_fails_only_that_slaves_round() {
    let master = master_on(&Backend::Dir);
    serving_unless_quiet(&master, "blue.zip").publish();
    serving_unless_quiet(&master, "green.zip")
        .set("preConnectCommand", json!("test ! -e ../../refuse"))
        .publish();
    master.c2(&["start", "blue.zip"]).ok();
    master.c2(&["start", "green.zip"]).ok();
    master.c2(&["connect", "main", "blue"]).ok();
    let (web1, web2) = (master.slave("web1"), master.slave("web2"));
    std::fs::write(web2.path("quiet"), "").unwrap();
    std::fs::write(web2.path("refuse"), "").unwrap();
    for slave in [&web1, &web2] {
        slave.c2(&["slave-update"]).ok();
    }
    assert_eq!(web1.get("main.example", "/").body, "blue /");

    master.c2(&["connect", "main", "green"]).ok();
    web1.c2(&["slave-update"]).ok();
    assert_eq!(web1.get("main.example", "/").body, "green /");
    web2.c2(&["slave-update"])
        .fails_with("preConnectCommand of green failed with exit code 1: test ! -e ../../refuse: the switch of main to green was refused, nothing changed");
    assert_eq!(web2.state()["connections"], json!({"main": "blue"}));
    let report = master.slave_report("web2").unwrap();
    let error = report["state"]["status"]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(
        error.contains("preConnectCommand of green failed"),
        "{report}"
    );
    assert_eq!(
        master.slave_report("web1").unwrap()["state"]["status"],
        json!("ok")
    );

    // Once it stops refusing, the next round switches.
    std::fs::remove_file(web2.path("refuse")).unwrap();
    web2.c2(&["slave-update"]).ok();
    assert_eq!(web2.state()["connections"], json!({"main": "green"}));
}

#[test]
fn without_a_proxy_the_hooks_run_around_the_switch_of_current() {
    let env = Env::new();
    env.release("r1.zip")
        .set("preDisconnectCommand", hook(&env, "r1-leaving", 1))
        .publish();
    env.release("r2.zip")
        .set("preConnectCommand", json!("test ! -e ../../refuse"))
        .set("postConnectCommand", hook(&env, "r2-live", 0))
        .publish();
    env.c2(&["start", "r1.zip"]).ok();

    // Refused: r1 stays live, untouched, and r2 leaves nothing behind.
    std::fs::write(env.path("refuse"), "").unwrap();
    let before = env.events();
    env.c2(&["start", "r2.zip"])
        .fails_with("preConnectCommand of r2 failed with exit code 1");
    assert_eq!(env.current().as_deref(), Some("r1"));
    assert!(!env.exists("deploys/r2"));
    assert!(!env.exists("r1-leaving"));
    assert_eq!(
        env.events()[before.len()..],
        ["prestart r2 r2"],
        "r1 was not stopped"
    );

    std::fs::remove_file(env.path("refuse")).unwrap();
    env.c2(&["start", "r2.zip"]).ok();
    assert_eq!(env.current().as_deref(), Some("r2"));
    assert_eq!(
        env.read("r1-leaving"),
        "r1 current\n",
        "told, and did not block"
    );
    assert_eq!(env.read("r2-live"), "r2 current\n");

    // A rollback runs them too, and lists the known ones in a dry run.
    let dry = env.c2(&["rollback", "--dry-run"]).ok().stdout;
    assert!(dry.contains("Stop r2\n"), "{dry}");
    env.c2(&["rollback"]).ok();
    assert_eq!(env.current().as_deref(), Some("r1"));
}
