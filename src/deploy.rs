//! The life of one deploy directory, the same in every mode: fetch the
//! context, unpack the release and expand its templates, run prestart, run
//! start; stop; and clean up what a failed or interrupted run left behind.
//! noproxy and the proxy executor both go through here; only the order
//! around it (when the old release stops, when traffic moves) differs.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::config::{DeployHealthCheck, ToolConfig};
use crate::context::{self, Ports};
use crate::layout::Layout;
use crate::names::{DeployLabel, ReleaseName};
use crate::release::{self, Expansion, ReleaseConfig, RELEASE_JSON};
use crate::store::ReleaseStore;
use crate::{command_env, fsutil, health, log, shell};

/// What a deploy is made from: the config (context sources) and the store.
pub(crate) struct Deployer<'a> {
    pub config: &'a ToolConfig,
    pub store: &'a dyn ReleaseStore,
}

/// The mode that creates a deploy directory, recorded in its marker: a
/// leftover is removed only by the mode that made it, so switching a
/// config from noproxy to proxy never deletes the noproxy releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Noproxy,
    Proxy,
}

impl Mode {
    fn marker_text(self) -> &'static str {
        match self {
            Mode::Noproxy => "c2 noproxy\n",
            Mode::Proxy => "c2 proxy\n",
        }
    }
}

/// What the directory a deploy is prepared in holds already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DirState {
    /// Nothing live: the directory is created (marked as made by this
    /// mode), or, if there is one already, removed first when c2 made it
    /// and refused otherwise; a failed preparation removes it.
    Fresh(Mode),
    /// The live release (noproxy redeploying itself): unpacked over, and
    /// left in place if preparing fails.
    Live,
}

/// A deploy unpacked and past its prestart command, ready to start.
pub(crate) struct Prepared {
    dir: PathBuf,
    release: ReleaseName,
    config: ReleaseConfig,
    ports: Option<Ports>,
    /// The environment of its commands.
    vars: Vec<(String, String)>,
    /// Made by this preparation (not the live release unpacked over, nor a
    /// directory reused as it is): removed if it never goes live.
    fresh: bool,
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
        release::expand_templates(dir, &rc.templates, &ctx, &Expansion::of(self.config))?;
        Ok(rc)
    }

    /// Fetches the context, unpacks `release` into the directory of deploy
    /// `label` and runs its prestart command. On failure nothing new is
    /// left behind.
    pub(crate) fn prepare(
        &self,
        release: &ReleaseName,
        layout: &Layout,
        label: &DeployLabel,
        ports: Option<&Ports>,
        state: DirState,
    ) -> Result<Prepared> {
        let dir = layout.deploy_dir(label);
        if let DirState::Fresh(mode) = state {
            claim(layout, &dir, mode)?;
        }
        let prepared = (|| {
            context::fetch(self.config, context::Missing::Fail)?;
            let config = self.unpack(release, &dir, ports)?;
            command_env::record_release(&dir, release)?;
            let vars = command_env::for_deploy(&dir, ports);
            run_prestart(release, &config, &dir, &vars)?;
            Ok(Prepared {
                dir: dir.clone(),
                release: release.clone(),
                config,
                ports: ports.copied(),
                vars,
                fresh: state != DirState::Live,
            })
        })();
        if prepared.is_err() && state != DirState::Live {
            let _ = std::fs::remove_dir_all(&dir);
        }
        prepared
    }
}

/// The release's prestart command, in the deploy's directory.
fn run_prestart(
    release: &ReleaseName,
    config: &ReleaseConfig,
    dir: &Path,
    vars: &[(String, String)],
) -> Result<()> {
    log::scope("Running prestart script", || {
        shell::run_with(
            &format!("prestartCommand of {release}"),
            &config.prestart_command,
            dir,
            vars,
        )
    })
}

impl Deployer<'_> {
    /// The deploy of `release` in its existing directory, as it is (noproxy
    /// rollback): the context fetched and its prestart command run again,
    /// ready to start. The directory must be c2's (noproxy marker); nothing
    /// is removed if this fails.
    pub(crate) fn prepare_again(
        &self,
        release: &ReleaseName,
        layout: &Layout,
        label: &DeployLabel,
    ) -> Result<Prepared> {
        let dir = layout.deploy_dir(label);
        if let Some(why) = not_ours(&dir, Mode::Noproxy) {
            bail!("cannot use {}: it {why}", dir.display());
        }
        context::fetch(self.config, context::Missing::Fail)?;
        let config = ReleaseConfig::read(&dir)?;
        let vars = command_env::for_deploy(&dir, None);
        run_prestart(release, &config, &dir, &vars)?;
        Ok(Prepared {
            dir,
            release: release.clone(),
            config,
            ports: None,
            vars,
            fresh: false,
        })
    }
}

impl Prepared {
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Drops a deploy that will not go live: its directory goes, if this
    /// preparation made it.
    pub(crate) fn discard(self) {
        if self.fresh {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// Runs the start command (noproxy: no health gate).
    pub(crate) fn start(&self) -> Result<()> {
        start_gated(&self.dir, &self.release, &self.config, &self.vars, None)
    }

    /// The release's own health check.
    pub(crate) fn health_check(&self) -> Option<&DeployHealthCheck> {
        self.config.health_check.as_ref()
    }

    /// Runs the start command, then, given a health check and the deploy's
    /// HTTP port, waits until the deploy is healthy. If either fails, stops
    /// what it may have left running and removes the directory, so the
    /// deploy never half-exists; the error (with the last health answer)
    /// is taken before that.
    pub(crate) fn start_or_undo(self, health: Option<(&DeployHealthCheck, u16)>) -> Result<()> {
        let started = start_gated(&self.dir, &self.release, &self.config, &self.vars, health);
        if started.is_err() {
            // The start's own error is the one to report.
            stop(&self.dir, self.ports.as_ref(), &mut FailedStops::default());
            let _ = std::fs::remove_dir_all(&self.dir);
        }
        started
    }
}

/// Runs the start command of the deploy in `dir`, then, given its health
/// check and HTTP port, waits until it is healthy: the one place a deploy
/// is started, whether new or restarted.
fn start_gated(
    dir: &Path,
    release: &ReleaseName,
    config: &ReleaseConfig,
    vars: &[(String, String)],
    health: Option<(&DeployHealthCheck, u16)>,
) -> Result<()> {
    shell::run_with(
        &format!("startCommand of {release}"),
        &config.start_command,
        dir,
        vars,
    )?;
    match health {
        Some((check, port)) => log::scope(
            &format!("Waiting until GET {} is healthy", check.path),
            || health::wait_healthy(&dir_name(dir), port, check),
        ),
        None => Ok(()),
    }
}

/// Restarts the running deploy of `release` in `dir` (its `ports`, its
/// health `check`): its stop command (a failure is warned about and its
/// processes killed, as for any stop), then its start command and health
/// gate. The directory stays whatever happens: the deploy is still wanted.
pub(crate) fn restart(
    dir: &Path,
    release: &ReleaseName,
    ports: &Ports,
    check: &DeployHealthCheck,
) -> Result<()> {
    let config = ReleaseConfig::read(dir)?;
    let vars = command_env::for_deploy(dir, Some(ports));
    log::scope("Running stop script", || {
        stop(dir, Some(ports), &mut FailedStops::default())
    });
    log::scope("Running start script", || {
        start_gated(dir, release, &config, &vars, Some((check, ports.http)))
    })
}

/// The stop commands that failed during one command. A failing stop
/// command must not wedge every later deploy, so each failure is reported
/// as it happens and the command carries on; it then fails at its end
/// naming them, so that scripts and CI notice.
#[derive(Debug, Default)]
pub(crate) struct FailedStops(Vec<String>);

impl FailedStops {
    /// `Ok` unless a stop command failed.
    pub(crate) fn into_result(self) -> Result<()> {
        if self.0.is_empty() {
            return Ok(());
        }
        bail!(
            "{}; killed the processes left running and carried on",
            self.0.join("; ")
        )
    }
}

/// Runs the stop command of the deploy in `dir` (`ports`: its ports in
/// proxy mode, for its environment). If it fails (or the
/// release.json it needs is unreadable), warns, kills the processes tagged
/// with the deploy so nothing it started keeps running or holds a port,
/// and records the failure in `failed`.
pub(crate) fn stop(dir: &Path, ports: Option<&Ports>, failed: &mut FailedStops) {
    if let Err(e) = run_stop_command(dir, ports) {
        let label = dir_name(dir);
        log::warn(&format!(
            "deploy {label}: {e:#}: killing the processes it started and going on"
        ));
        shell::kill_leftovers(dir);
        failed.0.push(format!("deploy {label}: {e:#}"));
    }
}

fn run_stop_command(dir: &Path, ports: Option<&Ports>) -> Result<()> {
    let rc = ReleaseConfig::read(dir)?;
    let vars = command_env::for_deploy(dir, ports);
    shell::run_with("stopCommand", &rc.stop_command, dir, &vars)
}

/// Stops the deploy in `dir` (see [`stop`]) and removes the directory.
pub(crate) fn destroy(dir: &Path, ports: Option<&Ports>, failed: &mut FailedStops) -> Result<()> {
    if !dir.exists() {
        log::warn(&format!(
            "{} does not exist: nothing to stop",
            dir.display()
        ));
        return Ok(());
    }
    if dir.join(RELEASE_JSON).exists() {
        log::scope("Running stop script", || stop(dir, ports, failed));
    } else {
        // A run killed while removing it: the stop already ran.
        log::warn(&format!(
            "{} has no release.json (a removal was interrupted): removing the rest",
            dir.display()
        ));
    }
    std::fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", dir.display()))
}

/// Makes `dir` a new deploy directory of `mode`. One that is there already
/// and no state lists was left by a run killed midway: it is removed, but
/// only if c2 can prove it made it in this mode (its marker) and it is not
/// the live noproxy release. Anything else (a user's directory, one made by
/// the other mode or by a c2 without markers) is left alone and refused.
fn claim(layout: &Layout, dir: &Path, mode: Mode) -> Result<()> {
    if dir.symlink_metadata().is_ok() {
        if let Some(why) = not_a_leftover(layout, dir, mode) {
            log::warn(&format!("{} {why}: leaving it in place", dir.display()));
            bail!(
                "cannot use {}: it {why}; move it away, or choose another deploy label",
                dir.display()
            );
        }
        remove_leftover(dir)?;
    }
    create_marked(layout, dir, mode)
}

/// Why the existing `dir` is not a leftover c2 may remove, if it is not.
fn not_a_leftover(layout: &Layout, dir: &Path, mode: Mode) -> Option<String> {
    if is_current(layout, dir) {
        return Some("is the live noproxy release (`current` points to it)".into());
    }
    not_ours(dir, mode)
}

/// Why `dir` is not a deploy directory c2 made in `mode`, if it is not.
fn not_ours(dir: &Path, mode: Mode) -> Option<String> {
    if !dir.symlink_metadata().is_ok_and(|m| m.is_dir()) {
        return Some("is not a directory".into());
    }
    let marker = Layout::deploy_marker(dir);
    match std::fs::read_to_string(&marker) {
        Ok(text) if text == mode.marker_text() => None,
        Ok(text) => Some(format!(
            "was created by c2 in another mode ({})",
            text.trim()
        )),
        Err(_) => Some(format!(
            "was not created by c2 (it has no {} marker)",
            marker
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default()
        )),
    }
}

/// Creates `dir` with its marker in it, atomically (a directory made aside,
/// then renamed), so a run killed at any moment leaves either no directory
/// or one that is provably c2's.
fn create_marked(layout: &Layout, dir: &Path, mode: Mode) -> Result<()> {
    std::fs::create_dir_all(layout.root())
        .with_context(|| format!("cannot create {}", layout.root().display()))?;
    let prefix = format!(".{}.c2-new-", dir_name(dir));
    // Made aside by runs killed before the rename: hidden, and named by c2.
    if let Ok(entries) = std::fs::read_dir(layout.root()) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let aside = layout
        .root()
        .join(format!("{prefix}{}", std::process::id()));
    std::fs::create_dir(&aside).with_context(|| format!("cannot create {}", aside.display()))?;
    let made = fsutil::write_atomic(
        &Layout::deploy_marker(&aside),
        mode.marker_text().as_bytes(),
        0o644,
    )
    // Its process tag from birth: it also tells this deploy from a later
    // one under the same label (see `heal`).
    .and_then(|()| shell::tag_of(&aside).map(|_| ()))
    .and_then(|()| {
        std::fs::rename(&aside, dir).with_context(|| format!("cannot create {}", dir.display()))
    });
    if made.is_err() {
        let _ = std::fs::remove_dir_all(&aside);
    }
    made
}

/// Whether `dir` is the live noproxy release (`current` points at it).
fn is_current(layout: &Layout, dir: &Path) -> bool {
    std::fs::read_link(layout.current_link())
        .is_ok_and(|target| same_dir(&layout.root().join(target), dir))
}

/// Whether `a` and `b` are the same directory (either may be a symlink).
pub(crate) fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Removes a deploy directory of c2's that no state lists: left by a run
/// killed midway. What it started may still run (and hold ports), so its
/// tagged processes are killed and its stop command is run (best effort)
/// first; no state says which port it had, so that command gets no
/// `C2_PORT_…` variables.
fn remove_leftover(dir: &Path) -> Result<()> {
    log::warn(&format!(
        "{} was left by an interrupted run: stopping and removing it",
        dir.display()
    ));
    shell::kill_leftovers(dir);
    if dir.join(RELEASE_JSON).exists() {
        if let Err(e) = run_stop_command(dir, None) {
            log::warn(&format!("stopping the leftover {}: {e:#}", dir_name(dir)));
        }
    }
    std::fs::remove_dir_all(dir).with_context(|| format!("cannot remove stale {}", dir.display()))
}

/// The deploy label a deploy directory is named after.
pub(crate) fn dir_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default()
}
