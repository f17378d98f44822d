//! S3 through a real S3 server (moto over HTTP): the S3 release store, a
//! config read from S3, context sources in S3, and `fetch-context --retry`.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use crate::common::{self, noise, wait_until, Env, Format, Moto, Run};
use serde_json::json;

#[test]
fn start_replace_stop_from_an_s3_release_store() {
    let moto = Moto::shared();
    for format in [Format::Json, Format::Yaml] {
        let bucket = Moto::unique_bucket("releases");
        let mut env = Env::new();
        env.format(format).use_s3(moto, &bucket, "releases/prod");
        env.context_file("infra", r#"{"env": "prod"}"#);
        env.release("app-1.zip")
            .template("app.conf.tpl", "one {{infra.env}}\n")
            .publish_s3(moto, &bucket, "releases/prod");
        env.release("app-2.zip")
            .template("app.conf.tpl", "two {{infra.env}}\n")
            .publish_s3(moto, &bucket, "releases/prod");

        env.c2(&["start", "app-1.zip"]).ok();
        assert_eq!(env.read("deploys/app-1/app.conf"), "one prod\n");
        // The zip itself was downloaded into the deploy dir, as in Camus2.
        assert!(env.exists("deploys/app-1/app-1.zip"));
        env.c2(&["start", "app-2.zip"]).ok();
        assert_eq!(env.current().as_deref(), Some("app-2"));
        assert_eq!(env.read("deploys/app-2/app.conf"), "two prod\n");
        env.c2(&["stop", "app-2"]).ok();
        assert_eq!(env.current(), None);
        assert_eq!(
            env.events(),
            [
                "prestart app-1 app-1",
                "start app-1 app-1",
                "prestart app-2 app-2",
                "stop app-1 app-1",
                "start app-2 app-2",
                "stop app-2 app-2"
            ]
        );
    }
}

#[test]
fn a_release_missing_from_s3_is_named_with_the_store() {
    let moto = Moto::shared();
    let bucket = Moto::unique_bucket("missing");
    let mut env = Env::new();
    env.use_s3(moto, &bucket, "rel");
    env.c2(&["start", "ghost.zip"]).fails_with(&format!(
        "Release ghost.zip does not exist in release store at s3://{bucket}/rel"
    ));
    assert!(!env.exists("deploys/ghost"));
}

#[test]
fn list_releases_from_s3_is_most_recent_first() {
    let moto = Moto::shared();
    let bucket = Moto::unique_bucket("list");
    let mut env = Env::new();
    env.use_s3(moto, &bucket, "rel");
    // Data setup, not synchronisation: S3's LastModified has one-second
    // resolution, so the uploads are more than a second apart to give each
    // release its own time.
    for name in ["first.zip", "second.zip", "third.zip"] {
        moto.put(&bucket, &format!("rel/{name}"), b"zip");
        std::thread::sleep(Duration::from_millis(1100));
    }
    moto.put(&bucket, "elsewhere/other.zip", b"zip");
    assert_eq!(
        env.c2(&["list-releases"]).ok().stdout,
        "third.zip\nsecond.zip\nfirst.zip\n"
    );
}

#[test]
fn list_releases_reads_every_page() {
    let moto = Moto::shared();
    let bucket = Moto::unique_bucket("pages");
    let mut env = Env::new();
    env.use_s3(moto, &bucket, "rel");
    for i in 0..1005 {
        moto.put(&bucket, &format!("rel/r{i:04}.zip"), b"");
    }
    let out = env.c2(&["list-releases"]).ok();
    assert_eq!(out.stdout.lines().count(), 1005);
}

#[test]
fn the_config_can_live_in_s3() {
    let moto = Moto::shared();
    let bucket = Moto::unique_bucket("config");
    let mut env = Env::new();
    env.release("a.zip").publish();
    moto.create_bucket(&bucket);
    let text = serde_norway::to_string(env.config()).unwrap();
    moto.put(&bucket, "etc/camus2.yaml", text.as_bytes());
    for (k, v) in moto.client_env() {
        env.env(&k, &v);
    }
    let mut run = Run::new(&["list-releases"])
        .env("CAMUS2_CONFIG", &format!("s3://{bucket}/etc/camus2.yaml"));
    for (k, v) in moto.client_env() {
        run = run.env(&k, &v);
    }
    assert_eq!(run.ok().stdout, "a.zip\n");

    let mut run = Run::new(&["list-releases"])
        .env("CAMUS2_CONFIG", &format!("s3://{bucket}/etc/missing.yaml"));
    for (k, v) in moto.client_env() {
        run = run.env(&k, &v);
    }
    run.fails_with(&format!(
        "config s3://{bucket}/etc/missing.yaml does not exist"
    ));
}

#[test]
fn fetch_context_writes_each_source_atomically_with_mode_0600() {
    let moto = Moto::shared();
    let bucket = Moto::unique_bucket("ctx");
    let mut env = Env::new();
    env.use_s3(moto, &bucket, "rel");
    moto.put(
        &bucket,
        "ctx/db.json",
        br#"{"host": "db.internal", "port": 5432}"#,
    );
    env.context_file("local", r#"{"a": 1}"#);
    let mut sources = env.config()["configSources"].clone();
    sources["db"] = json!({"s3": format!("s3://{bucket}/ctx/db.json")});
    env.set("configSources", sources);

    env.c2(&["fetch-context"]).ok();
    let db: serde_json::Value = serde_json::from_str(&env.read("cache/db.json")).unwrap();
    assert_eq!(db, json!({"host": "db.internal", "port": 5432}));
    assert_eq!(env.read("cache/local.json"), r#"{"a": 1}"#);
    for f in ["cache/db.json", "cache/local.json"] {
        let mode = std::fs::metadata(env.path(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
    // No temporary files are left beside them.
    let names: Vec<String> = std::fs::read_dir(env.path("cache"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");

    // The S3 context is used by templates, with integers as integers.
    env.release("app.zip")
        .template("db.conf.tpl", "host={{db.host}} port={{db.port}}\n")
        .publish_s3(moto, &bucket, "rel");
    env.c2(&["start", "app.zip"]).ok();
    assert_eq!(
        env.read("deploys/app/db.conf"),
        "host=db.internal port=5432\n"
    );
}

#[test]
fn fetch_context_names_a_missing_s3_source() {
    let moto = Moto::shared();
    let bucket = Moto::unique_bucket("ctxmiss");
    let mut env = Env::new();
    env.use_s3(moto, &bucket, "rel");
    env.set(
        "configSources",
        json!({"db": {"s3": format!("s3://{bucket}/ctx/nope.json")}}),
    );
    env.c2(&["fetch-context"])
        .fails_with(&format!("s3://{bucket}/ctx/nope.json does not exist"));
}

#[test]
fn fetch_context_retry_waits_for_a_source_created_later() {
    let moto = Moto::shared();
    let bucket = Moto::unique_bucket("retry");
    let mut env = Env::new();
    env.use_s3(moto, &bucket, "rel");
    env.set(
        "configSources",
        json!({"late": {"s3": format!("s3://{bucket}/ctx/late.json")}}),
    );
    let run = env.c2(&["fetch-context", "--retry"]);
    let started = Instant::now();
    let child = std::thread::spawn(move || run.output());
    // The scenario: the source appears while c2 is already waiting for it.
    let waiting = format!("Waiting for s3://{bucket}/ctx/late.json");
    wait_until(Duration::from_secs(30), "c2 to wait for the source", || {
        std::fs::read_to_string(env.path("log/c2.log")).is_ok_and(|log| log.contains(&waiting))
    });
    moto.put(&bucket, "ctx/late.json", br#"{"ready": true}"#);
    let out = child.join().unwrap();
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.log_messages()
            .contains(&format!("Waiting for s3://{bucket}/ctx/late.json")),
        "{out}"
    );
    assert_eq!(env.read("cache/late.json"), r#"{"ready": true}"#);
    // It checks every 10 s: the source appeared during the first wait.
    assert!(started.elapsed() < Duration::from_secs(25));
}

#[test]
fn unpack_and_expand_template_from_s3() {
    let moto = Moto::shared();
    let bucket = Moto::unique_bucket("unpack");
    let mut env = Env::new();
    env.use_s3(moto, &bucket, "");
    env.context_file("infra", r#"{"name": "c2 & co"}"#);
    env.release("tool.zip")
        .template("a/b.txt.tpl", "{{infra.name}}|{{{infra.name}}}\n")
        .publish_s3(moto, &bucket, "");
    env.c2(&["fetch-context"]).ok();
    let todir = env.path("out");
    env.c2(&["unpack", "tool.zip", todir.to_str().unwrap()])
        .ok();
    assert_eq!(env.read("out/a/b.txt"), "c2 &amp; co|c2 & co\n");
    assert!(env.exists("out/tool.zip") && env.exists("out/release.json"));

    let tpl = env.path("single.tpl");
    common::write_file(&tpl, "hello {{infra.name}}");
    let dest = env.path("single.out");
    env.c2(&[
        "expand-template",
        tpl.to_str().unwrap(),
        dest.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(env.read("single.out"), "hello c2 &amp; co");
}

/// GETs of `bucket/key` in moto's request log.
fn gets(moto: &Moto, bucket: &str, key: &str) -> usize {
    let request = format!("GET /{bucket}/{key}?");
    std::fs::read_to_string(moto.log())
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(&request))
        .count()
}

#[test]
fn a_large_release_downloads_in_parts_byte_for_byte() {
    let moto = Moto::shared();
    let bucket = Moto::unique_bucket("parts");
    let mut env = Env::new();
    env.use_s3(moto, &bucket, "rel");
    // 20 MB: three parts of 8 MiB, the last one short.
    let big = noise(20_000_000, 0x9e37_79b9_7f4a_7c15);
    let release = env
        .release("big.zip")
        .file_bytes("data/big.bin", big.clone());
    let zip = release.zip_bytes();
    release.publish_s3(moto, &bucket, "rel");
    let out = env.path("out");
    env.c2(&["unpack", "big.zip", out.to_str().unwrap()]).ok();
    assert!(std::fs::read(out.join("big.zip")).unwrap() == zip);
    assert!(std::fs::read(out.join("data/big.bin")).unwrap() == big);
    assert_eq!(
        gets(moto, &bucket, "rel/big.zip"),
        zip.len().div_ceil(8 << 20)
    );

    // An empty object has no byte range to ask for: it arrives empty, and
    // is then no zip.
    moto.put(&bucket, "rel/empty.zip", b"");
    let out = env.path("out2");
    env.c2(&["unpack", "empty.zip", out.to_str().unwrap()])
        .fails_with("empty.zip: not a valid zip archive");
    assert_eq!(std::fs::metadata(out.join("empty.zip")).unwrap().len(), 0);
}

#[test]
fn a_release_replaced_during_its_download_fails_and_leaves_nothing() {
    let moto = Moto::shared();
    let bucket = Moto::unique_bucket("replaced");
    let mut env = Env::new();
    env.use_s3(moto, &bucket, "rel");
    env.release("app.zip")
        .file_bytes("a.bin", noise(20_000_000, 1))
        .publish_s3(moto, &bucket, "rel");
    // The first part's answer stalls after 64 KiB; the other parts wait
    // at the gate while the release is published again. The new zip is
    // made first: the SDK gives up on a part stalled for 5 s.
    let replacement = env
        .release("app.zip")
        .file_bytes("a.bin", noise(20_000_000, 2))
        .zip_bytes();
    let gate = common::gate::Gate::start(moto.port, 64 * 1024);
    env.env("S3_ENDPOINT", &format!("http://127.0.0.1:{}", gate.port));
    let out = env.path("out");
    let run = env
        .c2(&["unpack", "app.zip", out.to_str().unwrap()])
        .cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(
        Duration::from_secs(30),
        "the other parts to be asked for",
        || gate.connections() >= 2,
    );
    moto.put(&bucket, "rel/app.zip", &replacement);
    gate.open();
    let out = run.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.lines().last(),
        Some(
            format!(
                "c2: error: s3://{bucket}/rel/app.zip changed while it was downloaded: run the command again"
            )
            .as_str()
        ),
        "{stderr}"
    );
    let left: Vec<_> = std::fs::read_dir(env.path("out")).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn an_unreachable_s3_server_is_a_clear_one_line_error() {
    let moto = Moto::shared();
    let bucket = Moto::unique_bucket("down");
    let mut env = Env::new();
    env.use_s3(moto, &bucket, "rel");
    let closed = format!("http://127.0.0.1:{}", common::moto::free_port());
    env.env("S3_ENDPOINT", &closed);
    let out = env
        .c2(&["start", "app.zip"])
        .fails_with(&format!("cannot check s3://{bucket}/rel/app.zip"));
    assert!(out.error_line().contains("Connection refused"), "{out}");
    assert!(
        !out.error_line().contains("DispatchFailure"),
        "Debug dump in {out}"
    );
}

/// The AWS SDK's own events: only with `--verbose` or `RUST_LOG`, only on
/// stderr, never mixed into c2's log (stdout and the log file).
#[test]
fn verbose_shows_the_aws_sdk_events_on_stderr_only() {
    let moto = Moto::shared();
    let bucket = Moto::unique_bucket("verbose");
    let mut env = Env::new();
    env.use_s3(moto, &bucket, "rel");
    env.release("a.zip").publish_s3(moto, &bucket, "rel");
    let run = |args: &[&str], rust_log: Option<&str>| {
        let mut run = env.c2(args);
        run.cmd.env_remove("RUST_LOG");
        if let Some(filter) = rust_log {
            run = run.env("RUST_LOG", filter);
        }
        run.ok()
    };
    let sdk_lines = |stderr: &str, target: &str| {
        stderr
            .lines()
            .filter(|l| l.contains(&format!(" {target}::")))
            .count()
    };

    let out = run(&["list-releases"], None);
    assert_eq!((out.stdout.as_str(), out.stderr.as_str()), ("a.zip\n", ""));

    let out = run(&["list-releases", "--verbose"], None);
    assert_eq!(out.stdout, "a.zip\n");
    assert!(sdk_lines(&out.stderr, "aws_smithy_runtime") > 0, "{out}");

    // RUST_LOG chooses what is shown.
    let out = run(&["list-releases"], Some("aws_config=debug"));
    assert_eq!(out.stdout, "a.zip\n");
    assert!(sdk_lines(&out.stderr, "aws_config") > 0, "{out}");
    assert_eq!(sdk_lines(&out.stderr, "aws_smithy_runtime"), 0, "{out}");

    // A mutating command: its log lines go to stdout and the log file alone.
    let out = run(&["--verbose", "start", "a.zip"], None);
    assert!(sdk_lines(&out.stderr, "aws_smithy_runtime") > 0, "{out}");
    let fetching = format!(".Fetching a.zip from s3://{bucket}/rel");
    assert!(out.log_messages().contains(&fetching), "{out}");
    assert_eq!(env.read("log/c2.log"), out.stdout);
    assert!(!out.stdout.contains("aws_"), "{out}");
    for line in out.stdout.lines() {
        assert!(!out.stderr.contains(line), "{line} also on stderr:\n{out}");
    }
}
