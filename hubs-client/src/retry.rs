//! When to try reconnecting.

use std::time::Duration;

/// Decides whether, and after how long, a lost connection is retried.
///
/// ```
/// use std::time::Duration;
/// use hubs_client::{DefaultRetryPolicy, RetryPolicy};
///
/// let policy = DefaultRetryPolicy::default();
/// assert_eq!(policy.next_delay(0, Duration::ZERO), Some(Duration::ZERO));
/// assert_eq!(policy.next_delay(3, Duration::from_secs(12)), Some(Duration::from_secs(30)));
/// assert_eq!(policy.next_delay(4, Duration::from_secs(42)), None);
/// ```
pub trait RetryPolicy: Send + Sync + 'static {
    /// The delay before retry number `retries` (from 0), `elapsed` after the connection
    /// was lost; `None` gives up.
    fn next_delay(&self, retries: u32, elapsed: Duration) -> Option<Duration>;
}

/// The official clients' default: retry after 0, 2, 10 and 30 seconds, then give up.
#[derive(Clone, Debug)]
pub struct DefaultRetryPolicy {
    delays: Vec<Duration>,
}

impl Default for DefaultRetryPolicy {
    fn default() -> Self {
        Self::with_delays([0, 2_000, 10_000, 30_000].map(Duration::from_millis))
    }
}

impl DefaultRetryPolicy {
    /// Retries after each of `delays`, then gives up.
    pub fn with_delays(delays: impl IntoIterator<Item = Duration>) -> Self {
        Self {
            delays: delays.into_iter().collect(),
        }
    }
}

impl RetryPolicy for DefaultRetryPolicy {
    fn next_delay(&self, retries: u32, _elapsed: Duration) -> Option<Duration> {
        self.delays.get(retries as usize).copied()
    }
}

impl<F> RetryPolicy for F
where
    F: Fn(u32, Duration) -> Option<Duration> + Send + Sync + 'static,
{
    fn next_delay(&self, retries: u32, elapsed: Duration) -> Option<Duration> {
        self(retries, elapsed)
    }
}
