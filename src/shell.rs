//! Running a release's shell commands and other programs.

use std::ffi::{OsStr, OsString};
use std::io::{ErrorKind, PipeReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::prctl::set_pdeathsig;
use nix::sys::signal::{kill, Signal};
use nix::unistd::{getppid, Pid};

use crate::layout::Layout;

/// Runs `command` with `/bin/sh -c` in `dir`, its output forwarded to ours
/// (see [`status_of`]). An empty command does nothing. `what` names the command in errors
/// (e.g. `prestartCommand of shop-1.4`).
pub fn run(what: &str, command: &str, dir: &Path) -> Result<()> {
    run_with(what, command, dir, &[])
}

/// [`run`] for a release's command, with the environment `vars` (see
/// `command_env`) set and no inherited value of c2's own variables.
pub fn run_with(what: &str, command: &str, dir: &Path, vars: &[(String, String)]) -> Result<()> {
    if command.trim().is_empty() {
        return Ok(());
    }
    let mut cmd = supervised("/bin/sh", ["-c", command]);
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(crate::command_env::is_ours) {
            cmd.env_remove(name);
        }
    }
    cmd.envs(vars.iter().map(|(k, v)| (k, v)));
    cmd.env(TAG_VAR, tag_of(dir)?);
    status_of(what, cmd, dir, command)
}

/// Runs `program` with `args` (no shell: arguments pass as they are) in
/// `dir`. `what` names it in errors.
pub fn run_args(what: &str, program: &str, args: &[String], dir: &Path) -> Result<()> {
    let cmd = supervised(program, args);
    status_of(what, cmd, dir, &format!("{program} {}", args.join(" ")))
}

/// Runs `cmd` in `dir` and fails unless it exits 0; `shown` is the command
/// line quoted in the error.
///
/// The command's stdout and stderr are pipes drained by two small
/// forwarder processes (`c2 __forward`) that copy what they read to c2's
/// own streams, ignoring write errors: when whoever reads c2 went away
/// (`c2 start x.zip | head -1`) or c2's output is a full disk, the command
/// still runs to its end instead of dying of SIGPIPE halfway through a
/// deploy. They are processes, not threads, so that a daemon the command
/// leaves running (with its output not redirected) keeps a live output
/// after c2 exits: `c2 start x.zip | tee log` goes on logging it.
fn status_of(what: &str, mut cmd: Command, dir: &Path, shown: &str) -> Result<()> {
    reap_forwarders();
    // Flush our own log lines first so output stays in order.
    let _ = std::io::stdout().flush();
    let cannot = || format!("cannot run {what} in {}", dir.display());
    let (out_read, out_write) = std::io::pipe().with_context(cannot)?;
    let (err_read, err_write) = std::io::pipe().with_context(cannot)?;
    let forwarders = [
        forwarder(out_read, Stream::Stdout).with_context(cannot)?,
        forwarder(err_read, Stream::Stderr).with_context(cannot)?,
    ];
    cmd.current_dir(dir).stdout(out_write).stderr(err_write);
    let spawned = cmd.spawn().with_context(cannot);
    // Our copies of the write ends must close, or the pipes never end.
    drop(cmd);
    let status = spawned.and_then(|mut child| {
        child
            .wait()
            .with_context(|| format!("cannot wait for {what} in {}", dir.display()))
    });
    for f in forwarders {
        f.finish();
    }
    let status = status?;
    if !status.success() {
        let how = match status.code() {
            Some(code) => format!("exit code {code}"),
            None => "a signal".to_string(),
        };
        bail!("{what} failed with {how}: {shown}");
    }
    Ok(())
}

/// How long, once a command has exited, its output may take to reach the
/// end of its pipe before c2 moves on; see [`Forwarder::finish`].
const DRAIN_GRACE: Duration = Duration::from_millis(200);

/// The hidden command that forwards a release command's output.
pub const FORWARD: &str = "__forward";

/// Which of c2's streams a forwarder writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// A `c2 __forward` process draining one pipe.
struct Forwarder(Child);

fn forwarder(from: PipeReader, to: Stream) -> std::io::Result<Forwarder> {
    let name = match to {
        Stream::Stdout => "stdout",
        Stream::Stderr => "stderr",
    };
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg0("c2").args([FORWARD, name]).stdin(from);
    if to == Stream::Stderr {
        cmd.stdout(Stdio::null());
    }
    cmd.spawn().map(Forwarder)
}

impl Forwarder {
    /// Waits until the pipe ends (everyone holding its write end closed
    /// it), so what the command printed comes before c2's next lines. A
    /// process the command left in the background may keep the pipe open
    /// as long as it runs: after [`DRAIN_GRACE`] its forwarder is left to
    /// go on alone.
    fn finish(mut self) {
        let deadline = Instant::now() + DRAIN_GRACE;
        while Instant::now() < deadline {
            if !matches!(self.0.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        LINGERING
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(self.0);
    }
}

/// Forwarders still draining a background process's output, reaped once
/// they end so a long-running c2 (`slave-update --repeat`) gathers no
/// zombies.
static LINGERING: Mutex<Vec<Child>> = Mutex::new(Vec::new());

fn reap_forwarders() {
    LINGERING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain_mut(|child| matches!(child.try_wait(), Ok(None)));
}

/// `c2 __forward <stream>`: copies stdin to that stream until stdin ends,
/// dropping what cannot be written, so the writer never sees EPIPE.
pub fn forward(to: Stream) -> Result<()> {
    let mut input = std::io::stdin().lock();
    let mut buf = [0u8; 8192];
    loop {
        match input.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                let _ = match to {
                    Stream::Stdout => std::io::stdout().write_all(&buf[..n]),
                    Stream::Stderr => std::io::stderr().write_all(&buf[..n]),
                };
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Ok(()),
        }
    }
}

/// The environment variable that tags every process a deploy's commands
/// start (daemons included: they inherit it), so what an interrupted run
/// left running can be found and stopped.
const TAG_VAR: &str = "C2_DEPLOY_TAG";

/// The tag of the commands run in `dir`: one per directory, kept in it,
/// made the first time it is asked for.
pub(crate) fn tag_of(dir: &Path) -> Result<String> {
    let file = Layout::deploy_tag(dir);
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
    let Ok(tag) = std::fs::read_to_string(Layout::deploy_tag(dir)) else {
        return 0;
    };
    let needle = format!("{TAG_VAR}={}", tag.trim());
    let me = Pid::this().as_raw();
    let mut killed = 0;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    for e in entries.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
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
            // It may have exited since /proc was read: then there is nothing to kill.
            if kill(Pid::from_raw(pid), Signal::SIGKILL).is_ok() {
                killed += 1;
            }
        }
    }
    killed
}

/// The hidden command through which c2 starts every release command; see
/// [`supervised`].
pub const RUN_CHILD: &str = "__run-child";

/// `program args`, started so that it dies if c2 itself is killed (`kill -9`,
/// OOM): a step must not carry on unsupervised after the run that recorded it
/// is gone, or it races the next run (which stops and removes what the
/// killed run left, then may find the old command starting a server on its
/// port).
///
/// The parent-death signal must be set inside the child, between fork and
/// exec, which std only allows outside safe Rust (`pre_exec`). So c2 starts
/// a copy of itself instead (`c2 __run-child <pid> -- program args`, see
/// [`exec_supervised`]), which sets it and then becomes the command.
/// `/proc/self/exe` is this very binary even if a deploy replaced or deleted
/// the file c2 was started from.
fn supervised<S: AsRef<OsStr>>(program: &str, args: impl IntoIterator<Item = S>) -> Command {
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg0("c2")
        .arg(RUN_CHILD)
        .arg(std::process::id().to_string())
        .arg("--")
        .arg(program)
        .args(args);
    cmd
}

/// `c2 __run-child <parent> -- program args`: arranges to be SIGKILLed when
/// `parent` dies, then replaces itself with `program args`. Adds no output;
/// exec keeps the pid, so the command's exit code or signal is what the
/// parent sees. Returns only on failure.
pub fn exec_supervised(parent: u32, command: &[OsString]) -> Result<()> {
    let (program, args) = command
        .split_first()
        .context("__run-child: no command given")?;
    // Survives execve, so it applies to the command itself.
    set_pdeathsig(Signal::SIGKILL).context("cannot set the parent-death signal")?;
    // The parent may have died before the line above took effect.
    if u32::try_from(getppid().as_raw()) != Ok(parent) {
        bail!(
            "c2 (pid {parent}) is gone: not starting {}",
            program.to_string_lossy()
        );
    }
    let error = Command::new(program).args(args).exec();
    Err(error).with_context(|| format!("cannot run {}", program.to_string_lossy()))
}
