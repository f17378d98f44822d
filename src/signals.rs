//! Graceful stop for long-running loops (`slave-update --repeat` under
//! systemd): SIGTERM or SIGINT sets a flag; the executor finishes the
//! action under way, records it, and the loop exits 0.

use std::sync::atomic::{AtomicBool, Ordering};

use signal_hook::consts::{SIGINT, SIGTERM};

static STOP: AtomicBool = AtomicBool::new(false);

/// Routes SIGTERM and SIGINT to the stop flag.
pub fn install() {
    for signal in [SIGTERM, SIGINT] {
        // sigaction only fails for invalid signals; should it ever fail, the
        // signal keeps its default action (the loop stops mid-round).
        if let Err(e) = signal_hook::flag::register(signal, &STOP) {
            crate::log::warn(&format!("cannot catch signal {signal}: {e}"));
        }
    }
}

pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Sleeps up to `d`, returning early once a stop is requested.
pub fn sleep(d: std::time::Duration) {
    let deadline = std::time::Instant::now() + d;
    while !stop_requested() {
        let now = std::time::Instant::now();
        if now >= deadline {
            break;
        }
        std::thread::sleep((deadline - now).min(std::time::Duration::from_millis(50)));
    }
}
