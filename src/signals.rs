//! Graceful stop for long-running loops (`slave-update --repeat` under
//! systemd): SIGTERM or SIGINT sets a flag; the executor finishes the
//! action under way, records it, and the loop exits 0.

use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn request_stop(_signal: libc::c_int) {
    // Only an atomic store: the one thing a signal handler may safely do.
    STOP.store(true, Ordering::SeqCst);
}

/// Routes SIGTERM and SIGINT to the stop flag.
pub fn install() {
    let handler = request_stop as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only performs an atomic store.
    unsafe {
        libc::signal(libc::SIGTERM, handler);
        libc::signal(libc::SIGINT, handler);
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
