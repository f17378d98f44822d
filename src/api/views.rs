//! The API's JSON shapes, built from what `status` reads: deploys,
//! endpoints and slaves as a CI system or Captain's users want them.

use std::time::SystemTime;

use serde_json::{json, Value};

use crate::proxy::state::{self, PortRange, State};
use crate::proxy::status::Shown;
use crate::remote::status::FLUSH_AGE;
use crate::remote::store::{SlaveEntry, SlaveStatus};
use crate::store::Listed;
use crate::target::Status;

/// `GET /v1/deploys`.
pub(crate) fn deploys(status: &Status) -> Vec<Value> {
    match status {
        Status::Noproxy {
            current,
            current_release,
            ..
        } => current
            .iter()
            .map(|label| {
                json!({
                    "label": label,
                    "release": current_release,
                    "port": null,
                    "endpoints": [],
                    "health": null,
                })
            })
            .collect(),
        Status::Proxy(shown) => shown
            .state
            .deploys
            .keys()
            .filter_map(|label| deploy(shown, label.as_str()))
            .collect(),
    }
}

/// One deploy of `GET /v1/deploys`, if there is one called `label`.
pub(crate) fn deploy(shown: &Shown, label: &str) -> Option<Value> {
    let d = shown.state.deploys.get(label)?;
    let endpoints: Vec<&str> = shown
        .state
        .connections
        .iter()
        .filter(|(_, to)| to.as_str() == label)
        .map(|(endpoint, _)| endpoint.as_str())
        .collect();
    let mut out = json!({
        "label": d.label,
        "release": d.release,
        "port": d.port,
        "endpoints": endpoints,
        "health": shown.health.get(label),
    });
    if let Some(slaves) = &shown.slaves {
        let on: serde_json::Map<String, Value> = slaves
            .iter()
            .map(|s| (s.label.clone(), json!(on_slave(s, label))))
            .collect();
        // The fleet's word: unhealthy where any slave says so.
        let unhealthy = slaves.iter().find_map(|s| {
            let h = s.report.as_ref().ok()?.deploys.get(label)?;
            (!h.healthy()).then(|| format!("unhealthy: {}: {}", s.label, h.health))
        });
        let checked = slaves.iter().any(|s| {
            s.report
                .as_ref()
                .is_ok_and(|r| r.deploys.contains_key(label))
        });
        out["health"] = match (unhealthy, checked) {
            (Some(why), _) => json!(why),
            (None, true) => json!("healthy"),
            (None, false) => Value::Null,
        };
        out["slaves"] = Value::Object(on);
    }
    Some(out)
}

/// How deploy `label` stands on one slave: `ok`, `missing`, or its health.
fn on_slave(s: &SlaveEntry, label: &str) -> String {
    let Ok(report) = &s.report else {
        return "missing".to_string();
    };
    if !report.state.deploys.contains_key(label) {
        return "missing".to_string();
    }
    match report.deploys.get(label) {
        Some(h) if !h.healthy() => h.health.clone(),
        _ => "ok".to_string(),
    }
}

/// `GET /v1/endpoints`: none in noproxy mode.
pub(crate) fn endpoints(status: &Status) -> Vec<Value> {
    let Status::Proxy(shown) = status else {
        return Vec::new();
    };
    shown
        .proxy
        .end_points
        .keys()
        .filter_map(|name| endpoint(shown, name))
        .collect()
}

/// One endpoint of `GET /v1/endpoints`, if one called `name` is configured.
pub(crate) fn endpoint(shown: &Shown, name: &str) -> Option<Value> {
    let configured = shown.proxy.end_points.get(name)?;
    Some(json!({
        "name": name,
        "serverNames": configured.server_names,
        "deploy": shown.state.connections.get(name),
        "previous": shown.state.previous_connections.get(name),
    }))
}

/// `GET /v1/slaves`: each slave with its capacity, Captain's nodes.
pub(crate) fn slaves(shown: &Shown, slaves: &[SlaveEntry]) -> Vec<Value> {
    let now = SystemTime::now();
    let range = PortRange::of(shown.proxy);
    slaves
        .iter()
        .map(|s| {
            let age = s.age(now);
            let live = age.is_some_and(|a| a < FLUSH_AGE);
            let (ip, host, in_sync, status, used) = match &s.report {
                Ok(r) => (
                    Some(r.ip_address.as_str()),
                    Some(r.host_name.as_str()),
                    r.state == shown.state,
                    match &r.status {
                        SlaveStatus::Ok => "ok".to_string(),
                        SlaveStatus::Error(e) => format!("error: {e}"),
                    },
                    ports_used(&r.state, range),
                ),
                Err(e) => (None, None, false, format!("error: {e}"), 0),
            };
            let total = range.total() as usize;
            json!({
                "label": s.label,
                "ipAddress": ip,
                "hostName": host,
                "live": live,
                "inSync": in_sync,
                "reportAgeSeconds": age.map(|a| a.as_secs()),
                "status": status,
                "ports": {
                    "used": used,
                    "free": total.saturating_sub(used),
                    "total": total,
                },
            })
        })
        .collect()
}

fn ports_used(state: &State, range: PortRange) -> usize {
    state::capacity(state, range).0
}

/// `GET /v1/releases`.
pub(crate) fn releases(listed: &[Listed]) -> Vec<Value> {
    listed
        .iter()
        .map(|l| {
            json!({
                "name": l.name,
                "lastModified": l.last_modified
                    .map(|t| humantime::format_rfc3339_seconds(t).to_string()),
            })
        })
        .collect()
}
