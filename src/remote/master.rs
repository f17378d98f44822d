//! Master commands (SPEC §7): the §6.1 rules applied to the master state,
//! written back only if nobody else wrote it meanwhile. On a conflict the
//! command re-reads and re-applies its change, so concurrent operators and
//! CI jobs never lose each other's updates.

use std::time::Duration;

use anyhow::{bail, Result};

use crate::config::ProxyModeConfig;
use crate::log;
use crate::proxy::Change;

use super::store::RemoteStore;

/// Enough for dozens of writers racing on one master.
const MAX_ATTEMPTS: u32 = 100;

pub fn update(remote: &dyn RemoteStore, proxy: &ProxyModeConfig, change: Change) -> Result<()> {
    log::scope(
        &format!(
            "{} (master state at {})",
            change.describe(),
            remote.describe()
        ),
        || {
            for attempt in 1..=MAX_ATTEMPTS {
                let (state, version) = remote.master()?;
                let next = change.apply_to(&state, proxy)?;
                if next == state {
                    log::info("Nothing to change");
                    return Ok(());
                }
                if remote.write_master(&next, &version)? {
                    log::info("Master state updated");
                    return Ok(());
                }
                // Someone else wrote first: back off a little, with jitter
                // so racing writers spread out, and re-apply on their state.
                let jitter = u64::from(std::process::id() % 17 + attempt % 13);
                std::thread::sleep(Duration::from_millis(
                    (5 * u64::from(attempt.min(20))) + jitter,
                ));
            }
            bail!("the master state kept changing: gave up after {MAX_ATTEMPTS} attempts")
        },
    )
}
