//! Where an archive's entries land: the destination side of unpacking,
//! the same for every format a release can be (zip, tar, tar.gz).
//!
//! A release archive is built elsewhere and only partly trusted: a broken or
//! malicious one must never write outside the directory it is unpacked into.
//! So entry names are normalised here rather than handed to the filesystem;
//! directories are made one component at a time, following only symlinks
//! that lead back inside; symlinks from the archive are created last (no
//! file is written through one) and checked where they really lead; a hard
//! link may only name a file the archive itself wrote; devices, FIFOs and
//! sockets are refused; every byte written counts against
//! `limits.maxUnpackedBytes`; and the modes the archive gives are kept, but
//! for setuid, setgid and sticky bits. A format's reader (`unzip`, `untar`)
//! says what each entry is and hands over its bytes.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::{self, DirBuilder, OpenOptions, Permissions};
use std::io::{self, BufWriter, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use anyhow::{anyhow, bail, Context, Result};

use crate::names::RESERVED_PREFIX;
use crate::progress::Progress;

const DEFAULT_FILE_MODE: u32 = 0o644;
const DEFAULT_DIR_MODE: u32 = 0o755;

/// PATH_MAX on Linux; a longer "target" is not a real link and we do not
/// want to buffer an arbitrarily large entry to find that out.
pub(super) const MAX_LINK_TARGET: u64 = 4096;

/// Same limit as the Linux kernel (ELOOP), so link loops terminate.
const MAX_LINK_HOPS: usize = 40;

/// Write buffer for extracted files: large enough that a 1 GB release does
/// not cost a syscall per 8 KiB, small enough not to matter for memory.
const WRITE_BUFFER: usize = 256 * 1024;

/// What an entry is, as its archive says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    File,
    Dir,
    /// A device, FIFO or socket (named): never made from a release.
    Special(&'static str),
}

/// How the messages name the archive and its limit: what every writer of
/// files needs, shared freely between threads.
#[derive(Debug, Clone, Copy)]
pub(super) struct Names<'a> {
    pub archive: &'a Path,
    pub max_bytes: u64,
}

impl Names<'_> {
    pub(super) fn too_large(&self) -> anyhow::Error {
        anyhow!(
            "release {} unpacks to more than {} bytes (limits.maxUnpackedBytes): raise that limit in the config if the release really is that large",
            self.archive.display(),
            self.max_bytes
        )
    }
}

/// A symlink entry, kept until every file and directory has been written.
struct Link {
    name: String,
    path: PathBuf,
    target: PathBuf,
}

/// A hard link entry, made once the file it names has been written.
struct HardLink {
    name: String,
    path: PathBuf,
    target: PathBuf,
}

pub(super) struct Tree<'a> {
    names: Names<'a>,
    todir: &'a Path,
    /// canonicalize(todir)
    root: PathBuf,
    /// Relative directory -> verified real path. Nothing replaces a directory
    /// while regular entries are written, so a verified one stays valid.
    dirs: HashMap<PathBuf, PathBuf>,
    /// Applied at the very end, so a read-only directory in the archive does
    /// not stop us writing the files that go into it.
    dir_modes: Vec<(PathBuf, u32)>,
    links: Vec<Link>,
    hard_links: Vec<HardLink>,
}

impl<'a> Tree<'a> {
    /// Unpacking `archive` into `todir` (created if missing).
    pub(super) fn new(archive: &'a Path, todir: &'a Path, max_bytes: u64) -> Result<Tree<'a>> {
        fs::create_dir_all(todir).with_context(|| format!("cannot create {}", todir.display()))?;
        // Every containment check compares real paths against this one, so a
        // `todir` reached through a symlink (or spelled with `..`) still works.
        let root = fs::canonicalize(todir)
            .with_context(|| format!("cannot resolve {}", todir.display()))?;
        Ok(Tree {
            names: Names { archive, max_bytes },
            todir,
            root,
            dirs: HashMap::new(),
            dir_modes: Vec::new(),
            links: Vec::new(),
            hard_links: Vec::new(),
        })
    }

    pub(super) fn names(&self) -> Names<'a> {
        self.names
    }

    pub(super) fn outside(&self, name: &str) -> anyhow::Error {
        anyhow!(
            "release {}: entry '{}' would be written outside {}",
            self.names.archive.display(),
            name,
            self.todir.display()
        )
    }

    fn link_outside(&self, name: &str, target: &Path) -> anyhow::Error {
        anyhow!(
            "release {}: symlink entry '{}' -> '{}' would point outside {}",
            self.names.archive.display(),
            name,
            target.display(),
            self.todir.display()
        )
    }

    /// The entry's path inside the tree, as components: not absolute, not
    /// climbing out, and not one of c2's own names at the top.
    fn relative(&self, name: &str) -> Result<Vec<String>> {
        let rel = normalize(name).ok_or_else(|| self.outside(name))?;
        if rel
            .first()
            .is_some_and(|top| top.starts_with(RESERVED_PREFIX))
        {
            // A release cannot write c2's own files in the deploy directory
            // (the process tag, the marker).
            bail!(
                "release {}: entry '{name}' is named like c2's own files ({RESERVED_PREFIX}… at the top of a deploy directory): remove it from the release (was a deploy directory copied into the build?)",
                self.names.archive.display()
            );
        }
        Ok(rel)
    }

    /// Places entry `name` of `kind` (with `mode`, if the archive gives
    /// one): a directory is created now; a file's real path and mode are
    /// returned, to be written (see [`write_file`]).
    pub(super) fn place(
        &mut self,
        name: &str,
        kind: Kind,
        mode: Option<u32>,
    ) -> Result<Option<(PathBuf, u32)>> {
        let rel = self.relative(name)?;
        match kind {
            Kind::Special(what) => bail!(
                "release {}: entry '{name}' is a {what}, which a release cannot hold",
                self.names.archive.display()
            ),
            Kind::Dir => {
                // "./" and the like name `todir` itself, which is already there.
                if !rel.is_empty() {
                    let real = self.ensure_dir(&rel, name)?;
                    self.dir_modes.push((real, perm(mode, DEFAULT_DIR_MODE)));
                }
                Ok(None)
            }
            Kind::File => {
                let (file_name, parent) = self.split(&rel, name)?;
                let dir = self.ensure_dir(parent, name)?;
                Ok(Some((dir.join(file_name), perm(mode, DEFAULT_FILE_MODE))))
            }
        }
    }

    fn split<'r>(&self, rel: &'r [String], name: &str) -> Result<(&'r String, &'r [String])> {
        rel.split_last().ok_or_else(|| {
            anyhow!(
                "release {}: entry '{}' has no file name",
                self.names.archive.display(),
                name
            )
        })
    }

    /// Records symlink entry `name` pointing at `target` (raw bytes), to be
    /// created once everything else is written.
    pub(super) fn place_symlink(&mut self, name: &str, target: &[u8]) -> Result<()> {
        let rel = self.relative(name)?;
        let (file_name, parent) = self.split(&rel, name)?;
        if target.is_empty() || target.len() as u64 > MAX_LINK_TARGET || target.contains(&0) {
            bail!(
                "release {}: symlink entry '{}' has an invalid target",
                self.names.archive.display(),
                name
            );
        }
        let target = PathBuf::from(OsStr::from_bytes(target));
        if !target_stays_inside(parent.len(), &target) {
            return Err(self.link_outside(name, &target));
        }
        // Parent directories are made now, while the only symlinks in todir
        // are ones that were there before we started.
        let dir = self.ensure_dir(parent, name)?;
        self.links.push(Link {
            name: name.to_owned(),
            path: dir.join(file_name),
            target,
        });
        Ok(())
    }

    /// Records hard link entry `name` to `target`, another entry of the
    /// archive (named from the top, as tar does), to be made once files
    /// are written: it must then be a regular file inside the tree.
    pub(super) fn place_hard_link(&mut self, name: &str, target: &str) -> Result<()> {
        let rel = self.relative(name)?;
        let (file_name, parent) = self.split(&rel, name)?;
        let outside = || {
            anyhow!(
                "release {}: hard link entry '{name}' -> '{target}' would link to something outside {}",
                self.names.archive.display(),
                self.todir.display()
            )
        };
        let to = normalize(target).ok_or_else(outside)?;
        let (to_name, to_parent) = to.split_last().ok_or_else(outside)?;
        let dir = self.ensure_dir(parent, name)?;
        let to_dir = self.ensure_dir(to_parent, name)?;
        self.hard_links.push(HardLink {
            name: name.to_owned(),
            path: dir.join(file_name),
            target: to_dir.join(to_name),
        });
        Ok(())
    }

    /// Create the directories of `rel` below the root one at a time and
    /// return the real path. Symlinks already in `todir` (from a previous
    /// unpack) are followed only when they lead back inside it; walking step
    /// by step means no directory is ever created outside first and checked
    /// afterwards.
    fn ensure_dir(&mut self, rel: &[String], name: &str) -> Result<PathBuf> {
        let key: PathBuf = rel.iter().collect();
        if let Some(real) = self.dirs.get(&key) {
            return Ok(real.clone());
        }
        let ctx = || format!("release {}: entry '{}'", self.names.archive.display(), name);
        let mut cur = self.root.clone();
        for comp in rel {
            let next = cur.join(comp);
            match fs::symlink_metadata(&next) {
                Ok(m) if m.is_dir() => cur = next,
                Ok(m) if m.file_type().is_symlink() => {
                    let real = fs::canonicalize(&next)
                        .with_context(|| format!("{}: cannot resolve {}", ctx(), next.display()))?;
                    if !real.starts_with(&self.root) {
                        return Err(self.outside(name));
                    }
                    if !real.is_dir() {
                        bail!("{}: {} is not a directory", ctx(), next.display());
                    }
                    cur = real;
                }
                Ok(_) => bail!("{}: {} is not a directory", ctx(), next.display()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    DirBuilder::new()
                        .mode(DEFAULT_DIR_MODE)
                        .create(&next)
                        .with_context(|| format!("{}: cannot create {}", ctx(), next.display()))?;
                    cur = next;
                }
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("{}: cannot stat {}", ctx(), next.display()))
                }
            }
        }
        // The walk already resolved every component; re-check the end result
        // with the OS so a mistake above cannot silently open an escape.
        let real = fs::canonicalize(&cur)
            .with_context(|| format!("{}: cannot resolve {}", ctx(), cur.display()))?;
        if !real.starts_with(&self.root) {
            return Err(self.outside(name));
        }
        self.dirs.insert(key, real.clone());
        Ok(real)
    }

    /// Once every file is written: the hard links, then the symlinks, then
    /// the directories' modes.
    pub(super) fn finish(&mut self) -> Result<()> {
        self.create_hard_links()?;
        self.create_links()?;
        self.apply_dir_modes()
    }

    fn create_hard_links(&self) -> Result<()> {
        for link in &self.hard_links {
            let ctx = || {
                format!(
                    "release {}: cannot create hard link '{}' at {}",
                    self.names.archive.display(),
                    link.name,
                    link.path.display()
                )
            };
            // Only to a regular file of the tree: no symlink (created later,
            // or there before) and nothing else leads out through it.
            if !fs::symlink_metadata(&link.target).is_ok_and(|m| m.is_file()) {
                bail!(
                    "release {}: hard link entry '{}' names no file the release holds",
                    self.names.archive.display(),
                    link.name
                );
            }
            clear_the_way(&link.path, ctx)?;
            fs::hard_link(&link.target, &link.path).with_context(ctx)?;
        }
        Ok(())
    }

    fn create_links(&self) -> Result<()> {
        for link in &self.links {
            let ctx = || {
                format!(
                    "release {}: cannot create symlink '{}' at {}",
                    self.names.archive.display(),
                    link.name,
                    link.path.display()
                )
            };
            clear_the_way(&link.path, ctx)?;
            std::os::unix::fs::symlink(&link.target, &link.path).with_context(ctx)?;
        }
        // Each target was checked lexically, but links can combine (`x -> .`
        // plus `d/l -> ../x/..`), so check where each one really leads now
        // that all of them exist.
        for link in &self.links {
            let real = resolve(&link.path).with_context(|| {
                format!(
                    "release {}: cannot resolve symlink entry '{}'",
                    self.names.archive.display(),
                    link.name
                )
            })?;
            if !real.starts_with(&self.root) {
                // Do not leave an escape hatch behind even if the caller
                // forgets to clean up.
                let _ = fs::remove_file(&link.path);
                return Err(self.link_outside(&link.name, &link.target));
            }
        }
        Ok(())
    }

    fn apply_dir_modes(&mut self) -> Result<()> {
        // Deepest first: a parent without +x would block chmod on its children.
        self.dir_modes
            .sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
        for (path, mode) in &self.dir_modes {
            fs::set_permissions(path, Permissions::from_mode(*mode)).with_context(|| {
                format!(
                    "release {}: cannot set permissions on {}",
                    self.names.archive.display(),
                    path.display()
                )
            })?;
        }
        Ok(())
    }
}

/// The bytes every writer of one unpack shares: what is left of the
/// limit, and the first failure, which stops them all.
pub(super) struct Budget {
    left: AtomicU64,
    stop: AtomicBool,
    failure: Mutex<Option<anyhow::Error>>,
}

impl Budget {
    pub(super) fn new(max_bytes: u64) -> Budget {
        Budget {
            left: AtomicU64::new(max_bytes),
            stop: AtomicBool::new(false),
            failure: Mutex::new(None),
        }
    }

    pub(super) fn left(&self) -> u64 {
        self.left.load(Ordering::Relaxed)
    }

    pub(super) fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Records `e` unless another writer failed first, and stops everyone.
    pub(super) fn fail(&self, e: anyhow::Error) {
        let mut first = self.failure.lock().unwrap_or_else(PoisonError::into_inner);
        if first.is_none() {
            *first = Some(e);
        }
        self.stop.store(true, Ordering::Relaxed);
    }

    /// The first failure, if any.
    pub(super) fn failure(&self) -> Option<anyhow::Error> {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// `data`, counted against the budget as it is read.
    pub(super) fn meter<R: Read>(&self, data: R) -> Metered<'_, R> {
        Metered {
            inner: data,
            budget: self,
            over: false,
            stopped: false,
        }
    }
}

/// Why a writer gave up on a file.
pub(super) enum Halt {
    /// Another writer failed; its error is the one reported.
    Stopped,
    Failed(anyhow::Error),
}

impl From<anyhow::Error> for Halt {
    fn from(e: anyhow::Error) -> Halt {
        Halt::Failed(e)
    }
}

/// Counts bytes read from an entry against the shared budget, and ends the
/// read as soon as the budget is spent or another writer failed.
pub(super) struct Metered<'a, R> {
    inner: R,
    budget: &'a Budget,
    over: bool,
    stopped: bool,
}

impl<R> Metered<'_, R> {
    /// Why the read ended early, if it did.
    pub(super) fn halt(&self, names: Names) -> Option<Halt> {
        if self.over {
            return Some(Halt::Failed(names.too_large()));
        }
        self.stopped.then_some(Halt::Stopped)
    }
}

impl<R: Read> Read for Metered<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.budget.stopped() {
            self.stopped = true;
            return Err(io::Error::other("stopped: another entry failed"));
        }
        let n = self.inner.read(buf)?;
        let spent = self
            .budget
            .left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(n as u64)
            });
        if spent.is_err() {
            self.over = true;
            return Err(io::Error::other("over the unpacked-bytes limit"));
        }
        Ok(n)
    }
}

/// Creates the file at `path` (placed by [`Tree::place`]) with `mode` and
/// the bytes of `data`, counted against `budget`.
pub(super) fn write_file(
    names: Names,
    name: &str,
    path: &Path,
    mode: u32,
    data: &mut dyn Read,
    budget: &Budget,
    progress: &Progress,
) -> Result<(), Halt> {
    let mut out = create_file(names, name, path)?;
    let mut metered = budget.meter(data);
    let copied = io::copy(&mut progress.reading(&mut metered), &mut out);
    if let Some(halt) = metered.halt(names) {
        return Err(halt);
    }
    let ctx = || cannot_extract(names, name, path);
    copied.with_context(ctx)?;
    finish_file(names, name, path, out, mode)?;
    Ok(())
}

/// A new, empty file at `path`, buffered for writing. Whatever is there is
/// replaced, never written through.
pub(super) fn create_file(
    names: Names,
    name: &str,
    path: &Path,
) -> Result<BufWriter<fs::File>, Halt> {
    let ctx = || cannot_extract(names, name, path);
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => return Err(anyhow!("{}: a directory is in the way", ctx()).into()),
        // Replace rather than truncate: opening an existing symlink (or a
        // hard link) would write into whatever it points at. It also keeps
        // the archive readable if it sits in todir and an entry shares its
        // name (`unpack` downloads the archive into todir).
        Ok(_) => fs::remove_file(path).with_context(ctx)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(Halt::Failed(anyhow::Error::new(e).context(ctx()))),
    }
    // create_new (O_EXCL) also refuses to follow a symlink that might
    // have appeared since the check above.
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(ctx)?;
    Ok(BufWriter::with_capacity(WRITE_BUFFER, file))
}

/// Flushes a file [`create_file`] made and gives it its `mode`.
pub(super) fn finish_file(
    names: Names,
    name: &str,
    path: &Path,
    out: BufWriter<fs::File>,
    mode: u32,
) -> Result<()> {
    let ctx = || cannot_extract(names, name, path);
    let file = out
        .into_inner()
        .map_err(|e| e.into_error())
        .with_context(ctx)?;
    // Set explicitly (not via open's mode) so the umask cannot strip bits
    // the release relies on, such as +x on its scripts.
    file.set_permissions(Permissions::from_mode(mode))
        .with_context(ctx)
}

fn cannot_extract(names: Names, name: &str, path: &Path) -> String {
    format!(
        "release {}: cannot extract entry '{}' to {}",
        names.archive.display(),
        name,
        path.display()
    )
}

/// Split an entry name into plain path components, resolving `.` and `..`
/// lexically. `None` if the name is absolute or climbs above the top.
///
/// Backslashes count as separators too: archives made on Windows use them,
/// and `..\x` must not become a harmless-looking file named `..\x` here
/// while meaning "parent directory" to the tool that built it.
fn normalize(name: &str) -> Option<Vec<String>> {
    if name.contains('\0') || name.starts_with(['/', '\\']) || has_drive_prefix(name) {
        return None;
    }
    let mut parts: Vec<String> = Vec::new();
    for part in name.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            _ => parts.push(part.to_owned()),
        }
    }
    Some(parts)
}

/// `C:` style names are absolute (or drive-relative) on Windows.
fn has_drive_prefix(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':'
}

/// Permission bits to apply. setuid/setgid/sticky are dropped on purpose:
/// a release has no business installing setuid binaries. All-zero bits mean
/// the archiver stored only the file type, not real permissions.
fn perm(mode: Option<u32>, default: u32) -> u32 {
    match mode.map(|m| m & 0o777) {
        Some(p) if p != 0 => p,
        _ => default,
    }
}

/// Does a link in a directory `parent_depth` levels below the top, pointing
/// at `target`, stay inside the top when read lexically? Uses the kernel's
/// own rules (only `/` separates), since the kernel will interpret it.
pub(crate) fn target_stays_inside(parent_depth: usize, target: &Path) -> bool {
    let mut depth = parent_depth;
    for c in target.components() {
        match c {
            Component::Prefix(_) | Component::RootDir => return false,
            Component::CurDir => {}
            Component::ParentDir => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return false,
            },
            Component::Normal(_) => depth += 1,
        }
    }
    true
}

enum Step {
    Root,
    Up,
    Down(OsString),
}

fn steps(p: &Path) -> Vec<Step> {
    p.components()
        .filter_map(|c| match c {
            Component::RootDir => Some(Step::Root),
            Component::ParentDir => Some(Step::Up),
            Component::Normal(n) => Some(Step::Down(n.to_owned())),
            Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

/// Where an absolute `path` really leads, like realpath(3), except that a
/// missing (or non-directory) component does not fail: the rest is applied
/// lexically. `fs::canonicalize` gives up on dangling links, yet a dangling
/// link can still aim outside, and a later write through it would land there.
fn resolve(path: &Path) -> io::Result<PathBuf> {
    let mut todo = steps(path);
    todo.reverse();
    let mut cur = PathBuf::from("/");
    let mut hops = 0;
    let mut missing = false;
    while let Some(step) = todo.pop() {
        match step {
            Step::Root => cur = PathBuf::from("/"),
            Step::Up => {
                cur.pop();
            }
            Step::Down(name) => {
                let next = cur.join(&name);
                if !missing {
                    match fs::symlink_metadata(&next) {
                        Ok(m) if m.file_type().is_symlink() => {
                            hops += 1;
                            if hops > MAX_LINK_HOPS {
                                return Err(io::Error::other("too many levels of symbolic links"));
                            }
                            let mut more = steps(&fs::read_link(&next)?);
                            more.reverse();
                            todo.extend(more);
                            continue;
                        }
                        Ok(_) => {}
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                            ) =>
                        {
                            missing = true
                        }
                        Err(e) => return Err(e),
                    }
                }
                cur = next;
            }
        }
    }
    Ok(cur)
}

/// Makes room for a link at `path`: a file there (an earlier entry of the
/// same name) goes, a directory is refused.
fn clear_the_way(path: &Path, ctx: impl Fn() -> String) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => bail!("{}: a directory is in the way", ctx()),
        Ok(_) => fs::remove_file(path).with_context(ctx),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(ctx),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalised_safely() {
        let n = |s: &str| normalize(s).map(|v| v.join("/"));
        assert_eq!(n("a/b/c").as_deref(), Some("a/b/c"));
        assert_eq!(n("a\\b").as_deref(), Some("a/b"));
        assert_eq!(n("./a/../b/").as_deref(), Some("b"));
        assert_eq!(n("../x"), None);
        assert_eq!(n("..\\x"), None);
        assert_eq!(n("a/../../x"), None);
        assert_eq!(n("/etc/passwd"), None);
        assert_eq!(n("\\x"), None);
        assert_eq!(n("C:\\x"), None);
        assert_eq!(n("a\0b"), None);
    }

    #[test]
    fn default_modes_when_the_archive_has_none() {
        assert_eq!(perm(None, DEFAULT_FILE_MODE), 0o644);
        assert_eq!(perm(None, DEFAULT_DIR_MODE), 0o755);
        assert_eq!(perm(Some(0o100_000), DEFAULT_FILE_MODE), 0o644);
        assert_eq!(perm(Some(0o104_755), DEFAULT_FILE_MODE), 0o755);
    }
}
