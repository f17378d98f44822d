//! The life of one deploy directory, the same in every mode: fetch the
//! context, unpack the release and expand its templates, run prestart, run
//! start; stop; and clean up what a failed or interrupted run left behind.
//! noproxy and the proxy executor both go through here; only the order
//! around it (when the old release stops, when traffic moves) differs.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::config::ToolConfig;
use crate::context::{self, Ports};
use crate::names::ReleaseName;
use crate::release::{self, ReleaseConfig, RELEASE_JSON};
use crate::store::ReleaseStore;
use crate::{log, shell};

/// What a deploy is made from: the config (context sources) and the store.
pub(crate) struct Deployer<'a> {
    pub config: &'a ToolConfig,
    pub store: &'a dyn ReleaseStore,
}

/// What the directory a deploy is prepared in holds already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DirState {
    /// Nothing live: whatever is there was left by an interrupted run, and
    /// a failed preparation removes the directory.
    Fresh,
    /// The live release (noproxy redeploying itself): unpacked over, and
    /// left in place if preparing fails.
    Live,
}

/// A deploy unpacked and past its prestart command, ready to start.
pub(crate) struct Prepared {
    dir: PathBuf,
    release: ReleaseName,
    config: ReleaseConfig,
}

impl Deployer<'_> {
    /// Unpacks `release` into `dir` with its templates expanded against the
    /// cached context (plus `ports` in proxy mode).
    pub(crate) fn unpack(
        &self,
        release: &ReleaseName,
        dir: &Path,
        ports: Option<&Ports>,
    ) -> Result<ReleaseConfig> {
        let infra = context::infrastructure(self.config)?;
        let limits = &self.config.limits;
        let rc = release::fetch(self.store, release, dir, limits)?;
        let ctx = context::for_release(&infra, dir, &rc.config_sources, ports)?;
        release::expand_templates(dir, &rc.templates, &ctx, limits)?;
        Ok(rc)
    }

    /// Fetches the context, unpacks `release` into `dir` and runs its
    /// prestart command. On failure nothing new is left behind.
    pub(crate) fn prepare(
        &self,
        release: &ReleaseName,
        dir: &Path,
        ports: Option<&Ports>,
        state: DirState,
    ) -> Result<Prepared> {
        if state == DirState::Fresh && dir.exists() {
            remove_leftover(dir, release.as_str())?;
        }
        let prepared = (|| {
            context::fetch(self.config, false)?;
            let config = self.unpack(release, dir, ports)?;
            log::scope("Running prestart script", || {
                shell::run(
                    &format!("prestartCommand of {release}"),
                    &config.prestart_command,
                    dir,
                )
            })?;
            Ok(Prepared {
                dir: dir.to_path_buf(),
                release: release.clone(),
                config,
            })
        })();
        if prepared.is_err() && state == DirState::Fresh {
            let _ = std::fs::remove_dir_all(dir);
        }
        prepared
    }
}

impl Prepared {
    /// Runs the start command.
    pub(crate) fn start(&self) -> Result<()> {
        shell::run(
            &format!("startCommand of {}", self.release),
            &self.config.start_command,
            &self.dir,
        )
    }

    /// Runs the start command; if it fails, stops what it may have left
    /// running and removes the directory, so the deploy never half-exists.
    pub(crate) fn start_or_undo(self) -> Result<()> {
        let started = self.start();
        if started.is_err() {
            if let Err(e) = stop(&self.dir, self.release.as_str()) {
                log::warn(&format!(
                    "cleaning up the failed deploy in {}: {e:#}",
                    self.dir.display()
                ));
            }
            let _ = std::fs::remove_dir_all(&self.dir);
        }
        started
    }
}

/// Runs the stop command of the release unpacked in `dir`; `name` names it
/// in errors.
pub(crate) fn stop(dir: &Path, name: &str) -> Result<()> {
    let rc = ReleaseConfig::read(dir)?;
    shell::run(&format!("stopCommand of {name}"), &rc.stop_command, dir)
}

/// Stops the deploy in `dir` and removes the directory.
pub(crate) fn destroy(dir: &Path, name: &str) -> Result<()> {
    if !dir.exists() {
        log::warn(&format!(
            "{} does not exist: nothing to stop",
            dir.display()
        ));
        return Ok(());
    }
    if dir.join(RELEASE_JSON).exists() {
        log::scope("Running stop script", || stop(dir, name))?;
    } else {
        // A run killed while removing it: the stop already ran.
        log::warn(&format!(
            "{} has no release.json (a removal was interrupted): removing the rest",
            dir.display()
        ));
    }
    std::fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", dir.display()))
}

/// Removes a deploy directory that no state lists: left by a run killed
/// midway. What it started may still run (and hold ports), so its tagged
/// processes are killed and its stop command is run (best effort) first.
pub(crate) fn remove_leftover(dir: &Path, name: &str) -> Result<()> {
    log::warn(&format!(
        "{} was left by an interrupted run: stopping and removing it",
        dir.display()
    ));
    shell::kill_leftovers(dir);
    if dir.join(RELEASE_JSON).exists() {
        if let Err(e) = stop(dir, name) {
            log::warn(&format!("stopping the leftover {name}: {e:#}"));
        }
    }
    std::fs::remove_dir_all(dir).with_context(|| format!("cannot remove stale {}", dir.display()))
}
