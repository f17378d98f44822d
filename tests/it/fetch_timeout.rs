//! `fetch-context --retry --timeout`: a boot script waiting for its context
//! sources gives up in time, naming what never appeared.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{wait_until, Env, Moto};

#[test]
fn gives_up_after_the_timeout_naming_each_source_still_missing() {
    let moto = Moto::shared();
    let bucket = Moto::unique_bucket("timeout");
    let mut env = Env::new();
    env.use_s3(moto, &bucket, "rel");
    let db = env.path("sources/db.json");
    env.set(
        "configSources",
        json!({
            "app": {"s3": format!("s3://{bucket}/ctx/app.json")},
            "db": {"file": db},
        }),
    );
    env.context_file("infra", r#"{"ready": true}"#);

    let started = Instant::now();
    let out = env
        .c2(&["fetch-context", "--retry", "--timeout", "2s"])
        .output();
    let took = started.elapsed();
    assert_eq!(out.code, Some(1), "{out}");
    assert_eq!(
        out.error_line(),
        format!(
            "c2: error: fetch-context: gave up after 2s; still missing: app (s3://{bucket}/ctx/app.json), db (file {})",
            db.display()
        )
    );
    // It waits out the time-out, not the 10 s between checks.
    assert!(took >= Duration::from_secs(2), "{took:?}");
    assert!(took < Duration::from_secs(8), "{took:?}");
    assert!(!env.exists("cache/app.json"));
}

#[test]
fn a_source_that_appears_before_the_timeout_is_fetched() {
    let moto = Moto::shared();
    let bucket = Moto::unique_bucket("intime");
    let mut env = Env::new();
    env.use_s3(moto, &bucket, "rel");
    env.set(
        "configSources",
        json!({"late": {"s3": format!("s3://{bucket}/ctx/late.json")}}),
    );
    let run = env.c2(&["fetch-context", "--retry", "--timeout", "5m"]);
    let child = std::thread::spawn(move || run.output());
    let waiting = format!("Waiting for s3://{bucket}/ctx/late.json");
    wait_until(Duration::from_secs(30), "c2 to wait for the source", || {
        std::fs::read_to_string(env.path("log/c2.log")).is_ok_and(|log| log.contains(&waiting))
    });
    moto.put(&bucket, "ctx/late.json", br#"{"ready": true}"#);
    let out = child.join().unwrap();
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(env.read("cache/late.json"), r#"{"ready": true}"#);
}

#[test]
fn a_timeout_without_retry_is_a_usage_error() {
    let env = Env::new();
    let out = env.c2(&["fetch-context", "--timeout", "30s"]).output();
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains("--retry"), "{out}");
    let out = env
        .c2(&["fetch-context", "--retry", "--timeout", "soon"])
        .output();
    assert_eq!(out.code, Some(2), "{out}");
}
