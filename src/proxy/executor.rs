//! Performing planned actions (SPEC §6.2) on this machine.
//!
//! After each action the local state file records that action's effect, so
//! whenever a step fails (or c2 is killed) the state says exactly what is
//! running. A CreateDeploy that fails leaves nothing half-registered: its
//! directory is removed and the state never lists it.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::config::{ProxyModeConfig, ToolConfig};
use crate::context::{self, Ports};
use crate::release;
use crate::store::ReleaseStore;
use crate::{log, shell};

use super::frontend::{self, Frontend};
use super::nginx;
use super::planner::{plan, Action};
use super::state::{self, Deploy, State};

pub struct Executor<'a> {
    config: &'a ToolConfig,
    proxy: &'a ProxyModeConfig,
    store: &'a dyn ReleaseStore,
    frontend: Box<dyn Frontend>,
    state_path: PathBuf,
}

impl<'a> Executor<'a> {
    pub fn new(
        config: &'a ToolConfig,
        proxy: &'a ProxyModeConfig,
        store: &'a dyn ReleaseStore,
    ) -> Executor<'a> {
        let dir = state::proxy_dir(&config.deploys_dir);
        Executor {
            config,
            proxy,
            store,
            frontend: frontend::open(config, proxy, &dir),
            state_path: state::state_path(&config.deploys_dir),
        }
    }

    /// Brings `current` (this machine's state) to `target`, one action at a
    /// time, recording each action's effect in the state file.
    pub fn apply(&self, current: &mut State, target: &State) -> Result<()> {
        for action in plan(current, target, self.proxy.end_points.keys()) {
            if crate::signals::stop_requested() {
                // Under systemd's SIGTERM: every finished action is recorded.
                log::info("Stop requested: leaving the remaining actions for later");
                return Ok(());
            }
            match action {
                Action::CreateDeploy(d) => {
                    log::scope(&format!("Creating deploy {}", d.label), || {
                        self.create_deploy(&d)
                    })?;
                    current.deploys.insert(d.label.clone(), d);
                }
                Action::DestroyDeploy(d) => {
                    log::scope(&format!("Destroying deploy {}", d.label), || {
                        self.destroy_deploy(&d)
                    })?;
                    current.deploys.remove(&d.label);
                    // A connection to a deploy that is gone routes nowhere.
                    current.connections.retain(|_, label| *label != d.label);
                }
                Action::SetEndPoints(pairs) => {
                    log::scope("Configuring the frontend proxy", || {
                        self.set_endpoints(&pairs)
                    })?;
                    current.connections = target.connections.clone();
                }
            }
            current.write(&self.state_path)?;
        }
        // Connections to endpoints unknown to the config (or to deploys that
        // failed) change no action but still belong in the state.
        if current.connections != target.connections {
            current.connections = target.connections.clone();
            current.write(&self.state_path)?;
        }
        Ok(())
    }

    fn deploy_dir(&self, label: &str) -> PathBuf {
        self.config.deploys_dir.join(label)
    }

    fn create_deploy(&self, d: &Deploy) -> Result<()> {
        let dir = self.deploy_dir(&d.label);
        if dir.exists() {
            // Not in the state: left by a run that was killed midway.
            release::remove_leftover(&dir, &d.release)?;
        }
        let range = (
            self.proxy.dynamic_port_range.v1,
            self.proxy.dynamic_port_range.v2,
        );
        let ports = Ports::new(d.port, range);
        let mut started = false;
        let result = (|| -> Result<()> {
            context::fetch(self.config, false)?;
            let infra = context::infrastructure(self.config)?;
            let rc = release::unpack(self.store, &d.release, &dir, &infra, Some(&ports))?;
            log::scope("Running prestart script", || {
                shell::run(
                    &format!("prestartCommand of {}", d.release),
                    &rc.prestart_command,
                    &dir,
                )
            })?;
            started = true;
            log::scope("Running start script", || {
                shell::run(
                    &format!("startCommand of {}", d.release),
                    &rc.start_command,
                    &dir,
                )
            })
        })();
        if let Err(e) = result {
            if started {
                // The start may have left processes behind: stop them
                // before the directory (and the state) forget the deploy.
                if let Err(stop_err) = release::run_stop(&dir, &d.release) {
                    log::warn(&format!(
                        "cleaning up the failed deploy {}: {stop_err:#}",
                        d.label
                    ));
                }
            }
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        Ok(())
    }

    fn destroy_deploy(&self, d: &Deploy) -> Result<()> {
        let dir = self.deploy_dir(&d.label);
        if !dir.exists() {
            log::warn(&format!(
                "{} does not exist: nothing to stop",
                dir.display()
            ));
            return Ok(());
        }
        if dir.join(crate::release::RELEASE_JSON).exists() {
            log::scope("Running stop script", || {
                release::run_stop(&dir, &d.release)
            })?;
        } else {
            // A run killed while removing it: the stop already ran.
            log::warn(&format!(
                "{} has no release.json (a removal was interrupted): removing the rest",
                dir.display()
            ));
        }
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot remove {}", dir.display()))
    }

    /// Rewrites the nginx config for `pairs` and makes the proxy serve it.
    pub fn set_endpoints(&self, pairs: &[(String, Deploy)]) -> Result<()> {
        let files = nginx::files(self.config, self.proxy, pairs)?;
        self.frontend.apply(&files)
    }

    pub fn shutdown_frontend(&self) -> Result<()> {
        self.frontend.shutdown()
    }
}
