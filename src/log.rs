//! The operator-facing log, on `tracing`.
//!
//! Lines are `<UTC timestamp> <message>`, a nested step prefixed with one `.`
//! per level. Mutating commands also append every line to the config's
//! `logFile`; read-only commands write only to stdout. Warnings go to stderr
//! (and to the log file when one is open) so they never pollute output that
//! scripts parse, such as `status --json-output`.
//!
//! c2's own lines are events with the target [`TARGET`], written by
//! [`C2Lines`] exactly as above; a scope is a span of that target, so the
//! depth is the number of them around an event. Other crates' events (the
//! AWS SDK's) are shown only when asked for (`RUST_LOG`, `--verbose`), on
//! stderr, one line each.
//!
//! One global logger: c2 is a single-threaded CLI, and passing a logger
//! through every call would add noise for no gain. A line that cannot be
//! written (closed stdout, full disk) is dropped: it must not abort a deploy
//! midway.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::SystemTime;

use anyhow::{Context as _, Result};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::{filter_fn, EnvFilter, FilterExt};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// The target of c2's own log lines and scopes.
pub const TARGET: &str = "c2";

/// What `--verbose` shows of other crates when `RUST_LOG` is not set.
const VERBOSE_FILTER: &str = "debug";

static LOG_FILE: Mutex<Option<File>> = Mutex::new(None);

/// Installs the logger; `verbose` also shows other crates' events (unless
/// `RUST_LOG` says which). Call once, first thing.
pub fn init(verbose: bool) {
    let others = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => Some(directives),
        _ => verbose.then(|| VERBOSE_FILTER.to_string()),
    };
    let others = others.map(|directives| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .log_internal_errors(false)
            .with_filter(
                // A bad directive is skipped rather than failing the command.
                EnvFilter::builder()
                    .parse_lossy(directives)
                    .and(filter_fn(|meta| meta.target() != TARGET)),
            )
    });
    let subscriber = tracing_subscriber::registry()
        .with(C2Lines.with_filter(filter_fn(|meta| meta.target() == TARGET)))
        .with(others);
    // Only fails if a logger is already installed, which then stays.
    let _ = tracing::subscriber::set_global_default(subscriber);
}

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

/// Logs one line at the current nesting depth.
pub fn info(msg: &str) {
    tracing::info!(target: TARGET, "{msg}");
}

/// Reports something suspicious that does not stop the command.
pub fn warn(msg: &str) {
    tracing::warn!(target: TARGET, "{msg}");
}

/// Logs `msg`, then runs `f` one level deeper.
pub fn scope<T>(msg: &str, f: impl FnOnce() -> T) -> T {
    info(msg);
    // Left on return, early return or panic alike.
    let _nested = tracing::info_span!(target: TARGET, "scope").entered();
    f()
}

/// Writes c2's own events as log lines.
struct C2Lines;

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for C2Lines {
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let depth = ctx.event_scope(event).map_or(0, |scope| scope.count());
        let mut message = Message(String::new());
        event.record(&mut message);
        let warning = *event.metadata().level() == Level::WARN;
        let line = format!(
            "{} {}{}{}\n",
            humantime::format_rfc3339_micros(SystemTime::now()),
            ".".repeat(depth),
            if warning { "warning: " } else { "" },
            crate::output::one_line(&message.0)
        );
        if warning {
            let _ = std::io::stderr().write_all(line.as_bytes());
        } else {
            let _ = std::io::stdout().write_all(line.as_bytes());
        }
        if let Some(f) = LOG_FILE.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            let _ = f.write_all(line.as_bytes());
        }
    }
}

/// An event's message (the only field c2's events have).
struct Message(String);

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            use fmt::Write as _;
            let _ = write!(self.0, "{value:?}");
        }
    }
}
