//! A command's result on stdout (release names, status, help text…): the
//! one way c2 prints anything but log lines, which go through `log` and
//! never fail.
//!
//! Much of what c2 prints comes from outside: a deploy's health answer, a
//! slave's report, a lock file, a history event. Whatever reaches the
//! terminal has its control characters escaped ([`escape_controls`]), so
//! no such string can move the cursor, recolour or clear a terminal, or
//! pass for another line; JSON gets the same through its own escapes.
//!
//! Writing can fail for two reasons, told apart by [`Error`]: the reader
//! went away (`c2 list-releases | head -1`), which ends the command quietly
//! with exit status 0, as `main` does for [`Error::Closed`]: c2 did what it
//! was asked, and the reader chose to stop, so a pipeline under `set -o
//! pipefail` does not fail for it; or stdout cannot take the bytes (a full
//! disk, an I/O error), which is a failure like any other.

use std::borrow::Cow;
use std::fmt;
use std::io::{self, Write};

/// Why a command's output could not be written.
#[derive(Debug)]
pub enum Error {
    /// The reader of stdout closed it.
    Closed,
    /// Anything else, e.g. no space left on the device stdout is a file on.
    Failed(io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Closed => write!(f, "stdout was closed by its reader"),
            Error::Failed(e) => write!(f, "cannot write to stdout: {e}"),
        }
    }
}

// No `source`: the message already ends with the cause, and `{:#}` would
// repeat it.
impl std::error::Error for Error {}

/// `text` with every control character escaped as Rust writes it
/// (`\u{1b}`, `\r`), except line breaks and tabs when `lines` is set;
/// so are the invisible characters that reorder or hide text (bidi
/// overrides, zero-width marks), which could make a line read as another.
pub fn escape_controls(text: &str, lines: bool) -> Cow<'_, str> {
    let escaped =
        |c: char| (c.is_control() || invisible(c)) && !(lines && (c == '\n' || c == '\t'));
    if !text.chars().any(escaped) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if escaped(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Zero-width and direction-changing format characters.
fn invisible(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

/// `text` on one line whatever it holds: every control character escaped,
/// line breaks included.
pub fn one_line(text: &str) -> Cow<'_, str> {
    escape_controls(text, false)
}

/// Writes `text`, its control characters escaped but for line breaks and
/// tabs.
pub fn print(text: &str) -> Result<(), Error> {
    let text = escape_controls(text, true);
    let mut out = io::stdout().lock();
    // Flushed now: an error left in the buffer would surface only at exit,
    // where std drops it silently.
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| match e.kind() {
            io::ErrorKind::BrokenPipe => Error::Closed,
            _ => Error::Failed(e),
        })
}

/// Writes `text` and a newline.
pub fn line(text: &str) -> Result<(), Error> {
    print(&format!("{text}\n"))
}

/// Writes `value` as one line of JSON. serde_json escapes the control
/// characters below U+0020; the others (DEL, the C1 controls, which some
/// terminals obey) can only be inside strings, where `\uXXXX` is valid.
pub fn json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string(value)?;
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            escaped.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            escaped.push(c);
        }
    }
    Ok(line(&escaped)?)
}

/// The output of a change under way. Each line is written as it comes,
/// but a line that cannot be written (the reader gone, a full disk) never
/// stops the change halfway: the change runs to its end, and the first
/// failure is returned by [`Deferred::finish`], as a command's own.
#[derive(Default)]
pub struct Deferred {
    failed: Option<Error>,
}

impl Deferred {
    /// Writes `text` and a newline, unless an earlier line failed.
    pub fn line(&mut self, text: &str) {
        if self.failed.is_none() {
            self.failed = line(text).err();
        }
    }

    /// The first failure, once the change is done.
    pub fn finish(self) -> Result<(), Error> {
        self.failed.map_or(Ok(()), Err)
    }
}

/// Whether `error` is (or was caused by) the reader closing stdout.
pub fn closed(error: &anyhow::Error) -> bool {
    error
        .chain()
        .any(|cause| matches!(cause.downcast_ref::<Error>(), Some(Error::Closed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_from_outside_are_escaped() {
        assert_eq!(
            escape_controls("500 \u{1b}[31mRED\u{7}\nnext\tcol", true),
            "500 \\u{1b}[31mRED\\u{7}\nnext\tcol"
        );
        assert_eq!(one_line("a\nb\r\u{9b}2J"), "a\\nb\\r\\u{9b}2J");
        assert_eq!(one_line("web1\u{202e}1bew"), "web1\\u{202e}1bew");
        assert_eq!(one_line("caf\u{e9} \u{1f600}"), "caf\u{e9} \u{1f600}");
        assert!(matches!(escape_controls("plain", true), Cow::Borrowed(_)));
    }

    #[test]
    fn a_closed_stdout_is_told_apart_from_a_failing_one_through_context() {
        let closed_error = anyhow::Error::new(Error::Closed).context("listing releases");
        assert!(closed(&closed_error));
        let full = io::Error::from_raw_os_error(28);
        let full_error = anyhow::Error::new(Error::Failed(full)).context("status");
        assert!(!closed(&full_error));
        assert_eq!(
            format!("{full_error:#}"),
            "status: cannot write to stdout: No space left on device (os error 28)"
        );
    }
}
