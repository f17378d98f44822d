//! Let's Encrypt DNS-01 helpers: `le-get-certs` runs certbot in
//! manual mode with this executable as its hooks; the hooks create and
//! delete the `_acme-challenge` TXT record in Route53.

use std::path::Path;

use anyhow::{Context, Result};

use crate::aws::route53;
use crate::config::{LetsEncryptConfig, Verbosity};
use crate::{log, shell};

/// The TTL of the challenge record.
const TXT_TTL: i64 = 60;

/// The arguments `le-get-certs` passes to certbot, exactly as the old tool passed them.
pub fn certbot_args(cfg: &LetsEncryptConfig, exe: &Path) -> Vec<String> {
    let exe = shell_word(&exe.display().to_string());
    let dir = |sub: &str| cfg.basedir.join(sub).display().to_string();
    vec![
        "--manual".into(),
        "--config-dir".into(),
        dir("config"),
        "--work-dir".into(),
        dir("work"),
        "--logs-dir".into(),
        dir("logs"),
        "--preferred-challenges".into(),
        "dns".into(),
        "--manual-auth-hook".into(),
        format!("{exe} le-auth-hook"),
        "--manual-cleanup-hook".into(),
        format!("{exe} le-cleanup-hook"),
        "--manual-public-ip-logging-ok".into(),
        "--agree-tos".into(),
        "-n".into(),
        "-m".into(),
        cfg.email.clone(),
        "-d".into(),
        cfg.domains.join(","),
        "certonly".into(),
    ]
}

/// certbot runs hooks through a shell: quote the path only if it needs it.
fn shell_word(s: &str) -> String {
    let plain = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+:@".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

pub fn get_certs(cfg: &LetsEncryptConfig) -> Result<()> {
    let exe = std::env::current_exe().context("cannot find the path of this executable")?;
    let certbot = cfg.certbot_path.display().to_string();
    say(
        cfg,
        &format!("Requesting certificates for {}", cfg.domains.join(",")),
    );
    shell::run_args(
        "certbot",
        &certbot,
        &certbot_args(cfg, &exe),
        Path::new("."),
    )
}

fn certbot_env(name: &str) -> Result<String> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Ok(v),
        _ => {
            anyhow::bail!("{name} is not set: le-auth-hook and le-cleanup-hook are run by certbot")
        }
    }
}

/// The challenge record certbot asks for: its name and quoted value.
fn challenge() -> Result<(String, String)> {
    let domain = certbot_env("CERTBOT_DOMAIN")?;
    let validation = certbot_env("CERTBOT_VALIDATION")?;
    Ok((
        format!("_acme-challenge.{domain}"),
        format!("\"{validation}\""),
    ))
}

/// `le-auth-hook`: publishes the validation and waits until it is in sync.
pub fn auth_hook(cfg: &LetsEncryptConfig) -> Result<()> {
    let (name, value) = challenge()?;
    say(cfg, &format!("Creating TXT {name}"));
    route53::add_txt_value(&cfg.aws_hosted_zone_id, &name, &value, TXT_TTL)
}

/// `le-cleanup-hook`: deletes the record the auth hook created.
pub fn cleanup_hook(cfg: &LetsEncryptConfig) -> Result<()> {
    let (name, value) = challenge()?;
    say(cfg, &format!("Deleting TXT {name}"));
    route53::remove_txt_value(&cfg.aws_hosted_zone_id, &name, &value)
}

/// Progress lines only with `verbosity: noisy`: certbot shows hook output.
fn say(cfg: &LetsEncryptConfig, msg: &str) {
    if cfg.verbosity == Verbosity::Noisy {
        log::info(msg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certbot_gets_exactly_the_arguments_of_the_spec() {
        let cfg = LetsEncryptConfig {
            certbot_path: "/usr/bin/certbot".into(),
            aws_hosted_zone_id: "Z1".into(),
            basedir: "/le".into(),
            email: "ops@example.com".into(),
            domains: vec!["a.example".into(), "*.a.example".into()],
            verbosity: Verbosity::Quiet,
        };
        assert_eq!(
            certbot_args(&cfg, Path::new("/opt/bin/c2")).join(" "),
            "--manual --config-dir /le/config --work-dir /le/work --logs-dir /le/logs \
             --preferred-challenges dns --manual-auth-hook /opt/bin/c2 le-auth-hook \
             --manual-cleanup-hook /opt/bin/c2 le-cleanup-hook --manual-public-ip-logging-ok \
             --agree-tos -n -m ops@example.com -d a.example,*.a.example certonly"
        );
        assert_eq!(
            certbot_args(&cfg, Path::new("/my dir/c2"))[10],
            "'/my dir/c2' le-auth-hook"
        );
    }
}
