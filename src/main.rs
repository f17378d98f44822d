//! `c2`: parse the command line, run it, and turn any failure into one
//! clear line on stderr and a non-zero exit.

use camus2::completion;
use clap::Parser;
use clap_complete::CompleteEnv;

fn main() {
    // The child a completion starts to gather live names.
    if completion::serve_names() {
        return;
    }
    // A TAB in a shell that sourced `c2 completions <shell>`: answer it
    // before parsing, since the line being completed is rarely valid yet.
    let completing = CompleteEnv::with_factory(completion::tree)
        .var(completion::ENV_VAR)
        .bin(completion::BIN)
        .try_complete(std::env::args_os(), std::env::current_dir().ok().as_deref());
    match completing {
        Ok(false) => {}
        Ok(true) => return,
        // Never an error message in the middle of the operator's line.
        Err(_) => std::process::exit(1),
    }
    let cli = camus2::cli::Cli::parse();
    if let Err(e) = camus2::commands::run(cli) {
        // `{:#}` joins the context chain on one line: what failed, then why.
        eprintln!("c2: error: {e:#}");
        std::process::exit(1);
    }
}
