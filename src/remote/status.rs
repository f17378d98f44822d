//! `status` and `slave-flush` with remote state.

use std::time::{Duration, SystemTime};

use anyhow::{bail, Result};
use serde_json::{json, Value};

use crate::config::ProxyModeConfig;
use crate::log;
use crate::output::one_line;
use crate::proxy::state::State;
use crate::proxy::status::{heading, state_text, Shown};

use super::store::{RemoteStore, SlaveEntry, SlaveStatus};

/// Slave reports older than this are flushed by default, and count as
/// silent for `--await-slaves`.
pub const FLUSH_AGE: Duration = Duration::from_secs(5 * 60);

fn master_state(remote: &dyn RemoteStore) -> Result<State> {
    Ok(remote.master()?.0)
}

pub fn time_text(t: Option<SystemTime>) -> String {
    t.map(|t| humantime::format_rfc3339_seconds(t).to_string())
        .unwrap_or_default()
}

/// The master's state, and with `show_slaves` the slaves' reports.
pub fn shown<'a>(
    remote: &dyn RemoteStore,
    proxy: &'a ProxyModeConfig,
    show_slaves: bool,
) -> Result<Shown<'a>> {
    Ok(Shown {
        proxy,
        state: master_state(remote)?,
        health: Default::default(),
        slaves: match show_slaves {
            true => Some(remote.slaves()?),
            false => None,
        },
    })
}

/// The `SLAVES` part of `status --show-slaves`.
pub fn slaves_text(slaves: &[SlaveEntry], master: &State, proxy: &ProxyModeConfig) -> String {
    let mut text = format!("{}\n", heading("SLAVES"));
    for s in slaves {
        text += &slave_text(s, master, proxy);
        text += &format!("{}\n", "-".repeat(70));
    }
    text
}

pub fn slave_json(s: &SlaveEntry, master: &State) -> Value {
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
    // Every field is the slave's word: one line each, whatever it holds.
    let mut out = format!("Slave: {}\n", one_line(&s.label));
    match &s.report {
        Ok(r) => {
            out += &format!("Slave IP: {}\n", one_line(&r.ip_address));
            out += &format!("Slave Hostname: {}\n", one_line(&r.host_name));
            out += &match &r.status {
                SlaveStatus::Ok => "Status: OK\n".to_string(),
                SlaveStatus::Error(e) => format!("Status: Error ({})\n", one_line(e)),
            };
            out += &format!("Updated: {}\n", time_text(s.last_modified));
            let sync = if r.state == *master { "yes" } else { "no" };
            out += &format!("In sync with master: {sync}\n");
            // The deploys its health watch says are down, after them.
            let notes = r
                .deploys
                .iter()
                .filter(|(_, h)| !h.healthy())
                .map(|(label, h)| {
                    let note = match h.restarts {
                        0 => one_line(&h.health).into_owned(),
                        n => format!("{} (restarted {n} times)", one_line(&h.health)),
                    };
                    (label.clone(), note)
                })
                .collect();
            out += &state_text(proxy, &r.state, &notes);
        }
        Err(e) => {
            out += &format!("Status: Error (unreadable report: {})\n", one_line(e));
            out += &format!("Updated: {}\n", time_text(s.last_modified));
            out += "In sync with master: no\n";
        }
    }
    out
}

/// `slave-flush`: deletes slave reports not updated for `older_than`. One
/// report that cannot be deleted does not keep the others: each failure
/// is warned, and the command fails at its end naming them.
pub fn flush(remote: &dyn RemoteStore, older_than: Duration) -> Result<()> {
    let now = SystemTime::now();
    let mut failed = Vec::new();
    for s in remote.slaves()? {
        if s.age(now).is_none_or(|age| age <= older_than) {
            continue;
        }
        log::info(&format!(
            "Flushing slave {} (last updated {})",
            s.label,
            time_text(s.last_modified)
        ));
        if let Err(e) = remote.delete_slave(&s) {
            log::warn(&format!("cannot flush slave {}: {e:#}", s.label));
            failed.push(format!("{}: {e:#}", s.label));
        }
    }
    if !failed.is_empty() {
        bail!("could not flush {}", failed.join("; "));
    }
    Ok(())
}
