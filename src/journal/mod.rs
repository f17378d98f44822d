//! The operators' journal: the deploy lock and the history of changes.
//!
//! Both live beside the state they guard: with remote state in the master
//! location (`<base>/lock.json`, `<base>/history/`), otherwise on this
//! machine (`<deploysDir>/frontend-proxy/lock.json` and `history.jsonl`),
//! in noproxy mode too, so operators have one place to look. Where is a
//! [`Journal`]; what a lock and an event are, and the rules around them,
//! are here.

mod local;
mod remote;

pub(crate) use remote::{entry as history_entry, LOCK as LOCK_FILE};
pub(crate) mod summary;

use std::time::SystemTime;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::config::{DeployMode, RemoteLocation, ToolConfig};
use crate::output::one_line;
use crate::refusal::refused;
use crate::target::Transition;

/// The most a lock file may hold: it is a few short strings.
pub(crate) const MAX_LOCK_BYTES: u64 = 64 * 1024;
/// The longest lock message, in characters.
const MAX_MESSAGE_CHARS: usize = 500;

/// Where the lock and the history are kept.
pub(crate) trait Journal {
    /// The lock file's path or URL, for messages.
    fn lock_location(&self) -> String;
    /// The lock file's bytes, if there is one (bounded).
    fn read_lock(&self) -> Result<Option<Vec<u8>>>;
    /// Creates the lock file unless one exists: `Ok(false)` if it does.
    fn create_lock(&self, bytes: &[u8]) -> Result<bool>;
    /// Removes the lock file; a missing one is fine.
    fn delete_lock(&self) -> Result<()>;
    /// Adds one event to the history.
    fn append(&self, event: &Event) -> Result<()>;
    /// The `limit` newest events, newest first. An event that cannot be
    /// read is skipped with a warning.
    fn recent(&self, limit: usize) -> Result<Vec<Event>>;
}

/// The journal of the configured mode.
pub(crate) fn open(config: &ToolConfig) -> Box<dyn Journal> {
    match &config.deploy_mode {
        DeployMode::Proxy(proxy) => match &proxy.remote_state_s3 {
            Some(location) => beside_master(location),
            None => Box::new(local::LocalJournal::new(config.layout())),
        },
        DeployMode::Noproxy => Box::new(local::LocalJournal::new(config.layout())),
    }
}

/// The journal of the remote state at `location`.
pub(crate) fn beside_master(location: &RemoteLocation) -> Box<dyn Journal> {
    Box::new(remote::RemoteJournal::new(location))
}

/// `lock.json`: who holds the deploy lock, since when, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Lock {
    pub user: String,
    pub host: String,
    /// RFC 3339 UTC, to the second.
    pub time: String,
    pub message: String,
}

impl Lock {
    /// `alice@ci-7 since 2026-11-23T03:12:09Z: <message>`, on one line
    /// whatever the file holds.
    pub(crate) fn holder(&self) -> String {
        one_line(&format!(
            "{}@{} since {}: {}",
            self.user, self.host, self.time, self.message
        ))
        .into_owned()
    }
}

/// One change, as the history keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Event {
    pub time: String,
    pub user: String,
    pub host: String,
    /// The command line after `c2`, without the global options.
    pub command: Vec<String>,
    pub before: Value,
    pub after: Value,
}

/// Who makes a change, as the history and the deploy lock record it.
pub(crate) enum By {
    /// This process's user, with the command line as typed.
    Shell,
    /// An API token, by name: user `<name>@api`, with the change in the
    /// command line's words.
    Token(String),
}

impl By {
    /// User and host.
    fn who(&self) -> (String, String) {
        match self {
            By::Shell => whoami(),
            By::Token(name) => (format!("{name}@api"), whoami().1),
        }
    }

    /// The history's event for `transition`, now. `words` is the change as
    /// the command line says it, recorded for the API's changes.
    pub(crate) fn event(&self, words: Vec<String>, transition: Transition) -> Event {
        let (user, host) = self.who();
        let command = match self {
            By::Shell => crate::cli::typed_command(),
            By::Token(_) => words,
        };
        Event {
            time: now_seconds(),
            user,
            host,
            command,
            before: transition.before,
            after: transition.after,
        }
    }
}

/// Adds a change that was made to the history. It is made by then, so a
/// history that cannot be written is a warning, not a failure.
pub(crate) fn record(journal: &dyn Journal, by: &By, words: Vec<String>, transition: Transition) {
    if let Err(e) = journal.append(&by.event(words, transition)) {
        crate::log::warn(&format!(
            "the change was made but could not be added to the history: {e:#}"
        ));
    }
}

/// The words of `lock acquire -m MESSAGE`.
pub(crate) fn acquire_words(message: &str) -> Vec<String> {
    ["lock", "acquire", "-m", message]
        .map(String::from)
        .to_vec()
}

/// The words of `lock release`.
pub(crate) fn release_words() -> Vec<String> {
    ["lock", "release"].map(String::from).to_vec()
}

impl Event {
    /// `2026-11-23T03:12:09Z alice@ci-7 connect main shop-1.5 (main: shop-1.4 -> shop-1.5)`.
    pub(crate) fn line(&self) -> String {
        one_line(&format!(
            "{} {}@{} {} ({})",
            self.time,
            self.user,
            self.host,
            self.command
                .iter()
                .map(|word| quoted(word))
                .collect::<Vec<_>>()
                .join(" "),
            summary::summary(&self.before, &self.after)
        ))
        .into_owned()
    }
}

/// A word of a command as a shell would need it typed back: single-quoted
/// when it holds anything but plain characters.
fn quoted(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_.,:/=@+%".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        return word.to_string();
    }
    format!("'{}'", word.replace('\'', "'\\''"))
}

/// Parses one stored event; `name` says where it came from.
fn parse_event(bytes: &[u8], name: &str) -> Result<Event> {
    crate::proxy::state::parse_object(bytes, name, "history event")
}

/// The deploy lock as it stands; one that is not a lock (garbage, or too
/// large to be one) is an error saying how to lift it. Failing to read it
/// at all (out of reach, no credentials, a missing CA file) says nothing
/// of the lock, so no advice to remove it.
pub(crate) fn current_lock(journal: &dyn Journal) -> Result<Option<Lock>> {
    let location = journal.lock_location();
    let bytes = match journal.read_lock() {
        Ok(bytes) => bytes,
        Err(e) if e.chain().any(|c| c.is::<crate::fsutil::TooLarge>()) => {
            bail!("cannot read the deploy lock: {e:#}; `c2 lock release` removes it")
        }
        Err(e) => return Err(e.context("cannot read the deploy lock")),
    };
    let Some(bytes) = bytes else {
        return Ok(None);
    };
    crate::proxy::state::parse_object(&bytes, &location, "deploy lock")
        .map(Some)
        .map_err(|e| anyhow::anyhow!("{e:#}; `c2 lock release` removes it"))
}

/// Whether the lock "file" is something else (a directory, a FIFO).
fn not_a_file(e: &anyhow::Error) -> bool {
    e.chain()
        .any(|cause| cause.downcast_ref::<crate::fsutil::NotAFile>().is_some())
}

fn read_lock(journal: &dyn Journal) -> Result<Option<Lock>> {
    let location = journal.lock_location();
    let bytes = journal.read_lock().context("cannot read the deploy lock")?;
    let Some(bytes) = bytes else {
        return Ok(None);
    };
    crate::proxy::state::parse_object(&bytes, &location, "deploy lock").map(Some)
}

/// Refuses a deploy command while the lock is held. A command checks when
/// it begins, and again right before it changes anything (once it holds
/// this machine's lock, or before each write of the master), so a command
/// that was waiting when the lock was taken is refused too.
pub(crate) fn check_unlocked(journal: &dyn Journal) -> Result<()> {
    match current_lock(journal)? {
        None => Ok(()),
        Some(lock) => refused!(
            Locked,
            "deploys are locked by {}; `c2 lock release` lifts the lock",
            lock.holder()
        ),
    }
}

/// `lock acquire -m MESSAGE`.
pub(crate) fn acquire(journal: &dyn Journal, message: &str, by: &By) -> Result<Transition> {
    if message.trim().is_empty() {
        refused!(
            BadRequest,
            "the lock message is empty: say why deploys are locked (-m \"...\")"
        );
    }
    if message.chars().count() > MAX_MESSAGE_CHARS {
        refused!(
            BadRequest,
            "the lock message is longer than {MAX_MESSAGE_CHARS} characters"
        );
    }
    if message.chars().any(char::is_control) {
        refused!(
            BadRequest,
            "the lock message must be one line, without control characters"
        );
    }
    let (user, host) = by.who();
    let lock = Lock {
        user,
        host,
        time: now_seconds(),
        message: message.to_string(),
    };
    let mut bytes = serde_json::to_vec_pretty(&lock)?;
    bytes.push(b'\n');
    // A lock released between our attempt and our read: try again.
    for _ in 0..3 {
        if journal.create_lock(&bytes)? {
            crate::log::info(&format!("Deploys locked by {}", lock.holder()));
            return Ok(Transition {
                before: json!({ "lock": null }),
                after: json!({ "lock": lock }),
            });
        }
        if let Some(holder) = current_lock(journal)? {
            refused!(Locked, "deploys are already locked by {}", holder.holder());
        }
    }
    bail!(
        "the deploy lock {} keeps appearing and disappearing: try again",
        journal.lock_location()
    )
}

/// `lock release`: whatever lock is held, by anyone; an unreadable lock
/// file is removed all the same.
pub(crate) fn release(journal: &dyn Journal) -> Result<Transition> {
    let before = match read_lock(journal) {
        Ok(None) => {
            crate::log::info("Deploys were not locked: nothing to release");
            return Ok(Transition {
                before: json!({ "lock": null }),
                after: json!({ "lock": null }),
            });
        }
        Ok(Some(lock)) => {
            journal.delete_lock()?;
            crate::log::info(&format!(
                "Deploys unlocked (they were locked by {})",
                lock.holder()
            ));
            json!({ "lock": lock })
        }
        Err(e) if not_a_file(&e) => return Err(e),
        Err(e) => {
            journal.delete_lock()?;
            crate::log::info(&format!("Removed the unreadable deploy lock ({e:#})"));
            json!({ "lock": "unreadable" })
        }
    };
    Ok(Transition {
        before,
        after: json!({ "lock": null }),
    })
}

/// The login name of this process's user (else `$USER`, else the uid) and
/// the host name.
fn whoami() -> (String, String) {
    let uid = nix::unistd::getuid();
    let user = match nix::unistd::User::from_uid(uid) {
        Ok(Some(u)) => u.name,
        _ => std::env::var("USER")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| uid.to_string()),
    };
    let host = crate::remote::identity::host_name();
    let host = if host.is_empty() {
        "unknown-host".to_string()
    } else {
        host
    };
    (user, host)
}

fn now_seconds() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_stays_on_one_line() {
        let lock = Lock {
            user: "alice".into(),
            host: "ci-7".into(),
            time: "2026-11-23T03:12:09Z".into(),
            message: "release\nfreeze".into(),
        };
        assert_eq!(
            lock.holder(),
            "alice@ci-7 since 2026-11-23T03:12:09Z: release\\nfreeze"
        );
    }

    #[test]
    fn command_words_read_back_as_typed() {
        assert_eq!(quoted("shop-1.5.zip"), "shop-1.5.zip");
        assert_eq!(quoted("incident 42"), "'incident 42'");
        assert_eq!(quoted("it's"), "'it'\\''s'");
        assert_eq!(quoted(""), "''");
    }

    #[test]
    fn an_event_line_reads_like_the_command_and_what_it_changed() {
        let event = Event {
            time: "2026-11-23T03:12:09Z".into(),
            user: "alice".into(),
            host: "ci-7".into(),
            command: vec!["connect".into(), "main".into(), "shop-1.5".into()],
            before: json!({"deploys": {}, "connections": {"main": "shop-1.4"}}),
            after: json!({"deploys": {}, "connections": {"main": "shop-1.5"}}),
        };
        assert_eq!(
            event.line(),
            "2026-11-23T03:12:09Z alice@ci-7 connect main shop-1.5 (main: shop-1.4 -> shop-1.5)"
        );
    }
}
