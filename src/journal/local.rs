//! The journal on this machine: `<deploysDir>/frontend-proxy/lock.json`
//! and `history.jsonl`, one JSON event per line.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::PathBuf;

use anyhow::{Context, Result};

use super::{parse_event, Event, Journal, MAX_LOCK_BYTES};
use crate::fsutil;
use crate::layout::Layout;

/// The longest history line read back; a longer one is skipped.
const MAX_LINE_BYTES: u64 = 16 << 20;

pub(super) struct LocalJournal {
    layout: Layout,
}

impl LocalJournal {
    pub(super) fn new(layout: Layout) -> LocalJournal {
        LocalJournal { layout }
    }

    fn history_file(&self) -> PathBuf {
        self.layout.history_file()
    }
}

impl Journal for LocalJournal {
    fn lock_location(&self) -> String {
        self.layout.deploy_lock_file().display().to_string()
    }

    fn read_lock(&self) -> Result<Option<Vec<u8>>> {
        fsutil::read_bounded(&self.layout.deploy_lock_file(), MAX_LOCK_BYTES)
    }

    fn create_lock(&self, bytes: &[u8]) -> Result<bool> {
        fsutil::create_new_atomic(&self.layout.deploy_lock_file(), bytes, 0o644)
    }

    fn delete_lock(&self) -> Result<()> {
        let path = self.layout.deploy_lock_file();
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
        }
    }

    /// One write of one whole line, in append mode, under an exclusive
    /// lock on the file itself: concurrent runs never interleave their
    /// lines, and a run recording its change never waits for another
    /// run's deploy. A last line left unterminated (a crash or a full disk
    /// mid-append) is ended first, so the new event is never glued onto it.
    fn append(&self, event: &Event) -> Result<()> {
        let path = self.history_file();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let Some(mut file) = fsutil::open_regular(
            &path,
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .read(true)
                .mode(0o644),
        )?
        else {
            anyhow::bail!("cannot open {}", path.display());
        };
        file.lock()
            .with_context(|| format!("cannot lock {}", path.display()))?;
        let mut line = Vec::new();
        if !ends_a_line(&file).with_context(|| format!("cannot read {}", path.display()))? {
            line.push(b'\n');
        }
        serde_json::to_writer(&mut line, event)?;
        line.push(b'\n');
        file.write_all(&line)
            .and_then(|()| file.sync_data())
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// Reads from the end: only the lines needed for `limit` readable
    /// events are read and parsed, however long the history.
    fn recent(&self, limit: usize) -> Result<Vec<Event>> {
        let path = self.history_file();
        let Some(file) = fsutil::open_regular(&path, std::fs::OpenOptions::new().read(true))?
        else {
            return Ok(Vec::new());
        };
        let name = path.display().to_string();
        let lines =
            line_spans(BufReader::new(&file)).with_context(|| format!("cannot read {name}"))?;
        let mut events = Vec::new();
        for (i, &(start, len)) in lines.iter().enumerate().rev() {
            if events.len() >= limit {
                break;
            }
            let number = i + 1;
            if len > MAX_LINE_BYTES {
                crate::log::warn(&format!(
                    "{name} line {number}: longer than {MAX_LINE_BYTES} bytes; skipped"
                ));
                continue;
            }
            let mut line = vec![0; usize::try_from(len).unwrap_or(0)];
            file.read_exact_at(&mut line, start)
                .with_context(|| format!("cannot read {name}"))?;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match parse_event(&line, &format!("{name} line {number}")) {
                Ok(event) => events.push(event),
                Err(e) => crate::log::warn(&format!("{e:#}; skipped")),
            }
        }
        Ok(events)
    }
}

/// Whether `file` is empty or ends with a line break.
fn ends_a_line(file: &std::fs::File) -> std::io::Result<bool> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(true);
    }
    let mut last = [0u8];
    file.read_exact_at(&mut last, len - 1)?;
    Ok(last[0] == b'\n')
}

/// Where each line of `reader` starts and how long it is (without its line
/// break), in one pass that keeps no line in memory.
fn line_spans(mut reader: impl BufRead) -> std::io::Result<Vec<(u64, u64)>> {
    let mut spans = Vec::new();
    let (mut start, mut at) = (0u64, 0u64);
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        let n = buf.len();
        for (i, _) in buf.iter().enumerate().filter(|(_, b)| **b == b'\n') {
            let end = at + i as u64;
            spans.push((start, end - start));
            start = end + 1;
        }
        at += n as u64;
        reader.consume(n);
    }
    if at > start {
        spans.push((start, at - start));
    }
    Ok(spans)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_spans_cover_every_line_terminated_or_not() {
        let spans = |text: &str| line_spans(text.as_bytes()).unwrap();
        assert_eq!(spans(""), []);
        assert_eq!(spans("a\n"), [(0, 1)]);
        assert_eq!(spans("a\nbc\n\nd"), [(0, 1), (2, 2), (5, 0), (6, 1)]);
    }
}
