//! Proxy-mode state: which deploys exist and which endpoint is
//! connected to which deploy, and the rules that change it.
//!
//! The rules are pure functions from a state to a new state, so the same
//! code serves local state, the master state of remote mode, and tests.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::config::ProxyModeConfig;
use crate::fsutil;
use crate::names::{DeployLabel, ReleaseName};

/// `state.json`, mirroring `adl/state.adl`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    #[serde(default)]
    pub deploys: BTreeMap<DeployLabel, Deploy>,
    /// endpoint → deploy label.
    #[serde(default)]
    pub connections: BTreeMap<String, DeployLabel>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deploy {
    pub label: DeployLabel,
    pub release: ReleaseName,
    pub port: u16,
}

impl State {
    /// Reads a state file; a missing file is the empty state.
    pub fn read(path: &Path) -> Result<State> {
        match std::fs::read_to_string(path) {
            Ok(text) => parse(&text, &path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Writes the state file atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        fsutil::write_atomic(path, &self.to_json(), 0o644)
    }

    pub fn to_json(&self) -> Vec<u8> {
        // Plain strings and numbers: serializing cannot fail.
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }

    /// The endpoint a deploy is connected to, if any (the first in label order).
    pub fn connected_endpoint(&self, label: &str) -> Option<&str> {
        self.connections
            .iter()
            .find(|(_, d)| d.as_str() == label)
            .map(|(e, _)| e.as_str())
    }
}

/// Parses state JSON; `name` (the file) is used in messages.
pub fn parse(text: &str, name: &str) -> Result<State> {
    parse_object(text.as_bytes(), name, "state")
}

/// Parses `bytes` as a JSON object into `T`; `name` (the file) and `what`
/// it should be are used in messages. The shape is checked first because
/// serde also accepts a struct in its sequence form: `[]` would read as an
/// empty state, and every deploy would look removed.
pub fn parse_object<T: DeserializeOwned>(bytes: &[u8], name: &str, what: &str) -> Result<T> {
    let value: Value =
        serde_json::from_slice(bytes).with_context(|| format!("{name}: invalid {what}"))?;
    if !value.is_object() {
        bail!(
            "{name}: invalid {what}: expected a JSON object, found {}",
            kind(&value)
        );
    }
    T::deserialize(value).with_context(|| format!("{name}: invalid {what}"))
}

/// A state nested in another document (a slave report), held to the same
/// shape as [`parse_object`] holds a state file.
pub fn object<'de, D: Deserializer<'de>>(deserializer: D) -> Result<State, D::Error> {
    let value = Value::deserialize(deserializer)?;
    if !value.is_object() {
        return Err(D::Error::custom(format!(
            "invalid state: expected a JSON object, found {}",
            kind(&value)
        )));
    }
    State::deserialize(value).map_err(D::Error::custom)
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `start <release> [label]`: adds a deploy on the lowest free port.
/// Starting a label that exists with the same release changes nothing;
/// with another release it is refused [better]: re-creating it would drop
/// a connected endpoint's traffic.
pub fn start(
    state: &State,
    config: &ProxyModeConfig,
    release: &ReleaseName,
    label: &DeployLabel,
) -> Result<State> {
    if let Some(existing) = state.deploys.get(label) {
        if existing.release == *release {
            return Ok(state.clone());
        }
        bail!(
            "deploy {label} already exists with release {}: stop it first, or choose another deploy label",
            existing.release
        );
    }
    let (lo, hi) = (config.dynamic_port_range.v1, config.dynamic_port_range.v2);
    let port = (lo..hi)
        .find(|p| !state.deploys.values().any(|d| d.port == *p))
        .with_context(|| format!("no more ports available in [{lo}, {hi}) (dynamicPortRange)"))?;
    let mut next = state.clone();
    next.deploys.insert(
        label.clone(),
        Deploy {
            label: label.clone(),
            release: release.clone(),
            port,
        },
    );
    Ok(next)
}

/// `stop <deploy>`: removes a deploy that no endpoint is connected to.
pub fn stop(state: &State, label: &str) -> Result<State> {
    if !state.deploys.contains_key(label) {
        bail!("no deploy called {label}");
    }
    if let Some(endpoint) = state.connected_endpoint(label) {
        bail!("deploy is connected to {endpoint}: connect {endpoint} to another deploy or disconnect it first");
    }
    let mut next = state.clone();
    next.deploys.remove(label);
    Ok(next)
}

/// `connect <endpoint> <deploy>`.
pub fn connect(
    state: &State,
    config: &ProxyModeConfig,
    endpoint: &str,
    label: &str,
) -> Result<State> {
    check_endpoint(config, endpoint)?;
    let Some(deploy) = state.deploys.get(label) else {
        bail!("no deploy called {label}");
    };
    let mut next = state.clone();
    next.connections
        .insert(endpoint.to_string(), deploy.label.clone());
    Ok(next)
}

/// `disconnect <endpoint>`.
pub fn disconnect(state: &State, config: &ProxyModeConfig, endpoint: &str) -> Result<State> {
    check_endpoint(config, endpoint)?;
    let mut next = state.clone();
    next.connections.remove(endpoint);
    Ok(next)
}

fn check_endpoint(config: &ProxyModeConfig, endpoint: &str) -> Result<()> {
    if !config.end_points.contains_key(endpoint) {
        let known: Vec<&str> = config.end_points.keys().map(String::as_str).collect();
        bail!(
            "no endpoint called {endpoint} (configured: {})",
            known.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_object_is_a_state() {
        for (text, found) in [("[]", "an array"), ("null", "null"), ("3", "a number")] {
            let e = parse(text, "s.json").unwrap_err();
            assert_eq!(
                format!("{e:#}"),
                format!("s.json: invalid state: expected a JSON object, found {found}")
            );
        }
        assert_eq!(parse("{}", "s.json").unwrap(), State::default());
        let e = parse("{", "s.json").unwrap_err();
        assert!(format!("{e:#}").starts_with("s.json: invalid state: EOF"));
    }
}
