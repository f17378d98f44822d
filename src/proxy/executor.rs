//! Performing planned actions on this machine.
//!
//! After each action the local state file records that action's effect, so
//! whenever a step fails (or c2 is killed) the state says exactly what is
//! running. A CreateDeploy that fails leaves nothing half-registered: its
//! directory is removed and the state never lists it. A DestroyDeploy
//! whose stop command fails still completes (the deploy's processes are
//! killed, its directory removed) so one broken release never blocks the
//! rest of the plan; the run fails at its end naming it.

use std::collections::BTreeSet;

use anyhow::Result;

use crate::config::{ProxyModeConfig, ToolConfig};
use crate::context::Ports;
use crate::deploy::{self, Deployer, DirState, FailedStops, Mode};
use crate::hooks::{self, Hook};
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
    /// deploy it has (see [`planner::reachable`]), which then stays. So does
    /// an endpoint whose switch a pre-connect hook refuses.
    ///
    /// `Ok(Some(error))`: everything was done, but something that goes with
    /// it failed (a stop command, a post-connect hook).
    pub(crate) fn apply(
        &self,
        current: &mut State,
        target: &State,
    ) -> Result<Option<anyhow::Error>> {
        let mut run = Run::default();
        for action in plan(current, target, self.proxy.end_points.keys()) {
            if crate::signals::stop_requested() {
                // Under systemd's SIGTERM: every finished action is recorded.
                log::info("Stop requested: leaving the remaining actions for later");
                return run.outcome();
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
                            run.not_made.push(format!("{e:#}"));
                            continue;
                        }
                    }
                }
                Action::DestroyDeploy(d) => {
                    let kept_for = (!run.not_made.is_empty()
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
                        self.destroy_deploy(&d, &mut run.failed_stops)
                    })?;
                    current.deploys.remove(&d.label);
                    // A connection to a deploy that is gone routes nowhere.
                    current.connections.retain(|_, label| *label != d.label);
                }
                Action::SetEndPoints(_) => self.switch(current, target, &mut run)?,
            }
            current.write(&self.layout.state_file())?;
        }
        // Connections to endpoints unknown to the config, and the rollback
        // record, change no action but still belong in the state.
        let mut next = current.clone();
        next.connections = planner::reachable(current, target);
        next.take_previous(target);
        keep_refused(&mut next, current, &run.refused);
        if current.connections != next.connections || !current.same_previous(&next) {
            *current = next;
            current.write(&self.layout.state_file())?;
        }
        run.outcome()
    }

    /// SetEndPoints with the switch hooks around it: each endpoint that
    /// changes deploy asks the new one (pre-connect: it may refuse, and
    /// the endpoint keeps its deploy), tells the old one (pre-disconnect:
    /// warned only), nginx reloads once, then each new deploy hears it
    /// took effect (post-connect: reported after).
    fn switch(&self, current: &mut State, target: &State, run: &mut Run) -> Result<()> {
        let routes = planner::reachable(current, target);
        for (endpoint, from, to) in
            planner::switches(current, &routes, self.proxy.end_points.keys())
        {
            if let Some(to) = &to {
                let dir = self.layout.deploy_dir(&to.label);
                if let Err(e) =
                    hooks::gate(Hook::PreConnect, &dir, Some(&self.ports(to)), &endpoint)
                {
                    log::warn(&format!("{e:#}"));
                    run.not_made.push(format!("{e:#}"));
                    run.refused.insert(endpoint);
                    continue;
                }
            }
            if let Some(from) = &from {
                let dir = self.layout.deploy_dir(&from.label);
                hooks::warned(
                    Hook::PreDisconnect,
                    &dir,
                    Some(&self.ports(from)),
                    &endpoint,
                );
            }
            if let Some(to) = to {
                run.connected.push((endpoint, to));
            }
        }
        let mut next = current.clone();
        next.connections = routes;
        next.take_previous(target);
        keep_refused(&mut next, current, &run.refused);
        let endpoints = self.proxy.end_points.keys();
        let pairs = planner::endpoint_pairs(&next, endpoints.clone());
        // All refused: nginx already serves what stays.
        if pairs != planner::endpoint_pairs(current, endpoints) {
            log::scope("Configuring the frontend proxy", || {
                self.set_endpoints(&pairs)
            })?;
        }
        *current = next;
        for (endpoint, to) in std::mem::take(&mut run.connected) {
            let dir = self.layout.deploy_dir(&to.label);
            if let Some(e) =
                hooks::warned(Hook::PostConnect, &dir, Some(&self.ports(&to)), &endpoint)
            {
                run.after.push(format!("{e:#}"));
            }
        }
        Ok(())
    }

    fn ports(&self, d: &Deploy) -> Ports {
        Ports::new(d.port, self.port_range())
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
        deploy::destroy(
            &self.layout.deploy_dir(&d.label),
            Some(&self.ports(d)),
            failed,
        )
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

/// What went wrong during one [`Executor::apply`].
#[derive(Default)]
struct Run {
    /// What could not be done: deploys not created, switches refused.
    not_made: Vec<String>,
    /// Endpoints whose switch a pre-connect hook refused.
    refused: BTreeSet<String>,
    /// Switches made, whose post-connect hooks are still to run.
    connected: Vec<(String, Deploy)>,
    failed_stops: FailedStops,
    /// What failed once done: post-connect hooks.
    after: Vec<String>,
}

impl Run {
    /// An error when something was not done; else, if something that goes
    /// with what was done failed, that failure.
    fn outcome(self) -> Result<Option<anyhow::Error>> {
        let mut after = self.after;
        if let Err(e) = self.failed_stops.into_result() {
            after.push(format!("{e:#}"));
        }
        if !self.not_made.is_empty() {
            let mut all = self.not_made;
            all.extend(after);
            anyhow::bail!("{}", all.join("; "));
        }
        Ok((!after.is_empty()).then(|| anyhow::anyhow!("{}", after.join("; "))))
    }
}

/// `next` with the endpoints of `refused` as `current` has them: their
/// deploy and their rollback record stay.
fn keep_refused(next: &mut State, current: &State, refused: &BTreeSet<String>) {
    for endpoint in refused {
        match current.connections.get(endpoint) {
            Some(label) => next.connections.insert(endpoint.clone(), label.clone()),
            None => next.connections.remove(endpoint),
        };
        match current.previous_connections.get(endpoint) {
            Some(label) => next
                .previous_connections
                .insert(endpoint.clone(), label.clone()),
            None => next.previous_connections.remove(endpoint),
        };
        match current.previous_releases.get(endpoint) {
            Some(release) => next
                .previous_releases
                .insert(endpoint.clone(), release.clone()),
            None => next.previous_releases.remove(endpoint),
        };
    }
}
