//! Blue/green without downtime (issue #3): a client keeps requesting an
//! endpoint through the real nginx (host driver) while `c2 connect`
//! switches it between two deploys 20 times. Every request must succeed,
//! and every answer must come from a deploy that was connected at that
//! moment. The figures go to target/figures/zero-downtime-host.txt.

use std::time::Duration;

use crate::common::{self, switching};

#[test]
fn switching_an_endpoint_loses_no_request() {
    let _heavy = common::heavy();
    let env = switching::blue_green_env();
    let figures = switching::run(&env, 20, Duration::from_millis(150));
    figures.record("host nginx", "zero-downtime-host.txt");
    figures.assert_no_downtime("host nginx");
}
