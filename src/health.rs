//! Deploy health: a deploy with a health check is healthy
//! when `GET http://127.0.0.1:<port><path>` answers 2xx or 3xx.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde::Deserialize;

use crate::config::{DeployHealthCheck, ProxyModeConfig};
use crate::http;
use crate::release::RELEASE_JSON;

/// The most of a deploy's release.json read for its health check.
const MAX_RELEASE_JSON: u64 = 16 << 20;

/// How often a new deploy is asked until it is healthy.
const POLL: Duration = Duration::from_millis(250);

/// The health check of the deploy in `dir`: its release's own, else the
/// config's. `status` asks this of every deploy, so it reads only the one
/// field and builds no error for a missing `release.json` (an error value
/// captures a backtrace when `RUST_BACKTRACE` is set).
pub(crate) fn of_deploy(dir: &Path, proxy: &ProxyModeConfig) -> Option<DeployHealthCheck> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Own {
        #[serde(default, with = "crate::config::plain_or_maybe")]
        health_check: Option<DeployHealthCheck>,
    }
    // Bounded and never blocking: the file is the release's to change.
    crate::fsutil::read_bounded(&dir.join(RELEASE_JSON), MAX_RELEASE_JSON)
        .ok()
        .flatten()
        .and_then(|bytes| serde_json::from_slice::<Own>(&bytes).ok())
        .and_then(|own| own.health_check)
        .or_else(|| proxy.deploy_health_check.as_deref().cloned())
}

/// Asks once, within `timeout`: `Ok` when healthy, else why not (the
/// status line and the start of the body, or the connection error).
pub(crate) fn ask(port: u16, check: &DeployHealthCheck, timeout: Duration) -> Result<(), String> {
    match http::get_local(port, &check.path, timeout) {
        Ok(a) if (200..400).contains(&a.code) => Ok(()),
        // Both from the network: escaped, so neither can write terminal
        // codes wherever the reason is shown.
        Ok(a) => Err(format!(
            "{}: {:?}",
            crate::output::one_line(&a.status_line),
            http::truncate(&a.body, 200)
        )),
        Err(e) => Err(format!("{e:#}")),
    }
}

/// Asks every [`POLL`] until healthy or `timeoutSeconds` have passed; the
/// error names the deploy, the path and the last answer.
pub(crate) fn wait_healthy(label: &str, port: u16, check: &DeployHealthCheck) -> Result<()> {
    let secs = check.timeout_seconds.get();
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let why = match ask(
            port,
            check,
            left.clamp(Duration::from_millis(100), Duration::from_secs(5)),
        ) {
            Ok(()) => return Ok(()),
            Err(why) => why,
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!(
                "deploy {label}: health check {} failed after {secs} s: {why}",
                check.path
            );
        }
        // The last ask is at the deadline itself.
        std::thread::sleep(POLL.min(left));
    }
}
