//! Remote state in etcd (a real three-member cluster of Debian's etcd on
//! loopback): slaves hear a master change at once, reports live on
//! leases, the lock and the history go in the master's transaction, and
//! the fleet rides out a killed leader, a frozen member, a slave cut off
//! and garbage at the master key. Every story of `remote`, `journal`,
//! `await_slaves` and the others that loop over the backends runs on etcd
//! too; these are what only etcd has.

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::await_slaves::Follower;
use crate::common::etcd::{self, Cluster};
use crate::common::fleet::{self, Routed};
use crate::common::link::Link;
use crate::common::{self, wait_until, Env, Moto};
use crate::remote::{etcd_key, master_on, publish_http, Backend};

/// A master on `cluster` with blue and green published, and `n` slaves
/// following it every `period`, all reported (see [`fleet::routed`]).
fn fleet(cluster: &Cluster, n: usize, period: &str) -> Routed {
    fleet::routed(&cluster.url(&etcd::unique_prefix()), &[], n, period)
}

/// The master's `history --json-output` events.
fn events(env: &Env) -> Vec<Value> {
    let out = env
        .c2(&["history", "--limit", "1000", "--json-output"])
        .ok();
    serde_json::from_str(&out.stdout).unwrap()
}

#[test]
fn ten_slaves_at_repeat_30_follow_a_start_and_a_connect_at_once() {
    let _heavy = common::heavy();
    let fleet = fleet(Cluster::shared(), 10, "30");
    let (master, slaves) = (&fleet.master, &fleet.slaves[..]);

    // Every slave has had its first round: from now on a poller would
    // wait up to 30 s for the next one. A watcher acts at once.
    master.c2(&["start", "blue.zip"]).ok();
    let started = Instant::now();
    wait_until(Duration::from_secs(10), "ten slaves to run blue", || {
        fleet.in_sync() == 10
    });
    eprintln!("start reached 10 slaves in {:?}", started.elapsed());
    master.c2(&["connect", "main", "blue"]).ok();
    let took = fleet.wait_served("blue /", Duration::from_secs(10));
    eprintln!("connect reached 10 slaves' nginx in {took:?}");

    // --await-slaves is told of each report as it comes.
    master
        .c2(&["start", "green.zip", "--await-slaves", "--timeout", "10s"])
        .ok();
    master
        .c2(&[
            "connect",
            "main",
            "green",
            "--await-slaves",
            "--timeout",
            "10s",
        ])
        .ok();
    for slave in slaves {
        assert_eq!(slave.get("main.example", "/").body, "green /");
    }
}

#[test]
fn a_connect_cut_short_by_the_leaders_death_is_whole_or_not_at_all() {
    let _heavy = common::heavy();
    let cluster = Cluster::start(3);
    let fleet = fleet(&cluster, 2, "30");
    let master = &fleet.master;
    master.c2(&["start", "blue.zip"]).ok();
    master.c2(&["start", "green.zip"]).ok();
    master.c2(&["connect", "main", "blue"]).ok();
    fleet.wait_served("blue /", Duration::from_secs(20));

    let mut live = "blue";
    for target in ["green", "blue", "green"] {
        let before = events(master).len();
        let mut child = master.c2(&["connect", "main", target]).spawn();
        // The command has read the master and is about to write it.
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let said = lines.next().unwrap().unwrap();
        assert!(
            said.contains(&format!("Connecting main to {target}")),
            "{said}"
        );
        let leader = cluster.leader();
        cluster.kill(leader);
        let rest: Vec<String> = lines.map_while(Result::ok).collect();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        cluster.restart(leader);

        let connected = master.status_json()["master"]["connections"]["main"].clone();
        let after = events(master);
        match out.status.code() {
            Some(0) => {
                assert_eq!(connected, json!(target), "{rest:?}");
            }
            Some(1) => {
                let errors: Vec<&str> = stderr
                    .lines()
                    .filter(|l| l.starts_with("c2: error:"))
                    .collect();
                assert_eq!(errors.len(), 1, "{stderr}");
                assert!(errors[0].contains("etcd"), "{stderr}");
                // The answer was lost, the write may not have been.
                assert!(connected == json!(target) || connected == json!(live));
            }
            code => panic!("connect exited {code:?}: {stderr}"),
        }
        // The history holds the change exactly when the master does. (A
        // write whose answer was lost is retried on another member, which
        // finds nothing left to change and says so.)
        let changes: Vec<&Value> = after[..after.len() - before]
            .iter()
            .filter(|e| e["before"] != e["after"])
            .collect();
        let changed = connected != json!(live);
        assert_eq!(changes.len(), usize::from(changed), "{after:?}");
        for event in &after[..after.len() - before] {
            assert_eq!(event["command"], json!(["connect", "main", target]));
        }
        if changed {
            live = target;
        }
        fleet.wait_served(&format!("{live} /"), Duration::from_secs(30));
    }
}

#[test]
fn with_one_member_frozen_away_commands_work_and_the_fleet_follows() {
    let _heavy = common::heavy();
    let cluster = Cluster::start(3);
    let fleet = fleet(&cluster, 2, "30");
    let (master, slaves) = (&fleet.master, &fleet.slaves[..]);
    master.c2(&["start", "blue.zip"]).ok();
    master.c2(&["connect", "main", "blue"]).ok();
    fleet.wait_served("blue /", Duration::from_secs(20));

    // The leader stops answering anyone: peers elect another, clients'
    // requests to it hang.
    let frozen = cluster.leader();
    cluster.freeze(frozen);
    master.c2(&["start", "green.zip"]).ok();
    master.c2(&["connect", "main", "green"]).ok();
    fleet.wait_served("green /", Duration::from_secs(30));
    assert_eq!(
        master.status_json()["master"]["connections"],
        json!({"main": "green"})
    );
    cluster.thaw(frozen);
    master.c2(&["disconnect", "main"]).ok();
    wait_until(Duration::from_secs(30), "both slaves to disconnect", || {
        slaves
            .iter()
            .all(|s| s.get("main.example", "/").status == 503)
    });
}

#[test]
fn a_slave_cut_off_from_etcd_keeps_serving_its_report_expires_and_it_catches_up() {
    let cluster = Cluster::shared();
    let fleet = fleet(cluster, 0, "1");
    let master = &fleet.master;
    master.c2(&["start", "blue.zip"]).ok();
    master.c2(&["connect", "main", "blue"]).ok();

    // web1 reaches etcd through links the test can cut.
    let links: Vec<Link> = (0..3)
        .map(|i| {
            Link::start(
                cluster
                    .endpoint(i)
                    .rsplit_once(':')
                    .unwrap()
                    .1
                    .parse()
                    .unwrap(),
            )
        })
        .collect();
    let mut web1 = master.slave("web1");
    let through: Vec<String> = links
        .iter()
        .map(|l| format!("127.0.0.1:{}", l.port))
        .collect();
    let prefix = etcd_key(master, "");
    web1.proxy_set(
        "remoteStateS3",
        json!({"just": format!("etcd://{}/{}", through.join(","), prefix.trim_end_matches('/'))}),
    );
    let follower = Follower::every(&web1, "1");
    wait_until(
        Duration::from_secs(30),
        "web1 to serve blue and say so",
        || {
            web1.get("main.example", "/").body == "blue /"
                && master
                    .slave_report("web1")
                    .is_some_and(|r| r["inSync"] == json!(true))
        },
    );

    for link in &links {
        link.cut();
    }
    // A command on web1 tries each member, then gives up in one line.
    let error = web1.c2(&["status"]).fails_with("").error_line();
    assert!(error.ends_with(": timed out"), "{error}");
    for to in &through {
        assert!(error.contains(to.as_str()), "{error}");
    }
    master.c2(&["start", "green.zip"]).ok();
    master.c2(&["connect", "main", "green"]).ok();
    // Its report lives on a lease of 15 s that web1 can no longer renew.
    wait_until(Duration::from_secs(40), "web1's report to expire", || {
        master.slave_report("web1").is_none()
    });
    assert_eq!(web1.get("main.example", "/").body, "blue /");

    for link in &links {
        link.mend();
    }
    let caught_up = || {
        web1.get("main.example", "/").body == "green /"
            && master
                .slave_report("web1")
                .is_some_and(|r| r["inSync"] == json!(true))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !caught_up() {
        assert!(
            Instant::now() < deadline,
            "web1 did not catch up in 30 s:\n{}",
            std::fs::read_to_string(web1.path("follower.out")).unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(follower);
    let log = std::fs::read_to_string(web1.path("follower.out")).unwrap();
    let failures: Vec<&str> = log.lines().filter(|l| l.contains("Exception")).collect();
    assert!(!failures.is_empty(), "the cut went unnoticed:\n{log}");
    for line in failures {
        assert!(line.contains(&through[0]), "{line}");
    }
}

#[test]
fn garbage_at_the_master_key_is_refused_by_every_slave_which_keeps_serving() {
    let fleet = fleet(Cluster::shared(), 2, "30");
    let (master, slaves) = (&fleet.master, &fleet.slaves[..]);
    master.c2(&["start", "blue.zip"]).ok();
    master.c2(&["connect", "main", "blue"]).ok();
    fleet.wait_served("blue /", Duration::from_secs(20));

    let key = etcd_key(master, "master/state.json");
    let good = Cluster::shared().get(&key).unwrap();
    Cluster::shared().put(&key, "{\"deploys\": [1, 2");
    // status refuses the master too, so the reports are read in etcd.
    wait_until(
        Duration::from_secs(20),
        "both slaves to report the garbage",
        || {
            (0..2).all(|i| {
                let key = etcd_key(master, &format!("slaves/web{i}/state.json"));
                Cluster::shared().get(&key).is_some_and(|report| {
                    let report: Value = serde_json::from_str(&report).unwrap();
                    report["status"]["error"]
                        .as_str()
                        .is_some_and(|e| e.contains("master/state.json: invalid state"))
                })
            })
        },
    );
    master
        .c2(&["status"])
        .fails_with("master/state.json: invalid state");
    for slave in slaves {
        assert_eq!(slave.get("main.example", "/").body, "blue /");
    }
    master
        .c2(&["start", "green.zip"])
        .fails_with("master/state.json: invalid state");

    Cluster::shared().put(&key, &good);
    master.c2(&["start", "green.zip"]).ok();
    master.c2(&["connect", "main", "green"]).ok();
    fleet.wait_served("green /", Duration::from_secs(20));
}

#[test]
fn no_master_write_lands_after_the_lock_that_refuses_it() {
    let mut master = master_on(&Backend::Etcd(Cluster::shared()));
    master.proxy_set("dynamicPortRange", json!({"v1": 32000, "v2": 32100}));
    master.release("app.zip").publish();
    let runs: Vec<_> = (0..20)
        .map(|n| master.c2(&["start", "app.zip", &format!("app-{n}")]))
        .map(|run| std::thread::spawn(move || run.output()))
        .collect();
    // The lock comes down in the middle of the burst.
    wait_until(Duration::from_secs(30), "a first start", || {
        master.status_json()["master"]["deploys"]
            .as_object()
            .is_some_and(|d| !d.is_empty())
    });
    master.c2(&["lock", "acquire", "-m", "freeze"]).ok();
    let outs: Vec<_> = runs.into_iter().map(|r| r.join().unwrap()).collect();

    let started: Vec<String> = (0..20)
        .filter(|&n| outs[n].code == Some(0))
        .map(|n| format!("app-{n}"))
        .collect();
    for out in outs.iter().filter(|o| o.code != Some(0)) {
        assert!(
            out.error_line()
                .starts_with("c2: error: deploys are locked by"),
            "{out}"
        );
    }
    eprintln!("{} of 20 starts came before the lock", started.len());
    let deploys = master.status_json()["master"]["deploys"].clone();
    let mut labels: Vec<String> = deploys.as_object().unwrap().keys().cloned().collect();
    labels.sort();
    let mut expected = started.clone();
    expected.sort();
    assert_eq!(labels, expected);

    // Each change is in the history once, and every one was written
    // before the lock was.
    let cluster = Cluster::shared();
    let lock_revision = cluster.mod_revision(&etcd_key(&master, "lock.json"));
    let history = cluster.keys(&etcd_key(&master, "history/"));
    let starts: Vec<&String> = history
        .iter()
        .filter(|k| {
            let event: Value = serde_json::from_str(&cluster.get(k).unwrap()).unwrap();
            event["command"][0] == "start"
        })
        .collect();
    assert_eq!(starts.len(), started.len(), "{history:?}");
    for key in starts {
        assert!(cluster.mod_revision(key) < lock_revision, "{key}");
    }
}

#[test]
fn slave_flush_has_nothing_to_do_on_etcd() {
    let master = master_on(&Backend::Etcd(Cluster::shared()));
    master.slave("web1").c2(&["slave-update"]).ok();
    let out = master.c2(&["slave-flush", "--older-than", "0s"]).ok();
    assert_eq!(
        out.log_messages(),
        [format!(
            "Nothing to flush: at {} a slave's report disappears by itself once the slave stops",
            master.config()["deployMode"]["proxy"]["remoteStateS3"]["just"]
                .as_str()
                .unwrap()
        )]
    );
    assert!(master.slave_report("web1").is_some());
}

#[test]
fn with_etcd_out_of_reach_a_command_fails_in_one_line_naming_the_endpoints() {
    let mut env = master_on(&Backend::Dir);
    let dead = common::moto::free_port();
    env.remote(&format!("etcd://127.0.0.1:{dead}/camus2"));
    let error = env.c2(&["status"]).fails_with("").error_line();
    assert!(
        error.contains(&format!("(tried 127.0.0.1:{dead})"))
            && error.contains("Connection refused"),
        "{error}"
    );

    // A member that answers nothing: the command gives up in seconds.
    let link = Link::start(
        Cluster::shared()
            .endpoint(0)
            .rsplit_once(':')
            .unwrap()
            .1
            .parse()
            .unwrap(),
    );
    link.cut();
    env.remote(&format!("etcd://127.0.0.1:{}/camus2", link.port));
    let error = env.c2(&["start", "blue.zip"]).fails_with("").error_line();
    assert!(
        error.contains(&format!("(tried 127.0.0.1:{})", link.port)) && error.ends_with("timed out"),
        "{error}"
    );
}

#[test]
fn remote_copy_moves_a_fleet_from_a_directory_to_etcd_to_s3_and_back() {
    let moto = Moto::shared();
    let mut dir = master_on(&Backend::Dir);
    for (key, value) in moto.client_env() {
        dir.env(&key, &value);
    }
    publish_http(&dir, &Backend::Dir, "blue.zip");
    dir.c2(&["start", "blue.zip"]).ok();
    dir.c2(&["connect", "main", "blue"]).ok();
    dir.c2(&["start", "blue.zip", "spare"]).ok();
    dir.c2(&["stop", "spare"]).ok();
    let state = dir.status_json()["master"].clone();
    let history = events(&dir);
    assert_eq!(history.len(), 4);

    let bucket = Moto::unique_bucket("copy");
    moto.create_bucket(&bucket);
    let shared = dir.config()["deployMode"]["proxy"]["remoteStateS3"]["just"]
        .as_str()
        .unwrap()
        .to_string();
    let places = [
        Cluster::shared().url(&etcd::unique_prefix()),
        format!("s3://{bucket}/camus2"),
        dir.path("back").display().to_string(),
    ];
    let mut from = shared.clone();
    for to in &places {
        dir.c2(&["remote-copy", &from, to]).ok();
        let mut there = dir.slave("ops");
        there.remote(to);
        assert_eq!(there.status_json()["master"], state, "{to}");
        assert_eq!(events(&there), history, "{to}");
        from = to.clone();
    }

    // An existing master is replaced only on purpose.
    dir.c2(&["stop", "blue"]).fails_with("connected");
    dir.c2(&["disconnect", "main"]).ok();
    dir.c2(&["remote-copy", &shared, &places[0]])
        .fails_with("already has a master state: --force replaces it");
    dir.c2(&["remote-copy", &shared, &places[0], "--force"])
        .ok();
    let mut there = dir.slave("ops");
    there.remote(&places[0]);
    assert_eq!(there.status_json()["master"]["connections"], json!({}));
    dir.c2(&[
        "remote-copy",
        &dir.path("nowhere").display().to_string(),
        &places[0],
    ])
    .fails_with("there is no master state at");
}

#[test]
fn an_etcds_store_with_client_certificates_and_a_password_keeps_the_password_to_itself() {
    let cluster = Cluster::start_secure();
    let secure = cluster.secure();
    let mut master = Env::new();
    master
        .proxy(&[("main", "main.example")])
        .remote(&cluster.url("camus2/tls"))
        .proxy_set(
            "etcd",
            json!({
                "caFile": secure.ca,
                "certFile": secure.client_cert,
                "keyFile": secure.client_key,
            }),
        )
        .env("C2_ETCD_USER", "root")
        .env("C2_ETCD_PASSWORD", &secure.root_password);
    master.http_release("blue.zip").publish();
    master.c2(&["start", "blue.zip"]).ok();
    master.c2(&["connect", "main", "blue"]).ok();
    let web1 = master.slave("web1");
    web1.c2(&["slave-update"]).ok();
    assert_eq!(web1.get("main.example", "/").body, "blue /");
    assert_eq!(master.slave_report("web1").unwrap()["inSync"], json!(true));
    assert!(cluster
        .get("camus2/tls/master/state.json")
        .is_some_and(|m| m.contains("blue.zip")));

    // Each piece missing or wrong is one line, and none shows the password.
    let mut outputs = Vec::new();
    let mut wrong = master.slave("ops");
    wrong.env("C2_ETCD_PASSWORD", "not-the-password");
    outputs.push(wrong.c2(&["status"]).fails_with("authentication failed"));
    let mut anonymous = master.slave("ops");
    anonymous
        .env("C2_ETCD_USER", "")
        .env("C2_ETCD_PASSWORD", "");
    outputs.push(anonymous.c2(&["start", "blue.zip", "x"]).fails_with("etcd"));
    for (files, why) in [
        (
            json!({"certFile": secure.client_cert, "keyFile": secure.client_key}),
            "(tried 127.0.0.1:",
        ),
        (json!({"caFile": secure.ca}), "(tried 127.0.0.1:"),
        (
            json!({"caFile": secure.ca, "certFile": secure.client_cert}),
            "etcd.certFile and etcd.keyFile go together",
        ),
        (
            json!({"caFile": "/nonexistent/ca.pem"}),
            "cannot read etcd.caFile /nonexistent/ca.pem",
        ),
    ] {
        let mut ops = master.slave("ops");
        ops.proxy_set("etcd", files);
        outputs.push(ops.c2(&["status"]).fails_with(why));
    }
    let mut in_url = master.slave("ops");
    in_url.remote(&format!(
        "etcds://root:{}@{}/camus2/tls",
        secure.root_password,
        cluster.endpoint(0)
    ));
    let out = in_url
        .c2(&["status"])
        .fails_with("C2_ETCD_USER and C2_ETCD_PASSWORD");
    for out in &outputs {
        // Nothing is wrong with the lock: no advice to remove it.
        assert!(!out.error_line().contains("lock release"), "{out}");
        assert!(!out.to_string().contains(&secure.root_password), "{out}");
    }
    assert!(!out.stderr.contains(&secure.root_password), "{out}");
    for env in [&master, &web1] {
        let log = std::fs::read_to_string(env.path("log/c2.log")).unwrap();
        assert!(!log.contains(&secure.root_password));
    }
}
