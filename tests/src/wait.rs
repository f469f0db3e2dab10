//! Bounded waiting for tests: poll until something holds, or fail naming it.

use std::time::{Duration, Instant};

/// Calls `attempt` every `every` until it returns `Ok`, for at most `limit`;
/// then panics with `what` and the last `Err` (what was seen instead).
pub fn until<T>(what: &str, limit: Duration, every: Duration, mut attempt: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        match attempt() {
            Ok(v) => return v,
            Err(seen) => {
                assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}; last seen: {seen}");
            }
        }
        std::thread::sleep(every);
    }
}

/// [`until`] for a plain condition.
pub fn until_true(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    until(what, limit, Duration::from_millis(100), || if cond() { Ok(()) } else { Err("not yet".into()) });
}
