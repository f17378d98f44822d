//! Running a release's shell commands and other programs.

use std::ffi::{OsStr, OsString};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nix::sys::prctl::set_pdeathsig;
use nix::sys::signal::{kill, Signal};
use nix::unistd::{getppid, Pid};

/// Runs `command` with `/bin/sh -c` in `dir`, its output forwarded to ours
/// (see [`status_of`]). An empty command does nothing. `what` names the command in errors
/// (e.g. `prestartCommand of shop-1.4`).
pub fn run(what: &str, command: &str, dir: &Path) -> Result<()> {
    if command.trim().is_empty() {
        return Ok(());
    }
    let mut cmd = supervised("/bin/sh", ["-c", command]);
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
/// The command's stdout and stderr are pipes that c2 drains and copies to
/// its own, ignoring write errors: when whoever reads c2 went away
/// (`c2 start x.zip | head -1`) or its output is a full disk, the command
/// still runs to its end instead of dying of SIGPIPE (or failing on EPIPE)
/// halfway through a deploy. c2 is killed with its pipes' read ends, and the
/// command with c2 (see [`supervised`]), so forwarding keeps nothing alive.
fn status_of(what: &str, mut cmd: Command, dir: &Path, shown: &str) -> Result<()> {
    // Flush our own log lines first so output stays in order.
    let _ = std::io::stdout().flush();
    let mut child = cmd
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {what} in {}", dir.display()))?;
    let forwarders = [
        child.stdout.take().map(|out| forward(out, std::io::stdout)),
        child.stderr.take().map(|err| forward(err, std::io::stderr)),
    ];
    let status = child
        .wait()
        .with_context(|| format!("cannot wait for {what} in {}", dir.display()));
    for forwarder in forwarders.into_iter().flatten() {
        forwarder.finish();
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

/// A thread copying what a command writes on one pipe to one of our streams.
struct Forwarder {
    thread: JoinHandle<()>,
    done: Receiver<()>,
}

fn forward<W: Write + 'static>(mut from: impl Read + Send + 'static, to: fn() -> W) -> Forwarder {
    let (tell_done, done) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let mut out = to();
                    // Dropped if it cannot be written: the command must go on.
                    let _ = out.write_all(&buf[..n]).and_then(|()| out.flush());
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        let _ = tell_done.send(());
    });
    Forwarder { thread, done }
}

impl Forwarder {
    /// Waits until the pipe ends (everyone holding its write end has closed
    /// it), so what the command printed comes before c2's next lines. A
    /// process the command left in the background may keep the pipe open
    /// for as long as it runs: after [`DRAIN_GRACE`] the thread is left to
    /// forward its output while c2 runs rather than waited for.
    fn finish(self) {
        if self.done.recv_timeout(DRAIN_GRACE).is_ok() {
            let _ = self.thread.join();
        }
    }
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
