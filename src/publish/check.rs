//! Checking a release archive before it is uploaded, as a deploy would read it:
//! unpacked under the same safety rules and limits (an entry escaping the
//! archive is refused), then `release.json` parsed, each listed template
//! parsed, each release context source read as JSON. The scratch directory
//! is removed afterwards; nothing is written anywhere else.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};

use crate::config::Limits;
use crate::fsutil;
use crate::names::Packing;
use crate::release::{self, ReleaseConfig, RELEASE_JSON};
use crate::template;

pub(super) fn check(archive: &Path, packing: Packing, limits: &Limits) -> Result<()> {
    let scratch = tempfile::tempdir().context("cannot create a scratch directory")?;
    let root = scratch.path();
    release::unpack_archive(archive, packing, root, limits.max_unpacked_bytes)?;
    let rc = release_json(root)?;
    for rel in &rc.templates {
        let shown = rel.display();
        let path = fsutil::inside(root, rel).map_err(|_| {
            anyhow!("release.json lists template '{shown}', which is not a path inside the release")
        })?;
        if !path.is_file() {
            bail!("release.json lists template '{shown}', which is not in the release");
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow!("template '{shown}': cannot read it: {e}"))?;
        template::check(&text).map_err(|e| anyhow!("template '{shown}': {e:#}"))?;
    }
    for (name, rel) in &rc.config_sources {
        let shown = rel.display();
        let path = fsutil::inside(root, rel).map_err(|_| {
            anyhow!("release.json configSources {name}: '{shown}' is not a path inside the release")
        })?;
        let text = std::fs::read_to_string(&path).map_err(|_| {
            anyhow!("release.json configSources {name}: '{shown}' is not in the release")
        })?;
        serde_json::from_str::<serde_json::Value>(&text)
            .map_err(|e| anyhow!("configSources {name}: '{shown}' is not JSON: {e}"))?;
    }
    Ok(())
}

fn release_json(root: &Path) -> Result<ReleaseConfig> {
    let path = root.join(RELEASE_JSON);
    if !path.is_file() {
        bail!("the release has no release.json at its top");
    }
    let text = std::fs::read_to_string(&path).context("cannot read release.json")?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| anyhow!("release.json: invalid JSON: {e}"))?;
    crate::config::parse_value(value, RELEASE_JSON)
}
