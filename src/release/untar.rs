//! Reading a release tarball (`.tar`, or gzip-compressed `.tar.gz` and
//! `.tgz`): every entry is handed to [`Tree`], which decides where (and
//! whether) it lands, exactly as for a zip.
//!
//! A tarball can only be read in order, so the work is split in two: this
//! thread decompresses and reads the entries, places them in the tree and
//! reads file contents, while a writer thread creates the files and
//! writes their bytes, so decompressing and writing overlap (what `tar
//! -xzf` gets from running gzip beside it). The `tar` crate parses the
//! format (long names, PAX headers); unpacking itself is c2's own.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use anyhow::{anyhow, Context, Result};
use tar::EntryType;

use super::tree::{self, Budget, Halt, Kind, Names, Tree, MAX_LINK_TARGET};
use crate::progress::Progress;

/// File contents travel to the writer in pieces of at most this size,
/// gathered in batches of about this size: one hand-over per batch, not
/// per file (waking the other thread costs more than writing a small file).
const CHUNK: usize = 256 * 1024;
/// Batches in flight between the two threads: bounds the memory used.
const IN_FLIGHT: usize = 8;

/// Extract every entry of the tarball at `path` (gzip-compressed if
/// `gzip`) into `todir` (created if missing), refusing to write more than
/// `max_bytes` in all. Returns the number of entries.
pub fn extract(path: &Path, gzip: bool, todir: &Path, max_bytes: u64) -> Result<usize> {
    let file = File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let len = file
        .metadata()
        .with_context(|| format!("{}: cannot open", path.display()))?
        .len();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // The bar follows the archive's bytes as they are read: the unpacked
    // size is not known before the end.
    let progress = Progress::bytes(&format!("unpacking {name}"), Some(len));
    let input = progress.reading(BufReader::with_capacity(CHUNK, file));
    let input: Box<dyn Read> = match gzip {
        true => Box::new(flate2::read::MultiGzDecoder::new(input)),
        false => Box::new(input),
    };
    let mut tree = Tree::new(path, todir, max_bytes)?;
    let names = tree.names();
    let budget = Budget::new(max_bytes);
    let (send, receive) = sync_channel::<Vec<Piece>>(IN_FLIGHT);
    let entries = std::thread::scope(|s| {
        let writer = s.spawn(|| write(names, receive, &budget));
        let read = read(&mut tree, input, send, &budget);
        if writer.join().is_err() {
            budget.fail(anyhow!("the writer of {} stopped", path.display()));
        }
        read
    });
    // The writer's failure comes first: the reader stops because of it.
    if let Some(e) = budget.failure() {
        return Err(e);
    }
    let entries = entries?;
    tree.finish()?;
    Ok(entries)
}

/// What the reader sends the writer.
enum Piece {
    /// A new file: entry name, where, with which mode.
    File(String, PathBuf, u32),
    Bytes(Vec<u8>),
    /// The current file is complete.
    End,
}

/// Pieces gathered for the writer, sent when about [`CHUNK`] bytes.
struct Batch {
    send: SyncSender<Vec<Piece>>,
    pieces: Vec<Piece>,
    bytes: usize,
}

impl Batch {
    /// Adds `piece`; false once the writer is gone (it failed).
    fn push(&mut self, piece: Piece) -> bool {
        if let Piece::Bytes(b) = &piece {
            self.bytes += b.len();
        }
        self.pieces.push(piece);
        self.bytes < CHUNK || self.flush()
    }

    fn flush(&mut self) -> bool {
        self.bytes = 0;
        let pieces = std::mem::take(&mut self.pieces);
        pieces.is_empty() || self.send.send(pieces).is_ok()
    }
}

/// Reads the entries in order, placing each in the tree and sending file
/// contents to the writer. Stops at the first failure, its own or the
/// writer's.
fn read(
    tree: &mut Tree,
    input: Box<dyn Read + '_>,
    send: SyncSender<Vec<Piece>>,
    budget: &Budget,
) -> Result<usize> {
    let mut batch = Batch {
        send,
        pieces: Vec::new(),
        bytes: 0,
    };
    let count = read_entries(tree, input, &mut batch, budget)?;
    batch.flush();
    Ok(count)
}

fn read_entries(
    tree: &mut Tree,
    input: Box<dyn Read + '_>,
    batch: &mut Batch,
    budget: &Budget,
) -> Result<usize> {
    let names = tree.names();
    let archive_name = names.archive.display().to_string();
    let bad = |e: std::io::Error| anyhow!("{archive_name}: not a valid tar archive: {e}");
    let mut archive = tar::Archive::new(input);
    let mut count = 0;
    for entry in archive.entries().map_err(bad)? {
        if budget.stopped() {
            break;
        }
        let mut entry = entry.map_err(bad)?;
        count += 1;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let header = entry.header();
        let mode = header.mode().ok();
        // The declared size may lie: it fails fast here, and the bytes
        // really read are counted against the same budget.
        let size = entry.size();
        if size > budget.left() {
            return Err(names.too_large());
        }
        let kind = match header.entry_type() {
            EntryType::Regular | EntryType::Continuous => Kind::File,
            EntryType::Directory => Kind::Dir,
            EntryType::Symlink => {
                let target = entry.link_name_bytes().unwrap_or_default();
                let target = &target[..target.len().min(MAX_LINK_TARGET as usize + 1)];
                tree.place_symlink(&name, target)?;
                continue;
            }
            EntryType::Link => {
                let target = entry.link_name_bytes().unwrap_or_default();
                tree.place_hard_link(&name, &String::from_utf8_lossy(&target))?;
                continue;
            }
            EntryType::Char => Kind::Special("character device"),
            EntryType::Block => Kind::Special("block device"),
            EntryType::Fifo => Kind::Special("FIFO"),
            // The crate reads long names and PAX records itself; a global
            // header says nothing about the files.
            EntryType::XGlobalHeader => continue,
            other => {
                return Err(anyhow!(
                    "release {archive_name}: entry '{name}' is of a kind c2 does not unpack ({other:?})"
                ))
            }
        };
        let Some((path, mode)) = tree.place(&name, kind, mode)? else {
            continue;
        };
        if !batch.push(Piece::File(name, path, mode)) {
            break;
        }
        let mut metered = budget.meter(&mut entry);
        loop {
            let want = usize::try_from(size).unwrap_or(CHUNK).clamp(1, CHUNK);
            let mut chunk = vec![0; want];
            let n = match read_full(&mut metered, &mut chunk) {
                Ok(n) => n,
                Err(e) => {
                    return match metered.halt(names) {
                        Some(Halt::Failed(e)) => Err(e),
                        Some(Halt::Stopped) => Ok(count),
                        None => Err(bad(e)),
                    }
                }
            };
            if n == 0 {
                break;
            }
            chunk.truncate(n);
            if !batch.push(Piece::Bytes(chunk)) {
                return Ok(count);
            }
        }
        if !batch.push(Piece::End) {
            break;
        }
    }
    Ok(count)
}

/// Fills `buf` as far as `data` goes: the number of bytes read.
fn read_full(data: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match data.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Writes the files the reader sends, in order; a failure stops both.
fn write(names: Names, receive: Receiver<Vec<Piece>>, budget: &Budget) {
    let mut current: Option<(String, PathBuf, u32, BufWriter<File>)> = None;
    for piece in receive.into_iter().flatten() {
        let done = match piece {
            Piece::File(name, path, mode) => match tree::create_file(names, &name, &path) {
                Ok(out) => {
                    current = Some((name, path, mode, out));
                    Ok(())
                }
                Err(Halt::Failed(e)) => Err(e),
                Err(Halt::Stopped) => return,
            },
            Piece::Bytes(bytes) => match &mut current {
                Some((name, path, _, out)) => out.write_all(&bytes).with_context(|| {
                    format!(
                        "release {}: cannot extract entry '{name}' to {}",
                        names.archive.display(),
                        path.display()
                    )
                }),
                None => Ok(()),
            },
            Piece::End => match current.take() {
                Some((name, path, mode, out)) => tree::finish_file(names, &name, &path, out, mode),
                None => Ok(()),
            },
        };
        if let Err(e) = done {
            // Dropping the receiver ends the reader's next send.
            return budget.fail(e);
        }
    }
}
