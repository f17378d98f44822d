//! A real S3-compatible server for tests: moto's server over HTTP, with
//! its conditional writes made atomic as S3's are
//! (`tests/support/moto-server.py`).
//!
//! Tests share one server per test run ([`Moto::shared`]) and keep out
//! of each other's way with their own bucket names. The server runs under a
//! tiny shell watchdog that kills it when our end of its stdin pipe closes,
//! i.e. when the test process exits, however it exits.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;

pub struct Moto {
    pub endpoint: String,
    pub port: u16,
    child: Child,
    client: Client,
    rt: tokio::runtime::Runtime,
}

/// Where the server on `port` logs, one line per request.
fn log_path(port: u16) -> PathBuf {
    std::env::temp_dir().join(format!("c2-moto-{port}.log"))
}

impl Moto {
    /// The server's request log, one line per request.
    pub fn log(&self) -> PathBuf {
        log_path(self.port)
    }

    /// The server shared by every test of this run (this process).
    pub fn shared() -> &'static Moto {
        static SHARED: OnceLock<Moto> = OnceLock::new();
        SHARED.get_or_init(Moto::start)
    }

    /// Starts a server of one's own (stopped when dropped).
    pub fn start() -> Moto {
        let port = free_port();
        Moto::start_on(port)
    }

    /// Starts a server on `port` (to restart one at the same address).
    pub fn start_on(port: u16) -> Moto {
        Moto::start_at("127.0.0.1", port)
    }

    /// Starts a server listening on `host`'s address (an IPv4 address of
    /// this machine, such as a docker network's gateway) and `port`.
    pub fn start_at(host: &str, port: u16) -> Moto {
        let python = which("python3").expect("python3 not found on PATH");
        let probe = Command::new(&python)
            .args(["-c", "import moto.server, flask"])
            .output()
            .expect("run python3");
        assert!(
            probe.status.success(),
            "moto's server is not installed: run the README's test command (scripts/test), which installs moto[server]"
        );
        let log = log_path(port);
        let server = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/moto-server.py");
        let script = format!(
            "'{python}' '{server}' -H {host} -p {port} >'{}' 2>&1 & m=$!; read _; kill $m; wait $m",
            log.display()
        );
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .spawn()
            .expect("start moto_server");
        let endpoint = format!("http://{host}:{port}");
        wait_for_port(host, port, &log);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = rt.block_on(async {
            let conf = aws_sdk_s3::config::Builder::new()
                .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
                .region(aws_sdk_s3::config::Region::new("us-east-1"))
                .endpoint_url(&endpoint)
                .force_path_style(true)
                .credentials_provider(aws_sdk_s3::config::Credentials::new(
                    "testing", "testing", None, None, "tests",
                ))
                .build();
            Client::from_conf(conf)
        });
        Moto {
            endpoint,
            port,
            child,
            client,
            rt,
        }
    }

    /// Environment variables that point c2 (or any AWS tool) at this server.
    pub fn client_env(&self) -> Vec<(String, String)> {
        vec![
            ("S3_ENDPOINT".into(), self.endpoint.clone()),
            ("AWS_ENDPOINT_URL".into(), self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID".into(), "testing".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "testing".into()),
            ("AWS_REGION".into(), "us-east-1".into()),
        ]
    }

    /// An AWS SDK config pointing at this server, to build a client of any
    /// service for test setup and checks (independent of c2's own code).
    pub fn sdk_config(&self) -> aws_config::SdkConfig {
        self.rt.block_on(
            aws_config::defaults(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new("us-east-1"))
                .endpoint_url(&self.endpoint)
                .credentials_provider(aws_sdk_s3::config::Credentials::new(
                    "testing", "testing", None, None, "tests",
                ))
                .load(),
        )
    }

    /// Runs a future (an SDK call) on this fixture's runtime.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// A bucket name no other test uses.
    pub fn unique_bucket(prefix: &str) -> String {
        static N: AtomicUsize = AtomicUsize::new(0);
        format!(
            "{prefix}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        )
    }

    pub fn create_bucket(&self, bucket: &str) {
        self.rt.block_on(async {
            let r = self.client.create_bucket().bucket(bucket).send().await;
            if let Err(e) = r {
                let already = e
                    .as_service_error()
                    .is_some_and(|s| s.is_bucket_already_owned_by_you());
                assert!(already, "create bucket {bucket}: {e:?}");
            }
        });
    }

    pub fn put(&self, bucket: &str, key: &str, data: &[u8]) {
        self.rt.block_on(async {
            self.client
                .put_object()
                .bucket(bucket)
                .key(key)
                .body(ByteStream::from(data.to_vec()))
                .send()
                .await
                .unwrap_or_else(|e| panic!("put s3://{bucket}/{key}: {e:?}"));
        });
    }

    /// The keys under `prefix`, sorted.
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        self.rt.block_on(async {
            let out = self
                .client
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .send()
                .await
                .unwrap_or_else(|e| panic!("list s3://{bucket}/{prefix}: {e:?}"));
            let mut keys: Vec<String> = out
                .contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string))
                .collect();
            keys.sort();
            keys
        })
    }

    /// The object's bytes, if it exists.
    pub fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        self.rt.block_on(async {
            let out = self
                .client
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await;
            match out {
                Ok(o) => Some(o.body.collect().await.unwrap().into_bytes().to_vec()),
                Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => None,
                Err(e) => panic!("get s3://{bucket}/{key}: {e:?}"),
            }
        })
    }
}

impl Moto {
    /// Stops the server now (its address can then be used again).
    pub fn stop(&mut self) {
        // Closing stdin makes the watchdog kill the server.
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}

fn which(name: &str) -> Option<String> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .map(|p| p.to_string_lossy().to_string())
}

/// A port nothing listens on now, and never one this test process handed
/// out before: the kernel may give a just-released port again, and two
/// configs (or a config's httpPort and httpsPort) must not share one.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

fn wait_for_port(host: &str, port: u16, log: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if TcpStream::connect((host, port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut text = String::new();
    let _ = std::fs::File::open(log).and_then(|mut f| f.read_to_string(&mut text));
    panic!("moto_server did not start on port {port}:\n{text}");
}
