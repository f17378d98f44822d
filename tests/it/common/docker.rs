//! The Docker engine for end-to-end tests, with no image registry: the
//! images tests need are built here, FROM scratch, out of host binaries:
//! - `c2-test/nginx:<version>`: the host's nginx, its shared libraries and
//!   config files, used by c2 through nginxDockerImage/nginxDockerVersion;
//! - `c2-test/httpd:busybox`: Debian's busybox-static, whose `httpd` serves
//!   the releases' pages.
//!
//! Docker tests take turns across the whole machine ([`Engine::exclusive`]):
//! the `frontendproxy` container name and the image tags are the engine's,
//! shared by every test process on it. Under that turn a test makes sure
//! the images exist, building what is missing; the images a test process
//! built are removed when it exits (a watchdog shell, as for moto), in a
//! turn of its own. Containers and networks carry a label naming the test
//! that made them, and [`DockerScope`] removes them when the test ends,
//! pass or fail.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};

pub const NGINX_IMAGE: &str = "c2-test/nginx";
pub const HTTPD_IMAGE: &str = "c2-test/httpd:busybox";

/// What c2 asks docker as a reload of the frontend proxy begins, at once:
/// whether the container runs (and its nginx's pid), and `nginx -t` in it.
pub const INSPECT: &str = "docker inspect -f {{.State.Running}} {{.State.Pid}} frontendproxy";
pub const EXEC_TEST: &str = "docker exec frontendproxy nginx -t -q";

/// Docker calls as a fake docker logged them, with each concurrent
/// [`EXEC_TEST`], [`INSPECT`] pair put in that order.
pub fn in_reload_order<T: AsRef<str>>(calls: &mut [T]) {
    for i in 1..calls.len() {
        if calls[i - 1].as_ref() == EXEC_TEST && calls[i].as_ref() == INSPECT {
            calls.swap(i - 1, i);
        }
    }
}

pub struct Engine {
    pub nginx_version: String,
    pub server_version: String,
    /// The compose commands that work here: `docker compose`, `docker-compose`.
    pub compose_flavours: Vec<String>,
}

pub fn run(args: &[&str]) -> Option<String> {
    let out = Command::new("docker").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The engine, or `None` (after printing why) when no engine answers. With
/// an engine answering, any problem preparing it fails the test: in CI a
/// skip would hide a broken setup.
pub fn engine() -> Option<&'static Engine> {
    static ENGINE: OnceLock<Option<Engine>> = OnceLock::new();
    let engine = ENGINE.get_or_init(|| {
        let Some(server_version) = run(&["version", "-f", "{{.Server.Version}}"]) else {
            eprintln!("SKIPPED: no Docker engine answers (`docker version` failed): docker end-to-end tests not run");
            return None;
        };
        let mut compose_flavours = Vec::new();
        if run(&["compose", "version"]).is_some() {
            compose_flavours.push("docker compose".to_string());
        }
        let v1 = Command::new("docker-compose")
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success());
        if v1 {
            compose_flavours.push("docker-compose".to_string());
        }
        assert!(
            !compose_flavours.is_empty(),
            "a Docker engine answers but neither `docker compose` nor `docker-compose` works"
        );
        Some(Engine {
            nginx_version: nginx_version(),
            server_version,
            compose_flavours,
        })
    });
    engine.as_ref()
}

/// A docker test's turn: the heavy-test lock of this process, then the
/// machine-wide docker lock, both held until dropped.
pub struct Turn {
    _machine: File,
    _heavy: MutexGuard<'static, ()>,
}

/// The file every test process on this machine locks for a docker turn.
fn machine_lock_path() -> PathBuf {
    std::env::temp_dir().join("c2-test-docker.lock")
}

impl Engine {
    /// Waits for this test's turn on the engine, then makes sure the images
    /// exist. Docker tests are heavy tests too, so the turn includes the
    /// heavy-test lock, always taken first: one order, no deadlock.
    pub fn exclusive(&self) -> Turn {
        let heavy = super::heavy();
        let path = machine_lock_path();
        let machine = File::create(&path)
            .unwrap_or_else(|e| panic!("open the docker lock {}: {e}", path.display()));
        machine
            .lock()
            .unwrap_or_else(|e| panic!("lock {}: {e}", path.display()));
        let nginx_tag = format!("{NGINX_IMAGE}:{}", self.nginx_version);
        if run(&["image", "inspect", &nginx_tag]).is_none() {
            janitor_removes(&nginx_tag);
            build_nginx_image(&nginx_tag);
        }
        if run(&["image", "inspect", HTTPD_IMAGE]).is_none() {
            janitor_removes(HTTPD_IMAGE);
            build_httpd_image();
        }
        Turn {
            _machine: machine,
            _heavy: heavy,
        }
    }
}

/// Has `image` removed when this test process exits, in a docker turn of
/// its own. The janitor shell collects the names on its stdin and acts
/// once our end closes; it is told before the build starts, so a build
/// that fails halfway leaves nothing behind either.
pub fn janitor_removes(image: &str) {
    static JANITOR: OnceLock<Mutex<Child>> = OnceLock::new();
    let janitor = JANITOR.get_or_init(|| {
        let lock = machine_lock_path();
        let script = format!(
            "images=; while read -r i; do images=\"$images $i\"; done; \
             [ -n \"$images\" ] && flock '{}' docker rmi -f $images >/dev/null 2>&1",
            lock.display()
        );
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .spawn()
            .expect("start the image janitor");
        Mutex::new(child)
    });
    let mut child = janitor.lock().unwrap_or_else(|e| e.into_inner());
    let stdin = child.stdin.as_mut().expect("the janitor's stdin");
    writeln!(stdin, "{image}").expect("tell the image janitor");
}

fn nginx_version() -> String {
    let out = Command::new(super::nginx_binary())
        .arg("-v")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    text.trim()
        .rsplit('/')
        .next()
        .unwrap_or("host")
        .split_whitespace()
        .next()
        .unwrap_or("host")
        .to_string()
}

pub fn docker_build(tag: &str, dir: &Path) {
    let out = Command::new("docker")
        .args(["build", "-q", "-t", tag])
        .arg(dir)
        .output()
        .expect("docker build");
    assert!(
        out.status.success(),
        "docker build {tag} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Copies `file` (following links) to the same path under `root`.
pub fn copy_in(root: &Path, file: &str) {
    let dest = root.join(file.trim_start_matches('/'));
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    std::fs::copy(file, &dest).unwrap_or_else(|e| panic!("copy {file}: {e}"));
}

/// The shared libraries `binary` loads, from ldd.
pub fn libraries(binary: &str) -> Vec<String> {
    let out = Command::new("ldd").arg(binary).output().expect("ldd");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
        .map(str::to_string)
        .collect()
}

fn build_nginx_image(tag: &str) {
    let dir = tempfile::tempdir().unwrap();
    let nginx = nginx_root(&dir.path().join("root"));
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!(
            "FROM scratch\nCOPY root/ /\nENV PATH=/usr/sbin:/usr/bin:/sbin:/bin\nSTOPSIGNAL SIGQUIT\nCMD [\"{nginx}\", \"-g\", \"daemon off;\"]\n"
        ),
    )
    .unwrap();
    docker_build(tag, dir.path());
}

/// Puts the host's nginx under `root`, with what it needs to start (its
/// libraries, mime types, compiled-in directories, users and a default
/// config); returns nginx's path.
pub fn nginx_root(root: &Path) -> String {
    let nginx = super::nginx_binary();
    copy_in(root, &nginx);
    for lib in libraries(&nginx) {
        copy_in(root, &lib);
    }
    for f in ["/etc/nginx/mime.types"] {
        if Path::new(f).exists() {
            copy_in(root, f);
        }
    }
    // What nginx opens at start: its compiled-in log, temp and pid paths,
    // and the users it switches workers to.
    for d in ["var/log/nginx", "var/lib/nginx", "run", "tmp", "etc/nginx"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nwww-data:x:33:33:www-data:/var/www:/sbin/nologin\n",
    )
    .unwrap();
    std::fs::write(
        root.join("etc/group"),
        "root:x:0:\nnogroup:x:65534:\nwww-data:x:33:\n",
    )
    .unwrap();
    std::fs::write(
        root.join("etc/nginx/nginx.conf"),
        "events {}\nhttp { server { listen 8099; return 404; } }\n",
    )
    .unwrap();
    nginx
}

/// The host's busybox-static.
pub fn busybox() -> &'static str {
    ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .expect("busybox-static not installed: run the README's test command (scripts/test)")
}

fn build_httpd_image() {
    let busybox = busybox();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("www")).unwrap();
    std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM scratch\nCOPY root/ /\nCMD [\"/bin/busybox\", \"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n",
    )
    .unwrap();
    docker_build(HTTPD_IMAGE, dir.path());
}

/// Removes, when dropped, the containers and networks labelled with this
/// scope's id, and the frontend proxy container.
pub struct DockerScope {
    pub id: String,
}

impl DockerScope {
    pub fn new(name: &str) -> DockerScope {
        let id = format!("{name}-{}", std::process::id());
        let scope = DockerScope { id };
        scope.clean();
        scope
    }

    fn clean(&self) {
        let filter = format!("label=c2-test={}", self.id);
        if let Some(ids) = run(&["ps", "-aq", "--filter", &filter]) {
            for id in ids.split_whitespace() {
                let _ = run(&["rm", "-f", id]);
            }
        }
        let _ = run(&["rm", "-f", "frontendproxy"]);
        if let Some(ids) = run(&["network", "ls", "-q", "--filter", &filter]) {
            for id in ids.split_whitespace() {
                let _ = run(&["network", "rm", id]);
            }
        }
    }

    /// Containers of this scope still present.
    pub fn containers(&self) -> Vec<String> {
        let filter = format!("label=c2-test={}", self.id);
        run(&["ps", "-a", "--format", "{{.Names}}", "--filter", &filter])
            .map(|s| s.lines().map(str::to_string).collect())
            .unwrap_or_default()
    }
}

impl Drop for DockerScope {
    fn drop(&mut self) {
        self.clean();
    }
}
