//! Releases: fetch an archive (zip or tarball) from the store, unpack it
//! safely, read its `release.json`, and expand its templates with a
//! context.

pub(crate) mod tree;
mod untar;
mod unzip;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{DeployHealthCheck, Limits, ToolConfig};
use crate::fsutil;
use crate::log;
use crate::names::{ContextName, Packing, ReleaseName};
use crate::store::ReleaseStore;
use crate::template;

/// `release.json`, mirroring `adl/release.adl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReleaseConfig {
    pub templates: Vec<PathBuf>,
    pub prestart_command: String,
    pub start_command: String,
    pub stop_command: String,
    #[serde(default)]
    pub config_sources: BTreeMap<ContextName, PathBuf>,
    /// [new] Wins over the config's `deployHealthCheck`.
    #[serde(
        default,
        with = "crate::config::plain_or_maybe",
        skip_serializing_if = "Option::is_none"
    )]
    pub health_check: Option<DeployHealthCheck>,
    /// [new] Switch hooks (see `hooks`): empty when absent.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pre_connect_command: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub post_connect_command: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pre_disconnect_command: String,
}

pub(crate) const RELEASE_JSON: &str = "release.json";

impl ReleaseConfig {
    /// Reads `release.json` from an unpacked release directory.
    pub(crate) fn read(dir: &Path) -> Result<ReleaseConfig> {
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

/// Unpacks the archive at `path`, packed as `packing`, into `todir`,
/// writing at most `max_bytes`: the entries it had.
pub(crate) fn unpack_archive(
    path: &Path,
    packing: Packing,
    todir: &Path,
    max_bytes: u64,
) -> Result<usize> {
    match packing {
        Packing::Zip => unzip::extract(path, todir, max_bytes),
        Packing::Tar => untar::extract(path, false, todir, max_bytes),
        Packing::TarGz => untar::extract(path, true, todir, max_bytes),
    }
}

/// Downloads `release` into `<dir>/<release>`, unpacks it into `dir` (within
/// `limits`) and reads its `release.json`. Templates are left for
/// [`expand_templates`].
pub(crate) fn fetch(
    store: &dyn ReleaseStore,
    release: &ReleaseName,
    dir: &Path,
    limits: &Limits,
) -> Result<ReleaseConfig> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let archive = dir.join(release.as_str());
    log::scope(
        &format!("Fetching {release} from {}", store.describe()),
        || store.download(release, &archive),
    )?;
    log::scope(&format!("Unpacking {release}"), || {
        unpack_archive(
            &archive,
            release.packed_as(),
            dir,
            limits.max_unpacked_bytes,
        )
    })?;
    ReleaseConfig::read(dir)
}

/// How templates are expanded: within the config's limits, and never
/// readable by others when the context holds a secret.
pub(crate) struct Expansion {
    pub limits: Limits,
    pub holds_secret: bool,
}

impl Expansion {
    pub(crate) fn of(config: &ToolConfig) -> Expansion {
        Expansion {
            limits: config.limits,
            holds_secret: config.holds_secret(),
        }
    }
}

/// Expands each template `path/x.conf.tpl` into `path/x.conf` beside it.
pub(crate) fn expand_templates(
    root: &Path,
    templates: &[PathBuf],
    ctx: &Value,
    how: &Expansion,
) -> Result<()> {
    for rel in templates {
        let src = fsutil::inside(root, rel).context("release.json templates")?;
        let dest = src.with_extension("");
        log::scope(&format!("Expanding template {}", rel.display()), || {
            expand_template(&src, &dest, ctx, how)
        })?;
    }
    Ok(())
}

/// Renders one template file to `dest` (atomically). It keeps the
/// template's permission bits, so a templated script stays executable and
/// the file is no more readable than the template; when the context holds
/// a secret, the bits for others are dropped too, since the rendered file
/// may hold it.
pub(crate) fn expand_template(src: &Path, dest: &Path, ctx: &Value, how: &Expansion) -> Result<()> {
    let rendered = template::render_file(src, ctx, &how.limits.template())?;
    for w in &rendered.warnings {
        log::warn(w);
    }
    let mut mode = std::fs::metadata(src)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o644);
    if how.holds_secret {
        mode &= !0o007;
    }
    fsutil::write_atomic(dest, rendered.text.as_bytes(), mode)
}
