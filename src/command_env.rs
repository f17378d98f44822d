//! The environment a release's commands (prestart, start, stop) run with:
//! which release, which deploy, where, and on which ports.
//!
//! It is worked out from what is on disk and in the state (the release name
//! recorded in the deploy directory, the deploy's port), never remembered
//! from the start: a `stop` by a later c2 run, or on a slave, gives the stop
//! command what the start command had.

use std::path::Path;

use serde_json::Value;

use crate::context::Ports;
use crate::layout::Layout;
use crate::log;
use crate::names::ReleaseName;

/// The release blob name, e.g. `shop-1.5.zip`.
const RELEASE: &str = "C2_RELEASE";
const DEPLOY_LABEL: &str = "C2_DEPLOY_LABEL";
/// Absolute, as the command's working directory.
const DEPLOY_DIR: &str = "C2_DEPLOY_DIR";
/// `C2_PORT_HTTP=8001`, one per entry of the `ports` context.
pub(crate) const PORT_PREFIX: &str = "C2_PORT_";
/// The endpoint a switch hook runs for (`current` without a proxy).
pub(crate) const ENDPOINT: &str = "C2_ENDPOINT";

/// Names c2 sets: an inherited value of one of them (c2 run from a
/// release's own command) must not reach a command c2 sets none for.
pub(crate) fn is_ours(name: &str) -> bool {
    [RELEASE, DEPLOY_LABEL, DEPLOY_DIR, ENDPOINT].contains(&name) || name.starts_with(PORT_PREFIX)
}

/// The variables for the commands of the deploy in `dir`: `ports` in
/// proxy mode (from the deploy's port in the state).
pub(crate) fn for_deploy(dir: &Path, ports: Option<&Ports>) -> Vec<(String, String)> {
    let mut vars = Vec::new();
    if let Some(release) = recorded_release(dir) {
        vars.push((RELEASE.to_string(), release.to_string()));
    }
    if let Some(label) = dir.file_name() {
        vars.push((
            DEPLOY_LABEL.to_string(),
            label.to_string_lossy().into_owned(),
        ));
    }
    let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    vars.push((
        DEPLOY_DIR.to_string(),
        absolute.to_string_lossy().into_owned(),
    ));
    if let Some(ports) = ports {
        vars.extend(port_vars(ports));
    }
    vars
}

/// `C2_PORT_<NAME>` for each entry of the `ports` context. A name that is
/// not a valid variable name once upper-cased is left out with a warning.
fn port_vars(ports: &Ports) -> Vec<(String, String)> {
    let Ok(Value::Object(entries)) = serde_json::to_value(ports) else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|(name, port)| {
            let Some(var) = port_var_name(name) else {
                log::warn(&format!(
                    "ports.{name}: not usable in an environment variable name: no {PORT_PREFIX}… variable for it"
                ));
                return None;
            };
            Some((var, port.to_string()))
        })
        .collect()
}

/// `C2_PORT_<NAME>`, if `name` upper-cased is made of `A-Z`, `0-9` and
/// `_` and does not start with a digit.
fn port_var_name(name: &str) -> Option<String> {
    let upper = name.to_ascii_uppercase();
    let valid = upper
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        && upper.bytes().next().is_some_and(|b| !b.is_ascii_digit());
    valid.then(|| format!("{PORT_PREFIX}{upper}"))
}

/// Records which release the deploy in `dir` was made from, for the
/// commands of later runs. Written after unpacking, so an archive entry of
/// the same name cannot stand in for it.
pub(crate) fn record_release(dir: &Path, release: &ReleaseName) -> anyhow::Result<()> {
    crate::fsutil::write_atomic(
        &Layout::deploy_release_record(dir),
        format!("{release}\n").as_bytes(),
        0o644,
    )
}

/// The release recorded in `dir`, if it holds a valid name: the file sits
/// where the release's own commands can write.
pub(crate) fn recorded_release(dir: &Path) -> Option<ReleaseName> {
    let text = std::fs::read_to_string(Layout::deploy_release_record(dir)).ok()?;
    ReleaseName::parse(text.trim_end_matches('\n')).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_names_become_variable_names_or_are_left_out() {
        assert_eq!(port_var_name("http").as_deref(), Some("C2_PORT_HTTP"));
        assert_eq!(port_var_name("extra1").as_deref(), Some("C2_PORT_EXTRA1"));
        assert_eq!(
            port_var_name("admin_ui").as_deref(),
            Some("C2_PORT_ADMIN_UI")
        );
        for hostile in [
            "", "1http", "my-port", "a b", "x=y", "PATH\0", "ünï", "http;rm",
        ] {
            assert_eq!(port_var_name(hostile), None, "{hostile:?}");
        }
        // A leading digit is refused; one further on is fine.
        assert_eq!(port_var_name("_9").as_deref(), Some("C2_PORT__9"));
    }

    #[test]
    fn every_entry_of_the_ports_context_gets_a_variable() {
        let mut vars = port_vars(&Ports::new(8001, (8000, 8100)));
        vars.sort();
        assert_eq!(
            vars,
            [
                ("C2_PORT_EXTRA1", "8101"),
                ("C2_PORT_EXTRA2", "8201"),
                ("C2_PORT_EXTRA3", "8301"),
                ("C2_PORT_EXTRA4", "8401"),
                ("C2_PORT_HTTP", "8001"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
    }

    #[test]
    fn the_release_comes_from_the_record_in_the_directory_if_it_is_a_name() {
        let dir = tempfile::tempdir().unwrap();
        let deploy = dir.path().join("shop");
        std::fs::create_dir(&deploy).unwrap();
        let get = |name: &str| {
            for_deploy(&deploy, None)
                .into_iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v)
        };
        assert_eq!(get(RELEASE), None, "nothing recorded");
        record_release(&deploy, &ReleaseName::parse("shop-1.5.zip").unwrap()).unwrap();
        assert_eq!(get(RELEASE).as_deref(), Some("shop-1.5.zip"));
        assert_eq!(get(DEPLOY_LABEL).as_deref(), Some("shop"));
        assert_eq!(get(DEPLOY_DIR), Some(deploy.display().to_string()));
        std::fs::write(Layout::deploy_release_record(&deploy), "a/../b\n").unwrap();
        assert_eq!(get(RELEASE), None, "not a release name");
    }
}
