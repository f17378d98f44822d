//! `c2 man-pages DIR`: c2(1) and one page per command, c2-start(1) and
//! so on, generated from the command definitions as help and completions
//! are, so no page is kept by hand.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::cli::Cli;

/// Writes every page into `dir` (created if missing); returns their paths,
/// c2.1 first.
pub(crate) fn write(dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut c2 = Cli::command().disable_help_subcommand(true);
    // Names the subcommands' pages c2-<command>.
    c2.build();
    let mut written = vec![page(&c2, dir)?];
    for command in c2.get_subcommands().filter(|c| !c.is_hide_set()) {
        written.push(page(command, dir)?);
    }
    Ok(written)
}

fn page(command: &clap::Command, dir: &Path) -> Result<PathBuf> {
    clap_mangen::Man::new(command.clone())
        .manual("c2 manual")
        .generate_to(dir)
        .with_context(|| format!("cannot write a man page into {}", dir.display()))
}
