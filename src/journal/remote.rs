//! The journal beside the master state: `<base>/lock.json`, and one object
//! per event under `<base>/history/`, named so that listing order is time
//! order.

use std::hash::{BuildHasher, Hasher};
use std::time::SystemTime;

use anyhow::Result;

use super::{parse_event, Event, Journal, MAX_LOCK_BYTES};
use crate::config::RemoteLocation;
use crate::remote::store::{self, RemoteStore};

pub(crate) const LOCK: &str = "lock.json";
const HISTORY: &str = "history";

pub(super) struct RemoteJournal {
    store: Box<dyn RemoteStore>,
}

impl RemoteJournal {
    pub(super) fn new(location: &RemoteLocation) -> RemoteJournal {
        RemoteJournal {
            store: store::open(location),
        }
    }
}

impl Journal for RemoteJournal {
    fn lock_location(&self) -> String {
        self.store.locate(LOCK)
    }

    fn read_lock(&self) -> Result<Option<Vec<u8>>> {
        self.store.read_file(LOCK, MAX_LOCK_BYTES)
    }

    fn create_lock(&self, bytes: &[u8]) -> Result<bool> {
        self.store.create_file(LOCK, bytes)
    }

    fn delete_lock(&self) -> Result<()> {
        self.store.delete_file(LOCK)
    }

    fn append(&self, event: &Event) -> Result<()> {
        let (name, bytes) = entry(event)?;
        self.store.put_file(&name, &bytes)
    }

    /// Newest first, a batch at a time, until `limit` readable events:
    /// an unreadable object is skipped, not counted.
    fn recent(&self, limit: usize) -> Result<Vec<Event>> {
        let names = self.store.list_files(HISTORY)?;
        let mut events = Vec::new();
        let mut newest = names.iter().rev().cloned().peekable();
        while events.len() < limit && newest.peek().is_some() {
            let batch: Vec<String> = newest.by_ref().take(limit - events.len()).collect();
            for (name, bytes) in batch.iter().zip(self.store.read_files(&batch)) {
                let location = self.store.locate(name);
                match bytes {
                    Ok(Some(bytes)) => match parse_event(&bytes, &location) {
                        Ok(event) => events.push(event),
                        Err(e) => crate::log::warn(&format!("{e:#}; skipped")),
                    },
                    // Removed between the listing and the read.
                    Ok(None) => {}
                    Err(e) => crate::log::warn(&format!("{e:#}; skipped")),
                }
            }
        }
        Ok(events)
    }
}

/// The file an event is kept in beside the master: its name and bytes.
pub(crate) fn entry(event: &Event) -> Result<(String, Vec<u8>)> {
    let mut bytes = serde_json::to_vec(event)?;
    bytes.push(b'\n');
    Ok((event_name(&event.host), bytes))
}

/// `history/2026-11-23T03:12:09.123Z-<host>-<random>.json`: milliseconds
/// keep the order of events written in the same second, the host and a
/// random part keep two writers apart.
fn event_name(host: &str) -> String {
    let time = humantime::format_rfc3339_millis(SystemTime::now());
    let host: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("{HISTORY}/{time}-{host}-{:016x}.json", hasher.finish())
}
