//! `generate-ssl-certificate`: a Let's Encrypt certificate for
//! every endpoint with `httpsWithRedirect: generated`, by HTTP-01 through
//! the frontend proxy's webroot.

use anyhow::{bail, Context, Result};

use crate::config::{EndPointType, ProxyModeConfig, SslCertMode, ToolConfig};
use crate::layout::Layout;
use crate::{log, shell};

use super::frontend::Frontend;

/// The server names that need the generated certificate, in label order.
pub(crate) fn server_names(proxy: &ProxyModeConfig) -> Vec<String> {
    proxy
        .end_points
        .values()
        .filter(|ep| {
            matches!(
                ep.etype,
                EndPointType::HttpsWithRedirect(SslCertMode::Generated)
            )
        })
        .flat_map(|ep| ep.server_names.iter().map(ToString::to_string))
        .collect()
}

/// Where certbot keeps its files and answers the HTTP-01 challenge.
pub(crate) struct CertbotPaths {
    pub www: String,
    pub letsencrypt: String,
    pub logs: String,
    pub work: String,
    pub challenge: String,
}

impl CertbotPaths {
    pub(crate) fn new(config: &ToolConfig) -> CertbotPaths {
        let prefix = &config.letsencrypt_prefix_dir;
        let www = config.letsencrypt_www_dir.display().to_string();
        CertbotPaths {
            challenge: format!("{www}/.well-known/acme-challenge"),
            letsencrypt: prefix.join("etc/letsencrypt").display().to_string(),
            logs: prefix.join("var/log/letsencrypt").display().to_string(),
            work: prefix.join("var/lib/letsencrypt").display().to_string(),
            www,
        }
    }

    /// `certonly` by webroot, the arguments every driver passes.
    pub(crate) fn certonly_args(
        &self,
        config: &ToolConfig,
        deploy_hook: Option<&str>,
    ) -> Vec<String> {
        let mut args: Vec<String> = [
            "certonly",
            "--cert-name",
            &config.auto_cert_name,
            "--preferred-challenge",
            "http-01",
            "--webroot",
            "--webroot-path",
            &self.www,
            "-m",
            &config.auto_cert_contact_email,
        ]
        .map(String::from)
        .into();
        if let Some(hook) = deploy_hook {
            args.extend(["--deploy-hook".into(), hook.into()]);
        }
        args.extend(["--non-interactive", "--agree-tos", "--debug"].map(String::from));
        args
    }

    pub(crate) fn domain_args(&self, names: &[String]) -> Vec<String> {
        names
            .iter()
            .flat_map(|n| ["-d".into(), n.clone()])
            .collect()
    }
}

/// Runs certbot for the generated-certificate endpoints. The caller holds
/// the deploys lock and restarts the proxy before and after.
pub(crate) fn request(
    config: &ToolConfig,
    proxy: &ProxyModeConfig,
    frontend: &dyn Frontend,
    layout: &Layout,
) -> Result<()> {
    let names = server_names(proxy);
    if config.auto_cert_contact_email.is_empty() {
        bail!("Need autoCertContactEmail specified in the config");
    }
    if names.is_empty() {
        log::info("No servers requiring a certificate");
        return Ok(());
    }
    let www = &config.letsencrypt_www_dir;
    for dir in [
        www.join(".well-known/acme-challenge"),
        config.letsencrypt_prefix_dir.join("etc/letsencrypt"),
        config.letsencrypt_prefix_dir.join("var/log/letsencrypt"),
    ] {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let dir = layout.proxy_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let (program, args) = frontend.certbot_command(&names);
    log::scope(
        &format!("Requesting a certificate for {}", names.join(", ")),
        || shell::run_args("certbot", &program, &args, &dir),
    )
}
