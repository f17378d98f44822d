//! A real etcd cluster for tests: three members of Debian's `etcd` on
//! loopback, each under a shell watchdog that kills it when the test
//! process exits (as moto's server is). Members can be killed, frozen
//! (SIGSTOP: a member cut off from everyone, its connections left
//! hanging) and started again on their data. [`Cluster::start_secure`]
//! makes one that speaks TLS only, asks clients for a certificate signed by
//! its CA, and has authentication on.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

use super::{moto::free_port, wait_until};

pub struct Cluster {
    dir: tempfile::TempDir,
    members: Vec<Member>,
    secure: Option<Secure>,
}

/// A secure cluster's files (under its directory) and its root password.
pub struct Secure {
    _dir: tempfile::TempDir,
    pub ca: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    pub root_password: String,
}

struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    watchdog: Mutex<Option<Child>>,
}

impl Member {
    fn client_url(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    /// Closes the watchdog's stdin, which kills etcd, and waits for it.
    fn stop(&self) {
        if let Some(mut watchdog) = self.watchdog.lock().unwrap().take() {
            drop(watchdog.stdin.take());
            let _ = watchdog.wait();
        }
    }
}

impl Cluster {
    /// Starts `n` members and waits until every one answers.
    pub fn start(n: usize) -> Cluster {
        Cluster::launch_all(n, None)
    }

    /// One member that speaks TLS only (its certificate for 127.0.0.1,
    /// signed by a CA of its own), wants a client certificate signed by the
    /// same CA, and has authentication on: user `root`, password
    /// [`Secure::root_password`].
    pub fn start_secure() -> Cluster {
        let files = tempfile::tempdir().unwrap();
        let at = |name: &str| files.path().join(name);
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(files.path())
                .output()
                .expect("openssl");
            assert!(out.status.success(), "openssl {args:?}: {out:?}");
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=c2 test CA",
            "-keyout",
            "ca-key.pem",
            "-out",
            "ca.pem",
        ]);
        for (name, cn, san) in [
            ("server", "127.0.0.1", "subjectAltName=IP:127.0.0.1"),
            ("client", "root", "extendedKeyUsage=clientAuth"),
        ] {
            openssl(&[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                &format!("/CN={cn}"),
                "-keyout",
                &format!("{name}-key.pem"),
                "-out",
                &format!("{name}.csr"),
            ]);
            std::fs::write(at(&format!("{name}.ext")), format!("{san}\n")).unwrap();
            openssl(&[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca-key.pem",
                "-CAcreateserial",
                "-days",
                "1",
                "-extfile",
                &format!("{name}.ext"),
                "-out",
                &format!("{name}.pem"),
            ]);
        }
        let secure = Secure {
            ca: at("ca.pem"),
            client_cert: at("client.pem"),
            client_key: at("client-key.pem"),
            server_cert: at("server.pem"),
            server_key: at("server-key.pem"),
            root_password: format!("pw-{}-{}", std::process::id(), free_port()),
            _dir: files,
        };
        let cluster = Cluster::launch_all(1, Some(secure));
        let ctl = |args: &[&str]| {
            let out = cluster
                .command(&cluster.endpoints(), false)
                .args(args)
                .output()
                .unwrap();
            assert!(out.status.success(), "etcdctl {args:?}: {out:?}");
        };
        let password = cluster.secure.as_ref().unwrap().root_password.clone();
        ctl(&["user", "add", &format!("root:{password}")]);
        ctl(&["auth", "enable"]);
        cluster
    }

    fn launch_all(n: usize, secure: Option<Secure>) -> Cluster {
        assert!(
            which("etcd") && which("etcdctl"),
            "etcd is not installed: run the README's test command (scripts/test), which installs etcd-server and etcd-client"
        );
        let members = (0..n)
            .map(|i| Member {
                name: format!("m{i}"),
                client_port: free_port(),
                peer_port: free_port(),
                watchdog: Mutex::new(None),
            })
            .collect();
        let cluster = Cluster {
            dir: tempfile::tempdir().unwrap(),
            members,
            secure,
        };
        for i in 0..n {
            cluster.launch(i, "new");
        }
        cluster.wait_healthy();
        cluster
    }

    /// The secure cluster's files and password.
    pub fn secure(&self) -> &Secure {
        self.secure.as_ref().expect("not a secure cluster")
    }

    /// The shared cluster of this test run; tests keep apart by prefix.
    pub fn shared() -> &'static Cluster {
        static SHARED: std::sync::OnceLock<Cluster> = std::sync::OnceLock::new();
        SHARED.get_or_init(|| Cluster::start(3))
    }

    fn launch(&self, i: usize, state: &str) {
        let initial: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect();
        let m = &self.members[i];
        let data = self.dir.path().join(&m.name);
        let log = self.dir.path().join(format!("{}.log", m.name));
        let mut etcd = format!(
            "etcd --name {name} --data-dir '{data}' \
             --listen-client-urls {client} --advertise-client-urls {client} \
             --listen-peer-urls {peer} --initial-advertise-peer-urls {peer} \
             --initial-cluster {initial} --initial-cluster-state {state} \
             --initial-cluster-token c2-test --heartbeat-interval 50 --election-timeout 500",
            name = m.name,
            data = data.display(),
            client = m.client_url(self.scheme()),
            peer = m.peer_url(),
            initial = initial.join(","),
        );
        if let Some(secure) = &self.secure {
            etcd += &format!(
                " --cert-file '{}' --key-file '{}' --client-cert-auth --trusted-ca-file '{}'",
                secure.server_cert.display(),
                secure.server_key.display(),
                secure.ca.display()
            );
        }
        let script = format!(
            "{etcd} >>'{}' 2>&1 & e=$!; echo $e >'{data}.pid'; read _; kill -CONT $e; kill -9 $e; wait $e",
            log.display(),
            data = data.display(),
        );
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            // The shell would say "Killed" of the member it kills.
            .stderr(Stdio::null())
            .spawn()
            .expect("start etcd");
        *self.members[i].watchdog.lock().unwrap() = Some(child);
    }

    fn scheme(&self) -> &'static str {
        if self.secure.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// The process id of member `i`.
    fn pid(&self, i: usize) -> i32 {
        let path = self
            .dir
            .path()
            .join(format!("{}.pid", self.members[i].name));
        let mut pid = None;
        wait_until(Duration::from_secs(10), "etcd's pid file", || {
            pid = std::fs::read_to_string(&path)
                .ok()
                .and_then(|t| t.trim().parse().ok());
            pid.is_some()
        });
        pid.unwrap()
    }

    fn signal(&self, i: usize, signal: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid(i)), signal);
    }

    /// Kills member `i` (SIGKILL) and waits for its watchdog.
    pub fn kill(&self, i: usize) {
        self.signal(i, nix::sys::signal::Signal::SIGKILL);
        self.members[i].stop();
        let _ = std::fs::remove_file(
            self.dir
                .path()
                .join(format!("{}.pid", self.members[i].name)),
        );
    }

    /// Starts member `i` again on its data, and waits until it answers.
    pub fn restart(&self, i: usize) {
        self.launch(i, "existing");
        self.wait_healthy();
    }

    /// Freezes member `i`: its peers and clients get no answer, as if a
    /// network partition had cut it off.
    pub fn freeze(&self, i: usize) {
        self.signal(i, nix::sys::signal::Signal::SIGSTOP);
    }

    pub fn thaw(&self, i: usize) {
        self.signal(i, nix::sys::signal::Signal::SIGCONT);
    }

    /// `host:port` of every member, comma-separated.
    pub fn endpoints(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("127.0.0.1:{}", m.client_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `host:port` of member `i`.
    pub fn endpoint(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.members[i].client_port)
    }

    /// The remote location of a fleet under `prefix` in this cluster.
    pub fn url(&self, prefix: &str) -> String {
        let scheme = if self.secure.is_some() {
            "etcds"
        } else {
            "etcd"
        };
        format!("{scheme}://{}/{prefix}", self.endpoints())
    }

    /// The index of the current leader.
    pub fn leader(&self) -> usize {
        let mut leader = None;
        wait_until(Duration::from_secs(20), "etcd to have a leader", || {
            leader = (0..self.members.len()).find(|&i| {
                let out = self.ctl_on(&self.endpoint(i), &["endpoint", "status", "-w", "json"]);
                let status: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
                let status = &status[0]["Status"];
                status["leader"].is_u64() && status["leader"] == status["header"]["member_id"]
            });
            leader.is_some()
        });
        leader.unwrap()
    }

    fn wait_healthy(&self) {
        wait_until(
            Duration::from_secs(30),
            "every etcd member to answer",
            || {
                self.members.iter().all(|m| {
                    // Without a user: before authentication is on, etcdctl
                    // refuses one; after, a health check needs none.
                    m.watchdog.lock().unwrap().is_none()
                        || self
                            .command(&format!("127.0.0.1:{}", m.client_port), false)
                            .args(["endpoint", "health"])
                            .output()
                            .is_ok_and(|out| out.status.success())
                })
            },
        );
    }

    /// `etcdctl` against the whole cluster; panics if it fails.
    pub fn ctl(&self, args: &[&str]) -> String {
        self.ctl_on(&self.endpoints(), args)
    }

    fn ctl_on(&self, endpoints: &str, args: &[&str]) -> String {
        self.run_ctl(endpoints, args).unwrap_or_default()
    }

    /// etcdctl for `endpoints`, with the secure cluster's certificates and,
    /// if `auth`, its root user.
    fn command(&self, endpoints: &str, auth: bool) -> Command {
        let mut command = Command::new("etcdctl");
        command
            .env("ETCDCTL_API", "3")
            .arg("--endpoints")
            .arg(endpoints)
            .arg("--dial-timeout=2s")
            .arg("--command-timeout=3s");
        if let Some(secure) = &self.secure {
            command
                .arg(format!("--cacert={}", secure.ca.display()))
                .arg(format!("--cert={}", secure.client_cert.display()))
                .arg(format!("--key={}", secure.client_key.display()));
            if auth {
                command.arg(format!("--user=root:{}", secure.root_password));
            }
        }
        command
    }

    fn run_ctl(&self, endpoints: &str, args: &[&str]) -> Option<String> {
        let out = self.command(endpoints, true).args(args).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The value at `key`, if any.
    pub fn get(&self, key: &str) -> Option<String> {
        let out = self.ctl(&["get", key, "--print-value-only"]);
        (!out.is_empty()).then(|| out.strip_suffix('\n').unwrap_or(&out).to_string())
    }

    pub fn put(&self, key: &str, value: &str) {
        let out = self
            .command(&self.endpoints(), true)
            .args(["put", key, value])
            .output()
            .unwrap();
        assert!(out.status.success(), "etcdctl put {key} failed: {out:?}");
    }

    /// The revision `key` was last written at (0: there is no such key).
    pub fn mod_revision(&self, key: &str) -> u64 {
        let out = self.ctl(&["get", key, "-w", "json"]);
        let answer: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
        answer["kvs"][0]["mod_revision"].as_u64().unwrap_or(0)
    }

    /// The keys under `prefix`.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        self.ctl(&["get", "--prefix", prefix, "--keys-only"])
            .lines()
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for m in &self.members {
            m.stop();
        }
    }
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// A key prefix no other test of this run uses.
pub fn unique_prefix() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "c2-{}-{}/camus2",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
