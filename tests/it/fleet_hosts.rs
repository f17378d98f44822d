//! A real fleet: each slave on a host of its own (a container on a private
//! docker network, tests/it/common/fleet_hosts.rs) with its own address,
//! host name and nginx, all following one master over the network: in S3,
//! or in an etcd cluster of three containers.
//! Without a Docker engine these tests print why and pass without running.

use std::time::Duration;

use crate::common::docker;
use crate::common::fleet_hosts::{Bed, Host, Label, DEPLOYS, ENDPOINT};
use crate::common::wait_until;
use serde_json::{json, Value};

/// Waits until `n` hosts report being in sync, showing their logs if not.
fn converge(bed: &Bed, n: usize, within: Duration) {
    let deadline = std::time::Instant::now() + within;
    while bed.in_sync() < n {
        if std::time::Instant::now() > deadline {
            panic!(
                "{} of {n} hosts in sync after {within:?}:\n{:#}\n{}",
                bed.in_sync(),
                json!(bed.reports()),
                bed.logs()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The report of `host` in the operator's `status`.
fn report_of(bed: &Bed, label: &str) -> Value {
    bed.reports()
        .into_iter()
        .find(|r| r["label"] == label)
        .unwrap_or_else(|| panic!("no report from {label}: {:#}", json!(bed.reports())))
}

fn page(host: &Host) -> String {
    host.get(ENDPOINT.1, "/").body
}

/// What `host` serves for the endpoint, asked from inside the host: also
/// while it is cut off from this machine.
fn page_inside(host: &Host) -> String {
    let header = format!("Host: {}", ENDPOINT.1);
    host.exec(&[
        "wget",
        "-q",
        "-O",
        "-",
        "--header",
        &header,
        "http://127.0.0.1/",
    ])
}

/// The deploy directories, release servers and nginx masters on `host`.
fn footprint(host: &Host) -> (String, usize, usize) {
    let dirs = host.exec(&["ls", DEPLOYS]);
    let ps = host.exec(&["ps", "-o", "args"]);
    let servers = ps.lines().filter(|l| l.starts_with("httpd -f")).count();
    let nginx = ps.lines().filter(|l| l.contains("nginx: master")).count();
    (
        dirs.split_whitespace().collect::<Vec<_>>().join(" "),
        servers,
        nginx,
    )
}

#[test]
fn ten_slave_hosts_converge_and_one_cut_off_catches_up() {
    let Some(engine) = docker::engine() else {
        return;
    };
    let _turn = engine.exclusive();
    let mut bed = Bed::new("ten");
    bed.publish("blue.zip");
    bed.start_hosts(10);
    converge(&bed, 10, Duration::from_secs(60));

    bed.operator.c2(&["start", "blue.zip"]).ok();
    bed.operator.c2(&["connect", "main", "blue"]).ok();
    converge(&bed, 10, Duration::from_secs(60));
    for (i, host) in bed.hosts.iter().enumerate() {
        let report = report_of(&bed, &format!("host-{i:02}"));
        assert_eq!(report["state"]["ipAddress"], json!(host.ip), "{report:#}");
        assert_eq!(report["state"]["hostName"], json!(host.host_name));
        assert_eq!(report["state"]["status"], json!("ok"), "{report:#}");
        assert_eq!(page(host), "blue\n", "{}", host.name);
    }

    // host-03 is cut off the network while the operator switches to green
    // and waits for the fleet: the wait names host-03 alone, the nine
    // others switch, host-03 keeps serving blue.
    bed.publish("green.zip");
    bed.operator.c2(&["start", "green.zip"]).ok();
    converge(&bed, 10, Duration::from_secs(60));
    let cut = &bed.hosts[3];
    let before = footprint(cut);
    // Both deploys, each with one release server, and one nginx.
    assert_eq!(before, ("blue frontend-proxy green".to_string(), 2, 1));
    docker::run(&["network", "disconnect", &bed.network, &cut.name]).expect("disconnect");
    let out = bed
        .operator
        .c2(&["connect", "main", "green", "--await-slaves", "--timeout", "10s"])
        .fails_with("timed out after 10s waiting for the fleet (the master change stays written): host-03 (");
    assert_eq!(out.error_line().matches("host-").count(), 1, "{out}");
    for (i, host) in bed.hosts.iter().enumerate() {
        if i != 3 {
            assert_eq!(page(host), "green\n", "{}", host.name);
        }
    }
    assert_eq!(
        cut.get(ENDPOINT.1, "/").status,
        0,
        "host-03 answers while cut off"
    );
    assert_eq!(page_inside(cut), "blue");

    // Reconnected at its address, it catches up in a few rounds, with no
    // second copy of anything.
    docker::run(&[
        "network",
        "connect",
        "--ip",
        &cut.ip,
        &bed.network,
        &cut.name,
    ])
    .expect("reconnect");
    converge(&bed, 10, Duration::from_secs(20));
    assert_eq!(page(cut), "green\n");
    assert_eq!(footprint(cut), before);
    assert_eq!(footprint(cut), footprint(&bed.hosts[0]));
}

/// Seconds since `label`'s report was written, from the operator's status.
fn report_age(bed: &Bed, label: &str) -> Option<Duration> {
    let report = bed.reports().into_iter().find(|r| r["label"] == label)?;
    let written = humantime::parse_rfc3339(report["lastModified"].as_str()?).ok()?;
    std::time::SystemTime::now().duration_since(written).ok()
}

fn labels(bed: &Bed) -> Vec<String> {
    let mut labels: Vec<String> = bed
        .reports()
        .iter()
        .filter_map(|r| r["label"].as_str().map(str::to_string))
        .collect();
    labels.sort();
    labels
}

#[test]
fn a_host_labelled_by_instance_metadata_and_a_removed_host_flushed() {
    let Some(engine) = docker::engine() else {
        return;
    };
    let _turn = engine.exclusive();
    let mut bed = Bed::new("flush");
    bed.publish("blue.zip");
    bed.publish("green.zip");
    bed.start_hosts(2);
    // moto answers the instance metadata service's requests too, across
    // the network as 169.254.169.254 would.
    let imds = bed.moto.endpoint.clone();
    let ec2 = bed.start_host(2, Label::InstanceId(imds));
    bed.operator.c2(&["start", "blue.zip"]).ok();
    converge(&bed, 3, Duration::from_secs(60));
    assert_eq!(labels(&bed), ["host-00", "host-01", "i-fake"]);
    let report = report_of(&bed, "i-fake");
    assert_eq!(report["state"]["ipAddress"], json!(bed.hosts[ec2].ip));
    assert_eq!(report["state"]["hostName"], json!("host-02"));

    // host-01 is gone for good; the others' reports are made fresh by a
    // master change once host-01's is surely older than the flush age.
    docker::run(&["rm", "-f", &bed.hosts[1].name]).expect("docker rm -f");
    wait_until(Duration::from_secs(30), "host-01's report to age", || {
        report_age(&bed, "host-01").is_some_and(|age| age > Duration::from_secs(8))
    });
    bed.operator.c2(&["start", "green.zip"]).ok();
    converge(&bed, 2, Duration::from_secs(60));
    let out = bed.operator.c2(&["slave-flush", "--older-than", "5s"]).ok();
    assert!(out.stdout.contains("Flushing slave host-01"), "{out}");
    assert_eq!(out.stdout.matches("Flushing").count(), 1, "{out}");
    assert_eq!(labels(&bed), ["host-00", "i-fake"]);
    assert_eq!(bed.in_sync(), 2);
}

/// A host restarted behind c2's back (`docker kill`, `docker start`, no
/// master change): its deploy's processes are gone, but the deploy has a
/// health check, so the first round restarts it at once and the endpoint
/// answers again on the host's address. No report written after the
/// restart says the deploy is healthy while it does not answer.
#[test]
fn a_rebooted_host_brings_its_deploy_back_and_never_reports_it_healthy_while_down() {
    let Some(engine) = docker::engine() else {
        return;
    };
    let _turn = engine.exclusive();
    let mut bed = Bed::new("reboot");
    bed.release("blue.zip")
        .set("healthCheck", json!({"path": "/", "timeoutSeconds": 10}))
        .publish_s3(&bed.moto, &bed.bucket, "releases");
    bed.start_hosts(1);
    bed.operator.c2(&["start", "blue.zip"]).ok();
    bed.operator.c2(&["connect", "main", "blue"]).ok();
    converge(&bed, 1, Duration::from_secs(60));
    let host = &bed.hosts[0];
    assert_eq!(page(host), "blue\n");
    assert_eq!(
        report_of(&bed, "host-00")["state"]["deploys"]["blue"],
        json!({"health": "healthy", "restarts": 0})
    );

    docker::run(&["kill", &host.name]).expect("docker kill");
    // Reports are dated to the second: the restart begins in a later
    // second than any report written before the kill.
    let killed = std::time::SystemTime::now();
    wait_until(Duration::from_secs(5), "the next second", || {
        second_of(std::time::SystemTime::now()) > second_of(killed)
    });
    let restarted = std::time::SystemTime::now();
    docker::run(&["start", &host.name]).expect("docker start");
    let mut healthy_reports = 0;
    wait_until(
        Duration::from_secs(60),
        "the endpoint to answer again",
        || {
            let report = report_of(&bed, "host-00");
            let written = report["lastModified"]
                .as_str()
                .and_then(|t| humantime::parse_rfc3339(t).ok());
            if written.is_some_and(|t| second_of(t) >= second_of(restarted))
                && report["state"]["deploys"]["blue"]["health"] == "healthy"
            {
                healthy_reports += 1;
                assert_eq!(
                    page(host),
                    "blue\n",
                    "reported healthy while down: {report}"
                );
            }
            healthy_reports > 0 && host.get(ENDPOINT.1, "/").status == 200
        },
    );
    let log = host.log();
    assert!(log.contains("Restarting deploy blue: "), "{log}");
    let report = report_of(&bed, "host-00");
    assert_eq!(report["state"]["deploys"]["blue"]["restarts"], json!(1));
}

fn second_of(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// Checks that `host` holds nothing but the deploys of its `report`: a
/// directory each, a port each (and nginx's 80), at most one release
/// server each and one nginx. Returns how many deploys it has.
fn only_deploys(host: &Host, report: &Value) -> usize {
    let deploys = report["state"]["state"]["deploys"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut dirs: Vec<&str> = deploys.keys().map(String::as_str).collect();
    dirs.push("frontend-proxy");
    dirs.sort();
    let (listed, servers, nginx) = footprint(host);
    assert_eq!(listed, dirs.join(" "), "{}", host.name);
    assert!(servers <= deploys.len(), "{} release servers", servers);
    assert_eq!(nginx, 1);
    let ports: Vec<String> = deploys.values().map(|d| d["port"].to_string()).collect();
    let listening = host.exec(&["netstat", "-ltn"]);
    // 127.0.0.11 is docker's own DNS server, in every container.
    let lines = listening
        .lines()
        .filter(|l| l.contains("LISTEN") && !l.contains(" 127.0.0.11:"));
    for line in lines {
        let local = line.split_whitespace().nth(3).unwrap_or_default();
        let port = local.rsplit(':').next().unwrap_or_default();
        assert!(
            port == "80" || ports.iter().any(|p| p == port),
            "{}: port {port} belongs to no deploy:\n{listening}",
            host.name
        );
    }
    deploys.len()
}

/// Whether the host's container is running (its c2 loop alive).
fn running(host: &Host) -> bool {
    docker::run(&["inspect", "-f", "{{.State.Running}}", &host.name]).as_deref() == Some("true")
}

#[test]
fn hosts_survive_a_kill_mid_deploy_and_an_s3_outage_mid_rollout() {
    let Some(engine) = docker::engine() else {
        return;
    };
    let _turn = engine.exclusive();
    let mut bed = Bed::new("faults");
    bed.publish("blue.zip");
    // green's deploy takes a while to create: time to kill a host in it.
    bed.release("green.zip")
        .set("prestartCommand", json!("sleep 2"))
        .publish_s3(&bed.moto, &bed.bucket, "releases");
    bed.publish("red.zip");
    bed.start_hosts(3);
    bed.operator.c2(&["start", "blue.zip"]).ok();
    bed.operator.c2(&["connect", "main", "blue"]).ok();
    converge(&bed, 3, Duration::from_secs(60));

    // host-00 is killed while it creates green, then started again: it
    // serves blue again, and has green once, as the others do.
    bed.operator.c2(&["start", "green.zip"]).ok();
    let victim = &bed.hosts[0];
    wait_until(Duration::from_secs(30), "host-00 to create green", || {
        victim.log().contains("Creating deploy green")
    });
    docker::run(&["kill", &victim.name]).expect("docker kill");
    converge(&bed, 2, Duration::from_secs(30));
    docker::run(&["start", &victim.name]).expect("docker start");
    converge(&bed, 3, Duration::from_secs(60));
    // Green was made once, after the restart, and serves; nothing else
    // holds a port or a directory. (c2 starts a deploy's processes when it
    // creates the deploy: after a restart, bringing back those of deploys
    // made before is the release's own business, so blue is not checked.)
    let report = report_of(&bed, "host-00");
    assert_eq!(only_deploys(victim, &report), 2);
    let green = report["state"]["state"]["deploys"]["green"]["port"].clone();
    let url = format!("http://127.0.0.1:{green}/");
    assert_eq!(victim.exec(&["wget", "-q", "-O", "-", &url]), "green");
    let whole = ("blue frontend-proxy green".to_string(), 2, 1);
    assert_eq!(footprint(&bed.hosts[1]), whole);
    bed.operator.c2(&["connect", "main", "green"]).ok();
    converge(&bed, 3, Duration::from_secs(60));
    assert_eq!(page(victim), "green\n");

    // S3 goes away just as red is rolled out: every host's loop logs the
    // failure and lives on. Back (empty: moto keeps nothing), the operator
    // writes the master again and every host converges on it.
    bed.operator.c2(&["start", "red.zip"]).ok();
    let failures: Vec<usize> = bed
        .hosts
        .iter()
        .map(|h| h.log().matches("Exception: ").count())
        .collect();
    bed.restart_s3(|bed| {
        for (host, before) in bed.hosts.iter().zip(&failures) {
            wait_until(Duration::from_secs(30), "a failed round", || {
                host.log().matches("Exception: ").count() > *before
            });
            assert!(running(host), "{} died: {}", host.name, host.log());
        }
    });
    for name in ["blue.zip", "green.zip", "red.zip"] {
        bed.publish(name);
    }
    for args in [
        ["start", "blue.zip"].as_slice(),
        &["connect", "main", "blue"],
        &["start", "green.zip"],
        &["start", "red.zip"],
        &["connect", "main", "red"],
    ] {
        bed.operator.c2(args).ok();
    }
    converge(&bed, 3, Duration::from_secs(60));
    for host in &bed.hosts {
        assert_eq!(page(host), "red\n", "{}", host.name);
        let report = report_of(&bed, &host.host_name);
        assert_eq!(only_deploys(host, &report), 3, "{}", host.name);
    }
    for host in &bed.hosts[1..] {
        let whole = ("blue frontend-proxy green red".to_string(), 3, 1);
        assert_eq!(footprint(host), whole, "{}", host.name);
    }
}

/// Requests moto has logged so far, and of them the master state's GETs
/// (one per host per round).
fn moto_requests(bed: &Bed) -> (usize, usize) {
    let log = bed.moto.log();
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let requests: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" HTTP/1.1\" "))
        .collect();
    let master = requests
        .iter()
        .filter(|l| l.contains("\"GET /") && l.contains("/camus2/master/state.json"))
        .count();
    (requests.len(), master)
}

/// Figures for the notes, not run in CI (`cargo test --test it
/// fleet_host_figures -- --ignored --nocapture`): how long 1, 5, 10 and 20
/// hosts take to show a master change, and what an idle round costs each
/// host in S3 requests, from moto's request log.
#[test]
#[ignore]
fn fleet_host_figures() {
    let Some(engine) = docker::engine() else {
        return;
    };
    let _turn = engine.exclusive();
    let mut rows = Vec::new();
    let mut t1 = None;
    for n in [1, 5, 10, 20] {
        let mut bed = Bed::new(&format!("figures{n}"));
        bed.publish("app.zip");
        bed.start_hosts(n);
        converge(&bed, n, Duration::from_secs(120));
        // From the master change (`start` returning), as the benchmark.
        bed.operator.c2(&["start", "app.zip"]).ok();
        let start = std::time::Instant::now();
        converge(&bed, n, Duration::from_secs(120));
        let t = start.elapsed().as_secs_f64();
        let t1 = *t1.get_or_insert(t);

        // Idle: a settled round first, then 10 rounds of every host, with
        // nothing else asking moto anything.
        let (_, settled) = moto_requests(&bed);
        wait_until(Duration::from_secs(60), "an idle round", || {
            moto_requests(&bed).1 >= settled + n
        });
        let (all0, master0) = moto_requests(&bed);
        wait_until(Duration::from_secs(120), "10 idle rounds", || {
            moto_requests(&bed).1 >= master0 + 10 * n
        });
        let (all1, master1) = moto_requests(&bed);
        let per_round = (all1 - all0) as f64 / (master1 - master0) as f64;
        rows.push(format!(
            "| {n} | {t:.2} s | {:.2} | {per_round:.2} |",
            t / t1
        ));
    }
    let table = format!(
        "| hosts | convergence after `start` | ratio to 1 host | S3 requests per idle round per host |\n|---|---|---|---|\n{}",
        rows.join("\n")
    );
    eprintln!("{table}");
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/target/figures");
    let _ = std::fs::create_dir_all(dir);
    let _ = std::fs::write(format!("{dir}/fleet-hosts.md"), format!("{table}\n"));
}

/// What each host serves, by index, asked from this machine.
fn pages(bed: &Bed) -> Vec<String> {
    bed.hosts.iter().map(page).collect()
}

/// Waits until every host but those in `except` serves `body`; says how
/// long that took.
fn served(bed: &Bed, body: &str, except: &[usize], within: Duration) -> Duration {
    let start = std::time::Instant::now();
    loop {
        let all = bed
            .hosts
            .iter()
            .enumerate()
            .all(|(i, h)| except.contains(&i) || page(h) == body);
        if all {
            return start.elapsed();
        }
        if start.elapsed() > within {
            panic!(
                "not every host serves {body:?}: {:?}\n{}",
                pages(bed),
                bed.logs()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn ten_hosts_follow_three_etcd_containers_at_once_through_a_dead_leader_a_partition_and_a_cut() {
    let Some(engine) = docker::engine() else {
        return;
    };
    let _turn = engine.exclusive();
    let mut bed = Bed::with_etcd("etcd");
    for name in ["blue.zip", "green.zip"] {
        bed.publish(name);
    }
    bed.start_hosts(10);
    converge(&bed, 10, Duration::from_secs(60));

    // At --repeat 30 the hosts have just had their first round: they hear
    // of the start and the connect at once.
    bed.operator.c2(&["start", "blue.zip"]).ok();
    bed.operator.c2(&["connect", "main", "blue"]).ok();
    let took = served(&bed, "blue\n", &[], Duration::from_secs(10));
    eprintln!("ten hosts serve blue {took:?} after the connect");

    // The leader dies; a connect right after succeeds on the others (or
    // fails in one line), and the fleet follows the master as it is.
    let leader = bed.etcd_leader();
    docker::run(&["kill", &bed.etcd[leader]]).expect("kill the leader");
    bed.operator.c2(&["start", "green.zip"]).ok();
    let out = bed.operator.c2(&["connect", "main", "green"]).output();
    if out.code != Some(0) {
        assert!(out.error_line().contains("etcd"), "{out}");
        bed.operator.c2(&["connect", "main", "green"]).ok();
    }
    served(&bed, "green\n", &[], Duration::from_secs(20));
    docker::run(&["start", &bed.etcd[leader]]).expect("restart the member");

    // A member partitioned away: the rest carry on.
    let member = (bed.etcd_leader() + 1) % 3;
    docker::run(&["network", "disconnect", &bed.network, &bed.etcd[member]]).expect("partition");
    bed.operator.c2(&["connect", "main", "blue"]).ok();
    served(&bed, "blue\n", &[], Duration::from_secs(20));
    let ip = bed.etcd_ip(member);
    docker::run(&[
        "network",
        "connect",
        "--ip",
        &ip,
        &bed.network,
        &bed.etcd[member],
    ])
    .expect("heal the partition");

    // A host cut off: its report's lease (90 s at --repeat 30) would
    // outlast the test, so what is checked is that it keeps serving while
    // the others switch, and catches up once back.
    let cut = 3;
    let name = bed.hosts[cut].name.clone();
    docker::run(&["network", "disconnect", &bed.network, &name]).expect("disconnect");
    bed.operator.c2(&["connect", "main", "green"]).ok();
    served(&bed, "green\n", &[cut], Duration::from_secs(20));
    assert_eq!(page_inside(&bed.hosts[cut]), "blue");
    let ip = bed.hosts[cut].ip.clone();
    docker::run(&["network", "connect", "--ip", &ip, &bed.network, &name]).expect("reconnect");
    served(&bed, "green\n", &[], Duration::from_secs(30));
    converge(&bed, 10, Duration::from_secs(30));
}
