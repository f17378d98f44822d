//! Template context: infrastructure context
//! fetched into the context cache, release context from the unpacked
//! release, and in proxy mode the allocated `ports`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{Map, Value};

use crate::aws::s3;
use crate::aws::secrets;
use crate::config::{JsonSource, ToolConfig};
use crate::fsutil;
use crate::log;
use crate::names::ContextName;

/// How often `fetch-context --retry` checks for a missing source.
const RETRY_INTERVAL: Duration = Duration::from_secs(10);

/// Context cache files hold secrets: only their owner may read them.
const CACHE_FILE_MODE: u32 = 0o600;

fn cache_path(config: &ToolConfig, name: &ContextName) -> PathBuf {
    config.context_cache.join(format!("{name}.json"))
}

/// How `fetch-context` treats a source that does not exist yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// Fail at once.
    Fail,
    /// Wait for it, checking every 10 s: forever, or up to this long for
    /// all of them together.
    Wait(Option<Duration>),
}

/// `fetch-context`: writes `<contextCache>/<name>.json` for every
/// `configSources` entry, first waiting for each source to exist if asked.
pub fn fetch(config: &ToolConfig, missing: Missing) -> Result<()> {
    std::fs::create_dir_all(&config.context_cache).with_context(|| {
        format!(
            "cannot create contextCache {}",
            config.context_cache.display()
        )
    })?;
    let started = Instant::now();
    let sources: Vec<_> = config.config_sources.iter().collect();
    for (at, (name, source)) in sources.iter().enumerate() {
        if let Missing::Wait(timeout) = missing {
            while !source_exists(source)? {
                let left = match timeout {
                    None => RETRY_INTERVAL,
                    Some(t) => match t.checked_sub(started.elapsed()) {
                        Some(left) if !left.is_zero() => left.min(RETRY_INTERVAL),
                        _ => return Err(gave_up(t, &sources[at..])),
                    },
                };
                log::info(&format!("Waiting for {source}"));
                std::thread::sleep(left);
            }
        }
        let bytes = read_source(source)?;
        // Validate here so a bad source is named now, not at deploy time.
        // The parser's message gives a position, never the content.
        serde_json::from_slice::<Value>(&bytes)
            .with_context(|| format!("context source '{name}' ({source}): invalid JSON"))?;
        let dest = cache_path(config, name);
        fsutil::write_atomic(&dest, &bytes, CACHE_FILE_MODE)?;
        log::info(&format!("Fetched context '{name}' from {source}"));
    }
    Ok(())
}

/// The time-out's error, naming each source of `rest` (the one waited for
/// and those after it) that is still missing. Whether a later one exists
/// is asked now; if asking fails, it counts as missing.
fn gave_up(timeout: Duration, rest: &[(&ContextName, &JsonSource)]) -> anyhow::Error {
    let missing: Vec<String> = rest
        .iter()
        .enumerate()
        .filter(|(i, (_, source))| *i == 0 || !source_exists(source).unwrap_or(false))
        .map(|(_, (name, source))| format!("{name} ({source})"))
        .collect();
    anyhow::anyhow!(
        "fetch-context: gave up after {}; still missing: {}",
        humantime::format_duration(timeout),
        missing.join(", ")
    )
}

fn source_exists(source: &JsonSource) -> Result<bool> {
    match source {
        JsonSource::File(path) => Ok(path.exists()),
        JsonSource::S3(url) => s3::exists(url),
        JsonSource::AwsSecretArn(arn) => Ok(secrets::secret_string(arn)?.is_some()),
    }
}

fn read_source(source: &JsonSource) -> Result<Vec<u8>> {
    match source {
        JsonSource::File(path) => std::fs::read(path)
            .with_context(|| format!("cannot read context source {}", path.display())),
        JsonSource::S3(url) => s3::get_bytes(url)?.with_context(|| format!("{url} does not exist")),
        // The value itself never reaches a log or an error message.
        JsonSource::AwsSecretArn(arn) => secrets::secret_string(arn)?
            .map(String::into_bytes)
            .with_context(|| format!("secret {arn} does not exist")),
    }
}

/// The infrastructure context: each configured source's cached JSON.
pub fn infrastructure(config: &ToolConfig) -> Result<BTreeMap<String, Value>> {
    let mut ctx = BTreeMap::new();
    for name in config.config_sources.keys() {
        let path = cache_path(config, name);
        if !path.exists() {
            bail!(
                "context '{name}' is not in the context cache ({} is missing): run `c2 fetch-context`",
                path.display()
            );
        }
        ctx.insert(name.to_string(), fsutil::read_json(&path)?);
    }
    Ok(ctx)
}

/// The full context for a release's templates: release sources, then the
/// infrastructure context (which wins a clash), then `ports` if any.
pub fn for_release(
    infra: &BTreeMap<String, Value>,
    release_dir: &Path,
    release_sources: &BTreeMap<ContextName, PathBuf>,
    ports: Option<&Ports>,
) -> Result<Value> {
    let mut ctx = Map::new();
    for (name, rel_path) in release_sources {
        let path = fsutil::inside(release_dir, rel_path)
            .with_context(|| format!("release.json configSources.{name}"))?;
        ctx.insert(name.to_string(), fsutil::read_json(&path)?);
    }
    for (name, value) in infra {
        ctx.insert(name.clone(), value.clone());
    }
    if let Some(ports) = ports {
        ctx.insert("ports".into(), serde_json::to_value(ports)?);
    }
    Ok(Value::Object(ctx))
}

/// The `ports` context of a proxy-mode deploy. An extra port
/// past 65535 (a very wide dynamicPortRange) is left out, so a template
/// that uses it gets a missing-name warning rather than a bogus number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Ports {
    pub http: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra1: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra2: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra3: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra4: Option<u16>,
}

impl Ports {
    /// `port` is the deploy's port; the extras sit one range width apart.
    pub fn new(port: u16, range: (u16, u16)) -> Ports {
        let width = u32::from(range.1.saturating_sub(range.0));
        let extra = |n: u32| u16::try_from(u32::from(port) + n * width).ok();
        Ports {
            http: port,
            extra1: extra(1),
            extra2: extra(2),
            extra3: extra(3),
            extra4: extra(4),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_ports_are_one_range_width_apart() {
        let p = Ports::new(8003, (8000, 8100));
        assert_eq!(
            (p.http, p.extra1, p.extra2, p.extra3, p.extra4),
            (8003, Some(8103), Some(8203), Some(8303), Some(8403))
        );
    }

    #[test]
    fn extra_ports_past_65535_are_left_out() {
        let p = Ports::new(30000, (20000, 40000));
        assert_eq!((p.extra1, p.extra2), (Some(50000), None));
        let json = serde_json::to_value(p).unwrap();
        assert_eq!(json, serde_json::json!({"http": 30000, "extra1": 50000}));
    }
}
