//! The Debian package (`sh scripts/package`), made from this build's c2,
//! listed, installed on this machine with dpkg, used as an operator would
//! (version, man pages, completions in bash, zsh and fish), and removed,
//! leaving an operator's config and state where they were. It needs root
//! and dpkg; without them it says so and passes without running.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common;

/// Output of `program args`, asserting it succeeded.
fn run(program: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Removes the package and what the test left under /opt, however the
/// test ends.
struct Installed(Vec<PathBuf>);

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["-r", "c2"]).output();
        for path in &self.0 {
            let _ = std::fs::remove_dir_all(path).or_else(|_| std::fs::remove_file(path));
        }
    }
}

#[test]
fn the_debian_package_installs_c2_with_units_man_pages_and_completions_and_leaves_state_behind() {
    let root = nix::unistd::getuid().is_root();
    let dpkg = Command::new("dpkg").arg("--version").output().is_ok();
    if !root || !dpkg {
        eprintln!("package test skipped: dpkg -i needs root and dpkg (root: {root}, dpkg: {dpkg})");
        return;
    }
    if Path::new("/var/lib/dpkg/info/c2.list").exists() {
        eprintln!("package test skipped: a c2 package is installed on this machine already");
        return;
    }
    let _heavy = common::heavy();
    let c2 = env!("CARGO_BIN_EXE_c2");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/package");
    let out = run("sh", &[script], &[("C2_BIN", c2)]);
    let deb = out.lines().last().unwrap().to_string();
    assert!(deb.ends_with(".deb") && Path::new(&deb).is_file(), "{out}");

    // What it holds.
    let listing = run("dpkg-deb", &["-c", &deb], &[]);
    let paths: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .map(|p| p.trim_start_matches('.'))
        .collect();
    assert!(listing.contains("./usr/bin/c2 -> /opt/bin/c2"), "{listing}");
    let pages = run(
        c2,
        &[
            "man-pages",
            &tempfile::tempdir().unwrap().path().display().to_string(),
        ],
        &[],
    );
    let mut expected: Vec<String> = [
        "/opt/bin/c2",
        "/usr/bin/c2",
        "/lib/systemd/system/c2-slave.service",
        "/lib/systemd/system/c2-heal.service",
        "/lib/systemd/system/c2-api.service",
        "/usr/share/bash-completion/completions/c2",
        "/usr/share/zsh/vendor-completions/_c2",
        "/usr/share/fish/vendor_completions.d/c2.fish",
        "/usr/share/doc/c2/copyright",
        "/usr/share/doc/c2/examples/configs/fleet-etcd.yaml",
        "/usr/share/doc/c2/examples/fleet/c2-slave.service",
        "/usr/share/doc/c2/examples/fleet/user-data.sh",
    ]
    .iter()
    .map(|p| p.to_string())
    .collect();
    for page in pages.lines() {
        let name = Path::new(page).file_name().unwrap().to_string_lossy();
        expected.push(format!("/usr/share/man/man1/{name}.gz"));
    }
    for want in &expected {
        assert!(
            paths.contains(&want.as_str()),
            "{want} is not in the package:\n{listing}"
        );
    }
    assert!(
        expected.iter().any(|p| p.ends_with("/c2-start.1.gz")),
        "{pages}"
    );
    assert!(
        !paths
            .iter()
            .any(|p| p.starts_with("/opt/etc/") || p.starts_with("/opt/deploys/")),
        "{listing}"
    );

    // An operator's config and state, there before the package.
    let tag = format!("c2-package-test-{}", std::process::id());
    let config = PathBuf::from(format!("/opt/etc/{tag}.json"));
    let state = PathBuf::from(format!("/opt/deploys/{tag}/state.json"));
    let guard = Installed(vec![config.clone(), state.parent().unwrap().to_path_buf()]);
    common::write_file(&config, "{}");
    common::write_file(&state, "{\"deploys\": {}}");

    run("dpkg", &["-i", &deb], &[]);
    assert_eq!(
        run("/usr/bin/c2", &["version"], &[]),
        run(c2, &["version"], &[])
    );
    assert_eq!(
        run("/usr/bin/c2", &["--version"], &[]),
        run(c2, &["version"], &[])
    );
    assert_eq!(
        run("man", &["-w", "c2"], &[]).trim(),
        "/usr/share/man/man1/c2.1.gz"
    );
    assert_eq!(
        run("man", &["-w", "c2-start"], &[]).trim(),
        "/usr/share/man/man1/c2-start.1.gz"
    );
    let text = run(
        "man",
        &["c2-start"],
        &[("MANPAGER", "cat"), ("MANWIDTH", "80")],
    );
    assert!(text.contains("c2-start"), "{text}");

    // The completions load from the system's directories and ask the
    // installed c2.
    let path = [("PATH", "/usr/bin:/bin")];
    let bash = run(
        "bash",
        &[
            "-c",
            "source /usr/share/bash-completion/completions/c2 && COMP_WORDS=(c2 sta) COMP_CWORD=1 && \
             _clap_complete_c2 c2 sta c2 && printf '%s\\n' \"${COMPREPLY[@]}\"",
        ],
        &path,
    );
    assert!(bash.lines().any(|l| l.trim() == "start"), "{bash}");
    let zsh = run(
        "zsh",
        &[
            "-fc",
            "autoload -U compinit && compinit -u -d /tmp/.zcompdump-$$ && print -r -- $_comps[c2]",
        ],
        &path,
    );
    assert_eq!(zsh.trim(), "_c2");
    let fish = run("fish", &["-c", "complete -C 'c2 sta'"], &path);
    assert!(fish.lines().any(|l| l.starts_with("start")), "{fish}");

    run("dpkg", &["-r", "c2"], &[]);
    assert!(!Path::new("/opt/bin/c2").exists() && !Path::new("/usr/bin/c2").exists());
    assert!(!Path::new("/lib/systemd/system/c2-slave.service").exists());
    assert_eq!(std::fs::read_to_string(&config).unwrap(), "{}");
    assert_eq!(
        std::fs::read_to_string(&state).unwrap(),
        "{\"deploys\": {}}"
    );
    drop(guard);
}
