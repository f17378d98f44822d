//! Progress bars on stderr for the long steps of a deploy: downloading a
//! release and unpacking it. Only on a terminal: when stderr is a file or a
//! pipe (CI, systemd, `2>log`) nothing at all is written. A bar is cleared
//! when its step ends, so the log lines on stdout read as they would
//! without it, and a terminal that went away only loses the bar.

use std::io::{IsTerminal, Read};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// With a known total: what, how far, how much of how much, how fast.
const BAR: &str = "{msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec}";
/// Without one: how much so far, how fast.
const COUNTER: &str = "{msg} {binary_bytes} {binary_bytes_per_sec}";

/// A bar counting bytes, or nothing.
pub(crate) struct Progress(Option<ProgressBar>);

impl Progress {
    /// A bar labelled `what` for `total` bytes (a counter when it is not
    /// known), if stderr is a terminal.
    pub(crate) fn bytes(what: &str, total: Option<u64>) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        let template = if total.is_some() { BAR } else { COUNTER };
        let Ok(style) = ProgressStyle::with_template(template) else {
            return Progress(None);
        };
        let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr())
            .with_style(style.progress_chars("=> "))
            .with_message(what.to_string());
        Progress(Some(bar))
    }

    /// Counts `n` more bytes done.
    pub(crate) fn add(&self, n: u64) {
        if let Some(bar) = &self.0 {
            bar.inc(n);
        }
    }

    /// `read`, counting what is read from it.
    pub(crate) fn reading<R: Read>(&self, read: R) -> Reading<'_, R> {
        Reading {
            inner: read,
            progress: self,
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

/// A reader whose bytes count on a [`Progress`].
pub(crate) struct Reading<'a, R> {
    inner: R,
    progress: &'a Progress,
}

impl<R: Read> Read for Reading<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.add(n as u64);
        Ok(n)
    }
}
