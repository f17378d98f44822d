//! A release store that is a directory on this machine.
//!
//! Its releases are the directory's files; subdirectories are c2's own:
//! `.c2-upload/` holds an upload until it is complete, `.c2-pruned/` what
//! prune set aside. Both are on the same filesystem as the releases, so a
//! release appears or moves with one rename or link, never half-written.

use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{bail, Context, Result};

use super::{Listed, ReleaseStore, SET_ASIDE};
use crate::names::ReleaseName;

const UPLOADS: &str = ".c2-upload";

pub(crate) struct LocalDirStore {
    dir: PathBuf,
}

impl LocalDirStore {
    pub(crate) fn new(dir: &Path) -> LocalDirStore {
        LocalDirStore {
            dir: dir.to_path_buf(),
        }
    }

    fn aside(&self) -> PathBuf {
        self.dir.join(SET_ASIDE)
    }
}

impl ReleaseStore for LocalDirStore {
    fn list_dated(&self) -> Result<Vec<Listed>> {
        let entries = std::fs::read_dir(&self.dir)
            .with_context(|| format!("cannot list release store {}", self.dir.display()))?;
        let mut files: Vec<(SystemTime, ReleaseName)> = Vec::new();
        for entry in entries {
            let entry = entry.with_context(|| format!("listing {}", self.dir.display()))?;
            let meta = entry.metadata()?;
            let Ok(name) = ReleaseName::parse(&entry.file_name().to_string_lossy()) else {
                continue;
            };
            if meta.is_file() {
                let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                files.push((mtime, name));
            }
        }
        // Newest first; ties by name so the order is stable.
        files.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        Ok(files
            .into_iter()
            .map(|(t, name)| Listed {
                name,
                last_modified: Some(t),
            })
            .collect())
    }

    fn exists(&self, release: &ReleaseName) -> Result<bool> {
        Ok(self.dir.join(release.as_str()).is_file())
    }

    fn download(&self, release: &ReleaseName, dest: &Path) -> Result<()> {
        let src = self.dir.join(release.as_str());
        match std::fs::copy(&src, dest) {
            Ok(_) => Ok(()),
            // Deleted since it was found (a prune): say so plainly.
            Err(e) if e.kind() == ErrorKind::NotFound => bail!(
                "Release {release} does not exist in release store at {}",
                self.describe()
            ),
            Err(e) => Err(e)
                .with_context(|| format!("cannot copy {} to {}", src.display(), dest.display())),
        }
    }

    fn describe(&self) -> String {
        self.dir.display().to_string()
    }

    fn upload(&self, release: &ReleaseName, src: &Path, replace: bool) -> Result<bool> {
        let dest = self.dir.join(release.as_str());
        let staging = self.dir.join(UPLOADS);
        std::fs::create_dir_all(&staging)
            .with_context(|| format!("cannot create {}", staging.display()))?;
        let mut tmp = tempfile::NamedTempFile::new_in(&staging)
            .with_context(|| format!("cannot create a file in {}", staging.display()))?;
        let mut from =
            std::fs::File::open(src).with_context(|| format!("cannot read {}", src.display()))?;
        std::io::copy(&mut from, tmp.as_file_mut())
            .and_then(|_| {
                tmp.as_file()
                    .set_permissions(std::fs::Permissions::from_mode(0o644))
            })
            .and_then(|()| tmp.as_file().sync_all())
            .with_context(|| format!("cannot write {}", tmp.path().display()))?;
        let persisted = if replace {
            tmp.persist(&dest)
        } else {
            // Link, then unlink: fails if the name is taken, so a release
            // published by someone else meanwhile is never overwritten.
            tmp.persist_noclobber(&dest)
        };
        match persisted {
            Ok(_) => Ok(true),
            Err(e) if !replace && e.error.kind() == ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e.error).with_context(|| format!("cannot write {}", dest.display())),
        }
    }

    fn set_aside(&self, release: &ReleaseName) -> Result<bool> {
        let aside = self.aside();
        std::fs::create_dir_all(&aside)
            .with_context(|| format!("cannot create {}", aside.display()))?;
        let src = self.dir.join(release.as_str());
        match std::fs::rename(&src, aside.join(release.as_str())) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e).with_context(|| format!("cannot move {} aside", src.display())),
        }
    }

    fn set_aside_list(&self) -> Result<Vec<String>> {
        let aside = self.aside();
        let entries = match std::fs::read_dir(&aside) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("cannot list {}", aside.display())),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.with_context(|| format!("listing {}", aside.display()))?;
            names.push(entry.file_name().to_string_lossy().to_string());
        }
        names.sort();
        Ok(names)
    }

    fn restore(&self, release: &ReleaseName) -> Result<()> {
        let from = self.aside().join(release.as_str());
        let to = self.dir.join(release.as_str());
        match std::fs::hard_link(&from, &to) {
            Ok(()) => {}
            // Published again meanwhile: that one stays.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("cannot restore {}", to.display())),
        }
        self.delete_set_aside(release)
    }

    fn delete_set_aside(&self, release: &ReleaseName) -> Result<()> {
        let path = self.aside().join(release.as_str());
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            // Another prune got there first.
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("cannot delete {}", path.display())),
        }
    }
}
