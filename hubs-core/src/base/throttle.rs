//! Rate-limited warnings: a fault that repeats (a full server, slow consumers, a failing
//! backplane, accept errors) is logged at most once a second, with how many times it
//! happened since.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Lets a warning through at most once a second.
///
/// ```
/// use hubs_core::Throttle;
///
/// let throttle = Throttle::new();
/// assert_eq!(throttle.allow(), Some(1));
/// assert_eq!(throttle.allow(), None, "again within the second");
/// ```
#[derive(Debug)]
pub struct Throttle {
    started: Instant,
    /// Milliseconds since `started` of the last warning let through, plus one.
    last: AtomicU64,
    since: AtomicU64,
}

impl Default for Throttle {
    fn default() -> Self {
        Self::new()
    }
}

impl Throttle {
    /// A throttle that lets the first warning through.
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            last: AtomicU64::new(0),
            since: AtomicU64::new(0),
        }
    }

    /// Notes one occurrence; `Some(n)` when a warning may be logged now, `n` being the
    /// occurrences since the last one logged (this one included).
    pub fn allow(&self) -> Option<u64> {
        let count = self.since.fetch_add(1, Ordering::Relaxed) + 1;
        let now = u64::try_from(self.started.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let last = self.last.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < 1000 {
            return None;
        }
        self.last
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .ok()?;
        self.since.fetch_sub(count, Ordering::Relaxed);
        Some(count)
    }
}
