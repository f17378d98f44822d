//! `generate-ssl-certificate` (SPEC §6.5): a Let's Encrypt certificate for
//! every endpoint with `httpsWithRedirect: generated`, by HTTP-01 through
//! the frontend proxy's webroot.

use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::config::{EndPointType, FrontendProxy, ProxyModeConfig, SslCertMode, ToolConfig};
use crate::{log, shell};

use super::state;

/// The server names that need the generated certificate, in label order.
pub fn server_names(proxy: &ProxyModeConfig) -> Vec<String> {
    proxy
        .end_points
        .values()
        .filter(|ep| {
            matches!(
                ep.etype,
                EndPointType::HttpsWithRedirect(SslCertMode::Generated)
            )
        })
        .flat_map(|ep| ep.server_names.iter().cloned())
        .collect()
}

/// The certbot command: in docker exactly as the old tool ran it, or
/// [new] the host's `certbot` in webroot mode for the host driver.
pub fn certbot_command(
    config: &ToolConfig,
    proxy: &ProxyModeConfig,
    names: &[String],
) -> (String, Vec<String>) {
    let prefix = &config.letsencrypt_prefix_dir;
    let www = config.letsencrypt_www_dir.display().to_string();
    let le = prefix.join("etc/letsencrypt").display().to_string();
    let logs = prefix.join("var/log/letsencrypt").display().to_string();
    let challenge = format!("{www}/.well-known/acme-challenge");
    let s = |x: &str| x.to_string();
    let common = |deploy_hook: Option<&str>| -> Vec<String> {
        let mut args = vec![
            s("certonly"),
            s("--cert-name"),
            config.auto_cert_name.clone(),
            s("--preferred-challenge"),
            s("http-01"),
            s("--webroot"),
            s("--webroot-path"),
            www.clone(),
            s("-m"),
            config.auto_cert_contact_email.clone(),
        ];
        if let Some(hook) = deploy_hook {
            args.extend([s("--deploy-hook"), s(hook)]);
        }
        args.extend([s("--non-interactive"), s("--agree-tos"), s("--debug")]);
        args
    };
    let domains = names.iter().flat_map(|n| [s("-d"), n.clone()]);
    match proxy.frontend_proxy {
        FrontendProxy::Docker => {
            let mut args = vec![
                s("run"),
                s("--rm"),
                s("--name"),
                config.auto_cert_name.clone(),
                s("-v"),
                format!("{le}:/etc/letsencrypt"),
                s("-v"),
                format!("{logs}:/var/log/letsencrypt"),
                s("-v"),
                format!("{challenge}:{challenge}"),
                s("certbot/certbot"),
            ];
            // The nginx container's workers must read what certbot's
            // container wrote as root.
            args.extend(common(Some("chmod -R ag+rX /etc/letsencrypt")));
            args.extend(domains);
            (s("docker"), args)
        }
        FrontendProxy::Host(_) => {
            // No chmod: the host's nginx master reads the keys as root, and
            // private keys stay private.
            let mut args = common(None);
            args.extend([
                s("--config-dir"),
                le.clone(),
                s("--logs-dir"),
                logs,
                s("--work-dir"),
                prefix.join("var/lib/letsencrypt").display().to_string(),
            ]);
            args.extend(domains);
            (s("certbot"), args)
        }
    }
}

/// Runs certbot for the generated-certificate endpoints. The caller holds
/// the deploys lock and restarts the proxy before and after.
pub fn request(config: &ToolConfig, proxy: &ProxyModeConfig) -> Result<()> {
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
    let dir = state::proxy_dir(&config.deploys_dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let (program, args) = certbot_command(config, proxy, &names);
    log::scope(
        &format!("Requesting a certificate for {}", names.join(", ")),
        || shell::run_args("certbot", &program, &args, Path::new(&dir)),
    )
}
