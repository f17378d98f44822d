//! What `c2 version` says of a build, worked out by `build.rs` (which
//! includes this file) from the git checkout it builds.

use std::path::Path;
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        // Never write the index: a build must not change what it reads.
        .arg("--no-optional-locks")
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The commit checked out in `dir` (12 hex digits), with `-dirty` when a
/// tracked file differs from it; "unknown" outside a git checkout.
pub fn commit(dir: &Path) -> String {
    let Some(commit) = git(dir, &["rev-parse", "--short=12", "HEAD"]) else {
        return "unknown".to_string();
    };
    let dirty = git(dir, &["status", "--porcelain", "--untracked-files=no"])
        .is_some_and(|changes| !changes.is_empty());
    match dirty {
        true => format!("{commit}-dirty"),
        false => commit,
    }
}

/// The files whose change can change [`commit`]: git's HEAD, the branch
/// it points at, and the index.
pub fn git_files(dir: &Path) -> Vec<String> {
    let Some(git_dir) = git(dir, &["rev-parse", "--absolute-git-dir"]) else {
        return Vec::new();
    };
    let mut files = vec![format!("{git_dir}/HEAD"), format!("{git_dir}/index")];
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        files.push(format!("{git_dir}/{branch}"));
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(dir: &Path, args: &[&str]) {
        let ok = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .status()
            .unwrap()
            .success();
        assert!(ok, "git {args:?}");
    }

    #[test]
    fn a_build_names_its_commit_and_says_when_tracked_files_differ() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(commit(dir.path()), "unknown");
        run(dir.path(), &["init", "-q"]);
        std::fs::write(dir.path().join("main.rs"), "fn main() {}\n").unwrap();
        run(dir.path(), &["add", "main.rs"]);
        run(dir.path(), &["commit", "-q", "-m", "first"]);
        let clean = commit(dir.path());
        assert_eq!(clean.len(), 12, "{clean}");
        assert!(clean.chars().all(|c| c.is_ascii_hexdigit()), "{clean}");

        std::fs::write(dir.path().join("notes.txt"), "untracked\n").unwrap();
        assert_eq!(commit(dir.path()), clean, "an untracked file is no change");
        std::fs::write(dir.path().join("main.rs"), "fn main() { }\n").unwrap();
        assert_eq!(commit(dir.path()), format!("{clean}-dirty"));
        assert!(git_files(dir.path()).iter().any(|f| f.ends_with("/index")));
    }
}
