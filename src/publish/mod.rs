//! `publish`: checks a release (a directory, a zip or a tarball) and
//! uploads it to the release store, without ever overwriting one unless
//! asked.
//!
//! A directory is zipped first ([`pack`]), deterministically, into a
//! temporary file; an archive is uploaded as it is. Either way it is then
//! checked as a deploy would read it ([`check`]): unpacked with the same
//! safety rules into a scratch directory, never into deploysDir. Nothing is
//! uploaded unless every check passes.

mod check;
mod pack;

use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::config::ToolConfig;
use crate::names::{Packing, ReleaseName};
use crate::output;
use crate::store::ReleaseStore;

/// `publish <dir|zip> [--name NAME] [--force]`: prints the release name.
pub(crate) fn publish(
    config: &ToolConfig,
    store: &dyn ReleaseStore,
    input: &Path,
    name: Option<&str>,
    force: bool,
) -> Result<()> {
    let meta =
        std::fs::metadata(input).with_context(|| format!("cannot publish {}", input.display()))?;
    let release = match name {
        Some(n) => ReleaseName::parse(n)?,
        None => default_name(input, meta.is_dir())?,
    };
    // A deploy unpacks by the name: it must say how the bytes are packed.
    if meta.is_dir() && release.packed_as() != Packing::Zip {
        bail!("a directory is published as a zip: give it a name that does not end in .tar, .tar.gz or .tgz");
    }
    // Early, to spare packing and checking a large release for nothing;
    // the upload itself refuses to overwrite too.
    if !force && store.exists(&release)? {
        bail!("{}", already_there(&release, store));
    }
    let scratch = tempfile::tempdir().context("cannot create a scratch directory")?;
    let zip = if meta.is_dir() {
        let zip = scratch.path().join(release.as_str());
        pack::pack(input, &zip, config.limits.max_unpacked_bytes)
            .with_context(|| format!("cannot publish {}", input.display()))?;
        zip
    } else {
        input.to_path_buf()
    };
    check::check(&zip, release.packed_as(), &config.limits)
        .with_context(|| format!("cannot publish {}", input.display()))?;
    if !store.upload(&release, &zip, force)? {
        bail!("{}", already_there(&release, store));
    }
    Ok(output::line(release.as_str())?)
}

fn already_there(release: &ReleaseName, store: &dyn ReleaseStore) -> String {
    format!(
        "release {release} already exists in release store at {}: publish under another --name, or with --force to replace it",
        store.describe()
    )
}

/// `<dir name>.zip` for a directory, the file's own name for an archive.
fn default_name(input: &Path, is_dir: bool) -> Result<ReleaseName> {
    // `.` or `releases/shop/..` name a directory too.
    let real = input
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", input.display()))?;
    let Some(base) = real.file_name().and_then(|n| n.to_str()) else {
        bail!(
            "cannot name a release after {}: give it one with --name NAME.zip",
            input.display()
        );
    };
    let name = if is_dir {
        format!("{base}.zip")
    } else {
        base.to_string()
    };
    ReleaseName::parse(&name)
        .with_context(|| format!("give {} a release name with --name", input.display()))
}
