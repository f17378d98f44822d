//! Blue/green without downtime (issue #3): a client keeps requesting an
//! endpoint through the real nginx while `c2 connect` switches it between
//! two deploys. Every request must succeed, and every answer must come from
//! a deploy that was connected at that moment.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Env;

const SWITCHES: usize = 20;

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

#[test]
fn switching_an_endpoint_loses_no_request() {
    let mut env = Env::new();
    env.proxy(&[("main", "main.example")]);
    env.http_release("blue.zip").publish();
    env.http_release("green.zip").publish();
    env.c2(&["start", "blue.zip"]).ok();
    env.c2(&["start", "green.zip"]).ok();
    env.c2(&["connect", "main", "blue"]).ok();
    assert_eq!(env.get("main.example", "/").body, "blue /");

    let port = env.http_port();
    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(Vec::<Request>::new()));
    let client = {
        let (stop, log) = (stop.clone(), log.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let sent = Instant::now();
                let r = common::http::get(port, "main.example", "/");
                let received = Instant::now();
                let deploy = r.body.split(' ').next().unwrap_or("").to_string();
                log.lock().unwrap().push(Request {
                    sent,
                    received,
                    status: r.status,
                    deploy,
                });
            }
        })
    };

    let mut switches = Vec::new();
    let mut from = "blue";
    for i in 0..SWITCHES {
        std::thread::sleep(Duration::from_millis(150));
        let to = if i % 2 == 0 { "green" } else { "blue" };
        let called = Instant::now();
        env.c2(&["connect", "main", to]).ok();
        switches.push(Switch {
            called,
            returned: Instant::now(),
            from,
            to,
        });
        from = to;
    }
    std::thread::sleep(Duration::from_millis(150));
    stop.store(true, Ordering::Relaxed);
    client.join().unwrap();
    let requests = log.lock().unwrap();

    // Which deploys may answer a request in flight over [sent, received]:
    // the one connected at `sent`, and every one connected since.
    let allowed = |sent: Instant, received: Instant| -> Vec<&str> {
        let mut ok = vec![switches
            .iter()
            .rev()
            .find(|s| s.returned <= sent)
            .map_or("blue", |s| s.to)];
        for s in &switches {
            // A switch under way (called, not yet returned) may serve either side.
            if s.called <= received && s.returned >= sent {
                ok.push(s.from);
                ok.push(s.to);
            }
            if s.returned >= sent && s.returned <= received {
                ok.push(s.to);
            }
        }
        ok
    };
    let failed: Vec<&Request> = requests.iter().filter(|r| r.status != 200).collect();
    let wrong: Vec<(&Request, Vec<&str>)> = requests
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| (r, allowed(r.sent, r.received)))
        .filter(|(r, ok)| !ok.contains(&r.deploy.as_str()))
        .collect();

    // From `c2 connect` returning to the first answer of the new deploy, in
    // ms; negative when the new deploy answered before connect returned.
    let mut to_new: Vec<f64> = switches
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
    let connect_times: Vec<Duration> = switches.iter().map(|s| s.returned - s.called).collect();
    let figures = format!(
        "zero-downtime (host nginx): {} requests, {} failed, {} from a deploy not connected; \
         {SWITCHES} switches; connect took median {:?} max {:?}; \
         first answer from the new deploy relative to connect returning: median {:.1} ms, max {:.1} ms",
        requests.len(),
        failed.len(),
        wrong.len(),
        median(&connect_times),
        connect_times.iter().max().unwrap(),
        to_new[to_new.len() / 2],
        to_new.last().unwrap()
    );
    eprintln!("{figures}");
    let _ = std::fs::create_dir_all(concat!(env!("CARGO_MANIFEST_DIR"), "/target/figures"));
    let _ = std::fs::write(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/target/figures/zero-downtime-host.txt"
        ),
        format!("{figures}\n"),
    );

    assert!(
        requests.len() > SWITCHES * 10,
        "too few requests: {figures}"
    );
    assert!(
        failed.is_empty(),
        "failed requests: {:?}",
        failed.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert!(
        wrong.is_empty(),
        "answers from a deploy that was not connected: {:?}",
        wrong
            .iter()
            .map(|(r, ok)| (r.deploy.clone(), ok.clone()))
            .collect::<Vec<_>>()
    );
}

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v[v.len() / 2]
}
