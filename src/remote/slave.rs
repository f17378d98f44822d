//! `slave-update [--repeat N]` (SPEC §7): make this machine match the
//! master state, through the same planner and executor as local proxy mode,
//! and report back.
//!
//! Cheap at fleet scale: the master is read with a conditional GET on the
//! version last seen, so an unchanged master costs one small request; the
//! report is written only when what it says changed, and otherwise at most
//! once a minute as a heartbeat (well inside `slave-flush`'s 5 minutes).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::config::{ProxyModeConfig, ToolConfig};
use crate::proxy::executor::Executor;
use crate::proxy::state::{self, State};
use crate::store::ReleaseStore;
use crate::{log, proxy, signals};

use super::identity;
use super::store::{MasterRead, RemoteStore, SlaveReport, SlaveStatus, Version};

/// The longest a repeating slave goes without writing its report.
pub const HEARTBEAT: Duration = Duration::from_secs(60);

pub struct Slave<'a> {
    config: &'a ToolConfig,
    proxy: &'a ProxyModeConfig,
    store: &'a dyn ReleaseStore,
    remote: Box<dyn RemoteStore>,
    label: String,
    master: Option<(State, Version)>,
    last_report: Option<(SlaveReport, Instant)>,
}

impl<'a> Slave<'a> {
    pub fn new(
        config: &'a ToolConfig,
        proxy: &'a ProxyModeConfig,
        store: &'a dyn ReleaseStore,
        remote: Box<dyn RemoteStore>,
    ) -> Result<Slave<'a>> {
        let label = identity::label(proxy)?;
        Ok(Slave {
            config,
            proxy,
            store,
            remote,
            label,
            master: None,
            last_report: None,
        })
    }

    /// One update; always writes the report. Fails if the update failed.
    pub fn update_once(&mut self) -> Result<()> {
        let outcome = self.converge();
        let report = self.report(&outcome)?;
        let written = self.remote.write_slave(&self.label, &report);
        outcome?;
        written
    }

    /// Forever (until SIGTERM/SIGINT), one update every `period` measured
    /// from the start of each. A failed round is logged and the loop goes on.
    pub fn repeat(&mut self, period: Duration) -> Result<()> {
        signals::install();
        log::info(&format!(
            "Slave {} following {} every {period:?}",
            self.label,
            self.remote.describe()
        ));
        while !signals::stop_requested() {
            let started = Instant::now();
            if let Err(e) = self.round() {
                log::info(&format!("Exception: {e:#}"));
            }
            signals::sleep(period.saturating_sub(started.elapsed()));
        }
        log::info("Stop requested: slave-update exiting");
        Ok(())
    }

    fn round(&mut self) -> Result<()> {
        let outcome = self.converge();
        let report = self.report(&outcome)?;
        let due = match &self.last_report {
            Some((last, at)) => *last != report || at.elapsed() >= HEARTBEAT,
            None => true,
        };
        if due {
            if let Err(e) = self.remote.write_slave(&self.label, &report) {
                if let Err(failed) = &outcome {
                    log::info(&format!("Exception: {failed:#}"));
                }
                log::info("(slave state not updated)");
                return Err(e);
            }
            self.last_report = Some((report, Instant::now()));
        }
        outcome
    }

    /// Reads the master (cheaply if unchanged) and applies it locally.
    fn converge(&mut self) -> Result<()> {
        let known = self.master.as_ref().map(|(_, v)| v);
        match self.remote.read_master(known)? {
            MasterRead::Unchanged => {}
            MasterRead::Changed(state, version) => self.master = Some((state, version)),
        }
        let (target, _) = self.master.as_ref().expect("the master was read");
        let _lock = proxy::lock(self.config)?;
        let path = state::state_path(&self.config.deploys_dir);
        let mut local = State::read(&path)?;
        if local == *target {
            return Ok(());
        }
        log::scope(
            &format!("Applying the master state from {}", self.remote.describe()),
            || Executor::new(self.config, self.proxy, self.store).apply(&mut local, target),
        )
    }

    /// This slave's report: the outcome and the local state reached.
    fn report(&self, outcome: &Result<()>) -> Result<SlaveReport> {
        let status = match outcome {
            Ok(()) => SlaveStatus::Ok,
            Err(e) => SlaveStatus::Error(format!("{e:#}")),
        };
        let state = State::read(&state::state_path(&self.config.deploys_dir))
            .context("reading the local state for the slave report")?;
        Ok(SlaveReport {
            status,
            ip_address: identity::ipv4_of(&self.proxy.slave_interface_name)?,
            host_name: identity::host_name(),
            state,
        })
    }
}
