//! Switch hooks: a release's own commands around every switch of traffic
//! (FTL's pre-jump, post-jump and un-jump; CodeDeploy's BeforeAllowTraffic
//! and AfterAllowTraffic). Each runs in the deploy directory with the
//! deploy's command environment plus `C2_ENDPOINT`.
//!
//! | hook | when | failure |
//! |---|---|---|
//! | `preConnectCommand` | before traffic is routed to the deploy | refuses the switch |
//! | `postConnectCommand` | once the switch took effect | reported; the switch stays |
//! | `preDisconnectCommand` | before traffic leaves the deploy | warned about only |
//!
//! In proxy mode they run around the reload of nginx (`proxy::executor`,
//! locally and on every slave); without a proxy, around the switch of
//! `current`, with `C2_ENDPOINT=current`.

use std::fmt;
use std::path::Path;

use anyhow::{bail, Result};

use crate::command_env;
use crate::context::Ports;
use crate::release::ReleaseConfig;
use crate::{log, shell};

/// Which hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hook {
    PreConnect,
    PostConnect,
    PreDisconnect,
}

impl fmt::Display for Hook {
    /// The release.json field.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Hook::PreConnect => "preConnectCommand",
            Hook::PostConnect => "postConnectCommand",
            Hook::PreDisconnect => "preDisconnectCommand",
        })
    }
}

impl Hook {
    fn command(self, config: &ReleaseConfig) -> &str {
        match self {
            Hook::PreConnect => &config.pre_connect_command,
            Hook::PostConnect => &config.post_connect_command,
            Hook::PreDisconnect => &config.pre_disconnect_command,
        }
    }
}

/// The endpoint noproxy hooks run for: the link that is switched.
pub(crate) const CURRENT: &str = "current";

/// Whether the deploy in `dir` has `hook` (for `--dry-run`): false when
/// its release.json cannot be read.
pub(crate) fn has(dir: &Path, hook: Hook) -> bool {
    ReleaseConfig::read(dir).is_ok_and(|c| !hook.command(&c).trim().is_empty())
}

/// Runs `hook` of the deploy in `dir` (its `ports` in proxy mode) for
/// `endpoint`. A deploy without it, or whose release.json cannot be read,
/// has nothing to run.
pub(crate) fn run(hook: Hook, dir: &Path, ports: Option<&Ports>, endpoint: &str) -> Result<()> {
    let Ok(config) = ReleaseConfig::read(dir) else {
        return Ok(());
    };
    let command = hook.command(&config);
    if command.trim().is_empty() {
        return Ok(());
    }
    let mut vars = command_env::for_deploy(dir, ports);
    vars.push((command_env::ENDPOINT.to_string(), endpoint.to_string()));
    let label = crate::deploy::dir_name(dir);
    log::scope(&format!("Running {hook} of {label} for {endpoint}"), || {
        shell::run_with(&format!("{hook} of {label}"), command, dir, &vars)
    })
}

/// [`run`] for a hook whose failure refuses the switch: the error says so.
pub(crate) fn gate(hook: Hook, dir: &Path, ports: Option<&Ports>, endpoint: &str) -> Result<()> {
    if let Err(e) = run(hook, dir, ports, endpoint) {
        bail!(
            "{e:#}: the switch of {endpoint} to {} was refused, nothing changed",
            crate::deploy::dir_name(dir)
        );
    }
    Ok(())
}

/// [`run`] for a hook that never blocks: a failure is warned about, and
/// returned for the command to report at its end.
pub(crate) fn warned(
    hook: Hook,
    dir: &Path,
    ports: Option<&Ports>,
    endpoint: &str,
) -> Option<anyhow::Error> {
    let e = run(hook, dir, ports, endpoint).err()?;
    log::warn(&format!("{e:#}: going on"));
    Some(e)
}
