//! Blue/green under load: a client keeps requesting an endpoint through the
//! frontend proxy while `c2 connect` switches it between two deploys that
//! are already started and answer with their label. Shared by the host-nginx
//! and the docker-container variants.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Env;

struct Request {
    sent: Instant,
    received: Instant,
    status: u16,
    deploy: String,
}

struct Switch {
    called: Instant,
    returned: Instant,
    from: &'static str,
    to: &'static str,
}

struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Proxy mode (host nginx) with endpoint `main` (main.example) connected
/// to deploy `blue`, and deploy `green` ready to take over.
pub fn blue_green_env() -> Env {
    let mut env = Env::new();
    env.proxy(&[("main", "main.example")]);
    env.http_release("blue.zip").publish();
    env.http_release("green.zip").publish();
    env.c2(&["start", "blue.zip"]).ok();
    env.c2(&["start", "green.zip"]).ok();
    env.c2(&["connect", "main", "blue"]).ok();
    assert_eq!(env.get("main.example", "/").body, "blue /");
    env
}

/// What a run measured.
pub struct Figures {
    pub requests: usize,
    pub failed: Vec<u16>,
    /// Answers from a deploy that was not connected at that moment, with
    /// the deploys that were.
    pub wrong: Vec<(String, Vec<&'static str>)>,
    pub switches: usize,
    pub connect_median: Duration,
    pub connect_max: Duration,
    /// From `connect` returning to the first answer of the new deploy, ms;
    /// negative when the new deploy answered before `connect` returned.
    pub to_new_median_ms: f64,
    pub to_new_max_ms: f64,
}

impl Figures {
    pub fn summary(&self, label: &str) -> String {
        format!(
            "zero-downtime ({label}): {} requests, {} failed, {} from a deploy not connected; \
             {} switches; connect took median {:?} max {:?}; \
             first answer from the new deploy relative to connect returning: median {:.1} ms, max {:.1} ms",
            self.requests,
            self.failed.len(),
            self.wrong.len(),
            self.switches,
            self.connect_median,
            self.connect_max,
            self.to_new_median_ms,
            self.to_new_max_ms
        )
    }

    /// Writes the summary to target/figures/<file> and stderr.
    pub fn record(&self, label: &str, file: &str) {
        let text = self.summary(label);
        eprintln!("{text}");
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/target/figures");
        let _ = std::fs::create_dir_all(dir);
        let _ = std::fs::write(format!("{dir}/{file}"), format!("{text}\n"));
    }

    /// Every request succeeded and came from a connected deploy.
    pub fn assert_no_downtime(&self, label: &str) {
        assert!(
            self.requests > self.switches * 10,
            "too few requests: {}",
            self.summary(label)
        );
        assert!(self.failed.is_empty(), "failed requests: {:?}", self.failed);
        assert!(
            self.wrong.is_empty(),
            "answers from a deploy that was not connected: {:?}",
            self.wrong
        );
    }
}

/// Switches endpoint `main` (server name `main.example`) between deploys
/// `blue` and `green`, starting from `blue` connected, `switches` times,
/// `gap` apart, while a client requests it continuously.
pub fn run(env: &Env, switches: usize, gap: Duration) -> Figures {
    run_with(env, switches, gap, |env, to| {
        env.c2(&["connect", "main", to]).ok();
    })
}

/// As [`run`], each switch to deploy `to` made by `switch` (which must
/// leave `main` connected to `to` when it returns).
pub fn run_with(
    env: &Env,
    switches: usize,
    gap: Duration,
    switch: impl Fn(&Env, &'static str),
) -> Figures {
    let port = env.http_port();
    let stop = Arc::new(AtomicBool::new(false));
    // Stops the client however the run ends: a failed wait must not leave it
    // spinning through the rest of the test run.
    let stop_client = StopOnDrop(stop.clone());
    let log = Arc::new(Mutex::new(Vec::<Request>::new()));
    let client = {
        let (stop, log) = (stop.clone(), log.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let sent = Instant::now();
                let r = super::http::get(port, "main.example", "/");
                let received = Instant::now();
                let deploy = r.body.split_whitespace().next().unwrap_or("").to_string();
                log.lock().unwrap().push(Request {
                    sent,
                    received,
                    status: r.status,
                    deploy,
                });
            }
        })
    };

    // After a switch, the client must have seen the new deploy answer (the
    // figures measure when it first did) and have kept up the load (more
    // than 10 answers per switch) before the next switch or the end.
    let settled = |switch: &Switch| {
        super::wait_until(
            Duration::from_secs(30),
            &format!("11 answers since the switch to {}, one from it", switch.to),
            || {
                let log = log.lock().unwrap();
                let since: Vec<&Request> =
                    log.iter().filter(|r| r.received >= switch.called).collect();
                since.len() > 10 && since.iter().any(|r| r.deploy == switch.to)
            },
        )
    };
    let mut done: Vec<Switch> = Vec::new();
    let mut from = "blue";
    for i in 0..switches {
        // The pace of the scenario: switches at least `gap` apart.
        std::thread::sleep(gap);
        if let Some(last) = done.last() {
            settled(last);
        }
        let to = if i % 2 == 0 { "green" } else { "blue" };
        let called = Instant::now();
        switch(env, to);
        done.push(Switch {
            called,
            returned: Instant::now(),
            from,
            to,
        });
        from = to;
    }
    std::thread::sleep(gap);
    if let Some(last) = done.last() {
        settled(last);
    }
    drop(stop_client);
    client.join().unwrap();
    let requests = log.lock().unwrap();

    // Which deploys may answer a request in flight over [sent, received]:
    // the one connected at `sent`, and every one connected since; while a
    // switch is under way (called, not yet returned), either side.
    let allowed = |sent: Instant, received: Instant| -> Vec<&'static str> {
        let mut ok = vec![done
            .iter()
            .rev()
            .find(|s| s.returned <= sent)
            .map_or("blue", |s| s.to)];
        for s in &done {
            if s.called <= received && s.returned >= sent {
                ok.push(s.from);
                ok.push(s.to);
            }
        }
        ok
    };
    let failed = requests
        .iter()
        .filter(|r| r.status != 200)
        .map(|r| r.status)
        .collect();
    let wrong = requests
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| (r, allowed(r.sent, r.received)))
        .filter(|(r, ok)| !ok.contains(&r.deploy.as_str()))
        .map(|(r, ok)| (r.deploy.clone(), ok))
        .collect();
    let mut to_new: Vec<f64> = done
        .iter()
        .map(|s| {
            let first = requests
                .iter()
                .filter(|r| r.deploy == s.to && r.received >= s.called)
                .map(|r| r.received)
                .min()
                .expect("no answer from the new deploy");
            if first >= s.returned {
                (first - s.returned).as_secs_f64() * 1000.0
            } else {
                -(s.returned - first).as_secs_f64() * 1000.0
            }
        })
        .collect();
    to_new.sort_by(f64::total_cmp);
    let mut connect: Vec<Duration> = done.iter().map(|s| s.returned - s.called).collect();
    connect.sort();
    Figures {
        requests: requests.len(),
        failed,
        wrong,
        switches,
        connect_median: connect[connect.len() / 2],
        connect_max: *connect.last().unwrap(),
        to_new_median_ms: to_new[to_new.len() / 2],
        to_new_max_ms: *to_new.last().unwrap(),
    }
}
