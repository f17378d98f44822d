//! Fleet convergence (issue #4): N slaves, each a real `c2 slave-update
//! --repeat 1` process with its own deploysDir, follow one master in S3
//! (moto). Measures the time from a master change until every slave's
//! report shows it, for 1, 10 and 30 slaves. Figures are printed and written
//! to target/figures/fleet.txt; the test asserts convergence, not speed.

mod common;

use common::{fleet, Moto};

#[test]
fn fleet_convergence_is_flat_in_the_number_of_slaves() {
    let moto = Moto::shared();
    let mut lines = Vec::new();
    let mut t1 = None;
    for n in [1, 10, 30] {
        let t = fleet::convergence(moto, n);
        let base = *t1.get_or_insert(t);
        lines.push(format!(
            "fleet of {n:>2} slaves (--repeat 1): all reports show the master change after {:.2} s (ratio to 1 slave: {:.2})",
            t.as_secs_f64(),
            t.as_secs_f64() / base.as_secs_f64()
        ));
    }
    let text = lines.join("\n") + "\n";
    eprint!("{text}");
    let _ = std::fs::create_dir_all(concat!(env!("CARGO_MANIFEST_DIR"), "/target/figures"));
    let _ = std::fs::write(
        concat!(env!("CARGO_MANIFEST_DIR"), "/target/figures/fleet.txt"),
        text,
    );
}
