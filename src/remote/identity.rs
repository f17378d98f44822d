//! Who this slave is: its label, IPv4 address and host name.

use anyhow::{Context, Result};

use crate::config::{ProxyModeConfig, SlaveLabel};

/// `{"label": x}`, or the EC2 instance id from the instance metadata
/// service (IMDSv2; `AWS_EC2_METADATA_SERVICE_ENDPOINT` is honoured).
pub fn label(proxy: &ProxyModeConfig) -> Result<String> {
    match &proxy.slave_label {
        SlaveLabel::Label(l) => Ok(l.to_string()),
        SlaveLabel::Ec2InstanceId => imds::instance_id().context(
            "cannot read the EC2 instance id from the instance metadata service (slaveLabel is ec2InstanceId)",
        ),
    }
}

/// A minimal IMDSv2 client: two small HTTP requests (a session token, then
/// the instance id) through [`crate::http`]. Written out rather than taken
/// from aws-config, whose client insists on a token TTL header that IMDS
/// emulators do not send.
mod imds {
    use std::net::ToSocketAddrs;
    use std::time::Duration;

    use anyhow::{bail, Context, Result};

    const DEFAULT_ENDPOINT: &str = "http://169.254.169.254";
    const TIMEOUT: Duration = Duration::from_secs(2);

    pub fn instance_id() -> Result<String> {
        let endpoint = std::env::var("AWS_EC2_METADATA_SERVICE_ENDPOINT")
            .ok()
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        let authority = endpoint
            .strip_prefix("http://")
            .with_context(|| format!("unsupported metadata endpoint {endpoint} (http:// only)"))?
            .trim_end_matches('/');
        let token = request(
            authority,
            "PUT",
            "/latest/api/token",
            "X-aws-ec2-metadata-token-ttl-seconds: 21600",
        )?;
        let id = request(
            authority,
            "GET",
            "/latest/meta-data/instance-id",
            &format!("X-aws-ec2-metadata-token: {}", token.trim()),
        )?;
        let id = id.trim().to_string();
        if id.is_empty() {
            bail!("the metadata service returned an empty instance id");
        }
        Ok(id)
    }

    fn request(authority: &str, method: &str, path: &str, header: &str) -> Result<String> {
        let addr = authority
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve {authority}"))?
            .next()
            .with_context(|| format!("cannot resolve {authority}"))?;
        let answer = crate::http::request(addr, method, path, &[header], TIMEOUT)
            .with_context(|| format!("cannot reach the metadata service at {authority}"))?;
        if answer.code != 200 {
            bail!("{method} {path} answered HTTP {}", answer.code);
        }
        Ok(String::from_utf8_lossy(&answer.body).into_owned())
    }
}

/// The IPv4 address of interface `name`.
pub fn ipv4_of(name: &str) -> Result<String> {
    let interfaces = nix::ifaddrs::getifaddrs().context("cannot list network interfaces")?;
    interfaces
        .filter(|i| i.interface_name == name)
        .find_map(|i| Some(i.address?.as_sockaddr_in()?.ip()))
        .map(|ip| ip.to_string())
        .with_context(|| {
            format!("slaveInterfaceName {name}: no such interface with an IPv4 address")
        })
}

pub fn host_name() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default()
}
