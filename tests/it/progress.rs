//! Progress bars: on a terminal, downloading a release from S3 and
//! unpacking it show a bar on stderr; anywhere else, nothing. The terminal
//! is a real pseudo-terminal (util-linux `script`) holding both stdout and
//! stderr, as an operator's would.

use std::process::{Command, Stdio};

use crate::common::{Env, Moto, Output, Run};

/// `size` bytes that deflate cannot shrink, so the zip is as big as its
/// content and the download takes more than one chunk.
fn incompressible(size: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Runs `run` under `script`, on a pseudo-terminal holding its stdout and
/// stderr; what the terminal received is the returned stdout.
fn on_a_terminal(run: Run) -> Output {
    let quote = |s: &std::ffi::OsStr| format!("'{}'", s.to_string_lossy().replace('\'', r"'\''"));
    let line: Vec<String> = std::iter::once(run.cmd.get_program())
        .chain(run.cmd.get_args())
        .map(quote)
        .collect();
    // A terminal of a usual size: script's own has none.
    let line = format!("stty cols 100 rows 30; exec {}", line.join(" "));
    let mut script = Command::new("script");
    script
        .args(["-qefc", &line, "/dev/null"])
        .stdin(Stdio::null());
    for (k, v) in run.cmd.get_envs() {
        match v {
            Some(v) => script.env(k, v),
            None => script.env_remove(k),
        };
    }
    if let Some(dir) = run.cmd.get_current_dir() {
        script.current_dir(dir);
    }
    let out = script.output().expect("run script");
    Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    }
}

/// The terminal's lines as they finally read: what follows the last
/// carriage return or erase-line of each (a cleared bar leaves nothing).
fn as_read(tty: &str) -> Vec<String> {
    tty.split("\r\n")
        .map(|l| {
            let l = l.rsplit('\r').next().unwrap_or(l);
            l.rsplit("\x1b[2K").next().unwrap_or(l).to_string()
        })
        .collect()
}

#[test]
fn a_terminal_shows_download_and_unpack_bars_and_a_pipe_nothing() {
    let moto = Moto::shared();
    let bucket = Moto::unique_bucket("progress");
    let mut env = Env::new();
    env.use_s3(moto, &bucket, "releases");
    for name in ["big-1.zip", "big-2.zip"] {
        env.release(name)
            .file_bytes("payload.bin", incompressible(4 << 20))
            .publish_s3(moto, &bucket, "releases");
    }

    let out = on_a_terminal(env.c2(&["start", "big-1.zip"]));
    assert_eq!(out.code, Some(0), "{out}");
    let tty = &out.stdout;
    for bar in ["downloading big-1.zip [", "unpacking big-1.zip ["] {
        let at = tty
            .find(bar)
            .unwrap_or_else(|| panic!("no {bar:?} bar on the terminal:\n{tty:?}"));
        let drawn = tty[at..].split(['\r', '\n']).next().unwrap().trim_end();
        // How much of how much, how fast.
        assert!(drawn.contains("/4.00 MiB "), "{drawn:?}");
        assert!(
            drawn.ends_with("iB/s") || drawn.ends_with(" B/s"),
            "{drawn:?}"
        );
    }
    // Each bar was cleared: the log lines read on the terminal exactly as
    // c2 logged them.
    let lines = as_read(tty);
    let log = env.read("log/c2.log");
    assert!(log.contains(" .Unpacking big-1.zip\n"), "{log}");
    for logged in log.lines() {
        assert!(
            lines.iter().any(|l| l == logged),
            "{logged:?} does not read whole on the terminal:\n{lines:#?}"
        );
    }
    assert!(
        !lines.iter().any(|l| l.contains("big-1.zip [")),
        "a bar was left on the terminal:\n{lines:#?}"
    );

    // Not a terminal: not a byte of it.
    let out = env.c2(&["start", "big-2.zip"]).ok();
    assert_eq!(out.stderr, "", "{out}");
    assert!(!out.stdout.contains("big-2.zip ["), "{out}");
    assert_eq!(env.current().as_deref(), Some("big-2"));
}
