//! The operator-facing log (SPEC §4).
//!
//! Lines are `<UTC timestamp> <message>`, a nested step prefixed with one `.`
//! per level. Mutating commands also append every line to the config's
//! `logFile`; read-only commands write only to stdout. Warnings go to stderr
//! (and to the log file when one is open) so they never pollute output that
//! scripts parse, such as `status --json-output`.
//!
//! One global logger: c2 is a single-threaded CLI, and passing a logger
//! through every call would add noise for no gain.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

use anyhow::{Context, Result};

static DEPTH: AtomicUsize = AtomicUsize::new(0);
static LOG_FILE: Mutex<Option<File>> = Mutex::new(None);

/// Starts appending log lines to `path` (creating its directory if needed).
pub fn open_file(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create log directory {}", dir.display()))?;
    }
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open log file {} (logFile)", path.display()))?;
    *LOG_FILE.lock().unwrap_or_else(|e| e.into_inner()) = Some(file);
    Ok(())
}

fn timestamp() -> String {
    humantime::format_rfc3339_micros(SystemTime::now()).to_string()
}

fn format_line(msg: &str) -> String {
    let dots = ".".repeat(DEPTH.load(Ordering::Relaxed));
    format!("{} {dots}{msg}", timestamp())
}

fn to_file(line: &str) {
    if let Some(f) = LOG_FILE.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        // A log file that cannot be written must not abort a deploy midway.
        let _ = writeln!(f, "{line}");
    }
}

/// Logs one line at the current nesting depth.
pub fn info(msg: &str) {
    let line = format_line(msg);
    println!("{line}");
    to_file(&line);
}

/// Reports something suspicious that does not stop the command.
pub fn warn(msg: &str) {
    let line = format_line(&format!("warning: {msg}"));
    eprintln!("{line}");
    to_file(&line);
}

/// Logs `msg`, then runs `f` one level deeper.
pub fn scope<T>(msg: &str, f: impl FnOnce() -> T) -> T {
    info(msg);
    let _guard = Nested::enter();
    f()
}

/// Raises the nesting depth until dropped, also on early return or panic.
struct Nested;

impl Nested {
    fn enter() -> Nested {
        DEPTH.fetch_add(1, Ordering::Relaxed);
        Nested
    }
}

impl Drop for Nested {
    fn drop(&mut self) {
        DEPTH.fetch_sub(1, Ordering::Relaxed);
    }
}
