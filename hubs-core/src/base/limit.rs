//! Declarative limits on hub methods (no SignalR has them): a rate (a token bucket) and a
//! number of calls at once, per connection or per user, declared with
//! `#[hub(limit(...))]` on the method and enforced by a [`HubFilter`] the runtime puts
//! after the hub's own filters. A call over a limit gets a clear error and the connection
//! stays open.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::base::error::DispatchError;
use crate::base::filter::{HubFilter, HubInvocation, Next};
use crate::base::future::BoxFuture;
use crate::base::stream::Reply;

/// Whom a limit counts for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Each connection on its own.
    Connection,
    /// Each user across their connections (anonymous connections count on their own).
    User,
}

impl Scope {
    fn name(self) -> &'static str {
        match self {
            Self::Connection => "connection",
            Self::User => "user",
        }
    }
}

/// A limit on one method, as `#[hub(limit(...))]` declares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// At most `count` calls per `period`, in bursts of at most `burst` (a token bucket
    /// that holds `burst` tokens and gains `count` per `period`).
    Rate {
        /// Calls per period.
        count: u32,
        /// The period, in milliseconds.
        period_ms: u64,
        /// The largest burst.
        burst: u32,
        /// Whom it counts for.
        scope: Scope,
    },
    /// At most `max` calls running at once (for a streaming method: until it returns its
    /// stream).
    Concurrency {
        /// Calls at once.
        max: u32,
        /// Whom it counts for.
        scope: Scope,
    },
}

impl Limit {
    /// The error text of a refused call to `method`.
    pub fn refusal(&self, method: &str) -> String {
        match *self {
            Self::Rate {
                count,
                period_ms,
                scope,
                ..
            } => format!(
                "Failed to invoke '{method}': rate limit exceeded (at most {count} calls per {} per {}).",
                period_name(period_ms),
                scope.name()
            ),
            Self::Concurrency { max, scope } => format!(
                "Failed to invoke '{method}': too many calls at once (at most {max} per {}).",
                scope.name()
            ),
        }
    }

    fn scope(&self) -> Scope {
        match *self {
            Self::Rate { scope, .. } | Self::Concurrency { scope, .. } => scope,
        }
    }
}

fn period_name(period_ms: u64) -> String {
    match period_ms {
        1_000 => "second".to_owned(),
        60_000 => "minute".to_owned(),
        3_600_000 => "hour".to_owned(),
        ms if ms % 1_000 == 0 => format!("{} seconds", ms / 1_000),
        ms => format!("{ms} ms"),
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

#[derive(Debug, Default)]
struct Counts {
    buckets: HashMap<String, Bucket>,
    running: HashMap<String, u32>,
}

/// The filter that enforces one [`Limit`] on one method.
#[derive(Debug)]
pub struct LimitFilter {
    limit: Limit,
    method: &'static str,
    counts: Arc<Mutex<Counts>>,
}

impl LimitFilter {
    /// Enforces `limit` on calls to `method` (other calls pass).
    pub fn new(method: &'static str, limit: Limit) -> Self {
        Self {
            limit,
            method,
            counts: Arc::default(),
        }
    }

    fn key(&self, invocation: &HubInvocation) -> String {
        match (self.limit.scope(), invocation.user_id()) {
            (Scope::User, Some(user)) => format!("u:{user}"),
            _ => format!("c:{}", invocation.connection_id()),
        }
    }

    /// Forgets a connection that closed (its buckets and counts).
    pub fn forget(&self, connection: &crate::base::connection_id::ConnectionId) {
        let key = format!("c:{connection}");
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.buckets.remove(&key);
        counts.running.remove(&key);
        // Users' full buckets are forgotten too, now and then.
        if counts.buckets.len() > 1024 {
            let (count, period_ms, burst) = match self.limit {
                Limit::Rate {
                    count,
                    period_ms,
                    burst,
                    ..
                } => (count, period_ms, burst),
                Limit::Concurrency { .. } => return,
            };
            let now = Instant::now();
            counts.buckets.retain(|_, bucket| {
                refill(bucket, now, count, period_ms, burst);
                bucket.tokens < f64::from(burst)
            });
        }
    }
}

fn refill(bucket: &mut Bucket, now: Instant, count: u32, period_ms: u64, burst: u32) {
    let elapsed = now.duration_since(bucket.updated);
    let per_ms = f64::from(count) / period_ms.max(1) as f64;
    bucket.tokens = (bucket.tokens + elapsed.as_millis() as f64 * per_ms).min(f64::from(burst));
    bucket.updated = now;
}

/// Gives a running call's place back when it finishes.
struct Running {
    counts: Arc<Mutex<Counts>>,
    key: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(running) = counts.running.get_mut(&self.key) {
            *running -= 1;
            if *running == 0 {
                counts.running.remove(&self.key);
            }
        }
    }
}

impl HubFilter for LimitFilter {
    fn invoke(
        &self,
        invocation: HubInvocation,
        next: Next,
    ) -> BoxFuture<Result<Reply, DispatchError>> {
        if invocation.method() != self.method {
            return next.run(invocation);
        }
        let key = self.key(&invocation);
        let refused = || {
            let text = self.limit.refusal(self.method);
            Box::pin(async move { Err(DispatchError::Refused { text }) })
                as BoxFuture<Result<Reply, DispatchError>>
        };
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        match self.limit {
            Limit::Rate {
                count,
                period_ms,
                burst,
                ..
            } => {
                let now = Instant::now();
                let bucket = counts.buckets.entry(key).or_insert(Bucket {
                    tokens: f64::from(burst),
                    updated: now,
                });
                refill(bucket, now, count, period_ms, burst);
                if bucket.tokens < 1.0 {
                    return refused();
                }
                bucket.tokens -= 1.0;
                drop(counts);
                next.run(invocation)
            }
            Limit::Concurrency { max, .. } => {
                let running = counts.running.entry(key.clone()).or_insert(0);
                if *running >= max {
                    return refused();
                }
                *running += 1;
                drop(counts);
                let place = Running {
                    counts: self.counts.clone(),
                    key,
                };
                let call = next.run(invocation);
                Box::pin(async move {
                    let outcome = call.await;
                    drop(place);
                    outcome
                })
            }
        }
    }
}
