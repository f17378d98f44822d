//! Zipping a release directory deterministically: the same contents give
//! the same bytes, whatever the files' timestamps or the order the
//! filesystem lists them in. Entries are sorted by path, every timestamp is
//! the zip format's earliest (1980-01-01 00:00), permission bits are kept,
//! and symlinks are stored as symlinks (the unpacker recreates them).
//!
//! What cannot be a release entry is refused here, naming the entry: a
//! symlink pointing outside the directory, a device, fifo or socket, a name
//! that is not UTF-8, or more bytes than a deploy may unpack.

use std::fs::{File, Metadata};
use std::io::{BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

use crate::release::tree::target_stays_inside;

/// One entry, by its path inside the release (`/`-separated).
enum Entry {
    Dir { mode: u32 },
    File { path: PathBuf, mode: u32, size: u64 },
    Link { target: String },
}

/// Zips the directory `dir` into a new file `zip`.
pub(super) fn pack(dir: &Path, zip: &Path, max_bytes: u64) -> Result<()> {
    let mut entries = Vec::new();
    walk(dir, &mut Vec::new(), &mut entries)?;
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let total = entries.iter().fold(0u64, |sum, (_, e)| match e {
        Entry::File { size, .. } => sum.saturating_add(*size),
        _ => sum,
    });
    if total > max_bytes {
        bail!("its files hold more than {max_bytes} bytes (limits.maxUnpackedBytes), which a deploy would refuse to unpack: raise that limit in the config if the release really is that large");
    }
    let file = File::create(zip).with_context(|| format!("cannot create {}", zip.display()))?;
    let mut out = ZipWriter::new(BufWriter::new(file));
    for (name, entry) in &entries {
        write_entry(&mut out, name, entry).with_context(|| format!("cannot zip '{name}'"))?;
    }
    let mut file = out
        .finish()
        .with_context(|| format!("cannot write {}", zip.display()))?;
    file.flush()
        .with_context(|| format!("cannot write {}", zip.display()))?;
    Ok(())
}

fn options(mode: u32) -> SimpleFileOptions {
    SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .last_modified_time(DateTime::default())
        .unix_permissions(mode)
}

fn write_entry<W: Write + std::io::Seek>(
    out: &mut ZipWriter<W>,
    name: &str,
    entry: &Entry,
) -> Result<()> {
    match entry {
        Entry::Dir { mode } => out.add_directory(name, options(*mode))?,
        Entry::Link { target } => out.add_symlink(name, target, options(0o777))?,
        Entry::File { path, mode, size } => {
            // Zip64 only where needed, so small releases stay readable by
            // any unzip.
            let large = *size >= u64::from(u32::MAX);
            out.start_file(name, options(*mode).large_file(large))?;
            let mut from =
                File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
            std::io::copy(&mut from, out)?;
        }
    }
    Ok(())
}

/// Collects the entries below `dir`/`rel`, refusing what cannot be one.
fn walk(dir: &Path, rel: &mut Vec<String>, acc: &mut Vec<(String, Entry)>) -> Result<()> {
    let here = rel.iter().fold(dir.to_path_buf(), |p, c| p.join(c));
    let listing =
        std::fs::read_dir(&here).with_context(|| format!("cannot list {}", here.display()))?;
    for item in listing {
        let item = item.with_context(|| format!("cannot list {}", here.display()))?;
        let Some(component) = item.file_name().to_str().map(str::to_string) else {
            bail!(
                "'{}' has a name that is not UTF-8, which a zip entry cannot hold",
                item.path().display()
            );
        };
        let meta = item
            .path()
            .symlink_metadata()
            .with_context(|| format!("cannot read {}", item.path().display()))?;
        rel.push(component);
        let name = rel.join("/");
        let entry = entry(&item.path(), &meta, &name, rel.len() - 1)?;
        let is_dir = matches!(entry, Entry::Dir { .. });
        acc.push((name, entry));
        if is_dir {
            walk(dir, rel, acc)?;
        }
        rel.pop();
    }
    Ok(())
}

fn entry(path: &Path, meta: &Metadata, name: &str, depth: usize) -> Result<Entry> {
    let kind = meta.file_type();
    let mode = meta.permissions().mode() & 0o777;
    if kind.is_dir() {
        return Ok(Entry::Dir { mode });
    }
    if kind.is_file() {
        return Ok(Entry::File {
            path: path.to_path_buf(),
            mode,
            size: meta.len(),
        });
    }
    if kind.is_symlink() {
        let target =
            std::fs::read_link(path).with_context(|| format!("cannot read symlink '{name}'"))?;
        let Some(text) = target.to_str() else {
            bail!("symlink '{name}' has a target that is not UTF-8");
        };
        if !target_stays_inside(depth, &target) {
            bail!("symlink '{name}' -> '{text}' points outside the release");
        }
        return Ok(Entry::Link {
            target: text.to_string(),
        });
    }
    bail!("'{name}' is not a regular file, directory or symlink (a device, fifo or socket cannot be released)")
}
