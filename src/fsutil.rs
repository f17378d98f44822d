//! File-system helpers that keep what is on disk whole.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use tempfile::NamedTempFile;

/// Writes `data` to `path` atomically: a temporary file in the same
/// directory, given `mode`, fsynced, then renamed over `path`. A crash
/// leaves either the old file or the new one, never half of one; and an
/// existing symlink at `path` is replaced, not written through.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let tmp = synced_temp(dir, path, data, mode)?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    // Make the rename itself durable.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// A temporary file in `dir` holding `data` with `mode`, on disk, for
/// moving into place at `path`.
fn synced_temp(dir: &Path, path: &Path, data: &[u8], mode: u32) -> Result<NamedTempFile> {
    let mut tmp = tempfile::Builder::new()
        .prefix(".c2-tmp-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set permissions on {}", path.display()))?;
    tmp.write_all(data)
        .and_then(|_| tmp.as_file().sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(tmp)
}

/// Creates `path` holding `data` only if nothing is there yet: `Ok(false)`
/// when it exists. The content is written to a temporary file first and
/// hard-linked into place, so a reader never sees a half-written file and
/// two writers racing cannot both succeed.
pub fn create_new_atomic(path: &Path, data: &[u8], mode: u32) -> Result<bool> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = synced_temp(dir, path, data, mode)?;
    match std::fs::hard_link(tmp.path(), path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(true)
}

/// A path c2 reads as a file holds something else (a directory, a FIFO,
/// a device): c2 neither reads nor removes it, and callers say so.
#[derive(Debug)]
pub struct NotAFile(pub PathBuf);

impl std::fmt::Display for NotAFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is not a regular file (c2 neither reads nor removes it: move it away)",
            self.0.display()
        )
    }
}

impl std::error::Error for NotAFile {}

/// A document over the size c2 reads of its kind: whatever it holds, it
/// is not one c2 wrote.
#[derive(Debug)]
pub struct TooLarge {
    pub what: String,
    pub max: u64,
}

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} is larger than {} bytes", self.what, self.max)
    }
}

impl std::error::Error for TooLarge {}

impl TooLarge {
    pub fn error(what: impl std::fmt::Display, max: u64) -> anyhow::Error {
        anyhow::Error::new(TooLarge {
            what: what.to_string(),
            max,
        })
    }
}

/// Opens one of c2's own files with `options`: `None` when it does not
/// exist, [`NotAFile`] when something else is in its place. Opened
/// without blocking, so a FIFO there cannot hang the command, and without
/// following a symlink, so nothing is read or appended through one.
pub fn open_regular(path: &Path, options: &mut OpenOptions) -> Result<Option<File>> {
    let flags = nix::libc::O_NONBLOCK | nix::libc::O_NOFOLLOW;
    let file = match options.custom_flags(flags).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        // A FIFO opened for writing with no reader; a symlink.
        Err(e) if matches!(e.raw_os_error(), Some(nix::libc::ENXIO | nix::libc::ELOOP)) => {
            return Err(NotAFile(path.to_path_buf()).into())
        }
        Err(e) => return Err(e).with_context(|| format!("cannot open {}", path.display())),
    };
    let meta = file
        .metadata()
        .with_context(|| format!("cannot read {}", path.display()))?;
    if !meta.is_file() {
        return Err(NotAFile(path.to_path_buf()).into());
    }
    Ok(Some(file))
}

/// Reads at most `max` bytes of `path`; `None` when it does not exist,
/// an error naming the file when it is larger, and [`NotAFile`] when it is
/// not a regular file (see [`open_regular`]).
pub fn read_bounded(path: &Path, max: u64) -> Result<Option<Vec<u8>>> {
    use std::io::Read;
    let Some(file) = open_regular(path, OpenOptions::new().read(true))? else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.len() as u64 > max {
        return Err(TooLarge::error(path.display(), max));
    }
    Ok(Some(bytes))
}

/// `root/rel`, refusing a `rel` that is absolute or climbs out with `..`,
/// and (when it exists) one that symlinks out of `root`: for paths a
/// release names inside itself.
pub fn inside(root: &Path, rel: &Path) -> Result<PathBuf> {
    let escapes = rel
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
    if escapes || rel.as_os_str().is_empty() {
        bail!(
            "path '{}' must be relative and stay inside {}",
            rel.display(),
            root.display()
        );
    }
    let path = root.join(rel);
    if let (Ok(real), Ok(real_root)) = (path.canonicalize(), root.canonicalize()) {
        if !real.starts_with(&real_root) {
            bail!(
                "path '{}' leads outside {} through a symlink",
                rel.display(),
                root.display()
            );
        }
    }
    Ok(path)
}

/// Reads and parses a JSON file, naming the file in any error.
pub fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: invalid JSON", path.display()))
}

/// An exclusive lock on a file, held until dropped. Serialises c2 runs on
/// one machine so two deploys never interleave their steps or state writes.
pub struct Lock {
    _file: std::fs::File,
}

/// Takes the lock at `path`; if another c2 run holds it, says so and waits.
pub fn lock(path: &Path) -> Result<Lock> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("cannot open lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            crate::log::info(&format!(
                "Waiting for another c2 run to finish (lock {})",
                path.display()
            ));
            file.lock()
                .with_context(|| format!("cannot lock {}", path.display()))?;
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
    Ok(Lock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inside_refuses_escapes() {
        let root = Path::new("/tmp/x");
        assert!(inside(root, Path::new("a/b.tpl")).is_ok());
        assert!(inside(root, Path::new("../b.tpl")).is_err());
        assert!(inside(root, Path::new("/etc/passwd")).is_err());
        assert!(inside(root, Path::new("a/../../b")).is_err());
    }
}
