//! Fleet convergence (issue #4): N slaves, each a real `c2 slave-update
//! --repeat 1` process with its own deploysDir, follow one master in S3
//! (moto). For fleets of 1, 10 and 30 slaves, a master change reaches every
//! slave's report. How fast is the benchmark's figure (`sh scripts/bench`).

use crate::common::{self, fleet, Moto};

#[test]
fn fleets_of_1_10_and_30_slaves_converge() {
    let _heavy = common::heavy();
    // A server of its own: 30 slaves reading it every second would slow the
    // shared one down for every other test.
    let moto = Moto::start();
    for n in [1, 10, 30] {
        fleet::convergence(&moto, n);
    }
}
