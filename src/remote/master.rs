//! Master commands: the state rules applied to the master state,
//! written back only if nobody else wrote it meanwhile. On a conflict the
//! command re-reads and re-applies its change, so concurrent operators and
//! CI jobs never lose each other's updates.

use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::config::{ProxyModeConfig, RemoteLocation};
use crate::journal::{self, By, Journal};
use crate::log;
use crate::names::{DeployLabel, ReleaseName};
use crate::proxy::state::{self, State};
use crate::proxy::status::Shown;
use crate::proxy::{self, StateBackend};
use crate::store::ReleaseStore;
use crate::target::Change;
use crate::target::Transition;

use super::store::{self, Along, RemoteStore};

/// Enough for dozens of writers racing on one master.
const MAX_ATTEMPTS: u32 = 100;

/// Remote state seen from a command: changes go to the master only.
pub(crate) struct Master<'a> {
    remote: Box<dyn RemoteStore>,
    journal: Box<dyn Journal>,
    proxy: &'a ProxyModeConfig,
    releases: &'a dyn ReleaseStore,
}

impl<'a> Master<'a> {
    pub(crate) fn open(
        location: &RemoteLocation,
        proxy: &'a ProxyModeConfig,
        releases: &'a dyn ReleaseStore,
    ) -> Result<Master<'a>> {
        Ok(Master {
            remote: store::open(location),
            journal: journal::beside_master(location),
            proxy,
            releases,
        })
    }

    /// The start's half of keeping `prune` from deleting a release a new
    /// deploy uses. Prune sets its candidates aside, reads the master
    /// again and restores any the master now uses. A start whose master
    /// write came after that second read finds its release gone here, and
    /// takes its deploy back out of the master (through the same
    /// conditional write) and fails; one whose write came before had its
    /// release restored. Either way no deploy is left without its release.
    fn confirm_release(&self, release: &ReleaseName, label: &DeployLabel, by: &By) -> Result<()> {
        if self.releases.exists(release)? {
            return Ok(());
        }
        let why = format!(
            "release {release} was deleted from the release store (by a prune) while deploy {label} was starting"
        );
        let remote = self.remote.as_ref();
        for attempt in 1..=MAX_ATTEMPTS {
            let (state, version) = remote.master()?;
            if state
                .deploys
                .get(label)
                .is_none_or(|d| &d.release != release)
            {
                bail!("{why}; the deploy is no longer in the master state");
            }
            let next = state::stop(&state, label.as_str())
                .with_context(|| format!("{why}, and taking the deploy back out failed"))?;
            let undo = Change::Stop {
                label: label.as_str(),
            };
            let along = self.along(by, undo.words(), &proxy::transition(&state, &next)?)?;
            if remote.write_master(&next, &version, along.as_ref())? {
                log::info(&format!(
                    "Release {release} is gone: deploy {label} removed again"
                ));
                bail!("{why}: the start was undone; publish the release again, then start it");
            }
            back_off(attempt);
        }
        bail!("{why}, and the master state kept changing while taking the deploy back out: stop {label}")
    }
}

impl Master<'_> {
    /// What a master write carries where the store writes it in one
    /// transaction: the lock that must be absent, and the history event.
    fn along(&self, by: &By, words: Vec<String>, transition: &Transition) -> Result<Option<Along>> {
        if !self.remote.writes_history() {
            return Ok(None);
        }
        let event = by.event(words, transition.clone());
        Ok(Some(Along {
            unless: journal::LOCK_FILE,
            event: journal::history_entry(&event)?,
        }))
    }
}

/// Waits a little before re-reading a master someone else just wrote,
/// with jitter so racing writers spread out.
fn back_off(attempt: u32) {
    let jitter = u64::from(std::process::id() % 17 + attempt % 13);
    std::thread::sleep(Duration::from_millis(
        (5 * u64::from(attempt.min(20))) + jitter,
    ));
}

impl StateBackend for Master<'_> {
    fn read(&self) -> Result<State> {
        Ok(self.remote.master()?.0)
    }

    /// The transition is that of the attempt whose write went through.
    /// Where the store can (etcd), the write also checks that deploys are
    /// not locked and writes the history event, in one transaction.
    fn apply(&self, change: &Change, by: &By) -> Result<Transition> {
        let remote = self.remote.as_ref();
        log::scope(
            &format!(
                "{} (master state at {})",
                change.describe(),
                remote.describe()
            ),
            || {
                for attempt in 1..=MAX_ATTEMPTS {
                    let (state, version) = remote.master()?;
                    let next = change.apply_to(&state, self.proxy)?;
                    let transition = proxy::transition(&state, &next)?;
                    if next == state {
                        log::info("Nothing to change");
                        if self.records_history() {
                            journal::record(
                                self.journal.as_ref(),
                                by,
                                change.words(),
                                transition.clone(),
                            );
                        }
                        return Ok(transition);
                    }
                    // As late as the store allows: a lock taken since the
                    // command began stops it here.
                    journal::check_unlocked(self.journal.as_ref())?;
                    let along = self.along(by, change.words(), &transition)?;
                    if remote.write_master(&next, &version, along.as_ref())? {
                        log::info("Master state updated");
                        if let Change::Start { release, label } = change {
                            self.confirm_release(release, label, by)?;
                        }
                        return Ok(transition);
                    }
                    // Someone else wrote first: re-apply on their state.
                    back_off(attempt);
                }
                bail!("the master state kept changing: gave up after {MAX_ATTEMPTS} attempts")
            },
        )
    }

    fn records_history(&self) -> bool {
        self.remote.writes_history()
    }

    fn dry_run_header(&self) -> Option<String> {
        Some(format!(
            "Master state at {}: a slave in sync with it would do",
            self.remote.describe()
        ))
    }

    fn status(&self, show_slaves: bool) -> Result<Shown<'_>> {
        super::status::shown(self.remote.as_ref(), self.proxy, show_slaves)
    }
}
