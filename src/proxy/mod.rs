//! Proxy mode (SPEC §6): many deploys side by side behind an nginx
//! frontend proxy, endpoints switched between them.
//!
//! `state` holds the rules, `planner` turns a state change into actions,
//! `executor` performs them, `nginx` and `frontend` render and serve the
//! proxy config, `status` prints it all.

pub mod certificate;
pub mod executor;
pub mod frontend;
pub mod nginx;
pub mod planner;
pub mod state;
pub mod status;

use anyhow::{bail, Result};

use crate::config::{ProxyModeConfig, ToolConfig};
use crate::store::ReleaseStore;
use crate::{fsutil, log, release};

use executor::Executor;
use state::State;

/// A state change requested by a command.
pub enum Change<'a> {
    Start { release: &'a str, label: &'a str },
    Stop { label: &'a str },
    Connect { endpoint: &'a str, label: &'a str },
    Disconnect { endpoint: &'a str },
}

impl Change<'_> {
    /// The new state, or why the change is refused (SPEC §6.1).
    pub fn apply_to(&self, state: &State, proxy: &ProxyModeConfig) -> Result<State> {
        match *self {
            Change::Start { release, label } => state::start(state, proxy, release, label),
            Change::Stop { label } => state::stop(state, label),
            Change::Connect { endpoint, label } => state::connect(state, proxy, endpoint, label),
            Change::Disconnect { endpoint } => state::disconnect(state, proxy, endpoint),
        }
    }

    pub fn describe(&self) -> String {
        match *self {
            Change::Start { release, label } => format!("Starting {release} as deploy {label}"),
            Change::Stop { label } => format!("Stopping deploy {label}"),
            Change::Connect { endpoint, label } => format!("Connecting {endpoint} to {label}"),
            Change::Disconnect { endpoint } => format!("Disconnecting {endpoint}"),
        }
    }
}

/// The deploy label for `start <release> [label]`.
pub fn label_for(release: &str, label: Option<&str>) -> Result<String> {
    let label = label
        .map(str::to_string)
        .unwrap_or_else(|| release::default_label(release));
    crate::noproxy::check_label(&label)?;
    Ok(label)
}

/// Checks that `start` names a release the store has.
pub fn check_release_exists(store: &dyn ReleaseStore, release: &str) -> Result<()> {
    if !store.exists(release)? {
        bail!(
            "Release {release} does not exist in release store at {}",
            store.describe()
        );
    }
    Ok(())
}

/// Runs a command against the local state: computes the new state from the
/// rules, then brings this machine to it.
pub fn run_local(
    config: &ToolConfig,
    proxy: &ProxyModeConfig,
    store: &dyn ReleaseStore,
    change: Change,
) -> Result<()> {
    let _lock = lock(config)?;
    let path = state::state_path(&config.deploys_dir);
    let mut current = State::read(&path)?;
    let target = change.apply_to(&current, proxy)?;
    log::scope(&change.describe(), || {
        Executor::new(config, proxy, store).apply(&mut current, &target)
    })
}

/// `restart-frontend-proxy`: re-runs SetEndPoints for the local connections.
pub fn restart_frontend(
    config: &ToolConfig,
    proxy: &ProxyModeConfig,
    store: &dyn ReleaseStore,
) -> Result<()> {
    let _lock = lock(config)?;
    restart_frontend_locked(config, proxy, store)
}

fn restart_frontend_locked(
    config: &ToolConfig,
    proxy: &ProxyModeConfig,
    store: &dyn ReleaseStore,
) -> Result<()> {
    let current = State::read(&state::state_path(&config.deploys_dir))?;
    let pairs = planner::endpoint_pairs(&current, proxy.end_points.keys());
    log::scope("Restarting the frontend proxy", || {
        Executor::new(config, proxy, store).set_endpoints(&pairs)
    })
}

/// `generate-ssl-certificate` (SPEC §6.5): restart the proxy (so it serves
/// the ACME webroot), request the certificate, and [better] restart again
/// so the new certificate is served.
pub fn generate_ssl_certificate(
    config: &ToolConfig,
    proxy: &ProxyModeConfig,
    store: &dyn ReleaseStore,
) -> Result<()> {
    let _lock = lock(config)?;
    restart_frontend_locked(config, proxy, store)?;
    certificate::request(config, proxy)?;
    if !certificate::server_names(proxy).is_empty() {
        restart_frontend_locked(config, proxy, store)?;
    }
    Ok(())
}

/// `shutdown-frontend-proxy`.
pub fn shutdown_frontend(
    config: &ToolConfig,
    proxy: &ProxyModeConfig,
    store: &dyn ReleaseStore,
) -> Result<()> {
    let _lock = lock(config)?;
    log::scope("Shutting down the frontend proxy", || {
        Executor::new(config, proxy, store).shutdown_frontend()
    })
}

/// Serialises c2 runs that change this machine's deploys.
pub fn lock(config: &ToolConfig) -> Result<fsutil::Lock> {
    fsutil::lock(&config.deploys_dir.join(".c2.lock"))
}

/// `status` in proxy mode with local state.
pub fn status(config: &ToolConfig, proxy: &ProxyModeConfig, json_output: bool) -> Result<()> {
    let state = State::read(&state::state_path(&config.deploys_dir))?;
    if json_output {
        println!("{}", serde_json::json!({ "master": state }));
    } else {
        print!("{}", status::master_text(proxy, &state));
    }
    Ok(())
}
