//! Proxy mode: many deploys side by side behind an nginx
//! frontend proxy, endpoints switched between them.
//!
//! `state` holds the rules, `planner` turns a state change into actions,
//! `executor` performs them on this machine, `nginx` and `frontend` render
//! and serve the proxy config, `status` prints it all. [`ProxyTarget`] is
//! proxy mode's deploy target; where the state lives is a [`StateBackend`]:
//! this machine ([`Machine`]) or the master of remote state.

pub(crate) mod certificate;
pub(crate) mod executor;
pub(crate) mod frontend;
pub(crate) mod nginx;
pub(crate) mod planner;
pub(crate) mod state;
pub(crate) mod status;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::config::{ProxyModeConfig, ToolConfig};
use crate::hooks::{self, Hook};
use crate::journal::By;
use crate::layout::Layout;
use crate::names::ReleaseName;
use crate::refusal::refused;
use crate::store::ReleaseStore;
use crate::target::{self, Change, Target, Transition};
use crate::{heal, health, journal, log};

use executor::Executor;
use planner::Action;
use state::State;

impl Change<'_> {
    /// The new state, or why the change is refused.
    pub(crate) fn apply_to(&self, state: &State, proxy: &ProxyModeConfig) -> Result<State> {
        match *self {
            Change::Start { release, label } => state::start(state, proxy, release, label),
            Change::Stop { label } => state::stop(state, label),
            Change::Connect {
                endpoint, label, ..
            } => state::connect(state, proxy, endpoint, label),
            Change::Disconnect { endpoint } => state::disconnect(state, proxy, endpoint),
            Change::Rollback { endpoint, .. } => state::rollback(state, proxy, needed(endpoint)?),
        }
    }

    pub(crate) fn describe(&self) -> String {
        match *self {
            Change::Start { release, label } => format!("Starting {release} as deploy {label}"),
            Change::Stop { label } => format!("Stopping deploy {label}"),
            Change::Connect {
                endpoint, label, ..
            } => format!("Connecting {endpoint} to {label}"),
            Change::Disconnect { endpoint } => format!("Disconnecting {endpoint}"),
            Change::Rollback { endpoint, .. } => {
                format!("Rolling back {}", endpoint.unwrap_or("the live release"))
            }
        }
    }
}

/// The endpoint a proxy-mode rollback must name.
fn needed(endpoint: Option<&str>) -> Result<&str> {
    let Some(endpoint) = endpoint else {
        refused!(
            BadRequest,
            "rollback needs an endpoint in proxy mode: c2 rollback <endpoint>"
        );
    };
    Ok(endpoint)
}

/// The change from `before` to `after`, as JSON.
pub(crate) fn transition(before: &State, after: &State) -> Result<Transition> {
    Ok(Transition {
        before: serde_json::to_value(before)?,
        after: serde_json::to_value(after)?,
    })
}

/// Where proxy-mode state lives and how a change reaches the machines:
/// this machine's own state, or the master of remote state.
pub(crate) trait StateBackend {
    /// The state as it stands.
    fn read(&self) -> Result<State>;
    /// Applies `change` (asked `by`) under the rules, and brings the state
    /// there; the state before and after.
    fn apply(&self, change: &Change, by: &By) -> Result<Transition>;
    /// Whether `apply` records the change in the history itself (with the
    /// master write, in one transaction).
    fn records_history(&self) -> bool {
        false
    }
    /// What `status [--show-slaves]` shows.
    fn status(&self, show_slaves: bool) -> Result<status::Shown<'_>>;
    /// Refuses deploy `label` if it has a health check and fails it.
    /// With remote state the master cannot ask: the deploys run on the
    /// slaves, so nothing is checked here (the slaves' acknowledgement of
    /// the fleet, a later issue, covers it).
    fn check_connectable(&self, _label: &str) -> Result<()> {
        Ok(())
    }
    /// The line `--dry-run` prints before the actions, if any.
    fn dry_run_header(&self) -> Option<String> {
        None
    }
    /// Where the deploys are, when they are on this machine: `--dry-run`
    /// lists their switch hooks.
    fn local_layout(&self) -> Option<&Layout> {
        None
    }
}

/// Proxy mode's deploy target: the rules, over either state backend.
pub(crate) struct ProxyTarget<'a> {
    pub proxy: &'a ProxyModeConfig,
    pub store: &'a dyn ReleaseStore,
    pub state: Box<dyn StateBackend + 'a>,
}

impl Target for ProxyTarget<'_> {
    /// A connect or rollback asks the deploy traffic goes to first, unless
    /// forced; a start checks its release is in the store.
    fn apply(&self, change: &Change, by: &By) -> Result<Transition> {
        match *change {
            Change::Start { release, .. } => self.check_release(release)?,
            Change::Connect {
                label,
                force: false,
                ..
            } => self.state.check_connectable(label)?,
            Change::Rollback { endpoint, force } => {
                let endpoint = needed(endpoint)?;
                if !force {
                    if let Some(previous) = self.state.read()?.previous_connections.get(endpoint) {
                        self.state.check_connectable(previous.as_str())?;
                    }
                }
            }
            _ => {}
        }
        self.state.apply(change, by)
    }

    fn records_history(&self) -> bool {
        self.state.records_history()
    }

    /// The planner's actions from the state to the changed one: with
    /// remote state, what a slave in sync with the master would do.
    fn dry_run(&self, change: &Change) -> Result<Vec<String>> {
        if let Change::Start { release, .. } = change {
            self.check_release(release)?;
        }
        let old = self.state.read()?;
        let new = change.apply_to(&old, self.proxy)?;
        let actions = planner::plan(&old, &new, self.proxy.end_points.keys());
        let mut lines: Vec<String> = self.state.dry_run_header().into_iter().collect();
        if actions.is_empty() {
            lines.push("Nothing to do".to_string());
        }
        for action in &actions {
            let hooks = match action {
                Action::SetEndPoints(_) => self.switch_hooks(&old, &new),
                _ => (Vec::new(), Vec::new()),
            };
            lines.extend(hooks.0);
            lines.push(action.to_string());
            lines.extend(hooks.1);
        }
        Ok(lines)
    }

    fn status(&self, show_slaves: bool) -> Result<target::Status<'_>> {
        Ok(target::Status::Proxy(self.state.status(show_slaves)?))
    }

    fn deploy_labels(&self) -> Result<Vec<String>> {
        Ok(self
            .state
            .read()?
            .deploys
            .into_keys()
            .map(String::from)
            .collect())
    }

    fn endpoints(&self) -> Vec<String> {
        self.proxy.end_points.keys().cloned().collect()
    }
}

impl ProxyTarget<'_> {
    /// `--dry-run`: the switch hooks around a SetEndPoints from `old` to
    /// `new` (before it, after it), of the deploys on this machine.
    fn switch_hooks(&self, old: &State, new: &State) -> (Vec<String>, Vec<String>) {
        // With remote state the deploys, and their hooks, are on the slaves.
        let Some(layout) = self.state.local_layout() else {
            return (Vec::new(), Vec::new());
        };
        let (mut before, mut after) = (Vec::new(), Vec::new());
        let mut view = new.clone();
        view.connections = old.connections.clone();
        let endpoints = self.proxy.end_points.keys();
        for (endpoint, from, to) in planner::switches(&view, &new.connections, endpoints) {
            let line = |d: &state::Deploy, hook: Hook, lines: &mut Vec<String>| {
                if hooks::has(&layout.deploy_dir(&d.label), hook) {
                    lines.push(format!("Run {hook} of {} for {endpoint}", d.label));
                }
            };
            if let Some(to) = &to {
                line(to, Hook::PreConnect, &mut before);
                line(to, Hook::PostConnect, &mut after);
            }
            if let Some(from) = &from {
                line(from, Hook::PreDisconnect, &mut before);
            }
        }
        (before, after)
    }

    fn check_release(&self, release: &ReleaseName) -> Result<()> {
        if !self.store.exists(release)? {
            refused!(
                NotFound,
                "Release {release} does not exist in release store at {}",
                self.store.describe()
            );
        }
        Ok(())
    }
}

/// This machine's deploys and frontend proxy: the local state, and what
/// commands acting on this machine (local mode, slaves, the proxy
/// commands) share.
pub(crate) struct Machine<'a> {
    pub config: &'a ToolConfig,
    pub proxy: &'a ProxyModeConfig,
    pub store: &'a dyn ReleaseStore,
    pub layout: Layout,
}

impl<'a> Machine<'a> {
    pub(crate) fn new(
        config: &'a ToolConfig,
        proxy: &'a ProxyModeConfig,
        store: &'a dyn ReleaseStore,
    ) -> Machine<'a> {
        Machine {
            config,
            proxy,
            store,
            layout: config.layout(),
        }
    }

    pub(crate) fn executor(&self) -> Executor<'_> {
        Executor::new(self.config, self.proxy, self.store, &self.layout)
    }

    pub(crate) fn local_state(&self) -> Result<State> {
        State::read(&self.layout.state_file())
    }

    /// Brings this machine from its state to `target`. The caller holds
    /// the lock.
    pub(crate) fn converge(&self, target: &State) -> Result<()> {
        let mut current = self.local_state()?;
        match self.executor().apply(&mut current, target)? {
            None => Ok(()),
            Some(after) => Err(after),
        }
    }

    /// `restart-frontend-proxy`: re-runs SetEndPoints for the local
    /// connections.
    pub(crate) fn restart_frontend(&self) -> Result<()> {
        let _lock = self.layout.lock()?;
        self.restart_frontend_locked()
    }

    fn restart_frontend_locked(&self) -> Result<()> {
        let current = self.local_state()?;
        let pairs = planner::endpoint_pairs(&current, self.proxy.end_points.keys());
        log::scope("Restarting the frontend proxy", || {
            self.executor().set_endpoints(&pairs)
        })
    }

    /// Makes sure the frontend proxy serves the local connections: when it
    /// does, this costs one cheap check and no reload; when it does not
    /// (stopped behind c2's back, killed, the host restarted), it is
    /// restarted. A proxy never configured on this machine, with nothing
    /// to route, is left alone. The caller holds the lock.
    pub(crate) fn ensure_frontend_locked(&self) -> Result<()> {
        let frontend = frontend::open(self.config, self.proxy, &self.layout);
        let current = self.local_state()?;
        let routes = !planner::endpoint_pairs(&current, self.proxy.end_points.keys()).is_empty();
        if !routes && !frontend.configured() {
            return Ok(());
        }
        let Err(why) = frontend.serving() else {
            return Ok(());
        };
        log::info(&format!("The frontend proxy is not serving: {why}"));
        self.restart_frontend_locked().with_context(|| {
            format!("the frontend proxy is not serving ({why}) and restarting it failed")
        })
    }

    /// `generate-ssl-certificate`: restart the proxy (so it
    /// serves the ACME webroot), request the certificate, and [better]
    /// restart again so the new certificate is served.
    pub(crate) fn generate_ssl_certificate(&self) -> Result<()> {
        let _lock = self.layout.lock()?;
        self.restart_frontend_locked()?;
        let frontend = frontend::open(self.config, self.proxy, &self.layout);
        certificate::request(self.config, self.proxy, frontend.as_ref(), &self.layout)?;
        if !certificate::server_names(self.proxy).is_empty() {
            self.restart_frontend_locked()?;
        }
        Ok(())
    }

    /// `shutdown-frontend-proxy`.
    pub(crate) fn shutdown_frontend(&self) -> Result<()> {
        let _lock = self.layout.lock()?;
        log::scope("Shutting down the frontend proxy", || {
            self.executor().shutdown_frontend()
        })
    }
}

impl Machine<'_> {
    /// The answer of each deploy of `state` that has a health check, asked
    /// all at once within `timeout`, by deploy label.
    pub(crate) fn ask_health(
        &self,
        state: &State,
        timeout: Duration,
    ) -> BTreeMap<String, Result<(), String>> {
        std::thread::scope(|scope| {
            let asks: Vec<_> = state
                .deploys
                .values()
                .filter_map(|d| {
                    let check = health::of_deploy(&self.layout.deploy_dir(&d.label), self.proxy)?;
                    let port = d.port;
                    Some((
                        d.label.to_string(),
                        scope.spawn(move || health::ask(port, &check, timeout)),
                    ))
                })
                .collect();
            asks.into_iter()
                .map(|(label, ask)| {
                    let answer = ask
                        .join()
                        .unwrap_or_else(|_| Err("the health check crashed".to_string()));
                    (label, answer)
                })
                .collect()
        })
    }
}

/// Local state: a change is planned and performed on this machine.
impl StateBackend for Machine<'_> {
    fn read(&self) -> Result<State> {
        self.local_state()
    }

    fn apply(&self, change: &Change, _: &By) -> Result<Transition> {
        let _lock = self.layout.lock()?;
        journal::check_unlocked(journal::open(self.config).as_ref())?;
        let mut current = self.local_state()?;
        let before = current.clone();
        let target = change.apply_to(&current, self.proxy)?;
        let endpoints = self.proxy.end_points.keys();
        let reconfigures = planner::endpoint_pairs(&current, endpoints.clone())
            != planner::endpoint_pairs(&target, endpoints);
        let after = log::scope(&change.describe(), || {
            self.executor().apply(&mut current, &target)
        })?;
        // A connect (or rollback) that changes no route must still leave
        // the proxy serving it; one that does has just (re)started or reloaded it.
        if matches!(change, Change::Connect { .. } | Change::Rollback { .. }) && !reconfigures {
            self.ensure_frontend_locked()?;
        }
        transition(&before, &current)?.made(after)
    }

    fn status(&self, show_slaves: bool) -> Result<status::Shown<'_>> {
        if show_slaves {
            bail!("--show-slaves needs remote state: set deployMode.proxy.remoteStateS3 in the config");
        }
        let state = self.local_state()?;
        // Each deploy's answer, and what the health watch is doing about
        // it, if anything (`unhealthy: …; restarting (2)`).
        let mut health: BTreeMap<String, String> = self
            .ask_health(&state, Duration::from_secs(1))
            .iter()
            .map(|(label, h)| (label.clone(), status::health_word(h)))
            .collect();
        for (label, note) in heal::notes(&self.layout) {
            if let Some(shown) = health.get_mut(&label) {
                *shown = format!("{shown}; {note}");
            }
        }
        Ok(status::Shown {
            proxy: self.proxy,
            state,
            health,
            slaves: None,
        })
    }

    fn local_layout(&self) -> Option<&Layout> {
        Some(&self.layout)
    }

    fn check_connectable(&self, label: &str) -> Result<()> {
        let state = self.local_state()?;
        let Some(d) = state.deploys.get(label) else {
            // Not a deploy: the change itself says so.
            return Ok(());
        };
        let Some(check) = health::of_deploy(&self.layout.deploy_dir(&d.label), self.proxy) else {
            return Ok(());
        };
        if let Err(why) = health::ask(d.port, &check, Duration::from_secs(5)) {
            refused!(
                Conflict,
                "deploy {label} is not healthy: {why}; not connecting (--force connects anyway)"
            );
        }
        Ok(())
    }
}
