//! The page at `/`: one server-rendered HTML page, readable without
//! JavaScript and refreshing itself every 5 s, made with c2's own mustache
//! renderer (which escapes every value: names come from the state, the
//! slaves and the history, and none of them is trusted).

use anyhow::Result;
use serde_json::{json, Value};

use super::{views, App};
use crate::proxy::status::ports_json;
use crate::store;
use crate::target::{self, Status};
use crate::{journal, template};

const TEMPLATE: &str = include_str!("../../templates/page.html.tpl");

/// How many history events the page shows.
const EVENTS: usize = 20;

pub(crate) fn render(app: &App) -> Result<String> {
    let store = store::open(&app.config.releases);
    let target = target::open(&app.config, store.as_ref())?;
    let status = target.status(app.remote())?;
    let journal = journal::open(&app.config);
    let lock = journal::current_lock(journal.as_ref())?;
    let events: Vec<String> = journal
        .recent(EVENTS)?
        .iter()
        .map(journal::Event::line)
        .collect();
    let context = json!({
        "proxy": matches!(status, Status::Proxy(_)),
        "current": match &status {
            Status::Noproxy { current, current_release, .. } => json!({
                "label": current,
                "release": current_release,
            }),
            Status::Proxy(_) => Value::Null,
        },
        "previous": match &status {
            Status::Noproxy { previous, .. } => json!(previous),
            Status::Proxy(_) => Value::Null,
        },
        "endpoints": views::endpoints(&status),
        "deploys": page_deploys(&status),
        "fleet": matches!(&status, Status::Proxy(shown) if shown.slaves.is_some()),
        "slaves": match &status {
            Status::Proxy(shown) => shown.slaves.as_deref().map(|s| views::slaves(shown, s)),
            Status::Noproxy { .. } => None,
        },
        "ports": match &status {
            Status::Proxy(shown) => ports_json(shown.proxy, &shown.state),
            Status::Noproxy { .. } => Value::Null,
        },
        "lock": lock.map(|l| l.holder()),
        "events": events,
        "generated": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
    });
    let rendered = template::render_str(TEMPLATE, &context, &mut |_| Ok(None))?;
    Ok(rendered.text)
}

/// The deploys as the page lists them: the per-slave map as a list, and
/// whether each is healthy (for the page's colours).
fn page_deploys(status: &Status) -> Vec<Value> {
    views::deploys(status)
        .into_iter()
        .map(|mut d| {
            let health = d["health"].as_str().map(str::to_string);
            d["healthy"] = json!(health.as_deref() == Some("healthy"));
            d["endpoints"] = json!(d["endpoints"].as_array().map(|e| e
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")));
            if let Some(slaves) = d["slaves"].as_object() {
                let list: Vec<Value> = slaves
                    .iter()
                    .map(|(name, state)| json!({"name": name, "state": state, "ok": state == "ok"}))
                    .collect();
                d["slaves"] = json!(list);
            }
            d
        })
        .collect()
}
