//! Remote state in etcd: the same documents as in S3, under
//! `<prefix>/master/state.json`, `<prefix>/slaves/<label>/state.json`,
//! `<prefix>/lock.json` and `<prefix>/history/…`, with what etcd does
//! better than an object store:
//!
//! - a master write is one transaction that checks the master's revision
//!   and that the deploy lock is absent, and writes the history event with
//!   the state;
//! - a slave is told of a master change at once (a watch), and a command
//!   waiting for the fleet is told of each report;
//! - a report lives on a lease the slave keeps alive, so the report of a
//!   slave that is gone disappears by itself.
//!
//! c2 is synchronous; each call runs on the shared runtime
//! ([`crate::aws::block_on`]) with a time-out, and fails in one line
//! naming the endpoints tried.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, GetOptions, Identity, PutOptions,
    TlsOptions, Txn, TxnOp, WatchOptions,
};

use crate::aws::block_on;
use crate::config::EtcdUrl;
use crate::names::SlaveLabel;
use crate::proxy::state::{self, State};

use super::Unreachable;

use super::store::{parse_report, Along, RemoteStore, SlaveEntry, SlaveReport, Version};

/// How long one request to one member may take, connecting included;
/// then the next member is tried.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// HTTP/2 pings that find a member which stopped answering (a watch on it
/// would otherwise wait in silence).
const PING_EVERY: Duration = Duration::from_secs(2);
const PING_TIMEOUT: Duration = Duration::from_secs(2);
/// The shortest life of a report once its slave stops.
const MIN_REPORT_TTL: Duration = Duration::from_secs(15);
/// How often a wait looks at the stop flag.
const TICK: Duration = Duration::from_millis(50);

/// A value and its modification revision.
type Found = (Vec<u8>, i64);

pub struct EtcdRemote {
    url: EtcdUrl,
    /// The member talked to (an index into the endpoints) and its client:
    /// one member at a time, the next one when it fails, so a member that
    /// hangs costs one time-out, not one per request.
    client: Mutex<(usize, Option<Client>)>,
    /// The revision of the store when the master was last read: a wait
    /// for the master watches from the next one, so no change between the
    /// read and the watch is missed.
    read_at: Mutex<i64>,
    reports: Mutex<Reports>,
}

/// This process's slave report and the lease that keeps it.
struct Reports {
    ttl: Duration,
    lease: Option<i64>,
    renewed: Option<Instant>,
    /// The last report written (key and bytes), to write again on a new
    /// lease if the old one expired while etcd could not be reached.
    last: Option<(String, Vec<u8>)>,
}

impl EtcdRemote {
    pub fn new(url: EtcdUrl) -> EtcdRemote {
        // Spread a fleet over the members.
        let first = std::process::id() as usize % url.endpoints.len().max(1);
        EtcdRemote {
            url,
            client: Mutex::new((first, None)),
            read_at: Mutex::new(0),
            reports: Mutex::new(Reports {
                ttl: MIN_REPORT_TTL,
                lease: None,
                renewed: None,
                last: None,
            }),
        }
    }

    fn key(&self, name: &str) -> String {
        match self.url.prefix.as_str() {
            "" => name.to_string(),
            prefix => format!("{prefix}/{name}"),
        }
    }

    /// The name of `key` under the prefix.
    fn name<'k>(&self, key: &'k str) -> Option<&'k str> {
        match self.url.prefix.as_str() {
            "" => Some(key),
            prefix => key.strip_prefix(prefix)?.strip_prefix('/'),
        }
    }

    /// One line naming what failed and where.
    fn failed(&self, what: &str, why: impl std::fmt::Display) -> anyhow::Error {
        anyhow::Error::new(Unreachable(format!(
            "cannot {what} at etcd {} (tried {}): {why}",
            self.url,
            self.url.endpoints.join(", ")
        )))
    }

    /// The client of the member in use, connected on first use.
    fn client(&self) -> Result<(usize, Client)> {
        let mut slot = self.client.lock().unwrap_or_else(|e| e.into_inner());
        let member = slot.0;
        if let Some(client) = slot.1.as_ref() {
            return Ok((member, client.clone()));
        }
        let options = self.options()?;
        let scheme = if self.url.tls { "https" } else { "http" };
        let endpoint = format!("{scheme}://{}", self.url.endpoints[member]);
        let client = block_on(async {
            tokio::time::timeout(REQUEST_TIMEOUT, Client::connect([endpoint], Some(options))).await
        })
        .map_err(|_| self.failed("connect", "timed out"))?
        .map_err(|e| self.failed("connect", reason(&e)))?;
        slot.1 = Some(client.clone());
        Ok((member, client))
    }

    /// Moves on from `member` (it failed) to the next one.
    fn next_member(&self, member: usize) {
        let mut slot = self.client.lock().unwrap_or_else(|e| e.into_inner());
        if slot.0 == member {
            *slot = ((member + 1) % self.url.endpoints.len(), None);
        }
    }

    fn options(&self) -> Result<ConnectOptions> {
        let mut options = ConnectOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_timeout(REQUEST_TIMEOUT)
            .with_keep_alive(PING_EVERY, PING_TIMEOUT)
            .with_keep_alive_while_idle(true)
            // A member cut off from its peers answers nothing stale.
            .with_require_leader(true);
        if let (Ok(user), Ok(password)) = (
            std::env::var("C2_ETCD_USER"),
            std::env::var("C2_ETCD_PASSWORD"),
        ) {
            options = options.with_user(user, password);
        }
        if self.url.tls {
            let mut tls = TlsOptions::new();
            if let Some(files) = &self.url.files {
                if let Some(ca) = &files.ca_file {
                    let pem = std::fs::read(ca)
                        .with_context(|| format!("cannot read etcd.caFile {}", ca.display()))?;
                    tls = tls.ca_certificate(Certificate::from_pem(pem));
                }
                match (&files.cert_file, &files.key_file) {
                    (Some(cert), Some(key)) => {
                        let cert_pem = std::fs::read(cert).with_context(|| {
                            format!("cannot read etcd.certFile {}", cert.display())
                        })?;
                        let key_pem = std::fs::read(key).with_context(|| {
                            format!("cannot read etcd.keyFile {}", key.display())
                        })?;
                        tls = tls.identity(Identity::from_pem(cert_pem, key_pem));
                    }
                    (None, None) => {}
                    _ => anyhow::bail!("etcd.certFile and etcd.keyFile go together"),
                }
            }
            options = options.with_tls(tls);
        }
        Ok(options)
    }

    /// Runs one request, bounded in time, on each member in turn until one
    /// answers. (A write whose answer was lost may have happened: the
    /// master's conditional write then finds the change made.)
    fn run<T>(
        &self,
        what: &str,
        request: impl AsyncFn(Client) -> Result<T, etcd_client::Error>,
    ) -> Result<T> {
        let mut last = None;
        for _ in 0..self.url.endpoints.len() {
            let member = self.client.lock().unwrap_or_else(|e| e.into_inner()).0;
            let client = match self.client() {
                Ok((_, client)) => client,
                Err(e) => {
                    self.next_member(member);
                    last = Some(e);
                    continue;
                }
            };
            let answer =
                block_on(async { tokio::time::timeout(REQUEST_TIMEOUT, request(client)).await });
            match answer {
                Ok(Ok(answer)) => return Ok(answer),
                Ok(Err(e)) if !out_of_reach(&e) => return Err(self.failed(what, reason(&e))),
                Ok(Err(e)) => last = Some(self.failed(what, reason(&e))),
                Err(_) => last = Some(self.failed(what, "timed out")),
            }
            self.next_member(member);
        }
        Err(last.unwrap_or_else(|| self.failed(what, "no endpoint")))
    }

    /// The value of `name` and its modification revision, with the
    /// store's revision at the read.
    fn get(&self, name: &str) -> Result<(Option<Found>, i64)> {
        let key = self.key(name);
        let response = self.run(&format!("read {key}"), async |mut c| {
            c.get(key.clone(), None).await
        })?;
        let revision = response.header().map_or(0, |h| h.revision());
        let found = response
            .kvs()
            .first()
            .map(|kv| (kv.value().to_vec(), kv.mod_revision()));
        Ok((found, revision))
    }

    /// Every key under `name/` with its value.
    fn get_prefix(&self, name: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let key = self.key(name);
        let response = self.run(&format!("list {key}"), async |mut c| {
            c.get(key.clone(), Some(GetOptions::new().with_prefix()))
                .await
        })?;
        Ok(response
            .kvs()
            .iter()
            .filter_map(|kv| Some((kv.key_str().ok()?.to_string(), kv.value().to_vec())))
            .collect())
    }

    /// The slave entries among `keys` (`slaves/<label>/state.json` and
    /// its `written` time), by label.
    fn entries(&self, keys: Vec<(String, Vec<u8>)>) -> Vec<SlaveEntry> {
        let mut reports: std::collections::BTreeMap<String, SlaveEntry> = Default::default();
        let mut written = std::collections::BTreeMap::new();
        for (key, value) in keys {
            let Some(rest) = self.name(&key).and_then(|n| n.strip_prefix("slaves/")) else {
                continue;
            };
            let Some((label, file)) = rest.split_once('/') else {
                continue;
            };
            match file {
                "state.json" => {
                    reports.insert(
                        label.to_string(),
                        SlaveEntry {
                            label: label.to_string(),
                            last_modified: None,
                            report: parse_report(&value, &key),
                        },
                    );
                }
                "written" => {
                    let time = std::str::from_utf8(&value)
                        .ok()
                        .and_then(|t| humantime::parse_rfc3339(t).ok());
                    written.insert(label.to_string(), time);
                }
                _ => {}
            }
        }
        for (label, entry) in reports.iter_mut() {
            entry.last_modified = written.get(label).copied().flatten();
        }
        reports.into_values().collect()
    }

    fn master_key(&self) -> String {
        self.key("master/state.json")
    }

    /// A lease for this slave's report, granted if it has none.
    fn lease(&self) -> Result<i64> {
        let (lease, ttl) = {
            let reports = self.reports.lock().unwrap_or_else(|e| e.into_inner());
            (reports.lease, reports.ttl)
        };
        if let Some(id) = lease {
            return Ok(id);
        }
        let seconds = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
        let granted = self.run("grant a lease", async |mut c| {
            c.lease_grant(seconds, None).await
        })?;
        let mut reports = self.reports.lock().unwrap_or_else(|e| e.into_inner());
        reports.lease = Some(granted.id());
        reports.renewed = Some(Instant::now());
        Ok(granted.id())
    }

    /// Puts the report on the lease; on a lease that expired meanwhile
    /// (etcd was out of reach for longer than it), on a new one.
    fn put_report(&self, key: &str, bytes: &[u8]) -> Result<()> {
        for _ in 0..2 {
            let lease = self.lease()?;
            let written_key = format!("{}/written", key.trim_end_matches("/state.json"));
            let now = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
            let txn = Txn::new().and_then([
                TxnOp::put(
                    key,
                    bytes.to_vec(),
                    Some(PutOptions::new().with_lease(lease)),
                ),
                TxnOp::put(written_key, now, Some(PutOptions::new().with_lease(lease))),
            ]);
            match self.run("write the slave report", async |mut c| {
                c.txn(txn.clone()).await
            }) {
                Ok(_) => {
                    let mut reports = self.reports.lock().unwrap_or_else(|e| e.into_inner());
                    reports.last = Some((key.to_string(), bytes.to_vec()));
                    return Ok(());
                }
                Err(e) if format!("{e:#}").contains("lease not found") => {
                    self.forget_lease();
                }
                Err(e) => return Err(e),
            }
        }
        Err(self.failed("write the slave report", "its lease keeps expiring"))
    }

    fn forget_lease(&self) {
        let mut reports = self.reports.lock().unwrap_or_else(|e| e.into_inner());
        reports.lease = None;
        reports.renewed = None;
    }

    /// Renews the report's lease when a third of its life has passed; if
    /// it expired (etcd was out of reach), writes the report again on a
    /// new one.
    fn renew_if_due(&self) -> Result<()> {
        let (lease, due, last) = {
            let reports = self.reports.lock().unwrap_or_else(|e| e.into_inner());
            let due = reports
                .renewed
                .is_none_or(|at| at.elapsed() >= reports.ttl / 3);
            (reports.lease, due, reports.last.clone())
        };
        let Some(id) = lease else {
            return Ok(());
        };
        if !due {
            return Ok(());
        }
        let ttl = self.run("renew the report's lease", async |mut c| {
            let (mut keeper, mut answers) = c.lease_keep_alive(id).await?;
            keeper.keep_alive().await?;
            Ok(answers.message().await?.map_or(0, |a| a.ttl()))
        })?;
        if ttl > 0 {
            let mut reports = self.reports.lock().unwrap_or_else(|e| e.into_inner());
            reports.renewed = Some(Instant::now());
            return Ok(());
        }
        self.forget_lease();
        if let Some((key, bytes)) = last {
            crate::log::info("The report's lease had expired: writing the report again");
            self.put_report(&key, &bytes)?;
        }
        Ok(())
    }

    /// Waits up to `up_to` for a change under `key` (a prefix if
    /// `prefix`) from `revision` on (0: from now), renewing the report's
    /// lease meanwhile. `Ok(true)` on a change.
    fn watch(&self, key: String, prefix: bool, revision: i64, up_to: Duration) -> Result<bool> {
        let (member, client) = self.client()?;
        let deadline = Instant::now() + up_to;
        let mut options = WatchOptions::new();
        if prefix {
            options = options.with_prefix();
        }
        if revision > 0 {
            options = options.with_start_revision(revision);
        }
        let stream = block_on(async {
            let mut c = client.clone();
            tokio::time::timeout(REQUEST_TIMEOUT, c.watch(key, Some(options))).await
        });
        let mut stream = match stream {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                self.next_member(member);
                return Err(self.failed("watch", reason(&e)));
            }
            Err(_) => {
                self.next_member(member);
                return Err(self.failed("watch", "timed out"));
            }
        };
        loop {
            let step = deadline.saturating_duration_since(Instant::now()).min(TICK);
            if step.is_zero() || crate::signals::stop_requested() {
                return Ok(false);
            }
            let message = block_on(async { tokio::time::timeout(step, stream.message()).await });
            match message {
                Err(_) => self.renew_if_due()?,
                Ok(Err(e)) => {
                    self.next_member(member);
                    return Err(self.failed("watch", reason(&e)));
                }
                // Closed, cancelled (compacted past `revision`) or
                // changed: look again.
                Ok(Ok(None)) => return Ok(true),
                Ok(Ok(Some(answer))) if answer.canceled() || !answer.events().is_empty() => {
                    return Ok(true)
                }
                Ok(Ok(Some(_))) => {}
            }
        }
    }
}

/// Whether `e` says the member could not be asked or could not answer
/// (another member may), rather than that the request was refused.
fn out_of_reach(e: &etcd_client::Error) -> bool {
    use tonic::Code;
    match e {
        etcd_client::Error::GRpcStatus(status) => matches!(
            status.code(),
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown
        ),
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        _ => false,
    }
}

/// What etcd or the way to it said, short: the server's message, or the
/// innermost cause of a transport failure ("Connection refused").
fn reason(e: &etcd_client::Error) -> String {
    match e {
        etcd_client::Error::GRpcStatus(status) => {
            let mut innermost: &dyn std::error::Error = status;
            while let Some(cause) = innermost.source() {
                innermost = cause;
            }
            let message = match status.message() {
                // tonic's words for the request time-out.
                "Timeout expired" => "timed out",
                message => message,
            };
            match innermost.to_string() {
                cause if cause == status.to_string() || cause == status.message() => {
                    message.to_string()
                }
                cause => format!("{message}: {cause}"),
            }
        }
        e => e.to_string(),
    }
}

impl RemoteStore for EtcdRemote {
    fn describe(&self) -> String {
        self.url.to_string()
    }

    fn master(&self) -> Result<(State, Version)> {
        let (found, revision) = self.get("master/state.json")?;
        *self.read_at.lock().unwrap_or_else(|e| e.into_inner()) = revision;
        match found {
            None => Ok((State::default(), Version::Missing)),
            Some((bytes, modified)) => {
                let state = state::parse_object(&bytes, &self.master_key(), "state")?;
                Ok((state, Version::Tag(modified.to_string())))
            }
        }
    }

    fn master_if_changed(&self, known: &Version) -> Result<Option<(State, Version)>> {
        let (state, version) = self.master()?;
        Ok((version != *known).then_some((state, version)))
    }

    fn write_master(
        &self,
        state: &State,
        expected: &Version,
        along: Option<&Along>,
    ) -> Result<bool> {
        let key = self.master_key();
        let mut when = vec![match expected {
            Version::Missing => Compare::version(key.clone(), CompareOp::Equal, 0),
            Version::Tag(t) => {
                let revision: i64 = t.parse().context("not a version of this etcd store")?;
                Compare::mod_revision(key.clone(), CompareOp::Equal, revision)
            }
        }];
        let mut then = vec![TxnOp::put(key.clone(), state.to_json(), None)];
        if let Some(along) = along {
            when.push(Compare::version(
                self.key(along.unless),
                CompareOp::Equal,
                0,
            ));
            let (name, bytes) = &along.event;
            then.push(TxnOp::put(self.key(name), bytes.clone(), None));
        }
        let txn = Txn::new().when(when).and_then(then);
        let answer = self.run("write the master state", async |mut c| {
            c.txn(txn.clone()).await
        })?;
        Ok(answer.succeeded())
    }

    fn writes_history(&self) -> bool {
        true
    }

    /// Its own two keys, not every slave's: a slave asks each round.
    fn slave(&self, label: &SlaveLabel) -> Result<Option<SlaveEntry>> {
        let keys = self.get_prefix(&format!("slaves/{label}/"))?;
        Ok(self.entries(keys).pop())
    }

    fn write_slave(&self, label: &SlaveLabel, report: &SlaveReport) -> Result<()> {
        let key = self.key(&format!("slaves/{label}/state.json"));
        self.put_report(&key, &serde_json::to_vec_pretty(report)?)
    }

    fn slaves(&self) -> Result<Vec<SlaveEntry>> {
        let keys = self.get_prefix("slaves/")?;
        Ok(self.entries(keys))
    }

    fn delete_slave(&self, entry: &SlaveEntry) -> Result<()> {
        let key = self.key(&format!("slaves/{}/", entry.label));
        self.run("delete a slave report", async |mut c| {
            c.delete(
                key.clone(),
                Some(etcd_client::DeleteOptions::new().with_prefix()),
            )
            .await
        })
        .map(|_| ())
    }

    fn locate(&self, name: &str) -> String {
        format!("{}/{name}", self.url)
    }

    fn read_file(&self, name: &str, max: u64) -> Result<Option<Vec<u8>>> {
        let (found, _) = self.get(name)?;
        match found {
            Some((bytes, _)) if bytes.len() as u64 > max => {
                Err(crate::fsutil::TooLarge::error(self.locate(name), max))
            }
            found => Ok(found.map(|(bytes, _)| bytes)),
        }
    }

    fn create_file(&self, name: &str, bytes: &[u8]) -> Result<bool> {
        let key = self.key(name);
        let txn = Txn::new()
            .when([Compare::version(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key.clone(), bytes.to_vec(), None)]);
        let answer = self.run(&format!("create {key}"), async |mut c| {
            c.txn(txn.clone()).await
        })?;
        Ok(answer.succeeded())
    }

    fn put_file(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let key = self.key(name);
        self.run(&format!("write {key}"), async |mut c| {
            c.put(key.clone(), bytes.to_vec(), None).await
        })
        .map(|_| ())
    }

    fn delete_file(&self, name: &str) -> Result<()> {
        let key = self.key(name);
        self.run(&format!("delete {key}"), async |mut c| {
            c.delete(key.clone(), None).await
        })
        .map(|_| ())
    }

    fn list_files(&self, dir: &str) -> Result<Vec<String>> {
        let key = self.key(&format!("{dir}/"));
        let response = self.run(&format!("list {key}"), async |mut c| {
            c.get(
                key.clone(),
                Some(GetOptions::new().with_prefix().with_keys_only()),
            )
            .await
        })?;
        let mut names: Vec<String> = response
            .kvs()
            .iter()
            .filter_map(|kv| Some(self.name(kv.key_str().ok()?)?.to_string()))
            .filter(|n| !n[dir.len() + 1..].contains('/'))
            .collect();
        names.sort();
        Ok(names)
    }

    fn wait_for_master(&self, up_to: Duration) -> Result<bool> {
        let from = *self.read_at.lock().unwrap_or_else(|e| e.into_inner()) + 1;
        self.watch(self.master_key(), false, from, up_to)
    }

    fn wait_for_slaves(&self, up_to: Duration) {
        if self.watch(self.key("slaves/"), true, 0, up_to).is_err() {
            // Out of reach: the caller's next read says so.
            std::thread::sleep(up_to);
        }
    }

    fn keep_reports_for(&self, repeat: Duration) {
        let ttl = (repeat * 3).max(MIN_REPORT_TTL);
        let mut reports = self.reports.lock().unwrap_or_else(|e| e.into_inner());
        reports.ttl = Duration::from_secs(ttl.as_secs_f64().ceil() as u64);
    }

    fn reports_expire(&self) -> bool {
        true
    }
}
