//! Fleet acknowledgement (`--await-slaves`): a master command that knows
//! whether the fleet followed. Before writing, enough slaves must be live
//! (and, for connect and rollback, every live slave must run the deploy
//! traffic goes to); after writing, the command waits until every live
//! slave reports the change, or says which did not.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Result};

use crate::proxy::state::State;
use crate::refusal::refused;

use super::status::FLUSH_AGE;
use super::store::{RemoteStore, SlaveEntry, SlaveReport, SlaveStatus, Version};

/// How often the slaves' reports are read while waiting.
const POLL: Duration = Duration::from_millis(250);

/// What a master command changes, to recognise it in a slave's state.
#[derive(Debug, Clone)]
pub(crate) enum Affects {
    /// A deploy is created (start): a slave that fails to create it has
    /// answered too, with an error, and is not waited for.
    Created(String),
    /// A deploy goes (stop).
    Deploy(String),
    /// An endpoint's connection changes (connect, disconnect, rollback).
    Endpoint(String),
}

/// How a slave stands against the master after a change.
enum Answer {
    InSync,
    /// Reported an error written after the change: it answered, and failed.
    Failed(String),
    Lagging(String),
}

pub(crate) struct Fleet<'a> {
    remote: &'a dyn RemoteStore,
}

impl<'a> Fleet<'a> {
    pub(crate) fn new(remote: &'a dyn RemoteStore) -> Fleet<'a> {
        Fleet { remote }
    }

    /// The live slaves (a report younger than 5 minutes); the others are
    /// named on stderr as ignored. Fewer than `min` live slaves is an error:
    /// an empty fleet must not pass a pipeline silently.
    pub(crate) fn live(&self, min: usize) -> Result<Vec<SlaveEntry>> {
        let now = SystemTime::now();
        let (live, silent): (Vec<SlaveEntry>, Vec<SlaveEntry>) = self
            .remote
            .slaves()?
            .into_iter()
            .partition(|s| s.age(now).is_some_and(|age| age < FLUSH_AGE));
        if !silent.is_empty() {
            let names: Vec<&str> = silent.iter().map(|s| s.label.as_str()).collect();
            crate::log::warn(&format!(
                "ignoring slaves silent for 5 minutes: {}",
                names.join(", ")
            ));
        }
        if live.len() < min {
            refused!(
                Conflict,
                "{} live slave(s), fewer than --min-slaves {min}: nothing changed",
                live.len()
            );
        }
        Ok(live)
    }

    /// Refuses to route traffic to `deploy` unless every `live` slave runs
    /// it and reports ok, naming each that does not and why.
    pub(crate) fn check_deploy_ok(live: &[SlaveEntry], deploy: &str) -> Result<()> {
        let lacking: Vec<String> = live
            .iter()
            .filter_map(|s| match &s.report {
                Ok(r) if runs(r, deploy) => None,
                Ok(r) => Some(format!("{} ({})", s.label, why_not(r, deploy))),
                Err(e) => Some(format!("{} (unreadable report: {e})", s.label)),
            })
            .collect();
        if !lacking.is_empty() {
            refused!(
                Conflict,
                "not every live slave runs deploy {deploy}: {}; nothing changed (--force goes ahead)",
                lacking.join(", ")
            );
        }
        Ok(())
    }

    /// Waits until every slave of `live` reports `affects` as `master` (at
    /// `version`, read after the change) has it, showing `n/m slaves in
    /// sync` on stderr. For a start, a slave whose error report answers
    /// the change (see [`Answered`]) has answered; if any did, or the wait
    /// times out, the error names each slave not in sync and why.
    pub(crate) fn wait(
        &self,
        live: &[SlaveEntry],
        (master, version): (&State, Version),
        affects: &Affects,
        since: SystemTime,
        timeout: Duration,
    ) -> Result<()> {
        let labels: Vec<&str> = live.iter().map(|s| s.label.as_str()).collect();
        let mut answered = Answered {
            versions: version.tag().map(str::to_string).into_iter().collect(),
            latest: version,
            since,
        };
        let deadline = Instant::now() + timeout;
        let mut progress = Progress::new(labels.len());
        loop {
            answered.follow(self.remote)?;
            let reports: BTreeMap<String, SlaveEntry> = self
                .remote
                .slaves()?
                .into_iter()
                .map(|s| (s.label.clone(), s))
                .collect();
            let answers: Vec<(&str, Answer)> = labels
                .iter()
                .map(|l| (*l, answer(reports.get(*l), master, affects, &answered)))
                .collect();
            let in_sync = answers
                .iter()
                .filter(|(_, a)| matches!(a, Answer::InSync))
                .count();
            progress.show(in_sync);
            let failed: Vec<String> = answers
                .iter()
                .filter_map(|(l, a)| match a {
                    Answer::Failed(why) => Some(format!("{l} ({why})")),
                    _ => None,
                })
                .collect();
            let lagging: Vec<String> = answers
                .iter()
                .filter_map(|(l, a)| match a {
                    Answer::Lagging(why) => Some(format!("{l} ({why})")),
                    _ => None,
                })
                .collect();
            if lagging.is_empty() {
                progress.done();
                if failed.is_empty() {
                    return Ok(());
                }
                bail!(
                    "{} of {} slaves failed to apply the change: {}",
                    failed.len(),
                    labels.len(),
                    failed.join(", ")
                );
            }
            if Instant::now() >= deadline {
                progress.done();
                let mut all = failed;
                all.extend(lagging);
                refused!(
                    TimedOut,
                    "timed out after {} waiting for the fleet (the master change stays written): {}",
                    humantime::format_duration(timeout),
                    all.join(", ")
                );
            }
            // Woken by the first report that changes, where the store tells.
            self.remote.wait_for_slaves(POLL);
        }
    }
}

/// Which reports were written after the change: those that name a master
/// version the change made or one that came after it. Versions, not
/// times: a report written a moment before the change is never taken for
/// its answer, whatever the clocks or the store's time resolution.
struct Answered {
    versions: Vec<String>,
    latest: Version,
    /// For reports of older slaves, which name no version: written since.
    since: SystemTime,
}

impl Answered {
    /// Takes in the master's newer versions, if another change followed.
    fn follow(&mut self, remote: &dyn RemoteStore) -> Result<()> {
        if let Some((_, newer)) = remote.master_if_changed(&self.latest)? {
            self.versions.extend(newer.tag().map(str::to_string));
            self.latest = newer;
        }
        Ok(())
    }

    fn by(&self, entry: &SlaveEntry, report: &SlaveReport) -> bool {
        match &report.master_version {
            Some(v) => self.versions.contains(v),
            None => entry.last_modified.is_some_and(|t| t >= self.since),
        }
    }
}

/// How a slave stands. What its state shows decides: a slave whose round
/// failed for another reason (a deploy that cannot be created) has still
/// applied the change if its state has it.
fn answer(
    entry: Option<&SlaveEntry>,
    master: &State,
    affects: &Affects,
    answered: &Answered,
) -> Answer {
    let Some(entry) = entry else {
        return Answer::Lagging("no report any more".into());
    };
    let report = match &entry.report {
        Ok(r) => r,
        Err(e) => return Answer::Lagging(format!("unreadable report: {e}")),
    };
    let matches = match affects {
        Affects::Created(label) | Affects::Deploy(label) => {
            report.state.deploys.get(label.as_str()) == master.deploys.get(label.as_str())
        }
        Affects::Endpoint(endpoint) => {
            report.state.connections.get(endpoint) == master.connections.get(endpoint)
        }
    };
    let errors_answer = matches!(affects, Affects::Created(_));
    match &report.status {
        _ if matches => Answer::InSync,
        SlaveStatus::Error(e) if errors_answer && answered.by(entry, report) => {
            Answer::Failed(format!("error: {e}"))
        }
        SlaveStatus::Error(e) => Answer::Lagging(format!("error: {e}")),
        SlaveStatus::Ok => Answer::Lagging("not yet".into()),
    }
}

/// Whether a slave's report shows `deploy` running and answering: its
/// last round went well, its state has it, and its health watch does not
/// say it is unhealthy or flapping.
fn runs(report: &SlaveReport, deploy: &str) -> bool {
    report.status == SlaveStatus::Ok
        && report.state.deploys.contains_key(deploy)
        && report.deploys.get(deploy).is_none_or(|h| h.healthy())
}

/// Why a slave's report does not show `deploy` running.
fn why_not(report: &SlaveReport, deploy: &str) -> String {
    match (&report.status, report.deploys.get(deploy)) {
        (SlaveStatus::Error(e), _) => format!("error: {e}"),
        _ if !report.state.deploys.contains_key(deploy) => format!("does not run {deploy}"),
        (SlaveStatus::Ok, Some(h)) if !h.healthy() => format!("deploy {deploy} {}", h.health),
        (SlaveStatus::Ok, _) => "ok".into(),
    }
}

/// `n/m slaves in sync` on stderr: rewritten in place on a terminal, a line
/// per change otherwise (logs and CI).
struct Progress {
    total: usize,
    shown: Option<usize>,
    tty: bool,
}

impl Progress {
    fn new(total: usize) -> Progress {
        Progress {
            total,
            shown: None,
            tty: std::io::stderr().is_terminal(),
        }
    }

    fn show(&mut self, in_sync: usize) {
        if self.shown == Some(in_sync) {
            return;
        }
        self.shown = Some(in_sync);
        let text = format!("{in_sync}/{} slaves in sync", self.total);
        // Progress must never fail the command: a closed stderr is ignored.
        let mut err = std::io::stderr();
        let _ = if self.tty {
            write!(err, "\r{text}")
        } else {
            writeln!(err, "{text}")
        };
    }

    fn done(&self) {
        if self.tty && self.shown.is_some() {
            let _ = writeln!(std::io::stderr());
        }
    }
}
