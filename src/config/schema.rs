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
use std::path::{Path, PathBuf};

use anyhow::bail;
use serde::{Deserialize, Serialize};

use crate::aws::s3::S3Url;
use crate::names::ContextName;

/// ADL's `Maybe<T>` on the wire (`"nothing"` or `{"just": value}`), an
/// `Option<T>` in c2: `#[serde(default, with = "maybe")]`.
pub(crate) mod maybe {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// The wire form; also read by [`super::plain_or_maybe`].
    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub(crate) enum Maybe<T> {
        Nothing,
        Just(T),
    }

    impl<T> Maybe<T> {
        pub(crate) fn into_option(self) -> Option<T> {
            match self {
                Maybe::Nothing => None,
                Maybe::Just(x) => Some(x),
            }
        }
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
        Ok(Maybe::deserialize(d)?.into_option())
    }
}

/// A [new] optional field that accepts both the plain form (absent, `null`
/// or the value) and ADL's `"nothing"` / `{"just": value}`; written plain.
/// `#[serde(default, with = "plain_or_maybe")]`.
pub(crate) mod plain_or_maybe {
    use serde::de::DeserializeOwned;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer, T: Serialize>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
        v.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: DeserializeOwned>(
        d: D,
    ) -> Result<Option<T>, D::Error> {
        // An untagged enum would hide the value's own error ("invalid URL
        // path") behind "did not match any variant": the value is read
        // once and decoded by its shape instead.
        let value = serde_json::Value::deserialize(d)?;
        let adl = match &value {
            serde_json::Value::String(s) => s == "nothing",
            serde_json::Value::Object(m) => m.len() == 1 && m.contains_key("just"),
            _ => false,
        };
        if adl {
            serde_json::from_value::<super::maybe::Maybe<T>>(value)
                .map(super::maybe::Maybe::into_option)
                .map_err(serde::de::Error::custom)
        } else {
            serde_json::from_value::<Option<T>>(value).map_err(serde::de::Error::custom)
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
    pub letsencrypt_prefix_dir: SafePath,
    #[serde(default = "defaults::letsencrypt_www_dir")]
    pub letsencrypt_www_dir: SafePath,
    #[serde(default = "defaults::auto_cert_name")]
    pub auto_cert_name: CertName,
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
    /// [new] `c2 serve`: see [`ApiConfig`].
    #[serde(default)]
    pub api: ApiConfig,
}

/// [new] The HTTP API of `c2 serve`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ApiConfig {
    /// Where it listens; `c2 serve --listen` overrides it.
    pub listen: std::net::SocketAddr,
    /// The API tokens' names, roles and hashes (`c2 api-token`).
    pub tokens_file: PathBuf,
    /// HTTPS with this certificate; plain HTTP without.
    #[serde(with = "plain_or_maybe")]
    pub tls: Option<TlsConfig>,
}

impl Default for ApiConfig {
    fn default() -> ApiConfig {
        ApiConfig {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 8470)),
            tokens_file: PathBuf::from("/opt/etc/c2-tokens.json"),
            tls: None,
        }
    }
}

/// [new] A certificate chain and its key, PEM files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
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

// One per process, read once: its size does not matter.
#[allow(clippy::large_enum_variant)]
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
    /// An `s3://bucket/base` URL, or [new] an absolute local directory,
    /// or [new] an `etcd://` URL.
    #[serde(default, with = "maybe")]
    pub remote_state_s3: Option<RemoteLocation>,
    /// [new] TLS files for an `etcds://` remote state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd: Option<EtcdFiles>,
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
    /// [new] The health gate of deploys whose release.json has none
    /// (boxed: it would make every `DeployMode` much larger).
    #[serde(
        default,
        with = "plain_or_maybe",
        skip_serializing_if = "Option::is_none"
    )]
    pub deploy_health_check: Option<Box<DeployHealthCheck>>,
}

/// [new] A deploy is healthy when `GET <path>` on its HTTP port answers
/// 2xx or 3xx; a new one has `timeout_seconds` to become so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeployHealthCheck {
    pub path: UrlPath,
    #[serde(default = "defaults::health_timeout_seconds")]
    pub timeout_seconds: TimeoutSeconds,
}

/// A whole number of seconds, at least 1 and at most
/// [`TimeoutSeconds::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "u64")]
pub struct TimeoutSeconds(u64);

impl TimeoutSeconds {
    /// An hour: a deploy that needs longer to answer is stuck, and a
    /// bound here keeps every deadline computed from it representable.
    pub const MAX: u64 = 3600;

    pub fn get(self) -> u64 {
        self.0
    }
}

impl TryFrom<i64> for TimeoutSeconds {
    type Error = anyhow::Error;
    fn try_from(n: i64) -> anyhow::Result<TimeoutSeconds> {
        match u64::try_from(n) {
            Ok(n) if (1..=TimeoutSeconds::MAX).contains(&n) => Ok(TimeoutSeconds(n)),
            _ => bail!(
                "invalid timeoutSeconds {n}: expected a whole number of seconds from 1 to {} (an hour)",
                TimeoutSeconds::MAX
            ),
        }
    }
}

impl From<TimeoutSeconds> for u64 {
    fn from(t: TimeoutSeconds) -> u64 {
        t.0
    }
}

/// Where the remote state lives: an S3 prefix, [new] an absolute
/// directory on a shared filesystem, or [new] a prefix in etcd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum RemoteLocation {
    S3(S3Url),
    Dir(PathBuf),
    Etcd(EtcdUrl),
}

/// [new] `etcd://host1:2379,host2:2379/<prefix>` (`etcds://` for TLS).
/// Credentials never appear in it: they come from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdUrl {
    pub tls: bool,
    /// `host:port`, at least one.
    pub endpoints: Vec<String>,
    /// Keys are `<prefix>/master/state.json` and so on; no leading or
    /// trailing `/`.
    pub prefix: String,
    /// The proxy config's `etcd` files, attached when the config is read.
    pub files: Option<EtcdFiles>,
}

impl EtcdUrl {
    pub fn parse(s: &str) -> anyhow::Result<EtcdUrl> {
        let (tls, rest) = match (s.strip_prefix("etcd://"), s.strip_prefix("etcds://")) {
            (Some(rest), _) => (false, rest),
            (_, Some(rest)) => (true, rest),
            _ => bail!("'{s}' is not an etcd:// or etcds:// URL"),
        };
        let (hosts, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if hosts.contains('@') {
            // Not quoted back: what precedes the @ is a password.
            bail!(
                "an etcd URL holds no credentials (user:password@): they go in C2_ETCD_USER and C2_ETCD_PASSWORD"
            );
        }
        let mut endpoints = Vec::new();
        for host in hosts.split(',') {
            let ok = host.rsplit_once(':').is_some_and(|(name, port)| {
                !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || ".-_[]:".contains(c))
                    && port.parse::<u16>().is_ok_and(|p| p != 0)
            });
            if !ok {
                bail!("'{s}': '{host}' is not host:port (etcd://host1:2379,host2:2379/prefix)");
            }
            endpoints.push(host.to_string());
        }
        let prefix = prefix.trim_end_matches('/');
        if prefix.split('/').any(|part| part == "." || part == "..")
            || prefix.starts_with('/')
            || prefix.contains("//")
            || prefix.chars().any(|c| c.is_control())
        {
            bail!("'{s}': the prefix must be a plain path such as camus2/prod");
        }
        Ok(EtcdUrl {
            tls,
            endpoints,
            prefix: prefix.to_string(),
            files: None,
        })
    }
}

impl std::fmt::Display for EtcdUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "etcds" } else { "etcd" };
        write!(f, "{scheme}://{}/{}", self.endpoints.join(","), self.prefix)
    }
}

/// [new] `deployMode.proxy.etcd`: TLS files for `etcds://` (all optional:
/// the CA to trust, and a client certificate with its key).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EtcdFiles {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

impl TryFrom<String> for RemoteLocation {
    type Error = anyhow::Error;
    fn try_from(s: String) -> anyhow::Result<RemoteLocation> {
        if s.starts_with("s3://") {
            return Ok(RemoteLocation::S3(S3Url::parse(&s)?));
        }
        if s.starts_with("etcd://") || s.starts_with("etcds://") {
            return Ok(RemoteLocation::Etcd(EtcdUrl::parse(&s)?));
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
            RemoteLocation::Etcd(url) => write!(f, "{url}"),
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
    pub server_names: Vec<ServerName>,
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
    pub ssl_certificate: SafePath,
    pub ssl_certificate_key: SafePath,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheckConfig {
    pub incoming_path: UrlPath,
    pub outgoing_path: UrlPath,
    #[serde(default, with = "maybe")]
    pub endpoint: Option<String>,
}

/// Values that c2 writes into nginx.conf are typed so that none can end a
/// directive or open a block: a value that could is refused when the
/// config is read, naming its path. nginx ends an argument at whitespace
/// or `;`, opens and closes blocks with `{` `}`, quotes with `"` `'`,
/// comments with `#`, escapes with `\` and expands `$` variables.
fn nginx_unsafe(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || matches!(c, ';' | '{' | '}' | '"' | '\'' | '#' | '$' | '\\')
}

const NGINX_UNSAFE: &str = "whitespace, control characters, ; { } \" ' # $ \\";

/// Implements the string conversions of a checked string newtype.
macro_rules! checked_string {
    ($name:ident) => {
        impl TryFrom<String> for $name {
            type Error = anyhow::Error;
            fn try_from(s: String) -> anyhow::Result<$name> {
                $name::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }
    };
}

/// An nginx `server_name`: a host name (letters, digits, `-`, `_`, dot
/// separated; an IPv4 address is one) or one of nginx's wildcard forms
/// `*.example.com`, `.example.com`, `www.example.*`. Regular-expression
/// names (`~...`), nginx's placeholder `_` and IPv6 addresses are refused.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ServerName(String);
checked_string!(ServerName);

impl ServerName {
    pub fn parse(s: &str) -> anyhow::Result<ServerName> {
        if s.starts_with('~') {
            bail!("invalid server name {s:?}: regular-expression server names are not supported");
        }
        if s == "_" {
            bail!("invalid server name \"_\": it is nginx's placeholder that matches no host (c2's default server already catches unknown hosts)");
        }
        let host = if let Some(rest) = s.strip_prefix("*.") {
            rest
        } else if let Some(rest) = s.strip_prefix('.') {
            rest
        } else {
            s.strip_suffix(".*").unwrap_or(s)
        };
        let label_ok = |l: &str| {
            (1..=63).contains(&l.len())
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        if s.len() > 253 || !host.split('.').all(label_ok) {
            bail!("invalid server name {s:?}: expected a host name such as www.example.com, or a wildcard *.example.com, .example.com or www.example.*");
        }
        Ok(ServerName(s.to_string()))
    }
}

/// A URL path for nginx's `location` and `proxy_pass`: starts with `/`,
/// none of [`nginx_unsafe`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UrlPath(String);
checked_string!(UrlPath);

impl UrlPath {
    pub fn parse(s: &str) -> anyhow::Result<UrlPath> {
        if !s.starts_with('/') || s.contains(nginx_unsafe) {
            bail!("invalid URL path {s:?}: expected a path such as /health-check, starting with / and without {NGINX_UNSAFE}");
        }
        Ok(UrlPath(s.to_string()))
    }
}

/// The name of the generated certificate: one path component (certbot's
/// `--cert-name`, a directory under `etc/letsencrypt/live`), none of
/// [`nginx_unsafe`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CertName(String);
checked_string!(CertName);

impl CertName {
    pub fn parse(s: &str) -> anyhow::Result<CertName> {
        if s.is_empty() || s == "." || s == ".." || s.contains('/') || s.contains(nginx_unsafe) {
            bail!("invalid certificate name {s:?}: expected one path component such as camus2cert, without / {NGINX_UNSAFE}");
        }
        Ok(CertName(s.to_string()))
    }
}

/// A file or directory path that nginx.conf may name: not empty, none of
/// [`nginx_unsafe`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SafePath(PathBuf);

impl SafePath {
    pub fn parse(s: &str) -> anyhow::Result<SafePath> {
        if s.is_empty() || s.contains(nginx_unsafe) {
            bail!("invalid path {s:?}: expected a path without {NGINX_UNSAFE}");
        }
        Ok(SafePath(PathBuf::from(s)))
    }

    /// `self/<name>`: both parts are checked, so the result is too.
    pub fn join_cert_name(&self, name: &CertName) -> SafePath {
        SafePath(self.0.join(&name.0))
    }

    /// `self/<tail>` for c2's own constant suffixes (`etc/letsencrypt/live`,
    /// `fullchain.pem`): `'static` keeps input out.
    pub fn join_const(&self, tail: &'static str) -> SafePath {
        SafePath(self.0.join(tail))
    }
}

impl TryFrom<String> for SafePath {
    type Error = anyhow::Error;
    fn try_from(s: String) -> anyhow::Result<SafePath> {
        SafePath::parse(&s)
    }
}

impl From<SafePath> for String {
    fn from(p: SafePath) -> String {
        p.0.display().to_string()
    }
}

impl std::ops::Deref for SafePath {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for SafePath {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

mod defaults {
    use super::*;

    pub fn health_timeout_seconds() -> TimeoutSeconds {
        TimeoutSeconds(60)
    }

    pub fn deploys_dir() -> PathBuf {
        "/opt/deploys".into()
    }
    pub fn context_cache() -> PathBuf {
        "/opt/config".into()
    }
    pub fn log_file() -> PathBuf {
        "/opt/var/log/camus2.log".into()
    }
    pub fn letsencrypt_prefix_dir() -> SafePath {
        SafePath(PathBuf::from("/opt"))
    }
    pub fn letsencrypt_www_dir() -> SafePath {
        SafePath(PathBuf::from("/opt/var/www"))
    }
    pub fn auto_cert_name() -> CertName {
        CertName("camus2cert".into())
    }
    pub fn health_check() -> Option<HealthCheckConfig> {
        Some(HealthCheckConfig {
            incoming_path: UrlPath("/health-check".into()),
            outgoing_path: UrlPath("/".into()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_urls_name_endpoints_and_a_plain_prefix_never_credentials() {
        let url = EtcdUrl::parse("etcds://a.internal:2379,10.0.0.2:2379,[::1]:2379/camus2/prod/")
            .unwrap();
        assert!(url.tls);
        assert_eq!(
            url.endpoints,
            ["a.internal:2379", "10.0.0.2:2379", "[::1]:2379"]
        );
        assert_eq!(url.prefix, "camus2/prod");
        assert_eq!(
            url.to_string(),
            "etcds://a.internal:2379,10.0.0.2:2379,[::1]:2379/camus2/prod"
        );
        assert_eq!(EtcdUrl::parse("etcd://h:1").unwrap().prefix, "");
        for (bad, why) in [
            ("etcd://user:pw@h:2379/p", "C2_ETCD_USER"),
            ("etcd://h/p", "is not host:port"),
            ("etcd://h:0/p", "is not host:port"),
            ("etcd://h:99999/p", "is not host:port"),
            ("etcd://h:2379,/p", "is not host:port"),
            ("etcd:///p", "is not host:port"),
            ("etcd://h:2379/a/../b", "plain path"),
            ("etcd://h:2379//a", "plain path"),
            ("etcd://h:2379/a\nb", "plain path"),
            ("http://h:2379/p", "not an etcd:// or etcds:// URL"),
        ] {
            let error = format!("{:#}", EtcdUrl::parse(bad).unwrap_err());
            assert!(error.contains(why), "{bad}: {error}");
        }
        assert!(matches!(
            RemoteLocation::try_from("etcd://h:2379/p".to_string()),
            Ok(RemoteLocation::Etcd(_))
        ));
    }

    #[test]
    fn server_names_are_host_names_or_nginx_wildcards() {
        for good in [
            "example.com",
            "*.example.com",
            ".example.com",
            "www.example.*",
            "localhost",
            "my_host.internal",
            "10.0.0.1",
            "A-1.Example",
        ] {
            assert!(ServerName::parse(good).is_ok(), "{good:?}");
        }
        let long_label = format!("{}.example", "a".repeat(64));
        for bad in [
            "",
            "_",
            "~^www\\.example$",
            "*",
            "*.example.*",
            "*example.com",
            "w*.example.com",
            "www.*.com",
            "a..b",
            "a.",
            "-a.example",
            "a-.example",
            "a.example:80",
            "[::1]",
            "a b",
            "a;b",
            "a\nb",
            long_label.as_str(),
        ] {
            assert!(ServerName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn url_paths_start_with_a_slash_and_cannot_leave_their_directive() {
        for good in ["/", "/health-check", "/a/b.html", "/status?full=1", "/%20"] {
            assert!(UrlPath::parse(good).is_ok(), "{good:?}");
        }
        for bad in [
            "", "hc", "/a b", "/a;", "/a{", "/a}", "/a\"", "/a'", "/a#", "/$uri", "/a\\", "/a\n",
            "/a\t", "/a\0",
        ] {
            assert!(UrlPath::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn paths_and_the_certificate_name_cannot_leave_their_directive() {
        assert!(SafePath::parse("/etc/ssl/my-cert_1.pem").is_ok());
        for bad in [
            "", "/a b", "/a;b", "/a{", "/a}", "/a\"", "/a'", "/a#", "/$x", "/a\n",
        ] {
            assert!(SafePath::parse(bad).is_err(), "{bad:?}");
            assert!(
                CertName::parse(bad.trim_start_matches('/')).is_err(),
                "{bad:?}"
            );
        }
        assert!(CertName::parse("camus2cert").is_ok());
        for bad in [".", "..", "a/b", "/a"] {
            assert!(CertName::parse(bad).is_err(), "{bad:?}");
        }
        let dir = SafePath::parse("/opt")
            .unwrap()
            .join_const("etc/letsencrypt/live")
            .join_cert_name(&CertName::parse("c").unwrap());
        assert_eq!(String::from(dir), "/opt/etc/letsencrypt/live/c");
    }

    #[test]
    fn checked_values_read_and_write_as_strings() {
        let name: ServerName = serde_json::from_str("\"*.example.com\"").unwrap();
        assert_eq!(serde_json::to_string(&name).unwrap(), "\"*.example.com\"");
        let path: SafePath = serde_json::from_str("\"/c.pem\"").unwrap();
        assert_eq!(serde_json::to_string(&path).unwrap(), "\"/c.pem\"");
        assert!(serde_json::from_str::<UrlPath>("\"/a;b\"").is_err());
    }

    #[test]
    fn a_deploy_health_check_is_plain_or_adl_optional() {
        #[derive(Deserialize)]
        struct T {
            #[serde(default, with = "plain_or_maybe")]
            c: Option<DeployHealthCheck>,
        }
        let read = |v: serde_json::Value| serde_json::from_value::<T>(v).map(|t| t.c);
        let up = |secs| DeployHealthCheck {
            path: UrlPath("/up".into()),
            timeout_seconds: TimeoutSeconds(secs),
        };
        assert_eq!(read(serde_json::json!({})).unwrap(), None);
        assert_eq!(read(serde_json::json!({"c": null})).unwrap(), None);
        assert_eq!(read(serde_json::json!({"c": "nothing"})).unwrap(), None);
        assert_eq!(
            read(serde_json::json!({"c": {"path": "/up"}})).unwrap(),
            Some(up(60))
        );
        assert_eq!(
            read(serde_json::json!({"c": {"just": {"path": "/up", "timeoutSeconds": 3}}})).unwrap(),
            Some(up(3))
        );
        assert_eq!(
            read(serde_json::json!({"c": {"path": "/up", "timeoutSeconds": 3600}})).unwrap(),
            Some(up(3600))
        );
        for bad in [
            serde_json::json!({"c": {"path": "up"}}),
            serde_json::json!({"c": {"path": "/up", "timeoutSeconds": 0}}),
            serde_json::json!({"c": {"path": "/up", "timeoutSeconds": -1}}),
            serde_json::json!({"c": {"path": "/up", "timeoutSeconds": 1.5}}),
            serde_json::json!({"c": {"path": "/up", "timeoutSeconds": 3601}}),
            serde_json::json!({"c": {"path": "/up", "timeoutSeconds": i64::MAX}}),
            serde_json::json!({"c": {"path": "/up", "timeoutSeconds": u64::MAX}}),
            serde_json::json!({"c": "just"}),
        ] {
            assert!(read(bad.clone()).is_err(), "{bad}");
        }
    }
}
