//! The config file's types (SPEC §2.2 and §9), mirroring `adl/config.adl`.
//!
//! ADL's JSON encoding maps onto serde's defaults: a union is serde's
//! externally tagged enum (`"noproxy"` or `{"proxy": {...}}`), `Maybe<T>` is
//! [`Maybe`], `Pair<A,B>` is [`Pair`]. Maps are `BTreeMap` because the spec
//! orders endpoints "in label order".

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// ADL's `Maybe<T>`: `"nothing"` or `{"just": value}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Maybe<T> {
    #[default]
    Nothing,
    Just(T),
}

impl<T> Maybe<T> {
    pub fn as_option(&self) -> Option<&T> {
        match self {
            Maybe::Nothing => None,
            Maybe::Just(v) => Some(v),
        }
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
    pub config_sources: BTreeMap<String, JsonSource>,
    #[serde(default)]
    pub deploy_mode: DeployMode,
    #[serde(default = "defaults::health_check")]
    pub health_check: Maybe<HealthCheckConfig>,
    #[serde(default = "defaults::nginx_docker_image")]
    pub nginx_docker_image: String,
    #[serde(default = "defaults::nginx_docker_version")]
    pub nginx_docker_version: String,
    /// [new] §9: `nothing` = detect `docker compose`, else `docker-compose`.
    #[serde(default)]
    pub compose_command: Maybe<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BlobStoreLocation {
    S3(String),
    Localdir(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum JsonSource {
    File(PathBuf),
    S3(String),
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
    /// An `s3://bucket/base` URL, or [new] §9 an absolute local directory.
    #[serde(default)]
    pub remote_state_s3: Maybe<String>,
    #[serde(default = "defaults::dynamic_port_range")]
    pub dynamic_port_range: Pair<u32, u32>,
    #[serde(default)]
    pub slave_label: SlaveLabel,
    #[serde(default = "defaults::slave_interface_name")]
    pub slave_interface_name: String,
    #[serde(default)]
    pub nginx_conf_template_path: Maybe<PathBuf>,
    /// [new] §9.
    #[serde(default)]
    pub frontend_proxy: FrontendProxy,
    #[serde(default = "defaults::http_port")]
    pub http_port: u32,
    #[serde(default = "defaults::https_port")]
    pub https_port: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SlaveLabel {
    #[default]
    Ec2InstanceId,
    Label(String),
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
    #[serde(default)]
    pub endpoint: Maybe<String>,
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
    pub fn health_check() -> Maybe<HealthCheckConfig> {
        Maybe::Just(HealthCheckConfig {
            incoming_path: "/health-check".into(),
            outgoing_path: "/".into(),
            endpoint: Maybe::Nothing,
        })
    }
    pub fn nginx_docker_image() -> String {
        "nginx".into()
    }
    pub fn nginx_docker_version() -> String {
        "1.21.3".into()
    }
    pub fn dynamic_port_range() -> Pair<u32, u32> {
        Pair { v1: 8000, v2: 8100 }
    }
    pub fn slave_interface_name() -> String {
        "eth0".into()
    }
    pub fn nginx_binary() -> String {
        "nginx".into()
    }
    pub fn http_port() -> u32 {
        80
    }
    pub fn https_port() -> u32 {
        443
    }
}

/// The Let's Encrypt DNS-01 helpers' config (SPEC §8), from
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
