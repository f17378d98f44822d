//! `status` and `slave-flush` with remote state.

use std::time::{Duration, SystemTime};

use anyhow::Result;
use serde_json::{json, Value};

use crate::config::ProxyModeConfig;
use crate::names::SlaveLabel;
use crate::proxy::state::State;
use crate::proxy::status::{heading, master_text, ports_json, state_text};
use crate::{log, output};

use super::store::{RemoteStore, SlaveEntry, SlaveStatus};

/// Slave reports older than this are flushed by default, and count as
/// silent for `--await-slaves`.
pub const FLUSH_AGE: Duration = Duration::from_secs(5 * 60);

fn master_state(remote: &dyn RemoteStore) -> Result<State> {
    Ok(remote.master()?.0)
}

fn time_text(t: Option<SystemTime>) -> String {
    t.map(|t| humantime::format_rfc3339_seconds(t).to_string())
        .unwrap_or_default()
}

pub fn print(
    remote: &dyn RemoteStore,
    proxy: &ProxyModeConfig,
    show_slaves: bool,
    json_output: bool,
) -> Result<()> {
    let master = master_state(remote)?;
    let slaves = if show_slaves {
        remote.slaves()?
    } else {
        Vec::new()
    };
    if json_output {
        let mut out = json!({ "master": master, "ports": ports_json(proxy, &master) });
        if show_slaves {
            out["slaves"] = Value::Array(slaves.iter().map(|s| slave_json(s, &master)).collect());
        }
        output::line(&out.to_string())?;
        return Ok(());
    }
    let mut text = master_text(proxy, &master, &Default::default());
    if show_slaves {
        text += &format!("{}\n", heading("SLAVES"));
        for s in &slaves {
            text += &slave_text(s, &master, proxy);
            text += &format!("{}\n", "-".repeat(70));
        }
    }
    Ok(output::print(&text)?)
}

fn slave_json(s: &SlaveEntry, master: &State) -> Value {
    let mut v = json!({
        "label": s.label,
        "lastModified": s.last_modified.map(|t| time_text(Some(t))),
    });
    match &s.report {
        Ok(report) => {
            v["state"] = serde_json::to_value(report).unwrap_or(Value::Null);
            // [new] whether this slave has reached the master's state.
            v["inSync"] = json!(report.state == *master);
        }
        Err(e) => {
            v["state"] = Value::Null;
            v["error"] = json!(e);
            v["inSync"] = json!(false);
        }
    }
    v
}

fn slave_text(s: &SlaveEntry, master: &State, proxy: &ProxyModeConfig) -> String {
    let mut out = format!("Slave: {}\n", s.label);
    match &s.report {
        Ok(r) => {
            out += &format!("Slave IP: {}\n", r.ip_address);
            out += &format!("Slave Hostname: {}\n", r.host_name);
            out += &match &r.status {
                SlaveStatus::Ok => "Status: OK\n".to_string(),
                SlaveStatus::Error(e) => format!("Status: Error ({e})\n"),
            };
            out += &format!("Updated: {}\n", time_text(s.last_modified));
            let sync = if r.state == *master { "yes" } else { "no" };
            out += &format!("In sync with master: {sync}\n");
            out += &state_text(proxy, &r.state);
        }
        Err(e) => {
            out += &format!("Status: Error (unreadable report: {e})\n");
            out += &format!("Updated: {}\n", time_text(s.last_modified));
            out += "In sync with master: no\n";
        }
    }
    out
}

/// `slave-flush`: deletes slave reports not updated for `older_than`.
pub fn flush(remote: &dyn RemoteStore, older_than: Duration) -> Result<()> {
    let now = SystemTime::now();
    for s in remote.slaves()? {
        let stale = s
            .last_modified
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > older_than);
        if stale {
            log::info(&format!(
                "Flushing slave {} (last updated {})",
                s.label,
                time_text(s.last_modified)
            ));
            remote.delete_slave(&SlaveLabel::parse(&s.label)?)?;
        }
    }
    Ok(())
}
