//! Performing planned actions on this machine.
//!
//! After each action the local state file records that action's effect, so
//! whenever a step fails (or c2 is killed) the state says exactly what is
//! running. A CreateDeploy that fails leaves nothing half-registered: its
//! directory is removed and the state never lists it. A DestroyDeploy
//! whose stop command fails still completes (the deploy's processes are
//! killed, its directory removed) so one broken release never blocks the
//! rest of the plan; the run fails at its end naming it.

use anyhow::Result;

use crate::config::{ProxyModeConfig, ToolConfig};
use crate::context::Ports;
use crate::deploy::{self, Deployer, DirState, FailedStops, Mode};
use crate::layout::Layout;
use crate::log;
use crate::store::ReleaseStore;

use super::frontend::{self, Frontend};
use super::nginx;
use super::planner::{self, plan, Action};
use super::state::{Deploy, State};

pub(crate) struct Executor<'a> {
    config: &'a ToolConfig,
    proxy: &'a ProxyModeConfig,
    store: &'a dyn ReleaseStore,
    layout: &'a Layout,
    frontend: Box<dyn Frontend>,
}

impl<'a> Executor<'a> {
    pub(crate) fn new(
        config: &'a ToolConfig,
        proxy: &'a ProxyModeConfig,
        store: &'a dyn ReleaseStore,
        layout: &'a Layout,
    ) -> Executor<'a> {
        Executor {
            config,
            proxy,
            store,
            layout,
            frontend: frontend::open(config, proxy, layout),
        }
    }

    /// Brings `current` (this machine's state) to `target`, one action at a
    /// time, recording each action's effect in the state file.
    ///
    /// A deploy that cannot be created fails the run, but only at its end:
    /// the rest of the plan goes on, so traffic changes that do not depend
    /// on it still happen. An endpoint that was to move to it keeps the
    /// deploy it has (see [`planner::reachable`]), which then stays.
    pub(crate) fn apply(&self, current: &mut State, target: &State) -> Result<()> {
        let mut failed = FailedStops::default();
        let mut not_created: Vec<String> = Vec::new();
        for action in plan(current, target, self.proxy.end_points.keys()) {
            if crate::signals::stop_requested() {
                // Under systemd's SIGTERM: every finished action is recorded.
                log::info("Stop requested: leaving the remaining actions for later");
                return outcome(not_created, failed);
            }
            match action {
                Action::CreateDeploy(d) => {
                    let created = log::scope(&format!("Creating deploy {}", d.label), || {
                        self.create_deploy(&d)
                    });
                    match created {
                        Ok(()) => {
                            current.deploys.insert(d.label.clone(), d);
                        }
                        Err(e) => {
                            log::warn(&format!("{e:#}: going on with the rest"));
                            not_created.push(format!("{e:#}"));
                            continue;
                        }
                    }
                }
                Action::DestroyDeploy(d) => {
                    let kept_for = (!not_created.is_empty()
                        && !target.deploys.contains_key(&d.label))
                    .then(|| current.connected_endpoint(d.label.as_str()))
                    .flatten();
                    if let Some(endpoint) = kept_for {
                        log::info(&format!(
                            "Keeping deploy {}: {endpoint} still routes to it",
                            d.label
                        ));
                        continue;
                    }
                    log::scope(&format!("Destroying deploy {}", d.label), || {
                        self.destroy_deploy(&d, &mut failed)
                    })?;
                    current.deploys.remove(&d.label);
                    // A connection to a deploy that is gone routes nowhere.
                    current.connections.retain(|_, label| *label != d.label);
                }
                Action::SetEndPoints(_) => {
                    let mut routed = current.clone();
                    routed.connections = planner::reachable(current, target);
                    let pairs = planner::endpoint_pairs(&routed, self.proxy.end_points.keys());
                    log::scope("Configuring the frontend proxy", || {
                        self.set_endpoints(&pairs)
                    })?;
                    current.connections = routed.connections;
                    current.take_previous(target);
                }
            }
            current.write(&self.layout.state_file())?;
        }
        // Connections to endpoints unknown to the config, and the rollback
        // record, change no action but still belong in the state.
        let routes = planner::reachable(current, target);
        if current.connections != routes || !current.same_previous(target) {
            current.connections = routes;
            current.take_previous(target);
            current.write(&self.layout.state_file())?;
        }
        outcome(not_created, failed)
    }

    fn create_deploy(&self, d: &Deploy) -> Result<()> {
        let range = self.port_range();
        let deployer = Deployer {
            config: self.config,
            store: self.store,
        };
        let prepared = deployer.prepare(
            &d.release,
            self.layout,
            &d.label,
            Some(&Ports::new(d.port, range)),
            DirState::Fresh(Mode::Proxy),
        )?;
        // The release's own health check wins over the config's.
        let check = prepared
            .health_check()
            .or(self.proxy.deploy_health_check.as_deref())
            .cloned();
        log::scope("Running start script", || {
            prepared.start_or_undo(check.as_ref().map(|c| (c, d.port)))
        })
    }

    fn destroy_deploy(&self, d: &Deploy, failed: &mut FailedStops) -> Result<()> {
        // Its ports as the state records them, for its stop command.
        let ports = Ports::new(d.port, self.port_range());
        deploy::destroy(&self.layout.deploy_dir(&d.label), Some(&ports), failed)
    }

    fn port_range(&self) -> (u16, u16) {
        (
            self.proxy.dynamic_port_range.v1,
            self.proxy.dynamic_port_range.v2,
        )
    }

    /// Rewrites the nginx config for `pairs` and makes the proxy serve it.
    pub(crate) fn set_endpoints(&self, pairs: &[(String, Deploy)]) -> Result<()> {
        let files = nginx::files(self.config, self.proxy, pairs)?;
        self.frontend.apply(&files)
    }

    pub(crate) fn shutdown_frontend(&self) -> Result<()> {
        self.frontend.shutdown()
    }
}

/// `Ok` unless a deploy could not be created or a stop command failed;
/// the error names every one.
fn outcome(not_created: Vec<String>, failed: FailedStops) -> Result<()> {
    let mut errors = not_created;
    if let Err(e) = failed.into_result() {
        errors.push(format!("{e:#}"));
    }
    match errors.is_empty() {
        true => Ok(()),
        false => anyhow::bail!("{}", errors.join("; ")),
    }
}
