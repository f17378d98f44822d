//! The config file's types, mirroring `adl/config.adl`.
//!
//! ADL's JSON encoding maps onto serde's defaults: a union is serde's
//! externally tagged enum (`"noproxy"` or `{"proxy": {...}}`), `Maybe<T>` is
//! an `Option` read and written through [`maybe`], `Pair<A,B>` is [`Pair`].
//! Maps are `BTreeMap` because endpoints are ordered by label.
//!
//! Values are typed as they are read: S3 URLs, the remote-state location,
//! context and slave names, ports. A bad value fails the load with its path.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::bail;
use serde::{Deserialize, Serialize};

use crate::aws::s3::S3Url;
use crate::names::ContextName;

/// ADL's `Maybe<T>` on the wire (`"nothing"` or `{"just": value}`), an
/// `Option<T>` in c2: `#[serde(default, with = "maybe")]`.
pub(crate) mod maybe {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    enum Maybe<T> {
        Nothing,
        Just(T),
    }

    pub fn serialize<S: Serializer, T: Serialize>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            None => Maybe::<&T>::Nothing.serialize(s),
            Some(x) => Maybe::Just(x).serialize(s),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> Result<Option<T>, D::Error> {
        Ok(match Maybe::deserialize(d)? {
            Maybe::Nothing => None,
            Maybe::Just(x) => Some(x),
        })
    }
}

/// ADL's `Pair<A,B>`: `{"v1": a, "v2": b}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pair<A, B> {
    pub v1: A,
    pub v2: B,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolConfig {
    #[serde(default = "defaults::deploys_dir")]
    pub deploys_dir: PathBuf,
    #[serde(default = "defaults::context_cache")]
    pub context_cache: PathBuf,
    #[serde(default = "defaults::log_file")]
    pub log_file: PathBuf,
    #[serde(default = "defaults::letsencrypt_prefix_dir")]
    pub letsencrypt_prefix_dir: PathBuf,
    #[serde(default = "defaults::letsencrypt_www_dir")]
    pub letsencrypt_www_dir: PathBuf,
    #[serde(default = "defaults::auto_cert_name")]
    pub auto_cert_name: String,
    #[serde(default)]
    pub auto_cert_contact_email: String,
    pub releases: BlobStoreLocation,
    #[serde(default)]
    pub config_sources: BTreeMap<ContextName, JsonSource>,
    #[serde(default)]
    pub deploy_mode: DeployMode,
    #[serde(default = "defaults::health_check", with = "maybe")]
    pub health_check: Option<HealthCheckConfig>,
    #[serde(default = "defaults::nginx_docker_image")]
    pub nginx_docker_image: String,
    #[serde(default = "defaults::nginx_docker_version")]
    pub nginx_docker_version: String,
    /// [new] `nothing` = detect `docker compose`, else `docker-compose`.
    #[serde(default, with = "maybe")]
    pub compose_command: Option<String>,
    /// [new] What one release may cost: see [`Limits`].
    #[serde(default)]
    pub limits: Limits,
}

/// [new] Bounds on what one release may cost this machine, so a hostile or
/// broken release fails fast with an error naming the limit, rather than
/// filling the disk or rendering for minutes. Each can be raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Limits {
    /// Bytes a release zip may unpack to.
    pub max_unpacked_bytes: u64,
    /// Steps (nodes visited, section items included) one template may take.
    pub max_template_steps: u64,
    /// Bytes one template may render to.
    pub max_rendered_bytes: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        let template = crate::template::Limits::default();
        Limits {
            max_unpacked_bytes: 2 << 30,
            max_template_steps: template.max_steps,
            max_rendered_bytes: template.max_bytes,
        }
    }
}

impl Limits {
    pub fn template(&self) -> crate::template::Limits {
        crate::template::Limits {
            max_steps: self.max_template_steps,
            max_bytes: self.max_rendered_bytes,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BlobStoreLocation {
    S3(S3Url),
    Localdir(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum JsonSource {
    File(PathBuf),
    S3(S3Url),
    AwsSecretArn(String),
}

impl std::fmt::Display for JsonSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JsonSource::File(p) => write!(f, "file {}", p.display()),
            JsonSource::S3(url) => write!(f, "{url}"),
            JsonSource::AwsSecretArn(arn) => write!(f, "secret {arn}"),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DeployMode {
    #[default]
    Noproxy,
    Proxy(ProxyModeConfig),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyModeConfig {
    pub end_points: BTreeMap<String, EndPoint>,
    /// An `s3://bucket/base` URL, or [new] an absolute local directory.
    #[serde(default, with = "maybe")]
    pub remote_state_s3: Option<RemoteLocation>,
    #[serde(default = "defaults::dynamic_port_range")]
    pub dynamic_port_range: Pair<u16, u16>,
    #[serde(default)]
    pub slave_label: SlaveLabel,
    #[serde(default = "defaults::slave_interface_name")]
    pub slave_interface_name: String,
    #[serde(default, with = "maybe")]
    pub nginx_conf_template_path: Option<PathBuf>,
    /// [new] nginx run by c2 on the host, or in docker as the old tool did.
    #[serde(default)]
    pub frontend_proxy: FrontendProxy,
    #[serde(default = "defaults::http_port")]
    pub http_port: u16,
    #[serde(default = "defaults::https_port")]
    pub https_port: u16,
}

/// Where the remote state lives: an S3 prefix or [new] an absolute
/// directory on a shared filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum RemoteLocation {
    S3(S3Url),
    Dir(PathBuf),
}

impl TryFrom<String> for RemoteLocation {
    type Error = anyhow::Error;
    fn try_from(s: String) -> anyhow::Result<RemoteLocation> {
        if s.starts_with("s3://") {
            return Ok(RemoteLocation::S3(S3Url::parse(&s)?));
        }
        let dir = PathBuf::from(&s);
        if !dir.is_absolute() {
            bail!("'{s}' must be an s3:// URL or an absolute directory");
        }
        Ok(RemoteLocation::Dir(dir))
    }
}

impl From<RemoteLocation> for String {
    fn from(l: RemoteLocation) -> String {
        l.to_string()
    }
}

impl std::fmt::Display for RemoteLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RemoteLocation::S3(url) => write!(f, "{url}"),
            RemoteLocation::Dir(dir) => write!(f, "{}", dir.display()),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SlaveLabel {
    #[default]
    Ec2InstanceId,
    Label(crate::names::SlaveLabel),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FrontendProxy {
    #[default]
    Docker,
    Host(HostProxy),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostProxy {
    #[serde(default = "defaults::nginx_binary")]
    pub nginx_binary: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndPoint {
    pub server_names: Vec<String>,
    pub etype: EndPointType,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EndPointType {
    HttpOnly,
    HttpsWithRedirect(SslCertMode),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SslCertMode {
    Generated,
    Explicit(SslCertPaths),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SslCertPaths {
    pub ssl_certificate: PathBuf,
    pub ssl_certificate_key: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheckConfig {
    pub incoming_path: String,
    pub outgoing_path: String,
    #[serde(default, with = "maybe")]
    pub endpoint: Option<String>,
}

mod defaults {
    use super::*;

    pub fn deploys_dir() -> PathBuf {
        "/opt/deploys".into()
    }
    pub fn context_cache() -> PathBuf {
        "/opt/config".into()
    }
    pub fn log_file() -> PathBuf {
        "/opt/var/log/camus2.log".into()
    }
    pub fn letsencrypt_prefix_dir() -> PathBuf {
        "/opt".into()
    }
    pub fn letsencrypt_www_dir() -> PathBuf {
        "/opt/var/www".into()
    }
    pub fn auto_cert_name() -> String {
        "camus2cert".into()
    }
    pub fn health_check() -> Option<HealthCheckConfig> {
        Some(HealthCheckConfig {
            incoming_path: "/health-check".into(),
            outgoing_path: "/".into(),
            endpoint: None,
        })
    }
    pub fn nginx_docker_image() -> String {
        "nginx".into()
    }
    pub fn nginx_docker_version() -> String {
        "1.21.3".into()
    }
    pub fn dynamic_port_range() -> Pair<u16, u16> {
        Pair { v1: 8000, v2: 8100 }
    }
    pub fn slave_interface_name() -> String {
        "eth0".into()
    }
    pub fn nginx_binary() -> String {
        "nginx".into()
    }
    pub fn http_port() -> u16 {
        80
    }
    pub fn https_port() -> u16 {
        443
    }
}

/// The Let's Encrypt DNS-01 helpers' config, from
/// `HX_LETSENCRYPT_CONFIG` or `../etc/letsencrypt-aws.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LetsEncryptConfig {
    pub certbot_path: PathBuf,
    pub aws_hosted_zone_id: String,
    pub basedir: PathBuf,
    pub email: String,
    pub domains: Vec<String>,
    #[serde(default)]
    pub verbosity: Verbosity,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Verbosity {
    #[default]
    Quiet,
    Noisy,
}
