//! Fleet convergence (issue #4): N slaves, each a real `c2 slave-update
//! --repeat 1` process with its own deploysDir, follow one master in S3
//! (moto). Measures the time from a master change until every slave's
//! report shows it, for 1, 10 and 30 slaves. Figures are printed and written
//! to target/figures/fleet.txt; the test asserts convergence, not speed.

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{Env, Moto};
use serde_json::json;

struct Fleet {
    children: Vec<Child>,
    _slaves: Vec<Env>,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for c in &mut self.children {
            // SAFETY: kill(2) on our own child.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
        }
        for c in &mut self.children {
            let _ = c.wait();
        }
    }
}

fn start_fleet(master: &Env, n: usize) -> Fleet {
    let mut children = Vec::new();
    let mut slaves = Vec::new();
    for i in 0..n {
        let slave = master.slave(&format!("slave-{i:02}"));
        let child = slave
            .c2(&["slave-update", "--repeat", "1"])
            .cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        children.push(child);
        slaves.push(slave);
    }
    Fleet {
        children,
        _slaves: slaves,
    }
}

/// How many slaves report being in sync with the master.
fn in_sync(master: &Env) -> usize {
    master.status_json()["slaves"]
        .as_array()
        .map(|s| s.iter().filter(|s| s["inSync"] == json!(true)).count())
        .unwrap_or(0)
}

fn wait_all_in_sync(master: &Env, n: usize) -> Duration {
    let start = Instant::now();
    while in_sync(master) < n {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "only {} of {n} slaves converged in 60 s",
            in_sync(master)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}

fn convergence(n: usize) -> Duration {
    let moto = Moto::shared();
    let bucket = Moto::unique_bucket("fleet");
    let mut master = Env::new();
    master.proxy(&[("main", "main.example")]);
    master.use_s3(moto, &bucket, "releases");
    master.remote(&format!("s3://{bucket}/camus2"));
    master
        .release("app.zip")
        .publish_s3(moto, &bucket, "releases");

    let _fleet = start_fleet(&master, n);
    // Every slave is up and following the (empty) master.
    wait_all_in_sync(&master, n);

    master.c2(&["start", "app.zip"]).ok();
    wait_all_in_sync(&master, n)
}

#[test]
fn fleet_convergence_is_flat_in_the_number_of_slaves() {
    let mut lines = Vec::new();
    let mut t1 = None;
    for n in [1, 10, 30] {
        let t = convergence(n);
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
