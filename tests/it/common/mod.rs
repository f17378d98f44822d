//! Test builders: a temporary machine (`Env`) with a config, a release
//! store and deploy directories; release zips built in place; the real `c2`
//! binary run against them; and a real S3 server (moto) when a test needs one.
//!
//! Also what the tests share across the run: [`wait_until`], to synchronise
//! on a condition rather than on time, and [`heavy`], the lock that keeps
//! heavy tests from running at the same time.

pub mod api;
pub mod docker;
pub mod etcd;
pub mod fleet;
pub mod fleet_hosts;
pub mod gate;
pub mod http;
pub mod link;
pub mod moto;
pub mod switching;
pub mod tls;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub use moto::Moto;

/// A scratch machine: everything c2 touches lives under `root`.
pub struct Env {
    pub root: tempfile::TempDir,
    config: Value,
    format: Format,
    envs: BTreeMap<String, String>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Format {
    Json,
    Yaml,
}

impl Env {
    /// Noproxy mode, releases in `<root>/store`, JSON config.
    pub fn new() -> Env {
        let root = tempfile::tempdir().expect("tempdir");
        let r = root.path();
        std::fs::create_dir_all(r.join("store")).unwrap();
        let config = json!({
            "deploysDir": r.join("deploys"),
            "contextCache": r.join("cache"),
            "logFile": r.join("log/c2.log"),
            "releases": {"localdir": r.join("store")},
        });
        Env {
            root,
            config,
            format: Format::Json,
            envs: BTreeMap::new(),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    /// Sets a top-level config field.
    pub fn set(&mut self, field: &str, value: Value) -> &mut Env {
        self.config[field] = value;
        self
    }

    pub fn config(&self) -> &Value {
        &self.config
    }

    pub fn format(&mut self, format: Format) -> &mut Env {
        self.format = format;
        self
    }

    /// Sets an environment variable for every c2 run.
    pub fn env(&mut self, key: &str, value: &str) -> &mut Env {
        self.envs.insert(key.into(), value.into());
        self
    }

    /// Points the release store and S3 access at a moto bucket.
    pub fn use_s3(&mut self, moto: &Moto, bucket: &str, prefix: &str) -> &mut Env {
        moto.create_bucket(bucket);
        self.set("releases", json!({"s3": format!("s3://{bucket}/{prefix}")}));
        for (k, v) in moto.client_env() {
            self.env(&k, &v);
        }
        self
    }

    /// Proxy mode with the host nginx frontend on a free port, endpoints
    /// `(label, server name)` (all httpOnly), and a port range of this
    /// Env's own so tests running in parallel never share ports.
    pub fn proxy(&mut self, endpoints: &[(&str, &str)]) -> &mut Env {
        let eps: serde_json::Map<String, Value> = endpoints
            .iter()
            .map(|(label, name)| {
                (
                    label.to_string(),
                    json!({"serverNames": [name], "etype": "httpOnly"}),
                )
            })
            .collect();
        let base = next_port_range();
        self.set(
            "deployMode",
            json!({"proxy": {
                "endPoints": eps,
                "frontendProxy": {"host": {"nginxBinary": nginx_binary()}},
                "httpPort": moto::free_port(),
                "httpsPort": moto::free_port(),
                "dynamicPortRange": {"v1": base, "v2": base + PORT_RANGE_WIDTH},
            }}),
        );
        self
    }

    /// Remote state at `location` (an s3:// URL or a directory); this
    /// machine reports as a slave labelled `master` on the loopback.
    pub fn remote(&mut self, location: &str) -> &mut Env {
        self.proxy_set("remoteStateS3", json!({"just": location}));
        self.proxy_set("slaveLabel", json!({"label": "master"}));
        self.proxy_set("slaveInterfaceName", json!("lo"));
        self
    }

    /// A master with remote state in S3: proxy mode with endpoint `main`
    /// (main.example), releases under `s3://<bucket>/releases` and the
    /// state under `s3://<bucket>/camus2`.
    pub fn s3_master(moto: &Moto, bucket: &str) -> Env {
        let mut env = Env::new();
        env.proxy(&[("main", "main.example")]);
        env.use_s3(moto, bucket, "releases");
        env.remote(&format!("s3://{bucket}/camus2"));
        env
    }

    /// Another machine following the same master: the same config and
    /// environment, its own deploysDir, context cache, log and nginx ports.
    pub fn slave(&self, label: &str) -> Env {
        let mut slave = Env::new();
        let store = self.config["releases"].clone();
        let deploys = slave.config["deploysDir"].clone();
        let cache = slave.config["contextCache"].clone();
        let log = slave.config["logFile"].clone();
        slave.config = self.config.clone();
        slave.set("releases", store);
        slave.set("deploysDir", deploys);
        slave.set("contextCache", cache);
        slave.set("logFile", log);
        slave.proxy_set("slaveLabel", json!({"label": label}));
        slave.proxy_set("httpPort", json!(moto::free_port()));
        slave.proxy_set("httpsPort", json!(moto::free_port()));
        slave.envs = self.envs.clone();
        slave
    }

    /// `status --show-slaves --json-output`, parsed.
    pub fn status_json(&self) -> Value {
        let out = self.c2(&["status", "--show-slaves", "--json-output"]).ok();
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    /// The report of slave `label` in `status_json`, if any.
    pub fn slave_report(&self, label: &str) -> Option<Value> {
        self.status_json()["slaves"]
            .as_array()?
            .iter()
            .find(|s| s["label"] == label)
            .cloned()
    }

    /// Sets a field of the proxy mode config.
    pub fn proxy_set(&mut self, field: &str, value: Value) -> &mut Env {
        self.config["deployMode"]["proxy"][field] = value;
        self
    }

    pub fn http_port(&self) -> u16 {
        self.config["deployMode"]["proxy"]["httpPort"]
            .as_u64()
            .unwrap() as u16
    }

    pub fn port_range(&self) -> (u32, u32) {
        let r = &self.config["deployMode"]["proxy"]["dynamicPortRange"];
        (
            r["v1"].as_u64().unwrap() as u32,
            r["v2"].as_u64().unwrap() as u32,
        )
    }

    /// GET `path` through the frontend proxy with `Host: host`.
    pub fn get(&self, host: &str, path: &str) -> http::Response {
        http::get(self.http_port(), host, path)
    }

    /// A release whose start command serves HTTP on `{{ports.http}}`,
    /// answering `<name> <path>` (see tests/support/serve.py).
    pub fn http_release(&self, name: &str) -> ReleaseBuilder {
        let label = stem(name);
        self.release(name)
            .file("serve.py", include_str!("../../support/serve.py"))
            .template("port.tpl", "{{ports.http}}")
            .set(
                "startCommand",
                json!(format!("python3 serve.py $(cat port) {label}")),
            )
            .set("stopCommand", json!("kill $(cat server.pid)"))
    }

    /// The state file, parsed.
    pub fn state(&self) -> Value {
        let p = self.path("deploys/frontend-proxy/state.json");
        match std::fs::read_to_string(&p) {
            Ok(t) => serde_json::from_str(&t).unwrap(),
            Err(_) => json!(null),
        }
    }

    /// Writes a context source file and registers it in `configSources`.
    pub fn context_file(&mut self, name: &str, content: &str) -> &mut Env {
        let path = self.path(&format!("sources/{name}.json"));
        write_file(&path, content);
        self.config["configSources"][name] = json!({"file": path});
        self
    }

    /// Writes the config file and returns its path.
    pub fn write_config(&self) -> PathBuf {
        let (name, text) = match self.format {
            Format::Json => (
                "camus2.json",
                serde_json::to_string_pretty(&self.config).unwrap(),
            ),
            Format::Yaml => (
                "camus2.yaml",
                serde_norway::to_string(&self.config).unwrap(),
            ),
        };
        let path = self.path(&format!("etc/{name}"));
        // Atomically: c2 runs started in parallel may be reading it.
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let tmp = tempfile::NamedTempFile::new_in(path.parent().unwrap()).unwrap();
        std::fs::write(tmp.path(), text).unwrap();
        tmp.persist(&path).unwrap();
        path
    }

    /// A `c2 --config <file> args…` run, not yet started.
    pub fn c2(&self, args: &[&str]) -> Run {
        let config = self.write_config();
        let mut run = Run::new(args);
        run.cmd.arg("--config").arg(config);
        for (k, v) in &self.envs {
            run.cmd.env(k, v);
        }
        run.cmd.current_dir(self.root.path());
        run
    }

    /// `sh <script> args…` run as an operator's script runs: `C2` is the c2
    /// under test, `CAMUS2_CONFIG` this Env's config.
    pub fn script(&self, script: &Path, args: &[&str]) -> Run {
        let mut run = Run::of("sh", &[]);
        run.cmd
            .arg(script)
            .args(args)
            .env("C2", env!("CARGO_BIN_EXE_c2"))
            .env("CAMUS2_CONFIG", self.write_config());
        for (k, v) in &self.envs {
            run.cmd.env(k, v);
        }
        run.cmd.current_dir(self.root.path());
        run
    }

    /// A release zip builder that publishes into the local store.
    pub fn release(&self, name: &str) -> ReleaseBuilder {
        ReleaseBuilder::new(name, self.path("store"))
    }

    pub fn read(&self, rel: &str) -> String {
        let p = self.path(rel);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
    }

    pub fn exists(&self, rel: &str) -> bool {
        self.path(rel).symlink_metadata().is_ok()
    }

    /// Where `deploysDir/current` points, if anywhere.
    pub fn current(&self) -> Option<String> {
        std::fs::read_link(self.path("deploys/current"))
            .ok()
            .map(|p| p.to_string_lossy().to_string())
    }

    /// The lines the releases' commands appended to `<root>/events`.
    pub fn events(&self) -> Vec<String> {
        std::fs::read_to_string(self.path("events"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

/// Stops whatever the test left running: release servers and nginx.
impl Drop for Env {
    fn drop(&mut self) {
        let deploys = self.path("deploys");
        let mut pid_files = vec![deploys.join("frontend-proxy/nginx.pid")];
        if let Ok(entries) = std::fs::read_dir(&deploys) {
            for e in entries.flatten() {
                pid_files.push(e.path().join("server.pid"));
            }
        }
        for f in pid_files {
            if let Some(pid) = std::fs::read_to_string(&f)
                .ok()
                .and_then(|t| t.trim().parse::<u32>().ok())
            {
                terminate(pid);
            }
        }
    }
}

/// Sends SIGTERM to `pid` (a child or a server of ours), if it still runs.
pub fn terminate(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
}

pub const PORT_RANGE_WIDTH: u32 = 10;

/// A port range no other Env of this test run uses: below the ephemeral
/// range, offset by the process id so consecutive runs differ too. The
/// `extra` ports (P + k·W) stay inside the 50 ports reserved here.
fn next_port_range() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let free = |port: u32| std::net::TcpListener::bind(("127.0.0.1", port as u16)).is_ok();
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let slot = (std::process::id() * 7 + n) % 300;
        let base = 15000 + slot * 5 * PORT_RANGE_WIDTH;
        // Slots come round again after 300 Envs, and a server an earlier
        // test left running may still hold a port of this one: skip it.
        if (base..base + 5 * PORT_RANGE_WIDTH).all(free) || n > 3000 {
            return base;
        }
    }
}

/// `len` bytes that do not compress (xorshift from a non-zero `seed`), so
/// a zip holding them is as large: like images and jars.
pub fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

/// Polls `done` until it holds; fails naming `what` if it still does not
/// after `within`.
pub fn wait_until(within: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Held for the whole of each heavy test, so that no two run at once: those
/// that load the machine (the 30-slave fleet, docker, the kill -9 trials,
/// the switching client) and those that count what happens per second (the
/// idle slave's rounds). Side by side on a small machine they would slow
/// each other into their deadlines; light tests still run beside them.
pub fn heavy() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    // A heavy test that failed must not fail the others.
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// The nginx binary for host-driver tests.
pub fn nginx_binary() -> String {
    for candidate in [
        "/usr/sbin/nginx",
        "/usr/local/sbin/nginx",
        "/usr/local/nginx/sbin/nginx",
    ] {
        if Path::new(candidate).is_file() {
            return candidate.to_string();
        }
    }
    panic!("nginx not found: run the README's test command (scripts/test), which installs it")
}

pub fn write_file(path: &Path, content: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

/// One run of the real c2 binary.
pub struct Run {
    pub cmd: Command,
}

impl Run {
    pub fn new(args: &[&str]) -> Run {
        Run::of(env!("CARGO_BIN_EXE_c2"), args)
    }

    fn of(program: &str, args: &[&str]) -> Run {
        let mut cmd = Command::new(program);
        cmd.args(args);
        // Keep the developer's own AWS setup and config out of the tests.
        for var in [
            "CAMUS2_CONFIG",
            "AWS_PROFILE",
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_S3",
            "S3_ENDPOINT",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("AWS_EC2_METADATA_DISABLED", "true");
        Run { cmd }
    }

    pub fn env(mut self, key: &str, value: &str) -> Run {
        self.cmd.env(key, value);
        self
    }

    /// Starts c2 with its stdout and stderr piped to the test, to read
    /// while it runs or collect with `wait_with_output`.
    pub fn spawn(mut self) -> std::process::Child {
        self.cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run c2")
    }

    pub fn output(mut self) -> Output {
        let out = self.cmd.output().expect("run c2");
        Output {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).to_string(),
        }
    }

    /// Runs and asserts exit code 0.
    pub fn ok(self) -> Output {
        let out = self.output();
        assert_eq!(out.code, Some(0), "c2 failed:\n{out}");
        out
    }

    /// Runs and asserts a non-zero exit with a one-line error on stderr
    /// that contains `needle`.
    pub fn fails_with(self, needle: &str) -> Output {
        let out = self.output();
        assert_ne!(out.code, Some(0), "c2 unexpectedly succeeded:\n{out}");
        let err = out.error_line();
        assert!(
            err.contains(needle),
            "error line does not contain {needle:?}:\n{out}"
        );
        out
    }
}

pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// The one `c2: error:` line (asserting there is exactly one).
    pub fn error_line(&self) -> String {
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| l.starts_with("c2: error:"))
            .collect();
        assert_eq!(lines.len(), 1, "expected one error line:\n{self}");
        lines[0].to_string()
    }

    /// Log messages without their timestamps.
    pub fn log_messages(&self) -> Vec<String> {
        self.stdout
            .lines()
            .filter_map(|l| l.split_once(' ').map(|(_, m)| m.to_string()))
            .collect()
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit: {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Builds a release zip: `release.json` plus files, templates and symlinks.
pub struct ReleaseBuilder {
    name: String,
    store: PathBuf,
    release_json: Value,
    files: Vec<(String, Vec<u8>, u32)>,
    symlinks: Vec<(String, String)>,
    raw_release_json: Option<String>,
}

impl ReleaseBuilder {
    fn new(name: &str, store: PathBuf) -> ReleaseBuilder {
        // By default each command appends a line to <root>/events so tests
        // can see exactly what ran, in which order, in which directory.
        let label = stem(name);
        let events = store.parent().unwrap().join("events");
        let ev = |what: &str| {
            format!(
                "echo \"{what} {label} $(basename $PWD)\" >> {}",
                events.display()
            )
        };
        ReleaseBuilder {
            name: name.to_string(),
            store,
            release_json: json!({
                "templates": [],
                "prestartCommand": ev("prestart"),
                "startCommand": ev("start"),
                "stopCommand": ev("stop"),
            }),
            files: Vec::new(),
            symlinks: Vec::new(),
            raw_release_json: None,
        }
    }

    pub fn file(self, path: &str, content: &str) -> Self {
        self.file_bytes(path, content.as_bytes().to_vec())
    }

    pub fn file_bytes(mut self, path: &str, content: Vec<u8>) -> Self {
        self.files.push((path.into(), content, 0o644));
        self
    }

    pub fn executable(mut self, path: &str, content: &str) -> Self {
        self.files
            .push((path.into(), content.as_bytes().to_vec(), 0o755));
        self
    }

    /// Adds a template file and lists it in `release.json`.
    pub fn template(mut self, path: &str, content: &str) -> Self {
        self.release_json["templates"]
            .as_array_mut()
            .unwrap()
            .push(json!(path));
        self.file(path, content)
    }

    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        self.symlinks.push((path.into(), target.into()));
        self
    }

    /// Sets a `release.json` field.
    pub fn set(mut self, field: &str, value: Value) -> Self {
        self.release_json[field] = value;
        self
    }

    /// Replaces release.json with raw text (for malformed ones).
    pub fn raw_release_json(mut self, text: &str) -> Self {
        self.raw_release_json = Some(text.into());
        self
    }

    /// Leaves release.json out entirely.
    pub fn without_release_json(mut self) -> Self {
        self.raw_release_json = Some(String::new());
        self
    }

    pub fn zip_bytes(&self) -> Vec<u8> {
        use zip::write::SimpleFileOptions;
        let mut buf = std::io::Cursor::new(Vec::new());
        {
            let mut z = zip::ZipWriter::new(&mut buf);
            let rj = match &self.raw_release_json {
                Some(t) => t.clone(),
                None => serde_json::to_string_pretty(&self.release_json).unwrap(),
            };
            if self.raw_release_json.as_deref() != Some("") {
                z.start_file("release.json", SimpleFileOptions::default())
                    .unwrap();
                z.write_all(rj.as_bytes()).unwrap();
            }
            for (path, data, mode) in &self.files {
                let opts = SimpleFileOptions::default().unix_permissions(*mode);
                z.start_file(path.as_str(), opts).unwrap();
                z.write_all(data).unwrap();
            }
            for (path, target) in &self.symlinks {
                z.add_symlink(path.as_str(), target.as_str(), SimpleFileOptions::default())
                    .unwrap();
            }
            z.finish().unwrap();
        }
        buf.into_inner()
    }

    /// The release as its name says it is packed: a tarball (`.tar`,
    /// `.tar.gz`, `.tgz`), else a zip.
    pub fn archive_bytes(&self) -> Vec<u8> {
        if self.name.ends_with(".tar") {
            self.tar_bytes()
        } else if self.name.ends_with(".tar.gz") || self.name.ends_with(".tgz") {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&self.tar_bytes()).unwrap();
            gz.finish().unwrap()
        } else {
            self.zip_bytes()
        }
    }

    pub fn tar_bytes(&self) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        let mut add = |path: &str, data: &[u8], mode: u32| {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(mode);
            header.set_entry_type(tar::EntryType::Regular);
            tar.append_data(&mut header, path, data).unwrap();
        };
        if self.raw_release_json.as_deref() != Some("") {
            let rj = match &self.raw_release_json {
                Some(t) => t.clone(),
                None => serde_json::to_string_pretty(&self.release_json).unwrap(),
            };
            add("release.json", rj.as_bytes(), 0o644);
        }
        for (path, data, mode) in &self.files {
            add(path, data, *mode);
        }
        for (path, target) in &self.symlinks {
            let mut header = tar::Header::new_gnu();
            header.set_size(0);
            header.set_mode(0o777);
            header.set_entry_type(tar::EntryType::Symlink);
            tar.append_link(&mut header, path, target).unwrap();
        }
        tar.into_inner().unwrap()
    }

    /// Writes the archive into the local release store.
    pub fn publish(self) {
        let bytes = self.archive_bytes();
        std::fs::write(self.store.join(&self.name), bytes).unwrap();
    }

    /// Uploads the archive to S3 at `s3://bucket/prefix/<name>`.
    pub fn publish_s3(self, moto: &Moto, bucket: &str, prefix: &str) {
        let key = if prefix.is_empty() {
            self.name.clone()
        } else {
            format!("{prefix}/{}", self.name)
        };
        moto.put(bucket, &key, &self.archive_bytes());
    }
}

/// A release's default deploy label, as c2 makes it: the name without its
/// archive suffix (`.zip`, `.tar`, `.tar.gz`, `.tgz`) or last extension.
pub fn stem(name: &str) -> &str {
    for suffix in [".tar.gz", ".tgz", ".tar"] {
        if let Some(stem) = name.strip_suffix(suffix).filter(|s| !s.is_empty()) {
            return stem;
        }
    }
    name.rsplit_once('.').map_or(name, |(s, _)| s)
}
