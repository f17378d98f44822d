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
use crate::refusal::refused;

/// The most a state file may hold: room for thousands of deploys.
pub const MAX_STATE_BYTES: u64 = 64 << 20;

/// `state.json`, mirroring `adl/state.adl`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    #[serde(default)]
    pub deploys: BTreeMap<DeployLabel, Deploy>,
    /// endpoint → deploy label.
    #[serde(default)]
    pub connections: BTreeMap<String, DeployLabel>,
    /// endpoint → the deploy its last connect, disconnect or rollback
    /// replaced: where `rollback` goes. Absent when empty, so states without
    /// rollback information stay byte for byte what older c2 wrote.
    #[serde(
        default,
        rename = "previousConnections",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub previous_connections: BTreeMap<String, DeployLabel>,
    /// endpoint → the release its previous deploy ran: together with the
    /// label, the deploy `rollback` means, so that a deploy started later
    /// under the same label with another release cannot pass for it.
    /// Absent when empty, and ignored by readers that do not know it.
    #[serde(
        default,
        rename = "previousReleases",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub previous_releases: BTreeMap<String, ReleaseName>,
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
        match fsutil::read_bounded(path, MAX_STATE_BYTES)? {
            Some(bytes) => parse(bytes, &path.display().to_string()),
            None => Ok(State::default()),
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

    /// Takes `other`'s rollback record (previous deploys and their releases).
    pub fn take_previous(&mut self, other: &State) {
        self.previous_connections = other.previous_connections.clone();
        self.previous_releases = other.previous_releases.clone();
    }

    /// Whether `other` has the same rollback record.
    pub fn same_previous(&self, other: &State) -> bool {
        self.previous_connections == other.previous_connections
            && self.previous_releases == other.previous_releases
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
pub fn parse(text: impl AsRef<[u8]>, name: &str) -> Result<State> {
    parse_object(text.as_ref(), name, "state")
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
        refused!(
            Conflict,
            "deploy {label} already exists with release {}: stop it first, or choose another deploy label",
            existing.release
        );
    }
    let range = PortRange::of(config);
    let Some(port) = range
        .ports()
        .find(|p| !state.deploys.values().any(|d| d.port == *p))
    else {
        refused!(Conflict, "{}", no_more_ports(state, range));
    };
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

/// The ports deploys are given: dynamicPortRange, `v1` up to `v2 - 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    lo: u16,
    /// Excluded.
    hi: u16,
}

impl PortRange {
    pub fn of(config: &ProxyModeConfig) -> PortRange {
        PortRange {
            lo: config.dynamic_port_range.v1,
            hi: config.dynamic_port_range.v2,
        }
    }

    pub fn ports(self) -> std::ops::Range<u16> {
        self.lo..self.hi
    }

    /// How many ports it holds (none when `v1 >= v2`).
    pub fn total(self) -> u32 {
        u32::from(self.hi.saturating_sub(self.lo))
    }

    pub fn contains(self, port: u16) -> bool {
        self.ports().contains(&port)
    }
}

/// `8000-8099`, the ports as an operator counts them.
impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.hi.checked_sub(1) {
            Some(last) if self.lo <= last => write!(f, "{}-{last}", self.lo),
            _ => write!(f, "no port: v1 {} is not below v2 {}", self.lo, self.hi),
        }
    }
}

/// The deploys of `state` holding a port of `range`, by port.
pub fn holders(state: &State, range: PortRange) -> Vec<&Deploy> {
    let mut held: Vec<&Deploy> = state
        .deploys
        .values()
        .filter(|d| range.contains(d.port))
        .collect();
    held.sort_by_key(|d| d.port);
    held
}

/// How many ports of the range deploys hold, and how many it has.
pub fn capacity(state: &State, range: PortRange) -> (usize, u32) {
    let mut ports: Vec<u16> = holders(state, range).iter().map(|d| d.port).collect();
    ports.dedup();
    (ports.len(), range.total())
}

/// Holders named in the error before the rest is counted.
const HOLDERS_SHOWN: usize = 10;

/// Why a start finds no port, naming the range and who holds it.
fn no_more_ports(state: &State, range: PortRange) -> String {
    let held = holders(state, range);
    if held.is_empty() {
        return format!("no more ports available in dynamicPortRange ({range}): widen the range");
    }
    let mut names = held
        .iter()
        .take(HOLDERS_SHOWN)
        .map(|d| format!("{} ({})", d.label, d.port))
        .collect::<Vec<_>>()
        .join(", ");
    if let Some(more) = held.len().checked_sub(HOLDERS_SHOWN).filter(|n| *n > 0) {
        names += &format!(" and {more} more");
    }
    format!(
        "no more ports available in {range} (dynamicPortRange): held by {names}; stop a deploy or widen the range"
    )
}

/// `stop <deploy>`: removes a deploy that no endpoint is connected to. An
/// endpoint whose previous deploy it was keeps the record (a rollback then
/// says it was stopped), with its release, so a deploy started later under
/// the label cannot take its place.
pub fn stop(state: &State, label: &str) -> Result<State> {
    let Some(deploy) = state.deploys.get(label) else {
        refused!(NotFound, "no deploy called {label}");
    };
    if let Some(endpoint) = state.connected_endpoint(label) {
        refused!(Conflict, "deploy is connected to {endpoint}: connect {endpoint} to another deploy or disconnect it first");
    }
    let mut next = state.clone();
    for (endpoint, previous) in &state.previous_connections {
        if previous.as_str() == label {
            next.previous_releases
                .entry(endpoint.clone())
                .or_insert_with(|| deploy.release.clone());
        }
    }
    next.deploys.remove(label);
    Ok(next)
}

/// `connect <endpoint> <deploy>`. The deploy it replaces becomes the
/// endpoint's previous one. Connecting the deploy already connected
/// changes nothing; connecting an unconnected endpoint replaces nothing,
/// so the previous entry a disconnect left stays (rollback then returns to
/// the last deploy that served), unless it is the deploy now connected.
pub fn connect(
    state: &State,
    config: &ProxyModeConfig,
    endpoint: &str,
    label: &str,
) -> Result<State> {
    check_endpoint(config, endpoint)?;
    let Some(deploy) = state.deploys.get(label) else {
        refused!(NotFound, "no deploy called {label}");
    };
    Ok(switch(state, endpoint, Some(deploy.label.clone())))
}

/// `disconnect <endpoint>`. The deploy it had becomes its previous one.
pub fn disconnect(state: &State, config: &ProxyModeConfig, endpoint: &str) -> Result<State> {
    check_endpoint(config, endpoint)?;
    Ok(switch(state, endpoint, None))
}

/// `rollback <endpoint>`: connects the endpoint back to its previous
/// deploy, which the deploy it leaves replaces as previous, so a second
/// rollback goes forward again. After a disconnect it reconnects the
/// deploy the endpoint had, and leaves no previous entry.
pub fn rollback(state: &State, config: &ProxyModeConfig, endpoint: &str) -> Result<State> {
    check_endpoint(config, endpoint)?;
    let Some(previous) = state.previous_connections.get(endpoint) else {
        refused!(Conflict, "no previous deploy for endpoint {endpoint}");
    };
    let Some(deploy) = state.deploys.get(previous) else {
        refused!(
            Conflict,
            "previous deploy {previous} of endpoint {endpoint} was stopped"
        );
    };
    // A state written before releases were recorded names the label only.
    if let Some(release) = state.previous_releases.get(endpoint) {
        if deploy.release != *release {
            refused!(
                Conflict,
                "previous deploy {previous} ({release}) of endpoint {endpoint} was stopped; deploy {previous} now runs {}: connect to it explicitly if that is what you want",
                deploy.release
            );
        }
    }
    Ok(switch(state, endpoint, Some(previous.clone())))
}

/// Points `endpoint` at `to` (or nowhere), recording the deploy it leaves
/// as the previous one. An endpoint never has its current deploy as its
/// previous one.
fn switch(state: &State, endpoint: &str, to: Option<DeployLabel>) -> State {
    let mut next = state.clone();
    let from = state.connections.get(endpoint);
    if from == to.as_ref() {
        return next;
    }
    if let Some(from) = from {
        next.previous_connections
            .insert(endpoint.to_string(), from.clone());
        match state.deploys.get(from) {
            Some(d) => next
                .previous_releases
                .insert(endpoint.to_string(), d.release.clone()),
            None => next.previous_releases.remove(endpoint),
        };
    }
    match to {
        Some(label) => {
            if next.previous_connections.get(endpoint) == Some(&label) {
                next.previous_connections.remove(endpoint);
                next.previous_releases.remove(endpoint);
            }
            next.connections.insert(endpoint.to_string(), label);
        }
        None => {
            next.connections.remove(endpoint);
        }
    }
    next
}

fn check_endpoint(config: &ProxyModeConfig, endpoint: &str) -> Result<()> {
    if !config.end_points.contains_key(endpoint) {
        let known: Vec<&str> = config.end_points.keys().map(String::as_str).collect();
        refused!(
            NotFound,
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

    fn config() -> crate::config::ToolConfig {
        crate::config::parse_value(
            serde_json::json!({
                "releases": {"localdir": "/r"},
                "deployMode": {"proxy": {"endPoints": {
                    "main": {"serverNames": ["main.example"], "etype": "httpOnly"}
                }}}
            }),
            "test",
        )
        .unwrap()
    }

    /// A state with deploys `labels`, each started from `<label>.zip`.
    fn with_deploys(proxy: &ProxyModeConfig, labels: &[&str]) -> State {
        labels.iter().fold(State::default(), |s, l| {
            let release = ReleaseName::parse(&format!("{l}.zip")).unwrap();
            start(&s, proxy, &release, &DeployLabel::parse(l).unwrap()).unwrap()
        })
    }

    /// (connected deploy, previous deploy) of `main`.
    fn main_of(state: &State) -> (Option<&str>, Option<&str>) {
        (
            state.connections.get("main").map(|l| l.as_str()),
            state.previous_connections.get("main").map(|l| l.as_str()),
        )
    }

    fn err(result: Result<State>) -> String {
        format!("{:#}", result.unwrap_err())
    }

    #[test]
    fn connect_records_the_deploy_it_replaces() {
        let config = config();
        let p = config.proxy_mode().unwrap();
        let s = with_deploys(p, &["a", "b"]);
        let s = connect(&s, p, "main", "a").unwrap();
        assert_eq!(main_of(&s), (Some("a"), None), "nothing was replaced");
        let s = connect(&s, p, "main", "b").unwrap();
        assert_eq!(main_of(&s), (Some("b"), Some("a")));
        assert_eq!(connect(&s, p, "main", "b").unwrap(), s, "already connected");
        let s = disconnect(&s, p, "main").unwrap();
        assert_eq!(main_of(&s), (None, Some("b")));
        assert_eq!(disconnect(&s, p, "main").unwrap(), s, "not connected");
    }

    #[test]
    fn double_rollback_toggles() {
        let config = config();
        let p = config.proxy_mode().unwrap();
        let s = with_deploys(p, &["a", "b"]);
        let s = connect(&s, p, "main", "a").unwrap();
        let s = connect(&s, p, "main", "b").unwrap();
        let back = rollback(&s, p, "main").unwrap();
        assert_eq!(main_of(&back), (Some("a"), Some("b")));
        let forward = rollback(&back, p, "main").unwrap();
        assert_eq!(forward, s);
        assert_eq!(rollback(&forward, p, "main").unwrap(), back);
    }

    #[test]
    fn rollback_after_a_disconnect_reconnects_and_leaves_no_previous() {
        let config = config();
        let p = config.proxy_mode().unwrap();
        let s = with_deploys(p, &["a", "b"]);
        let s = connect(&s, p, "main", "a").unwrap();
        let s = connect(&s, p, "main", "b").unwrap();
        let s = disconnect(&s, p, "main").unwrap();
        let s = rollback(&s, p, "main").unwrap();
        assert_eq!(main_of(&s), (Some("b"), None));
        assert_eq!(
            err(rollback(&s, p, "main")),
            "no previous deploy for endpoint main"
        );
    }

    #[test]
    fn connecting_after_a_disconnect_keeps_the_last_deploy_that_served() {
        let config = config();
        let p = config.proxy_mode().unwrap();
        let s = with_deploys(p, &["a", "b"]);
        let s = connect(&s, p, "main", "a").unwrap();
        let s = disconnect(&s, p, "main").unwrap();
        let c = connect(&s, p, "main", "b").unwrap();
        assert_eq!(main_of(&c), (Some("b"), Some("a")));
        assert_eq!(
            main_of(&rollback(&c, p, "main").unwrap()),
            (Some("a"), Some("b"))
        );
        // Reconnecting the deploy it had: nothing to go back to.
        let c = connect(&s, p, "main", "a").unwrap();
        assert_eq!(main_of(&c), (Some("a"), None));
    }

    #[test]
    fn a_previous_deploy_may_be_stopped_and_then_rollback_says_so() {
        let config = config();
        let p = config.proxy_mode().unwrap();
        let s = with_deploys(p, &["shop-1.4", "shop-1.5"]);
        let s = connect(&s, p, "main", "shop-1.4").unwrap();
        let s = connect(&s, p, "main", "shop-1.5").unwrap();
        let s = stop(&s, "shop-1.4").unwrap();
        assert_eq!(main_of(&s), (Some("shop-1.5"), Some("shop-1.4")));
        assert_eq!(
            err(rollback(&s, p, "main")),
            "previous deploy shop-1.4 of endpoint main was stopped"
        );
        assert_eq!(
            err(stop(&s, "shop-1.5")),
            "deploy is connected to main: connect main to another deploy or disconnect it first"
        );
    }

    #[test]
    fn a_deploy_that_reuses_a_stopped_deploys_label_is_no_rollback_target() {
        let config = config();
        let p = config.proxy_mode().unwrap();
        let s = with_deploys(p, &["blue", "green"]);
        let s = connect(&s, p, "main", "blue").unwrap();
        let s = connect(&s, p, "main", "green").unwrap();
        assert_eq!(
            s.previous_releases.get("main").map(|r| r.as_str()),
            Some("blue.zip")
        );
        let stopped = stop(&s, "blue").unwrap();
        let other = ReleaseName::parse("experimental.zip").unwrap();
        let reused = start(&stopped, p, &other, &DeployLabel::parse("blue").unwrap()).unwrap();
        assert_eq!(
            err(rollback(&reused, p, "main")),
            "previous deploy blue (blue.zip) of endpoint main was stopped; deploy blue now runs experimental.zip: connect to it explicitly if that is what you want"
        );

        // A state from before releases were recorded: the stop records it.
        let mut legacy = s.clone();
        legacy.previous_releases.clear();
        let stopped = stop(&legacy, "blue").unwrap();
        assert_eq!(
            stopped.previous_releases.get("main").map(|r| r.as_str()),
            Some("blue.zip")
        );
        let reused = start(&stopped, p, &other, &DeployLabel::parse("blue").unwrap()).unwrap();
        assert!(rollback(&reused, p, "main").is_err());
        // ... and without a stop in between, it still rolls back by label.
        assert_eq!(
            main_of(&rollback(&legacy, p, "main").unwrap()).0,
            Some("blue")
        );
    }

    #[test]
    fn rollback_errors() {
        let config = config();
        let p = config.proxy_mode().unwrap();
        let s = with_deploys(p, &["a"]);
        assert_eq!(
            err(rollback(&s, p, "main")),
            "no previous deploy for endpoint main"
        );
        assert_eq!(
            err(rollback(&s, p, "nope")),
            err(connect(&s, p, "nope", "a"))
        );
        assert_eq!(
            err(rollback(&s, p, "nope")),
            "no endpoint called nope (configured: main)"
        );
    }

    /// A config whose dynamicPortRange is `[lo, hi)`.
    fn ranged(lo: u16, hi: u16) -> ProxyModeConfig {
        let mut p = config().proxy_mode().unwrap().clone();
        p.dynamic_port_range = crate::config::Pair { v1: lo, v2: hi };
        p
    }

    fn start_err(state: &State, p: &ProxyModeConfig, label: &str) -> String {
        let release = ReleaseName::parse(&format!("{label}.zip")).unwrap();
        err(start(
            state,
            p,
            &release,
            &DeployLabel::parse(label).unwrap(),
        ))
    }

    #[test]
    fn a_full_range_names_itself_and_its_holders() {
        let p = ranged(8000, 8002);
        let s = with_deploys(&p, &["green", "blue"]);
        assert_eq!(
            start_err(&s, &p, "red"),
            "no more ports available in 8000-8001 (dynamicPortRange): held by green (8000), blue (8001); stop a deploy or widen the range"
        );
        assert_eq!(capacity(&s, PortRange::of(&p)), (2, 2));
    }

    #[test]
    fn past_ten_holders_the_rest_are_counted() {
        let p = ranged(8000, 8012);
        let labels: Vec<String> = (0..12).map(|i| format!("d{i:02}")).collect();
        let s = with_deploys(&p, &labels.iter().map(String::as_str).collect::<Vec<_>>());
        let shown: Vec<String> = (0..10).map(|i| format!("d{i:02} ({})", 8000 + i)).collect();
        assert_eq!(
            start_err(&s, &p, "one-more"),
            format!(
                "no more ports available in 8000-8011 (dynamicPortRange): held by {} and 2 more; stop a deploy or widen the range",
                shown.join(", ")
            )
        );
    }

    #[test]
    fn capacity_counts_only_ports_of_the_range_and_never_overflows() {
        let p = ranged(8000, 8100);
        let mut s = with_deploys(&p, &["a", "b"]);
        // A deploy left outside the range by a config change holds none of it.
        s.deploys.get_mut("b").unwrap().port = 9000;
        assert_eq!(capacity(&s, PortRange::of(&p)), (1, 100));
        assert_eq!(PortRange::of(&p).to_string(), "8000-8099");

        let widest = ranged(0, u16::MAX);
        assert_eq!(capacity(&s, PortRange::of(&widest)), (2, 65535));
        assert_eq!(PortRange::of(&widest).to_string(), "0-65534");
        let one = ranged(65534, 65535);
        assert_eq!(PortRange::of(&one).to_string(), "65534-65534");

        for (lo, hi) in [(8100, 8000), (8000, 8000), (u16::MAX, 0), (0, 0)] {
            let empty = ranged(lo, hi);
            assert_eq!(capacity(&s, PortRange::of(&empty)), (0, 0));
            assert_eq!(
                start_err(&s, &empty, "c"),
                format!("no more ports available in dynamicPortRange (no port: v1 {lo} is not below v2 {hi}): widen the range")
            );
        }
    }

    #[test]
    fn previous_connections_are_written_only_when_there_are_some() {
        let text = "{\"deploys\":{\"a\":{\"label\":\"a\",\"release\":\"a.zip\",\"port\":8000}},\"connections\":{\"main\":\"a\"}}";
        let s = parse(text, "s.json").unwrap();
        assert!(s.previous_connections.is_empty());
        let written = String::from_utf8(s.to_json()).unwrap();
        assert!(!written.contains("previousConnections"), "{written}");
        let mut with = s.clone();
        with.previous_connections
            .insert("main".into(), DeployLabel::parse("b").unwrap());
        let written = String::from_utf8(with.to_json()).unwrap();
        assert!(
            written.contains("\"previousConnections\": {\n    \"main\": \"b\"\n  }"),
            "{written}"
        );
        assert_eq!(parse(&written, "s.json").unwrap(), with);
    }
}
