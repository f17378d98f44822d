//! `slave-update [--repeat N]`: make this machine match the
//! master state, through the same planner and executor as local proxy mode,
//! and report back.
//!
//! Cheap at fleet scale: the master is read with a conditional GET on the
//! version last seen, so an unchanged master costs one small request; the
//! report is written only when what it says changed, and otherwise at most
//! once a minute as a heartbeat (well inside `slave-flush`'s 5 minutes).
//! Each round also checks, cheaply, that the frontend proxy serves, and
//! brings it back if not; and each round writes a report (when due), even
//! when this slave cannot tell its address or state: that is its error.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};

use crate::config::{ProxyModeConfig, ToolConfig};
use crate::heal::{self, DeployHealth};
use crate::names::SlaveLabel;
use crate::proxy::state::State;
use crate::proxy::Machine;
use crate::store::ReleaseStore;
use crate::{log, signals};

use super::identity;
use super::store::{RemoteStore, SlaveReport, SlaveStatus, Version};

/// Retries while the store is out of reach: 1 s, doubling, at most 10 s
/// apart.
#[derive(Default)]
struct Backoff(u32);

impl Backoff {
    fn next(&mut self) -> Duration {
        let wait = Duration::from_secs(1 << self.0.min(4)).min(Duration::from_secs(10));
        self.0 = self.0.saturating_add(1);
        wait
    }
}

/// The longest a slave goes without writing its report.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(60);

pub(crate) struct Slave<'a> {
    machine: Machine<'a>,
    remote: Box<dyn RemoteStore>,
    label: SlaveLabel,
    master: Option<(State, Version)>,
    last_report: Option<(SlaveReport, Instant)>,
    /// The error of the last update, if it failed: the status of the
    /// reports written between updates.
    last_update: Option<String>,
    /// The watched deploys' health after the last health round.
    health: BTreeMap<String, DeployHealth>,
}

impl<'a> Slave<'a> {
    pub(crate) fn new(
        config: &'a ToolConfig,
        proxy: &'a ProxyModeConfig,
        store: &'a dyn ReleaseStore,
        remote: Box<dyn RemoteStore>,
    ) -> Result<Slave<'a>> {
        let label = SlaveLabel::parse(&identity::label(proxy)?)?;
        Ok(Slave {
            machine: Machine::new(config, proxy, store),
            remote,
            label,
            master: None,
            last_report: None,
            last_update: None,
            health: BTreeMap::new(),
        })
    }

    /// One update (cron style). Writes the report when it changed or is
    /// older than [`HEARTBEAT`]; fails if the update failed.
    pub(crate) fn update_once(&mut self) -> Result<()> {
        let updated = self.update();
        let (report, outcome) = self.report(updated);
        let written = self.report_if_due(report);
        outcome?;
        written
    }

    /// Forever (until SIGTERM/SIGINT), one update every `period` measured
    /// from the start of each, and the deploys' health watched at least
    /// every [`heal::WATCH_PERIOD`] in between. A failed round is logged and
    /// the loop goes on.
    pub(crate) fn repeat(&mut self, period: Duration) -> Result<()> {
        signals::install();
        log::info(&format!(
            "Slave {} following {} every {period:?}",
            self.label,
            self.remote.describe()
        ));
        self.remote.keep_reports_for(period);
        let mut next_update = Instant::now();
        let mut retry = Backoff::default();
        let mut rewatch = Backoff::default();
        while !signals::stop_requested() {
            let started = Instant::now();
            let updating = started >= next_update;
            let round = if updating {
                next_update = started + period;
                self.round()
            } else {
                self.watch()
            };
            match round {
                Ok(()) if updating => retry = Backoff::default(),
                Ok(()) => {}
                Err(e) => {
                    log::info(&format!("Exception: {e:#}"));
                    // A store out of reach is tried again soon; a release
                    // that fails to start waits for the next period.
                    if updating && super::Unreachable::caused(&e) {
                        next_update = next_update.min(started + retry.next());
                    }
                }
            }
            let wake = next_update.min(started + heal::WATCH_PERIOD);
            let rest = wake.saturating_duration_since(Instant::now());
            // A store that is told of changes (etcd) ends the rest at the
            // master's first change: the update comes at once.
            match self.remote.wait_for_master(rest) {
                Ok(changed) => {
                    rewatch = Backoff::default();
                    if changed {
                        next_update = Instant::now();
                    }
                }
                Err(e) => {
                    log::info(&format!("Exception: {e:#}"));
                    signals::sleep(rewatch.next().min(rest));
                    // The change the watch would have told of may be there.
                    next_update = next_update.min(Instant::now());
                }
            }
        }
        log::info("Stop requested: slave-update exiting");
        Ok(())
    }

    fn round(&mut self) -> Result<()> {
        let updated = self.update();
        let (report, outcome) = self.report(updated);
        self.reported(report, outcome)
    }

    /// Between updates: the frontend proxy and the deploys' health, with
    /// the report rewritten only if what it says of them changed. Its
    /// status stays the last update's.
    fn watch(&mut self) -> Result<()> {
        let serving = self.serving();
        let healed = self.heal();
        let last = match &self.last_update {
            Some(e) => Err(anyhow!("{e}")),
            None => Ok(()),
        };
        let (report, _) = self.report(last);
        self.reported(report, both(serving, healed))
    }

    /// Writes `report` if due; a report that cannot be written is the
    /// round's error, after the round's own.
    fn reported(&mut self, report: SlaveReport, outcome: Result<()>) -> Result<()> {
        if let Err(e) = self.report_if_due(report) {
            if let Err(failed) = &outcome {
                log::info(&format!("Exception: {failed:#}"));
            }
            log::info("(slave state not updated)");
            return Err(e);
        }
        outcome
    }

    /// An update: this machine brought to the master, then its deploys'
    /// health watched. Remembered for the reports written until the next.
    fn update(&mut self) -> Result<()> {
        let converged = self.converge();
        let healed = self.heal();
        let outcome = both(converged, healed);
        self.last_update = outcome.as_ref().err().map(|e| format!("{e:#}"));
        outcome
    }

    /// A health round (see `heal`), its result kept for the reports.
    fn heal(&mut self) -> Result<()> {
        self.health = heal::round(&self.machine)?;
        Ok(())
    }

    /// Makes sure the frontend proxy serves, under this machine's lock.
    fn serving(&self) -> Result<()> {
        let _lock = self.machine.layout.lock()?;
        self.machine.ensure_frontend_locked()
    }

    /// Writes the report unless the last one written says the same and is
    /// younger than the heartbeat: an idle fleet costs no writes.
    fn report_if_due(&mut self, report: SlaveReport) -> Result<()> {
        if self.last_report.is_none() {
            self.last_report = self.stored_report();
        }
        let due = match &self.last_report {
            Some((last, at)) => *last != report || at.elapsed() >= HEARTBEAT,
            None => true,
        };
        if due {
            self.remote.write_slave(&self.label, &report)?;
            self.last_report = Some((report, Instant::now()));
        }
        Ok(())
    }

    /// The report a previous run wrote, and when. Anything unreadable (or
    /// dated in the future) counts as no report: then it is written again.
    fn stored_report(&self) -> Option<(SlaveReport, Instant)> {
        let entry = self.remote.slave(&self.label).ok()??;
        let age = entry.last_modified?.elapsed().ok()?;
        Some((entry.report.ok()?, Instant::now().checked_sub(age)?))
    }

    /// Reads the master (cheaply if unchanged) and applies it locally,
    /// then makes sure the frontend proxy serves: the local state can match
    /// the master while nothing serves it (the host restarted, nginx was
    /// stopped). Without the master, the local state is still served.
    fn converge(&mut self) -> Result<()> {
        let read = self.read_master();
        let _lock = self.machine.layout.lock()?;
        let applied = match (&read, &self.master) {
            (Ok(()), Some((target, _))) if self.machine.local_state()? != *target => log::scope(
                &format!("Applying the master state from {}", self.remote.describe()),
                || self.machine.converge(target),
            ),
            _ => Ok(()),
        };
        both(read.and(applied), self.machine.ensure_frontend_locked())
    }

    /// Reads the master state into `self.master`, with a conditional GET
    /// once it is known.
    fn read_master(&mut self) -> Result<()> {
        let changed = match &self.master {
            Some((_, known)) => self.remote.master_if_changed(known)?,
            None => Some(self.remote.master()?),
        };
        if let Some(read) = changed {
            self.master = Some(read);
        }
        Ok(())
    }

    /// This slave's report after a round, and the round's outcome. The
    /// report is written whatever happened: what this machine could not
    /// find out (its address, its state) is part of its error, and then
    /// the round fails too.
    fn report(&self, converged: Result<()>) -> (SlaveReport, Result<()>) {
        let mut missing = Vec::new();
        let ip_address = identity::ipv4_of(&self.machine.proxy.slave_interface_name)
            .unwrap_or_else(|e| {
                missing.push(format!("{e:#}"));
                String::new()
            });
        let state = self.machine.local_state().unwrap_or_else(|e| {
            missing.push(format!(
                "reading the local state for the slave report: {e:#}"
            ));
            State::default()
        });
        let missing = missing.join("; ");
        let outcome = match converged {
            Ok(()) if missing.is_empty() => Ok(()),
            Ok(()) => Err(anyhow!("{missing}")),
            Err(e) if missing.is_empty() => Err(e),
            Err(e) => Err(anyhow!("{e:#}; {missing}")),
        };
        let status = match &outcome {
            Ok(()) => SlaveStatus::Ok,
            Err(e) => SlaveStatus::Error(format!("{e:#}")),
        };
        // Only the deploys of the state reported: the watch may lag it.
        let deploys = self
            .health
            .iter()
            .filter(|(label, _)| state.deploys.contains_key(label.as_str()))
            .map(|(label, h)| (label.clone(), h.clone()))
            .collect();
        let report = SlaveReport {
            status,
            ip_address,
            host_name: identity::host_name(),
            state,
            deploys,
            master_version: self
                .master
                .as_ref()
                .and_then(|(_, version)| version.tag())
                .map(str::to_string),
        };
        (report, outcome)
    }
}

/// Both outcomes: the first error, with the second's after it.
fn both(first: Result<()>, second: Result<()>) -> Result<()> {
    match (first, second) {
        (Ok(()), second) => second,
        (Err(e), Ok(())) => Err(e),
        (Err(e), Err(other)) => Err(anyhow!("{e:#}; {other:#}")),
    }
}
