//! `sh scripts/bench`: c2 against what an operator would otherwise use,
//! side by side in one run, as ratios. Writes BENCHMARKS.md and
//! docs/fleet-convergence.svg. Uses the integration tests' builders (real
//! moto, real nginx, the optimised c2 binary).

// The benchmark uses a few of the tests' builders.
#[path = "../tests/it/common/mod.rs"]
#[allow(dead_code)]
mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{etcd, fleet, Env, Moto};
use serde_json::json;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

fn time(mut cmd: Command) -> Duration {
    let t = Instant::now();
    let out = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    t.elapsed()
}

/// `cmd` (arguments, environment, directory) run by another program.
fn with_program(cmd: &Command, program: &std::ffi::OsStr) -> Command {
    let mut c = Command::new(program);
    c.args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        c.current_dir(dir);
    }
    c
}

fn sh(script: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(script);
    c
}

/// Rows of the results table: what, c2, c2 before, alternative, ratio,
/// ratio before, note.
struct Table(Vec<[String; 7]>);

impl Table {
    fn row(&mut self, what: &str, c2: String, alt: String, ratio: String, note: &str) {
        self.row_before(what, c2, "-".into(), alt, ratio, "-".into(), note);
    }

    #[allow(clippy::too_many_arguments)]
    fn row_before(
        &mut self,
        what: &str,
        c2: String,
        before: String,
        alt: String,
        ratio: String,
        ratio_before: String,
        note: &str,
    ) {
        println!("{what}: c2 {c2} (before {before}) | alternative {alt} | ratio {ratio} (before {ratio_before}) | {note}");
        self.0.push([
            what.into(),
            c2,
            before,
            alt,
            ratio,
            ratio_before,
            note.into(),
        ]);
    }

    /// A timed row: this c2, the `C2_BASELINE` binary in the same rounds if
    /// given, and the alternative, with both ratios.
    fn timed(
        &mut self,
        what: &str,
        c2: Duration,
        before: Option<Duration>,
        alt: Duration,
        alt_name: &str,
        note: &str,
    ) {
        let ratio = |d: Duration| format!("{:.2}", d.as_secs_f64() / alt.as_secs_f64());
        self.row_before(
            what,
            ms(c2),
            before.map_or("-".into(), ms),
            format!("{} ({alt_name})", ms(alt)),
            ratio(c2),
            before.map_or("-".into(), ratio),
            note,
        );
    }

    fn markdown(&self) -> String {
        let mut s = String::from("| benchmark | c2 | c2 before | alternative | ratio (c2 / alternative) | ratio before | note |\n|---|---|---|---|---|---|---|\n");
        for r in &self.0 {
            s += &format!("| {} |\n", r.join(" | "));
        }
        s
    }
}

/// `C2_BASELINE`: an older c2 binary, timed in the same rounds as this one
/// for the "before" columns.
fn baseline() -> Option<std::ffi::OsString> {
    std::env::var_os("C2_BASELINE").filter(|b| !b.is_empty())
}

/// Timings of one c2 command by this c2 and by the baseline (if given),
/// taken in the same rounds.
struct NowAndBefore {
    old: Option<std::ffi::OsString>,
    now: Vec<Duration>,
    before: Vec<Duration>,
}

impl NowAndBefore {
    fn new() -> NowAndBefore {
        NowAndBefore {
            old: baseline(),
            now: Vec::new(),
            before: Vec::new(),
        }
    }

    /// Times `cmd()` as this c2, then as the baseline, each after `fresh()`.
    fn round(&mut self, cmd: impl Fn() -> Command, fresh: impl Fn()) {
        fresh();
        self.now.push(time(cmd()));
        if let Some(old) = &self.old {
            fresh();
            self.before.push(time(with_program(&cmd(), old)));
        }
    }

    fn medians(self) -> (Duration, Option<Duration>) {
        let before = (!self.before.is_empty()).then(|| median(self.before));
        (median(self.now), before)
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// 1. A 100 MB release of 5,000 files: fetch + unpack + template.
fn unpack(table: &mut Table, moto: &Moto) {
    let mut env = Env::new();
    env.context_file("infra", r#"{"env": "bench"}"#);
    let big = |name: &str| {
        let mut release = env.release(name);
        for i in 0..5000 {
            // 20 KB each that does not compress, so the archive itself is
            // about 100 MB.
            let bytes = common::noise(20_000, 0x2545_f491_4f6c_dd1d ^ i);
            release = release.file_bytes(&format!("d{}/f{i}.bin", i % 50), bytes);
        }
        for i in 0..10 {
            release = release.template(&format!("conf/c{i}.conf.tpl"), "env={{infra.env}}\n");
        }
        release
    };
    let zip = env.path("store/big.zip");
    big("big.zip").publish();
    let zip_mb = std::fs::metadata(&zip).unwrap().len() as f64 / 1e6;
    env.c2(&["fetch-context"]).ok();
    let runs = 3;
    let out = env.path("out");
    // Interleaved, one of each per round, so that load from elsewhere on
    // the machine falls on all of them alike.
    let copy = env.path("copy");
    let fresh = |dir: &std::path::Path| {
        let _ = std::fs::remove_dir_all(dir);
    };
    let unpack = ["unpack", "big.zip", out.to_str().unwrap()];
    let mut c2 = NowAndBefore::new();
    let (mut unzip_runs, mut cp_runs) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        c2.round(|| env.c2(&unpack).cmd, || fresh(&out));
        fresh(&out);
        unzip_runs.push(time(sh(&format!(
            "mkdir -p {0} && unzip -q {1} -d {0}",
            out.display(),
            zip.display()
        ))));
        // The floor: the release's bytes, already unpacked (by unzip, just
        // above), copied as a plain tree; whatever unpacks them writes as much.
        fresh(&copy);
        cp_runs.push(time(sh(&format!(
            "cp -r {} {}",
            out.display(),
            copy.display()
        ))));
    }
    fresh(&copy);
    let (c2_local, before) = c2.medians();
    let (unzip, cp) = (median(unzip_runs), median(cp_runs));
    let what = format!("unpack {zip_mb:.0} MB zip, 5,010 files, local store");
    table.timed(
        &what,
        c2_local,
        before,
        unzip,
        "`unzip -q`",
        "goal: 0.5; c2 also copies the zip into the deploy dir and renders 10 templates",
    );
    table.timed(
        &what,
        c2_local,
        before,
        cp,
        "`cp -r` of the unpacked tree",
        "the floor: the same bytes must be written",
    );

    // The same files as a tar.gz, against `tar -xzf`.
    let tarball = env.path("store/big.tar.gz");
    big("big.tar.gz").publish();
    let untar = ["unpack", "big.tar.gz", out.to_str().unwrap()];
    let mut c2 = NowAndBefore::new();
    let mut tar_runs = Vec::new();
    for _ in 0..5 {
        c2.round(|| env.c2(&untar).cmd, || fresh(&out));
        fresh(&out);
        tar_runs.push(time(sh(&format!(
            "mkdir -p {0} && tar -xzf {1} -C {0}",
            out.display(),
            tarball.display()
        ))));
    }
    fresh(&out);
    let (c2_tar, before) = c2.medians();
    table.timed(
        "unpack the same files as a tar.gz, local store",
        c2_tar,
        before,
        median(tar_runs),
        "`tar -xzf`",
        "gzip decompressed beside the writing, as tar runs gzip beside it",
    );

    // The same from S3 (moto): c2 against `aws s3 cp` + `unzip -q`,
    // interleaved.
    let bucket = Moto::unique_bucket("bench");
    env.use_s3(moto, &bucket, "rel");
    moto.put(&bucket, "rel/big.zip", &std::fs::read(&zip).unwrap());
    let aws_cmd = || {
        let mut c = sh(&format!(
                    "mkdir -p {0} && aws --endpoint-url {1} s3 cp --quiet s3://{2}/rel/big.zip {0}/big.zip && unzip -q {0}/big.zip -d {0}",
                    out.display(),
                    moto.endpoint,
                    bucket
                ));
        for (k, v) in moto.client_env() {
            c.env(k, v);
        }
        c
    };
    let mut c2 = NowAndBefore::new();
    let mut aws_runs = Vec::new();
    for _ in 0..runs {
        c2.round(|| env.c2(&unpack).cmd, || fresh(&out));
        fresh(&out);
        aws_runs.push(time(aws_cmd()));
    }
    let (c2_s3, before) = c2.medians();
    table.timed(
        &format!("unpack {zip_mb:.0} MB zip, 5,010 files, S3 store (moto)"),
        c2_s3,
        before,
        median(aws_runs),
        "`aws s3 cp` + `unzip -q`",
        "goal: 0.5",
    );
}

/// 2. `c2 status` on 100 deploys and 20 endpoints against `cat`.
fn status(table: &mut Table) {
    let (env, config) = status_env();
    let state = env.path("deploys/frontend-proxy/state.json");
    let status = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_c2"));
        c.arg("--config").arg(&config).arg("status");
        c
    };
    let mut c2 = NowAndBefore::new();
    let mut cat = Vec::new();
    for _ in 0..200 {
        c2.round(status, || {});
        let mut c = Command::new("cat");
        c.arg(&state);
        cat.push(time(c));
    }
    let (now, before) = c2.medians();
    table.timed(
        "`c2 status`, 100 deploys, 20 endpoints (median of 200)",
        now,
        before,
        median(cat),
        "`cat state.json`",
        "goal: under 10 ms",
    );
}

/// 15. The package's `dist` profile (LTO, one codegen unit) against
///     `release`: size, and a fresh process's `version` and `status`.
fn dist_profile(table: &mut Table) {
    let dist = concat!(env!("CARGO_MANIFEST_DIR"), "/target/dist/c2");
    let release = env!("CARGO_BIN_EXE_c2");
    if !std::path::Path::new(dist).exists() {
        println!("no {dist}: `sh scripts/bench dist` builds it");
        return;
    }
    let size = |p: &str| std::fs::metadata(p).unwrap().len() as f64 / 1e6;
    table.row(
        "binary size, `dist` profile vs `release`",
        format!("{:.1} MB", size(dist)),
        format!("{:.1} MB (`release`)", size(release)),
        format!("{:.2}", size(dist) / size(release)),
        "both stripped",
    );
    let (env, config) = status_env();
    for (what, args) in [
        ("`c2 version`", vec!["version".to_string()]),
        (
            "`c2 status`, 100 deploys",
            vec![
                "--config".to_string(),
                config.display().to_string(),
                "status".to_string(),
            ],
        ),
    ] {
        let (mut with_dist, mut with_release) = (Vec::new(), Vec::new());
        for _ in 0..200 {
            for (binary, times) in [(dist, &mut with_dist), (release, &mut with_release)] {
                let mut c = Command::new(binary);
                c.args(&args);
                times.push(time(c));
            }
        }
        table.timed(
            &format!("{what}, a fresh process, `dist` vs `release` (median of 200, alternating)"),
            median(with_dist),
            None,
            median(with_release),
            "`release`",
            "",
        );
    }
    drop(env);
}

/// 100 deploys `app-000`… on ports 30000…, as a state holds them.
fn hundred_deploys() -> serde_json::Map<String, serde_json::Value> {
    (0..100)
        .map(|i| {
            let l = format!("app-{i:03}");
            (
                l.clone(),
                json!({"label": l, "release": format!("{l}.zip"), "port": 30000 + i}),
            )
        })
        .collect()
}

/// A proxy-mode machine with 100 deploys and 20 endpoints in its state,
/// and its config.
fn status_env() -> (Env, std::path::PathBuf) {
    let mut env = Env::new();
    let endpoints: Vec<(String, String)> = (0..20)
        .map(|i| (format!("ep{i:02}"), format!("ep{i:02}.example")))
        .collect();
    let refs: Vec<(&str, &str)> = endpoints
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    env.proxy(&refs);
    env.proxy_set("dynamicPortRange", json!({"v1": 30000, "v2": 30200}));
    let deploys = hundred_deploys();
    let connections: serde_json::Map<String, serde_json::Value> = (0..20)
        .map(|i| (format!("ep{i:02}"), json!(format!("app-{:03}", i * 5))))
        .collect();
    let state = env.path("deploys/frontend-proxy/state.json");
    common::write_file(
        &state,
        &serde_json::to_string_pretty(&json!({"deploys": deploys, "connections": connections}))
            .unwrap(),
    );
    let config = env.write_config();
    (env, config)
}

/// A TCP proxy in front of moto that counts the bytes both ways.
struct CountingProxy {
    port: u16,
    bytes: Arc<AtomicU64>,
}

impl CountingProxy {
    fn start(target: u16) -> CountingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let bytes = Arc::new(AtomicU64::new(0));
        let counter = bytes.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let counter = counter.clone();
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16384];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 || to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                            counter.fetch_add(n as u64, Ordering::Relaxed);
                        }
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        CountingProxy { port, bytes }
    }
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn master_gets(log: &std::path::Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("GET /") && l.contains("/master/state.json"))
        .count()
}

/// 3. An idle slave: requests and bytes per round; memory over 1,000 rounds.
fn idle_slave(table: &mut Table) {
    let moto = Moto::start();
    let proxy = CountingProxy::start(moto.port);
    let bucket = Moto::unique_bucket("idle");
    let master = Env::s3_master(&moto, &bucket);
    master
        .release("a.zip")
        .publish_s3(&moto, &bucket, "releases");
    master.c2(&["start", "a.zip"]).ok();
    let mut slave = master.slave("idle");
    slave.env("S3_ENDPOINT", &format!("http://127.0.0.1:{}", proxy.port));
    let log = moto.log();
    let mut child = slave
        .c2(&["slave-update", "--repeat", "0.01"])
        .cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = master_gets(&log);
    let wait_rounds = |n: usize| {
        let t = Instant::now();
        while master_gets(&log) < base + n {
            assert!(t.elapsed() < Duration::from_secs(300), "the slave stalled");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    wait_rounds(10);
    let rss10 = rss_kb(child.id());
    let (req0, bytes0) = (master_gets(&log), proxy.bytes.load(Ordering::Relaxed));
    let all_lines0 = std::fs::read_to_string(&log).unwrap().lines().count();
    wait_rounds(1000);
    let rss1000 = rss_kb(child.id());
    let rounds = (master_gets(&log) - req0) as f64;
    let requests = (std::fs::read_to_string(&log).unwrap().lines().count() - all_lines0) as f64;
    let bytes = (proxy.bytes.load(Ordering::Relaxed) - bytes0) as f64;
    let _ = child.kill();
    let _ = child.wait();
    table.row(
        "idle slave, per round (`--repeat 0.01`, ~1,000 rounds)",
        format!(
            "{:.2} requests, {:.0} bytes",
            requests / rounds,
            bytes / rounds
        ),
        "(no alternative: the old tool GETs the whole master every round)".into(),
        "-".into(),
        "goal: one conditional GET (304), no PUT between heartbeats",
    );
    table.row(
        "idle slave, resident memory after 1,000 rounds vs after 10",
        format!("{rss1000} kB"),
        format!("{rss10} kB (after 10 rounds)"),
        format!("{:.2}", rss1000 as f64 / rss10 as f64),
        "goal: no growth",
    );
}

/// 4. Fleet convergence for 1, 10, 30, 50 slaves; returns (n, seconds).
fn fleet_convergence(table: &mut Table, moto: &Moto) -> Vec<(usize, f64)> {
    let mut points = Vec::new();
    for n in [1, 10, 30, 50] {
        let t = fleet::convergence(moto, n).as_secs_f64();
        points.push((n, t));
    }
    let t1 = points[0].1;
    for (n, t) in &points[1..] {
        table.row(
            &format!("fleet convergence, {n} slaves vs 1 (`--repeat 1`)"),
            format!("{t:.2} s"),
            format!("{t1:.2} s (1 slave)"),
            format!("{:.2}", t / t1),
            if *n == 50 {
                "goal: t(50)/t(1) below 1.5"
            } else {
                ""
            },
        );
    }
    points
}

/// 5. A steady request rate through nginx while an endpoint switches 50
///    times with `connect`; 6. the same while it goes back and forth 20
///    times with `rollback`.
fn switching_under_load(table: &mut Table, rollbacks: bool) {
    let env = common::switching::blue_green_env();
    if rollbacks {
        // blue is main's previous deploy: each rollback toggles.
        env.c2(&["connect", "main", "green"]).ok();
    }
    let (switches, what) = if rollbacks {
        (20, "20 rollbacks")
    } else {
        (50, "50 switches")
    };
    let port = env.http_port();
    let switching = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(Mutex::new(Vec::<(bool, u16, Duration)>::new()));
    let client = {
        let (switching, stop, samples) = (switching.clone(), stop.clone(), samples.clone());
        std::thread::spawn(move || {
            // 200 requests a second, paced.
            let period = Duration::from_millis(5);
            let mut next = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let r = common::http::get(port, "main.example", "/");
                samples.lock().unwrap().push((
                    switching.load(Ordering::Relaxed),
                    r.status,
                    t.elapsed(),
                ));
                next += period;
                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
        })
    };
    std::thread::sleep(Duration::from_secs(5));
    switching.store(true, Ordering::Relaxed);
    for i in 0..switches {
        if rollbacks {
            env.c2(&["rollback", "main"]).ok();
        } else {
            let to = if i % 2 == 0 { "green" } else { "blue" };
            env.c2(&["connect", "main", to]).ok();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    client.join().unwrap();
    let samples = samples.lock().unwrap();
    let lat = |phase: bool| -> Vec<Duration> {
        samples
            .iter()
            .filter(|s| s.0 == phase)
            .map(|s| s.2)
            .collect()
    };
    let failed = samples.iter().filter(|s| s.1 != 200).count();
    let (steady, during) = (lat(false), lat(true));
    let (p_steady, p_during) = (
        percentile(steady.clone(), 0.99),
        percentile(during.clone(), 0.99),
    );
    table.row(
        &format!("switching under load: {what} at 200 req/s through nginx"),
        format!("{failed} failed of {}", samples.len()),
        "-".into(),
        "-".into(),
        "goal: 0 failed",
    );
    table.row(
        &format!("switching under load ({what}): p99 latency while switching vs steady"),
        ms(p_during),
        format!("{} (steady, {} requests)", ms(p_steady), steady.len()),
        format!("{:.2}", p_during.as_secs_f64() / p_steady.as_secs_f64()),
        &format!("{} requests while switching", during.len()),
    );
}

/// 7. What the health gate costs: `start` of a release that answers its
///    health path at once, with and without a check (median of 7 each).
fn health_gate(table: &mut Table) {
    let mut env = Env::new();
    env.proxy(&[("main", "main.example")]);
    env.http_release("plain.zip").publish();
    env.http_release("checked.zip")
        .set("healthCheck", json!({"path": "/"}))
        .publish();
    let time_start = |release: &str, label: &str| {
        let runs: Vec<Duration> = (0..7)
            .map(|_| {
                let t = Instant::now();
                env.c2(&["start", release]).ok();
                let d = t.elapsed();
                env.c2(&["stop", label]).ok();
                d
            })
            .collect();
        median(runs)
    };
    let plain = time_start("plain.zip", "plain");
    let checked = time_start("checked.zip", "checked");
    table.row(
        "start with a health check vs without (release ready at once)",
        ms(checked),
        ms(plain),
        format!("{:.2}", checked.as_secs_f64() / plain.as_secs_f64()),
        "",
    );
}

/// Kills the server of `label` on `env` (SIGKILL, by its pid file) and
/// times until `answers()` holds again.
fn time_recovery(env: &Env, label: &str, answers: impl Fn() -> bool) -> Duration {
    let pid: i32 = env
        .read(&format!("deploys/{label}/server.pid"))
        .trim()
        .parse()
        .unwrap();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
    let t = Instant::now();
    while answers() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the server did not go"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    while !answers() {
        assert!(
            t.elapsed() < Duration::from_secs(300),
            "the deploy never came back"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    t.elapsed()
}

/// CPU seconds (user + system) process `pid` has used.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<f64>().ok())
        .sum();
    let hz = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<f64>()
                .ok()
        })
        .unwrap_or(100.0);
    ticks / hz
}

/// A process of the benchmark's, killed when dropped.
struct Background(std::process::Child);

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn background(run: common::Run) -> Background {
    let mut cmd = run.cmd;
    Background(
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// 8. Deploys that stay up: how long a killed deploy takes to serve again
///    at the default periods (local `heal --repeat 10s`, a slave at
///    `--repeat 30`), what watching 20 healthy deploys costs in CPU, and
///    the S3 requests of an idle slave round with them.
fn heal_figures(table: &mut Table, moto: &Moto) {
    let check = json!({"path": "/up", "timeoutSeconds": 10});
    let mut env = Env::new();
    env.proxy(&[("main", "main.example")]);
    env.http_release("blue.zip")
        .set("healthCheck", check.clone())
        .publish();
    env.c2(&["start", "blue.zip"]).ok();
    env.c2(&["connect", "main", "blue"]).ok();
    let heal = background(env.c2(&["heal", "--repeat", "10s"]));
    let local: Vec<Duration> = (0..3)
        .map(|_| time_recovery(&env, "blue", || env.get("main.example", "/").status == 200))
        .collect();
    drop(heal);
    let local = median(local);
    table.row(
        "deploy killed until the endpoint answers again, `c2 heal --repeat 10s` (median of 3)",
        ms(local),
        "45 s (the goal)".into(),
        format!("{:.2}", local.as_secs_f64() / 45.0),
        "3 failed checks 10 s apart, then stop, start and health gate; the old tool never brings it back",
    );

    let bucket = Moto::unique_bucket("heal");
    let master = Env::s3_master(moto, &bucket);
    master
        .http_release("blue.zip")
        .set("healthCheck", check.clone())
        .publish_s3(moto, &bucket, "releases");
    master.c2(&["start", "blue.zip"]).ok();
    master.c2(&["connect", "main", "blue"]).ok();
    let slave = master.slave("web1");
    let follower = background(slave.c2(&["slave-update", "--repeat", "30"]));
    let t = Instant::now();
    while slave.get("main.example", "/").status != 200 {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "the slave never served"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let on_slave: Vec<Duration> = (0..3)
        .map(|_| {
            time_recovery(&slave, "blue", || {
                slave.get("main.example", "/").status == 200
            })
        })
        .collect();
    drop(follower);
    let on_slave = median(on_slave);
    table.row(
        "the same on a slave, `slave-update --repeat 30` (median of 3)",
        ms(on_slave),
        "45 s (the goal)".into(),
        format!("{:.2}", on_slave.as_secs_f64() / 45.0),
        "health is watched every 10 s between updates",
    );

    // 20 healthy deploys with checks, watched as fast as c2 allows.
    let mut many = Env::new();
    many.proxy(&[("main", "main.example")]);
    many.proxy_set("dynamicPortRange", json!({"v1": 31000, "v2": 31025}));
    for i in 0..20 {
        let name = format!("d{i:02}.zip");
        many.http_release(&name)
            .set("healthCheck", check.clone())
            .publish();
        many.c2(&["start", &name]).ok();
    }
    many.c2(&["heal"]).ok();
    // A round every 0.1 s for a minute: some 600 rounds (a round of 20
    // GETs at once takes a few milliseconds, well inside the period). The
    // interval is the measurement: CPU used over wall time.
    let heal = background(many.c2(&["heal", "--repeat", "0.1"]));
    std::thread::sleep(Duration::from_secs(2));
    let (cpu0, t0) = (cpu_secs(heal.0.id()), Instant::now());
    std::thread::sleep(Duration::from_secs(60));
    let rounds = t0.elapsed().as_secs_f64() / 0.1;
    let per_round = (cpu_secs(heal.0.id()) - cpu0) / rounds;
    drop(heal);
    let per_hour = per_round * 360.0;
    table.row(
        "CPU of watching 20 healthy deploys, per hour at `heal --repeat 10s` (from ~600 rounds)",
        format!("{per_hour:.2} s ({:.2} ms a round)", per_round * 1000.0),
        "3600 s (one core for the hour)".into(),
        format!("{:.5}", per_hour / 3600.0),
        "an idle round writes nothing",
    );

    // The same 20 deploys on an idle slave: S3 requests per round.
    let bucket = Moto::unique_bucket("heal-idle");
    let mut master = Env::s3_master(moto, &bucket);
    master.proxy_set("dynamicPortRange", json!({"v1": 31100, "v2": 31125}));
    for i in 0..20 {
        let name = format!("d{i:02}.zip");
        master
            .http_release(&name)
            .set("healthCheck", check.clone())
            .publish_s3(moto, &bucket, "releases");
        master.c2(&["start", &name]).ok();
    }
    let slave = master.slave("idle20");
    slave.c2(&["slave-update"]).ok();
    let log = moto.log();
    let follower = background(slave.c2(&["slave-update", "--repeat", "0.2"]));
    let gets = || master_gets(&log);
    let wait_gets = |n: usize| {
        let t = Instant::now();
        while gets() < n {
            assert!(t.elapsed() < Duration::from_secs(300), "the slave stalled");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    wait_gets(gets() + 5);
    let (gets0, lines0) = (
        gets(),
        std::fs::read_to_string(&log).unwrap().lines().count(),
    );
    wait_gets(gets0 + 100);
    let rounds = (gets() - gets0) as f64;
    let requests = (std::fs::read_to_string(&log).unwrap().lines().count() - lines0) as f64;
    drop(follower);
    table.row(
        "idle slave watching 20 healthy deploys, S3 requests per round (`--repeat 0.2`, 100 rounds)",
        format!("{:.2}", requests / rounds),
        "1 (the goal)".into(),
        format!("{:.2}", requests / rounds),
        "health checks are local: no request of their own",
    );
}

/// 9. `connect --await-slaves` for 1, 10 and 30 slaves at `--repeat 1`:
///    from the command starting until it returns.
fn await_slaves(table: &mut Table, moto: &Moto) {
    let mut times = Vec::new();
    for n in [1, 10, 30] {
        let bucket = Moto::unique_bucket("await");
        let master = Env::s3_master(moto, &bucket);
        master
            .release("app.zip")
            .publish_s3(moto, &bucket, "releases");
        let _fleet = fleet::start(&master, n);
        fleet::wait_all_in_sync(&master, n);
        master
            .c2(&[
                "start",
                "app.zip",
                "--await-slaves",
                "--min-slaves",
                &n.to_string(),
            ])
            .ok();
        let t = Instant::now();
        master
            .c2(&[
                "connect",
                "main",
                "app",
                "--await-slaves",
                "--min-slaves",
                &n.to_string(),
            ])
            .ok();
        times.push((n, t.elapsed()));
    }
    let t1 = times[0].1;
    for (n, t) in &times {
        table.row(
            &format!("connect --await-slaves, {n} slaves (`--repeat 1`) vs 1"),
            ms(*t),
            ms(t1),
            format!("{:.2}", t.as_secs_f64() / t1.as_secs_f64()),
            "",
        );
    }
}

/// 14. etcd against S3 (moto) in the same run: from `connect` returning
///     until every slave's nginx routes the new deploy, for 1, 10 and 50
///     slaves at `--repeat 30`; and what one idle slave costs per minute.
fn etcd_figures(table: &mut Table, moto: &Moto) {
    let cluster = etcd::Cluster::start(3);
    let mut times = Vec::new();
    for n in [1, 10, 50] {
        let on_etcd = connect_reaches_nginx(&cluster.url(&etcd::unique_prefix()), &[], n);
        let bucket = Moto::unique_bucket("reach");
        moto.create_bucket(&bucket);
        let location = format!("s3://{bucket}/camus2");
        let on_s3 = connect_reaches_nginx(&location, &moto.client_env(), n);
        times.push((n, on_etcd, on_s3));
    }
    let t1 = times[0].1.as_secs_f64();
    for (n, on_etcd, on_s3) in &times {
        let goal = if *n == 50 {
            "; goal: within 1 s, t(50)/t(1) below 1.2"
        } else {
            ""
        };
        table.row(
            &format!("`connect` returning until {n} slaves' nginx route the new deploy (`--repeat 30`), etcd vs S3"),
            ms(*on_etcd),
            format!("{} (S3, moto)", ms(*on_s3)),
            format!("{:.3}", on_etcd.as_secs_f64() / on_s3.as_secs_f64()),
            &format!("t({n})/t(1) on etcd: {:.2}{goal}", on_etcd.as_secs_f64() / t1),
        );
    }
    drop(cluster);

    // One idle slave per backend, side by side for a minute, each reaching
    // its store through a byte-counting proxy.
    let single = etcd::Cluster::start(1);
    let member: u16 = single
        .endpoint(0)
        .rsplit_once(':')
        .unwrap()
        .1
        .parse()
        .unwrap();
    let etcd_proxy = CountingProxy::start(member);
    let on_etcd = fleet::routed(
        &format!("etcd://127.0.0.1:{}/idle", etcd_proxy.port),
        &[],
        1,
        "30",
    );
    let s3 = Moto::start();
    let s3_proxy = CountingProxy::start(s3.port);
    let bucket = Moto::unique_bucket("idle");
    s3.create_bucket(&bucket);
    let through = format!("http://127.0.0.1:{}", s3_proxy.port);
    let envs: Vec<(String, String)> = s3
        .client_env()
        .into_iter()
        .map(|(k, v)| match k.as_str() {
            "S3_ENDPOINT" | "AWS_ENDPOINT_URL" => (k, through.clone()),
            _ => (k, v),
        })
        .collect();
    let on_s3 = fleet::routed(&format!("s3://{bucket}/camus2"), &envs, 1, "30");
    let messages = || -> f64 {
        common::http::get(member, "localhost", "/metrics")
            .body
            .lines()
            .filter(|l| l.starts_with("grpc_server_msg_received_total"))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum()
    };
    let lines = || {
        std::fs::read_to_string(s3.log())
            .unwrap_or_default()
            .lines()
            .count()
    };
    let (messages0, lines0) = (messages(), lines());
    let (etcd0, s30) = (
        etcd_proxy.bytes.load(Ordering::Relaxed),
        s3_proxy.bytes.load(Ordering::Relaxed),
    );
    // The measurement window, not a synchronisation.
    std::thread::sleep(Duration::from_secs(60));
    let etcd_requests = messages() - messages0;
    let s3_requests = (lines() - lines0) as f64;
    let etcd_bytes = etcd_proxy.bytes.load(Ordering::Relaxed) - etcd0;
    let s3_bytes = s3_proxy.bytes.load(Ordering::Relaxed) - s30;
    drop((on_etcd, on_s3));
    table.row(
        "idle slave per minute (`--repeat 30`): gRPC messages to etcd vs S3 requests",
        format!("{etcd_requests:.0}"),
        format!("{s3_requests:.0} (S3, moto)"),
        format!("{:.1}", etcd_requests / s3_requests.max(1.0)),
        "etcd: the watch, renewed every 10 s, and the report's lease kept alive",
    );
    table.row(
        "idle slave per minute (`--repeat 30`): bytes on the wire, etcd vs S3",
        format!("{etcd_bytes}"),
        format!("{s3_bytes} (S3, moto)"),
        format!("{:.1}", etcd_bytes as f64 / (s3_bytes as f64).max(1.0)),
        "etcd adds HTTP/2 pings every 2 s (they find a member that stopped answering)",
    );
}

/// Time from `connect` returning until every one of `n` slaves at
/// `--repeat 30` routes the new deploy through its nginx.
fn connect_reaches_nginx(location: &str, envs: &[(String, String)], n: usize) -> Duration {
    let fleet = fleet::routed(location, envs, n, "30");
    fleet.master.c2(&["start", "blue.zip"]).ok();
    common::wait_until(Duration::from_secs(120), "every slave to run blue", || {
        fleet.in_sync() == n
    });
    fleet.master.c2(&["connect", "main", "blue"]).ok();
    fleet.wait_served("blue /", Duration::from_secs(120))
}

/// 10. `c2 connect` switching an endpoint through the docker frontend
///     (nginx in the `frontendproxy` container, image built from the host's
///     nginx) against the host driver: 20 switches each, alternating, so
///     both see the same machine load. Skipped when no Docker engine answers.
fn connect_docker_vs_host(table: &mut Table) {
    let Some(engine) = common::docker::engine() else {
        return;
    };
    let _turn = engine.exclusive();
    // Removes the container, whatever happens.
    let _scope = common::docker::DockerScope::new("bench-connect");
    let host = common::switching::blue_green_env();
    let mut docker = Env::new();
    docker.proxy(&[("main", "main.example")]);
    let (le, www) = (docker.path("le"), docker.path("www"));
    docker
        .proxy_set("frontendProxy", json!("docker"))
        .set("nginxDockerImage", json!(common::docker::NGINX_IMAGE))
        .set("nginxDockerVersion", json!(engine.nginx_version))
        .set(
            "composeCommand",
            json!({"just": engine.compose_flavours[0]}),
        )
        .set("letsencryptPrefixDir", json!(le))
        .set("letsencryptWwwDir", json!(www));
    docker.http_release("blue.zip").publish();
    docker.http_release("green.zip").publish();
    docker.c2(&["start", "blue.zip"]).ok();
    docker.c2(&["start", "green.zip"]).ok();
    // The first connect creates the container; the switches reload it.
    docker.c2(&["connect", "main", "blue"]).ok();
    assert_eq!(docker.get("main.example", "/").body, "blue /");
    // Each switch goes to the deploy the endpoint is not on, checked by a
    // request through nginx; `program` is this c2 or the baseline.
    let switch = |env: &Env, program: Option<&std::ffi::OsStr>| {
        let to = if env.get("main.example", "/").body == "blue /" {
            "green"
        } else {
            "blue"
        };
        let cmd = env.c2(&["connect", "main", to]).cmd;
        let d = time(match program {
            Some(p) => with_program(&cmd, p),
            None => cmd,
        });
        assert_eq!(env.get("main.example", "/").body, format!("{to} /"));
        d
    };
    let old = baseline();
    let (mut on_host, mut in_docker, mut old_host, mut old_docker) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..20 {
        on_host.push(switch(&host, None));
        in_docker.push(switch(&docker, None));
        if let Some(old) = &old {
            old_host.push(switch(&host, Some(old)));
            old_docker.push(switch(&docker, Some(old)));
        }
    }
    engine_api_vs_cli(table);
    for env in [&host, &docker] {
        env.c2(&["disconnect", "main"]).ok();
        env.c2(&["stop", "blue"]).ok();
        env.c2(&["stop", "green"]).ok();
    }
    docker.c2(&["shutdown-frontend-proxy"]).ok();
    let (docker_t, host_t) = (median(in_docker), median(on_host));
    let ratio = |a: Duration, b: Duration| format!("{:.2}", a.as_secs_f64() / b.as_secs_f64());
    let (before, ratio_before) = if old.is_some() {
        let (d, h) = (median(old_docker), median(old_host));
        (format!("{} ({} on the host)", ms(d), ms(h)), ratio(d, h))
    } else {
        ("-".into(), "-".into())
    };
    table.row_before(
        "`c2 connect` switching an endpoint: docker frontend vs host driver (median of 20 each)",
        format!("{} (frontendproxy container)", ms(docker_t)),
        before,
        format!("{} (host nginx)", ms(host_t)),
        ratio(docker_t, host_t),
        ratio_before,
        "goal: at most 1.5; each binary's docker time over its own host time",
    );
}

/// What the docker CLI costs over the engine's API for the two requests
/// the reload still makes (inspect, `nginx -t` in the container), against
/// the running `frontendproxy`: the bound on what an API client in c2
/// would save. The API side is curl on the socket, spawn costs included.
fn engine_api_vs_cli(table: &mut Table) {
    const API: &str = "curl -sf --unix-socket /var/run/docker.sock";
    let inspect_cli = || {
        let mut c = Command::new("docker");
        c.args([
            "inspect",
            "-f",
            "{{.State.Running}} {{.State.Pid}}",
            "frontendproxy",
        ]);
        time(c)
    };
    let inspect_api = || time(sh(&format!("{API} http://d/containers/frontendproxy/json")));
    let exec_cli = || {
        let mut c = Command::new("docker");
        c.args(["exec", "frontendproxy", "nginx", "-t", "-q"]);
        time(c)
    };
    let exec_api = || {
        time(sh(&format!(
            "set -e; j='-H Content-Type:application/json'; \
             id=$({API} $j -d '{{\"Cmd\":[\"nginx\",\"-t\",\"-q\"],\"AttachStdout\":true,\"AttachStderr\":true}}' \
               http://d/containers/frontendproxy/exec | sed 's/.*\"Id\":\"\\([0-9a-f]*\\)\".*/\\1/'); \
             {API} $j -d '{{\"Detach\":false,\"Tty\":false}}' http://d/exec/$id/start >/dev/null; \
             {API} http://d/exec/$id/json | grep -q '\"ExitCode\":0'"
        )))
    };
    let (mut ic, mut ia, mut ec, mut ea) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..20 {
        ic.push(inspect_cli());
        ia.push(inspect_api());
        ec.push(exec_cli());
        ea.push(exec_api());
    }
    table.timed(
        "docker engine: inspect the container, API (curl on the socket) vs CLI",
        median(ia),
        None,
        median(ic),
        "`docker inspect`",
        "asked beside the `nginx -t` on every reload",
    );
    table.timed(
        "docker engine: `nginx -t` in the container, API (curl on the socket) vs CLI",
        median(ea),
        None,
        median(ec),
        "`docker exec`",
        "the reload's slowest step: the engine runs a command in the container",
    );
}

/// One keep-alive HTTP/1.1 connection to `c2 serve`, asking with a token:
/// the bench's client, so that what is timed is the server, not curl.
struct Client {
    stream: TcpStream,
    token: String,
}

impl Client {
    fn connect(port: u16, token: &str) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            token: token.to_string(),
        }
    }

    /// Sends a request and reads the whole answer: its status.
    fn ask(&mut self, method: &str, path: &str, body: &str) -> u16 {
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: c2\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.token,
            body.len()
        );
        self.stream.write_all(request.as_bytes()).unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            self.stream.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).to_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        let mut body = vec![0u8; length];
        self.stream.read_exact(&mut body).unwrap();
        head[9..12].parse().unwrap()
    }
}

/// The API against the command line: `GET /v1/status` of a fleet (100
/// deploys, 20 slaves) against `c2 status --json-output --show-slaves`,
/// requests per second on this machine, and what a start through the API
/// adds to `c2 start`.
fn api_figures(table: &mut Table) {
    let mut master = Env::new();
    master.proxy(&[("main", "main.example")]);
    master.proxy_set("dynamicPortRange", json!({"v1": 30000, "v2": 30200}));
    let shared = master.path("shared");
    master.remote(&shared.to_string_lossy());
    let deploys = hundred_deploys();
    let state = json!({"deploys": deploys, "connections": {"main": "app-000"}});
    common::write_file(&shared.join("master/state.json"), &state.to_string());
    for i in 0..20 {
        let report = json!({
            "status": "ok", "ipAddress": format!("10.0.0.{i}"), "hostName": format!("web{i}"),
            "state": state,
        });
        common::write_file(
            &shared.join(format!("slaves/web{i:02}/state.json")),
            &report.to_string(),
        );
    }
    let api = common::api::Api::serve(&mut master);
    let config = master.write_config();
    let mut client = Client::connect(api.port, &api.read);
    let (mut cli, mut http) = (Vec::new(), Vec::new());
    for _ in 0..100 {
        let mut c = Command::new(env!("CARGO_BIN_EXE_c2"));
        c.arg("--config")
            .arg(&config)
            .args(["status", "--json-output", "--show-slaves"]);
        cli.push(time(c));
        for _ in 0..5 {
            let began = Instant::now();
            assert_eq!(client.ask("GET", "/v1/status", ""), 200);
            http.push(began.elapsed());
        }
    }
    let (http_median, http_p99) = (median(http.clone()), percentile(http, 0.99));
    table.timed(
        "`GET /v1/status`, 100 deploys, 20 slaves, keep-alive (median of 500)",
        http_median,
        None,
        median(cli),
        "`c2 status --json-output --show-slaves`",
        &format!("p99 {}", ms(http_p99)),
    );

    // Requests per second: 4 clients, each asking as fast as it can.
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, served, token) = (stop.clone(), served.clone(), api.read.clone());
            let port = api.port;
            std::thread::spawn(move || {
                let mut client = Client::connect(port, &token);
                while !stop.load(Ordering::Relaxed) {
                    assert_eq!(client.ask("GET", "/v1/status", ""), 200);
                    served.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let window = Duration::from_secs(5);
    std::thread::sleep(window);
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let per_second = served.load(Ordering::Relaxed) as f64 / window.as_secs_f64();
    let cli_per_second = 1.0 / median(cli_runs_of_status(&config)).as_secs_f64();
    table.row(
        "`GET /v1/status` per second, 4 clients, 2 cores",
        format!("{per_second:.0}/s"),
        format!("{cli_per_second:.0}/s (`c2 status` in a loop)"),
        format!("{:.1}", per_second / cli_per_second),
        "ratio: how many times more",
    );
    drop(api);

    // A start through the API against `c2 start`, alternating.
    let mut env = Env::new();
    env.proxy(&[("main", "main.example")]);
    env.proxy_set("dynamicPortRange", json!({"v1": 30300, "v2": 30400}));
    env.release("app.zip")
        .set("startCommand", json!("true"))
        .publish();
    let api = common::api::Api::serve(&mut env);
    let mut client = Client::connect(api.port, &api.deploy);
    let (mut cli, mut http) = (Vec::new(), Vec::new());
    for i in 0..20 {
        let mut c = Command::new(env!("CARGO_BIN_EXE_c2"));
        c.arg("--config")
            .arg(env.write_config())
            .args(["start", "app.zip", &format!("cli{i}")]);
        cli.push(time(c));
        let body = format!(r#"{{"release": "app.zip", "label": "api{i}"}}"#);
        let began = Instant::now();
        assert_eq!(client.ask("POST", "/v1/deploys", &body), 201);
        http.push(began.elapsed());
    }
    let (http, cli) = (median(http), median(cli));
    let added = http.as_secs_f64() - cli.as_secs_f64();
    table.timed(
        "`POST /v1/deploys` (a start) against `c2 start` (median of 20, alternating)",
        http,
        None,
        cli,
        "`c2 start`",
        &format!("the API adds {:+.1} ms (goal: under 5 ms)", added * 1000.0),
    );
}

fn cli_runs_of_status(config: &std::path::Path) -> Vec<Duration> {
    (0..20)
        .map(|_| {
            let mut c = Command::new(env!("CARGO_BIN_EXE_c2"));
            c.arg("--config")
                .arg(config)
                .args(["status", "--json-output", "--show-slaves"]);
            time(c)
        })
        .collect()
}

/// A line plot of fleet convergence time against fleet size, as SVG.
fn plot(points: &[(usize, f64)]) -> String {
    let (w, h, m) = (600.0, 360.0, 60.0);
    let max_n = 50.0;
    let max_t = points.iter().map(|p| p.1).fold(0.0, f64::max).max(1.0) * 1.25;
    let x = |n: f64| m + (w - 2.0 * m) * n / max_n;
    let y = |t: f64| h - m - (h - 2.0 * m) * t / max_t;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">c2 fleet convergence (slave-update --repeat 1, S3 on moto)</text>\n\
         <line x1=\"{m}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n\
         <line x1=\"{m}\" y1=\"{m}\" x2=\"{m}\" y2=\"{}\" stroke=\"black\"/>\n\
         <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">slaves</text>\n\
         <text x=\"16\" y=\"{}\" transform=\"rotate(-90 16 {})\" text-anchor=\"middle\">seconds until all report the change</text>\n",
        w / 2.0, h - m, w - m, h - m, h - m, w / 2.0, h - 16.0, h / 2.0, h / 2.0
    );
    for n in [0, 10, 20, 30, 40, 50] {
        s += &format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{n}</text>\n",
            x(n as f64),
            h - m + 18.0
        );
    }
    let steps = 5;
    for i in 0..=steps {
        let t = max_t * i as f64 / steps as f64;
        s += &format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{t:.1}</text>\n<line x1=\"{m}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#ddd\"/>\n",
            m - 6.0,
            y(t) + 4.0,
            y(t),
            w - m,
            y(t)
        );
    }
    let path: Vec<String> = points
        .iter()
        .map(|(n, t)| format!("{:.1},{:.1}", x(*n as f64), y(*t)))
        .collect();
    s += &format!(
        "<polyline points=\"{}\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\"/>\n",
        path.join(" ")
    );
    for (n, t) in points {
        s += &format!(
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"#1f77b4\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{t:.2} s</text>\n",
            x(*n as f64),
            y(*t),
            x(*n as f64),
            y(*t) - 10.0
        );
    }
    s + "</svg>\n"
}

fn machine() -> String {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem_kb: u64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0);
    format!(
        "{cores} cores, {:.1} GiB memory",
        mem_kb as f64 / 1024.0 / 1024.0
    )
}

/// What the "before" columns time.
fn before_note() -> String {
    match (baseline(), std::env::var("C2_BASELINE_REV")) {
        (Some(_), Ok(rev)) if !rev.is_empty() => format!(
            "*c2 before* is c2 built from revision `{rev}`, timed in the same rounds \
             (`C2_BASELINE_REV={rev} sh scripts/bench`)."
        ),
        (Some(b), _) => format!(
            "*c2 before* is the binary `{}`, timed in the same rounds.",
            b.to_string_lossy()
        ),
        (None, _) => "No *c2 before* was given (`C2_BASELINE_REV`).".into(),
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this
    // binary without it, and must not start a benchmark of minutes.
    if !std::env::args().any(|a| a == "--bench") {
        println!("benchmarks run with `sh scripts/bench`");
        return;
    }
    let only: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let want = |name: &str| only.as_deref().is_none_or(|o| name.contains(o));
    let moto = Moto::shared();
    let mut table = Table(Vec::new());
    let mut points = Vec::new();
    if want("unpack") {
        unpack(&mut table, moto);
    }
    if want("status") {
        status(&mut table);
    }
    if want("idle") {
        idle_slave(&mut table);
    }
    if want("fleet") {
        points = fleet_convergence(&mut table, moto);
    }
    if want("switching") {
        switching_under_load(&mut table, false);
    }
    if want("rollback") {
        switching_under_load(&mut table, true);
    }
    if want("health") {
        health_gate(&mut table);
    }
    if want("await") {
        await_slaves(&mut table, moto);
    }
    if want("connect") {
        connect_docker_vs_host(&mut table);
    }
    if want("heal") {
        heal_figures(&mut table, moto);
    }
    if want("api") {
        api_figures(&mut table);
    }
    if want("etcd") {
        etcd_figures(&mut table, moto);
    }
    if want("dist") {
        dist_profile(&mut table);
    }
    let date = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    let root = env!("CARGO_MANIFEST_DIR");
    if !points.is_empty() {
        std::fs::create_dir_all(format!("{root}/docs")).unwrap();
        std::fs::write(format!("{root}/docs/fleet-convergence.svg"), plot(&points)).unwrap();
    }
    let fleet_table: String = points
        .iter()
        .map(|(n, t)| format!("| {n} | {t:.2} s | {:.2} |\n", t / points[0].1))
        .collect();
    let report = format!(
        "# c2 benchmarks\n\n\
         Measured {date} on {} by `sh scripts/bench` (the optimised c2 binary; moto's S3 server; \
         Debian's nginx). Each line compares c2 with what an operator would otherwise run, in the \
         same run on the same machine. {} Re-run to refresh this file.\n\n{}\n\
         ## Fleet convergence\n\nTime from a master change until every slave's report shows it \
         (slaves are separate `c2 slave-update --repeat 1` processes on this machine).\n\n\
         | slaves | time | ratio to 1 slave |\n|---|---|---|\n{fleet_table}\n\
         ![fleet convergence](docs/fleet-convergence.svg)\n",
        machine(),
        before_note(),
        table.markdown()
    );
    if only.is_none() {
        std::fs::write(format!("{root}/BENCHMARKS.md"), &report).unwrap();
    }
    print!("\n{report}");
}
