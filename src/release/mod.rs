//! Releases (SPEC §2.3, §3): fetch a zip from the store, unpack it safely,
//! and expand its templates with the context.

pub mod unzip;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::context::{self, Ports};
use crate::fsutil;
use crate::log;
use crate::store::ReleaseStore;
use crate::template;

/// `release.json`, mirroring `adl/release.adl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseConfig {
    pub templates: Vec<PathBuf>,
    pub prestart_command: String,
    pub start_command: String,
    pub stop_command: String,
    #[serde(default)]
    pub config_sources: BTreeMap<String, PathBuf>,
}

pub const RELEASE_JSON: &str = "release.json";

impl ReleaseConfig {
    /// Reads `release.json` from an unpacked release directory.
    pub fn read(dir: &Path) -> Result<ReleaseConfig> {
        let path = dir.join(RELEASE_JSON);
        if !path.is_file() {
            bail!(
                "{} is missing: the release has no release.json",
                path.display()
            );
        }
        let value = fsutil::read_json(&path)?;
        crate::config::parse_value(value, &path.display().to_string())
    }
}

/// The default deploy label of a release: its base name without directory
/// and last extension (`shop-1.4.zip` → `shop-1.4`).
pub fn default_label(release: &str) -> String {
    let base = release.rsplit('/').next().unwrap_or(release);
    match base.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() => stem.to_string(),
        _ => base.to_string(),
    }
}

/// `root/rel`, refusing a `rel` that is absolute or climbs out with `..`,
/// and (when it exists) one that symlinks out of `root`.
pub fn inside(root: &Path, rel: &Path) -> Result<PathBuf> {
    let escapes = rel
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
    if escapes || rel.as_os_str().is_empty() {
        bail!(
            "path '{}' must be relative and stay inside {}",
            rel.display(),
            root.display()
        );
    }
    let path = root.join(rel);
    if let (Ok(real), Ok(real_root)) = (path.canonicalize(), root.canonicalize()) {
        if !real.starts_with(&real_root) {
            bail!(
                "path '{}' leads outside {} through a symlink",
                rel.display(),
                root.display()
            );
        }
    }
    Ok(path)
}

/// `unpack`: downloads `release` into `<todir>/<release>`, unzips it into
/// `todir`, reads `release.json` and expands its templates.
pub fn unpack(
    store: &dyn ReleaseStore,
    release: &str,
    todir: &Path,
    infra: &BTreeMap<String, Value>,
    ports: Option<&Ports>,
) -> Result<ReleaseConfig> {
    std::fs::create_dir_all(todir).with_context(|| format!("cannot create {}", todir.display()))?;
    let zip_path = todir.join(release);
    log::scope(
        &format!("Fetching {release} from {}", store.describe()),
        || store.download(release, &zip_path),
    )?;
    log::scope(&format!("Unpacking {release}"), || {
        unzip::extract(&zip_path, todir)
    })?;
    let release_config = ReleaseConfig::read(todir)?;
    let ctx = context::for_release(infra, todir, &release_config.config_sources, ports)?;
    expand_templates(todir, &release_config.templates, &ctx)?;
    Ok(release_config)
}

/// Runs the stopCommand of the release unpacked in `dir`; `name` names it
/// in errors.
pub fn run_stop(dir: &Path, name: &str) -> Result<()> {
    let rc = ReleaseConfig::read(dir)?;
    crate::shell::run(&format!("stopCommand of {name}"), &rc.stop_command, dir)
}

/// Removes a deploy directory that no state lists: left by a run killed
/// midway. What it started may still run (and hold ports), so its tagged
/// processes are killed and its stop command is run (best effort) first.
pub fn remove_leftover(dir: &Path, name: &str) -> Result<()> {
    log::warn(&format!(
        "{} was left by an interrupted run: stopping and removing it",
        dir.display()
    ));
    crate::shell::kill_leftovers(dir);
    if dir.join(RELEASE_JSON).exists() {
        if let Err(e) = run_stop(dir, name) {
            log::warn(&format!("stopping the leftover {name}: {e:#}"));
        }
    }
    std::fs::remove_dir_all(dir).with_context(|| format!("cannot remove stale {}", dir.display()))
}

/// Expands each template `path/x.conf.tpl` into `path/x.conf` beside it.
pub fn expand_templates(root: &Path, templates: &[PathBuf], ctx: &Value) -> Result<()> {
    for rel in templates {
        let src = inside(root, rel).with_context(|| "release.json templates".to_string())?;
        let dest = src.with_extension("");
        log::scope(&format!("Expanding template {}", rel.display()), || {
            expand_template(&src, &dest, ctx)
        })?;
    }
    Ok(())
}

/// Renders one template file to `dest` (atomically, keeping the
/// template's permission bits so a templated script stays executable).
pub fn expand_template(src: &Path, dest: &Path, ctx: &Value) -> Result<()> {
    let rendered = template::render_file(src, ctx)?;
    for w in &rendered.warnings {
        log::warn(w);
    }
    let mode = std::fs::metadata(src)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o644);
    fsutil::write_atomic(dest, rendered.text.as_bytes(), mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_label_drops_directory_and_last_extension() {
        assert_eq!(default_label("shop-1.4.zip"), "shop-1.4");
        assert_eq!(default_label("a/b/shop.tar.zip"), "shop.tar");
        assert_eq!(default_label("noext"), "noext");
    }

    #[test]
    fn inside_refuses_escapes() {
        let root = Path::new("/tmp/x");
        assert!(inside(root, Path::new("a/b.tpl")).is_ok());
        assert!(inside(root, Path::new("../b.tpl")).is_err());
        assert!(inside(root, Path::new("/etc/passwd")).is_err());
        assert!(inside(root, Path::new("a/../../b")).is_err());
    }
}
