//! The connections of `c2 serve`, accepted here rather than by a ready-made
//! server so that their number is bounded, a client that does not send
//! its headers within 10 s is cut off, TLS uses a certificate that SIGHUP
//! swaps, and SIGTERM lets requests under way finish.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use arc_swap::ArcSwap;
use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{watch, Semaphore};

use super::{routes, App};
use crate::config::TlsConfig;
use crate::log;

/// Connections served at once; more are closed as they come.
const MAX_CONNECTIONS: usize = 256;
/// A client must send a request's headers within this.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request body: every change's is a few names.
const MAX_BODY: usize = 64 * 1024;

/// The router: every route of the table, JSON 404 and 405 otherwise,
/// bodies bounded, and headers that keep the page to itself.
pub(crate) fn router(app: App) -> Router {
    let routes = routes::table()
        .into_iter()
        .fold(Router::new(), |router, r| router.route(r.path, r.serve()));
    routes
        .fallback(routes::no_route)
        .method_not_allowed_fallback(routes::wrong_method)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::map_response(guarded))
        .with_state(app)
}

/// Nothing is cached, framed, sniffed, or loaded from elsewhere.
async fn guarded(mut response: axum::response::Response) -> axum::response::Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// Serves `app` on `addr` until SIGTERM or SIGINT.
pub(crate) fn run(app: App, addr: SocketAddr) -> Result<()> {
    let tls = match &app.config.api.tls {
        Some(files) => Some(Arc::new(ArcSwap::new(tls_config(files)?))),
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the server's runtime")?;
    runtime.block_on(accept(app, addr, tls))?;
    // Dropping the runtime waits for the changes still running on the
    // blocking pool: a change under way ends before c2 does.
    drop(runtime);
    log::info("Stopped serving");
    Ok(())
}

async fn accept(app: App, addr: SocketAddr, tls: Option<Arc<ArcSwap<ServerConfig>>>) -> Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let mut term = signal(SignalKind::terminate()).context("cannot catch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot catch SIGINT")?;
    let mut hup = signal(SignalKind::hangup()).context("cannot catch SIGHUP")?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    log::info(&format!("Serving the c2 API on {scheme}://{addr}"));
    let service = router(app.clone());
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let (stop, stopping) = watch::channel(false);
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                app.reload_tokens();
                if let (Some(tls), Some(files)) = (&tls, &app.config.api.tls) {
                    match tls_config(files) {
                        Ok(config) => {
                            tls.store(config);
                            log::info("Reloaded the TLS certificate");
                        }
                        Err(e) => log::warn(&format!("kept the TLS certificate loaded before: {e:#}")),
                    }
                }
            }
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors, say: breathe, then go on.
                        log::warn(&format!("cannot accept a connection: {e}"));
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    continue; // Over the bound: closed at once.
                };
                let service = service.clone();
                let stopping = stopping.clone();
                let tls = tls.as_ref().map(|t| t.load_full());
                tokio::spawn(async move {
                    let _slot = slot;
                    let _ = stream.set_nodelay(true);
                    match tls {
                        None => connection(stream, service, stopping).await,
                        Some(config) => {
                            let acceptor = tokio_rustls::TlsAcceptor::from(config);
                            if let Ok(Ok(stream)) =
                                tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream)).await
                            {
                                connection(stream, service, stopping).await;
                            }
                        }
                    }
                });
            }
        }
    }
    log::info("Stopping: finishing the requests under way");
    drop(listener);
    let _ = stop.send(true);
    // Every connection gives its slot back when its requests are done.
    let _ = slots.acquire_many(MAX_CONNECTIONS as u32).await;
    Ok(())
}

/// Serves one connection, HTTP/1.1, until it closes or the server stops.
async fn connection<S>(stream: S, service: Router, mut stopping: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(64 * 1024);
    let conn = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stopping.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// The rustls server config of a certificate chain and key (PEM files).
fn tls_config(files: &TlsConfig) -> Result<Arc<ServerConfig>> {
    let cert_file = files.cert_file.display();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert_file)
        .with_context(|| format!("cannot read the certificate {cert_file} (api.tls.certFile)"))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("the certificate {cert_file} is not PEM"))?;
    if certs.is_empty() {
        bail!("no certificate in {cert_file} (api.tls.certFile)");
    }
    // Never the key's bytes in a message: only where it is.
    let key = PrivateKeyDer::from_pem_file(&files.key_file).with_context(|| {
        format!(
            "cannot read a private key from {} (api.tls.keyFile)",
            files.key_file.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("no TLS versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .with_context(|| {
            format!(
                "the key {} does not suit the certificate {cert_file}",
                files.key_file.display()
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
