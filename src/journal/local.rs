//! The journal on this machine: `<deploysDir>/frontend-proxy/lock.json`
//! and `history.jsonl`, one JSON event per line.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
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
    /// run's deploy.
    fn append(&self, event: &Event) -> Result<()> {
        let path = self.history_file();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let mut line = serde_json::to_vec(event)?;
        line.push(b'\n');
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o644)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        file.lock()
            .with_context(|| format!("cannot lock {}", path.display()))?;
        file.write_all(&line)
            .and_then(|()| file.sync_data())
            .with_context(|| format!("cannot write {}", path.display()))
    }

    fn recent(&self, limit: usize) -> Result<Vec<Event>> {
        let path = self.history_file();
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let name = path.display().to_string();
        let mut reader = BufReader::new(file);
        let mut last: VecDeque<(usize, Vec<u8>)> = VecDeque::new();
        let mut number = 0;
        loop {
            number += 1;
            let mut line = Vec::new();
            let read = (&mut reader)
                .take(MAX_LINE_BYTES + 1)
                .read_until(b'\n', &mut line)
                .with_context(|| format!("cannot read {name}"))?;
            if read == 0 {
                break;
            }
            if line.len() as u64 > MAX_LINE_BYTES {
                crate::log::warn(&format!(
                    "{name} line {number}: longer than {MAX_LINE_BYTES} bytes; skipped"
                ));
                skip_line(&mut reader).with_context(|| format!("cannot read {name}"))?;
                continue;
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            last.push_back((number, line));
            if last.len() > limit {
                last.pop_front();
            }
        }
        Ok(last
            .into_iter()
            .rev()
            .filter_map(|(number, line)| {
                parse_event(&line, &format!("{name} line {number}"))
                    .map_err(|e| crate::log::warn(&format!("{e:#}; skipped")))
                    .ok()
            })
            .collect())
    }
}

/// Consumes the rest of an over-long line.
fn skip_line(reader: &mut impl BufRead) -> std::io::Result<()> {
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(());
        }
        match buf.iter().position(|&b| b == b'\n') {
            Some(i) => {
                reader.consume(i + 1);
                return Ok(());
            }
            None => {
                let n = buf.len();
                reader.consume(n);
            }
        }
    }
}
