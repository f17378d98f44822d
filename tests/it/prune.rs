//! `prune --keep N`: old releases leave the store, never one a deploy uses
//! (noproxy's current, this machine's state, the master), and a start
//! racing a prune either keeps its release or fails cleanly.

use std::time::{Duration, SystemTime};

use crate::common::{Env, Moto};
use crate::publish::{env_on, everything_in, stored, stores, Store};
use crate::remote::{master_on, Backend};
use serde_json::Value;

/// Publishes `names` (trivial releases), oldest first, each with its own
/// modification time so the store lists them newest first.
fn publish_aged(env: &Env, store: Store, names: &[&str]) {
    for (i, name) in names.iter().enumerate() {
        let release = env.release(name);
        match store {
            Store::Dir => {
                release.publish();
                let age = Duration::from_secs(3600 * (names.len() - i) as u64);
                std::fs::File::options()
                    .write(true)
                    .open(env.path("store").join(name))
                    .unwrap()
                    .set_modified(SystemTime::now() - age)
                    .unwrap();
            }
            Store::S3(moto) => {
                let url = env.config()["releases"]["s3"].as_str().unwrap();
                let (bucket, prefix) = url.strip_prefix("s3://").unwrap().split_once('/').unwrap();
                release.publish_s3(moto, bucket, prefix);
                // Data setup, not synchronisation: S3 dates objects to the
                // second, so each release gets a second of its own.
                std::thread::sleep(Duration::from_millis(1100));
            }
        }
    }
}

fn store_of(backend: &Backend) -> Store {
    match backend {
        Backend::Dir | Backend::Etcd(_) => Store::Dir,
        Backend::S3(moto) => Store::S3(moto),
    }
}

#[test]
fn prune_keeps_the_newest_and_prints_what_it_deletes() {
    for store in stores() {
        let env = env_on(store);
        publish_aged(&env, store, &["r1.zip", "r2.zip", "r3.zip", "r4.zip"]);

        let out = env.c2(&["prune", "--keep", "1", "--dry-run"]).ok();
        assert_eq!(
            out.stdout,
            "would delete r3.zip\nwould delete r2.zip\nwould delete r1.zip\n"
        );
        assert_eq!(out.stderr, "");
        assert_eq!(
            everything_in(&env, store),
            ["r1.zip", "r2.zip", "r3.zip", "r4.zip"]
        );

        let out = env.c2(&["prune", "--keep", "1"]).ok();
        assert_eq!(
            out.stdout,
            "deleted r3.zip\ndeleted r2.zip\ndeleted r1.zip\n"
        );
        assert_eq!(env.c2(&["list-releases"]).ok().stdout, "r4.zip\n");
        // Nothing left in the set-aside place either.
        assert_eq!(everything_in(&env, store), ["r4.zip"]);

        assert_eq!(env.c2(&["prune", "--keep", "1"]).ok().stdout, "");
        assert_eq!(
            env.c2(&["prune", "--keep", "0", "--dry-run"]).ok().stdout,
            "would delete r4.zip\n"
        );
    }
}

#[test]
fn prune_keeps_the_release_current_runs_in_noproxy_mode() {
    let env = Env::new();
    publish_aged(&env, Store::Dir, &["old.zip", "mid.zip", "new.zip"]);
    env.c2(&["start", "old.zip", "live"]).ok();
    let out = env.c2(&["prune", "--keep", "0"]).ok();
    assert_eq!(out.stdout, "deleted new.zip\ndeleted mid.zip\n");
    assert_eq!(env.c2(&["list-releases"]).ok().stdout, "old.zip\n");
    // What runs is untouched, and can still be stopped.
    assert_eq!(env.current().as_deref(), Some("live"));
    env.c2(&["stop", "live"]).ok();
}

#[test]
fn prune_keeps_the_releases_of_the_local_state() {
    for store in stores() {
        let mut env = env_on(store);
        env.proxy(&[("main", "main.example")]);
        publish_aged(&env, store, &["a.zip", "b.zip", "c.zip"]);
        env.c2(&["start", "a.zip"]).ok();
        env.c2(&["start", "b.zip", "bee"]).ok();
        assert_eq!(
            env.c2(&["prune", "--keep", "0"]).ok().stdout,
            "deleted c.zip\n"
        );
        assert_eq!(env.c2(&["list-releases"]).ok().stdout, "b.zip\na.zip\n");
        env.c2(&["stop", "a"]).ok();
        env.c2(&["stop", "bee"]).ok();
    }
}

/// A slave's own state may lag the master: a release either uses is kept.
#[test]
fn prune_keeps_the_releases_of_the_master_and_of_a_lagging_slave() {
    for backend in crate::remote::backends() {
        let store = store_of(&backend);
        let master = master_on(&backend);
        publish_aged(&master, store, &["a.zip", "b.zip", "c.zip", "d.zip"]);
        let slave = master.slave("web1");
        master.c2(&["start", "a.zip"]).ok();
        master.c2(&["start", "b.zip"]).ok();
        slave.c2(&["slave-update"]).ok();
        master.c2(&["stop", "b"]).ok();

        // Seen from the master machine, only a is in use.
        let out = master.c2(&["prune", "--keep", "0", "--dry-run"]).ok();
        assert_eq!(
            out.stdout,
            "would delete d.zip\nwould delete c.zip\nwould delete b.zip\n"
        );
        // The slave still runs b.
        let out = slave.c2(&["prune", "--keep", "1"]).ok();
        assert_eq!(out.stdout, "deleted c.zip\n");
        assert_eq!(
            master.c2(&["list-releases"]).ok().stdout,
            "d.zip\nb.zip\na.zip\n"
        );
        slave.c2(&["slave-update"]).ok();
    }
}

/// Runs `c2 start <release>` and `c2 prune --keep 0` at once, many times,
/// and checks after each round that the start either kept its release
/// (its deploy is in `deploys()` and the release in the store) or failed
/// leaving no deploy. `cleanup` stops the deploy when it was started.
fn race_start_against_prune(
    env: &Env,
    store: Store,
    rounds: usize,
    deploys: impl Fn() -> Value,
    publish: impl Fn(&str),
) {
    let (mut kept, mut refused) = (0, 0);
    for round in 0..rounds {
        let name = format!("race-{round}.zip");
        let label = format!("race-{round}");
        publish(&name);
        let start = env.c2(&["start", &name]).spawn();
        let prune = env.c2(&["prune", "--keep", "0"]).spawn();
        let start = start.wait_with_output().unwrap();
        let prune = prune.wait_with_output().unwrap();
        let start_err = String::from_utf8_lossy(&start.stderr).to_string();
        assert!(
            prune.status.success(),
            "round {round}: prune failed: {prune:?}"
        );

        let deploy = deploys()[&label].clone();
        let in_store = stored(env, store, &name).is_some();
        if start.status.success() {
            assert_eq!(
                deploy["release"],
                name.as_str(),
                "round {round}: started but no deploy"
            );
            assert!(in_store, "round {round}: the deploy's release was deleted");
            kept += 1;
            env.c2(&["stop", &label]).ok();
        } else {
            assert!(
                deploy.is_null(),
                "round {round}: a failed start left {deploy}: {start_err}"
            );
            assert!(
                !env.exists(&format!("deploys/{label}")),
                "round {round}: a failed start left its directory"
            );
            assert!(
                start_err.contains("does not exist") || start_err.contains("was deleted"),
                "round {round}: {start_err}"
            );
            refused += 1;
        }
        assert!(
            everything_in(env, store)
                .iter()
                .all(|p| !p.starts_with(".c2-pruned/")),
            "round {round}: prune left releases set aside"
        );
    }
    eprintln!("{rounds} rounds: {kept} starts kept their release, {refused} failed cleanly");
}

#[test]
fn a_start_racing_a_prune_with_local_state_keeps_its_release_or_fails_cleanly() {
    let mut env = Env::new();
    env.proxy(&[("main", "main.example")]);
    race_start_against_prune(
        &env,
        Store::Dir,
        20,
        || env.state()["deploys"].clone(),
        |name| env.release(name).publish(),
    );
}

#[test]
fn a_start_racing_a_prune_with_remote_state_keeps_its_release_or_fails_cleanly() {
    for backend in [Backend::S3(Moto::shared()), Backend::Dir] {
        let store = store_of(&backend);
        let master = master_on(&backend);
        race_start_against_prune(
            &master,
            store,
            20,
            || master.status_json()["master"]["deploys"].clone(),
            |name| crate::remote::publish_http(&master, &backend, name),
        );
    }
}

/// The store is a folder: `s3://b/p/shop` holds `p/shop/<name>` and
/// nothing else. Neighbours that share the prefix as text
/// (`p/shop-staging/`) and subfolders (`p/shop/archive/`) are neither
/// listed nor counted nor deleted, even when they are newer.
#[test]
fn an_s3_prune_touches_only_the_direct_children_of_the_store() {
    let moto = Moto::shared();
    let bucket = Moto::unique_bucket("folder");
    let mut env = Env::new();
    env.use_s3(moto, &bucket, "p/shop");
    publish_aged(
        &env,
        Store::S3(moto),
        &["shop-1.0.zip", "shop-1.1.zip", "shop-1.2.zip"],
    );
    let foreign = ["p/shop-staging/canary-7.zip", "p/shop/archive/shop-0.9.zip"];
    for key in foreign {
        moto.put(&bucket, key, &env.release("x.zip").zip_bytes());
    }

    assert_eq!(
        env.c2(&["list-releases"]).ok().stdout,
        "shop-1.2.zip\nshop-1.1.zip\nshop-1.0.zip\n"
    );
    let out = env.c2(&["prune", "--keep", "2"]).ok();
    assert_eq!(out.stdout, "deleted shop-1.0.zip\n");
    let mut left = moto.keys(&bucket, "p/");
    left.sort();
    assert_eq!(
        left,
        [
            "p/shop-staging/canary-7.zip",
            "p/shop/archive/shop-0.9.zip",
            "p/shop/shop-1.1.zip",
            "p/shop/shop-1.2.zip",
        ]
    );
}
