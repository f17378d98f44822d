//! `--dry-run` on start, stop, connect, disconnect and rollback: it prints
//! what the change would do (the planner's actions; noproxy's steps) and
//! changes nothing: no state, no deploy directory, no nginx reload, no log
//! line, no history event. The rules refuse what they would refuse anyway.

use std::path::Path;

use crate::common::Env;
use crate::remote;
use serde_json::Value;

/// Every file under `dir` with its bytes (an absent dir is empty), to show
/// that nothing was written.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            out.push((path.display().to_string(), Vec::new()));
            out.extend(snapshot(&path));
        } else {
            let bytes = std::fs::read(&path).unwrap_or_default();
            out.push((path.display().to_string(), bytes));
        }
    }
    out.sort();
    out
}

fn dry(env: &Env, args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.push("--dry-run");
    let out = env.c2(&all).ok();
    assert_eq!(out.stderr, "", "{out}");
    out.stdout
}

fn dry_fails(env: &Env, args: &[&str], error: &str) {
    let mut all = args.to_vec();
    all.push("--dry-run");
    let out = env.c2(&all).fails_with("");
    assert_eq!(out.error_line(), format!("c2: error: {error}"));
    // Exactly the error of the real command.
    let real = env.c2(args).fails_with("");
    assert_eq!(real.error_line(), out.error_line());
}

#[test]
fn with_local_state_a_dry_run_prints_the_planners_actions_and_changes_nothing() {
    let mut env = Env::new();
    env.proxy(&[("main", "main.example")]);
    let (port, _) = env.port_range();
    for name in ["shop-1.4.zip", "shop-1.5.zip"] {
        env.http_release(name).publish();
    }
    env.c2(&["start", "shop-1.4.zip"]).ok();
    env.c2(&["connect", "main", "shop-1.4"]).ok();
    let before = (snapshot(&env.path("deploys")), snapshot(&env.path("log")));

    assert_eq!(
        dry(&env, &["start", "shop-1.5.zip"]),
        format!("CreateDeploy shop-1.5 on port {}\n", port + 1)
    );
    assert_eq!(dry(&env, &["disconnect", "main"]), "SetEndPoints (none)\n");
    assert_eq!(
        dry(&env, &["connect", "main", "shop-1.4"]),
        "Nothing to do\n"
    );
    assert_eq!(
        dry(&env, &["start", "shop-1.4.zip"]),
        "Nothing to do\n",
        "the same deploy again"
    );
    assert_eq!(
        (snapshot(&env.path("deploys")), snapshot(&env.path("log"))),
        before,
        "a dry run wrote something"
    );
    assert!(!env.exists("deploys/shop-1.5"));
    assert_eq!(env.get("main.example", "/").body, "shop-1.4 /");

    dry_fails(
        &env,
        &["connect", "main", "shop-1.5"],
        "no deploy called shop-1.5",
    );
    dry_fails(
        &env,
        &["stop", "shop-1.4"],
        "deploy is connected to main: connect main to another deploy or disconnect it first",
    );
    dry_fails(
        &env,
        &["rollback", "main"],
        "no previous deploy for endpoint main",
    );
    dry_fails(
        &env,
        &["start", "missing.zip"],
        &format!(
            "Release missing.zip does not exist in release store at {}",
            env.path("store").display()
        ),
    );

    env.c2(&["start", "shop-1.5.zip"]).ok();
    env.c2(&["connect", "main", "shop-1.5"]).ok();
    assert_eq!(
        dry(&env, &["stop", "shop-1.4"]),
        format!("DestroyDeploy shop-1.4 on port {port}\n")
    );
    assert_eq!(
        dry(&env, &["rollback", "main"]),
        "SetEndPoints main -> shop-1.4\n"
    );

    // Allowed while deploys are locked, saying the real command is not.
    env.c2(&["lock", "acquire", "-m", "freeze"]).ok();
    let before = snapshot(&env.path("deploys"));
    let out = env.c2(&["rollback", "main", "--dry-run"]).ok();
    assert_eq!(out.stdout, "SetEndPoints main -> shop-1.4\n");
    let warning = out.stderr.lines().collect::<Vec<_>>();
    assert_eq!(warning.len(), 1, "{out}");
    assert!(
        warning[0].contains("warning: deploys are locked by ")
            && warning[0].ends_with(": freeze; without --dry-run this command would be refused"),
        "{out}"
    );
    assert_eq!(snapshot(&env.path("deploys")), before);
}

#[test]
fn with_remote_state_a_dry_run_shows_what_the_master_change_would_make_slaves_do() {
    for backend in remote::backends() {
        let master = remote::master_on(&backend);
        remote::publish_http(&master, &backend, "blue.zip");
        remote::publish_http(&master, &backend, "green.zip");
        master.c2(&["start", "blue.zip"]).ok();
        master.c2(&["connect", "main", "blue"]).ok();
        let (port, _) = master.port_range();
        let location = master.config()["deployMode"]["proxy"]["remoteStateS3"]["just"]
            .as_str()
            .unwrap()
            .to_string();
        let header = format!("Master state at {location}: a slave in sync with it would do\n");
        let status = master.status_json();
        let history = master.c2(&["history", "--json-output"]).ok().stdout;
        let files = snapshot(&master.path("shared"));

        assert_eq!(
            dry(&master, &["start", "green.zip"]),
            format!("{header}CreateDeploy green on port {}\n", port + 1)
        );
        // No live slave, yet no refusal and no wait: nothing is written.
        assert_eq!(
            dry(&master, &["connect", "main", "blue", "--await-slaves"]),
            format!("{header}Nothing to do\n")
        );
        assert_eq!(
            dry(
                &master,
                &["disconnect", "main", "--await-slaves", "--timeout", "1h"]
            ),
            format!("{header}SetEndPoints (none)\n")
        );
        dry_fails(
            &master,
            &["stop", "blue"],
            "deploy is connected to main: connect main to another deploy or disconnect it first",
        );
        dry_fails(
            &master,
            &["connect", "nope", "blue"],
            "no endpoint called nope (configured: main)",
        );

        assert_eq!(master.status_json(), status);
        assert_eq!(
            master.c2(&["history", "--json-output"]).ok().stdout,
            history
        );
        assert_eq!(snapshot(&master.path("shared")), files);
        assert!(!master.exists("deploys/green"));
    }
}

#[test]
fn in_noproxy_mode_a_dry_run_lists_the_steps_of_a_start_or_stop() {
    let env = Env::new();
    env.release("app-1.zip").publish();
    env.release("app-2.zip").publish();
    assert_eq!(
        dry(&env, &["stop", "app-1"]),
        "Nothing to do: no current release\n"
    );
    env.c2(&["start", "app-1.zip"]).ok();
    let before = (
        snapshot(&env.path("deploys")),
        snapshot(&env.path("log")),
        env.events(),
    );

    assert_eq!(
        dry(&env, &["start", "app-2.zip"]),
        format!(
            "Unpack app-2.zip into {}\nStop app-1\nPoint current at app-2\nStart app-2\n",
            env.path("deploys/app-2").display()
        )
    );
    assert_eq!(
        dry(&env, &["stop", "app-1"]),
        "Stop app-1\nRemove current\n"
    );
    dry_fails(
        &env,
        &["connect", "main", "app-1"],
        "connect needs proxy mode (deployMode is noproxy in the config)",
    );
    assert_eq!(
        (
            snapshot(&env.path("deploys")),
            snapshot(&env.path("log")),
            env.events()
        ),
        before
    );
    assert_eq!(env.current().as_deref(), Some("app-1"));
    let history: Vec<Value> =
        serde_json::from_str(&env.c2(&["history", "--json-output"]).ok().stdout).unwrap();
    assert_eq!(history.len(), 1);
}
