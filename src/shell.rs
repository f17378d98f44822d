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
    cmd.env(TAG_VAR, tag_of(dir)?);
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
    die_with_parent(&mut cmd);
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

/// The environment variable that tags every process a deploy's commands
/// start (daemons included: they inherit it), so what an interrupted run
/// left running can be found and stopped.
const TAG_VAR: &str = "C2_DEPLOY_TAG";
const TAG_FILE: &str = ".c2-tag";

/// The tag of the commands run in `dir`: one per directory, kept in it.
fn tag_of(dir: &Path) -> Result<String> {
    let file = dir.join(TAG_FILE);
    if let Ok(tag) = std::fs::read_to_string(&file) {
        if !tag.trim().is_empty() {
            return Ok(tag.trim().to_string());
        }
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let tag = format!("{}-{nanos}", std::process::id());
    crate::fsutil::write_atomic(&file, tag.as_bytes(), 0o644)?;
    Ok(tag)
}

/// Kills every process started by the commands run in `dir` that is still
/// running: for cleaning up after a run that was killed midway, before the
/// release's own stop command removes what is not a process (containers).
pub fn kill_leftovers(dir: &Path) -> usize {
    let Ok(tag) = std::fs::read_to_string(dir.join(TAG_FILE)) else {
        return 0;
    };
    let needle = format!("{TAG_VAR}={}", tag.trim());
    let me = std::process::id();
    let mut killed = 0;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    for e in entries.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        let environ = std::fs::read(e.path().join("environ")).unwrap_or_default();
        if environ
            .split(|b| *b == 0)
            .any(|var| var == needle.as_bytes())
        {
            // SAFETY: kill(2) on a process our own commands started.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
            }
            killed += 1;
        }
    }
    killed
}

/// Makes the command die if c2 itself is killed (`kill -9`, OOM): a step
/// must not carry on unsupervised after the run that recorded it is gone,
/// or it races the next run (which stops and removes what the killed run
/// left, then may find the old command starting a server on its port).
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec and only calls
    // async-signal-safe functions (prctl, getppid, _exit).
    let parent = std::process::id() as libc::pid_t;
    unsafe {
        cmd.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            // The parent may have died before prctl took effect.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}
