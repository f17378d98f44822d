//! Noproxy mode through the real binary: one live release behind
//! `deploysDir/current`, replaced by the next, and every way a start can fail
//! leaving the live release as it was.

use std::time::Duration;

use crate::common::{wait_until, Env, Format};
use serde_json::json;

fn env_with_context() -> Env {
    let mut env = Env::new();
    env.context_file("infra", r#"{"env": "prod", "db": {"host": "db1"}}"#);
    env
}

fn publish_app(env: &Env, name: &str, greeting: &str) {
    env.release(name)
        .template(
            "conf/app.conf.tpl",
            &format!(
                "{greeting} {{{{infra.env}}}} db={{{{infra.db.host}}}} v={{{{app.version}}}}\n"
            ),
        )
        .file("app.json", &format!(r#"{{"version": "{name}"}}"#))
        .set("configSources", json!({"app": "app.json"}))
        .publish();
}

#[test]
fn start_replace_stop_runs_each_step_in_order() {
    for format in [Format::Json, Format::Yaml] {
        let mut env = env_with_context();
        env.format(format);
        publish_app(&env, "app-1.zip", "hello");
        publish_app(&env, "app-2.zip", "bonjour");

        let out = env.c2(&["start", "app-1.zip"]).ok();
        assert_eq!(env.current().as_deref(), Some("app-1"));
        assert_eq!(
            env.read("deploys/app-1/conf/app.conf"),
            "hello prod db=db1 v=app-1.zip\n"
        );
        assert_eq!(env.events(), ["prestart app-1 app-1", "start app-1 app-1"]);
        let msgs = out.log_messages();
        for scope in [
            "Selecting active release app-1.zip",
            ".Running prestart script",
            ".Symlinking new release",
            ".Starting new release",
        ] {
            assert!(msgs.iter().any(|m| m == scope), "no {scope:?} in\n{out}");
        }

        // Replace: prestart of the new one before the old one stops.
        let out = env.c2(&["start", "app-2.zip"]).ok();
        assert!(out
            .log_messages()
            .iter()
            .any(|m| m == ".Stopping existing release"));
        assert_eq!(env.current().as_deref(), Some("app-2"));
        assert_eq!(
            env.events()[2..],
            [
                "prestart app-2 app-2",
                "stop app-1 app-1",
                "start app-2 app-2"
            ]
        );

        env.c2(&["stop", "app-2"]).ok();
        assert_eq!(env.current(), None);
        assert_eq!(env.events().last().unwrap(), "stop app-2 app-2");

        // The log file holds the same lines as stdout, appended run after run.
        let log = env.read("log/c2.log");
        assert!(log.contains("Selecting active release app-1.zip"));
        assert!(log.contains("Selecting active release app-2.zip"));
    }
}

#[test]
fn log_lines_are_timestamped_and_nested_with_dots() {
    let env = env_with_context();
    publish_app(&env, "app-1.zip", "hi");
    let out = env.c2(&["start", "app-1.zip"]).ok();
    let first = out.stdout.lines().next().unwrap();
    let (ts, msg) = first.split_once(' ').unwrap();
    assert!(
        ts.len() > 20 && ts.ends_with('Z') && ts.contains('T') && ts.contains('.'),
        "not an ISO-8601 UTC timestamp with fractional seconds: {ts}"
    );
    assert_eq!(msg, "Selecting active release app-1.zip");
    assert!(out
        .log_messages()
        .contains(&".Expanding template conf/app.conf.tpl".to_string()));
}

#[test]
fn status_shows_the_current_release() {
    let env = env_with_context();
    publish_app(&env, "app-1.zip", "hi");
    assert_eq!(env.c2(&["status"]).ok().stdout, "Current release: (none)\n");
    env.c2(&["start", "app-1.zip"]).ok();
    assert_eq!(env.c2(&["status"]).ok().stdout, "Current release: app-1\n");
    assert_eq!(
        env.c2(&["status", "--json-output"]).ok().stdout,
        "{\"current\":\"app-1\"}\n"
    );
}

#[test]
fn an_explicit_deploy_label_names_the_directory() {
    let env = env_with_context();
    publish_app(&env, "app-1.zip", "hi");
    env.c2(&["start", "app-1.zip", "blue"]).ok();
    assert_eq!(env.current().as_deref(), Some("blue"));
    assert!(env.exists("deploys/blue/conf/app.conf"));
}

#[test]
fn stop_of_another_name_warns_and_stops_the_current_release_as_the_old_tool_did() {
    // Camus2's own test suite runs `stop release.zip` after starting
    // another name: the argument is accepted whatever it is.
    let env = env_with_context();
    publish_app(&env, "app-1.zip", "hi");
    env.c2(&["start", "app-1.zip"]).ok();
    let out = env.c2(&["stop", "release.zip"]).ok();
    assert!(
        out.stderr.contains(
            "stop: 'release.zip' is not the current release (current is app-1); stopping app-1"
        ),
        "{out}"
    );
    assert_eq!(env.current(), None);
    assert_eq!(
        env.events().last().map(String::as_str),
        Some("stop app-1 app-1")
    );
}

#[test]
fn stop_of_the_current_release_or_its_zip_stops_it_without_a_warning() {
    let env = env_with_context();
    publish_app(&env, "app-1.zip", "hi");
    for name in ["app-1", "app-1.zip"] {
        env.c2(&["start", "app-1.zip"]).ok();
        let out = env.c2(&["stop", name]).ok();
        assert!(!out.stderr.contains("warning"), "{out}");
        assert_eq!(env.current(), None);
    }
}

#[test]
fn starting_the_live_release_again_redeploys_in_place() {
    let env = env_with_context();
    publish_app(&env, "app-1.zip", "hi");
    env.c2(&["start", "app-1.zip"]).ok();
    env.c2(&["start", "app-1.zip"]).ok();
    assert_eq!(env.current().as_deref(), Some("app-1"));
    assert_eq!(
        env.events(),
        [
            "prestart app-1 app-1",
            "start app-1 app-1",
            "prestart app-1 app-1",
            "stop app-1 app-1",
            "start app-1 app-1"
        ]
    );
}

/// Starts app-1, then runs `start <release>` expecting failure with `needle`,
/// and checks app-1 is still live and untouched, and no new dir remains.
fn assert_failed_start_keeps_live_release(env: &Env, release: &str, needle: &str) {
    env.c2(&["start", "app-1.zip"]).ok();
    let before = env.events();
    env.c2(&["start", release]).fails_with(needle);
    assert_eq!(env.current().as_deref(), Some("app-1"), "current moved");
    assert_eq!(env.events(), before, "a command of the live release ran");
    assert!(env.exists("deploys/app-1/conf/app.conf"));
    let label = release.trim_end_matches(".zip");
    assert!(
        !env.exists(&format!("deploys/{label}")),
        "the failed release's directory was left behind"
    );
}

#[test]
fn a_missing_release_is_named() {
    let env = env_with_context();
    publish_app(&env, "app-1.zip", "hi");
    let store = env.path("store");
    assert_failed_start_keeps_live_release(
        &env,
        "nope.zip",
        &format!(
            "Release nope.zip does not exist in release store at {}",
            store.display()
        ),
    );
}

#[test]
fn a_release_without_release_json_is_refused() {
    let env = env_with_context();
    publish_app(&env, "app-1.zip", "hi");
    env.release("bad.zip").without_release_json().publish();
    assert_failed_start_keeps_live_release(&env, "bad.zip", "release.json is missing");
}

#[test]
fn a_malformed_release_json_names_the_field() {
    let env = env_with_context();
    publish_app(&env, "app-1.zip", "hi");
    env.release("bad.zip")
        .raw_release_json(
            r#"{"templates": [], "prestartCommand": "", "startCommand": 3, "stopCommand": ""}"#,
        )
        .publish();
    assert_failed_start_keeps_live_release(
        &env,
        "bad.zip",
        "release.json: startCommand: invalid type",
    );
}

#[test]
fn a_template_that_does_not_parse_is_named() {
    let env = env_with_context();
    publish_app(&env, "app-1.zip", "hi");
    env.release("bad.zip")
        .template("broken.conf.tpl", "{{#section}} never closed\n")
        .publish();
    assert_failed_start_keeps_live_release(&env, "bad.zip", "broken.conf.tpl");
}

#[test]
fn a_failing_prestart_command_is_named_and_nothing_switches() {
    let env = env_with_context();
    publish_app(&env, "app-1.zip", "hi");
    env.release("bad.zip")
        .set("prestartCommand", json!("echo pulling; exit 7"))
        .publish();
    assert_failed_start_keeps_live_release(
        &env,
        "bad.zip",
        "prestartCommand of bad.zip failed with exit code 7: echo pulling; exit 7",
    );
}

#[test]
fn invalid_json_in_a_context_file_is_named() {
    let mut env = env_with_context();
    publish_app(&env, "app-1.zip", "hi");
    env.c2(&["start", "app-1.zip"]).ok();
    env.context_file("infra", "{not json");
    env.c2(&["start", "app-1.zip"])
        .fails_with("context source 'infra' (file ");
    assert_eq!(env.current().as_deref(), Some("app-1"));
}

#[test]
fn invalid_json_in_a_release_context_file_is_named() {
    let env = env_with_context();
    publish_app(&env, "app-1.zip", "hi");
    env.release("bad.zip")
        .file("app.json", "{oops")
        .set("configSources", json!({"app": "app.json"}))
        .publish();
    assert_failed_start_keeps_live_release(&env, "bad.zip", "app.json: invalid JSON");
}

#[test]
fn a_zip_entry_escaping_the_deploy_dir_is_refused_and_nothing_lands_outside() {
    let env = env_with_context();
    publish_app(&env, "app-1.zip", "hi");
    env.release("evil.zip")
        .file("../../escaped", "pwned")
        .publish();
    assert_failed_start_keeps_live_release(&env, "evil.zip", "../../escaped");
    assert!(!env.exists("escaped"));
    assert!(!env.exists("deploys/escaped"));

    env.release("evil2.zip").symlink("link", "/etc").publish();
    env.c2(&["start", "evil2.zip"]).fails_with("link");
    assert_eq!(env.current().as_deref(), Some("app-1"));

    env.release("evil3.zip")
        .symlink("up", "..")
        .file("up/escaped3", "pwned")
        .publish();
    env.c2(&["start", "evil3.zip"]).output();
    assert!(!env.exists("deploys/escaped3"), "wrote through a symlink");
    assert_eq!(env.current().as_deref(), Some("app-1"));
}

#[test]
fn a_template_path_outside_the_release_is_refused() {
    let env = env_with_context();
    publish_app(&env, "app-1.zip", "hi");
    env.release("bad.zip")
        .set("templates", json!(["../../etc/camus2.json"]))
        .publish();
    assert_failed_start_keeps_live_release(&env, "bad.zip", "must be relative and stay inside");
}

#[test]
fn a_failing_start_command_fails_the_run() {
    let env = env_with_context();
    publish_app(&env, "app-1.zip", "hi");
    env.release("app-3.zip")
        .set("startCommand", json!("exit 3"))
        .publish();
    env.c2(&["start", "app-3.zip"])
        .fails_with("startCommand of app-3.zip failed with exit code 3");
}

#[test]
fn templates_keep_their_permissions_and_missing_names_warn() {
    let mut env = Env::new();
    env.context_file("infra", r#"{"env": "prod"}"#);
    env.release("app-1.zip")
        .executable(
            "run.sh.tpl",
            "#!/bin/sh\necho {{infra.env}} {{nothere.x}}\n",
        )
        .set("templates", json!(["run.sh.tpl"]))
        .set("startCommand", json!("./run.sh > out.txt"))
        .publish();
    let out = env.c2(&["start", "app-1.zip"]).ok();
    assert_eq!(env.read("deploys/app-1/out.txt"), "prod\n");
    assert!(
        out.stderr.contains("warning:") && out.stderr.contains("nothere.x"),
        "no warning for the missing name:\n{out}"
    );
}

#[test]
fn concurrent_runs_are_serialised_by_a_lock() {
    let env = env_with_context();
    let events = env.path("events");
    for name in ["slow-a.zip", "slow-b.zip"] {
        let label = name.trim_end_matches(".zip");
        env.release(name)
            .set(
                "prestartCommand",
                json!(format!(
                    "echo 'begin {label}' >> {0}; sleep 1; echo 'end {label}' >> {0}",
                    events.display()
                )),
            )
            .set("startCommand", json!(""))
            .set("stopCommand", json!(""))
            .publish();
    }
    let a = env.c2(&["start", "slow-a.zip"]);
    let b = env.c2(&["start", "slow-b.zip"]);
    let ta = std::thread::spawn(move || a.output());
    // slow-a's prestart runs under the lock: b starts while a holds it.
    wait_until(
        Duration::from_secs(30),
        "slow-a's prestart to begin",
        || env.events().contains(&"begin slow-a".to_string()),
    );
    let tb = std::thread::spawn(move || b.output());
    let (oa, ob) = (ta.join().unwrap(), tb.join().unwrap());
    assert_eq!(oa.code, Some(0), "{oa}");
    assert_eq!(ob.code, Some(0), "{ob}");
    assert_eq!(
        env.events(),
        ["begin slow-a", "end slow-a", "begin slow-b", "end slow-b"]
    );
    assert!(
        ob.stdout.contains("Waiting for another c2 run to finish"),
        "{ob}"
    );
    assert_eq!(env.current().as_deref(), Some("slow-b"));
}

#[test]
fn a_dangling_current_link_does_not_block_the_next_deploy() {
    let env = env_with_context();
    publish_app(&env, "app-1.zip", "hi");
    publish_app(&env, "app-2.zip", "hey");
    env.c2(&["start", "app-1.zip"]).ok();
    std::fs::remove_dir_all(env.path("deploys/app-1")).unwrap();
    let out = env.c2(&["start", "app-2.zip"]).ok();
    assert!(out.stderr.contains("nothing to stop"), "{out}");
    assert_eq!(env.current().as_deref(), Some("app-2"));
}

#[test]
fn a_failing_stop_command_does_not_block_the_next_release() {
    let env = env_with_context();
    env.release("app-1.zip")
        .set("stopCommand", json!("exit 3"))
        .publish();
    publish_app(&env, "app-2.zip", "hey");
    env.c2(&["start", "app-1.zip"]).ok();
    // The new release goes live; the run then fails naming the old stop.
    let out = env
        .c2(&["start", "app-2.zip"])
        .fails_with("deploy app-1: stopCommand failed with exit code 3");
    assert!(
        out.stderr.contains("killing the processes it started"),
        "{out}"
    );
    assert_eq!(env.current().as_deref(), Some("app-2"));
    assert_eq!(
        env.events(),
        [
            "prestart app-1 app-1",
            "start app-1 app-1",
            "prestart app-2 app-2",
            "start app-2 app-2"
        ]
    );

    // Back to the broken release, then stop it: `current` goes all the same.
    env.c2(&["start", "app-1.zip"]).ok();
    assert_eq!(env.current().as_deref(), Some("app-1"));
    env.c2(&["stop", "app-1"])
        .fails_with("deploy app-1: stopCommand failed with exit code 3");
    assert_eq!(env.current(), None);
    env.c2(&["start", "app-2.zip"]).ok();
    assert_eq!(env.current().as_deref(), Some("app-2"));
}

#[test]
fn a_directory_c2_did_not_create_is_left_alone_and_the_start_fails() {
    let env = env_with_context();
    publish_app(&env, "app-1.zip", "hi");
    publish_app(&env, "app-2.zip", "hey");
    env.c2(&["start", "app-1.zip"]).ok();
    crate::common::write_file(&env.path("deploys/app-2/notes.txt"), "mine\n");
    env.c2(&["start", "app-2.zip"]).fails_with(&format!(
        "cannot use {}: it was not created by c2 (it has no .c2-deploy marker); move it away",
        env.path("deploys/app-2").display()
    ));
    assert_eq!(env.read("deploys/app-2/notes.txt"), "mine\n");
    assert!(!env.exists("deploys/app-2/release.json"));
    assert_eq!(env.current().as_deref(), Some("app-1"));
    assert_eq!(env.events(), ["prestart app-1 app-1", "start app-1 app-1"]);
}
