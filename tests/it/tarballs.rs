//! Tarball releases (`.tar.gz`, `.tgz`, `.tar`): listed, published,
//! started and pruned as zips are, in every mode, and unpacked with exactly
//! the zip's safety. Hostile tarballs are written header by header, as no
//! well-behaved tool would write them.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::common::{write_file, Env};
use crate::publish::{everything_in, Store};
use crate::remote::{self, Backend};

const SUFFIXES: [&str; 3] = [".tar.gz", ".tgz", ".tar"];

#[test]
fn a_tarball_of_each_kind_starts_without_a_proxy_behind_nginx_and_on_a_slave() {
    for suffix in SUFFIXES {
        // Noproxy: the default label drops the whole suffix.
        let env = Env::new();
        let name = format!("app-1.0{suffix}");
        env.release(&name)
            .template("conf.tpl", "answer={{answer}}")
            .executable("bin/run.sh", "#!/bin/sh\necho run\n")
            .set("startCommand", json!("./bin/run.sh > started"))
            .publish();
        env.c2(&["list-releases"]).ok();
        env.c2(&["start", &name]).ok();
        assert_eq!(env.current().as_deref(), Some("app-1.0"), "{suffix}");
        assert_eq!(env.read("deploys/app-1.0/started"), "run\n");
        assert_eq!(env.read("deploys/app-1.0/conf"), "answer=");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(env.path("deploys/app-1.0/bin/run.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755, "modes kept");

        // Local proxy: served through nginx.
        let mut env = Env::new();
        env.proxy(&[("main", "main.example")]);
        let name = format!("web{suffix}");
        env.http_release(&name).publish();
        assert_eq!(env.c2(&["list-releases"]).ok().stdout, format!("{name}\n"));
        env.c2(&["start", &name]).ok();
        env.c2(&["connect", "main", "web"]).ok();
        assert_eq!(env.get("main.example", "/").body, "web /");
        env.c2(&["disconnect", "main"]).ok();
        env.c2(&["stop", "web"]).ok();
        assert_eq!(
            env.c2(&["prune", "--keep", "0"]).ok().stdout,
            format!("deleted {name}\n")
        );

        // A slave of a master in S3.
        let backend = Backend::S3(crate::common::Moto::shared());
        let master = remote::master_on(&backend);
        remote::publish_http(&master, &backend, &name);
        master.c2(&["start", &name]).ok();
        master.c2(&["connect", "main", "web"]).ok();
        let slave = master.slave("web1");
        slave.c2(&["slave-update"]).ok();
        assert_eq!(slave.get("main.example", "/").body, "web /", "{suffix}");
    }
}

#[test]
fn publish_uploads_a_tarball_byte_for_byte_and_refuses_a_directory_named_as_one() {
    for store in crate::publish::stores() {
        let env = crate::publish::env_on(store);
        let release = env.release("shop-2.0.tar.gz").file("index.html", "hi");
        let bytes = release.archive_bytes();
        let file = env.path("build/shop-2.0.tar.gz");
        write_file(&file, "");
        std::fs::write(&file, &bytes).unwrap();
        let out = env.c2(&["publish", file.to_str().unwrap()]).ok();
        assert_eq!(out.stdout, "shop-2.0.tar.gz\n");
        assert_eq!(
            crate::publish::stored(&env, store, "shop-2.0.tar.gz"),
            Some(bytes)
        );

        let dir = crate::publish::release_dir(&env, "site", &[], &[]);
        env.c2(&["publish", dir.to_str().unwrap(), "--name", "site.tgz"])
            .fails_with("a directory is published as a zip: give it a name that does not end in .tar, .tar.gz or .tgz");
        // A tarball under a zip's name is checked as a zip, and refused.
        env.c2(&["publish", file.to_str().unwrap(), "--name", "shop.zip"])
            .fails_with("not a valid zip archive");
    }
}

/// One raw entry of a hostile tarball.
enum Raw<'a> {
    File(&'a str, &'a [u8]),
    Symlink(&'a str, &'a str),
    HardLink(&'a str, &'a str),
    Special(&'a str, tar::EntryType),
}

/// A tarball of `entries` after a valid release.json, names written into
/// the headers byte for byte (the crate's builder refuses the hostile ones).
fn hostile(entries: &[Raw]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut push = |name: &str, kind: tar::EntryType, size: u64, link: &str, data: &[u8]| {
        let mut header = tar::Header::new_old();
        let old = header.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        header.set_size(size);
        header.set_mode(0o644);
        header.set_entry_type(kind);
        header.set_cksum();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    };
    let rj = json!({"templates": [], "prestartCommand": "", "startCommand": "", "stopCommand": ""})
        .to_string();
    push(
        "release.json",
        tar::EntryType::Regular,
        rj.len() as u64,
        "",
        rj.as_bytes(),
    );
    for e in entries {
        match e {
            Raw::File(n, d) => push(n, tar::EntryType::Regular, d.len() as u64, "", d),
            Raw::Symlink(n, t) => push(n, tar::EntryType::Symlink, 0, t, &[]),
            Raw::HardLink(n, t) => push(n, tar::EntryType::Link, 0, t, &[]),
            Raw::Special(n, k) => push(n, *k, 0, "", &[]),
        }
    }
    out.extend_from_slice(&[0; 1024]);
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// Every path under `dir`.
fn all_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            found.push(e.path());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                found.extend(all_under(&e.path()));
            }
        }
    }
    found
}

#[test]
fn hostile_tarballs_are_refused_and_leave_nothing_behind() {
    let outside = format!("/tmp/c2-escape-{}", std::process::id());
    let zeros = vec![0u8; 10_000_000];
    let cases: Vec<(&str, Vec<Raw>, String)> = vec![
        (
            "dotdot",
            vec![Raw::File("../../escaped", b"x")],
            "would be written outside".into(),
        ),
        (
            "absolute",
            vec![Raw::File(&outside, b"x")],
            "would be written outside".into(),
        ),
        (
            "symlink out",
            vec![
                Raw::Symlink("out", "../../.."),
                Raw::File("out/escaped", b"x"),
            ],
            "would point outside".into(),
        ),
        (
            "absolute symlink",
            vec![Raw::Symlink("etc", "/etc")],
            "would point outside".into(),
        ),
        (
            "hard link out",
            vec![Raw::HardLink("passwd", "../../../../etc/passwd")],
            "would link to something outside".into(),
        ),
        (
            "hard link absolute",
            vec![Raw::HardLink("passwd", "/etc/passwd")],
            "would link to something outside".into(),
        ),
        (
            "hard link to nothing held",
            vec![Raw::HardLink("a", "b")],
            "hard link entry 'a' names no file the release holds".into(),
        ),
        (
            "fifo",
            vec![Raw::Special("pipe", tar::EntryType::Fifo)],
            "entry 'pipe' is a FIFO, which a release cannot hold".into(),
        ),
        (
            "device",
            vec![Raw::Special("sda", tar::EntryType::Block)],
            "entry 'sda' is a block device, which a release cannot hold".into(),
        ),
        (
            "bomb",
            vec![Raw::File("big", &[7u8; 3000])],
            "unpacks to more than 2048 bytes (limits.maxUnpackedBytes)".into(),
        ),
        (
            "ten megabytes of zeros, a few kilobytes gzipped",
            vec![Raw::File("zeros", &zeros)],
            "unpacks to more than 2048 bytes".into(),
        ),
    ];
    for (case, entries, why) in cases {
        for suffix in [".tar", ".tar.gz"] {
            let mut env = Env::new();
            env.set("limits", json!({"maxUnpackedBytes": 2048}));
            let tar = hostile(&entries);
            let bytes = if suffix == ".tar" { tar } else { gzip(&tar) };
            let file = env.path(&format!("build/evil{suffix}"));
            write_file(&file, "");
            std::fs::write(&file, &bytes).unwrap();

            let out = env.c2(&["publish", file.to_str().unwrap()]).output();
            assert!(out.error_line().contains(&why), "{case} {suffix}: {out}");
            assert_eq!(
                everything_in(&env, Store::Dir),
                Vec::<String>::new(),
                "{case}"
            );

            std::fs::write(env.path(&format!("store/evil{suffix}")), &bytes).unwrap();
            let out = env.c2(&["start", &format!("evil{suffix}")]).output();
            assert!(out.error_line().contains(&why), "{case} {suffix}: {out}");
            assert!(!env.exists("deploys/evil"), "{case}: the deploy was left");
            assert_eq!(env.current(), None);
            let stray: Vec<PathBuf> = all_under(env.root.path())
                .into_iter()
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n == "escaped" || n == "passwd" || n == "pipe")
                })
                .collect();
            assert!(stray.is_empty(), "{case}: {stray:?}");
            assert!(!Path::new(&outside).exists(), "{case}");
        }
    }
}

#[test]
fn links_that_stay_inside_a_tarball_are_kept() {
    let env = Env::new();
    let mut tar = tar::Builder::new(Vec::new());
    let rj = json!({"templates": [], "prestartCommand": "", "startCommand": "", "stopCommand": ""})
        .to_string();
    for (name, data) in [("release.json", rj.as_bytes()), ("lib/real.txt", b"real")] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        tar.append_data(&mut header, name, data).unwrap();
    }
    let mut link = tar::Header::new_gnu();
    link.set_entry_type(tar::EntryType::Symlink);
    link.set_size(0);
    tar.append_link(&mut link, "current.txt", "lib/real.txt")
        .unwrap();
    let mut hard = tar::Header::new_gnu();
    hard.set_entry_type(tar::EntryType::Link);
    hard.set_size(0);
    tar.append_link(&mut hard, "copy.txt", "lib/real.txt")
        .unwrap();
    std::fs::write(env.path("store/links.tar"), tar.into_inner().unwrap()).unwrap();
    env.c2(&["start", "links.tar"]).ok();
    assert_eq!(env.read("deploys/links/current.txt"), "real");
    assert_eq!(env.read("deploys/links/copy.txt"), "real");
    assert!(
        std::fs::symlink_metadata(env.path("deploys/links/current.txt"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
}
