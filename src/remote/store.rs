//! Where remote state lives (SPEC §7, §9): an S3 prefix or a directory on
//! a shared filesystem, with the same layout:
//! `<base>/master/state.json` and `<base>/slaves/<label>/state.json`.
//!
//! Both backends give the master optimistic concurrency: a write succeeds
//! only if the master is still at the version that was read (S3:
//! `If-Match`/`If-None-Match: *`; directory: a lock and an atomic rename).

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::aws::s3::{self, Fetched, Precondition, S3Url};
use crate::fsutil;
use crate::proxy::state::{self, State};

/// A version of the master state, to write conditionally on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Version {
    /// There is no master state yet (it reads as empty).
    Missing,
    Tag(String),
}

/// The result of reading the master given the version already known.
#[derive(Debug)]
pub enum MasterRead {
    Unchanged,
    Changed(State, Version),
}

/// A slave's report (SPEC §7), mirroring `adl/state.adl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlaveReport {
    pub status: SlaveStatus,
    pub ip_address: String,
    pub host_name: String,
    pub state: State,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SlaveStatus {
    Ok,
    Error(String),
}

/// A slave report as listed, with when it was written.
#[derive(Debug, Clone)]
pub struct SlaveEntry {
    pub label: String,
    pub last_modified: Option<SystemTime>,
    pub report: Result<SlaveReport, String>,
}

pub trait RemoteStore {
    /// The location, for messages.
    fn describe(&self) -> String;
    /// Reads the master; with `known`, answers `Unchanged` cheaply when the
    /// master is still at that version.
    fn read_master(&self, known: Option<&Version>) -> Result<MasterRead>;
    /// Writes the master if it is still at `expected`; `Ok(false)` if
    /// someone else wrote it first.
    fn write_master(&self, state: &State, expected: &Version) -> Result<bool>;
    /// The master state and its version (a missing master is empty).
    fn master(&self) -> Result<(State, Version)> {
        match self.read_master(None)? {
            MasterRead::Changed(state, version) => Ok((state, version)),
            MasterRead::Unchanged => {
                unreachable!("a read without a known version returns the state")
            }
        }
    }
    fn write_slave(&self, label: &str, report: &SlaveReport) -> Result<()>;
    fn slaves(&self) -> Result<Vec<SlaveEntry>>;
    fn delete_slave(&self, label: &str) -> Result<()>;
}

/// Opens the store named by `remoteStateS3`: an `s3://` URL, or [new] an
/// absolute directory.
pub fn open(location: &str) -> Result<Box<dyn RemoteStore>> {
    if location.starts_with("s3://") {
        return Ok(Box::new(S3Remote {
            base: S3Url::parse(location)?,
        }));
    }
    let dir = Path::new(location);
    if !dir.is_absolute() {
        bail!("remoteStateS3 '{location}' must be an s3:// URL or an absolute directory");
    }
    Ok(Box::new(DirRemote {
        base: dir.to_path_buf(),
    }))
}

fn check_label(label: &str) -> Result<()> {
    if label.is_empty() || label.contains('/') || label == "." || label == ".." {
        bail!("invalid slave label '{label}'");
    }
    Ok(())
}

fn parse_report(bytes: &[u8], name: &str) -> Result<SlaveReport, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("{name}: invalid slave state: {e}"))
}

pub struct S3Remote {
    base: S3Url,
}

impl S3Remote {
    fn master(&self) -> S3Url {
        self.base.join("master/state.json")
    }

    fn slave(&self, label: &str) -> S3Url {
        self.base.join(&format!("slaves/{label}/state.json"))
    }
}

impl RemoteStore for S3Remote {
    fn describe(&self) -> String {
        self.base.to_string()
    }

    fn read_master(&self, known: Option<&Version>) -> Result<MasterRead> {
        let url = self.master();
        let etag = match known {
            Some(Version::Tag(t)) => Some(t.as_str()),
            _ => None,
        };
        match s3::get_if_changed(&url, etag)? {
            Fetched::NotModified => Ok(MasterRead::Unchanged),
            Fetched::Missing if known == Some(&Version::Missing) => Ok(MasterRead::Unchanged),
            Fetched::Missing => Ok(MasterRead::Changed(State::default(), Version::Missing)),
            Fetched::Found { bytes, etag } => {
                let text = String::from_utf8_lossy(&bytes);
                let state = state::parse(&text, &url.to_string())?;
                Ok(MasterRead::Changed(state, Version::Tag(etag)))
            }
        }
    }

    fn write_master(&self, state: &State, expected: &Version) -> Result<bool> {
        let pre = match expected {
            Version::Missing => Precondition::Absent,
            Version::Tag(t) => Precondition::Matches(t.clone()),
        };
        s3::put(&self.master(), state.to_json(), &pre)
    }

    fn write_slave(&self, label: &str, report: &SlaveReport) -> Result<()> {
        check_label(label)?;
        let bytes = serde_json::to_vec_pretty(report)?;
        s3::put(&self.slave(label), bytes, &Precondition::None).map(|_| ())
    }

    fn slaves(&self) -> Result<Vec<SlaveEntry>> {
        let prefix = self.base.join("slaves/");
        let mut found = Vec::new();
        for obj in s3::list(&prefix)? {
            let Some(rest) = obj.key.strip_prefix(&prefix.key) else {
                continue;
            };
            let Some(label) = rest.strip_suffix("/state.json") else {
                continue;
            };
            if label.contains('/') {
                continue;
            }
            let url = S3Url {
                bucket: prefix.bucket.clone(),
                key: obj.key.clone(),
            };
            found.push((label.to_string(), obj.last_modified, url));
        }
        let urls: Vec<S3Url> = found.iter().map(|(_, _, u)| u.clone()).collect();
        let mut out = Vec::new();
        for ((label, last_modified, url), fetched) in found.into_iter().zip(s3::get_many(&urls)) {
            let report = match fetched? {
                Fetched::Found { bytes, .. } => parse_report(&bytes, &url.to_string()),
                // Flushed between the listing and the read.
                Fetched::Missing | Fetched::NotModified => continue,
            };
            out.push(SlaveEntry {
                label,
                last_modified,
                report,
            });
        }
        out.sort_by(|a, b| a.label.cmp(&b.label));
        Ok(out)
    }

    fn delete_slave(&self, label: &str) -> Result<()> {
        check_label(label)?;
        s3::delete(&self.slave(label))
    }
}

pub struct DirRemote {
    base: PathBuf,
}

impl DirRemote {
    fn master(&self) -> PathBuf {
        self.base.join("master/state.json")
    }

    fn slave(&self, label: &str) -> PathBuf {
        self.base.join("slaves").join(label).join("state.json")
    }

    /// The version of the master file's current content.
    fn current(&self) -> Result<(Option<Vec<u8>>, Version)> {
        let path = self.master();
        match std::fs::read(&path) {
            Ok(bytes) => {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                bytes.hash(&mut h);
                let tag = format!("{:016x}-{}", h.finish(), bytes.len());
                Ok((Some(bytes), Version::Tag(tag)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((None, Version::Missing)),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }
}

impl RemoteStore for DirRemote {
    fn describe(&self) -> String {
        self.base.display().to_string()
    }

    fn read_master(&self, known: Option<&Version>) -> Result<MasterRead> {
        let (bytes, version) = self.current()?;
        if known == Some(&version) {
            return Ok(MasterRead::Unchanged);
        }
        let state = match bytes {
            Some(b) => state::parse(
                &String::from_utf8_lossy(&b),
                &self.master().display().to_string(),
            )?,
            None => State::default(),
        };
        Ok(MasterRead::Changed(state, version))
    }

    fn write_master(&self, state: &State, expected: &Version) -> Result<bool> {
        let path = self.master();
        let _lock = fsutil::lock(&self.base.join("master/.lock"))?;
        let (_, version) = self.current()?;
        if &version != expected {
            return Ok(false);
        }
        state.write(&path)?;
        Ok(true)
    }

    fn write_slave(&self, label: &str, report: &SlaveReport) -> Result<()> {
        check_label(label)?;
        let path = self.slave(label);
        std::fs::create_dir_all(path.parent().unwrap())
            .with_context(|| format!("cannot create {}", path.display()))?;
        fsutil::write_atomic(&path, &serde_json::to_vec_pretty(report)?, 0o644)
    }

    fn slaves(&self) -> Result<Vec<SlaveEntry>> {
        let dir = self.base.join("slaves");
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
        };
        let mut out = Vec::new();
        for e in entries.flatten() {
            let label = e.file_name().to_string_lossy().to_string();
            let path = e.path().join("state.json");
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            out.push(SlaveEntry {
                label,
                last_modified: std::fs::metadata(&path).and_then(|m| m.modified()).ok(),
                report: parse_report(&bytes, &path.display().to_string()),
            });
        }
        out.sort_by(|a, b| a.label.cmp(&b.label));
        Ok(out)
    }

    fn delete_slave(&self, label: &str) -> Result<()> {
        check_label(label)?;
        let dir = self.base.join("slaves").join(label);
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot remove {}", dir.display()))
    }
}
