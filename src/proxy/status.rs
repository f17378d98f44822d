//! `status` output: text for people, JSON for scripts.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::{json, Value};

use crate::config::{EndPointType, ProxyModeConfig};
use crate::remote::store::SlaveEntry;

use super::state::{self, Deploy, PortRange, State};

/// What `status` shows in proxy mode, read once: the command line prints
/// it as text or JSON, the API serves it and its parts.
pub(crate) struct Shown<'a> {
    pub proxy: &'a ProxyModeConfig,
    /// The local state, or the master's.
    pub state: State,
    /// With local state, each deploy's health (`healthy`, `unhealthy: …`),
    /// with what the health watch does about it; deploys without a check
    /// are not in it.
    pub health: BTreeMap<String, String>,
    /// With remote state, when asked for: the slaves' reports.
    pub slaves: Option<Vec<SlaveEntry>>,
}

impl Shown<'_> {
    /// `status --json-output`.
    pub fn json(&self) -> Value {
        let mut out = json!({
            "master": self.state,
            "ports": ports_json(self.proxy, &self.state),
        });
        // Only when some deploy has a check: the shape is otherwise the
        // old tool's.
        if !self.health.is_empty() {
            out["health"] = json!(self.health);
        }
        if let Some(slaves) = &self.slaves {
            let slaves = slaves
                .iter()
                .map(|s| crate::remote::status::slave_json(s, &self.state));
            out["slaves"] = Value::Array(slaves.collect());
        }
        out
    }

    /// `status`.
    pub fn text(&self) -> String {
        let mut text = master_text(self.proxy, &self.state, &self.health);
        if let Some(slaves) = &self.slaves {
            text += &crate::remote::status::slaves_text(slaves, &self.state, self.proxy);
        }
        text
    }
}

/// A heading line: 21 dashes, the title, dashes up to 70 characters.
pub fn heading(title: &str) -> String {
    let head = format!("{}{title}", "-".repeat(21));
    format!("{head}{}", "-".repeat(70usize.saturating_sub(head.len())))
}

/// How a deploy is named: `label`, or `label (release)` when they differ.
fn deploy_name(d: &Deploy) -> String {
    if d.label.as_str() == d.release.as_str() {
        d.label.to_string()
    } else {
        format!("{} ({})", d.label, d.release)
    }
}

/// The endpoints and deploys of a state, as in the spec's example, with
/// a note after each deploy that has one (its health), by label.
pub fn state_text(
    proxy: &ProxyModeConfig,
    state: &State,
    notes: &BTreeMap<String, String>,
) -> String {
    let mut out = String::from("Endpoints:\n");
    for (label, ep) in &proxy.end_points {
        let ports = match ep.etype {
            EndPointType::HttpOnly => proxy.http_port.to_string(),
            EndPointType::HttpsWithRedirect(_) => {
                format!("{},{}", proxy.http_port, proxy.https_port)
            }
        };
        let names: Vec<String> = ep
            .server_names
            .iter()
            .map(|n| format!("{n}:{ports}"))
            .collect();
        let target = match state.connections.get(label) {
            Some(deploy) if state.deploys.contains_key(deploy) => deploy.to_string(),
            Some(deploy) => format!("{deploy} (missing)"),
            None => "(not connected)".to_string(),
        };
        let _ = writeln!(out, "  {label}: ({}) -> {target}", names.join(", "));
    }
    out.push_str("\nDeploys:\n");
    for d in state.deploys.values() {
        let _ = write!(out, "  {}: (localhost:{})", deploy_name(d), d.port);
        if let Some(note) = notes.get(d.label.as_str()) {
            let _ = write!(out, " {note}");
        }
        out.push('\n');
    }
    out
}

/// The status of the state shown (local, or the master): its endpoints
/// and deploys, each deploy's note (its health) after it, and how many
/// ports of the range its deploys hold.
pub fn master_text(
    proxy: &ProxyModeConfig,
    state: &State,
    notes: &BTreeMap<String, String>,
) -> String {
    format!(
        "{}\n{}\n{}\n",
        heading("MASTER"),
        state_text(proxy, state, notes),
        ports_line(proxy, state)
    )
}

/// `Ports: 4 of 100 in use (8000-8099)`.
pub fn ports_line(proxy: &ProxyModeConfig, state: &State) -> String {
    let range = PortRange::of(proxy);
    let (used, total) = state::capacity(state, range);
    format!("Ports: {used} of {total} in use ({range})")
}

/// `{"used": 4, "total": 100}`, beside `"master"` in the JSON status.
pub fn ports_json(proxy: &ProxyModeConfig, state: &State) -> serde_json::Value {
    let (used, total) = state::capacity(state, PortRange::of(proxy));
    serde_json::json!({ "used": used, "total": total })
}

/// `healthy`, or `unhealthy: <why>`.
pub fn health_word(answer: &Result<(), String>) -> String {
    match answer {
        Ok(()) => "healthy".to_string(),
        Err(why) => format!("unhealthy: {why}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn matches_the_spec_example() {
        let config: crate::config::ToolConfig = crate::config::parse_value(
            json!({
                "releases": {"localdir": "/r"},
                "deployMode": {"proxy": {"endPoints": {
                    "main": {"serverNames": ["main.example"], "etype": "httpOnly"},
                    "test": {"serverNames": ["test.example"], "etype": {"httpsWithRedirect": "generated"}}
                }}}
            }),
            "test",
        )
        .unwrap();
        let state: State = serde_json::from_value(json!({
            "deploys": {"shop-1.4": {"label": "shop-1.4", "release": "shop-1.4.zip", "port": 8000}},
            "connections": {"main": "shop-1.4"}
        }))
        .unwrap();
        assert_eq!(
            master_text(config.proxy_mode().unwrap(), &state, &BTreeMap::new()),
            "---------------------MASTER-------------------------------------------\n\
             Endpoints:\n\
             \x20 main: (main.example:80) -> shop-1.4\n\
             \x20 test: (test.example:80,443) -> (not connected)\n\
             \n\
             Deploys:\n\
             \x20 shop-1.4 (shop-1.4.zip): (localhost:8000)\n\
             \n\
             Ports: 1 of 100 in use (8000-8099)\n"
        );
    }
}
