//! The environment of a release's commands: C2_RELEASE, C2_DEPLOY_LABEL,
//! C2_DEPLOY_DIR and, in proxy mode, C2_PORT_<NAME> — the same for the stop
//! command of a later c2 run, or of a slave, as for the start.

use crate::common::{Env, PORT_RANGE_WIDTH};
use crate::remote::{master_on, Backend};

/// A release whose every command appends `<command> NAME=value` for each
/// C2_ variable it sees (but the process tag) to `<root>/envs`.
fn publish_env_writer(env: &Env, name: &str) {
    let record = |what: &str| {
        serde_json::json!(format!(
            "env | grep '^C2_' | grep -v '^C2_DEPLOY_TAG=' | sort | sed 's/^/{what} /' >> ../../envs"
        ))
    };
    env.release(name)
        .set("prestartCommand", record("prestart"))
        .set("startCommand", record("start"))
        .set("stopCommand", record("stop"))
        .publish();
}

/// What each command of the deploy `label` of `shop-1.5.zip` on `machine`
/// should see, with `ports` (name, port) in proxy mode.
fn expected(machine: &Env, label: &str, ports: &[(&str, u32)]) -> Vec<String> {
    let dir = machine.path(&format!("deploys/{label}"));
    let mut vars = vec![
        format!("C2_DEPLOY_DIR={}", dir.display()),
        format!("C2_DEPLOY_LABEL={label}"),
    ];
    vars.extend(ports.iter().map(|(n, p)| format!("C2_PORT_{n}={p}")));
    vars.push("C2_RELEASE=shop-1.5.zip".to_string());
    ["prestart", "start", "stop"]
        .iter()
        .flat_map(|what| vars.iter().map(move |v| format!("{what} {v}")))
        .collect()
}

fn envs(machine: &Env) -> Vec<String> {
    machine.read("envs").lines().map(str::to_string).collect()
}

/// The ports context of a deploy on the first port of `machine`'s range.
fn first_ports(machine: &Env) -> Vec<(&'static str, u32)> {
    let (lo, _) = machine.port_range();
    let w = PORT_RANGE_WIDTH;
    vec![
        ("EXTRA1", lo + w),
        ("EXTRA2", lo + 2 * w),
        ("EXTRA3", lo + 3 * w),
        ("EXTRA4", lo + 4 * w),
        ("HTTP", lo),
    ]
}

#[test]
fn noproxy_commands_know_their_release_and_deploy() {
    let env = Env::new();
    publish_env_writer(&env, "shop-1.5.zip");
    // A value c2 inherits (run from another release's command) does not leak.
    env.c2(&["start", "shop-1.5.zip"])
        .env("C2_PORT_HTTP", "1")
        .env("C2_RELEASE", "other.zip")
        .ok();
    env.c2(&["stop", "shop-1.5"]).ok();
    assert_eq!(envs(&env), expected(&env, "shop-1.5", &[]));
}

#[test]
fn proxy_commands_also_get_their_ports_and_a_later_stop_the_same() {
    let mut env = Env::new();
    env.proxy(&[("main", "main.example")]);
    publish_env_writer(&env, "shop-1.5.zip");
    env.c2(&["start", "shop-1.5.zip", "shop"]).ok();
    env.c2(&["stop", "shop"]).ok();
    assert_eq!(envs(&env), expected(&env, "shop", &first_ports(&env)));
}

#[test]
fn a_slave_gives_its_commands_the_same_environment() {
    let master = master_on(&Backend::Dir);
    publish_env_writer(&master, "shop-1.5.zip");
    let slave = master.slave("web1");
    master.c2(&["start", "shop-1.5.zip", "shop"]).ok();
    slave.c2(&["slave-update"]).ok();
    master.c2(&["stop", "shop"]).ok();
    slave.c2(&["slave-update"]).ok();
    assert!(!master.exists("envs"), "nothing ran on the master");
    assert_eq!(envs(&slave), expected(&slave, "shop", &first_ports(&slave)));
}
