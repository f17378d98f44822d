//! A fleet of slave hosts, each a container of its own on a private docker
//! network: its own address and host name, its own deploysDir, nginx on
//! port 80 of its address, and `c2 slave-update --repeat 1` as its main
//! process. The operator's c2 runs on this machine against the same bucket.
//!
//! The hosts' image, `c2-test/slave:<test process id>`, is built FROM
//! scratch out of this build's `c2`, the host's nginx (as for the nginx
//! image) and busybox-static (`/bin/sh` and the release commands), with
//! the shared libraries they load. It is removed when the test process
//! exits.
//!
//! S3 is moto on this machine, listening on the network's gateway address:
//! nothing can be pulled, and an image of moto would have to carry the
//! host's whole python tree; the gateway is reachable from every container
//! of the network, and `docker network disconnect` cuts a host off it like
//! any other address.
//!
//! [`Bed::with_etcd`] keeps the master state in an etcd cluster instead:
//! three containers on the same network, from an image built FROM scratch
//! out of the host's etcd and the libraries it loads.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{json, Value};

use super::docker::{self, DockerScope};
use super::{http, write_file, Env, Moto, ReleaseBuilder};

/// The endpoint every host serves, and the name it answers to.
pub const ENDPOINT: (&str, &str) = ("main", "main.example");
/// Where a host's c2 keeps its deploys.
pub const DEPLOYS: &str = "/srv/deploys";

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("run docker");
    assert!(
        out.status.success(),
        "docker {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The slave image of this test process, built on first use (under the
/// docker turn).
fn slave_image() -> &'static str {
    static TAG: OnceLock<String> = OnceLock::new();
    TAG.get_or_init(|| {
        let tag = format!("c2-test/slave:{}", std::process::id());
        docker::janitor_removes(&tag);
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        docker::nginx_root(&root);
        let c2 = env!("CARGO_BIN_EXE_c2");
        for lib in docker::libraries(c2) {
            docker::copy_in(&root, &lib);
        }
        // The debug build's symbols are most of its size: leave them out of
        // the build context, the code is the same.
        std::fs::create_dir_all(root.join("usr/local/bin")).unwrap();
        let stripped = Command::new("objcopy")
            .args(["--strip-debug", c2])
            .arg(root.join("usr/local/bin/c2"))
            .status()
            .is_ok_and(|s| s.success());
        if !stripped {
            std::fs::copy(c2, root.join("usr/local/bin/c2")).unwrap();
        }
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::copy(docker::busybox(), root.join("bin/busybox")).unwrap();
        let applets = Command::new(docker::busybox())
            .arg("--list")
            .output()
            .expect("busybox --list");
        for applet in String::from_utf8_lossy(&applets.stdout).split_whitespace() {
            let link = root.join("bin").join(applet);
            if applet != "busybox" && !link.exists() {
                std::os::unix::fs::symlink("busybox", link).unwrap();
            }
        }
        // The AWS SDK refuses to start without a trust store, even for
        // plain http: a real host has one.
        docker::copy_in(&root, "/etc/ssl/certs/ca-certificates.crt");
        for d in ["tmp", "etc/c2", "srv"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(
            dir.path().join("Dockerfile"),
            "FROM scratch\nCOPY root/ /\nENV PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n\
                 ENV CAMUS2_CONFIG=/etc/c2/camus2.json\n\
                 CMD [\"/usr/local/bin/c2\", \"slave-update\", \"--repeat\", \"1\"]\n",
        )
        .unwrap();
        docker::docker_build(&tag, dir.path());
        tag
    })
}

/// The etcd image of this test process, built on first use.
fn etcd_image() -> &'static str {
    static TAG: OnceLock<String> = OnceLock::new();
    TAG.get_or_init(|| {
        let tag = format!("c2-test/etcd:{}", std::process::id());
        docker::janitor_removes(&tag);
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let etcd = "/usr/bin/etcd";
        docker::copy_in(&root, etcd);
        for lib in docker::libraries(etcd) {
            docker::copy_in(&root, &lib);
        }
        std::fs::create_dir_all(root.join("tmp")).unwrap();
        std::fs::write(
            dir.path().join("Dockerfile"),
            "FROM scratch\nCOPY root/ /\nENTRYPOINT [\"/usr/bin/etcd\"]\n",
        )
        .unwrap();
        docker::docker_build(&tag, dir.path());
        tag
    })
}

/// How a host names itself in its report.
pub enum Label {
    /// `{"label": …}`.
    Fixed(String),
    /// The EC2 instance id, from the metadata service at this endpoint.
    InstanceId(String),
}

/// One slave host: a container on the bed's network.
pub struct Host {
    pub name: String,
    pub host_name: String,
    pub ip: String,
}

impl Host {
    /// Runs a command inside the host (busybox's applets are on PATH).
    pub fn exec(&self, args: &[&str]) -> String {
        let mut all = vec!["exec", self.name.as_str()];
        all.extend_from_slice(args);
        docker(&all)
    }

    /// GET `path` from this host's nginx, port 80 of its address, as
    /// `host`.
    pub fn get(&self, host: &str, path: &str) -> http::Response {
        let addr: SocketAddr = format!("{}:80", self.ip).parse().unwrap();
        http::get_at(addr, host, path)
    }

    /// The host's c2 log (its container's output).
    pub fn log(&self) -> String {
        let out = Command::new("docker")
            .args(["logs", &self.name])
            .output()
            .expect("docker logs");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

/// The test bed: a labelled network, moto on its gateway, a bucket, the
/// operator's Env and the hosts started so far. Dropped, it removes every
/// container and the network (the scope), then stops moto.
pub struct Bed {
    pub scope: DockerScope,
    pub network: String,
    /// The first three octets of the network's /24.
    pub subnet: String,
    pub moto: Moto,
    pub bucket: String,
    pub operator: Env,
    pub hosts: Vec<Host>,
    /// Where the master state is: the bucket, or the etcd cluster.
    pub state: String,
    /// The etcd members' container names, when the state is in etcd.
    pub etcd: Vec<String>,
    /// The hosts' `slave-update --repeat`.
    pub repeat: String,
}

impl Bed {
    /// A new bed for test `name`. Take the docker turn first.
    pub fn new(name: &str) -> Bed {
        let scope = DockerScope::new(&format!("hosts-{name}"));
        let network = scope.id.clone();
        let label = format!("c2-test={}", scope.id);
        // An explicit subnet, so that a host reconnected keeps its address;
        // the first free one of a few, should another network hold one.
        let subnet = (0..40)
            .map(|i| format!("10.{}.{}", 200 + i % 40, (std::process::id() + i) % 250))
            .find(|subnet| {
                Command::new("docker")
                    .args(["network", "create", "--label", &label])
                    .arg(format!("--subnet={subnet}.0/24"))
                    .arg(format!("--gateway={subnet}.1"))
                    .arg(&network)
                    .output()
                    .is_ok_and(|o| o.status.success())
            })
            .expect("no free /24 for the test network");
        let moto = Moto::start_at(&format!("{subnet}.1"), super::moto::free_port());
        let bucket = Moto::unique_bucket("hosts");
        let mut operator = Env::new();
        operator.proxy(&[ENDPOINT]);
        operator.use_s3(&moto, &bucket, "releases");
        operator.remote(&format!("s3://{bucket}/camus2"));
        slave_image();
        Bed {
            scope,
            network,
            subnet,
            moto,
            state: format!("s3://{bucket}/camus2"),
            bucket,
            operator,
            hosts: Vec::new(),
            etcd: Vec::new(),
            repeat: "1".into(),
        }
    }

    /// A bed whose master state is in an etcd cluster of three containers
    /// (`etcd-0` to `etcd-2`, at [`Bed::etcd_ip`]), and whose hosts follow
    /// it with `slave-update --repeat 30`. Releases stay in the bucket.
    pub fn with_etcd(name: &str) -> Bed {
        let mut bed = Bed::new(name);
        let image = etcd_image();
        let peers: Vec<String> = (0..3)
            .map(|i| format!("etcd-{i}=http://{}:2380", bed.etcd_ip(i)))
            .collect();
        for i in 0..3 {
            let name = format!("{}-etcd-{i}", bed.scope.id);
            let ip = bed.etcd_ip(i);
            docker(&[
                "run",
                "-d",
                "--name",
                &name,
                "--label",
                &format!("c2-test={}", bed.scope.id),
                "--network",
                &bed.network,
                "--ip",
                &ip,
                image,
                "--name",
                &format!("etcd-{i}"),
                "--data-dir",
                "/tmp/etcd",
                "--listen-client-urls",
                "http://0.0.0.0:2379",
                "--advertise-client-urls",
                &format!("http://{ip}:2379"),
                "--listen-peer-urls",
                "http://0.0.0.0:2380",
                "--initial-advertise-peer-urls",
                &format!("http://{ip}:2380"),
                "--initial-cluster",
                &peers.join(","),
                "--initial-cluster-state",
                "new",
                "--heartbeat-interval",
                "50",
                "--election-timeout",
                "500",
            ]);
            bed.etcd.push(name);
        }
        let members: Vec<String> = (0..3).map(|i| format!("{}:2379", bed.etcd_ip(i))).collect();
        bed.state = format!("etcd://{}/camus2", members.join(","));
        bed.operator.remote(&bed.state);
        bed.repeat = "30".into();
        super::wait_until(
            std::time::Duration::from_secs(60),
            "the etcd containers to form a cluster",
            || bed.operator.c2(&["status"]).output().code == Some(0),
        );
        bed
    }

    /// The address of etcd member `i`.
    pub fn etcd_ip(&self, i: usize) -> String {
        format!("{}.{}", self.subnet, 2 + i)
    }

    /// The etcd member that leads now, as etcd's own metrics say.
    pub fn etcd_leader(&self) -> usize {
        let mut leader = None;
        super::wait_until(std::time::Duration::from_secs(30), "an etcd leader", || {
            leader = (0..self.etcd.len()).find(|&i| {
                let addr: SocketAddr = format!("{}:2379", self.etcd_ip(i)).parse().unwrap();
                http::get_at(addr, "etcd", "/metrics")
                    .body
                    .lines()
                    .any(|l| l == "etcd_server_is_leader 1")
            });
            leader.is_some()
        });
        leader.unwrap()
    }

    /// The address host `i` gets (and keeps when reconnected).
    pub fn ip(&self, i: usize) -> String {
        format!("{}.{}", self.subnet, 10 + i)
    }

    /// A host's config: proxy mode with the host nginx on port 80 of its
    /// own address, its report from eth0, state and releases in the bucket.
    fn config(&self, label: &Label) -> Value {
        let slave_label = match label {
            Label::Fixed(l) => json!({"label": l}),
            Label::InstanceId(_) => json!("ec2InstanceId"),
        };
        json!({
            "deploysDir": DEPLOYS,
            "contextCache": "/srv/cache",
            "logFile": "/srv/log/c2.log",
            "releases": {"s3": format!("s3://{}/releases", self.bucket)},
            "deployMode": {"proxy": {
                "endPoints": {ENDPOINT.0: {"serverNames": [ENDPOINT.1], "etype": "httpOnly"}},
                "frontendProxy": {"host": {"nginxBinary": super::nginx_binary()}},
                "httpPort": 80,
                "httpsPort": 443,
                "dynamicPortRange": {"v1": 9000, "v2": 9100},
                "remoteStateS3": {"just": self.state},
                "slaveLabel": slave_label,
                "slaveInterfaceName": "eth0",
            }},
        })
    }

    /// Starts host `i` (`host-<i>`, labelled `label`), returns its index.
    pub fn start_host(&mut self, i: usize, label: Label) -> usize {
        let name = format!("{}-host-{i:02}", self.scope.id);
        let host_name = format!("host-{i:02}");
        let ip = self.ip(i);
        let mut args: Vec<String> = [
            "create",
            "--init",
            "--name",
            &name,
            "--hostname",
            &host_name,
            "--label",
            &format!("c2-test={}", self.scope.id),
            "--network",
            &self.network,
            "--ip",
            &ip,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for (k, v) in self.moto.client_env() {
            args.push("-e".into());
            args.push(format!("{k}={v}"));
        }
        match &label {
            Label::Fixed(_) => args.push("-e=AWS_EC2_METADATA_DISABLED=true".into()),
            Label::InstanceId(endpoint) => {
                args.push("-e=AWS_EC2_METADATA_DISABLED=false".into());
                args.push(format!("-e=AWS_EC2_METADATA_SERVICE_ENDPOINT={endpoint}"));
            }
        }
        args.push(slave_image().to_string());
        for word in [
            "/usr/local/bin/c2",
            "slave-update",
            "--repeat",
            &self.repeat,
        ] {
            args.push(word.to_string());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        docker(&args);
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("camus2.json");
        write_file(&config, &self.config(&label).to_string());
        docker(&[
            "cp",
            &config.to_string_lossy(),
            &format!("{name}:/etc/c2/camus2.json"),
        ]);
        docker(&["start", &name]);
        self.hosts.push(Host {
            name,
            host_name,
            ip,
        });
        self.hosts.len() - 1
    }

    /// Starts hosts 0..n labelled `host-<i>`.
    pub fn start_hosts(&mut self, n: usize) {
        for i in 0..n {
            self.start_host(i, Label::Fixed(format!("host-{i:02}")));
        }
    }

    /// A release serving `<label>` on `{{ports.http}}` from busybox httpd,
    /// in the background with its output detached; started once it answers.
    pub fn release(&self, name: &str) -> ReleaseBuilder {
        let label = name.trim_end_matches(".zip");
        self.operator
            .release(name)
            .file("www/index.html", &format!("{label}\n"))
            .template("port.tpl", "{{ports.http}}")
            .set(
                "startCommand",
                json!(
                    "httpd -f -p $(cat port) -h www </dev/null >/dev/null 2>&1 & echo $! >httpd.pid; \
                     for i in $(seq 50); do wget -q -O /dev/null http://127.0.0.1:$(cat port)/ && exit 0; sleep 0.1; done; \
                     echo \"httpd did not answer on port $(cat port)\"; exit 1"
                ),
            )
            .set("stopCommand", json!("kill $(cat httpd.pid)"))
            .set("prestartCommand", json!(""))
    }

    /// Stops S3 and starts it again at the same address, empty: moto keeps
    /// nothing, so the bucket is created anew.
    pub fn restart_s3(&mut self, while_down: impl FnOnce(&Bed)) {
        let host = self.subnet.clone() + ".1";
        let port = self.moto.port;
        self.moto.stop();
        while_down(self);
        self.moto = Moto::start_at(&host, port);
        self.moto.create_bucket(&self.bucket);
    }

    /// Publishes `name` to the bucket's releases.
    pub fn publish(&self, name: &str) {
        self.release(name)
            .publish_s3(&self.moto, &self.bucket, "releases");
    }

    /// The report of every host, by label, from the operator's `status`.
    pub fn reports(&self) -> Vec<Value> {
        self.operator.status_json()["slaves"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// How many reports say they are in sync with the master.
    pub fn in_sync(&self) -> usize {
        self.reports()
            .iter()
            .filter(|r| r["inSync"] == json!(true))
            .count()
    }

    /// The hosts' logs, for a failure message.
    pub fn logs(&self) -> String {
        self.hosts
            .iter()
            .map(|h| format!("== {}\n{}", h.name, h.log()))
            .collect()
    }
}
