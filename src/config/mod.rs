//! The config: its schema and how it is found and parsed.

mod load;
mod schema;

pub use load::{beside_executable, locate, parse_value};
pub use schema::*;

use std::path::Path;

use anyhow::Result;

/// The environment variable that names the tool config (a path or `s3://` URL).
pub const CONFIG_ENV: &str = "CAMUS2_CONFIG";
/// The environment variable that names the Let's Encrypt helpers' config.
pub const LETSENCRYPT_CONFIG_ENV: &str = "HX_LETSENCRYPT_CONFIG";

impl ToolConfig {
    /// Finds and loads the tool config.
    pub fn load(explicit: Option<&Path>) -> Result<ToolConfig> {
        let defaults = beside_executable("camus2", &["json", "yaml"]);
        let location = locate(explicit, CONFIG_ENV, &defaults)?;
        load::load(&location)
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
