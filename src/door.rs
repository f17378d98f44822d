//! The one door every change of deploys goes through, from the command
//! line and from the HTTP API alike: the dry run, the deploy lock, the
//! change itself (through the mode's [`Target`]), the history, and
//! `--await-slaves`, composed in one place so the two cannot drift.

use std::time::{Duration, SystemTime};

use anyhow::Result;

use crate::config::{RemoteLocation, ToolConfig};
use crate::journal::{self, record, By};
use crate::log;
use crate::refusal::refused;
use crate::remote::fleet::{Affects, Fleet};
use crate::remote::{self, store::RemoteStore};
use crate::store::ReleaseStore;
use crate::target::{self, Change, MadeWithErrors, Transition};

/// A change as it is asked for.
pub(crate) struct Ask<'a> {
    pub change: Change<'a>,
    /// Say what would be done, and change nothing.
    pub dry_run: bool,
    /// With remote state: wait for the fleet (`--await-slaves`).
    pub fleet: Option<Wait>,
    pub by: By,
}

/// `--await-slaves`: at least `min_slaves` live slaves, for at most `timeout`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Wait {
    pub min_slaves: usize,
    pub timeout: Duration,
}

/// What a change came to.
#[derive(Debug)]
pub(crate) enum Done {
    /// A dry run: what would be done, one line each.
    Planned(Vec<String>),
    Made,
}

/// Makes (or, dry, plans) the change asked for, under the rules and the
/// deploy lock; records it in the history; with `fleet`, checks the fleet
/// first (enough live slaves; for a connect or rollback, every one running
/// the deploy traffic goes to) and waits for it after.
pub(crate) fn change(config: &ToolConfig, store: &dyn ReleaseStore, ask: &Ask) -> Result<Done> {
    let journal = journal::open(config);
    let target = target::open(config, store)?;
    if ask.dry_run {
        // Allowed while deploys are locked, with a warning that the real
        // change is not.
        match journal::current_lock(journal.as_ref()) {
            Ok(None) => {}
            Ok(Some(lock)) => log::warn(&format!(
                "deploys are locked by {}; without --dry-run this command would be refused",
                lock.holder()
            )),
            Err(e) => log::warn(&format!("{e:#}")),
        }
        return Ok(Done::Planned(target.dry_run(&ask.change)?));
    }
    journal::check_unlocked(journal.as_ref())?;
    // A change made with errors is recorded, then fails. A target that
    // records with the change itself (etcd: in the master's transaction)
    // is not recorded twice.
    let recorded = |transition: &Transition| {
        if !target.records_history() {
            record(
                journal.as_ref(),
                &ask.by,
                ask.change.words(),
                transition.clone(),
            );
        }
    };
    let make = || match target.apply(&ask.change, &ask.by) {
        Ok(transition) => {
            recorded(&transition);
            Ok(transition)
        }
        Err(e) => match e.downcast::<MadeWithErrors>() {
            Ok(made) => {
                recorded(&made.transition);
                Err(made.error)
            }
            Err(e) => Err(e),
        },
    };
    let Some(wait) = ask.fleet else {
        make()?;
        return Ok(Done::Made);
    };
    let remote = remote_of(config)?;
    let slaves = Fleet::new(remote.as_ref());
    let routed_to = match ask.change.routed_to() {
        Some(RoutedTo::Deploy(d)) => Some(d.to_string()),
        Some(RoutedTo::PreviousOf(endpoint)) => remote
            .master()?
            .0
            .previous_connections
            .get(endpoint)
            .map(ToString::to_string),
        None => None,
    };
    let live = slaves.live(wait.min_slaves)?;
    if let Some(d) = routed_to {
        Fleet::check_deploy_ok(&live, &d)?;
    }
    let since = SystemTime::now();
    // Recorded as soon as the master has it, before the fleet follows.
    make()?;
    let (master, version) = remote.master()?;
    slaves.wait(
        &live,
        (&master, version),
        &ask.change.affects(),
        since,
        wait.timeout,
    )?;
    Ok(Done::Made)
}

/// The remote state `--await-slaves` waits on.
fn remote_of(config: &ToolConfig) -> Result<Box<dyn RemoteStore>> {
    let Some(proxy) = config.proxy_mode() else {
        refused!(
            BadRequest,
            "--await-slaves needs proxy mode (deployMode is noproxy in the config)"
        );
    };
    let location: &RemoteLocation = match &proxy.remote_state_s3 {
        Some(l) => l,
        None => refused!(
            BadRequest,
            "--await-slaves needs remote state: set deployMode.proxy.remoteStateS3 in the config"
        ),
    };
    Ok(remote::store::open(location))
}

/// The deploy a connect or rollback routes traffic to, which every live
/// slave must run before `--await-slaves` lets it through.
pub(crate) enum RoutedTo<'a> {
    Deploy(&'a str),
    PreviousOf(&'a str),
}

impl Change<'_> {
    /// What the fleet must show for the change to have reached it.
    fn affects(&self) -> Affects {
        match *self {
            Change::Start { label, .. } => Affects::Created(label.to_string()),
            Change::Stop { label } => Affects::Deploy(label.to_string()),
            Change::Connect { endpoint, .. } | Change::Disconnect { endpoint } => {
                Affects::Endpoint(endpoint.to_string())
            }
            Change::Rollback { endpoint, .. } => {
                Affects::Endpoint(endpoint.unwrap_or_default().to_string())
            }
        }
    }

    /// The change as the command line says it: `start shop-1.4.zip blue`.
    pub(crate) fn words(&self) -> Vec<String> {
        let mut words: Vec<&str> = match *self {
            Change::Start { release, label } => vec!["start", release.as_str(), label.as_str()],
            Change::Stop { label } => vec!["stop", label],
            Change::Connect {
                endpoint, label, ..
            } => vec!["connect", endpoint, label],
            Change::Disconnect { endpoint } => vec!["disconnect", endpoint],
            Change::Rollback { endpoint, .. } => {
                vec!["rollback"].into_iter().chain(endpoint).collect()
            }
        };
        if let Change::Connect { force: true, .. } | Change::Rollback { force: true, .. } = self {
            words.push("--force");
        }
        words.into_iter().map(String::from).collect()
    }

    /// Where traffic goes, unless forced: every live slave must run it.
    fn routed_to(&self) -> Option<RoutedTo<'_>> {
        match *self {
            Change::Connect {
                label,
                force: false,
                ..
            } => Some(RoutedTo::Deploy(label)),
            Change::Rollback {
                endpoint: Some(endpoint),
                force: false,
            } => Some(RoutedTo::PreviousOf(endpoint)),
            _ => None,
        }
    }
}
