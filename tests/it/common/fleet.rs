//! A fleet of real `c2 slave-update --repeat 1` processes following one
//! master in S3 (moto), and how long it takes them to show a master change.
//! Used by the fleet test and the benchmark.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use super::{Env, Moto};

pub struct Fleet {
    children: Vec<Child>,
    _slaves: Vec<Env>,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for c in &mut self.children {
            super::terminate(c.id());
        }
        for c in &mut self.children {
            let _ = c.wait();
        }
    }
}

pub fn start(master: &Env, n: usize) -> Fleet {
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
pub fn in_sync(master: &Env) -> usize {
    master.status_json()["slaves"]
        .as_array()
        .map(|s| s.iter().filter(|s| s["inSync"] == json!(true)).count())
        .unwrap_or(0)
}

pub fn wait_all_in_sync(master: &Env, n: usize) -> Duration {
    let start = Instant::now();
    while in_sync(master) < n {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "only {} of {n} slaves converged in 120 s",
            in_sync(master)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}

/// Time from a master change (`start app.zip` returning) until all `n`
/// slaves report it.
pub fn convergence(moto: &Moto, n: usize) -> Duration {
    let bucket = Moto::unique_bucket("fleet");
    let master = Env::s3_master(moto, &bucket);
    master
        .release("app.zip")
        .publish_s3(moto, &bucket, "releases");

    let _fleet = start(&master, n);
    // Every slave is up and following the (empty) master.
    wait_all_in_sync(&master, n);

    master.c2(&["start", "app.zip"]).ok();
    wait_all_in_sync(&master, n)
}
