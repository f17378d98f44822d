//! Shared AWS plumbing: one lazily built SDK configuration and one runtime.
//!
//! The rest of c2 is synchronous (it mostly runs shell commands and writes
//! files), so AWS calls go through [`block_on`] rather than making every
//! caller async. The configuration is built on first use, so commands that
//! never touch AWS never pay for credential discovery.

pub mod ecr;
pub mod route53;
pub mod s3;
pub mod secrets;

use std::future::Future;
use std::sync::OnceLock;

use aws_config::meta::region::RegionProviderChain;
use aws_config::{BehaviorVersion, SdkConfig};

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("cannot start the async runtime")
    })
}

/// Runs an AWS future to completion on the shared runtime. Not reentrant:
/// resolve clients (which may build the config) before calling it.
pub fn block_on<F: Future>(f: F) -> F::Output {
    runtime().block_on(f)
}

/// The standard AWS configuration chain (env, profiles, instance roles…),
/// falling back to us-east-1 when no region is configured anywhere.
pub fn sdk_config() -> &'static SdkConfig {
    static CONFIG: OnceLock<SdkConfig> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let region = RegionProviderChain::default_provider().or_else("us-east-1");
        block_on(
            aws_config::defaults(BehaviorVersion::latest())
                .region(region)
                .load(),
        )
    })
}

/// A full, one-line description of an SDK error: its chain of causes
/// joined by ": " (the SDK's own Display prints only "service error", and
/// its context printer appends a Debug dump no operator wants to read).
pub fn describe_error(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cause = Some(e);
    while let Some(err) = cause {
        let text = err.to_string().replace('\n', " ");
        // Layers often repeat the message of the layer below.
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cause = err.source();
    }
    parts.join(": ")
}
