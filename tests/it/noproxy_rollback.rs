//! Rollback without a proxy, FTL style: `c2 rollback` makes the release
//! that was live before the current one live again (its directory reused,
//! or fetched anew when it is gone), and a second rollback goes forward.

use serde_json::json;

use crate::common::Env;

/// Noproxy with `r1.zip` and `r2.zip` published, r1 then r2 started.
fn two_releases() -> Env {
    let env = Env::new();
    for name in ["r1.zip", "r2.zip"] {
        env.release(name).file("who", name).publish();
    }
    env.c2(&["start", "r1.zip"]).ok();
    env.c2(&["start", "r2.zip"]).ok();
    env
}

fn status(env: &Env) -> String {
    env.c2(&["status"]).ok().stdout
}

#[test]
fn rollback_goes_back_to_the_previous_release_and_a_second_goes_forward() {
    let env = two_releases();
    assert_eq!(status(&env), "Current release: r2\nPrevious release: r1\n");
    let dry = env.c2(&["rollback", "--dry-run"]).ok().stdout;
    assert_eq!(
        dry,
        format!(
            "Reuse {} as it is\nRun the prestart command of r1\nStop r2\nPoint current at r1\nStart r1\n",
            env.path("deploys/r1").display()
        )
    );
    assert_eq!(
        env.current().as_deref(),
        Some("r2"),
        "a dry run changes nothing"
    );

    let before = env.events().len();
    let out = env.c2(&["rollback"]).ok();
    assert!(
        out.stdout
            .contains("Starting r1.zip again from its directory"),
        "{out}"
    );
    assert_eq!(env.current().as_deref(), Some("r1"));
    assert_eq!(env.read("deploys/current/who"), "r1.zip");
    assert_eq!(
        env.events()[before..],
        ["prestart r1 r1", "stop r2 r2", "start r1 r1"],
        "r1's start ran again, in its own directory"
    );
    assert_eq!(status(&env), "Current release: r1\nPrevious release: r2\n");
    let json: serde_json::Value =
        serde_json::from_str(&env.c2(&["status", "--json-output"]).ok().stdout).unwrap();
    assert_eq!(json, json!({"current": "r1", "previous": "r2"}));

    env.c2(&["rollback"]).ok();
    assert_eq!(env.current().as_deref(), Some("r2"));
    assert_eq!(env.read("deploys/current/who"), "r2.zip");

    let history = env.c2(&["history", "--limit", "2"]).ok().stdout;
    let lines: Vec<&str> = history.lines().collect();
    assert!(
        lines[0].ends_with(" rollback (current: r1 -> r2)"),
        "{history}"
    );
    assert!(
        lines[1].ends_with(" rollback (current: r2 -> r1)"),
        "{history}"
    );
}

#[test]
fn a_previous_release_whose_directory_is_gone_is_fetched_anew() {
    let env = two_releases();
    std::fs::remove_dir_all(env.path("deploys/r1")).unwrap();
    let dry = env.c2(&["rollback", "--dry-run"]).ok().stdout;
    assert!(
        dry.starts_with(&format!(
            "Unpack r1.zip into {}\n",
            env.path("deploys/r1").display()
        )),
        "{dry}"
    );
    let out = env.c2(&["rollback"]).ok();
    assert!(out.stdout.contains("Fetching r1.zip from"), "{out}");
    assert_eq!(env.current().as_deref(), Some("r1"));
    assert_eq!(env.read("deploys/current/who"), "r1.zip");

    // Gone from the store as well: nothing to start again.
    std::fs::remove_dir_all(env.path("deploys/r2")).unwrap();
    std::fs::remove_file(env.path("store/r2.zip")).unwrap();
    env.c2(&["rollback"])
        .fails_with("previous release r2 is gone from the store");
    assert_eq!(env.current().as_deref(), Some("r1"), "nothing changed");
}

#[test]
fn rollback_without_a_proxy_says_what_it_cannot_do() {
    let env = Env::new();
    env.release("r1.zip").publish();
    env.c2(&["rollback"]).fails_with("no previous release");
    env.c2(&["start", "r1.zip"]).ok();
    env.c2(&["rollback"]).fails_with("no previous release");
    env.c2(&["rollback", "main"])
        .fails_with("noproxy mode has no endpoints: `c2 rollback` takes none (not main)");
    env.c2(&["rollback", "--await-slaves"])
        .fails_with("--await-slaves needs proxy mode");

    // After a stop, the stopped release is the one to go back to.
    env.c2(&["stop", "r1"]).ok();
    assert_eq!(
        status(&env),
        "Current release: (none)\nPrevious release: r1\n"
    );
    env.c2(&["rollback"]).ok();
    assert_eq!(env.current().as_deref(), Some("r1"));

    // While deploys are locked, a rollback is refused like any change.
    env.c2(&["lock", "acquire", "-m", "freeze"]).ok();
    env.c2(&["rollback"]).fails_with("deploys are locked by");
}

#[test]
fn proxy_mode_rollback_still_needs_its_endpoint() {
    let mut env = Env::new();
    env.proxy(&[("main", "main.example")]);
    env.c2(&["rollback"])
        .fails_with("rollback needs an endpoint in proxy mode: c2 rollback <endpoint>");
    env.c2(&["rollback", "--dry-run"])
        .fails_with("rollback needs an endpoint in proxy mode");
}
