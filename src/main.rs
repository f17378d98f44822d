//! `c2`: parse the command line, run it, and turn any failure into one
//! clear line on stderr and a non-zero exit.

use std::io::Write;

use clap::Parser;

fn main() {
    let cli = camus2::cli::Cli::parse();
    camus2::log::init(cli.verbose);
    if let Err(e) = camus2::commands::run(cli) {
        // `{:#}` joins the context chain on one line: what failed, then why.
        // A closed stderr must not turn the failure into a panic.
        let _ = writeln!(std::io::stderr(), "c2: error: {e:#}");
        std::process::exit(1);
    }
}
