//! Where remote state lives: an S3 prefix or a directory on
//! a shared filesystem, with the same layout:
//! `<base>/master/state.json` and `<base>/slaves/<label>/state.json`.
//!
//! Both backends give the master optimistic concurrency: a write succeeds
//! only if the master is still at the version that was read (S3:
//! `If-Match`/`If-None-Match: *`; directory: a lock and an atomic rename).

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::aws::s3::{self, Fetched, Precondition, S3Url};
use crate::config::RemoteLocation;
use crate::fsutil;
use crate::heal::DeployHealth;
use crate::names::SlaveLabel;
use crate::proxy::state::{self, State};

/// A version of the master state, to write conditionally on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Version {
    /// There is no master state yet (it reads as empty).
    Missing,
    Tag(String),
}

impl Version {
    /// The tag, as a slave report names it.
    pub fn tag(&self) -> Option<&str> {
        match self {
            Version::Missing => None,
            Version::Tag(t) => Some(t),
        }
    }
}

/// A slave's report, mirroring `adl/state.adl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlaveReport {
    pub status: SlaveStatus,
    pub ip_address: String,
    pub host_name: String,
    #[serde(deserialize_with = "state::object")]
    pub state: State,
    /// [new] The version of the master state this round worked from (an
    /// ETag, or the directory backend's content hash): what tells
    /// `--await-slaves` that a report answers a change, whatever the
    /// clocks say. Absent in reports of older slaves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_version: Option<String>,
    /// [new] The health of each deploy that has a health check, by label.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub deploys: BTreeMap<String, DeployHealth>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SlaveStatus {
    Ok,
    Error(String),
}

/// A slave report as listed, with when it was written. `label` is the
/// name the listing found, one path component, whether or not it is a
/// valid slave label (a hand-made `slaves/a b/` is listed and flushed too).
#[derive(Debug, Clone)]
pub struct SlaveEntry {
    pub label: String,
    pub last_modified: Option<SystemTime>,
    pub report: Result<SlaveReport, String>,
}

impl SlaveEntry {
    /// How long ago the report was written. A date in the future (a clock
    /// far off, a hand-made file) counts as just as far off, so such a
    /// report is neither live forever nor never flushed.
    pub fn age(&self, now: SystemTime) -> Option<Duration> {
        let t = self.last_modified?;
        Some(now.duration_since(t).unwrap_or_else(|e| e.duration()))
    }
}

pub(crate) trait RemoteStore {
    /// The location, for messages.
    fn describe(&self) -> String;
    /// The master state and its version (a missing master is empty).
    fn master(&self) -> Result<(State, Version)>;
    /// The master if it is no longer at version `known` (cheap when it is).
    fn master_if_changed(&self, known: &Version) -> Result<Option<(State, Version)>>;
    /// Writes the master if it is still at `expected`; `Ok(false)` if
    /// someone else wrote it first. A backend that can make it one
    /// transaction (etcd) also refuses (`Ok(false)`) while `along`'s lock
    /// exists, and writes `along`'s history event with the state; the
    /// others leave both to the caller (see [`writes_history`]).
    ///
    /// [`writes_history`]: RemoteStore::writes_history
    fn write_master(
        &self,
        state: &State,
        expected: &Version,
        along: Option<&Along>,
    ) -> Result<bool>;
    /// Whether [`write_master`](RemoteStore::write_master) writes the
    /// history event with the state.
    fn writes_history(&self) -> bool {
        false
    }
    /// A slave's report and when it was written, if it has one.
    fn slave(&self, label: &SlaveLabel) -> Result<Option<SlaveEntry>>;
    fn write_slave(&self, label: &SlaveLabel, report: &SlaveReport) -> Result<()>;
    fn slaves(&self) -> Result<Vec<SlaveEntry>>;
    /// Deletes the report `slaves` listed as `entry`.
    fn delete_slave(&self, entry: &SlaveEntry) -> Result<()>;

    // Other files under the base, by a name c2 chooses (`lock.json`,
    // `history/<event>.json`).
    /// The file's URL or path, for messages.
    fn locate(&self, name: &str) -> String;
    /// The file's bytes if it exists; an error if it holds more than `max`.
    fn read_file(&self, name: &str, max: u64) -> Result<Option<Vec<u8>>>;
    /// Creates the file only if it does not exist yet; `Ok(false)` if it does.
    fn create_file(&self, name: &str, bytes: &[u8]) -> Result<bool>;
    fn put_file(&self, name: &str, bytes: &[u8]) -> Result<()>;
    /// Removes the file; a missing one is fine.
    fn delete_file(&self, name: &str) -> Result<()>;
    /// The files in folder `dir`, sorted, named as the other methods take
    /// them (`history/<event>.json`).
    fn list_files(&self, dir: &str) -> Result<Vec<String>>;
    /// Several files at once (`None`: gone meanwhile), in the order asked;
    /// one after the other unless the backend does better (S3).
    fn read_files(&self, names: &[String]) -> Vec<Result<Option<Vec<u8>>>> {
        names
            .iter()
            .map(|n| self.read_file(n, MAX_FILE_BYTES))
            .collect()
    }

    // What a backend that is told of changes (etcd) does better than
    // polling; the defaults poll.
    /// Waits up to `up_to` for the master to change from the version last
    /// read; `Ok(true)` as soon as it did. Returns early on SIGTERM.
    fn wait_for_master(&self, up_to: Duration) -> Result<bool> {
        crate::signals::sleep(up_to);
        Ok(false)
    }
    /// Waits up to `up_to`, returning early when a slave report changed.
    fn wait_for_slaves(&self, up_to: Duration) {
        std::thread::sleep(up_to);
    }
    /// How long a report outlives a slave that stopped (etcd: the lease
    /// of its report), given how often it updates; polling backends keep
    /// reports until `slave-flush`.
    fn keep_reports_for(&self, _repeat: Duration) {}
    /// Whether reports expire by themselves (so `slave-flush` has nothing
    /// to do).
    fn reports_expire(&self) -> bool {
        false
    }
}

/// What goes with a master write: the deploy lock that must be absent,
/// and the history event (its file name and bytes).
pub(crate) struct Along {
    pub unless: &'static str,
    pub event: (String, Vec<u8>),
}

/// The most one file of a batch ([`RemoteStore::read_files`]) may hold.
const MAX_FILE_BYTES: u64 = 16 << 20;

/// Opens the store named by `remoteStateS3`.
pub(crate) fn open(location: &RemoteLocation) -> Box<dyn RemoteStore> {
    match location {
        RemoteLocation::S3(base) => Box::new(S3Remote { base: base.clone() }),
        RemoteLocation::Dir(base) => Box::new(DirRemote { base: base.clone() }),
        RemoteLocation::Etcd(url) => Box::new(super::etcd::EtcdRemote::new(url.clone())),
    }
}

pub(super) fn parse_report(bytes: &[u8], name: &str) -> Result<SlaveReport, String> {
    state::parse_object(bytes, name, "slave state").map_err(|e| format!("{e:#}"))
}

pub struct S3Remote {
    base: S3Url,
}

impl S3Remote {
    fn master_url(&self) -> S3Url {
        self.base.join("master/state.json")
    }

    fn slave_url(&self, label: &SlaveLabel) -> S3Url {
        self.base.join(&format!("slaves/{label}/state.json"))
    }

    /// The master, or `None` when it is still at `known`.
    fn fetch_master(&self, known: Option<&Version>) -> Result<Option<(State, Version)>> {
        let url = self.master_url();
        let etag = match known {
            Some(Version::Tag(t)) => Some(t.as_str()),
            _ => None,
        };
        match s3::get_if_changed(&url, etag)? {
            Fetched::NotModified => Ok(None),
            Fetched::Missing if known == Some(&Version::Missing) => Ok(None),
            Fetched::Missing => Ok(Some((State::default(), Version::Missing))),
            Fetched::Found { bytes, etag, .. } => {
                let state = state::parse_object(&bytes, &url.to_string(), "state")?;
                Ok(Some((state, Version::Tag(etag))))
            }
        }
    }
}

impl RemoteStore for S3Remote {
    fn describe(&self) -> String {
        self.base.to_string()
    }

    fn master(&self) -> Result<(State, Version)> {
        // Without a known version, every answer carries the state.
        Ok(self
            .fetch_master(None)?
            .unwrap_or((State::default(), Version::Missing)))
    }

    fn master_if_changed(&self, known: &Version) -> Result<Option<(State, Version)>> {
        self.fetch_master(Some(known))
    }

    fn write_master(&self, state: &State, expected: &Version, _: Option<&Along>) -> Result<bool> {
        let pre = match expected {
            Version::Missing => Precondition::Absent,
            Version::Tag(t) => Precondition::Matches(t.clone()),
        };
        s3::put(&self.master_url(), state.to_json(), &pre)
    }

    fn slave(&self, label: &SlaveLabel) -> Result<Option<SlaveEntry>> {
        let url = self.slave_url(label);
        Ok(match s3::get_if_changed(&url, None)? {
            Fetched::Found {
                bytes,
                last_modified,
                ..
            } => Some(SlaveEntry {
                label: label.to_string(),
                last_modified,
                report: parse_report(&bytes, &url.to_string()),
            }),
            Fetched::Missing | Fetched::NotModified => None,
        })
    }

    fn write_slave(&self, label: &SlaveLabel, report: &SlaveReport) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(report)?;
        s3::put(&self.slave_url(label), bytes, &Precondition::None).map(|_| ())
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
            // One report that cannot be read (too large, say) is that
            // slave's error, not the whole listing's.
            let report = match fetched {
                Ok(Fetched::Found { bytes, .. }) => parse_report(&bytes, &url.to_string()),
                // Flushed between the listing and the read.
                Ok(Fetched::Missing | Fetched::NotModified) => continue,
                Err(e) => Err(format!("{e:#}")),
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

    fn delete_slave(&self, entry: &SlaveEntry) -> Result<()> {
        s3::delete(
            &self
                .base
                .join(&format!("slaves/{}/state.json", entry.label)),
        )
    }

    fn locate(&self, name: &str) -> String {
        self.base.join(name).to_string()
    }

    fn read_file(&self, name: &str, max: u64) -> Result<Option<Vec<u8>>> {
        s3::get_bounded(&self.base.join(name), max)
    }

    fn create_file(&self, name: &str, bytes: &[u8]) -> Result<bool> {
        s3::put(&self.base.join(name), bytes.to_vec(), &Precondition::Absent)
    }

    fn put_file(&self, name: &str, bytes: &[u8]) -> Result<()> {
        s3::put(&self.base.join(name), bytes.to_vec(), &Precondition::None).map(|_| ())
    }

    fn delete_file(&self, name: &str) -> Result<()> {
        s3::delete(&self.base.join(name))
    }

    fn list_files(&self, dir: &str) -> Result<Vec<String>> {
        let mut names: Vec<String> = s3::list_folder(&self.base.join(dir))?
            .into_iter()
            .map(|o| format!("{dir}/{}", o.key))
            .collect();
        names.sort();
        Ok(names)
    }

    fn read_files(&self, names: &[String]) -> Vec<Result<Option<Vec<u8>>>> {
        let urls: Vec<S3Url> = names.iter().map(|n| self.base.join(n)).collect();
        s3::get_many(&urls)
            .into_iter()
            .zip(&urls)
            .map(|(fetched, url)| match fetched? {
                Fetched::Found { bytes, .. } if bytes.len() as u64 > MAX_FILE_BYTES => {
                    Err(crate::fsutil::TooLarge::error(url, MAX_FILE_BYTES))
                }
                Fetched::Found { bytes, .. } => Ok(Some(bytes)),
                Fetched::Missing | Fetched::NotModified => Ok(None),
            })
            .collect()
    }
}

pub struct DirRemote {
    base: PathBuf,
}

impl DirRemote {
    fn master_file(&self) -> PathBuf {
        self.base.join("master/state.json")
    }

    fn slave_file(&self, label: &str) -> PathBuf {
        self.base.join("slaves").join(label).join("state.json")
    }

    /// The version of the master file's current content.
    fn current(&self) -> Result<(Option<Vec<u8>>, Version)> {
        match fsutil::read_bounded(&self.master_file(), state::MAX_STATE_BYTES)? {
            Some(bytes) => {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                bytes.hash(&mut h);
                let tag = format!("{:016x}-{}", h.finish(), bytes.len());
                Ok((Some(bytes), Version::Tag(tag)))
            }
            None => Ok((None, Version::Missing)),
        }
    }

    /// The report at `path` as listed under `label`, if there is one.
    fn entry(label: String, path: &std::path::Path) -> Option<SlaveEntry> {
        let report = match fsutil::read_bounded(path, state::MAX_STATE_BYTES) {
            Ok(None) => return None,
            Ok(Some(bytes)) => parse_report(&bytes, &path.display().to_string()),
            Err(e) => Err(format!("{e:#}")),
        };
        Some(SlaveEntry {
            label,
            last_modified: std::fs::metadata(path).and_then(|m| m.modified()).ok(),
            report,
        })
    }
}

impl RemoteStore for DirRemote {
    fn describe(&self) -> String {
        self.base.display().to_string()
    }

    fn master(&self) -> Result<(State, Version)> {
        let (bytes, version) = self.current()?;
        let state = match bytes {
            Some(b) => state::parse_object(&b, &self.master_file().display().to_string(), "state")?,
            None => State::default(),
        };
        Ok((state, version))
    }

    fn master_if_changed(&self, known: &Version) -> Result<Option<(State, Version)>> {
        let (state, version) = self.master()?;
        Ok((version != *known).then_some((state, version)))
    }

    fn write_master(&self, state: &State, expected: &Version, _: Option<&Along>) -> Result<bool> {
        let path = self.master_file();
        let _lock = fsutil::lock(&self.base.join("master/.lock"))?;
        let (_, version) = self.current()?;
        if &version != expected {
            return Ok(false);
        }
        state.write(&path)?;
        Ok(true)
    }

    fn slave(&self, label: &SlaveLabel) -> Result<Option<SlaveEntry>> {
        Ok(DirRemote::entry(
            label.to_string(),
            &self.slave_file(label.as_str()),
        ))
    }

    fn write_slave(&self, label: &SlaveLabel, report: &SlaveReport) -> Result<()> {
        let dir = self.base.join("slaves").join(label.as_str());
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        fsutil::write_atomic(
            &self.slave_file(label.as_str()),
            &serde_json::to_vec_pretty(report)?,
            0o644,
        )
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
            out.extend(DirRemote::entry(label, &e.path().join("state.json")));
        }
        out.sort_by(|a, b| a.label.cmp(&b.label));
        Ok(out)
    }

    fn delete_slave(&self, entry: &SlaveEntry) -> Result<()> {
        let dir = self.base.join("slaves").join(&entry.label);
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot remove {}", dir.display()))
    }

    fn locate(&self, name: &str) -> String {
        self.base.join(name).display().to_string()
    }

    fn read_file(&self, name: &str, max: u64) -> Result<Option<Vec<u8>>> {
        fsutil::read_bounded(&self.base.join(name), max)
    }

    fn create_file(&self, name: &str, bytes: &[u8]) -> Result<bool> {
        fsutil::create_new_atomic(&self.base.join(name), bytes, 0o644)
    }

    fn put_file(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let path = self.base.join(name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        fsutil::write_atomic(&path, bytes, 0o644)
    }

    fn delete_file(&self, name: &str) -> Result<()> {
        let path = self.base.join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
        }
    }

    fn list_files(&self, dir: &str) -> Result<Vec<String>> {
        let path = self.base.join(dir);
        let entries = match std::fs::read_dir(&path) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("cannot list {}", path.display())),
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| e.file_name().into_string().ok())
            // Temporary files of writes under way.
            .filter(|n| !n.starts_with('.'))
            .map(|n| format!("{dir}/{n}"))
            .collect();
        names.sort();
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_and_the_state_in_it_must_be_objects() {
        let e = parse_report(b"[]", "r.json").unwrap_err();
        assert_eq!(
            e,
            "r.json: invalid slave state: expected a JSON object, found an array"
        );
        let nested =
            br#"{"status": "ok", "ipAddress": "10.0.0.1", "hostName": "web1", "state": []}"#;
        let e = parse_report(nested, "r.json").unwrap_err();
        assert!(
            e.contains("invalid state: expected a JSON object, found an array"),
            "{e}"
        );
        let good = br#"{"status": "ok", "ipAddress": "10.0.0.1", "hostName": "web1", "state": {}}"#;
        assert_eq!(parse_report(good, "r.json").unwrap().master_version, None);
        assert_eq!(
            parse_report(good, "r.json").unwrap().state,
            State::default()
        );
    }
}
