//! Noproxy mode (SPEC §5): exactly one live release, `<deploysDir>/current`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::config::ToolConfig;
use crate::release;
use crate::shell;
use crate::store::ReleaseStore;
use crate::{context, log};

const CURRENT: &str = "current";

fn current_link(config: &ToolConfig) -> PathBuf {
    config.deploys_dir.join(CURRENT)
}

/// The directory `current` points at, if any.
pub fn current(config: &ToolConfig) -> Result<Option<PathBuf>> {
    let link = current_link(config);
    match std::fs::read_link(&link) {
        Ok(target) => Ok(Some(if target.is_absolute() {
            target
        } else {
            config.deploys_dir.join(target)
        })),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", link.display())),
    }
}

/// The deploy label `current` points at, for `status`.
pub fn current_label(config: &ToolConfig) -> Result<Option<String>> {
    Ok(current(config)?.map(|dir| file_name(&dir)))
}

fn file_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default()
}

/// `start <release> [label]`.
pub fn start(
    config: &ToolConfig,
    store: &dyn ReleaseStore,
    release: &str,
    label: Option<&str>,
) -> Result<()> {
    let label = label
        .map(str::to_string)
        .unwrap_or_else(|| release::default_label(release));
    check_label(&label)?;
    log::scope(&format!("Selecting active release {release}"), || {
        if !store.exists(release)? {
            bail!(
                "Release {release} does not exist in release store at {}",
                store.describe()
            );
        }
        context::fetch(config, false)?;
        let infra = context::infrastructure(config)?;
        let dir = config.deploys_dir.join(&label);
        let previous = current(config)?;
        let redeploy = previous.as_deref().is_some_and(|p| same_dir(p, &dir));
        if !redeploy && dir.exists() {
            release::remove_leftover(&dir, release)?;
        }
        // Until the switch, a failure must leave the live release alone, and
        // not leave a half-prepared directory behind.
        let prepared = release::unpack(store, release, &dir, &infra, None).and_then(|rc| {
            log::scope("Running prestart script", || {
                shell::run(
                    &format!("prestartCommand of {release}"),
                    &rc.prestart_command,
                    &dir,
                )
            })?;
            Ok(rc)
        });
        let new_release = match prepared {
            Ok(rc) => rc,
            Err(e) => {
                if !redeploy {
                    let _ = std::fs::remove_dir_all(&dir);
                }
                return Err(e);
            }
        };
        if let Some(prev) = &previous {
            log::scope("Stopping existing release", || stop_dir(prev))?;
        }
        log::scope("Symlinking new release", || switch_current(config, &label))?;
        log::scope("Starting new release", || {
            shell::run(
                &format!("startCommand of {release}"),
                &new_release.start_command,
                &dir,
            )
        })
    })
}

/// `stop <deploy>`: stops the current release. [better] Refuses to act when
/// `deploy` names something other than the current release.
pub fn stop(config: &ToolConfig, deploy: &str) -> Result<()> {
    let Some(dir) = current(config)? else {
        log::info("No current release: nothing to stop");
        return Ok(());
    };
    let current_label = file_name(&dir);
    if deploy != current_label && release::default_label(deploy) != current_label {
        bail!("'{deploy}' is not the current release (current is {current_label})");
    }
    log::scope(&format!("Stopping release {current_label}"), || {
        stop_dir(&dir)?;
        let link = current_link(config);
        std::fs::remove_file(&link).with_context(|| format!("cannot remove {}", link.display()))
    })
}

fn stop_dir(dir: &Path) -> Result<()> {
    if !dir.exists() {
        // A dangling `current` must not block every later deploy.
        log::warn(&format!(
            "current points to {}, which does not exist: nothing to stop",
            dir.display()
        ));
        return Ok(());
    }
    release::run_stop(dir, &file_name(dir))
}

/// Points `current` at `label` atomically: a new symlink renamed over the
/// old one, so there is never a moment without `current`.
fn switch_current(config: &ToolConfig, label: &str) -> Result<()> {
    let link = current_link(config);
    let tmp = config
        .deploys_dir
        .join(format!(".{CURRENT}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(label, &tmp)
        .with_context(|| format!("cannot create symlink {}", tmp.display()))?;
    std::fs::rename(&tmp, &link).with_context(|| format!("cannot update {}", link.display()))
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// A label becomes a directory name in deploysDir.
pub fn check_label(label: &str) -> Result<()> {
    if label.is_empty()
        || label.contains('/')
        || label.starts_with('.')
        || label == CURRENT
        || label == "frontend-proxy"
    {
        bail!("invalid deploy label '{label}'");
    }
    Ok(())
}
