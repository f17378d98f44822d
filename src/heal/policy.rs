//! The restart policy, as a pure function of a deploy's record and what
//! its health check just answered: when a deploy counts as down, when it is
//! restarted, how long a failed restart waits, and when c2 gives up on a
//! deploy that keeps dying (flapping). Kept apart from the code that asks
//! and restarts, so every rule is tested without a clock or a process.

use serde::{Deserialize, Serialize};

use crate::names::ReleaseName;

/// Failed checks in a row that make a deploy down.
pub const FAILURES_TO_RESTART: u32 = 3;
/// The wait after a first failed restart; it doubles after each failure.
pub const FIRST_BACKOFF_SECS: u64 = 15;
/// The longest wait between failed restarts.
pub const MAX_BACKOFF_SECS: u64 = 600;
/// Restarts within [`FLAP_WINDOW_SECS`] after which c2 gives up.
pub const FLAP_RESTARTS: usize = 5;
pub const FLAP_WINDOW_SECS: u64 = 3600;

/// Which deploy a record is about: a deploy stopped and started anew under
/// the same label (another release, port or directory) is another deploy,
/// and starts with a clean record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub release: ReleaseName,
    pub port: u16,
    /// The process tag of its directory, made when the directory was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

/// What c2 remembers of one deploy's health, in `health.json`. Times are
/// seconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    #[serde(flatten)]
    pub identity: Identity,
    /// Failed checks in a row.
    #[serde(default)]
    pub failures: u32,
    /// Why the last check or restart failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When it was restarted within the last hour.
    #[serde(default)]
    pub restarts: Vec<u64>,
    /// How many times it was restarted in all.
    #[serde(default)]
    pub restart_count: u64,
    /// After a failed restart: not again before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<u64>,
    /// The wait after the next failed restart.
    #[serde(default = "first_backoff")]
    pub backoff_secs: u64,
    /// Given up on until it answers healthy again.
    #[serde(default)]
    pub flapping: bool,
}

fn first_backoff() -> u64 {
    FIRST_BACKOFF_SECS
}

impl Record {
    pub fn new(identity: Identity) -> Record {
        Record {
            identity,
            failures: 0,
            last_error: None,
            restarts: Vec::new(),
            restart_count: 0,
            retry_at: None,
            backoff_secs: FIRST_BACKOFF_SECS,
            flapping: false,
        }
    }

    /// Down and about to be restarted, or waiting to be restarted again.
    pub fn restarting(&self) -> bool {
        !self.flapping && self.failures >= FAILURES_TO_RESTART
    }

    /// What a report says of it: `healthy`, `unhealthy: <why>` or
    /// `flapping: <why>`.
    pub fn health(&self) -> String {
        let why = self.last_error.as_deref().unwrap_or("no answer");
        match (self.flapping, self.failures) {
            (true, _) => format!("flapping: {why}"),
            (false, 0) => "healthy".to_string(),
            (false, _) => format!("unhealthy: {why}"),
        }
    }
}

/// What a check answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Healthy,
    Unhealthy(String),
}

/// What to do about a deploy after its check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing (healthy, not down yet, waiting, or given up on).
    Wait,
    /// It answers again after failing.
    Recovered,
    /// Restart it now.
    Restart,
    /// It just became flapping: say so once, and stop restarting it.
    GiveUp,
}

/// Takes in a check's answer at `now`. `rebooted`: the machine started
/// since the last round, so a deploy that fails its check cannot have
/// kept its processes and is down at once.
pub fn after_check(record: &mut Record, check: Check, now: u64, rebooted: bool) -> Decision {
    let why = match check {
        Check::Healthy => {
            let recovered = record.failures > 0 || record.flapping;
            let count = (record.restarts.clone(), record.restart_count);
            *record = Record::new(record.identity.clone());
            // The restarts stay counted: flapping is about the last hour.
            (record.restarts, record.restart_count) = count;
            return match recovered {
                true => Decision::Recovered,
                false => Decision::Wait,
            };
        }
        Check::Unhealthy(why) => why,
    };
    record.failures = record.failures.saturating_add(1);
    record.last_error = Some(why);
    let down = record.failures >= FAILURES_TO_RESTART || rebooted;
    if record.flapping || !down || record.retry_at.is_some_and(|at| now < at) {
        return Decision::Wait;
    }
    record
        .restarts
        .retain(|&t| now.saturating_sub(t) < FLAP_WINDOW_SECS);
    if record.restarts.len() >= FLAP_RESTARTS {
        record.flapping = true;
        record.retry_at = None;
        return Decision::GiveUp;
    }
    Decision::Restart
}

/// Takes in how a restart at `now` went.
pub fn after_restart(record: &mut Record, outcome: Result<(), String>, now: u64) {
    record.restarts.push(now);
    record.restart_count = record.restart_count.saturating_add(1);
    match outcome {
        Ok(()) => {
            record.failures = 0;
            record.last_error = None;
            record.retry_at = None;
            record.backoff_secs = FIRST_BACKOFF_SECS;
        }
        Err(why) => {
            record.last_error = Some(why);
            record.retry_at = Some(now.saturating_add(record.backoff_secs));
            record.backoff_secs = record
                .backoff_secs
                .saturating_mul(2)
                .clamp(FIRST_BACKOFF_SECS, MAX_BACKOFF_SECS);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record::new(Identity {
            release: ReleaseName::parse("shop-1.5.zip").unwrap(),
            port: 8001,
            tag: None,
        })
    }

    fn fail(r: &mut Record, now: u64) -> Decision {
        after_check(r, Check::Unhealthy("refused".into()), now, false)
    }

    #[test]
    fn three_failed_checks_in_a_row_make_a_deploy_down() {
        let mut r = record();
        assert_eq!(fail(&mut r, 0), Decision::Wait);
        assert_eq!(fail(&mut r, 10), Decision::Wait);
        assert_eq!(r.health(), "unhealthy: refused");
        // A good answer in between starts the count again.
        assert_eq!(
            after_check(&mut r, Check::Healthy, 20, false),
            Decision::Recovered
        );
        assert_eq!(r.health(), "healthy");
        assert_eq!(fail(&mut r, 30), Decision::Wait);
        assert_eq!(fail(&mut r, 40), Decision::Wait);
        assert_eq!(fail(&mut r, 50), Decision::Restart);
        assert!(r.restarting());
        after_restart(&mut r, Ok(()), 50);
        assert_eq!((r.failures, r.restart_count), (0, 1));
        assert_eq!(
            after_check(&mut r, Check::Healthy, 60, false),
            Decision::Wait
        );
    }

    #[test]
    fn after_a_reboot_the_first_failure_is_down() {
        let mut r = record();
        assert_eq!(
            after_check(&mut r, Check::Unhealthy("refused".into()), 0, true),
            Decision::Restart
        );
    }

    #[test]
    fn a_failed_restart_waits_15_s_doubling_up_to_10_min() {
        let mut r = record();
        let mut now = 0;
        for _ in 0..3 {
            fail(&mut r, now);
        }
        let mut waits = Vec::new();
        for _ in 0..8 {
            after_restart(&mut r, Err("still refused".into()), now);
            let at = r.retry_at.unwrap();
            // Not before its time...
            assert_eq!(fail(&mut r, at - 1), Decision::Wait);
            waits.push(at - now);
            now = at;
            // ... but then at once, unless it has been restarted too often.
            r.restarts.clear();
            assert_eq!(fail(&mut r, now), Decision::Restart);
        }
        assert_eq!(waits, [15, 30, 60, 120, 240, 480, 600, 600]);
        assert_eq!(r.health(), "unhealthy: refused");
    }

    #[test]
    fn five_restarts_within_an_hour_is_flapping_until_healthy_again() {
        let mut r = record();
        let mut now = 1_000_000;
        let mut restarts = 0;
        loop {
            now += 10;
            match fail(&mut r, now) {
                Decision::Restart => {
                    restarts += 1;
                    after_restart(&mut r, Ok(()), now);
                }
                Decision::GiveUp => break,
                _ => {}
            }
        }
        assert_eq!(restarts, FLAP_RESTARTS);
        assert!(r.flapping && !r.restarting());
        assert_eq!(r.health(), "flapping: refused");
        // Given up on: no more restarts, however long it stays down.
        for _ in 0..100 {
            now += 10;
            assert_eq!(fail(&mut r, now), Decision::Wait);
        }
        assert_eq!(
            after_check(&mut r, Check::Healthy, now, false),
            Decision::Recovered
        );
        assert!(!r.flapping);
        assert_eq!(r.restart_count, 5);
    }

    #[test]
    fn restarts_older_than_an_hour_do_not_count_towards_flapping() {
        let mut r = record();
        for t in [0, 900, 1800, 2700, 3000] {
            after_restart(&mut r, Ok(()), t);
        }
        for t in [4580, 4590] {
            fail(&mut r, t);
        }
        // Five restarts, but the first two are over an hour old.
        assert_eq!(fail(&mut r, 4600), Decision::Restart);
        assert_eq!(r.restarts, [1800, 2700, 3000]);
    }

    #[test]
    fn a_record_survives_health_json() {
        let mut r = record();
        fail(&mut r, 5);
        after_restart(&mut r, Err("boom".into()), 7);
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<Record>(&text).unwrap(), r);
    }
}
