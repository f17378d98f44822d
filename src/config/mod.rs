//! The config: its schema and how it is found and parsed.

mod load;
mod schema;

pub use load::{beside_executable, locate, parse_value};
pub use schema::*;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Result};

/// The environment variable that names the tool config (a path or `s3://` URL).
pub const CONFIG_ENV: &str = "CAMUS2_CONFIG";
/// The environment variable that names the Let's Encrypt helpers' config.
pub const LETSENCRYPT_CONFIG_ENV: &str = "HX_LETSENCRYPT_CONFIG";

impl ToolConfig {
    /// Finds and loads the tool config.
    pub fn load(explicit: Option<&Path>) -> Result<ToolConfig> {
        let defaults = beside_executable("camus2", &["json", "yaml"]);
        let location = locate(explicit, CONFIG_ENV, &defaults)?;
        let mut config: ToolConfig = load::load(&location)?;
        if let Err((path, what)) = config.check() {
            bail!("{}: {path}: {what}", location.display_name());
        }
        config.attach_etcd_files();
        Ok(config)
    }

    /// Gives an etcd remote state the TLS files of `deployMode.proxy.etcd`.
    fn attach_etcd_files(&mut self) {
        if let DeployMode::Proxy(proxy) = &mut self.deploy_mode {
            if let Some(RemoteLocation::Etcd(url)) = &mut proxy.remote_state_s3 {
                url.files = proxy.etcd.clone();
            }
        }
    }

    /// The location `text` names (`remote-copy`'s arguments), with this
    /// config's etcd TLS files.
    pub(crate) fn remote_location(&self, text: &str) -> Result<RemoteLocation> {
        let mut location = RemoteLocation::try_from(text.to_string())?;
        if let RemoteLocation::Etcd(url) = &mut location {
            url.files = self.proxy_mode().and_then(|p| p.etcd.clone());
        }
        Ok(location)
    }

    /// What no single field can say: ports against each other, names
    /// against the endpoints. Err is (path in the file, what is wrong).
    fn check(&self) -> std::result::Result<(), (String, String)> {
        let Some(proxy) = self.proxy_mode() else {
            return Ok(());
        };
        let at = |field: &str| format!("deployMode.proxy.{field}");
        for (field, port) in [
            ("httpPort", proxy.http_port),
            ("httpsPort", proxy.https_port),
        ] {
            if port == 0 {
                return Err((at(field), "port 0 is not a port nginx can listen on".into()));
            }
        }
        if proxy.http_port == proxy.https_port {
            return Err((
                at("httpsPort"),
                format!(
                    "{} is also httpPort: nginx needs two ports",
                    proxy.https_port
                ),
            ));
        }
        let Pair { v1: lo, v2: hi } = proxy.dynamic_port_range;
        if lo == 0 || lo >= hi {
            return Err((
                at("dynamicPortRange"),
                format!("[{lo}, {hi}) holds no port: expected 0 < v1 < v2 (deploys get ports v1 to v2-1)"),
            ));
        }
        for (field, port) in [
            ("httpPort", proxy.http_port),
            ("httpsPort", proxy.https_port),
        ] {
            if (lo..hi).contains(&port) {
                return Err((
                    at("dynamicPortRange"),
                    format!("[{lo}, {hi}) includes {field} {port}: a deploy would be given the port nginx listens on"),
                ));
            }
        }
        let mut seen: BTreeMap<String, &str> = BTreeMap::new();
        for (label, ep) in &proxy.end_points {
            if ep.server_names.is_empty() {
                return Err((
                    at(&format!("endPoints.{label}.serverNames")),
                    "an endpoint needs at least one server name".into(),
                ));
            }
            for (i, name) in ep.server_names.iter().enumerate() {
                // nginx compares server names without case.
                if let Some(other) = seen.insert(name.to_ascii_lowercase(), label) {
                    return Err((
                        at(&format!("endPoints.{label}.serverNames.{i}")),
                        format!("{name} is already a server name of endpoint {other}: nginx would route it to one of them only"),
                    ));
                }
            }
        }
        if let Some(Some(endpoint)) = self.health_check.as_ref().map(|hc| &hc.endpoint) {
            if !proxy.end_points.contains_key(endpoint) {
                let known: Vec<&str> = proxy.end_points.keys().map(String::as_str).collect();
                return Err((
                    "healthCheck.just.endpoint.just".into(),
                    format!(
                        "no endpoint called {endpoint} (endpoints: {})",
                        known.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Whether the infrastructure context holds a secret (an `awsSecretArn`
    /// source): then no file rendered from it may be readable by others.
    pub(crate) fn holds_secret(&self) -> bool {
        self.config_sources
            .values()
            .any(|source| matches!(source, JsonSource::AwsSecretArn(_)))
    }

    /// What lives where under deploysDir.
    pub(crate) fn layout(&self) -> crate::layout::Layout {
        crate::layout::Layout::new(&self.deploys_dir)
    }

    pub fn proxy_mode(&self) -> Option<&ProxyModeConfig> {
        match &self.deploy_mode {
            DeployMode::Noproxy => None,
            DeployMode::Proxy(p) => Some(p),
        }
    }
}

impl LetsEncryptConfig {
    pub fn load() -> Result<LetsEncryptConfig> {
        let defaults = beside_executable("letsencrypt-aws", &["json"]);
        let location = locate(None, LETSENCRYPT_CONFIG_ENV, &defaults)?;
        load::load(&location)
    }
}
