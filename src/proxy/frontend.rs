//! Frontend proxy drivers:
//! make a running nginx serve a new config, and stop it.
//!
//! - `docker`: nginx in the `frontendproxy` container from a compose file,
//!   reloaded with SIGHUP (the old tool's way).
//! - `host` [new]: the nginx binary run directly, with its pid file and error
//!   log in the frontend-proxy directory. The new config is checked with
//!   `nginx -t` first, so a config nginx refuses never replaces the one it
//!   serves; and a reload returns only once nginx routes by the new config.
//!
//! Either can say whether its proxy serves ([`Frontend::serving`]), cheaply
//! (no reload), so that commands notice an nginx stopped behind c2's back.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

use crate::config::{FrontendProxy, ProxyModeConfig, ToolConfig};
use crate::layout::Layout;
use crate::{fsutil, log, shell};

use super::certificate::CertbotPaths;
use super::nginx::NginxFiles;

pub(crate) trait Frontend {
    /// Installs the new config and makes the proxy serve it, starting the
    /// proxy if it is not running.
    fn apply(&self, files: &NginxFiles) -> Result<()>;
    /// Stops the proxy.
    fn shutdown(&self) -> Result<()>;
    /// Whether the proxy was ever configured on this machine (its files
    /// exist): one that never was is not expected to run.
    fn configured(&self) -> bool;
    /// Whether the proxy runs and serves, cheaply; else why not.
    fn serving(&self) -> std::result::Result<(), String>;
    /// The certbot command (program, arguments) that gets a certificate
    /// for `names` by HTTP-01 through this proxy's webroot.
    fn certbot_command(&self, names: &[String]) -> (String, Vec<String>);
}

pub(crate) fn open(
    config: &ToolConfig,
    proxy: &ProxyModeConfig,
    layout: &Layout,
) -> Box<dyn Frontend> {
    match &proxy.frontend_proxy {
        FrontendProxy::Docker => Box::new(DockerFrontend {
            dir: layout.proxy_dir(),
            layout: layout.clone(),
            config: config.clone(),
        }),
        FrontendProxy::Host(host) => Box::new(HostFrontend {
            dir: layout.proxy_dir(),
            layout: layout.clone(),
            config: config.clone(),
            nginx: host.nginx_binary.clone(),
            http_port: proxy.http_port,
        }),
    }
}

pub(crate) const CONTAINER_NAME: &str = "frontendproxy";

struct DockerFrontend {
    dir: PathBuf,
    layout: Layout,
    config: ToolConfig,
}

impl DockerFrontend {
    /// `composeCommand`, else `docker compose` if that works, else
    /// `docker-compose`.
    fn compose_command(&self) -> String {
        if let Some(cmd) = &self.config.compose_command {
            return cmd.clone();
        }
        let v2 = Command::new("docker")
            .args(["compose", "version"])
            .current_dir(&self.dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if v2 {
            "docker compose".into()
        } else {
            "docker-compose".into()
        }
    }

    fn compose_file(&self) -> String {
        let c = &self.config;
        let le = c.letsencrypt_prefix_dir.join("etc/letsencrypt");
        let www = &c.letsencrypt_www_dir;
        let mount = |p: &Path| format!("{}:{}", p.display(), p.display());
        // `version` keeps docker-compose 1.x reading this as a v3 file;
        // serde_norway quotes whatever the paths contain.
        let file = serde_json::json!({
            "version": "3",
            "services": {
                "nginx": {
                    "container_name": CONTAINER_NAME,
                    "image": format!("{}:{}", c.nginx_docker_image, c.nginx_docker_version),
                    "network_mode": "host",
                    "volumes": [
                        "./nginx.conf:/etc/nginx/nginx.conf",
                        mount(&le),
                        mount(www),
                    ],
                    "restart": "always",
                }
            }
        });
        serde_norway::to_string(&file).expect("compose file serializes")
    }

    /// The host pid of the running container's nginx master, if it runs.
    fn running_master(&self) -> Option<u32> {
        let out = Command::new("docker")
            .args([
                "inspect",
                "-f",
                "{{.State.Running}} {{.State.Pid}}",
                CONTAINER_NAME,
            ])
            .current_dir(&self.dir)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let (running, pid) = text.trim().split_once(' ')?;
        let pid: u32 = pid.parse().ok()?;
        (running == "true" && pid > 0).then_some(pid)
    }

    /// Starts `nginx -t` inside the container, on the config just written;
    /// [`checked`] reads its verdict.
    fn test_config(&self) -> std::io::Result<std::process::Child> {
        Command::new("docker")
            .args(["exec", CONTAINER_NAME, "nginx", "-t", "-q"])
            .current_dir(&self.dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
    }

    /// Makes the container serve the config just written. A running
    /// container whose compose file is unchanged only needs a reload:
    /// compose, which takes most of a second to start, runs only to create
    /// or start the container, or to apply a changed compose file.
    fn up_and_reload(&self, compose_changed: bool) -> Result<()> {
        // With the container running, check the config inside it first and
        // note its workers, so the reload can be awaited like on the host
        // (the container's processes are visible in the host's /proc).
        // The check runs beside the inspect: the engine's exec is the
        // slowest step of a reload, and it needs nothing the inspect says.
        // Without a running container its failure means nothing.
        let test = self.test_config();
        let master = self.running_master();
        let verdict = checked(test);
        if master.is_some() {
            verdict?;
        }
        let old_workers = master.map(children).unwrap_or_default();
        let compose_ran = compose_changed || master.is_none();
        if compose_ran {
            let compose = self.compose_command();
            shell::run(
                "the frontend proxy (compose up)",
                &format!("{compose} up -d"),
                &self.dir,
            )?;
        }
        match (compose_ran, master) {
            // The master inspected above, still running: signalled straight
            // from here, as `docker kill` would (its pid is the host's).
            (false, Some(pid)) if hang_up(pid) => {}
            _ => self.docker_hang_up()?,
        }
        // Without compose the container is the one inspected above.
        let now = if compose_ran {
            self.running_master()
        } else {
            master
        };
        match (master, now) {
            // The same container: wait until it routes by the new config.
            (Some(before), Some(now)) if before == now => wait_for_reload(now, &old_workers)
                .context("nginx in the frontendproxy container did not apply the new config"),
            // Started or re-created: it read the new config as it started.
            _ => Ok(()),
        }
    }

    /// SIGHUP to the container's nginx through the engine.
    fn docker_hang_up(&self) -> Result<()> {
        let out = Command::new("docker")
            .args(["kill", "--signal=SIGHUP", CONTAINER_NAME])
            .current_dir(&self.dir)
            .output()
            .context("cannot run docker kill")?;
        succeeded(
            &out,
            &format!(
                "the frontend proxy reload failed: docker kill --signal=SIGHUP {CONTAINER_NAME}"
            ),
        )
    }
}

/// The verdict of a `nginx -t` started by `DockerFrontend::test_config`.
fn checked(test: std::io::Result<std::process::Child>) -> Result<()> {
    let out = test
        .and_then(|child| child.wait_with_output())
        .context("cannot run docker exec")?;
    succeeded(&out, "nginx refused the generated config")
}

/// Sends SIGHUP to `pid`; false when not allowed (c2 is not root and the
/// container's nginx is) or the process is gone. Never to 0 or below,
/// which kill(2) reads as whole process groups.
fn hang_up(pid: u32) -> bool {
    i32::try_from(pid)
        .ok()
        .filter(|&raw| raw > 0)
        .is_some_and(|raw| signal::kill(Pid::from_raw(raw), Signal::SIGHUP).is_ok())
}

impl Frontend for DockerFrontend {
    fn apply(&self, files: &NginxFiles) -> Result<()> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        let compose_path = self.layout.compose_file();
        let compose = self.compose_file();
        let previous_compose = std::fs::read(&compose_path).ok();
        let compose_changed = previous_compose.as_deref() != Some(compose.as_bytes());
        if compose_changed {
            fsutil::write_atomic(&compose_path, compose.as_bytes(), 0o644)?;
        }
        // Written in place, not renamed: the container bind-mounts this one
        // file, and a rename would leave it reading the old inode.
        let conf = self.layout.nginx_conf();
        let ctx = self.layout.nginx_ctx();
        let previous = (std::fs::read(&conf).ok(), std::fs::read(&ctx).ok());
        std::fs::write(&conf, &files.conf)
            .with_context(|| format!("cannot write {}", conf.display()))?;
        fsutil::write_atomic(&ctx, files.ctx_json.as_bytes(), 0o644)?;
        let result = self.up_and_reload(compose_changed);
        if result.is_err() {
            // The state keeps the old connections, so the files must too:
            // the container re-reads nginx.conf whenever it restarts.
            match previous {
                (Some(old_conf), Some(old_ctx)) => {
                    let _ = std::fs::write(&conf, old_conf);
                    let _ = fsutil::write_atomic(&ctx, &old_ctx, 0o644);
                }
                _ => {
                    let _ = std::fs::remove_file(&conf);
                    let _ = std::fs::remove_file(&ctx);
                }
            }
            // A compose file that compose may not have applied goes back
            // too, so the next apply sees it changed and runs compose. A
            // first one stays: `shutdown` needs it to find the project.
            if let (true, Some(old)) = (compose_changed, previous_compose) {
                let _ = fsutil::write_atomic(&compose_path, &old, 0o644);
            }
        }
        result
    }

    fn shutdown(&self) -> Result<()> {
        if !self.layout.compose_file().exists() {
            log::info("The frontend proxy was never started: nothing to shut down");
            return Ok(());
        }
        let compose = self.compose_command();
        shell::run(
            "the frontend proxy shutdown",
            &format!("{compose} kill"),
            &self.dir,
        )
    }

    fn configured(&self) -> bool {
        self.layout.compose_file().exists()
    }

    /// The container runs (`restart: always` brings its nginx back).
    fn serving(&self) -> std::result::Result<(), String> {
        match self.running_master() {
            Some(_) => Ok(()),
            None => Err(format!("the {CONTAINER_NAME} container is not running")),
        }
    }

    /// certbot in docker, exactly as the old tool ran it.
    fn certbot_command(&self, names: &[String]) -> (String, Vec<String>) {
        let p = CertbotPaths::new(&self.config);
        let mut args: Vec<String> = [
            "run",
            "--rm",
            "--name",
            &self.config.auto_cert_name,
            "-v",
            &format!("{}:/etc/letsencrypt", p.letsencrypt),
            "-v",
            &format!("{}:/var/log/letsencrypt", p.logs),
            "-v",
            &format!("{0}:{0}", p.challenge),
            "certbot/certbot",
        ]
        .map(String::from)
        .into();
        // The nginx container's workers must read what certbot's container
        // wrote as root.
        args.extend(p.certonly_args(&self.config, Some("chmod -R ag+rX /etc/letsencrypt")));
        args.extend(p.domain_args(names));
        ("docker".into(), args)
    }
}

struct HostFrontend {
    dir: PathBuf,
    layout: Layout,
    config: ToolConfig,
    nginx: String,
    http_port: u16,
}

/// How long a reload or shutdown may take before c2 says so.
const NGINX_TIMEOUT: Duration = Duration::from_secs(15);
/// How long left-behind workers get to exit on SIGTERM, then on SIGKILL.
const ORPHAN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the serving check waits for nginx to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

impl HostFrontend {
    fn pid_file(&self) -> PathBuf {
        self.layout.nginx_pid()
    }

    fn error_log(&self) -> PathBuf {
        self.layout.nginx_error_log()
    }

    /// nginx with this proxy's prefix, config, error log and pid file.
    fn nginx(&self, conf: &Path) -> Command {
        let mut cmd = Command::new(&self.nginx);
        cmd.arg("-p")
            .arg(&self.dir)
            .arg("-c")
            .arg(conf)
            .arg("-e")
            .arg(self.error_log())
            .arg("-g")
            .arg(format!("pid {};", self.pid_file().display()));
        cmd
    }

    fn run_nginx(&self, what: &str, mut cmd: Command) -> Result<()> {
        let out = cmd
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .output()
            .with_context(|| {
                format!("cannot run {} (frontendProxy.host.nginxBinary)", self.nginx)
            })?;
        succeeded(&out, what)
    }

    /// The pid in the pid file: our master's, alive or dead (a killed
    /// master leaves its pid file behind).
    fn recorded_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.pid_file())
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// The running master's pid, if nginx runs from this directory. Its
    /// title keeps the command line c2 started it with, so a pid reused by
    /// another program (or another nginx) is not taken for ours.
    fn master_pid(&self) -> Option<u32> {
        let pid = self.recorded_pid()?;
        let title = process_title(pid)?;
        let ours = format!(" -p {} ", self.dir.display());
        (title.starts_with("nginx: master") && title.contains(&ours)).then_some(pid)
    }

    /// Stops the nginx processes our master left behind when it died
    /// without stopping them (kill -9, the OOM killer): they still hold
    /// the listening sockets, so no new nginx could bind them.
    ///
    /// They are known to be ours by their session: nginx's master starts a
    /// session of its own (setsid) as it daemonizes, and its workers stay
    /// in it, so their session id is the pid our pid file records. Their
    /// parent is no longer that pid (they were re-parented). Neither an
    /// environment tag nor the command line would do: nginx overwrites
    /// both (`/proc/<pid>/environ` and `cmdline`) with its process title.
    fn clear_orphans(&self) -> Result<()> {
        let Some(dead) = self.recorded_pid() else {
            return Ok(());
        };
        let orphans: Vec<u32> = all_pids()
            .into_iter()
            .filter(|&pid| {
                pid != dead
                    && stat_fields(pid).is_some_and(|f| f.session == dead && f.ppid != dead)
                    && process_title(pid).is_some_and(|t| t.starts_with("nginx: "))
            })
            .collect();
        if orphans.is_empty() {
            return Ok(());
        }
        log::info(&format!(
            "Stopping the nginx processes left behind by master {dead}: {orphans:?}"
        ));
        for signal in [Signal::SIGTERM, Signal::SIGKILL] {
            for &pid in &orphans {
                if let Ok(raw) = i32::try_from(pid) {
                    let _ = signal::kill(Pid::from_raw(raw), signal);
                }
            }
            let deadline = Instant::now() + ORPHAN_TIMEOUT;
            while orphans.iter().any(|&p| alive(p)) {
                if Instant::now() > deadline {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            if !orphans.iter().any(|&p| alive(p)) {
                return Ok(());
            }
        }
        bail!("the nginx processes left behind by master {dead} ({orphans:?}) do not stop")
    }

    /// Our master alive, and a TCP connection to httpPort accepted.
    fn check_serving(&self) -> std::result::Result<(), String> {
        let Some(master) = self.master_pid() else {
            return Err(format!(
                "nginx is not running (no master process for {})",
                self.pid_file().display()
            ));
        };
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.http_port));
        match std::net::TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(_) => Ok(()),
            Err(e) => Err(format!(
                "nginx (master pid {master}) does not accept connections on {addr}: {e}"
            )),
        }
    }
}

impl Frontend for HostFrontend {
    fn apply(&self, files: &NginxFiles) -> Result<()> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        // Check the candidate before it replaces what nginx serves.
        let candidate = self.layout.nginx_conf_candidate();
        fsutil::write_atomic(&candidate, files.conf.as_bytes(), 0o644)?;
        let mut test = self.nginx(&candidate);
        test.arg("-t").arg("-q");
        if let Err(e) = self.run_nginx("nginx refused the generated config", test) {
            let _ = std::fs::remove_file(&candidate);
            return Err(e);
        }
        let conf = self.layout.nginx_conf();
        std::fs::rename(&candidate, &conf)
            .with_context(|| format!("cannot write {}", conf.display()))?;
        fsutil::write_atomic(&self.layout.nginx_ctx(), files.ctx_json.as_bytes(), 0o644)?;
        match self.master_pid() {
            Some(master) => {
                let old_workers = children(master);
                let mut reload = self.nginx(&conf);
                reload.arg("-s").arg("reload");
                self.run_nginx("nginx reload failed", reload)?;
                wait_for_reload(master, &old_workers).with_context(|| {
                    format!(
                        "nginx did not apply the new config (see {})",
                        self.error_log().display()
                    )
                })?;
            }
            None => {
                self.clear_orphans()?;
                log::info("Starting nginx");
                self.run_nginx("nginx failed to start", self.nginx(&conf))?;
                let deadline = Instant::now() + NGINX_TIMEOUT;
                while self.master_pid().is_none() {
                    if Instant::now() > deadline {
                        bail!("nginx did not start (see {})", self.error_log().display());
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
        // Running is not enough: it must answer on httpPort (the master
        // binds its sockets before it writes its pid, so no wait is needed).
        self.check_serving().map_err(|e| anyhow!(e))
    }

    fn shutdown(&self) -> Result<()> {
        let Some(master) = self.master_pid() else {
            self.clear_orphans()?;
            log::info("nginx is not running: nothing to shut down");
            return Ok(());
        };
        let mut quit = self.nginx(&self.layout.nginx_conf());
        quit.arg("-s").arg("quit");
        self.run_nginx("nginx shutdown failed", quit)?;
        let deadline = Instant::now() + NGINX_TIMEOUT;
        while process_title(master).is_some() {
            if Instant::now() > deadline {
                bail!("nginx (pid {master}) did not stop within {NGINX_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    fn configured(&self) -> bool {
        self.layout.nginx_conf().exists()
    }

    fn serving(&self) -> std::result::Result<(), String> {
        self.check_serving()
    }

    /// [new] The host's certbot in webroot mode. No chmod: the host's nginx
    /// master reads the keys as root, and private keys stay private.
    fn certbot_command(&self, names: &[String]) -> (String, Vec<String>) {
        let p = CertbotPaths::new(&self.config);
        let mut args = p.certonly_args(&self.config, None);
        args.extend([
            "--config-dir".into(),
            p.letsencrypt.clone(),
            "--logs-dir".into(),
            p.logs.clone(),
            "--work-dir".into(),
            p.work.clone(),
        ]);
        args.extend(p.domain_args(names));
        ("certbot".into(), args)
    }
}

/// `Ok` when the command (nginx, docker) exited 0, else `what` and the
/// command's complaints, on one line.
fn succeeded(out: &std::process::Output, what: &str) -> Result<()> {
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        bail!("{what}: {}", lines.join("; "));
    }
    Ok(())
}

/// A process's title (nginx sets it to e.g. `nginx: worker process`).
fn process_title(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let text = String::from_utf8_lossy(&raw);
    Some(text.trim_end_matches('\0').replace('\0', " "))
}

/// Every pid in /proc.
fn all_pids() -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .collect()
}

/// What /proc/<pid>/stat says about a process's place in the tree.
struct StatFields {
    state: char,
    ppid: u32,
    session: u32,
}

fn stat_fields(pid: u32) -> Option<StatFields> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the parenthesised command name: state, ppid, pgrp,
    // session, …
    let mut rest = stat.rsplit_once(')')?.1.split_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    let session = rest.nth(1)?.parse().ok()?;
    Some(StatFields {
        state,
        ppid,
        session,
    })
}

/// Whether `pid` runs (a zombie has stopped, whoever has yet to reap it).
fn alive(pid: u32) -> bool {
    stat_fields(pid).is_some_and(|f| f.state != 'Z')
}

/// The pids whose parent is `parent`.
fn children(parent: u32) -> Vec<u32> {
    all_pids()
        .into_iter()
        .filter(|&pid| stat_fields(pid).is_some_and(|f| f.ppid == parent))
        .collect()
}

/// After a reload signal, waits until nginx has started workers with the
/// new config and every old worker has stopped accepting connections (it
/// then calls itself "worker process is shutting down", or is gone). From
/// then on every new connection is routed by the new config.
fn wait_for_reload(master: u32, old_workers: &[u32]) -> Result<()> {
    let deadline = Instant::now() + NGINX_TIMEOUT;
    loop {
        let now = children(master);
        let new_started = now.iter().any(|p| !old_workers.contains(p));
        let old_accepting = old_workers
            .iter()
            .any(|p| process_title(*p).is_some_and(|t| t == "nginx: worker process"));
        if new_started && !old_accepting {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("timed out after {NGINX_TIMEOUT:?} waiting for nginx to reload");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
