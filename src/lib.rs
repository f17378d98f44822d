//! c2: deploys software releases onto servers; a rewrite of Camus2.
//!
//! The layout follows the domain (see SPEC.md):
//! - [`cli`]: the command tree and dispatch;
//! - [`config`]: the config schema, finding and parsing it;
//! - [`store`]: release stores (local directory, S3);
//! - [`release`]: fetch, unzip, `release.json`, templates;
//! - [`context`]: template context (cache, sources, ports);
//! - [`noproxy`]: one live release behind a `current` symlink;
//! - [`proxy`]: many deploys behind nginx (state, planner, executor, drivers);
//! - [`remote`]: master state and slaves over S3 or a shared directory;
//! - [`aws`]: shared AWS SDK config and S3 access;
//! - [`log`], [`shell`], [`fsutil`]: logging, commands, safe file writes.

pub mod aws;
pub mod cli;
pub mod commands;
pub mod completion;
pub mod config;
pub mod context;
pub mod fsutil;
pub mod letsencrypt;
pub mod log;
pub mod noproxy;
pub mod proxy;
pub mod release;
pub mod remote;
pub mod shell;
pub mod signals;
pub mod store;
pub mod template;
