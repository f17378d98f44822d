//! A real fleet: each slave on a host of its own (a container on a private
//! docker network, tests/it/common/fleet_hosts.rs) with its own address,
//! host name and nginx, all following one master in S3 over the network.
//! Without a Docker engine these tests print why and pass without running.

use std::time::Duration;

use crate::common::docker;
use crate::common::fleet_hosts::{Bed, Host, ENDPOINT};
use crate::common::wait_until;
use serde_json::{json, Value};

/// Waits until `n` hosts report being in sync, showing their logs if not.
fn converge(bed: &Bed, n: usize, within: Duration) {
    let deadline = std::time::Instant::now() + within;
    while bed.in_sync() < n {
        if std::time::Instant::now() > deadline {
            panic!(
                "{} of {n} hosts in sync after {within:?}:\n{:#}\n{}",
                bed.in_sync(),
                json!(bed.reports()),
                bed.logs()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The report of `host` in the operator's `status`.
fn report_of(bed: &Bed, label: &str) -> Value {
    bed.reports()
        .into_iter()
        .find(|r| r["label"] == label)
        .unwrap_or_else(|| panic!("no report from {label}: {:#}", json!(bed.reports())))
}

fn page(host: &Host) -> String {
    host.get(ENDPOINT.1, "/").body
}

#[test]
fn ten_slave_hosts_converge_each_from_its_own_address() {
    let Some(engine) = docker::engine() else {
        return;
    };
    let _turn = engine.exclusive();
    let mut bed = Bed::new("ten");
    bed.publish("blue.zip");
    bed.start_hosts(10);
    converge(&bed, 10, Duration::from_secs(60));

    bed.operator.c2(&["start", "blue.zip"]).ok();
    bed.operator.c2(&["connect", "main", "blue"]).ok();
    converge(&bed, 10, Duration::from_secs(60));
    for (i, host) in bed.hosts.iter().enumerate() {
        let report = report_of(&bed, &format!("host-{i:02}"));
        assert_eq!(report["state"]["ipAddress"], json!(host.ip), "{report:#}");
        assert_eq!(report["state"]["hostName"], json!(host.host_name));
        assert_eq!(report["state"]["status"], json!("ok"), "{report:#}");
        assert_eq!(page(host), "blue\n", "{}", host.name);
    }
    wait_until(Duration::from_secs(1), "", || true);
}
