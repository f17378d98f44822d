//! One deploy target per mode, resolved once from the config: noproxy (one
//! live release), proxy mode with this machine's state, or proxy mode with
//! remote state (commands edit the master). Every command that changes or
//! shows deploys goes through [`Target`], so a feature meant for every mode
//! lands in one place per mode.

use anyhow::Result;

use crate::config::{DeployMode, ToolConfig};
use crate::journal::By;
use crate::names::{DeployLabel, ReleaseName};
use crate::noproxy::Noproxy;
use crate::proxy::status::Shown;
use crate::proxy::{Machine, ProxyTarget, StateBackend};
use crate::remote::master::Master;
use crate::store::ReleaseStore;

/// What a change did: the state before and after it, as JSON. Proxy mode:
/// the state (local, or the master's); noproxy: `{"current": <label>|null}`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Transition {
    pub before: serde_json::Value,
    pub after: serde_json::Value,
}

/// A change that was made while something that goes with it failed (a
/// stop command, a post-connect hook): it belongs in the history, and the
/// command still fails, naming what went wrong.
#[derive(Debug)]
pub(crate) struct MadeWithErrors {
    pub transition: Transition,
    pub error: anyhow::Error,
}

impl std::fmt::Display for MadeWithErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

impl std::error::Error for MadeWithErrors {}

impl Transition {
    /// `Ok(self)`, or [`MadeWithErrors`] if `error`.
    pub(crate) fn made(self, error: Option<anyhow::Error>) -> Result<Transition> {
        match error {
            None => Ok(self),
            Some(error) => Err(MadeWithErrors {
                transition: self,
                error,
            }
            .into()),
        }
    }
}

/// A change of deploys, as a command asks for it.
pub(crate) enum Change<'a> {
    Start {
        release: &'a ReleaseName,
        label: &'a DeployLabel,
    },
    Stop {
        label: &'a str,
    },
    /// `force` skips the health check of the deploy.
    Connect {
        endpoint: &'a str,
        label: &'a str,
        force: bool,
    },
    Disconnect {
        endpoint: &'a str,
    },
    /// An endpoint's (proxy mode), or the live release's (noproxy);
    /// `force` skips the health check of the deploy gone back to.
    Rollback {
        endpoint: Option<&'a str>,
        force: bool,
    },
}

pub(crate) trait Target {
    /// Makes `change` (asked `by`) under the rules: the state before and
    /// after.
    fn apply(&self, change: &Change, by: &By) -> Result<Transition>;
    /// Whether `apply` records the change in the history itself.
    fn records_history(&self) -> bool {
        false
    }
    /// `--dry-run`: what the change would do, one line each, changing
    /// nothing. A change the rules refuse fails as it would for real.
    fn dry_run(&self, change: &Change) -> Result<Vec<String>>;
    /// What `status [--show-slaves]` shows.
    fn status(&self, show_slaves: bool) -> Result<Status<'_>>;
    /// The deploy labels, for completion.
    fn deploy_labels(&self) -> Result<Vec<String>>;
    /// The configured endpoint labels, for completion.
    fn endpoints(&self) -> Vec<String>;
}

/// What `status` shows, read once: the command line prints it as text or
/// JSON, the API serves it and its parts.
pub(crate) enum Status<'a> {
    /// The live release's deploy label and release, and the one a
    /// rollback goes back to.
    Noproxy {
        current: Option<String>,
        current_release: Option<ReleaseName>,
        previous: Option<String>,
    },
    Proxy(Shown<'a>),
}

impl Status<'_> {
    /// `status --json-output`.
    pub(crate) fn json(&self) -> serde_json::Value {
        match self {
            Status::Noproxy {
                current, previous, ..
            } => {
                let mut out = serde_json::json!({ "current": current });
                if let Some(previous) = previous {
                    out["previous"] = previous.as_str().into();
                }
                out
            }
            Status::Proxy(shown) => shown.json(),
        }
    }

    /// `status`.
    pub(crate) fn text(&self) -> String {
        match self {
            Status::Noproxy {
                current, previous, ..
            } => {
                let mut text = format!(
                    "Current release: {}\n",
                    current.as_deref().unwrap_or("(none)")
                );
                if let Some(previous) = previous {
                    text += &format!("Previous release: {previous}\n");
                }
                text
            }
            Status::Proxy(shown) => shown.text(),
        }
    }
}

/// The target the config describes. Opening touches nothing remote.
pub(crate) fn open<'a>(
    config: &'a ToolConfig,
    store: &'a dyn ReleaseStore,
) -> Result<Box<dyn Target + 'a>> {
    Ok(match &config.deploy_mode {
        DeployMode::Noproxy => Box::new(Noproxy::new(config, store)),
        DeployMode::Proxy(proxy) => {
            let state: Box<dyn StateBackend + 'a> = match &proxy.remote_state_s3 {
                Some(location) => Box::new(Master::open(location, proxy, store)?),
                None => Box::new(Machine::new(config, proxy, store)),
            };
            Box::new(ProxyTarget {
                proxy,
                store,
                state,
            })
        }
    })
}
