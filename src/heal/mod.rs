//! Deploys that stay up: every deploy with a health check is asked again
//! after it started, and restarted when it stops answering.
//!
//! One round ([`round`]) asks each such deploy of this machine's state
//! (one GET, 5 s), lets [`policy`] decide, restarts what it says through
//! the deploy lifecycle (`deploy::restart`), and records everything in
//! `health.json` ([`book`]). `c2 heal` runs rounds for a machine with local
//! state; `slave-update` runs one after each update and between them.
//! Restarts happen under this machine's lock, and only of the very deploy
//! that was asked: one stopped or replaced meanwhile is left alone.

pub(crate) mod book;
pub(crate) mod policy;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::context::Ports;
use crate::layout::Layout;
use crate::proxy::state::Deploy;
use crate::proxy::Machine;
use crate::{deploy, health, log, signals};

use book::Book;
use policy::{Check, Decision, Identity, Record};

/// How long one check waits for an answer.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest a loop goes between checks, whatever its period.
pub(crate) const WATCH_PERIOD: Duration = Duration::from_secs(10);

/// How a watched deploy stands, as a slave report carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployHealth {
    /// `healthy`, `unhealthy: <why>` or `flapping: <why>`.
    pub health: String,
    /// How many times c2 restarted it.
    pub restarts: u64,
}

impl DeployHealth {
    /// Whether traffic may go to it.
    pub fn healthy(&self) -> bool {
        self.health == "healthy"
    }
}

/// One round on `machine`: ask, decide, restart, record. Returns the
/// health of every deploy with a check, by label.
pub(crate) fn round(machine: &Machine) -> Result<BTreeMap<String, DeployHealth>> {
    let layout = &machine.layout;
    let path = layout.health_file();
    let read = Book::load(&path);
    let mut book = read.clone();
    let marker = book::boot_marker();
    let rebooted = marker.is_some() && book.boot != marker;
    let state = machine.local_state()?;
    let answers = machine.ask_health(&state, CHECK_TIMEOUT);
    // A deploy no longer in the state (or without a check) is forgotten.
    book.deploys.retain(|label, _| answers.contains_key(label));
    let now = unix_now();
    let mut to_restart = Vec::new();
    for (label, answer) in &answers {
        let Some(d) = state.deploys.get(label.as_str()) else {
            continue;
        };
        let identity = identity_of(layout, d);
        let record = book
            .deploys
            .entry(label.clone())
            .or_insert_with(|| Record::new(identity.clone()));
        if record.identity != identity {
            *record = Record::new(identity);
        }
        let check = match answer {
            Ok(()) => Check::Healthy,
            Err(why) => Check::Unhealthy(why.clone()),
        };
        match policy::after_check(record, check, now, rebooted) {
            Decision::Restart => to_restart.push(label.clone()),
            Decision::Recovered => log::info(&format!("Deploy {label} answers its health check again")),
            Decision::GiveUp => log::warn(&format!(
                "deploy {label} is flapping ({} restarts within an hour): not restarting it until it answers its health check again, or is stopped or started anew; last failure: {}",
                policy::FLAP_RESTARTS,
                record.last_error.as_deref().unwrap_or_default()
            )),
            Decision::Wait if record.failures > 0 && record.failures < policy::FAILURES_TO_RESTART => {
                log::info(&format!(
                    "Deploy {label} failed its health check ({} of {} before a restart): {}",
                    record.failures,
                    policy::FAILURES_TO_RESTART,
                    record.last_error.as_deref().unwrap_or_default()
                ));
            }
            Decision::Wait => {}
        }
    }
    if !to_restart.is_empty() {
        restart(machine, &mut book, &to_restart)?;
    }
    book.boot = marker.or(book.boot);
    // An idle machine (every deploy healthy, as before) writes nothing.
    if book != read {
        book.save(&path)?;
    }
    Ok(book
        .deploys
        .iter()
        .map(|(label, r)| {
            let health = DeployHealth {
                health: r.health(),
                restarts: r.restart_count,
            };
            (label.clone(), health)
        })
        .collect())
}

/// Restarts `labels`, under this machine's lock, each only if the state
/// still has the very deploy that was asked.
fn restart(machine: &Machine, book: &mut Book, labels: &[String]) -> Result<()> {
    let layout = &machine.layout;
    let _lock = layout.lock()?;
    let state = machine.local_state()?;
    for label in labels {
        let Some(record) = book.deploys.get_mut(label) else {
            continue;
        };
        let Some(d) = state.deploys.get(label.as_str()) else {
            log::info(&format!(
                "Deploy {label} was stopped meanwhile: not restarting it"
            ));
            continue;
        };
        if identity_of(layout, d) != record.identity {
            log::info(&format!(
                "Deploy {label} was replaced meanwhile: not restarting it"
            ));
            continue;
        }
        let dir = layout.deploy_dir(&d.label);
        let Some(check) = health::of_deploy(&dir, machine.proxy) else {
            continue;
        };
        let range = (
            machine.proxy.dynamic_port_range.v1,
            machine.proxy.dynamic_port_range.v2,
        );
        let why = record.last_error.clone().unwrap_or_default();
        let outcome = log::scope(&format!("Restarting deploy {label}: {why}"), || {
            deploy::restart(&dir, &d.release, &Ports::new(d.port, range), &check)
        });
        if let Err(e) = &outcome {
            log::warn(&format!(
                "restarting deploy {label} failed: {e:#}; trying again in {} s",
                record.backoff_secs
            ));
        }
        policy::after_restart(record, outcome.map_err(|e| format!("{e:#}")), unix_now());
    }
    Ok(())
}

/// The deploy a record is about.
fn identity_of(layout: &Layout, d: &Deploy) -> Identity {
    let tag = std::fs::read_to_string(Layout::deploy_tag(&layout.deploy_dir(&d.label)))
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty());
    Identity {
        release: d.release.clone(),
        port: d.port,
        tag,
    }
}

/// The deploys `status` shows as being restarted (`restarting (n)`) or
/// given up on (`flapping: <why>`), by label, from `health.json`.
pub(crate) fn notes(layout: &Layout) -> BTreeMap<String, String> {
    Book::load(&layout.health_file())
        .deploys
        .into_iter()
        .filter_map(|(label, r)| {
            let note = match (r.flapping, r.restarting()) {
                (true, _) => format!(
                    "flapping: {} restarts within an hour, not restarted until it answers again",
                    r.restarts.len()
                ),
                (false, true) => format!("restarting ({})", r.restart_count),
                (false, false) => return None,
            };
            Some((label, note))
        })
        .collect()
}

/// `c2 heal [--repeat PERIOD]`: one watch of this machine (the frontend
/// proxy, then a round), or a watch every PERIOD (at most every 10 s)
/// until SIGTERM or SIGINT, which let the step under way finish.
pub(crate) fn heal(machine: &Machine, repeat: Option<Duration>) -> Result<()> {
    let Some(period) = repeat else {
        return watch(machine);
    };
    signals::install();
    let period = period.min(WATCH_PERIOD);
    log::info(&format!(
        "Watching the deploys of {} every {}",
        machine.layout.root().display(),
        humantime::format_duration(period)
    ));
    while !signals::stop_requested() {
        let started = Instant::now();
        if let Err(e) = watch(machine) {
            log::info(&format!("Exception: {e:#}"));
        }
        signals::sleep(period.saturating_sub(started.elapsed()));
    }
    log::info("Stop requested: heal exiting");
    Ok(())
}

/// The frontend proxy serves (brought back if not), then a round. Both
/// are tried; either failing fails the watch.
fn watch(machine: &Machine) -> Result<()> {
    let serving = machine
        .layout
        .lock()
        .and_then(|_lock| machine.ensure_frontend_locked());
    let healed = round(machine).map(|_| ());
    match (serving, healed) {
        (Ok(()), healed) => healed,
        (Err(e), Ok(())) => Err(e),
        (Err(e), Err(h)) => Err(anyhow::anyhow!("{e:#}; {h:#}")),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
