//! `<deploysDir>/frontend-proxy/health.json`: what c2 remembers of each
//! watched deploy between rounds and between runs (failed checks in a row,
//! restarts, the last error), and which boot of the machine it last saw.
//! Written whole or not at all; a file that cannot be read is warned about
//! and started afresh: it is bookkeeping, never a reason to stop watching.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::policy::Record;
use crate::{fsutil, log};

/// The most `health.json` may hold.
const MAX_BYTES: u64 = 16 << 20;

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Book {
    /// The machine's boot, as [`boot_marker`] tells it, at the last round.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<String>,
    /// By deploy label: the deploys of the state that have a health check.
    #[serde(default)]
    pub deploys: BTreeMap<String, Record>,
}

impl Book {
    /// The book at `path`; a missing one is empty, an unreadable one is
    /// warned about and empty.
    pub fn load(path: &Path) -> Book {
        let read = fsutil::read_bounded(path, MAX_BYTES).and_then(|bytes| match bytes {
            None => Ok(Book::default()),
            Some(bytes) => crate::proxy::state::parse_object(
                &bytes,
                &path.display().to_string(),
                "health bookkeeping",
            ),
        });
        read.unwrap_or_else(|e| {
            log::warn(&format!("{e:#}; starting it afresh"));
            Book::default()
        })
    }

    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let mut bytes = serde_json::to_vec_pretty(self)?;
        bytes.push(b'\n');
        fsutil::write_atomic(path, &bytes, 0o644)
    }
}

/// What changes when this machine, or the container it is, starts again:
/// the kernel's boot time and the start time of process 1. `None` where
/// `/proc` does not tell.
pub fn boot_marker() -> Option<String> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let btime = stat.lines().find_map(|l| l.strip_prefix("btime "))?.trim();
    // Field 22 of /proc/1/stat, counted after the command name, which
    // ends with the last ')'.
    let init = std::fs::read_to_string("/proc/1/stat").ok()?;
    let (_, rest) = init.rsplit_once(')')?;
    let started = rest.split_whitespace().nth(19)?;
    Some(format!("{btime}/{started}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_book_starts_afresh() {
        let dir = tempfile::tempdir().unwrap();
        // On a machine with nothing deployed yet, the directory is not there.
        let path = dir.path().join("frontend-proxy/health.json");
        assert_eq!(Book::load(&path), Book::default());
        let book = Book {
            boot: Some("1/2".into()),
            deploys: BTreeMap::new(),
        };
        book.save(&path).unwrap();
        assert_eq!(Book::load(&path), book);
        for bad in ["{", "[]", "{\"deploys\": 3}", "\u{0}\u{1}"] {
            std::fs::write(&path, bad).unwrap();
            assert_eq!(Book::load(&path), Book::default(), "{bad:?}");
        }
    }

    #[test]
    fn the_boot_marker_is_stable_within_a_boot() {
        let marker = boot_marker().expect("Linux tells the boot time");
        assert_eq!(boot_marker(), Some(marker.clone()));
        let (btime, started) = marker.split_once('/').unwrap();
        assert!(btime.parse::<u64>().is_ok() && started.parse::<u64>().is_ok());
    }
}
