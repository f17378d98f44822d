//! Noproxy mode: exactly one live release, `<deploysDir>/current`, and the
//! one live before it (`frontend-proxy/noproxy.json`), where `rollback`
//! goes.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::config::ToolConfig;
use crate::deploy::{self, Deployer, DirState, FailedStops, Mode, Prepared};
use crate::hooks::{self, Hook};
use crate::journal::By;
use crate::layout::Layout;
use crate::names::{DeployLabel, ReleaseName};
use crate::refusal::refused;
use crate::store::ReleaseStore;
use crate::target::{Change, Status, Target, Transition};
use crate::{command_env, fsutil, journal, log};

/// Noproxy mode's deploy target.
pub(crate) struct Noproxy<'a> {
    deployer: Deployer<'a>,
    layout: Layout,
}

/// `noproxy.json`: the release that was live before the current one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Previous {
    previous: DeployLabel,
    /// Its release, to fetch it anew when its directory is gone.
    previous_release: ReleaseName,
}

/// The most `noproxy.json` may hold.
const MAX_PREVIOUS_BYTES: u64 = 64 * 1024;

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

    /// The release that was live before the current one, if recorded.
    fn previous(&self) -> Result<Option<Previous>> {
        let path = self.layout.noproxy_file();
        let Some(bytes) = fsutil::read_bounded(&path, MAX_PREVIOUS_BYTES)? else {
            return Ok(None);
        };
        crate::proxy::state::parse_object(&bytes, &path.display().to_string(), "noproxy record")
            .map(Some)
            .context("remove it to forget the previous release")
    }

    /// Records the deploy in `dir` (live until now) as the previous one.
    fn remember(&self, dir: &Path) -> Result<()> {
        let (Ok(label), Some(release)) = (
            DeployLabel::parse(&file_name(dir)),
            command_env::recorded_release(dir),
        ) else {
            // Not c2's, or made before releases were recorded: nothing a
            // rollback could start again.
            return Ok(());
        };
        let record = Previous {
            previous: label,
            previous_release: release,
        };
        let mut bytes = serde_json::to_vec_pretty(&record)?;
        bytes.push(b'\n');
        let path = self.layout.noproxy_file();
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        fsutil::write_atomic(&path, &bytes, 0o644)
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

    /// The switch every start and rollback ends with, once the new release
    /// is prepared: its pre-connect hook may refuse (then nothing changes
    /// and what was prepared goes); the live one hears it is leaving and
    /// stops, `current` moves, the new one starts and hears it is live;
    /// and the one that was live is remembered. A live release whose stop
    /// command fails has its processes killed and does not block the new
    /// one; the run then fails naming it, as it does for a post-connect
    /// hook that fails.
    fn go_live(
        &self,
        prepared: Prepared,
        label: &DeployLabel,
        live: Option<PathBuf>,
    ) -> Result<Transition> {
        if let Err(e) = hooks::gate(Hook::PreConnect, prepared.dir(), None, hooks::CURRENT) {
            prepared.discard();
            return Err(e);
        }
        let replaced = live
            .as_ref()
            .filter(|dir| !deploy::same_dir(dir, &self.layout.deploy_dir(label)));
        if let Some(replaced) = replaced {
            hooks::warned(Hook::PreDisconnect, replaced, None, hooks::CURRENT);
        }
        let mut failed = FailedStops::default();
        if let Some(live) = &live {
            log::scope("Stopping existing release", || stop_dir(live, &mut failed));
        }
        log::scope("Symlinking new release", || self.switch_current(label))?;
        let started = log::scope("Starting new release", || prepared.start());
        // Whatever the start did, the release stopped above is where a
        // rollback goes.
        let remembered = replaced.map_or(Ok(()), |dir| self.remember(dir));
        started?;
        remembered?;
        let connected = hooks::warned(Hook::PostConnect, prepared.dir(), None, hooks::CURRENT);
        let after = match (failed.into_result(), connected) {
            (Ok(()), hook) => hook,
            (Err(stops), None) => Some(stops),
            (Err(stops), Some(hook)) => Some(anyhow::anyhow!("{stops:#}; {hook:#}")),
        };
        transition(live.as_deref().map(file_name), Some(label.to_string())).made(after)
    }

    /// How a release goes live in `dir`: over the live one if it is that
    /// directory, else into a fresh directory.
    fn dir_state(&self, live: Option<&PathBuf>, dir: &Path) -> DirState {
        match live {
            // A dangling `current` leaves nothing live to unpack over.
            Some(p) if p.exists() && deploy::same_dir(p, dir) => DirState::Live,
            _ => DirState::Fresh(Mode::Noproxy),
        }
    }

    fn check_in_store(&self, release: &ReleaseName) -> Result<()> {
        let store = self.deployer.store;
        if !store.exists(release)? {
            refused!(
                NotFound,
                "Release {release} does not exist in release store at {}",
                store.describe()
            );
        }
        Ok(())
    }

    /// `--dry-run`: the switch from `current` to `label`.
    fn switch_steps(&self, current: Option<&str>, label: &DeployLabel) -> Vec<String> {
        let mut steps = Vec::new();
        if let Some(current) = current.filter(|c| *c != label.as_str()) {
            steps.extend(self.hook_step(current, Hook::PreDisconnect));
        }
        steps.extend(current.map(|c| format!("Stop {c}")));
        steps.push(format!("Point current at {label}"));
        steps.push(format!("Start {label}"));
        steps
    }

    /// `--dry-run`: `hook` of the deploy `label`, if it has one.
    fn hook_step(&self, label: &str, hook: Hook) -> Vec<String> {
        let dir = self.layout.root().join(label);
        hooks::has(&dir, hook)
            .then(|| format!("Run {hook} of {label} for {}", hooks::CURRENT))
            .into_iter()
            .collect()
    }

    /// Whether the previous release's directory can be started again as
    /// it is: still there, and still that release.
    fn reusable(&self, previous: &Previous) -> bool {
        let dir = self.layout.deploy_dir(&previous.previous);
        command_env::recorded_release(&dir).as_ref() == Some(&previous.previous_release)
    }

    /// Prepares the new release beside the live one, and only then stops
    /// the live one, switches `current` and starts the new one. Until the
    /// switch, a failure leaves the live release alone.
    fn start(&self, release: &ReleaseName, label: &DeployLabel) -> Result<Transition> {
        let _lock = self.locked()?;
        log::scope(&format!("Selecting active release {release}"), || {
            self.check_in_store(release)?;
            let dir = self.layout.deploy_dir(label);
            let live = self.current()?;
            let state = self.dir_state(live.as_ref(), &dir);
            let prepared = self
                .deployer
                .prepare(release, &self.layout, label, None, state)?;
            self.go_live(prepared, label, live)
        })
    }

    /// Stops the current release, whatever `deploy` names: the old tool
    /// ignored it and operators' scripts rely on that. [better] A name that
    /// is not the current release gets a warning. The stopped release is
    /// the one a rollback starts again.
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
            hooks::warned(Hook::PreDisconnect, &dir, None, hooks::CURRENT);
            stop_dir(&dir, &mut failed);
            let link = self.layout.current_link();
            std::fs::remove_file(&link)
                .with_context(|| format!("cannot remove {}", link.display()))?;
            self.remember(&dir)
        })?;
        transition(Some(current), None).made(failed.into_result().err())
    }

    /// [new] Makes the release live before the current one live again: its
    /// directory as it is when it is still there (no download), else
    /// fetched and unpacked anew; then as a start does. The release it
    /// leaves becomes the previous one, so a second rollback goes forward.
    fn rollback(&self, endpoint: Option<&str>) -> Result<Transition> {
        if let Some(endpoint) = endpoint {
            refused!(
                BadRequest,
                "noproxy mode has no endpoints: `c2 rollback` takes none (not {endpoint})"
            );
        }
        let _lock = self.locked()?;
        let Some(previous) = self.previous()? else {
            refused!(Conflict, "no previous release");
        };
        let label = &previous.previous;
        let release = &previous.previous_release;
        log::scope(&format!("Rolling back to release {label}"), || {
            let live = self.current()?;
            let prepared = if self.reusable(&previous) {
                log::info(&format!("Starting {release} again from its directory"));
                self.deployer.prepare_again(release, &self.layout, label)?
            } else {
                if !self.deployer.store.exists(release)? {
                    refused!(Conflict, "previous release {label} is gone from the store");
                }
                let dir = self.layout.deploy_dir(label);
                let state = self.dir_state(live.as_ref(), &dir);
                self.deployer
                    .prepare(release, &self.layout, label, None, state)?
            };
            self.go_live(prepared, label, live)
        })
    }
}

impl Target for Noproxy<'_> {
    fn apply(&self, change: &Change, _: &By) -> Result<Transition> {
        match *change {
            Change::Start { release, label } => self.start(release, label),
            Change::Stop { label } => self.stop(label),
            Change::Rollback { endpoint, .. } => self.rollback(endpoint),
            Change::Connect { .. } => {
                bail!("connect needs proxy mode (deployMode is noproxy in the config)")
            }
            Change::Disconnect { .. } => {
                bail!("disconnect needs proxy mode (deployMode is noproxy in the config)")
            }
        }
    }

    /// The steps of a start, stop or rollback, in the order they would run.
    fn dry_run(&self, change: &Change) -> Result<Vec<String>> {
        let current = self.current_label()?;
        match *change {
            Change::Start { release, label } => {
                self.check_in_store(release)?;
                let dir = self.layout.deploy_dir(label);
                // The new release's own hooks are known once it is unpacked.
                let mut steps = vec![format!("Unpack {release} into {}", dir.display())];
                steps.extend(self.switch_steps(current.as_deref(), label));
                Ok(steps)
            }
            Change::Stop { label } => match current {
                None => Ok(vec!["Nothing to do: no current release".to_string()]),
                Some(current) => {
                    warn_if_not_current(label, &current);
                    let mut steps = self.hook_step(&current, Hook::PreDisconnect);
                    steps.push(format!("Stop {current}"));
                    steps.push("Remove current".to_string());
                    Ok(steps)
                }
            },
            Change::Rollback { endpoint, .. } => {
                if let Some(endpoint) = endpoint {
                    refused!(
                        BadRequest,
                        "noproxy mode has no endpoints: `c2 rollback` takes none (not {endpoint})"
                    );
                }
                let Some(previous) = self.previous()? else {
                    refused!(Conflict, "no previous release");
                };
                let label = &previous.previous;
                let dir = self.layout.deploy_dir(label);
                let mut steps = vec![if self.reusable(&previous) {
                    format!("Reuse {} as it is", dir.display())
                } else {
                    if !self.deployer.store.exists(&previous.previous_release)? {
                        refused!(Conflict, "previous release {label} is gone from the store");
                    }
                    format!(
                        "Unpack {} into {}",
                        previous.previous_release,
                        dir.display()
                    )
                }];
                steps.push(format!("Run the prestart command of {label}"));
                steps.extend(self.hook_step(label.as_str(), Hook::PreConnect));
                steps.extend(self.switch_steps(current.as_deref(), label));
                steps.extend(self.hook_step(label.as_str(), Hook::PostConnect));
                Ok(steps)
            }
            Change::Connect { .. } | Change::Disconnect { .. } => {
                self.apply(change, &By::Shell).map(|_| Vec::new())
            }
        }
    }

    /// [better] noproxy mode shows the current release instead of failing,
    /// and [new] the previous one, where a rollback goes.
    fn status(&self, _show_slaves: bool) -> Result<Status<'_>> {
        let current = self.current()?;
        Ok(Status::Noproxy {
            current_release: current.as_deref().and_then(command_env::recorded_release),
            current: current.map(|dir| file_name(&dir)),
            previous: self.previous()?.map(|p| p.previous.to_string()),
        })
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
