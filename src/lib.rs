//! c2: deploys software releases onto servers; a rewrite of Camus2.
//!
//! The layout follows the domain:
//! - [`cli`]: every command, argument and help text; [`commands`] runs them;
//! - `config`: the config schema, finding and parsing it;
//! - `names`, `layout`: names checked once at the edge; paths under deploysDir;
//! - `target`: one deploy target per mode (noproxy, local proxy, remote);
//!   `door`: the one way a change is made, from the CLI or the API;
//! - `deploy`: the life of one deploy directory, shared by every mode;
//! - `store`: release stores (local directory, S3); `publish` and `prune`
//!   put releases in and take old ones out;
//! - `release`: fetch, unzip, `release.json`, expanding templates;
//! - [`template`]: our mustache renderer (the library's one public module,
//!   for the official spec tests);
//! - `context`: template context (cache, sources, ports);
//! - `noproxy`: one live release behind a `current` symlink;
//! - `proxy`: many deploys behind nginx (state, planner, executor, drivers);
//! - `heal`: deploys that stay up (health watch, restart policy, `health.json`);
//! - `remote`: master state and slaves over S3 or a shared directory;
//! - `journal`: the operators' deploy lock and the history of changes;
//! - `aws`: shared AWS SDK config, S3, Secrets Manager, ECR, Route53;
//! - `output`, `log`, `progress`, `shell`, `fsutil`, `signals`: a command's
//!   result, logging, progress bars, commands, safe file writes, graceful stop;
//! - `command_env`: the environment of a release's commands; `hooks`: the
//!   release's own commands around every switch of traffic.

mod api;
mod aws;
// Used by build.rs; compiled here for its tests.
#[cfg(test)]
mod build_info;
mod cli;
mod command_env;
mod commands;
mod completion;
mod config;
mod context;
mod deploy;
mod door;
mod fsutil;
mod heal;
mod health;
mod help;
mod hooks;
mod http;
mod journal;
mod layout;
mod letsencrypt;
mod log;
mod manpages;
mod names;
mod noproxy;
mod output;
mod progress;
mod proxy;
mod prune;
mod publish;
mod refusal;
mod release;
mod remote;
mod shell;
mod signals;
mod store;
mod target;
pub mod template;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

/// The whole of `c2`: answer a shell asking for completions, or parse the
/// command line and run it. Any failure is one line on stderr (what
/// failed, then why) and exit status 1; a reader that closed stdout before
/// the end of the output ends the command quietly (see [`output`]).
pub fn main() -> ExitCode {
    if let Some(code) = completion::answer_if_asked() {
        return code;
    }
    let cli = cli::Cli::parse();
    log::init(cli.verbose);
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if output::closed(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // A closed stderr must not turn the failure into a panic.
            // One line, whatever the error quotes from outside.
            let _ = writeln!(
                std::io::stderr(),
                "c2: error: {}",
                output::one_line(&format!("{e:#}"))
            );
            ExitCode::FAILURE
        }
    }
}
