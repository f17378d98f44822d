//! What a change did, in a few words, from the states before and after it:
//! `main: shop-1.4 -> shop-1.5`, `+shop-1.5 (shop-1.5.zip on 8001)`,
//! `-shop-1.4`, `current: a -> b`, `locked: <message>`, `unlocked`,
//! `no change`. The states come from history files, so any shape is read
//! without failing.

use std::collections::BTreeSet;

use serde_json::Value;

/// The one-line summary of the change from `before` to `after`.
pub(crate) fn summary(before: &Value, after: &Value) -> String {
    if before == after {
        return "no change".to_string();
    }
    if before.get("lock").is_some() || after.get("lock").is_some() {
        return match after.get("lock") {
            Some(lock) if lock.is_object() => format!("locked: {}", text(&lock["message"])),
            _ => "unlocked".to_string(),
        };
    }
    if before.get("current").is_some() || after.get("current").is_some() {
        return format!(
            "current: {} -> {}",
            label(&before["current"]),
            label(&after["current"])
        );
    }
    let mut parts = Vec::new();
    for endpoint in keys(before, "connections").union(&keys(after, "connections")) {
        let (from, to) = (
            &before["connections"][endpoint],
            &after["connections"][endpoint],
        );
        if from != to {
            parts.push(format!("{endpoint}: {} -> {}", label(from), label(to)));
        }
    }
    let (old, new) = (keys(before, "deploys"), keys(after, "deploys"));
    let replaced = |l: &String| before["deploys"][l] != after["deploys"][l];
    for l in new.iter().filter(|l| !old.contains(*l) || replaced(l)) {
        let d = &after["deploys"][l];
        parts.push(format!(
            "+{l} ({} on {})",
            text(&d["release"]),
            text(&d["port"])
        ));
    }
    for l in old.iter().filter(|l| !new.contains(*l) || replaced(l)) {
        parts.push(format!("-{l}"));
    }
    if parts.is_empty() {
        return "no change".to_string();
    }
    parts.join(", ")
}

/// The keys of object `field` of `state` (none when it is not an object).
fn keys(state: &Value, field: &str) -> BTreeSet<String> {
    state[field]
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

/// A deploy label, or `(none)`.
fn label(value: &Value) -> String {
    match value {
        Value::Null => "(none)".to_string(),
        other => text(other),
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "?".to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy(label: &str, port: u16) -> Value {
        json!({"label": label, "release": format!("{label}.zip"), "port": port})
    }

    #[test]
    fn an_endpoint_switch() {
        let before = json!({"deploys": {}, "connections": {"main": "shop-1.4"}});
        let after = json!({"deploys": {}, "connections": {"main": "shop-1.5"},
                           "previousConnections": {"main": "shop-1.4"}});
        assert_eq!(summary(&before, &after), "main: shop-1.4 -> shop-1.5");
    }

    #[test]
    fn a_disconnect_and_a_first_connect() {
        let connected = json!({"connections": {"main": "a"}});
        let none = json!({"connections": {}});
        assert_eq!(summary(&connected, &none), "main: a -> (none)");
        assert_eq!(summary(&none, &connected), "main: (none) -> a");
    }

    #[test]
    fn deploys_added_and_removed() {
        let before = json!({"deploys": {"shop-1.4": deploy("shop-1.4", 8000)}, "connections": {}});
        let after = json!({"deploys": {"shop-1.5": deploy("shop-1.5", 8001)}, "connections": {}});
        assert_eq!(
            summary(&before, &after),
            "+shop-1.5 (shop-1.5.zip on 8001), -shop-1.4"
        );
        assert_eq!(
            summary(&json!({}), &before),
            "+shop-1.4 (shop-1.4.zip on 8000)"
        );
        assert_eq!(summary(&before, &json!({})), "-shop-1.4");
    }

    #[test]
    fn a_redeployed_label_is_removed_and_added() {
        let before = json!({"deploys": {"a": deploy("a", 8000)}});
        let after = json!({"deploys": {"a": deploy("a", 8005)}});
        assert_eq!(summary(&before, &after), "+a (a.zip on 8005), -a");
    }

    #[test]
    fn noproxy_current() {
        assert_eq!(
            summary(&json!({"current": "a"}), &json!({"current": "b"})),
            "current: a -> b"
        );
        assert_eq!(
            summary(&json!({"current": "a"}), &json!({"current": null})),
            "current: a -> (none)"
        );
    }

    #[test]
    fn the_lock() {
        let lock = json!({"lock": {"user": "a", "host": "h", "time": "t", "message": "freeze"}});
        let none = json!({"lock": null});
        assert_eq!(summary(&none, &lock), "locked: freeze");
        assert_eq!(summary(&lock, &none), "unlocked");
        assert_eq!(summary(&none, &none), "no change");
    }

    #[test]
    fn nothing_changed() {
        let s = json!({"deploys": {"a": deploy("a", 8000)}, "connections": {"main": "a"}});
        assert_eq!(summary(&s, &s), "no change");
        // Only the rollback bookkeeping moved: nothing an operator sees.
        let mut t = s.clone();
        t["previousConnections"] = json!({"main": "b"});
        assert_eq!(summary(&s, &t), "no change");
    }

    #[test]
    fn any_shape_is_summarised_without_failing() {
        assert_eq!(summary(&json!(1), &json!("x")), "no change");
        assert_eq!(
            summary(&json!({"deploys": []}), &json!({"deploys": {"a": 5}})),
            "+a (? on ?)"
        );
    }
}
