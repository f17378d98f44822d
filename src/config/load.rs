//! Finding, reading and parsing config files.
//!
//! Text is parsed into a `serde_json::Value` first (JSON or YAML by
//! extension), then into the typed schema through `serde_path_to_error` (so an
//! error names the path inside the file) and `serde_ignored` (which reports
//! every key the schema does not know: it is usually a typo).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::aws::s3::S3Url;
use crate::log;

/// Where a config file comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigLocation {
    File(PathBuf),
    S3(S3Url),
}

impl std::fmt::Display for ConfigLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigLocation::File(p) => write!(f, "{}", p.display()),
            ConfigLocation::S3(u) => write!(f, "{u}"),
        }
    }
}

impl ConfigLocation {
    /// The short name used in error messages: the file name, as in
    /// `camus2.yaml: deployMode.proxy...`.
    pub(crate) fn display_name(&self) -> String {
        let full = self.to_string();
        full.rsplit('/').next().unwrap_or(&full).to_string()
    }

    fn extension(&self) -> String {
        let name = self.display_name();
        match name.rsplit_once('.') {
            Some((_, ext)) => ext.to_ascii_lowercase(),
            None => String::new(),
        }
    }
}

/// Works out which config file to use: `--config`, else `$env_var`, else
/// the defaults beside the executable. `defaults` are tried in order; if
/// none exists the error lists every path tried.
pub fn locate(
    explicit: Option<&Path>,
    env_var: &str,
    defaults: &[PathBuf],
) -> Result<ConfigLocation> {
    if let Some(p) = explicit {
        return Ok(ConfigLocation::File(p.to_path_buf()));
    }
    if let Some(v) = std::env::var_os(env_var).filter(|v| !v.is_empty()) {
        let v = v.to_string_lossy().to_string();
        if v.starts_with("s3://") {
            return Ok(ConfigLocation::S3(S3Url::parse(&v)?));
        }
        return Ok(ConfigLocation::File(PathBuf::from(v)));
    }
    for candidate in defaults {
        if candidate.exists() {
            return Ok(ConfigLocation::File(candidate.clone()));
        }
    }
    let tried: Vec<String> = defaults.iter().map(|p| p.display().to_string()).collect();
    bail!(
        "no config file found (tried {}); pass --config PATH or set {env_var}",
        tried.join(", ")
    )
}

/// `<dir of the executable>/../etc/<name>.<ext>` for each extension.
pub fn beside_executable(name: &str, exts: &[&str]) -> Vec<PathBuf> {
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    exts.iter()
        .map(|ext| exe_dir.join("..").join("etc").join(format!("{name}.{ext}")))
        .collect()
}

/// Reads and parses the config at `location` into `T`.
pub fn load<T: DeserializeOwned>(location: &ConfigLocation) -> Result<T> {
    let text = match location {
        ConfigLocation::File(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?,
        ConfigLocation::S3(url) => {
            let bytes = crate::aws::s3::get_bytes(url)?
                .with_context(|| format!("config {url} does not exist"))?;
            String::from_utf8(bytes).with_context(|| format!("config {url} is not UTF-8 text"))?
        }
    };
    parse_text(&text, &location.display_name(), &location.extension())
}

/// Parses config text; `name` is used in messages, `ext` picks the format.
pub fn parse_text<T: DeserializeOwned>(text: &str, name: &str, ext: &str) -> Result<T> {
    let value: serde_json::Value = match ext {
        "json" => serde_json::from_str(text).with_context(|| format!("{name}: invalid JSON"))?,
        "yaml" | "yml" => {
            serde_norway::from_str(text).with_context(|| format!("{name}: invalid YAML"))?
        }
        other => bail!("{name}: unknown config format '.{other}' (use .json, .yaml or .yml)"),
    };
    parse_value(value, name)
}

/// Deserializes an already parsed value, naming the path of any error and
/// warning about unknown fields.
pub fn parse_value<T: DeserializeOwned>(value: Value, name: &str) -> Result<T> {
    let (parsed, unknown) = deserialize(&value, name)?;
    for path in unknown {
        log::warn(&format!("{name}: unknown field {path} (ignored)"));
    }
    Ok(parsed)
}

/// The typed value and the paths of the fields it ignored.
fn deserialize<T: DeserializeOwned>(value: &Value, name: &str) -> Result<(T, Vec<String>)> {
    let mut track = serde_path_to_error::Track::new();
    let mut unknown = Vec::new();
    let de = serde_path_to_error::Deserializer::new(value, &mut track);
    match serde_ignored::deserialize(de, |path| unknown.push(spelled(&path, value))) {
        Ok(parsed) => Ok((parsed, unknown)),
        Err(e) => {
            let path = dotted(&track.path());
            let msg = explain(&e.to_string());
            if path.is_empty() {
                bail!("{name}: {msg}")
            }
            bail!("{name}: {path}: {msg}")
        }
    }
}

/// An error's path spelled as the unknown-field warnings spell theirs,
/// with dots only (`serverNames.0`, not `serverNames[0]`).
fn dotted(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let segments: Vec<String> = path
        .iter()
        .map(|segment| match segment {
            Segment::Seq { index } => index.to_string(),
            Segment::Map { key } => key.clone(),
            Segment::Enum { variant } => variant.clone(),
            Segment::Unknown => "?".to_string(),
        })
        .collect();
    segments.join(".")
}

/// `path` as the config file spells it (`deployMode.proxy.endPoints.x.foo`).
/// serde does not name the variant of a union (`proxy`, Maybe's `just`) on
/// the way down, so it is read from the input: the union's only key.
fn spelled(path: &serde_ignored::Path, input: &Value) -> String {
    let mut segments = Vec::new();
    walk(path, input, &mut segments);
    segments.join(".")
}

/// Pushes the segments from the root down to `path`; returns the input value
/// found there.
fn walk<'v>(
    path: &serde_ignored::Path,
    input: &'v Value,
    segments: &mut Vec<String>,
) -> Option<&'v Value> {
    use serde_ignored::Path;
    match path {
        Path::Root => Some(input),
        Path::Seq { parent, index } => {
            let here = walk(parent, input, segments);
            segments.push(index.to_string());
            here?.get(index)
        }
        Path::Map { parent, key } => {
            let here = walk(parent, input, segments);
            segments.push(key.clone());
            here?.get(key)
        }
        Path::NewtypeVariant { parent } => {
            let union = walk(parent, input, segments).and_then(Value::as_object);
            match union.and_then(|u| u.iter().next()) {
                Some((variant, value)) => {
                    segments.push(variant.clone());
                    Some(value)
                }
                // Not for a path serde took through this very input.
                None => {
                    segments.push("?".to_string());
                    None
                }
            }
        }
        Path::Some { parent } | Path::NewtypeStruct { parent } => walk(parent, input, segments),
    }
}

/// Rewords serde's enum messages in ADL terms, which is what operators know.
fn explain(msg: &str) -> String {
    let union_shape = msg.contains("expected string or map")
        || msg.contains("expected map with a single key")
        || msg.contains("expected a map with a single key");
    if union_shape {
        return format!("expected string or singleton object for union ({msg})");
    }
    msg.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ToolConfig;
    use serde_json::json;

    #[test]
    fn unknown_fields_are_named_through_unions_and_maybes() {
        let input = json!({
            "releases": {"localdir": "/r"},
            "deploysDirr": "/typo",
            "healthCheck": {"just": {"incomingPath": "/h", "outgoingPath": "/", "extra": [1]}},
            "deployMode": {"proxy": {
                "endPoints": {"x": {
                    "serverNames": ["a"],
                    "etype": {"httpsWithRedirect": {"explicit": {
                        "sslCertificate": "/c", "sslCertificateKey": "/k", "foo": {"bar": 1}
                    }}}
                }},
                "dynamicPortRange": {"v1": 1, "v2": 2, "v3": 3}
            }}
        });
        let (_, unknown) = deserialize::<ToolConfig>(&input, "c.json").unwrap();
        assert_eq!(
            unknown,
            [
                "deployMode.proxy.dynamicPortRange.v3",
                "deployMode.proxy.endPoints.x.etype.httpsWithRedirect.explicit.foo",
                "deploysDirr",
                "healthCheck.just.extra",
            ]
        );
    }
}
