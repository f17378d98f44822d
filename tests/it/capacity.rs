//! Capacity: `status` counts the ports of dynamicPortRange the deploys
//! hold, and a start that finds none free names the range and who holds it.

use serde_json::json;

use crate::common::Env;
use crate::remote::{backends, master_on, publish_http};

/// The `Ports:` line of a text status.
fn ports_line(status: &str) -> &str {
    status
        .lines()
        .find(|l| l.starts_with("Ports: "))
        .unwrap_or_else(|| panic!("no Ports line:\n{status}"))
}

#[test]
fn local_status_counts_the_ports_in_use_and_a_full_range_names_its_holders() {
    let mut env = Env::new();
    env.proxy(&[("main", "main.example")]);
    let (lo, _) = env.port_range();
    env.proxy_set("dynamicPortRange", json!({"v1": lo, "v2": lo + 2}));
    for r in ["blue.zip", "green.zip", "red.zip"] {
        env.http_release(r).publish();
    }
    let status = env.c2(&["status"]).ok().stdout;
    assert_eq!(
        ports_line(&status),
        format!("Ports: 0 of 2 in use ({lo}-{})", lo + 1)
    );

    env.c2(&["start", "blue.zip"]).ok();
    env.c2(&["start", "green.zip"]).ok();
    let status = env.c2(&["status"]).ok().stdout;
    assert!(
        status.ends_with(&format!(
            "  green (green.zip): (localhost:{})\n\nPorts: 2 of 2 in use ({lo}-{})\n",
            lo + 1,
            lo + 1
        )),
        "{status}"
    );
    let out = env.c2(&["status", "--json-output"]).ok().stdout;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ports"], json!({"used": 2, "total": 2}));
    assert_eq!(
        v["master"],
        env.state(),
        "the state's own shape is unchanged"
    );

    let state = env.state();
    let out = env.c2(&["start", "red.zip"]).output();
    assert_eq!(out.code, Some(1), "{out}");
    assert_eq!(
        out.error_line(),
        format!(
            "c2: error: no more ports available in {lo}-{} (dynamicPortRange): held by blue ({lo}), green ({}); stop a deploy or widen the range",
            lo + 1,
            lo + 1
        )
    );
    assert_eq!(env.state(), state);
    assert!(!env.exists("deploys/red"));
}

#[test]
fn remote_status_counts_the_master_deploys() {
    for backend in backends() {
        let mut master = master_on(&backend);
        let (lo, _) = master.port_range();
        master.proxy_set("dynamicPortRange", json!({"v1": lo, "v2": lo + 1}));
        publish_http(&master, &backend, "blue.zip");
        publish_http(&master, &backend, "green.zip");
        master.c2(&["start", "blue.zip"]).ok();

        let status = master.c2(&["status", "--show-slaves"]).ok().stdout;
        assert_eq!(
            ports_line(&status),
            format!("Ports: 1 of 1 in use ({lo}-{lo})")
        );
        // The master's line, before the slaves.
        assert!(
            status.contains(&format!(
                "\n\nPorts: 1 of 1 in use ({lo}-{lo})\n---------------------SLAVES"
            )),
            "{status}"
        );
        let v = master.status_json();
        assert_eq!(v["ports"], json!({"used": 1, "total": 1}));

        master.c2(&["start", "green.zip"]).fails_with(&format!(
            "c2: error: no more ports available in {lo}-{lo} (dynamicPortRange): held by blue ({lo}); stop a deploy or widen the range"
        ));
    }
}
