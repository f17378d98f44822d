//! `c2 serve`: every deploy command and the fleet's view over an
//! authenticated HTTP API, with a page for people. A front door to the
//! same code as the command line: changes go through [`crate::door`],
//! reads through the mode's [`crate::target::Target`].
//!
//! - [`tokens`]: `c2 api-token`, and checking a presented token;
//! - [`auth`]: who asks, and whether their role allows it;
//! - [`extract`]: bodies, queries and path names, parsed at the edge;
//! - [`routes`]: the route table and its handlers;
//! - [`views`]: the JSON shapes of deploys, endpoints, slaves, releases;
//! - [`page`]: the HTML page;
//! - [`server`]: connections, TLS, signals.

mod auth;
mod error;
mod extract;
mod page;
mod routes;
mod server;
pub(crate) mod tokens;
mod views;

use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;

use anyhow::{bail, Result};
use arc_swap::ArcSwap;

use crate::config::ToolConfig;
use crate::log;
use tokens::Tokens;

/// Where `c2 serve` listens, as the command line says.
pub(crate) struct Listen {
    /// `--listen`, else the config's `api.listen`.
    pub addr: Option<SocketAddr>,
    /// `--insecure-http`.
    pub insecure_http: bool,
}

/// What every request shares: the config, and the tokens (swapped whole
/// on SIGHUP).
#[derive(Clone)]
pub(crate) struct App(Arc<Shared>);

pub(crate) struct Shared {
    pub config: ToolConfig,
    pub tokens: ArcSwap<Tokens>,
}

impl Deref for App {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl App {
    /// Whether the state is remote: reads then show the slaves too.
    pub(crate) fn remote(&self) -> bool {
        self.config
            .proxy_mode()
            .is_some_and(|p| p.remote_state_s3.is_some())
    }

    /// Reads the tokens file again; a bad one keeps the tokens there were.
    fn reload_tokens(&self) {
        match Tokens::load(&self.config.api.tokens_file) {
            Ok(tokens) => {
                log::info(&format!("Reloaded {} API token(s)", tokens.entries().len()));
                self.tokens.store(Arc::new(tokens));
            }
            Err(e) => log::warn(&format!(
                "kept the API tokens loaded before: cannot reload them: {e:#}"
            )),
        }
    }
}

/// `c2 serve`: listens until SIGTERM or SIGINT.
pub(crate) fn serve(config: ToolConfig, listen: Listen) -> Result<()> {
    let addr = listen.addr.unwrap_or(config.api.listen);
    if config.api.tls.is_none() && !addr.ip().is_loopback() && !listen.insecure_http {
        bail!(
            "refusing plain HTTP on {addr}: tokens would cross the network in clear; set api.tls (certFile, keyFile) in the config, listen on 127.0.0.1, or pass --insecure-http"
        );
    }
    let tokens = Tokens::load(&config.api.tokens_file)?;
    if tokens.entries().is_empty() {
        log::warn(&format!(
            "no API tokens in {}: every request but /healthz and /openapi.json is refused until `c2 api-token add` makes one (then SIGHUP)",
            config.api.tokens_file.display()
        ));
    }
    let app = App(Arc::new(Shared {
        config,
        tokens: ArcSwap::from_pointee(tokens),
    }));
    server::run(app, addr)
}
