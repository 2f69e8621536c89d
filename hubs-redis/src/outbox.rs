//! The outbox: everything a server publishes goes through one bounded queue and one task,
//! so sends never wait on Redis, publishes keep their order, and each is numbered for the
//! receivers' duplicate check. A publish that fails is retried (Redis restarting, a hung
//! Redis) for a while; what still fails is counted, logged and, when the sender asked,
//! returned to it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::connection::Commands;
use hubs_core::{SendError, Throttle};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::envelope::{Envelope, Packet};

/// Envelopes published in one round trip at most.
const BATCH: usize = 64;

/// What the backplane of one hub on this server has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackplaneStats {
    /// Envelopes Redis accepted.
    pub published: u64,
    /// Envelopes given up on after the publish patience: lost for the other servers.
    pub failed: u64,
    /// Envelopes refused because the outbox was full: lost for the other servers.
    pub outbox_full: u64,
    /// Envelopes received twice (a retried publish Redis had accepted) and dropped.
    pub duplicates_dropped: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    published: AtomicU64,
    failed: AtomicU64,
    outbox_full: AtomicU64,
    pub(crate) duplicates_dropped: AtomicU64,
}

impl Counters {
    pub(crate) fn stats(&self) -> BackplaneStats {
        BackplaneStats {
            published: self.published.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            outbox_full: self.outbox_full.load(Ordering::Relaxed),
            duplicates_dropped: self.duplicates_dropped.load(Ordering::Relaxed),
        }
    }
}

/// One envelope to publish (or a presence command to run), and who waits for the outcome.
struct Outgoing {
    what: What,
    done: Option<oneshot::Sender<Result<(), String>>>,
}

enum What {
    Publish {
        channel: String,
        envelope: Envelope,
    },
    /// A presence write, run in order with the publishes.
    Command(redis::Cmd),
}

/// The sending end of the outbox.
#[derive(Debug)]
pub(crate) struct Outbox {
    queue: mpsc::Sender<Outgoing>,
    pub(crate) counters: Arc<Counters>,
    hub: String,
    warnings: Arc<Throttle>,
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outgoing").finish_non_exhaustive()
    }
}

/// Publishes that failed for good.
const PUBLISH_FAILURES: &str = "signalr_backplane_publish_failures_total";

impl Outbox {
    /// Starts the outbox's task, publishing as `origin`.
    pub(crate) fn start(
        publisher: Commands,
        origin: String,
        hub: String,
        capacity: usize,
        patience: Duration,
    ) -> Self {
        let (queue, rx) = mpsc::channel(capacity);
        let counters = Arc::new(Counters::default());
        let warnings = Arc::new(Throttle::new());
        tokio::spawn(run(
            rx,
            publisher,
            origin,
            patience,
            Reporter {
                counters: counters.clone(),
                hub: hub.clone(),
                warnings: warnings.clone(),
            },
        ));
        Self {
            queue,
            counters,
            hub,
            warnings,
        }
    }

    /// Queues `envelope` for `channel` without waiting.
    ///
    /// # Errors
    ///
    /// [`SendError::Routing`] when the outbox is full (counted and logged).
    pub(crate) fn post(&self, channel: String, envelope: Envelope) -> Result<(), SendError> {
        self.push(Outgoing {
            what: What::Publish { channel, envelope },
            done: None,
        })
    }

    /// Queues a presence write, to run in order with the publishes.
    pub(crate) fn command(&self, command: redis::Cmd) {
        let _ = self.push(Outgoing {
            what: What::Command(command),
            done: None,
        });
    }

    /// Queues `envelope` for `channel` and waits until Redis accepted it.
    ///
    /// # Errors
    ///
    /// The reason it was not published.
    pub(crate) async fn publish(&self, channel: String, envelope: Envelope) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.push(Outgoing {
            what: What::Publish { channel, envelope },
            done: Some(tx),
        })
        .map_err(|e| e.to_string())?;
        rx.await
            .unwrap_or_else(|_| Err("the backplane stopped".to_owned()))
    }

    fn push(&self, outgoing: Outgoing) -> Result<(), SendError> {
        match self.queue.try_send(outgoing) {
            Ok(()) => Ok(()),
            Err(_) => {
                self.counters.outbox_full.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(PUBLISH_FAILURES, "hub" => self.hub.clone()).increment(1);
                if let Some(count) = self.warnings.allow() {
                    tracing::warn!(count, hub = %self.hub, "the backplane's outbox is full; messages for other servers are dropped");
                }
                Err(SendError::Routing(
                    "the backplane's outbox is full; delivered to this server's connections only"
                        .to_owned(),
                ))
            }
        }
    }
}

struct Reporter {
    counters: Arc<Counters>,
    hub: String,
    warnings: Arc<Throttle>,
}

/// Publishes what is queued, in order, in batches; retries a batch until `patience` has
/// passed.
async fn run(
    mut rx: mpsc::Receiver<Outgoing>,
    mut publisher: Commands,
    origin: String,
    patience: Duration,
    reporter: Reporter,
) {
    let mut seq = 0u64;
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let commands: Vec<redis::Cmd> = batch
            .iter()
            .map(|outgoing| match &outgoing.what {
                What::Publish { channel, envelope } => {
                    seq += 1;
                    publisher.publish(channel, Packet::encode(&origin, seq, envelope))
                }
                What::Command(command) => command.clone(),
            })
            .collect();
        let started = Instant::now();
        let mut attempt = 0u32;
        // How many of the batch's commands are done (a cluster runs them one by one, each
        // on its own node; one server takes them as one pipeline).
        let mut done = 0;
        let outcome = loop {
            let step = if publisher.is_cluster() {
                let mut step = Ok(());
                while done < commands.len() {
                    match commands[done]
                        .query_async::<redis::Value>(&mut publisher)
                        .await
                    {
                        Ok(_) => done += 1,
                        Err(error) => {
                            step = Err(error);
                            break;
                        }
                    }
                }
                step
            } else {
                let mut pipe = redis::pipe();
                for command in &commands {
                    pipe.add_command(command.clone()).ignore();
                }
                pipe.query_async::<()>(&mut publisher).await
            };
            match step {
                Ok(()) => break Ok(()),
                Err(error) if started.elapsed() >= patience => break Err(error.to_string()),
                Err(error) => {
                    tracing::debug!(%error, attempt, "publish failed; retrying");
                    attempt += 1;
                    let backoff = Duration::from_millis(100 * u64::from(attempt.min(10)));
                    tokio::time::sleep(backoff).await;
                }
            }
        };
        let count = batch.len() as u64;
        match &outcome {
            Ok(()) => {
                reporter
                    .counters
                    .published
                    .fetch_add(count, Ordering::Relaxed);
            }
            Err(error) => {
                reporter.counters.failed.fetch_add(count, Ordering::Relaxed);
                metrics::counter!(PUBLISH_FAILURES, "hub" => reporter.hub.clone()).increment(count);
                if let Some(times) = reporter.warnings.allow() {
                    tracing::warn!(%error, lost = count, times, hub = %reporter.hub, "publishing to Redis failed; other servers missed these messages");
                }
            }
        }
        for outgoing in batch.drain(..) {
            if let Some(done) = outgoing.done {
                let _ = done.send(outcome.clone());
            }
        }
    }
}
