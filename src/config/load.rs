//! Finding, reading and parsing config files (SPEC §2).
//!
//! Text is parsed into a `serde_json::Value` first (JSON or YAML by
//! extension), then into the typed schema through `serde_path_to_error` (so an
//! error names the path inside the file). Unknown fields are found by
//! serializing the typed value back and comparing it with the input: any key
//! the schema did not keep is reported (it is usually a typo).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
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
    fn display_name(&self) -> String {
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
pub fn load<T: DeserializeOwned + Serialize>(location: &ConfigLocation) -> Result<T> {
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
pub fn parse_text<T: DeserializeOwned + Serialize>(text: &str, name: &str, ext: &str) -> Result<T> {
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
pub fn parse_value<T: DeserializeOwned + Serialize>(value: Value, name: &str) -> Result<T> {
    let mut track = serde_path_to_error::Track::new();
    let de = serde_path_to_error::Deserializer::new(&value, &mut track);
    match T::deserialize(de) {
        Ok(parsed) => {
            let kept = serde_json::to_value(&parsed)?;
            let mut unknown = Vec::new();
            unknown_fields(&value, &kept, "", &mut unknown);
            for path in unknown {
                log::warn(&format!("{name}: unknown field {path} (ignored)"));
            }
            Ok(parsed)
        }
        Err(e) => {
            let path = track.path().to_string();
            let msg = explain(&e.to_string());
            if path == "." || path.is_empty() {
                bail!("{name}: {msg}")
            }
            bail!("{name}: {path}: {msg}")
        }
    }
}

/// Collects the paths of keys present in `input` but not in `kept`.
fn unknown_fields(input: &Value, kept: &Value, path: &str, out: &mut Vec<String>) {
    let join = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    match (input, kept) {
        (Value::Object(i), Value::Object(k)) => {
            for (key, value) in i {
                match k.get(key) {
                    Some(kv) => unknown_fields(value, kv, &join(key), out),
                    None => out.push(join(key)),
                }
            }
        }
        (Value::Array(i), Value::Array(k)) => {
            for (n, (iv, kv)) in i.iter().zip(k).enumerate() {
                unknown_fields(iv, kv, &join(&n.to_string()), out);
            }
        }
        // Other shapes differ only by encoding ({"noproxy": null} vs "noproxy").
        _ => {}
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
