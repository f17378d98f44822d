//! Fleets of real `c2 slave-update` processes following one master, and
//! how long they take to show a master change. Used by the fleet and etcd
//! tests and the benchmark.

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

/// A fleet on this machine whose slaves each route main.example through
/// their own nginx, following a master at `location` (an S3 URL, a
/// directory or an etcd URL; `envs` for moto's credentials) every
/// `period`. Releases `blue.zip` and `green.zip` are in a local store.
///
/// The slaves share this machine's loopback, where a deploy's port can be
/// bound once: `web0` runs the deploys' web servers, the others run them
/// without (a marker file says so), and every slave's own nginx routes
/// main.example to the port of the deploy its state connects. So what a
/// slave's nginx answers tells which deploy that slave routes to.
pub struct Routed {
    pub master: Env,
    pub slaves: Vec<Env>,
    followers: Vec<Child>,
}

impl Drop for Routed {
    fn drop(&mut self) {
        for c in &mut self.followers {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn routed(location: &str, envs: &[(String, String)], n: usize, period: &str) -> Routed {
    let mut master = Env::new();
    master.proxy(&[("main", "main.example")]).remote(location);
    for (key, value) in envs {
        master.env(key, value);
    }
    for name in ["blue.zip", "green.zip"] {
        let label = super::stem(name);
        master
            .http_release(name)
            .set(
                "startCommand",
                json!(format!(
                    "test -e ../../shares-ports || python3 serve.py $(cat port) {label}"
                )),
            )
            .set(
                "stopCommand",
                json!("test ! -e server.pid || kill $(cat server.pid)"),
            )
            .publish();
    }
    let slaves: Vec<Env> = (0..n).map(|i| master.slave(&format!("web{i}"))).collect();
    for slave in slaves.iter().skip(1) {
        super::write_file(&slave.path("shares-ports"), "");
    }
    let followers = slaves
        .iter()
        .map(|slave| {
            let log = std::fs::File::create(slave.path("follower.out")).unwrap();
            slave
                .c2(&["slave-update", "--repeat", period])
                .cmd
                .stdout(Stdio::from(log))
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let fleet = Routed {
        master,
        slaves,
        followers,
    };
    super::wait_until(Duration::from_secs(120), "every slave to report", || {
        fleet.in_sync() == n
    });
    fleet
}

impl Routed {
    /// How many slaves report the master's state.
    pub fn in_sync(&self) -> usize {
        in_sync(&self.master)
    }

    /// Waits until every slave's nginx answers `body` for main.example,
    /// and says how long that took; on time-out, shows what the first
    /// laggard logged.
    pub fn wait_served(&self, body: &str, within: Duration) -> Duration {
        let start = Instant::now();
        let mut lagging: Vec<&Env> = self.slaves.iter().collect();
        loop {
            lagging.retain(|s| s.get("main.example", "/").body != body);
            if lagging.is_empty() {
                return start.elapsed();
            }
            if start.elapsed() > within {
                panic!(
                    "{} slaves do not serve '{body}' after {within:?}; the first logged:\n{}",
                    lagging.len(),
                    std::fs::read_to_string(lagging[0].path("follower.out")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
