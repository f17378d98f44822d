//! `publish`: a release directory or zip is checked, zipped
//! deterministically, and uploaded to the release store (a directory, or S3
//! through moto) without ever overwriting one unless asked; hostile input
//! is refused before anything is uploaded.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::common::{write_file, Env, Moto};
use serde_json::json;

/// Where the releases go: the Env's store directory, or a moto bucket.
#[derive(Clone, Copy)]
pub(crate) enum Store {
    Dir,
    S3(&'static Moto),
}

pub(crate) fn stores() -> [Store; 2] {
    [Store::Dir, Store::S3(Moto::shared())]
}

/// An Env whose release store is `store` (S3: `s3://<bucket>/releases`).
pub(crate) fn env_on(store: Store) -> Env {
    let mut env = Env::new();
    if let Store::S3(moto) = store {
        env.use_s3(moto, &Moto::unique_bucket("publish"), "releases");
    }
    env
}

/// The bytes of release `name` in the store, if it is there.
pub(crate) fn stored(env: &Env, store: Store, name: &str) -> Option<Vec<u8>> {
    match store {
        Store::Dir => std::fs::read(env.path("store").join(name)).ok(),
        Store::S3(moto) => {
            let (bucket, prefix) = bucket_of(env);
            moto.get(&bucket, &format!("{prefix}/{name}"))
        }
    }
}

/// Everything in the store, hidden places included: file paths under the
/// store directory, or keys under the prefix.
pub(crate) fn everything_in(env: &Env, store: Store) -> Vec<String> {
    match store {
        Store::Dir => {
            let mut found = Vec::new();
            walk(&env.path("store"), "", &mut found);
            found.sort();
            found
        }
        Store::S3(moto) => {
            let (bucket, prefix) = bucket_of(env);
            moto.keys(&bucket, &format!("{prefix}/"))
                .into_iter()
                .map(|k| k[prefix.len() + 1..].to_string())
                .collect()
        }
    }
}

fn walk(dir: &Path, rel: &str, found: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = format!("{rel}{}", e.file_name().to_string_lossy());
        if e.file_type().unwrap().is_dir() {
            walk(&e.path(), &format!("{name}/"), found);
        } else {
            found.push(name);
        }
    }
}

fn bucket_of(env: &Env) -> (String, String) {
    let url = env.config()["releases"]["s3"].as_str().unwrap();
    let (bucket, prefix) = url.strip_prefix("s3://").unwrap().split_once('/').unwrap();
    (bucket.to_string(), prefix.to_string())
}

/// A release directory `<root>/src/<dir>`: release.json listing
/// `templates`, plus `files`.
pub(crate) fn release_dir(
    env: &Env,
    dir: &str,
    templates: &[&str],
    files: &[(&str, &str)],
) -> PathBuf {
    let root = env.path(&format!("src/{dir}"));
    let release_json = json!({
        "templates": templates,
        "prestartCommand": "",
        "startCommand": "",
        "stopCommand": "",
    });
    write_file(&root.join("release.json"), &release_json.to_string());
    for (path, content) in files {
        write_file(&root.join(path), content);
    }
    root
}

/// A directory release serving HTTP on its port, as `Env::http_release`.
fn http_release_dir(env: &Env, dir: &str) -> PathBuf {
    let root = release_dir(
        env,
        dir,
        &["port.tpl"],
        &[
            ("serve.py", include_str!("../support/serve.py")),
            ("port.tpl", "{{ports.http}}"),
        ],
    );
    let release_json = json!({
        "templates": ["port.tpl"],
        "prestartCommand": "",
        "startCommand": format!("python3 serve.py $(cat port) {dir}"),
        "stopCommand": "kill $(cat server.pid)",
    });
    write_file(&root.join("release.json"), &release_json.to_string());
    root
}

fn arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_published_directory_starts_and_serves() {
    for store in stores() {
        let mut env = env_on(store);
        env.proxy(&[("main", "main.example")]);
        let dir = http_release_dir(&env, "shop-1.5");

        let out = env.c2(&["publish", arg(&dir)]).ok();
        assert_eq!(out.stdout, "shop-1.5.zip\n");
        assert_eq!(env.c2(&["list-releases"]).ok().stdout, "shop-1.5.zip\n");

        env.c2(&["start", "shop-1.5.zip"]).ok();
        env.c2(&["connect", "main", "shop-1.5"]).ok();
        assert_eq!(env.get("main.example", "/").body, "shop-1.5 /");
        env.c2(&["disconnect", "main"]).ok();
        env.c2(&["stop", "shop-1.5"]).ok();
    }
}

#[test]
fn a_published_zip_is_uploaded_as_it_is_and_starts_in_noproxy_mode() {
    for store in stores() {
        let env = env_on(store);
        let zip = env.path("build/app-2.zip");
        let bytes = env
            .release("app-2.zip")
            .template("app.conf.tpl", "two\n")
            .zip_bytes();
        write_file(&zip, "");
        std::fs::write(&zip, &bytes).unwrap();

        assert_eq!(env.c2(&["publish", arg(&zip)]).ok().stdout, "app-2.zip\n");
        assert_eq!(stored(&env, store, "app-2.zip"), Some(bytes.clone()));
        // --name stores it under another name.
        let out = env.c2(&["publish", arg(&zip), "--name", "app-2b.zip"]).ok();
        assert_eq!(out.stdout, "app-2b.zip\n");
        assert_eq!(stored(&env, store, "app-2b.zip"), Some(bytes));

        env.c2(&["start", "app-2b.zip"]).ok();
        assert_eq!(env.read("deploys/app-2b/app.conf"), "two\n");
        assert_eq!(env.current().as_deref(), Some("app-2b"));
    }
}

#[test]
fn the_same_contents_give_the_same_zip_whatever_the_timestamps() {
    let env = Env::new();
    let files = [
        ("bin/run.sh", "#!/bin/sh\necho run\n"),
        ("conf/app.conf.tpl", "port {{ports.http}}\n"),
        ("data/empty/.keep", ""),
        ("README", "hello\n"),
    ];
    let a = release_dir(&env, "a/app", &["conf/app.conf.tpl"], &files);
    // The same files created in the opposite order, in another place.
    let mut reversed = files;
    reversed.reverse();
    let b = release_dir(&env, "b/app", &["conf/app.conf.tpl"], &reversed);
    for dir in [&a, &b] {
        std::fs::set_permissions(dir.join("bin/run.sh"), PermissionsExt::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("bin/run.sh", dir.join("run")).unwrap();
    }
    // Different modification times for every file of b.
    let then = SystemTime::now() - Duration::from_secs(86_400 * 400);
    for (path, _) in &files {
        std::fs::File::options()
            .write(true)
            .open(b.join(path))
            .unwrap()
            .set_modified(then)
            .unwrap();
    }

    env.c2(&["publish", arg(&a), "--name", "a.zip"]).ok();
    env.c2(&["publish", arg(&b), "--name", "b.zip"]).ok();
    let za = std::fs::read(env.path("store/a.zip")).unwrap();
    let zb = std::fs::read(env.path("store/b.zip")).unwrap();
    assert!(za == zb, "the two zips differ");

    // Sorted entries, modes kept, the symlink stored as a symlink, and the
    // zip format's earliest timestamp on every entry.
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(za)).unwrap();
    let entries: Vec<(String, u32)> = (0..zip.len())
        .map(|i| {
            let e = zip.by_index(i).unwrap();
            assert_eq!(e.last_modified(), Some(zip::DateTime::default()));
            (e.name().to_string(), e.unix_mode().unwrap())
        })
        .collect();
    assert_eq!(
        entries,
        [
            ("README".to_string(), 0o100644),
            ("bin/".into(), 0o040755),
            ("bin/run.sh".into(), 0o100755),
            ("conf/".into(), 0o040755),
            ("conf/app.conf.tpl".into(), 0o100644),
            ("data/".into(), 0o040755),
            ("data/empty/".into(), 0o040755),
            ("data/empty/.keep".into(), 0o100644),
            ("release.json".into(), 0o100644),
            ("run".into(), 0o120777),
        ]
    );
}

#[test]
fn hostile_releases_are_refused_naming_the_problem_and_nothing_is_uploaded() {
    for store in stores() {
        let env = env_on(store);
        let shown = |p: &Path| p.display().to_string();

        let escape = release_dir(&env, "escape", &[], &[]);
        std::os::unix::fs::symlink("/etc/passwd", escape.join("passwd")).unwrap();
        env.c2(&["publish", arg(&escape)]).fails_with(&format!(
            "cannot publish {}: symlink 'passwd' -> '/etc/passwd' points outside the release",
            shown(&escape)
        ));

        let climb = release_dir(&env, "climb", &[], &[("sub/x", "x")]);
        std::os::unix::fs::symlink("../../secret", climb.join("sub/up")).unwrap();
        env.c2(&["publish", arg(&climb)]).fails_with(&format!(
            "cannot publish {}: symlink 'sub/up' -> '../../secret' points outside the release",
            shown(&climb)
        ));

        let unclosed = release_dir(
            &env,
            "unclosed",
            &["a.tpl"],
            &[("a.tpl", "x\n{{#items}}\n")],
        );
        env.c2(&["publish", arg(&unclosed)]).fails_with(&format!(
            "cannot publish {}: template 'a.tpl': unclosed section 'items' (opened on line 2)",
            shown(&unclosed)
        ));

        let missing = release_dir(&env, "missing", &["conf/app.tpl"], &[]);
        env.c2(&["publish", arg(&missing)]).fails_with(&format!(
            "cannot publish {}: release.json lists template 'conf/app.tpl', which is not in the release",
            shown(&missing)
        ));

        let invalid = release_dir(&env, "invalid", &[], &[]);
        write_file(&invalid.join("release.json"), "{\"templates\": [");
        env.c2(&["publish", arg(&invalid)]).fails_with(&format!(
            "cannot publish {}: release.json: invalid JSON",
            shown(&invalid)
        ));

        let incomplete = release_dir(&env, "incomplete", &[], &[]);
        write_file(&incomplete.join("release.json"), r#"{"templates": []}"#);
        env.c2(&["publish", arg(&incomplete)])
            .fails_with("release.json: missing field `prestartCommand`");

        let slip = env.path("build/slip.zip");
        write_file(&slip, "");
        std::fs::write(
            &slip,
            env.release("slip.zip").file("../evil", "x").zip_bytes(),
        )
        .unwrap();
        env.c2(&["publish", arg(&slip)]).fails_with(&format!(
            "cannot publish {}: release {}: entry '../evil' would be written outside",
            shown(&slip),
            shown(&slip)
        ));
        assert!(!env.exists("build/evil") && !env.exists("evil"));

        assert_eq!(env.c2(&["list-releases"]).ok().stdout, "");
        assert_eq!(everything_in(&env, store), Vec::<String>::new());
    }
}

#[test]
fn a_second_publish_is_refused_and_force_replaces() {
    for store in stores() {
        let env = env_on(store);
        let dir = release_dir(&env, "app", &[], &[("version", "1")]);
        env.c2(&["publish", arg(&dir)]).ok();
        let first = stored(&env, store, "app.zip").unwrap();

        write_file(&dir.join("version"), "2");
        let out = env.c2(&["publish", arg(&dir)]).fails_with("");
        let where_ = match store {
            Store::Dir => env.path("store").display().to_string(),
            Store::S3(_) => env.config()["releases"]["s3"].as_str().unwrap().to_string(),
        };
        assert_eq!(
            out.error_line(),
            format!("c2: error: release app.zip already exists in release store at {where_}: publish under another --name, or with --force to replace it")
        );
        assert_eq!(out.stdout, "");
        assert_eq!(stored(&env, store, "app.zip"), Some(first.clone()));

        assert_eq!(
            env.c2(&["publish", arg(&dir), "--force"]).ok().stdout,
            "app.zip\n"
        );
        let second = stored(&env, store, "app.zip").unwrap();
        assert_ne!(second, first);
        assert_eq!(env.c2(&["list-releases"]).ok().stdout, "app.zip\n");
    }
}

/// Publishes racing for one name: the store's own no-overwrite write
/// (S3 `If-None-Match: *`, a link on a directory) lets exactly one in,
/// whoever passed the early check.
#[test]
fn of_racing_publishes_of_one_name_exactly_one_wins() {
    for store in stores() {
        let env = env_on(store);
        let dirs: Vec<PathBuf> = (0..6)
            .map(|i| release_dir(&env, &format!("racer{i}"), &[], &[("who", &i.to_string())]))
            .collect();
        let runs: Vec<_> = dirs
            .iter()
            .map(|d| {
                env.c2(&["publish", arg(d), "--name", "app.zip"])
                    .cmd
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let outcomes: Vec<_> = runs
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect();
        let winners: Vec<usize> = (0..outcomes.len())
            .filter(|&i| outcomes[i].status.success())
            .collect();
        assert_eq!(
            winners.len(),
            1,
            "not exactly one publish won: {outcomes:?}"
        );
        for (i, o) in outcomes.iter().enumerate() {
            if i != winners[0] {
                let err = String::from_utf8_lossy(&o.stderr);
                assert!(err.contains("release app.zip already exists"), "{err}");
            }
        }
        // The store holds the winner's release.
        let zip = stored(&env, store, "app.zip").unwrap();
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
        let mut who = String::new();
        std::io::Read::read_to_string(&mut zip.by_name("who").unwrap(), &mut who).unwrap();
        assert_eq!(who, winners[0].to_string());
    }
}

#[test]
fn a_release_name_must_be_a_file_name() {
    let env = Env::new();
    let dir = release_dir(&env, "app", &[], &[]);
    env.c2(&["publish", arg(&dir), "--name", "two words.zip"])
        .fails_with("invalid release name \"two words.zip\"");
    env.c2(&["publish", arg(&env.path("nowhere"))])
        .fails_with(&format!("cannot publish {}", env.path("nowhere").display()));
    assert_eq!(everything_in(&env, Store::Dir), Vec::<String>::new());
}

/// `.c2-…` names are c2's own in a store (the upload and set-aside
/// places): no release can take one, so prune keeps working.
#[test]
fn a_release_cannot_take_a_name_c2_keeps_for_itself() {
    for store in stores() {
        let env = env_on(store);
        let dir = release_dir(&env, "app", &[], &[]);
        for name in [".c2-pruned", ".c2-upload", ".c2-tag"] {
            let out = env
                .c2(&["publish", arg(&dir), "--name", name])
                .fails_with("");
            assert_eq!(
                out.error_line(),
                format!("c2: error: invalid release name \"{name}\": names starting with .c2- are c2's own; choose another name")
            );
        }
        assert_eq!(everything_in(&env, store), Vec::<String>::new());
        env.c2(&["publish", arg(&dir), "--name", "app-1.zip"]).ok();
        env.c2(&["publish", arg(&dir), "--name", "app-2.zip"]).ok();
        let out = env.c2(&["prune", "--keep", "0"]).ok();
        assert_eq!(out.stdout.lines().count(), 2, "{out}");
        assert_eq!(everything_in(&env, store), Vec::<String>::new());
    }
}

/// A release holding c2's own files (a deploy directory copied into a
/// build) would share the process tag of the deploy it was copied from,
/// and a failed stop of one would kill the other's processes: it is
/// refused by publish and by start, and the deploy serving stays as it is.
#[test]
fn a_release_holding_c2s_own_files_is_refused_and_the_live_deploy_keeps_serving() {
    let mut env = Env::new();
    env.proxy(&[("main", "main.example")]);
    env.http_release("blue.zip").publish();
    env.c2(&["start", "blue.zip"]).ok();
    env.c2(&["connect", "main", "blue"]).ok();
    let blue_tag = env.read("deploys/blue/.c2-tag");

    for own in [".c2-tag", ".c2-deploy", ".c2-release"] {
        let dir = http_release_dir(&env, "green");
        write_file(&dir.join(own), &blue_tag);
        env.c2(&["publish", arg(&dir)])
            .fails_with(&format!("entry '{own}' is named like c2's own files"));
        assert_eq!(everything_in(&env, Store::Dir), ["blue.zip"]);
        std::fs::remove_file(dir.join(own)).unwrap();
    }

    // A zip made elsewhere and copied into the store.
    env.http_release("green.zip")
        .file(".c2-tag", &blue_tag)
        .publish();
    env.c2(&["start", "green.zip"])
        .fails_with("entry '.c2-tag' is named like c2's own files");
    assert!(!env.exists("deploys/green"));
    assert_eq!(env.state()["deploys"]["green"], json!(null));
    let answer = env.get("main.example", "/");
    assert_eq!((answer.status, answer.body.as_str()), (200, "blue /"));
}
