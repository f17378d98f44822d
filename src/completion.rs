//! Shell completion for bash, zsh and fish, from the clap tree in
//! [`cli`](crate::cli) through clap_complete's dynamic engine: commands,
//! options and, through [`live`], the names operators type: release names,
//! deploy labels and configured endpoint labels.
//!
//! `c2 completions <shell>` prints a registration script; the shell then runs
//! `C2_COMPLETE=<shell> c2 -- <words>` at each TAB, which [`answer_if_asked`]
//! hands to the engine before anything is parsed.

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use anyhow::{bail, Result};
use clap::CommandFactory;
use clap_complete::engine::CompletionCandidate;
use clap_complete::env::Shells;
use clap_complete::CompleteEnv;

use crate::cli::Cli;
use crate::config::ToolConfig;
use crate::output;
use crate::store::{self, ReleaseStore};
use crate::target::{self, Target};

/// The shells `c2 completions` writes a script for.
pub(crate) const SHELLS: [&str; 3] = ["bash", "zsh", "fish"];
/// The variable of the engine's protocol; c2's own, so that a `COMPLETE`
/// set for another tool never turns a deploy into a completion request.
const ENV_VAR: &str = "C2_COMPLETE";
/// The command name the scripts complete.
const BIN: &str = "c2";
/// Set (to a kind) in the child process that gathers live names.
const NAMES_VAR: &str = "C2_COMPLETE_NAMES";
/// The `--config` on the line being completed, for that child.
const CONFIG_VAR: &str = "C2_COMPLETE_CONFIG";
/// How long a TAB may wait for live names (an S3 store, remote state).
const NAMES_DEADLINE: Duration = Duration::from_secs(3);

/// The kinds of live names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Releases,
    Deploys,
    Endpoints,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Releases => "releases",
            Kind::Deploys => "deploys",
            Kind::Endpoints => "endpoints",
        }
    }

    fn parse(text: &str) -> Option<Kind> {
        [Kind::Releases, Kind::Deploys, Kind::Endpoints]
            .into_iter()
            .find(|k| k.as_str() == text)
    }
}

/// The names of one kind, the single source of live names.
pub(crate) fn names(
    target: &dyn Target,
    store: &dyn ReleaseStore,
    kind: Kind,
) -> Result<Vec<String>> {
    Ok(match kind {
        Kind::Releases => store.list()?.into_iter().map(String::from).collect(),
        Kind::Endpoints => target.endpoints(),
        Kind::Deploys => target.deploy_labels()?,
    })
}

/// The tree the engine completes from: `Cli::command()` without its hidden
/// commands (the engine would still offer one whose name matches what was
/// typed), and with options hidden, which the engine then offers only where
/// nothing else matches: after a `-`, or where no value can be named.
pub(crate) fn tree() -> clap::Command {
    let cli = Cli::command();
    let mut tree = clap::Command::new(BIN)
        .version(env!("CARGO_PKG_VERSION"))
        .disable_help_subcommand(true)
        .args(cli.get_arguments().cloned())
        .subcommands(cli.get_subcommands().filter(|c| !c.is_hide_set()).cloned());
    // Built first, so that the help and version flags it adds are hidden too.
    tree.build();
    hide_options(tree)
}

fn hide_options(cmd: clap::Command) -> clap::Command {
    cmd.mut_args(|a| if a.is_positional() { a } else { a.hide(true) })
        .mut_subcommands(hide_options)
}

/// Candidates for `c2 help <command>`.
pub(crate) fn command_names() -> Vec<CompletionCandidate> {
    Cli::command()
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| CompletionCandidate::new(c.get_name().to_string()))
        .collect()
}

/// The registration script for `shell`, exactly as `C2_COMPLETE=<shell> c2`
/// prints it.
pub(crate) fn registration(shell: &str) -> Result<String> {
    let shells = Shells::builtins();
    let Some(completer) = shells.completer(shell) else {
        bail!(
            "no completion for shell {shell}: use one of {}",
            SHELLS.join(", ")
        );
    };
    let mut script = Vec::new();
    completer.write_registration(ENV_VAR, BIN, BIN, &invoked_as(), &mut script)?;
    Ok(String::from_utf8_lossy(&script).into_owned())
}

/// How this c2 was run, as the engine records it in the script: a relative
/// path with a directory is made absolute (the script runs from anywhere),
/// a bare name stays one (found on $PATH, so an upgrade is picked up).
fn invoked_as() -> String {
    let arg0 = PathBuf::from(std::env::args_os().next().unwrap_or_else(|| BIN.into()));
    let path = match std::env::current_dir() {
        Ok(dir) if arg0.components().count() > 1 => dir.join(arg0),
        _ => arg0,
    };
    path.to_string_lossy().into_owned()
}

/// Live names for the engine, gathered by a child c2: loading the config and
/// state may warn on stderr, which must never reach the shell, and may wait
/// on S3, which must never hold a TAB for long. Nothing when anything fails.
pub(crate) fn live(kind: Kind) -> Vec<CompletionCandidate> {
    gather_in_child(kind)
        .lines()
        .map(|name| CompletionCandidate::new(name.to_string()))
        .collect()
}

fn gather_in_child(kind: Kind) -> String {
    let Ok(exe) = std::env::current_exe() else {
        return String::new();
    };
    let mut child = Command::new(exe);
    child
        .env(NAMES_VAR, kind.as_str())
        .env_remove(ENV_VAR)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    match config_on_line(std::env::args_os()) {
        Some(config) => child.env(CONFIG_VAR, config),
        None => child.env_remove(CONFIG_VAR),
    };
    let Ok(mut child) = child.spawn() else {
        return String::new();
    };
    let Some(mut stdout) = child.stdout.take() else {
        return String::new();
    };
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let read = stdout.read_to_string(&mut text);
        let _ = sender.send(read.map(|_| text));
    });
    let text = match receiver.recv_timeout(NAMES_DEADLINE) {
        Ok(Ok(text)) => text,
        _ => {
            let _ = child.kill();
            String::new()
        }
    };
    match child.wait() {
        Ok(status) if status.success() => text,
        _ => String::new(),
    }
}

/// The value of the last `--config` among the words being completed (the
/// engine's arguments after `--`), so that names come from the config the
/// command will use.
fn config_on_line(args: impl IntoIterator<Item = OsString>) -> Option<OsString> {
    let mut words = args.into_iter().skip_while(|a| a != "--").skip(1);
    let mut config = None;
    while let Some(word) = words.next() {
        if word == "--config" {
            config = words.next().or(config);
        } else if let Some(value) = word.to_str().and_then(|w| w.strip_prefix("--config=")) {
            config = Some(value.into());
        }
    }
    config
}

/// Answers a shell that asks for completions (a TAB after sourcing
/// `c2 completions <shell>`), or the child [`live`] starts for names.
/// Returns `None` in any other run of c2.
pub(crate) fn answer_if_asked() -> Option<ExitCode> {
    if serve_names() {
        return Some(ExitCode::SUCCESS);
    }
    // Answered before parsing: the line being completed is rarely valid yet.
    let completing = CompleteEnv::with_factory(tree)
        .var(ENV_VAR)
        .bin(BIN)
        .try_complete(std::env::args_os(), std::env::current_dir().ok().as_deref());
    match completing {
        Ok(false) => None,
        Ok(true) => Some(ExitCode::SUCCESS),
        // Never an error message in the middle of the operator's line.
        Err(_) => Some(ExitCode::FAILURE),
    }
}

/// In the child started by [`live`]: prints the names, one per line, and
/// says so. Returns false in any other run of c2.
fn serve_names() -> bool {
    let Some(kind) = std::env::var(NAMES_VAR).ok().and_then(|k| Kind::parse(&k)) else {
        return false;
    };
    let config = std::env::var_os(CONFIG_VAR).map(PathBuf::from);
    if let Ok(names) = gather(kind, config.as_deref()) {
        for name in names {
            // The parent may have given up waiting: nothing to report to.
            if output::line(&name).is_err() {
                break;
            }
        }
    }
    true
}

/// Loads the config as the command line would, then asks for the names.
fn gather(kind: Kind, config: Option<&Path>) -> Result<Vec<String>> {
    let config = ToolConfig::load(config)?;
    let store = store::open(&config.releases);
    let target = target::open(&config, store.as_ref())?;
    names(target.as_ref(), store.as_ref(), kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &[&str]) -> Vec<OsString> {
        line.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_config_on_the_line_is_the_one_names_come_from() {
        let line = words(&["/bin/c2", "--", "c2", "--config", "/a.json", "start", ""]);
        assert_eq!(config_on_line(line), Some("/a.json".into()));
        let line = words(&["c2", "--", "c2", "stop", "--config=/b.yaml", ""]);
        assert_eq!(config_on_line(line), Some("/b.yaml".into()));
        assert_eq!(
            config_on_line(words(&["c2", "--", "c2", "start", ""])),
            None
        );
        // Words before the engine's `--` are c2's own, not the line's.
        let line = words(&["c2", "--config", "/x", "--", "c2", "start", ""]);
        assert_eq!(config_on_line(line), None);
    }

    #[test]
    fn the_tree_offers_every_visible_command_and_no_hidden_one() {
        let visible: Vec<String> = command_names()
            .iter()
            .map(|c| c.get_value().to_string_lossy().into_owned())
            .collect();
        let tree = tree();
        let offered: Vec<&str> = tree.get_subcommands().map(|c| c.get_name()).collect();
        assert_eq!(offered, visible);
        assert!(tree.get_subcommands().all(|c| !c.is_hide_set()));
    }

    #[test]
    fn every_shell_has_a_registration_naming_c2() {
        for shell in SHELLS {
            let script = registration(shell).unwrap();
            assert!(script.contains(ENV_VAR), "{shell}: {script}");
            assert!(script.contains(BIN), "{shell}: {script}");
        }
    }
}
