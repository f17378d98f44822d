//! `prune --keep N [--dry-run]`: deletes the release store's releases
//! beyond the N newest, except those a deploy uses.
//!
//! In use: in noproxy mode, the release `current` runs (start keeps the
//! zip it downloaded at `<deploy dir>/<release>`, so every file at the top
//! of that directory counts, which can only keep too much); in proxy mode,
//! every deploy of this machine's state and, with remote state, of the
//! master (a slave's own state may lag the master, so both count).
//!
//! Racing a start: with this machine's state (and in noproxy mode) prune
//! holds the lock a start holds from its check of the release to the
//! recording of its deploy, so one comes entirely before the other. With
//! remote state a start only writes the master, from anywhere, so no lock
//! can order them: prune first moves each candidate to the store's hidden
//! set-aside place (where a start no longer finds it), then reads the
//! master again, restores any candidate it now uses, and only then deletes
//! the rest. A start whose master write that second read missed finds its
//! release gone afterwards and takes its deploy out again (see
//! `remote::master`). Set-aside releases left by a prune that was killed
//! midway are dealt with by the next prune the same way.

use std::collections::BTreeSet;

use anyhow::{Context, Result};

use crate::config::{DeployMode, ToolConfig};
use crate::layout::Layout;
use crate::log;
use crate::names::ReleaseName;
use crate::output::{self, Deferred};
use crate::proxy::state::State;
use crate::remote::store::{self as remote_store, RemoteStore};
use crate::store::ReleaseStore;

pub(crate) fn prune(
    config: &ToolConfig,
    store: &dyn ReleaseStore,
    keep: usize,
    dry_run: bool,
) -> Result<()> {
    let layout = config.layout();
    let master = match &config.deploy_mode {
        DeployMode::Proxy(p) => p.remote_state_s3.as_ref().map(remote_store::open),
        DeployMode::Noproxy => None,
    };
    let _lock = match master {
        None => Some(layout.lock()?),
        Some(_) => None,
    };
    let uses = Uses {
        config,
        layout: &layout,
        master: master.as_deref(),
    };
    let used = uses.releases()?;
    let candidates: Vec<ReleaseName> = store
        .list()?
        .into_iter()
        .skip(keep)
        .filter(|name| !used.contains(name))
        .collect();
    if dry_run {
        for name in &candidates {
            output::line(&format!("would delete {name}"))?;
        }
        return Ok(());
    }
    // A failure part-way still settles what was set aside, then is reported;
    // so does stdout going away: what is set aside is hidden from every
    // start until settled.
    let mut out = Deferred::default();
    let mut failed = None;
    for name in &candidates {
        if let Err(e) = store.set_aside(name) {
            failed = Some(e);
            break;
        }
    }
    settle(store, &uses, &candidates, &mut out)?;
    match failed {
        Some(e) => Err(e),
        None => Ok(out.finish()?),
    }
}

/// Restores each set-aside release a deploy uses now, deletes the others:
/// this run's candidates in their order (newest first), then any left by
/// an interrupted prune.
fn settle(
    store: &dyn ReleaseStore,
    uses: &Uses,
    candidates: &[ReleaseName],
    out: &mut Deferred,
) -> Result<()> {
    let mut aside: Vec<ReleaseName> = store
        .set_aside_list()?
        .iter()
        .filter_map(|name| ReleaseName::parse(name).ok())
        .collect();
    aside.sort_by_key(|name| {
        candidates
            .iter()
            .position(|c| c == name)
            .unwrap_or(usize::MAX)
    });
    if aside.is_empty() {
        return Ok(());
    }
    let used = uses.releases()?;
    for name in &aside {
        if used.contains(name) {
            store.restore(name)?;
            log::warn(&format!("kept {name}: a deploy started using it meanwhile"));
        } else {
            store.delete_set_aside(name)?;
            out.line(&format!("deleted {name}"));
        }
    }
    Ok(())
}

/// Where the releases in use are read from.
struct Uses<'a> {
    config: &'a ToolConfig,
    layout: &'a Layout,
    master: Option<&'a dyn RemoteStore>,
}

impl Uses<'_> {
    fn releases(&self) -> Result<BTreeSet<ReleaseName>> {
        let mut used = BTreeSet::new();
        match &self.config.deploy_mode {
            DeployMode::Noproxy => self.current(&mut used)?,
            DeployMode::Proxy(_) => {
                add(&mut used, &State::read(&self.layout.state_file())?);
                if let Some(master) = self.master {
                    add(&mut used, &master.master()?.0);
                }
            }
        }
        Ok(used)
    }

    /// noproxy: the files at the top of the directory `current` points at.
    fn current(&self, used: &mut BTreeSet<ReleaseName>) -> Result<()> {
        let link = self.layout.current_link();
        let target = match std::fs::read_link(&link) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", link.display())),
        };
        let dir = self.layout.root().join(target);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            // A dangling `current` runs nothing.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
        };
        for entry in entries {
            let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
            if entry.file_type().is_ok_and(|t| t.is_file()) {
                if let Ok(name) = ReleaseName::parse(&entry.file_name().to_string_lossy()) {
                    used.insert(name);
                }
            }
        }
        Ok(())
    }
}

fn add(used: &mut BTreeSet<ReleaseName>, state: &State) {
    used.extend(state.deploys.values().map(|d| d.release.clone()));
}
