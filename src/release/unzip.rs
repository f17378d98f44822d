//! Reading a release zip: every entry is handed to [`Tree`], which decides
//! where (and whether) it lands; then the regular files are written.
//!
//! Extraction runs in three steps. First, in archive order on one thread,
//! every name is checked, every directory created and every symlink target
//! read; that fixes where each file goes. Then the regular files, which are
//! independent of each other, are written by one worker per core, each
//! with its own read position in the zip. Last, on one thread again, the
//! tree makes the links and gives directories their modes.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use zip::result::ZipError;
use zip::ZipArchive;

use super::tree::{self, Budget, Halt, Kind, Names, Tree, MAX_LINK_TARGET};
use crate::progress::Progress;

// The zip format stores the Unix `st_mode` layout whatever the host is, so
// these are spelled out instead of taken from libc (whose `mode_t` width
// differs between platforms).
const S_IFMT: u32 = 0o170_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFIFO: u32 = 0o010_000;
const S_IFCHR: u32 = 0o020_000;
const S_IFBLK: u32 = 0o060_000;
const S_IFSOCK: u32 = 0o140_000;

/// Read buffer for the zip's headers: they are small and scattered, so a
/// larger buffer would mostly copy file data that is read again later.
const HEADER_BUFFER: usize = 4096;

/// Extract every entry of the zip at `zip_path` into `todir` (created if missing),
/// refusing to write more than `max_bytes` in all (a zip bomb fails fast).
/// Returns the number of entries extracted.
pub fn extract(zip_path: &Path, todir: &Path, max_bytes: u64) -> Result<usize> {
    let file =
        File::open(zip_path).with_context(|| format!("{}: cannot open", zip_path.display()))?;
    let cursor =
        ZipCursor::new(file).with_context(|| format!("{}: cannot open", zip_path.display()))?;
    let mut archive = ZipArchive::new(cursor).map_err(|e| {
        anyhow!(
            "{}: not a valid zip archive: {}",
            zip_path.display(),
            describe(&e)
        )
    })?;
    let mut tree = Tree::new(zip_path, todir, max_bytes)?;
    // Declared sizes, only for the bar: the budget counts real bytes.
    let total = archive
        .decompressed_size()
        .map(|n| u64::try_from(n).unwrap_or(u64::MAX));
    let name = zip_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let progress = Progress::bytes(&format!("unpacking {name}"), total);
    let jobs = plan(&mut tree, &mut archive)?;
    let budget = Budget::new(max_bytes);
    write_files(tree.names(), &archive, &jobs, &budget, &progress)?;
    tree.finish()?;
    Ok(archive.len())
}

/// `ZipError::Io` displays as a bare "i/o error"; the cause is what helps.
fn describe(e: &ZipError) -> String {
    match e {
        ZipError::Io(io) => io.to_string(),
        other => other.to_string(),
    }
}

/// One worker's read position in the zip. Positioned reads on one shared
/// handle let every worker seek on its own, and keep the archive readable
/// even when an entry of the same name replaces it in `todir`. A small
/// buffer serves the zip crate's many tiny header reads; file data, read
/// in large chunks, bypasses it.
struct ZipCursor {
    file: Arc<File>,
    len: u64,
    pos: u64,
    buf: Vec<u8>,
    /// `buf[..buf_len]` holds the file's bytes from `buf_at` on.
    buf_at: u64,
    buf_len: usize,
}

impl ZipCursor {
    fn new(file: File) -> io::Result<ZipCursor> {
        let len = file.metadata()?.len();
        Ok(ZipCursor::at(Arc::new(file), len, 0))
    }

    fn at(file: Arc<File>, len: u64, pos: u64) -> ZipCursor {
        ZipCursor {
            file,
            len,
            pos,
            buf: vec![0; HEADER_BUFFER],
            buf_at: 0,
            buf_len: 0,
        }
    }

    fn take_buffered(&mut self, out: &mut [u8]) -> Option<usize> {
        let off = usize::try_from(self.pos.checked_sub(self.buf_at)?).ok()?;
        let have = self.buf.get(off..self.buf_len).filter(|b| !b.is_empty())?;
        let n = have.len().min(out.len());
        out[..n].copy_from_slice(&have[..n]);
        self.pos = self.pos.saturating_add(n as u64);
        Some(n)
    }
}

impl Clone for ZipCursor {
    fn clone(&self) -> ZipCursor {
        ZipCursor::at(Arc::clone(&self.file), self.len, self.pos)
    }
}

impl Read for ZipCursor {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        if let Some(n) = self.take_buffered(out) {
            return Ok(n);
        }
        if out.len() >= self.buf.len() {
            let n = self.file.read_at(out, self.pos)?;
            self.pos = self.pos.saturating_add(n as u64);
            return Ok(n);
        }
        self.buf_len = self.file.read_at(&mut self.buf, self.pos)?;
        self.buf_at = self.pos;
        Ok(self.take_buffered(out).unwrap_or(0))
    }
}

impl Seek for ZipCursor {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let pos = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = pos.ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "seek outside the zip file")
        })?;
        Ok(self.pos)
    }
}

/// A regular file to write: where, with which mode, from which entry.
struct FileJob {
    index: usize,
    name: String,
    path: PathBuf,
    mode: u32,
    compressed: u64,
}

fn unreadable(names: Names, index: usize, e: &ZipError) -> anyhow::Error {
    anyhow!(
        "release {}: cannot read entry #{}: {}",
        names.archive.display(),
        index,
        describe(e)
    )
}

/// What a zip entry is, from its Unix mode (or its name, for a directory).
/// `None`: a symlink, whose target is its data.
fn kind(mode: Option<u32>, dir_by_name: bool) -> Option<Kind> {
    match mode.map(|m| m & S_IFMT) {
        Some(S_IFLNK) => None,
        _ if dir_by_name => Some(Kind::Dir),
        Some(S_IFDIR) => Some(Kind::Dir),
        Some(S_IFIFO) => Some(Kind::Special("FIFO")),
        Some(S_IFCHR) => Some(Kind::Special("character device")),
        Some(S_IFBLK) => Some(Kind::Special("block device")),
        Some(S_IFSOCK) => Some(Kind::Special("socket")),
        _ => Some(Kind::File),
    }
}

/// In archive order: place every entry in the tree, and list the regular
/// files to write, largest first so that the workers finish together.
fn plan(tree: &mut Tree, archive: &mut ZipArchive<ZipCursor>) -> Result<Vec<FileJob>> {
    let names = tree.names();
    let mut jobs: Vec<FileJob> = Vec::new();
    // Two names for one path ("a" and "./a"): the later entry wins, as
    // when writing in order, and two workers never race on one file.
    let mut by_path: HashMap<PathBuf, usize> = HashMap::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| unreadable(names, i, &e))?;
        let name = entry.name().to_owned();
        // The declared size may lie: it fails fast here, and the bytes
        // really written are counted against the same budget later.
        if entry.size() > names.max_bytes {
            return Err(names.too_large());
        }
        let mode = entry.unix_mode();
        let Some(kind) = kind(mode, entry.is_dir()) else {
            let mut target = Vec::new();
            (&mut entry)
                .take(MAX_LINK_TARGET + 1)
                .read_to_end(&mut target)
                .with_context(|| {
                    format!(
                        "release {}: cannot read entry '{}'",
                        names.archive.display(),
                        name
                    )
                })?;
            tree.place_symlink(&name, &target)?;
            continue;
        };
        let compressed = entry.compressed_size();
        let Some((path, mode)) = tree.place(&name, kind, mode)? else {
            continue;
        };
        let job = FileJob {
            index: i,
            name,
            path,
            mode,
            compressed,
        };
        match by_path.get(&job.path) {
            Some(&k) => jobs[k] = job,
            None => {
                by_path.insert(job.path.clone(), jobs.len());
                jobs.push(job);
            }
        }
    }
    jobs.sort_by_key(|j| Reverse(j.compressed));
    Ok(jobs)
}

/// Write the regular files, one worker per core (each with its own read
/// position in the zip), taking jobs in turn. The first failure stops
/// every worker and is the error returned.
fn write_files(
    names: Names,
    archive: &ZipArchive<ZipCursor>,
    jobs: &[FileJob],
    budget: &Budget,
    progress: &Progress,
) -> Result<()> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(jobs.len());
    let next = AtomicUsize::new(0);
    let work = |archive: &mut ZipArchive<ZipCursor>| {
        while !budget.stopped() {
            let Some(job) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) else {
                return;
            };
            match write_job(names, archive, job, budget, progress) {
                Ok(()) => {}
                Err(Halt::Stopped) => return,
                Err(Halt::Failed(e)) => return budget.fail(e),
            }
        }
    };
    std::thread::scope(|s| {
        for _ in 1..workers {
            let mut archive = archive.clone();
            s.spawn(move || work(&mut archive));
        }
        work(&mut archive.clone());
    });
    match budget.failure() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn write_job(
    names: Names,
    archive: &mut ZipArchive<ZipCursor>,
    job: &FileJob,
    budget: &Budget,
    progress: &Progress,
) -> Result<(), Halt> {
    let mut entry = archive
        .by_index(job.index)
        .map_err(|e| unreadable(names, job.index, &e))?;
    if entry.size() > budget.left() {
        return Err(Halt::Failed(names.too_large()));
    }
    tree::write_file(
        names, &job.name, &job.path, job.mode, &mut entry, budget, progress,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::fs::{self, Permissions};
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    use zip::write::SimpleFileOptions;
    use zip::{CompressionMethod, ZipWriter};

    enum E<'a> {
        File(&'a str, &'a [u8], u32),
        Dir(&'a str, u32),
        Link(&'a str, &'a str),
    }

    fn make_zip(path: &Path, entries: &[E]) {
        let mut w = ZipWriter::new(File::create(path).unwrap());
        for e in entries {
            match e {
                E::File(name, data, mode) => {
                    let opts = SimpleFileOptions::default().unix_permissions(*mode);
                    w.start_file(*name, opts).unwrap();
                    w.write_all(data).unwrap();
                }
                E::Dir(name, mode) => {
                    let opts = SimpleFileOptions::default().unix_permissions(*mode);
                    w.add_directory(*name, opts).unwrap();
                }
                E::Link(name, target) => {
                    w.add_symlink(*name, *target, SimpleFileOptions::default())
                        .unwrap();
                }
            }
        }
        w.finish().unwrap();
    }

    /// base/rel.zip and base/out/deploy as todir, so that `../x` lands in
    /// base/out and `../../x` in base, where the tests can look for it.
    struct Fixture {
        _tmp: tempfile::TempDir,
        base: PathBuf,
        zip: PathBuf,
        todir: PathBuf,
    }

    fn fixture(entries: &[E]) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let base = fs::canonicalize(tmp.path()).unwrap();
        let zip = base.join("rel.zip");
        let todir = base.join("out").join("deploy");
        make_zip(&zip, entries);
        Fixture {
            _tmp: tmp,
            base,
            zip,
            todir,
        }
    }

    impl Fixture {
        fn run(&self) -> Result<usize> {
            extract(&self.zip, &self.todir, u64::MAX)
        }

        /// Everything under base, except the zip and what is inside todir.
        fn outside_entries(&self) -> Vec<PathBuf> {
            fn walk(dir: &Path, skip: &[&Path], acc: &mut Vec<PathBuf>) {
                for e in fs::read_dir(dir).unwrap() {
                    let p = e.unwrap().path();
                    if skip.contains(&p.as_path()) {
                        continue;
                    }
                    acc.push(p.clone());
                    if fs::symlink_metadata(&p).unwrap().is_dir() {
                        walk(&p, skip, acc);
                    }
                }
            }
            let mut acc = Vec::new();
            walk(&self.base, &[&self.zip, &self.todir], &mut acc);
            // The parent directory of todir is expected.
            acc.retain(|p| p != &self.base.join("out"));
            acc
        }

        fn assert_nothing_outside(&self) {
            assert_eq!(self.outside_entries(), Vec::<PathBuf>::new());
        }
    }

    fn mode_of(p: &Path) -> u32 {
        fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    fn err_text(r: Result<usize>) -> String {
        format!("{:#}", r.expect_err("extraction should have been refused"))
    }

    #[test]
    fn files_dirs_and_modes_are_extracted() {
        let f = fixture(&[
            E::Dir("bin/", 0o750),
            E::File("bin/start.sh", b"#!/bin/sh\necho hi\n", 0o755),
            E::File("conf/app.toml", b"port = 8080\n", 0o640),
            E::File("README", b"hello", 0o644),
            E::Dir("empty/", 0o755),
        ]);
        assert_eq!(f.run().unwrap(), 5);
        let t = &f.todir;
        assert_eq!(
            fs::read_to_string(t.join("bin/start.sh")).unwrap(),
            "#!/bin/sh\necho hi\n"
        );
        assert_eq!(mode_of(&t.join("bin/start.sh")), 0o755);
        assert_eq!(mode_of(&t.join("bin")), 0o750);
        assert_eq!(mode_of(&t.join("conf/app.toml")), 0o640);
        // conf/ had no entry of its own: created with the default mode.
        assert!(t.join("conf").is_dir());
        assert_eq!(fs::read(t.join("README")).unwrap(), b"hello");
        assert!(t.join("empty").is_dir());
        f.assert_nothing_outside();
    }

    #[test]
    fn read_only_dir_entry_still_gets_its_files() {
        let f = fixture(&[E::Dir("ro/", 0o555), E::File("ro/data", b"x", 0o444)]);
        assert_eq!(f.run().unwrap(), 2);
        assert_eq!(mode_of(&f.todir.join("ro")), 0o555);
        assert_eq!(mode_of(&f.todir.join("ro/data")), 0o444);
        // Let the temp dir be cleaned up.
        fs::set_permissions(f.todir.join("ro"), Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn c2s_own_names_at_the_top_are_refused_in_every_spelling() {
        for entry in [
            E::File(".c2-tag", b"1234-5678", 0o644),
            E::File("./.c2-deploy", b"c2 proxy\n", 0o644),
            E::File("x/../.c2-release", b"other.zip\n", 0o644),
            E::Link(".c2-tag", "elsewhere"),
            E::Dir(".c2-tag/", 0o755),
        ] {
            let f = fixture(&[E::File("release.json", b"{}", 0o644), entry]);
            let msg = err_text(f.run());
            assert!(msg.contains("is named like c2's own files"), "{msg}");
            assert!(!f.todir.join(".c2-tag").exists());
        }
        // Deeper down, the name is the release's own business.
        let f = fixture(&[E::File("docs/.c2-tag", b"x", 0o644)]);
        assert_eq!(f.run().unwrap(), 1);
    }

    #[test]
    fn device_fifo_and_socket_entries_are_refused() {
        for (mode, what) in [
            (S_IFIFO | 0o644, "FIFO"),
            (S_IFCHR | 0o644, "character device"),
            (S_IFBLK | 0o644, "block device"),
            (S_IFSOCK | 0o644, "socket"),
        ] {
            let tmp = tempfile::tempdir().unwrap();
            let zip = tmp.path().join("rel.zip");
            let mut w = ZipWriter::new(File::create(&zip).unwrap());
            w.start_file("odd", SimpleFileOptions::default().unix_permissions(0o644))
                .unwrap();
            w.finish().unwrap();
            // The writer keeps only permission bits: the type goes into the
            // central directory's external attributes by hand.
            let mut bytes = fs::read(&zip).unwrap();
            let at = bytes.windows(4).position(|w| w == b"PK\x01\x02").unwrap() + 38;
            bytes[at..at + 4].copy_from_slice(&(mode << 16).to_le_bytes());
            fs::write(&zip, bytes).unwrap();
            let out = tmp.path().join("out");
            let msg = format!("{:#}", extract(&zip, &out, u64::MAX).unwrap_err());
            assert!(
                msg.ends_with(&format!(
                    "entry 'odd' is a {what}, which a release cannot hold"
                )),
                "{msg}"
            );
            assert!(!out.join("odd").exists());
        }
    }

    #[test]
    fn parent_dir_entry_is_refused() {
        let f = fixture(&[E::File("ok", b"1", 0o644), E::File("../x", b"evil", 0o644)]);
        let msg = err_text(f.run());
        assert!(msg.contains("rel.zip"), "{msg}");
        assert!(msg.contains("'../x'"), "{msg}");
        assert!(msg.contains("would be written outside"), "{msg}");
        assert!(msg.contains(&f.todir.display().to_string()), "{msg}");
        f.assert_nothing_outside();
    }

    #[test]
    fn nested_parent_dir_entry_is_refused() {
        let f = fixture(&[E::File("a/b/../../../x", b"evil", 0o644)]);
        assert!(err_text(f.run()).contains("would be written outside"));
        f.assert_nothing_outside();
    }

    #[test]
    fn absolute_entry_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let victim = fs::canonicalize(tmp.path()).unwrap().join("x");
        let f = fixture(&[E::File(victim.to_str().unwrap(), b"evil", 0o644)]);
        let msg = err_text(f.run());
        assert!(msg.contains("would be written outside"), "{msg}");
        assert!(!victim.exists());
        f.assert_nothing_outside();
    }

    #[test]
    fn windows_parent_dir_entry_is_refused() {
        let f = fixture(&[E::File("..\\x", b"evil", 0o644)]);
        let msg = err_text(f.run());
        assert!(msg.contains("would be written outside"), "{msg}");
        f.assert_nothing_outside();
    }

    #[test]
    fn harmless_dots_are_normalised() {
        let f = fixture(&[E::File("./a/../b/./c", b"ok", 0o644)]);
        f.run().unwrap();
        assert_eq!(fs::read(f.todir.join("b/c")).unwrap(), b"ok");
        assert!(!f.todir.join("a").exists());
    }

    #[test]
    fn absolute_symlink_is_refused() {
        let f = fixture(&[E::Link("etc", "/etc")]);
        let msg = err_text(f.run());
        assert!(msg.contains("'etc' -> '/etc'"), "{msg}");
        assert!(msg.contains("would point outside"), "{msg}");
        assert!(fs::symlink_metadata(f.todir.join("etc")).is_err());
        f.assert_nothing_outside();
    }

    #[test]
    fn climbing_symlink_is_refused() {
        let f = fixture(&[E::Link("sub/up", "../../x")]);
        let msg = err_text(f.run());
        assert!(msg.contains("'sub/up'"), "{msg}");
        assert!(msg.contains("would point outside"), "{msg}");
        f.assert_nothing_outside();
    }

    #[test]
    fn write_through_archive_symlink_is_refused() {
        let f = fixture(&[E::Link("link", ".."), E::File("link/evil", b"evil", 0o644)]);
        let msg = err_text(f.run());
        assert!(msg.contains("'link'"), "{msg}");
        assert!(!f.base.join("out/evil").exists());
        f.assert_nothing_outside();
    }

    #[test]
    fn inside_symlink_does_not_redirect_later_file() {
        // `link -> sub` is harmless, but since links are made last the file
        // lands in a real directory `link/`... which then conflicts with the
        // link: the archive is inconsistent and must fail, not write via it.
        let f = fixture(&[
            E::Dir("sub/", 0o755),
            E::Link("link", "sub"),
            E::File("link/f", b"x", 0o644),
        ]);
        let msg = err_text(f.run());
        assert!(msg.contains("a directory is in the way"), "{msg}");
        assert!(!f.todir.join("sub/f").exists());
        f.assert_nothing_outside();
    }

    #[test]
    fn symlink_chain_escaping_is_refused() {
        let f = fixture(&[E::Link("x", "."), E::Link("d/l", "../x/..")]);
        let msg = err_text(f.run());
        assert!(msg.contains("'d/l' -> '../x/..'"), "{msg}");
        assert!(msg.contains("would point outside"), "{msg}");
        // The offending link is not left behind.
        assert!(fs::symlink_metadata(f.todir.join("d/l")).is_err());
        f.assert_nothing_outside();
    }

    #[test]
    fn dangling_symlink_chain_escaping_is_refused() {
        // canonicalize() cannot resolve this one (the target does not
        // exist), but a later write through it would land outside.
        let f = fixture(&[E::Link("x", "."), E::Link("d/l", "../x/../nope")]);
        let msg = err_text(f.run());
        assert!(msg.contains("'d/l'"), "{msg}");
        f.assert_nothing_outside();
    }

    #[test]
    fn inside_symlink_is_kept() {
        let f = fixture(&[
            E::File("v1/file", b"version one", 0o644),
            E::Link("latest", "v1/file"),
            E::Link("dangling", "v2/not-yet"),
        ]);
        assert_eq!(f.run().unwrap(), 3);
        let latest = f.todir.join("latest");
        assert_eq!(fs::read_link(&latest).unwrap(), Path::new("v1/file"));
        assert_eq!(fs::read_to_string(&latest).unwrap(), "version one");
        assert_eq!(
            fs::read_link(f.todir.join("dangling")).unwrap(),
            Path::new("v2/not-yet")
        );
        f.assert_nothing_outside();
    }

    #[test]
    fn existing_outside_symlink_in_todir_is_not_followed() {
        // As if a previous unpack (or someone else) left a link to outside.
        let f = fixture(&[E::File("old/evil", b"evil", 0o644)]);
        fs::create_dir_all(&f.todir).unwrap();
        let elsewhere = f.base.join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, f.todir.join("old")).unwrap();
        let msg = err_text(f.run());
        assert!(msg.contains("'old/evil' would be written outside"), "{msg}");
        assert!(!elsewhere.join("evil").exists());
    }

    #[test]
    fn existing_symlink_at_file_path_is_replaced() {
        let f = fixture(&[E::File("config", b"new", 0o644)]);
        fs::create_dir_all(&f.todir).unwrap();
        let victim = f.base.join("victim");
        fs::write(&victim, b"precious").unwrap();
        std::os::unix::fs::symlink(&victim, f.todir.join("config")).unwrap();
        f.run().unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        let config = f.todir.join("config");
        assert!(!fs::symlink_metadata(&config).unwrap().is_symlink());
        assert_eq!(fs::read(&config).unwrap(), b"new");
    }

    #[test]
    fn existing_inside_symlink_dir_is_followed() {
        let f = fixture(&[E::File("current/app", b"v2", 0o644)]);
        fs::create_dir_all(f.todir.join("v2")).unwrap();
        std::os::unix::fs::symlink("v2", f.todir.join("current")).unwrap();
        f.run().unwrap();
        assert_eq!(fs::read(f.todir.join("v2/app")).unwrap(), b"v2");
    }

    #[test]
    fn entry_named_like_the_archive_in_todir() {
        // `unpack` downloads the zip into todir itself.
        let tmp = tempfile::tempdir().unwrap();
        let todir = tmp.path().join("deploy");
        fs::create_dir(&todir).unwrap();
        let zip = todir.join("rel.zip");
        make_zip(
            &zip,
            &[
                E::File("rel.zip", b"not the archive", 0o644),
                E::File("after", b"still readable", 0o644),
            ],
        );
        assert_eq!(extract(&zip, &todir, u64::MAX).unwrap(), 2);
        assert_eq!(fs::read(todir.join("rel.zip")).unwrap(), b"not the archive");
        assert_eq!(fs::read(todir.join("after")).unwrap(), b"still readable");
    }

    #[test]
    fn unpacking_stops_at_the_byte_limit() {
        let zeros = vec![0u8; 3 << 20];
        let fx = fixture(&[
            E::File("small", b"fits", 0o644),
            E::File("bomb", &zeros, 0o644),
        ]);
        let err = extract(&fx.zip, &fx.todir, 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unpacks to more than 1048576 bytes (limits.maxUnpackedBytes)"),
            "{err}"
        );
        // The budget holds across entries, and what fits is unpacked.
        let fx = fixture(&[
            E::File("a", &[1; 600], 0o644),
            E::File("b", &[2; 600], 0o644),
        ]);
        assert!(extract(&fx.zip, &fx.todir, 1000).is_err());
        assert_eq!(extract(&fx.zip, &fx.todir, 1200).unwrap(), 2);
    }

    #[test]
    fn not_a_zip_is_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let bogus = tmp.path().join("bogus.zip");
        fs::write(&bogus, b"this is not a zip archive at all").unwrap();
        let msg = format!(
            "{:#}",
            extract(&bogus, &tmp.path().join("out"), u64::MAX).unwrap_err()
        );
        assert!(
            msg.starts_with(&format!("{}: not a valid zip archive: ", bogus.display())),
            "{msg}"
        );
    }

    #[test]
    fn missing_zip_is_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("missing.zip");
        let msg = format!(
            "{:#}",
            extract(&missing, &tmp.path().join("out"), u64::MAX).unwrap_err()
        );
        assert!(msg.contains(&missing.display().to_string()), "{msg}");
    }

    #[test]
    fn large_entry_is_streamed() {
        const SIZE: usize = 50 * 1024 * 1024;
        let tmp = tempfile::tempdir().unwrap();
        let zip = tmp.path().join("big.zip");
        {
            let mut w = ZipWriter::new(File::create(&zip).unwrap());
            // Stored: deflating 50 MB in a debug build would dominate the
            // test; the extraction path (io::copy) is the same either way.
            let opts = SimpleFileOptions::default()
                .compression_method(CompressionMethod::Stored)
                .unix_permissions(0o644);
            w.start_file("big.bin", opts).unwrap();
            let chunk: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
            for _ in 0..SIZE / chunk.len() {
                w.write_all(&chunk).unwrap();
            }
            w.finish().unwrap();
        }
        let out = tmp.path().join("out");
        assert_eq!(extract(&zip, &out, u64::MAX).unwrap(), 1);
        let got = out.join("big.bin");
        assert_eq!(fs::metadata(&got).unwrap().len(), SIZE as u64);
        let mut head = [0u8; 300];
        File::open(&got).unwrap().read_exact(&mut head).unwrap();
        assert!(head.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
    }

    #[test]
    fn deflated_entry_round_trips() {
        let tmp = tempfile::tempdir().unwrap();
        let zip = tmp.path().join("d.zip");
        let data: Vec<u8> = b"abcdefgh".repeat(100_000);
        {
            let mut w = ZipWriter::new(File::create(&zip).unwrap());
            let opts = SimpleFileOptions::default()
                .compression_method(CompressionMethod::Deflated)
                .unix_permissions(0o600);
            w.start_file("d.txt", opts).unwrap();
            w.write_all(&data).unwrap();
            w.finish().unwrap();
        }
        let out = tmp.path().join("out");
        extract(&zip, &out, u64::MAX).unwrap();
        assert_eq!(fs::read(out.join("d.txt")).unwrap(), data);
        assert_eq!(mode_of(&out.join("d.txt")), 0o600);
    }

    /// Bytes that do not compress, from a fixed seed.
    fn noise(seed: &mut u64, len: usize) -> Vec<u8> {
        (0..len)
            .map(|_| {
                *seed ^= *seed << 13;
                *seed ^= *seed >> 7;
                *seed ^= *seed << 17;
                *seed as u8
            })
            .collect()
    }

    /// `n` files of `size` bytes spread over a few directories.
    fn many_files_zip(path: &Path, n: usize, size: usize) {
        let mut seed = 0x9e37_79b9_7f4a_7c15;
        let mut w = ZipWriter::new(File::create(path).unwrap());
        let opts = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Stored)
            .unix_permissions(0o644);
        for i in 0..n {
            w.start_file(format!("d{}/f{i}", i % 7), opts).unwrap();
            w.write_all(&noise(&mut seed, size)).unwrap();
        }
        w.finish().unwrap();
    }

    /// Relative path -> (bytes, permission bits) of every file below `dir`;
    /// fails on anything that is neither a file nor a directory.
    fn files_below(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, u32)> {
        fn walk(top: &Path, dir: &Path, acc: &mut BTreeMap<PathBuf, (Vec<u8>, u32)>) {
            for e in fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                let meta = fs::symlink_metadata(&p).unwrap();
                if meta.is_dir() {
                    walk(top, &p, acc);
                } else {
                    assert!(meta.is_file(), "{}", p.display());
                    let rel = p.strip_prefix(top).unwrap().to_path_buf();
                    acc.insert(rel, (fs::read(&p).unwrap(), mode_of(&p)));
                }
            }
        }
        let mut acc = BTreeMap::new();
        walk(dir, dir, &mut acc);
        acc
    }

    #[test]
    fn many_files_unpack_exactly_as_the_archive_says() {
        // Files of every size from empty to 30 KB, stored and deflated, in
        // nested directories, with four different modes.
        let tmp = tempfile::tempdir().unwrap();
        let zip = tmp.path().join("many.zip");
        let mut seed = 0x2545_f491_4f6c_dd1d;
        {
            let mut w = ZipWriter::new(File::create(&zip).unwrap());
            for i in 0..2000usize {
                let len = (i * 7919) % 30_000;
                let (method, data) = if i % 2 == 0 {
                    (CompressionMethod::Stored, noise(&mut seed, len))
                } else {
                    let line = format!("line of file {i}\n").into_bytes();
                    (CompressionMethod::Deflated, line.repeat(len / line.len()))
                };
                let opts = SimpleFileOptions::default()
                    .compression_method(method)
                    .unix_permissions([0o644, 0o755, 0o600, 0o640][i % 4]);
                w.start_file(format!("d{}/e{}/f{i}", i % 13, i % 5), opts)
                    .unwrap();
                w.write_all(&data).unwrap();
            }
            w.finish().unwrap();
        }
        let out = tmp.path().join("out");
        assert_eq!(extract(&zip, &out, u64::MAX).unwrap(), 2000);

        // The reference: the archive read in order, one entry after another.
        let mut archive = ZipArchive::new(File::open(&zip).unwrap()).unwrap();
        let mut want = BTreeMap::new();
        for i in 0..archive.len() {
            let mut e = archive.by_index(i).unwrap();
            let mut bytes = Vec::new();
            e.read_to_end(&mut bytes).unwrap();
            let mode = e.unix_mode().unwrap() & 0o777;
            want.insert(PathBuf::from(e.name()), (bytes, mode));
        }
        let got = files_below(&out);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>()
        );
        for (path, (bytes, mode)) in &want {
            let (got_bytes, got_mode) = &got[path];
            assert!(got_bytes == bytes, "{} differs", path.display());
            assert_eq!(got_mode, mode, "{}", path.display());
        }
    }

    #[test]
    fn a_failing_file_stops_every_worker_with_its_own_message() {
        let tmp = tempfile::tempdir().unwrap();
        let base = fs::canonicalize(tmp.path()).unwrap();
        let zip = base.join("many.zip");
        many_files_zip(&zip, 400, 10_000);
        let todir = base.join("out");
        // A directory where one file in the middle must go.
        fs::create_dir_all(todir.join("d4/f200")).unwrap();
        let msg = format!("{:#}", extract(&zip, &todir, u64::MAX).unwrap_err());
        assert_eq!(
            msg,
            format!(
                "release {}: cannot extract entry 'd4/f200' to {}: a directory is in the way",
                zip.display(),
                todir.join("d4/f200").display()
            )
        );

        // Once one worker has failed, the others take no further file, and
        // the first failure is the one reported.
        let out = base.join("out2");
        let mut tree = Tree::new(&zip, &out, u64::MAX).unwrap();
        let file = File::open(&zip).unwrap();
        let mut archive = ZipArchive::new(ZipCursor::new(file).unwrap()).unwrap();
        let jobs = plan(&mut tree, &mut archive).unwrap();
        assert_eq!(jobs.len(), 400);
        let budget = Budget::new(u64::MAX);
        budget.fail(anyhow!("first failure"));
        budget.fail(anyhow!("second failure"));
        let progress = Progress::bytes("test", None);
        let err = write_files(tree.names(), &archive, &jobs, &budget, &progress).unwrap_err();
        assert_eq!(err.to_string(), "first failure");
        assert_eq!(files_below(&out).len(), 0);

        // And a worker in the middle of a file stops at its next read.
        let budget = Budget::new(u64::MAX);
        let data = [7u8; 100];
        let mut reading = budget.meter(&data[..]);
        let mut buf = [0u8; 10];
        assert_eq!(reading.read(&mut buf).unwrap(), 10);
        budget.fail(anyhow!("disk full"));
        assert!(reading.read(&mut buf).is_err());
        assert!(matches!(reading.halt(tree.names()), Some(Halt::Stopped)));
    }

    #[test]
    fn the_byte_limit_holds_across_workers() {
        let tmp = tempfile::tempdir().unwrap();
        let zip = tmp.path().join("many.zip");
        many_files_zip(&zip, 400, 5_000);
        let out = tmp.path().join("out");
        let limit = 1_000_000;
        let msg = extract(&zip, &out, limit).unwrap_err().to_string();
        assert_eq!(
            msg,
            format!(
                "release {} unpacks to more than 1000000 bytes (limits.maxUnpackedBytes): raise that limit in the config if the release really is that large",
                zip.display()
            )
        );
        // Not one byte past the limit reached the disk, from any worker.
        let written: usize = files_below(&out).values().map(|(b, _)| b.len()).sum();
        assert!(written as u64 <= limit, "{written} bytes written");
        assert!(written > 0);
    }
}
