//! Running a release's shell commands (SPEC §2.3) and other programs.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Runs `command` with `/bin/sh -c` in `dir`, its output going straight to
/// ours. An empty command does nothing. `what` names the command in errors
/// (e.g. `prestartCommand of shop-1.4`).
pub fn run(what: &str, command: &str, dir: &Path) -> Result<()> {
    if command.trim().is_empty() {
        return Ok(());
    }
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(command);
    status_of(what, cmd, dir, command)
}

/// Runs `program` with `args` (no shell: arguments pass as they are) in
/// `dir`. `what` names it in errors.
pub fn run_args(what: &str, program: &str, args: &[String], dir: &Path) -> Result<()> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    status_of(what, cmd, dir, &format!("{program} {}", args.join(" ")))
}

/// Runs `cmd` in `dir` and fails unless it exits 0; `shown` is the command
/// line quoted in the error.
fn status_of(what: &str, mut cmd: Command, dir: &Path, shown: &str) -> Result<()> {
    // Flush our own log lines first so output stays in order.
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let status = cmd
        .current_dir(dir)
        .status()
        .with_context(|| format!("cannot run {what} in {}", dir.display()))?;
    if !status.success() {
        let how = match status.code() {
            Some(code) => format!("exit code {code}"),
            None => "a signal".to_string(),
        };
        bail!("{what} failed with {how}: {shown}");
    }
    Ok(())
}
