//! A command's result on stdout (release names, status, help text…): the
//! one way c2 prints anything but log lines, which go through `log` and
//! never fail.
//!
//! Writing can fail for two reasons, told apart by [`Error`]: the reader
//! went away (`c2 list-releases | head -1`), which ends the command quietly
//! with exit status 0, as `main` does for [`Error::Closed`]: c2 did what it
//! was asked, and the reader chose to stop, so a pipeline under `set -o
//! pipefail` does not fail for it; or stdout cannot take the bytes (a full
//! disk, an I/O error), which is a failure like any other.

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

/// Writes `text` as it is.
pub fn print(text: &str) -> Result<(), Error> {
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
