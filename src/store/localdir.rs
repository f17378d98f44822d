//! A release store that is a directory on this machine.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result};

use super::ReleaseStore;
use crate::names::ReleaseName;

pub(crate) struct LocalDirStore {
    dir: PathBuf,
}

impl LocalDirStore {
    pub(crate) fn new(dir: &Path) -> LocalDirStore {
        LocalDirStore {
            dir: dir.to_path_buf(),
        }
    }
}

impl ReleaseStore for LocalDirStore {
    fn list(&self) -> Result<Vec<String>> {
        let entries = std::fs::read_dir(&self.dir)
            .with_context(|| format!("cannot list release store {}", self.dir.display()))?;
        let mut files: Vec<(SystemTime, String)> = Vec::new();
        for entry in entries {
            let entry = entry.with_context(|| format!("listing {}", self.dir.display()))?;
            let meta = entry.metadata()?;
            if meta.is_file() {
                let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                files.push((mtime, entry.file_name().to_string_lossy().to_string()));
            }
        }
        // Newest first; ties by name so the order is stable.
        files.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        Ok(files.into_iter().map(|(_, name)| name).collect())
    }

    fn exists(&self, release: &ReleaseName) -> Result<bool> {
        Ok(self.dir.join(release.as_str()).is_file())
    }

    fn download(&self, release: &ReleaseName, dest: &Path) -> Result<()> {
        let src = self.dir.join(release.as_str());
        std::fs::copy(&src, dest)
            .with_context(|| format!("cannot copy {} to {}", src.display(), dest.display()))?;
        Ok(())
    }

    fn describe(&self) -> String {
        self.dir.display().to_string()
    }
}
