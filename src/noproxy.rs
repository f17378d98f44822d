//! Noproxy mode: exactly one live release, `<deploysDir>/current`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::config::ToolConfig;
use crate::deploy::{self, Deployer, DirState, FailedStops, Mode};
use crate::layout::Layout;
use crate::names::{DeployLabel, ReleaseName};
use crate::proxy::Change;
use crate::store::ReleaseStore;
use crate::target::{Target, Transition};
use crate::{journal, log};

/// Noproxy mode's deploy target.
pub(crate) struct Noproxy<'a> {
    deployer: Deployer<'a>,
    layout: Layout,
}

impl<'a> Noproxy<'a> {
    pub(crate) fn new(config: &'a ToolConfig, store: &'a dyn ReleaseStore) -> Noproxy<'a> {
        Noproxy {
            deployer: Deployer { config, store },
            layout: config.layout(),
        }
    }

    /// This machine's lock, once the deploy lock is known to be free: a
    /// command that waited for another run is refused if deploys were
    /// locked meanwhile.
    fn locked(&self) -> Result<crate::fsutil::Lock> {
        let lock = self.layout.lock()?;
        journal::check_unlocked(journal::open(self.deployer.config).as_ref())?;
        Ok(lock)
    }

    /// The directory `current` points at, if any.
    fn current(&self) -> Result<Option<PathBuf>> {
        let link = self.layout.current_link();
        match std::fs::read_link(&link) {
            Ok(target) => Ok(Some(self.layout.root().join(target))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", link.display())),
        }
    }

    /// The deploy label `current` points at.
    fn current_label(&self) -> Result<Option<String>> {
        Ok(self.current()?.map(|dir| file_name(&dir)))
    }

    /// Points `current` at `label` atomically: a new symlink renamed over
    /// the old one, so there is never a moment without `current`.
    fn switch_current(&self, label: &DeployLabel) -> Result<()> {
        let link = self.layout.current_link();
        let tmp = self
            .layout
            .root()
            .join(format!(".current.tmp-{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(label.as_str(), &tmp)
            .with_context(|| format!("cannot create symlink {}", tmp.display()))?;
        std::fs::rename(&tmp, &link).with_context(|| format!("cannot update {}", link.display()))
    }
}

impl Target for Noproxy<'_> {
    /// Prepares the new release beside the live one, and only then stops
    /// the live one, switches `current` and starts the new one. Until the
    /// switch, a failure leaves the live release alone. A live release
    /// whose stop command fails has its processes killed and does not
    /// block the new one; the run then fails naming it.
    fn start(&self, release: &ReleaseName, label: Option<DeployLabel>) -> Result<Transition> {
        let label = match label {
            Some(l) => l,
            None => release.default_label()?,
        };
        let _lock = self.locked()?;
        let store = self.deployer.store;
        log::scope(&format!("Selecting active release {release}"), || {
            if !store.exists(release)? {
                bail!(
                    "Release {release} does not exist in release store at {}",
                    store.describe()
                );
            }
            let dir = self.layout.deploy_dir(&label);
            let previous = self.current()?;
            let state = match &previous {
                // A dangling `current` leaves nothing live to unpack over.
                Some(p) if p.exists() && deploy::same_dir(p, &dir) => DirState::Live,
                _ => DirState::Fresh(Mode::Noproxy),
            };
            let prepared = self
                .deployer
                .prepare(release, &self.layout, &label, None, state)?;
            let mut failed = FailedStops::default();
            if let Some(prev) = &previous {
                log::scope("Stopping existing release", || stop_dir(prev, &mut failed));
            }
            log::scope("Symlinking new release", || self.switch_current(&label))?;
            log::scope("Starting new release", || prepared.start())?;
            failed.into_result()?;
            Ok(transition(
                previous.as_deref().map(file_name),
                Some(label.to_string()),
            ))
        })
    }

    /// Stops the current release, whatever `deploy` names: the old tool
    /// ignored it and operators' scripts rely on that. [better] A name that
    /// is not the current release gets a warning.
    fn stop(&self, deploy: &str) -> Result<Transition> {
        let _lock = self.locked()?;
        let Some(dir) = self.current()? else {
            log::info("No current release: nothing to stop");
            return Ok(transition(None, None));
        };
        let current = file_name(&dir);
        warn_if_not_current(deploy, &current);
        let mut failed = FailedStops::default();
        log::scope(&format!("Stopping release {current}"), || {
            stop_dir(&dir, &mut failed);
            let link = self.layout.current_link();
            std::fs::remove_file(&link).with_context(|| format!("cannot remove {}", link.display()))
        })?;
        failed.into_result()?;
        Ok(transition(Some(current), None))
    }

    /// The steps of a start or stop, in the order they would run.
    fn dry_run(&self, change: &Change) -> Result<Vec<String>> {
        let current = self.current_label()?;
        match *change {
            Change::Start { release, label } => {
                let store = self.deployer.store;
                if !store.exists(release)? {
                    bail!(
                        "Release {release} does not exist in release store at {}",
                        store.describe()
                    );
                }
                let dir = self.layout.deploy_dir(label);
                let mut steps = vec![format!("Unpack {release} into {}", dir.display())];
                steps.extend(current.map(|c| format!("Stop {c}")));
                steps.push(format!("Point current at {label}"));
                steps.push(format!("Start {label}"));
                Ok(steps)
            }
            Change::Stop { label } => match current {
                None => Ok(vec!["Nothing to do: no current release".to_string()]),
                Some(current) => {
                    warn_if_not_current(label, &current);
                    Ok(vec![
                        format!("Stop {current}"),
                        "Remove current".to_string(),
                    ])
                }
            },
            Change::Connect { .. } => self.connect("", "", false).map(|_| Vec::new()),
            Change::Disconnect { .. } => self.disconnect("").map(|_| Vec::new()),
            Change::Rollback { .. } => self.rollback("", false).map(|_| Vec::new()),
        }
    }

    fn connect(&self, _endpoint: &str, _deploy: &str, _force: bool) -> Result<Transition> {
        bail!("connect needs proxy mode (deployMode is noproxy in the config)")
    }

    fn disconnect(&self, _endpoint: &str) -> Result<Transition> {
        bail!("disconnect needs proxy mode (deployMode is noproxy in the config)")
    }

    fn rollback(&self, _endpoint: &str, _force: bool) -> Result<Transition> {
        bail!("rollback needs proxy mode (deployMode is noproxy in the config)")
    }

    /// [better] noproxy mode shows the current release instead of failing.
    fn status(&self, _show_slaves: bool, json_output: bool) -> Result<()> {
        let current = self.current_label()?;
        if json_output {
            return crate::output::json(&serde_json::json!({ "current": current }));
        }
        Ok(crate::output::line(&format!(
            "Current release: {}",
            current.as_deref().unwrap_or("(none)")
        ))?)
    }

    fn deploy_labels(&self) -> Result<Vec<String>> {
        Ok(self.current_label()?.into_iter().collect())
    }

    fn endpoints(&self) -> Vec<String> {
        Vec::new()
    }
}

/// `stop` stops the current release whatever it is told; a name that is
/// not the current release (nor its release) is warned about.
fn warn_if_not_current(deploy: &str, current: &str) {
    let its_label = ReleaseName::parse(deploy)
        .and_then(|r| r.default_label())
        .is_ok_and(|l| l.as_str() == current);
    if deploy != current && !its_label {
        log::warn(&format!(
            "stop: '{deploy}' is not the current release (current is {current}); stopping {current}"
        ));
    }
}

/// Where `current` pointed before and after a change.
fn transition(before: Option<String>, after: Option<String>) -> Transition {
    Transition {
        before: serde_json::json!({ "current": before }),
        after: serde_json::json!({ "current": after }),
    }
}

fn file_name(dir: &Path) -> String {
    deploy::dir_name(dir)
}

fn stop_dir(dir: &Path, failed: &mut FailedStops) {
    if !dir.exists() {
        // A dangling `current` must not block every later deploy.
        log::warn(&format!(
            "current points to {}, which does not exist: nothing to stop",
            dir.display()
        ));
        return;
    }
    deploy::stop(dir, None, failed);
}
