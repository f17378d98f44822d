//! Why c2 refused what was asked, for callers that answer by the cause:
//! the HTTP API turns each into its status code (404, 409, 423, 504, 400).
//! On the command line a refusal is its message, like any other error.

use std::fmt;

/// The cause of a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Why {
    /// A release, deploy or endpoint that does not exist.
    NotFound,
    /// A rule says no: the deploy is connected, the label is taken, no
    /// port is free, no previous deploy, an unhealthy target.
    Conflict,
    /// The deploy lock is held.
    Locked,
    /// The fleet did not follow in time; the change stays.
    TimedOut,
    /// What was asked does not make sense (a malformed name, say).
    BadRequest,
}

/// A refusal: its cause, and the one-line message every caller shows.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub why: Why,
    message: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Refusal {}

/// A refusal of cause `why`, as an error.
pub(crate) fn refuse(why: Why, message: impl Into<String>) -> anyhow::Error {
    Refusal {
        why,
        message: message.into(),
    }
    .into()
}

/// The cause of `error`, if a refusal is anywhere in its chain.
pub(crate) fn why(error: &anyhow::Error) -> Option<Why> {
    error
        .chain()
        .find_map(|cause| cause.downcast_ref::<Refusal>())
        .map(|r| r.why)
}

/// `bail!` for refusals: `refused!(Conflict, "deploy {x} is connected")`.
macro_rules! refused {
    ($why:ident, $($message:tt)+) => {
        return Err($crate::refusal::refuse($crate::refusal::Why::$why, format!($($message)+)))
    };
}
pub(crate) use refused;

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn a_refusal_keeps_its_cause_through_context_and_reads_as_its_message() {
        let e: anyhow::Result<()> = Err(refuse(Why::Locked, "deploys are locked by alice"));
        let e = e.context("cannot start").unwrap_err();
        assert_eq!(why(&e), Some(Why::Locked));
        assert_eq!(
            format!("{e:#}"),
            "cannot start: deploys are locked by alice"
        );
        assert_eq!(why(&anyhow::anyhow!("disk full")), None);
    }
}
