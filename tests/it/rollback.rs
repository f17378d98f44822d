//! Rollback: every connect, disconnect and rollback records
//! the deploy it replaced; `c2 rollback <endpoint>` goes back to it, through
//! the real nginx locally and through the master in remote mode (directory and S3).

use std::time::Duration;

use crate::common::{self, switching, Env};
use crate::remote;
use serde_json::json;

/// Proxy mode with endpoint `main` and deploys `shop-1.4` and `shop-1.5`
/// started, nothing connected.
fn shop_env() -> Env {
    let mut env = Env::new();
    env.proxy(&[("main", "main.example")]);
    for name in ["shop-1.4.zip", "shop-1.5.zip"] {
        env.http_release(name).publish();
        env.c2(&["start", name]).ok();
    }
    env
}

fn error_of(env: &Env, args: &[&str]) -> String {
    env.c2(args).fails_with("").error_line()
}

#[test]
fn rollback_toggles_an_endpoint_under_load_without_losing_a_request() {
    let _heavy = common::heavy();
    let env = switching::blue_green_env();
    // blue connected, green its previous deploy: each rollback toggles.
    env.c2(&["connect", "main", "green"]).ok();
    env.c2(&["connect", "main", "blue"]).ok();
    let figures = switching::run_with(&env, 10, Duration::from_millis(150), |env, to| {
        env.c2(&["rollback", "main"]).ok();
        let from = if to == "blue" { "green" } else { "blue" };
        let state = env.state();
        assert_eq!(state["connections"], json!({"main": to}));
        assert_eq!(state["previousConnections"], json!({"main": from}));
    });
    figures.record("host nginx, rollback", "rollback-host.txt");
    figures.assert_no_downtime("host nginx, rollback");
}

#[test]
fn rollback_goes_back_and_forth_then_after_a_disconnect_reconnects() {
    let env = shop_env();
    env.c2(&["connect", "main", "shop-1.4"]).ok();
    env.c2(&["connect", "main", "shop-1.5"]).ok();
    assert_eq!(env.get("main.example", "/").body, "shop-1.5 /");
    assert_eq!(
        env.state()["previousConnections"],
        json!({"main": "shop-1.4"})
    );

    env.c2(&["rollback", "main"]).ok();
    assert_eq!(env.get("main.example", "/").body, "shop-1.4 /");
    assert_eq!(env.state()["connections"], json!({"main": "shop-1.4"}));
    assert_eq!(
        env.state()["previousConnections"],
        json!({"main": "shop-1.5"})
    );
    env.c2(&["rollback", "main"]).ok();
    assert_eq!(env.get("main.example", "/").body, "shop-1.5 /");
    assert_eq!(
        env.state()["previousConnections"],
        json!({"main": "shop-1.4"})
    );

    env.c2(&["disconnect", "main"]).ok();
    assert_eq!(env.get("main.example", "/").status, 503);
    assert_eq!(
        env.state()["previousConnections"],
        json!({"main": "shop-1.5"})
    );
    env.c2(&["rollback", "main"]).ok();
    assert_eq!(env.get("main.example", "/").body, "shop-1.5 /");
    let state = env.state();
    assert_eq!(state["connections"], json!({"main": "shop-1.5"}));
    assert!(
        state.get("previousConnections").is_none(),
        "a rollback after a disconnect leaves no previous entry: {state}"
    );
    assert_eq!(
        error_of(&env, &["rollback", "main"]),
        "c2: error: no previous deploy for endpoint main"
    );
}

#[test]
fn rollback_errors() {
    let env = shop_env();
    assert_eq!(
        error_of(&env, &["rollback", "main"]),
        "c2: error: no previous deploy for endpoint main"
    );
    assert_eq!(
        error_of(&env, &["rollback", "nope"]),
        error_of(&env, &["connect", "nope", "shop-1.4"])
    );
    env.c2(&["rollback", "nope"])
        .fails_with("no endpoint called nope");

    env.c2(&["connect", "main", "shop-1.4"]).ok();
    env.c2(&["connect", "main", "shop-1.5"]).ok();
    // Only connected deploys are protected: the previous one may stop.
    env.c2(&["stop", "shop-1.4"]).ok();
    assert!(!env.exists("deploys/shop-1.4"));
    assert_eq!(
        error_of(&env, &["rollback", "main"]),
        "c2: error: previous deploy shop-1.4 of endpoint main was stopped"
    );
    assert_eq!(env.get("main.example", "/").body, "shop-1.5 /");
    assert_eq!(env.state()["connections"], json!({"main": "shop-1.5"}));

    // Noproxy mode rolls back its live release, and has no endpoint to
    // name (see noproxy_rollback.rs).
    let noproxy = Env::new();
    assert_eq!(
        error_of(&noproxy, &["rollback", "main"]),
        "c2: error: noproxy mode has no endpoints: `c2 rollback` takes none (not main)"
    );
    noproxy
        .c2(&["rollback", "--force"])
        .fails_with("no previous release");
}

#[test]
fn state_files_without_rollback_information_stay_as_they_were() {
    let env = shop_env();
    // Connecting an unconnected endpoint replaces nothing: nothing recorded.
    env.c2(&["connect", "main", "shop-1.4"]).ok();
    let (p4, p5) = {
        let s = env.state();
        (
            s["deploys"]["shop-1.4"]["port"].clone(),
            s["deploys"]["shop-1.5"]["port"].clone(),
        )
    };
    // Exactly what c2 wrote before previousConnections existed.
    let old_format = format!(
        r#"{{
  "deploys": {{
    "shop-1.4": {{
      "label": "shop-1.4",
      "release": "shop-1.4.zip",
      "port": {p4}
    }},
    "shop-1.5": {{
      "label": "shop-1.5",
      "release": "shop-1.5.zip",
      "port": {p5}
    }}
  }},
  "connections": {{
    "main": "shop-1.4"
  }}
}}
"#
    );
    let state_file = "deploys/frontend-proxy/state.json";
    assert_eq!(env.read(state_file), old_format);
    // A connect to the deploy already connected records nothing either.
    env.c2(&["connect", "main", "shop-1.4"]).ok();
    assert_eq!(env.read(state_file), old_format);

    // An old file in another layout loads, and the next change records.
    common::write_file(
        &env.path(state_file),
        &serde_json::to_string(&env.state()).unwrap(),
    );
    env.c2(&["connect", "main", "shop-1.5"]).ok();
    assert_eq!(
        env.state()["previousConnections"],
        json!({"main": "shop-1.4"})
    );
    assert_eq!(env.get("main.example", "/").body, "shop-1.5 /");
}

#[test]
fn rollback_in_remote_mode_edits_the_master_and_slaves_follow() {
    for backend in remote::backends() {
        let master = remote::master_on(&backend);
        remote::publish_http(&master, &backend, "blue.zip");
        remote::publish_http(&master, &backend, "green.zip");
        let slave = master.slave("web1");

        master.c2(&["start", "blue.zip"]).ok();
        master.c2(&["start", "green.zip"]).ok();
        master
            .c2(&["rollback", "main"])
            .fails_with("no previous deploy for endpoint main");
        master.c2(&["connect", "main", "blue"]).ok();
        master.c2(&["connect", "main", "green"]).ok();
        slave.c2(&["slave-update"]).ok();
        assert_eq!(slave.get("main.example", "/").body, "green /");

        for (to, from) in [("blue", "green"), ("green", "blue")] {
            master.c2(&["rollback", "main"]).ok();
            let status = master.status_json();
            assert_eq!(status["master"]["connections"], json!({"main": to}));
            assert_eq!(
                status["master"]["previousConnections"],
                json!({"main": from})
            );
            assert!(!master.exists("deploys/blue"), "nothing runs on the master");
            assert_eq!(master.slave_report("web1").unwrap()["inSync"], json!(false));

            slave.c2(&["slave-update"]).ok();
            assert_eq!(slave.get("main.example", "/").body, format!("{to} /"));
            let report = master.slave_report("web1").unwrap();
            assert_eq!(report["state"]["state"], master.status_json()["master"]);
            assert_eq!(report["inSync"], json!(true));
        }

        master.c2(&["stop", "blue"]).ok();
        master
            .c2(&["rollback", "main"])
            .fails_with("previous deploy blue of endpoint main was stopped");
    }
}

/// A previous connection names the deploy it meant, label and release: a
/// deploy started later under the label of a stopped one (here
/// `experimental.zip` as `blue`) does not get the endpoint's traffic back
/// on a rollback, locally through nginx and through the master.
#[test]
fn rollback_never_routes_to_a_deploy_that_reused_a_stopped_deploys_label() {
    let refusal = "c2: error: previous deploy blue (shop-1.4.zip) of endpoint main was stopped; deploy blue now runs experimental.zip: connect to it explicitly if that is what you want";
    let story = |env: &Env| {
        env.c2(&["start", "shop-1.4.zip", "blue"]).ok();
        env.c2(&["start", "shop-1.5.zip", "green"]).ok();
        env.c2(&["connect", "main", "blue"]).ok();
        env.c2(&["connect", "main", "green"]).ok();
        env.c2(&["stop", "blue"]).ok();
        env.c2(&["start", "experimental.zip", "blue"]).ok();
        assert_eq!(error_of(env, &["rollback", "main"]), refusal);
        assert_eq!(error_of(env, &["rollback", "main", "--dry-run"]), refusal);
    };

    let mut env = Env::new();
    env.proxy(&[("main", "main.example")]);
    for name in ["shop-1.4.zip", "shop-1.5.zip", "experimental.zip"] {
        env.http_release(name).publish();
    }
    story(&env);
    assert_eq!(env.get("main.example", "/").body, "shop-1.5 /");
    assert_eq!(env.state()["connections"], json!({"main": "green"}));

    for backend in remote::backends() {
        let master = remote::master_on(&backend);
        for name in ["shop-1.4.zip", "shop-1.5.zip", "experimental.zip"] {
            remote::publish_http(&master, &backend, name);
        }
        story(&master);
        assert_eq!(
            master.status_json()["master"]["connections"],
            json!({"main": "green"})
        );
    }
}
