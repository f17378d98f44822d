//! `c2 help`: the long help of c2 and of every command, generated from the
//! clap tree in [`cli`](crate::cli), so it cannot drift from what c2 parses.

use anyhow::{bail, Result};
use clap::CommandFactory;

use crate::cli::Cli;

/// Text width when stdout is not a terminal.
const DEFAULT_WIDTH: usize = 80;
/// Never wider than clap's own `--help`, however wide the terminal.
const MAX_WIDTH: usize = 100;
/// The indent of a command's description under its usage line.
const INDENT: usize = 4;

/// The whole long help: c2's usage and description, its options, then every
/// visible command with its usage, description and arguments.
pub(crate) fn all() -> String {
    let width = width();
    let mut cli = Cli::command();
    cli.build();
    let mut out = String::new();
    out.push_str(&format!("{}\n\n", usage(&mut cli)));
    out.push_str(&wrap(&long_about(&cli), 0, width));
    out.push_str("\nOptions:\n");
    out.push_str(&arguments(global_arguments(&cli), 2, width));
    out.push_str("\nCommands:\n");
    for command in cli.get_subcommands().filter(|c| !c.is_hide_set()) {
        out.push_str(&format!("\n{}\n", command_usage(command)));
        out.push_str(&wrap(&long_about(command), INDENT, width));
        let args = arguments(own_arguments(command), INDENT, width);
        if !args.is_empty() {
            out.push('\n');
            out.push_str(&args);
        }
    }
    out
}

/// One command's long help, as `c2 <command> --help` prints it.
pub(crate) fn one(name: &str) -> Result<String> {
    let mut cli = Cli::command();
    cli.build();
    match cli.find_subcommand_mut(name).filter(|c| !c.is_hide_set()) {
        Some(command) => Ok(command.render_long_help().to_string()),
        None => bail!("no command called {name}: `c2 help` lists them"),
    }
}

/// c2's usage line, as clap writes it, without its `Usage: ` prefix.
fn usage(cli: &mut clap::Command) -> String {
    let usage = cli.render_usage().to_string();
    usage
        .strip_prefix("Usage: ")
        .unwrap_or(&usage)
        .trim_end()
        .to_string()
}

/// A command's usage line with its own arguments spelled out (clap's would
/// say `[OPTIONS]` for the global ones): `c2 status [--show-slaves] …`.
fn command_usage(command: &clap::Command) -> String {
    let mut words = vec![format!("c2 {}", command.get_name())];
    let (positionals, options): (Vec<&clap::Arg>, Vec<&clap::Arg>) =
        own_arguments(command).partition(|a| a.is_positional());
    words.extend(positionals.into_iter().map(name));
    words.extend(options.into_iter().map(|a| format!("[{}]", name(a))));
    words.join(" ")
}

fn long_about(command: &clap::Command) -> String {
    command
        .get_long_about()
        .or(command.get_about())
        .map(|a| a.to_string())
        .unwrap_or_default()
}

/// The arguments c2 itself takes (`--config`, `--help`, `--version`).
fn global_arguments(cli: &clap::Command) -> impl Iterator<Item = &clap::Arg> {
    cli.get_arguments().filter(|a| !a.is_hide_set())
}

/// A command's own arguments: not the global ones, shown once for c2, nor
/// its `--help`.
fn own_arguments(command: &clap::Command) -> impl Iterator<Item = &clap::Arg> {
    command
        .get_arguments()
        .filter(|a| !a.is_hide_set() && !a.is_global_set() && a.get_id() != "help")
}

/// Arguments with their help, in two columns.
fn arguments<'a>(args: impl Iterator<Item = &'a clap::Arg>, indent: usize, width: usize) -> String {
    let rows: Vec<(String, String)> = args
        .map(|a| {
            let help = a.get_long_help().or(a.get_help());
            (name(a), help.map(|h| h.to_string()).unwrap_or_default())
        })
        .collect();
    let column = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(0) + 2;
    let mut out = String::new();
    for (name, help) in rows {
        let margin = " ".repeat(indent);
        if help.is_empty() {
            out.push_str(&format!("{margin}{name}\n"));
            continue;
        }
        // The help's first line goes beside the name, the rest under it.
        out.push_str(&format!("{margin}{name:column$}"));
        out.push_str(wrap(&help, indent + column, width).trim_start());
    }
    out
}

/// How an argument is written on the command line: `-h, --help`,
/// `--repeat <N>`, `<RELEASE>`, `[DEPLOY]`.
fn name(arg: &clap::Arg) -> String {
    let value = arg
        .get_value_names()
        .and_then(|v| v.first())
        .map(|v| v.to_string())
        .unwrap_or_else(|| arg.get_id().as_str().to_uppercase());
    if arg.is_positional() {
        return if arg.is_required_set() {
            format!("<{value}>")
        } else {
            format!("[{value}]")
        };
    }
    let takes_value = arg.get_num_args().is_some_and(|n| n.takes_values());
    let mut name = String::new();
    if let Some(short) = arg.get_short() {
        name.push_str(&format!("-{short}"));
    }
    if let Some(long) = arg.get_long() {
        if !name.is_empty() {
            name.push_str(", ");
        }
        name.push_str(&format!("--{long}"));
    }
    if takes_value {
        name.push_str(&format!(" <{value}>"));
    }
    name
}

/// The terminal's width when stdout is one, else 80; at most 100.
fn width() -> usize {
    match terminal_size::terminal_size() {
        Some((terminal_size::Width(w), _)) => usize::from(w).min(MAX_WIDTH),
        None => DEFAULT_WIDTH,
    }
}

/// Wraps each paragraph of `text` (blank-line separated, as clap keeps doc
/// comments) to `width`, every line indented by `indent`; paragraphs stay
/// separated by a blank line, and the result ends with a newline.
fn wrap(text: &str, indent: usize, width: usize) -> String {
    let room = width.saturating_sub(indent).max(20);
    let margin = " ".repeat(indent);
    let mut out = String::new();
    for (i, paragraph) in text.split("\n\n").enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let mut line = String::new();
        for word in paragraph.split_whitespace() {
            if !line.is_empty() && line.len() + 1 + word.len() > room {
                out.push_str(&format!("{margin}{line}\n"));
                line.clear();
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        out.push_str(&format!("{margin}{line}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(text: &str) -> String {
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn the_long_help_shows_every_visible_command_with_its_usage_and_description() {
        let text = all();
        let flat_text = flat(&text);
        let mut cli = Cli::command();
        cli.build();
        let visible: Vec<&clap::Command> =
            cli.get_subcommands().filter(|c| !c.is_hide_set()).collect();
        assert!(visible.len() > 20, "{} commands", visible.len());
        for command in visible {
            let line = command_usage(command);
            assert!(
                line.starts_with(&format!("c2 {}", command.get_name())),
                "{line}"
            );
            assert!(
                text.contains(&format!("\n{line}\n")),
                "c2 help lacks {line}"
            );
            let about = flat(&long_about(command));
            assert!(
                !about.is_empty(),
                "{} has no description",
                command.get_name()
            );
            assert!(flat_text.contains(&about), "c2 help lacks: {about}");
        }
    }

    #[test]
    fn the_long_help_keeps_what_operators_look_up() {
        let text = flat(&all());
        for needle in [
            "$CAMUS2_CONFIG",
            "../etc/camus2.json or ../etc/camus2.yaml beside the c2 executable",
            "--repeat <N> Repeat forever, one update every N seconds (decimals allowed",
            "--retry Wait for each missing source",
            "exits 1 with one line on stderr",
            "append the same lines to the config's logFile",
        ] {
            assert!(text.contains(needle), "c2 help lacks: {needle}");
        }
    }

    #[test]
    fn one_command_gets_its_long_help() {
        let text = one("start").unwrap();
        assert!(
            text.contains("Usage: c2 start [OPTIONS] <RELEASE> [DEPLOY]"),
            "{text}"
        );
        assert!(
            text.contains("Noproxy mode: replaces the live release."),
            "{text}"
        );
        let err = one("deploy").unwrap_err().to_string();
        assert_eq!(err, "no command called deploy: `c2 help` lists them");
    }

    #[test]
    fn an_argument_without_help_keeps_its_own_line() {
        let args = [clap::Arg::new("a").long("a"), clap::Arg::new("b").long("b")];
        assert_eq!(arguments(args.iter(), 2, 80), "  --a\n  --b\n");
    }

    #[test]
    fn paragraphs_wrap_within_the_width() {
        let text = "one two three four five six seven eight nine ten eleven twelve\n\nnext";
        let wrapped = wrap(text, 4, 30);
        assert_eq!(
            wrapped,
            "    one two three four five\n    six seven eight nine ten\n    eleven twelve\n\n    next\n"
        );
    }
}
