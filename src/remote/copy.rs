//! `c2 remote-copy <from> <to>`: a master state and its history moved
//! between any two remote locations (S3, a directory, etcd), so a fleet
//! can move to etcd and back.

use anyhow::{bail, Result};

use crate::log;

use super::store::{RemoteStore, Version};

/// History events copied per batch.
const BATCH: usize = 100;

/// Copies the master state and the history of `from` to `to`. An existing
/// master at `to` is replaced only with `force`. Slave reports are not
/// copied (slaves write them again), nor is a deploy lock (said so).
pub(crate) fn copy(from: &dyn RemoteStore, to: &dyn RemoteStore, force: bool) -> Result<()> {
    let (state, version) = from.master()?;
    if version == Version::Missing {
        bail!("there is no master state at {} to copy", from.describe());
    }
    let (_, there) = to.master()?;
    if there != Version::Missing && !force {
        bail!(
            "{} already has a master state: --force replaces it",
            to.describe()
        );
    }
    if from
        .read_file(crate::journal::LOCK_FILE, crate::journal::MAX_LOCK_BYTES)?
        .is_some()
    {
        log::warn(&format!(
            "deploys are locked at {}: the lock is not copied",
            from.describe()
        ));
    }
    // The history first: once the master is there, so is its past.
    let names = from.list_files("history")?;
    let mut copied = 0;
    for batch in names.chunks(BATCH) {
        for (name, bytes) in batch.iter().zip(from.read_files(batch)) {
            if let Some(bytes) = bytes? {
                to.put_file(name, &bytes)?;
                copied += 1;
            }
        }
    }
    if !to.write_master(&state, &there, None)? {
        bail!(
            "the master state at {} changed while copying: run remote-copy again",
            to.describe()
        );
    }
    log::info(&format!(
        "Copied the master state ({} deploys) and {copied} history events from {} to {}",
        state.deploys.len(),
        from.describe(),
        to.describe()
    ));
    Ok(())
}
