//! Master commands: the state rules applied to the master state,
//! written back only if nobody else wrote it meanwhile. On a conflict the
//! command re-reads and re-applies its change, so concurrent operators and
//! CI jobs never lose each other's updates.

use std::time::Duration;

use anyhow::{bail, Result};

use crate::config::{ProxyModeConfig, RemoteLocation};
use crate::log;
use crate::proxy::state::State;
use crate::proxy::{self, Change, StateBackend};
use crate::target::Transition;

use super::store::{self, RemoteStore};

/// Enough for dozens of writers racing on one master.
const MAX_ATTEMPTS: u32 = 100;

/// Remote state seen from a command: changes go to the master only.
pub(crate) struct Master<'a> {
    remote: Box<dyn RemoteStore>,
    proxy: &'a ProxyModeConfig,
}

impl<'a> Master<'a> {
    pub(crate) fn open(
        location: &RemoteLocation,
        proxy: &'a ProxyModeConfig,
    ) -> Result<Master<'a>> {
        Ok(Master {
            remote: store::open(location),
            proxy,
        })
    }
}

impl StateBackend for Master<'_> {
    fn read(&self) -> Result<State> {
        Ok(self.remote.master()?.0)
    }

    /// The transition is that of the attempt whose write went through.
    fn apply(&self, change: &Change) -> Result<Transition> {
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
                    if next == state {
                        log::info("Nothing to change");
                        return proxy::transition(&state, &next);
                    }
                    if remote.write_master(&next, &version)? {
                        log::info("Master state updated");
                        return proxy::transition(&state, &next);
                    }
                    // Someone else wrote first: back off a little, with
                    // jitter so racing writers spread out, and re-apply on
                    // their state.
                    let jitter = u64::from(std::process::id() % 17 + attempt % 13);
                    std::thread::sleep(Duration::from_millis(
                        (5 * u64::from(attempt.min(20))) + jitter,
                    ));
                }
                bail!("the master state kept changing: gave up after {MAX_ATTEMPTS} attempts")
            },
        )
    }

    fn dry_run_header(&self) -> Option<String> {
        Some(format!(
            "Master state at {}: a slave in sync with it would do",
            self.remote.describe()
        ))
    }

    fn status(&self, show_slaves: bool, json_output: bool) -> Result<()> {
        super::status::print(self.remote.as_ref(), self.proxy, show_slaves, json_output)
    }
}
