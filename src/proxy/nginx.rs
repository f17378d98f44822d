//! The nginx config of the frontend proxy: its context, built
//! from the config and the routed endpoints, and its rendering.

use anyhow::{Context, Result};
use serde::Serialize;

use crate::config::{
    EndPointType, Limits, ProxyModeConfig, SafePath, SslCertMode, ToolConfig, UrlPath,
};
use crate::template;

use super::state::Deploy;

/// The built-in template (`c2 show-default-nginx-config`).
pub const DEFAULT_TEMPLATE: &str = include_str!("../../templates/nginx.conf.tpl");

/// The template context, mirroring `adl/nginx.adl`. `None` fields are left
/// out of the JSON, as the spec says. Every string in it is built from
/// values checked when the config was read (`ServerName`, `UrlPath`,
/// `SafePath`, `CertName`), so none can break out of its directive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NginxContext {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    pub end_points: Vec<EndPointEntry>,
    pub http_port: u16,
    pub https_port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    pub incoming_path: UrlPath,
    pub outgoing_path: UrlPath,
    pub outgoing_port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum EndPointEntry {
    Http(HttpEndPoint),
    Https(HttpsEndPoint),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpEndPoint {
    pub server_names: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpsEndPoint {
    pub server_names: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssl_cert_path: Option<SafePath>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssl_cert_key_path: Option<SafePath>,
    pub letsencrypt_www_dir: SafePath,
}

/// Where a generated certificate lives.
pub fn generated_cert_dir(config: &ToolConfig) -> SafePath {
    config
        .letsencrypt_prefix_dir
        .join_const("etc/letsencrypt/live")
        .join_cert_name(&config.auto_cert_name)
}

/// Builds the context for routing `pairs` (endpoint label → deploy).
pub fn context(
    config: &ToolConfig,
    proxy: &ProxyModeConfig,
    pairs: &[(String, Deploy)],
) -> NginxContext {
    let port_of = |endpoint: &str| {
        pairs
            .iter()
            .find(|(e, _)| e == endpoint)
            .map(|(_, d)| d.port)
    };
    let end_points = proxy
        .end_points
        .iter()
        .map(|(label, ep)| {
            let names: Vec<&str> = ep.server_names.iter().map(|n| &**n).collect();
            let server_names = names.join(" ");
            let port = port_of(label);
            match &ep.etype {
                EndPointType::HttpOnly => EndPointEntry::Http(HttpEndPoint { server_names, port }),
                EndPointType::HttpsWithRedirect(mode) => {
                    let (cert, key) = match mode {
                        SslCertMode::Generated => {
                            let dir = generated_cert_dir(config);
                            let existing = |name: &'static str| {
                                let p = dir.join_const(name);
                                p.exists().then_some(p)
                            };
                            (existing("fullchain.pem"), existing("privkey.pem"))
                        }
                        SslCertMode::Explicit(paths) => (
                            Some(paths.ssl_certificate.clone()),
                            Some(paths.ssl_certificate_key.clone()),
                        ),
                    };
                    EndPointEntry::Https(HttpsEndPoint {
                        server_names,
                        port,
                        ssl_cert_path: cert,
                        ssl_cert_key_path: key,
                        letsencrypt_www_dir: config.letsencrypt_www_dir.clone(),
                    })
                }
            }
        })
        .collect();
    let health_check = config.health_check.as_ref().and_then(|hc| {
        let endpoint = match &hc.endpoint {
            Some(e) => e.clone(),
            None => proxy.end_points.keys().next()?.clone(),
        };
        Some(HealthCheck {
            incoming_path: hc.incoming_path.clone(),
            outgoing_path: hc.outgoing_path.clone(),
            outgoing_port: port_of(&endpoint)?,
        })
    });
    NginxContext {
        health_check,
        end_points,
        http_port: proxy.http_port,
        https_port: proxy.https_port,
    }
}

/// Renders nginx.conf from the configured template (or the built-in one);
/// a custom template renders within `limits`.
pub fn render(proxy: &ProxyModeConfig, ctx: &NginxContext, limits: &Limits) -> Result<String> {
    let value = serde_json::to_value(ctx)?;
    let rendered = match &proxy.nginx_conf_template_path {
        Some(path) => template::render_file(path, &value, &limits.template())
            .with_context(|| format!("nginxConfTemplatePath {}", path.display()))?,
        None => template::render_str(DEFAULT_TEMPLATE, &value, &mut |_| Ok(None))
            .context("built-in nginx template")?,
    };
    // No missing-name warnings here: the context leaves absent values out
    // by design (`port` of an unconnected endpoint, the other branch of
    // `http`/`https`), so they would only be noise.
    Ok(rendered.text)
}

/// The rendered config and its context, as written to the proxy directory.
pub struct NginxFiles {
    pub conf: String,
    pub ctx_json: String,
}

pub fn files(
    config: &ToolConfig,
    proxy: &ProxyModeConfig,
    pairs: &[(String, Deploy)],
) -> Result<NginxFiles> {
    let ctx = context(config, proxy, pairs);
    Ok(NginxFiles {
        conf: render(proxy, &ctx, &config.limits)?,
        ctx_json: serde_json::to_string_pretty(&ctx)? + "\n",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(extra_proxy: serde_json::Value) -> ToolConfig {
        let mut proxy = json!({
            "endPoints": {
                "main": {"serverNames": ["a.example", "b.example"], "etype": "httpOnly"},
                "secure": {"serverNames": ["c.example"], "etype": {"httpsWithRedirect": "generated"}},
                "zexplicit": {"serverNames": ["d.example"], "etype": {"httpsWithRedirect": {"explicit": {"sslCertificate": "/c.pem", "sslCertificateKey": "/k.pem"}}}}
            }
        });
        for (k, v) in extra_proxy.as_object().unwrap() {
            proxy[k] = v.clone();
        }
        crate::config::parse_value(
            json!({
                "releases": {"localdir": "/r"},
                "letsencryptPrefixDir": "/nonexistent-prefix",
                "deployMode": {"proxy": proxy}
            }),
            "test",
        )
        .unwrap()
    }

    fn d(label: &str, port: u16) -> Deploy {
        Deploy {
            label: crate::names::DeployLabel::parse(label).unwrap(),
            release: crate::names::ReleaseName::parse(&format!("{label}.zip")).unwrap(),
            port,
        }
    }

    #[test]
    fn context_has_the_exact_shape_of_the_spec() {
        let c = config(json!({}));
        let p = c.proxy_mode().unwrap();
        let ctx = context(&c, p, &[("main".into(), d("a", 8001))]);
        assert_eq!(
            serde_json::to_value(&ctx).unwrap(),
            json!({
                "healthCheck": {"incomingPath": "/health-check", "outgoingPath": "/", "outgoingPort": 8001},
                "endPoints": [
                    {"http": {"serverNames": "a.example b.example", "port": 8001}},
                    {"https": {"serverNames": "c.example", "letsencryptWwwDir": "/opt/var/www"}},
                    {"https": {"serverNames": "d.example", "sslCertPath": "/c.pem", "sslCertKeyPath": "/k.pem", "letsencryptWwwDir": "/opt/var/www"}}
                ],
                "httpPort": 80,
                "httpsPort": 443
            })
        );
    }

    #[test]
    fn health_check_needs_its_endpoint_connected() {
        let c = config(json!({}));
        let p = c.proxy_mode().unwrap();
        let ctx = context(&c, p, &[("secure".into(), d("a", 8001))]);
        assert_eq!(ctx.health_check, None);
    }

    #[test]
    fn a_named_health_check_endpoint_is_used() {
        let mut c = config(json!({"httpPort": 8080}));
        c.health_check = Some(crate::config::HealthCheckConfig {
            incoming_path: UrlPath::parse("/hc").unwrap(),
            outgoing_path: UrlPath::parse("/status").unwrap(),
            endpoint: Some("secure".into()),
        });
        let p = c.proxy_mode().unwrap().clone();
        let ctx = context(
            &c,
            &p,
            &[
                ("main".into(), d("a", 8001)),
                ("secure".into(), d("b", 8002)),
            ],
        );
        assert_eq!(ctx.health_check.unwrap().outgoing_port, 8002);
        assert_eq!(ctx.http_port, 8080);
    }

    /// A config whose generated-certificate directory holds `files`.
    fn with_generated_files(files: &[&str]) -> (tempfile::TempDir, ToolConfig, SafePath) {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(json!({}));
        c.letsencrypt_prefix_dir = SafePath::parse(dir.path().to_str().unwrap()).unwrap();
        let live = generated_cert_dir(&c);
        std::fs::create_dir_all(&live).unwrap();
        for f in files {
            std::fs::write(live.join(f), "x").unwrap();
        }
        (dir, c, live)
    }

    #[test]
    fn generated_certificates_appear_once_they_exist() {
        let (_dir, c, live) = with_generated_files(&["fullchain.pem", "privkey.pem"]);
        let p = c.proxy_mode().unwrap().clone();
        let ctx = context(&c, &p, &[]);
        let EndPointEntry::Https(h) = &ctx.end_points[1] else {
            panic!()
        };
        assert_eq!(
            h.ssl_cert_path.as_deref(),
            Some(live.join("fullchain.pem").as_path())
        );
        assert_eq!(
            h.ssl_cert_key_path.as_deref(),
            Some(live.join("privkey.pem").as_path())
        );
    }

    #[test]
    fn no_tls_server_until_both_certificate_files_exist() {
        let (_dir, c, _live) = with_generated_files(&["fullchain.pem"]);
        let p = c.proxy_mode().unwrap().clone();
        let conf = render(&p, &context(&c, &p, &[]), &c.limits).unwrap();
        assert!(
            !conf.contains("server_name c.example;\n    ssl_certificate"),
            "{conf}"
        );
        assert!(!conf.contains("ssl_certificate_key ;"), "{conf}");
    }

    #[test]
    fn the_built_in_template_routes_connected_endpoints_and_503s_the_rest() {
        let c = config(json!({}));
        let p = c.proxy_mode().unwrap();
        let conf = render(
            p,
            &context(&c, p, &[("main".into(), d("a", 8001))]),
            &c.limits,
        )
        .unwrap();
        assert!(conf.contains("listen 80 default_server;"), "{conf}");
        assert!(
            conf.contains("location /health-check {\n      proxy_pass http://localhost:8001/;"),
            "{conf}"
        );
        assert!(conf.contains("server_name a.example b.example;\n    location / {\n      proxy_pass http://localhost:8001;"), "{conf}");
        // https endpoint with no certificate: port-80 redirect only.
        assert!(conf.contains("server_name c.example;\n    location /.well-known/acme-challenge {\n      root /opt/var/www;"), "{conf}");
        // explicit certificate, not connected: a 443 server returning 503.
        assert!(conf.contains("listen 443 ssl;\n    server_name d.example;\n    ssl_certificate /c.pem;\n    ssl_certificate_key /k.pem;\n    location / {\n      return 503;"), "{conf}");
        assert_eq!(conf.matches("listen 443 ssl;").count(), 1, "{conf}");
    }
}
