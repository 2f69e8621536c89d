//! Losing a connection: reconnecting as the retry policy says, and resuming a stateful
//! connection over a new socket.

use std::time::Duration;

use hubs_protocol::wire;
use tokio::time::Instant;

use super::{Phase, Retry, Supervisor};
use crate::error::{InvokeError, StartError};
use crate::events::{ConnectionEvent, ConnectionState};
use crate::handshake::{self, Opened};
use crate::session::{Resuming, Session, SessionEvent, Settings, Stateful};
use crate::transport::Link;

/// `at + delay`; a delay the clock cannot count (a retry policy or a resume window of
/// `Duration::MAX`) waits 30 years instead, never in practice, rather than panic.
fn later(at: Instant, delay: Duration) -> Instant {
    at.checked_add(delay)
        .or_else(|| at.checked_add(FAR))
        .unwrap_or(at)
}

/// How far "never" is, for a delay the clock cannot count (tokio's own far future).
const FAR: Duration = Duration::from_secs(86_400 * 365 * 30);

/// The wait before resume attempt `tries + 1`: 250 ms, doubling, at most 2 s.
fn backoff(tries: u32) -> Duration {
    Duration::from_millis(250 << tries.min(3))
}

impl Supervisor {
    pub(super) fn opened(&mut self, opened: Result<Opened, StartError>) {
        let Phase::Connecting { start, retry, .. } =
            std::mem::replace(&mut self.phase, Phase::Disconnected)
        else {
            return;
        };
        match opened {
            Ok(mut opened) => {
                let stateful = match (self.config.stateful, &opened.resume) {
                    (Some(limit), Some(at)) => Some(Stateful::new(limit, at.clone())),
                    _ => None,
                };
                let (auth, lifetime) = (opened.auth.take(), opened.token_lifetime);
                let session = Session::new(opened, Settings::of(&self.config), stateful);
                let id = session.connection_id.clone();
                self.phase = Phase::Connected(Box::new(session));
                self.publish(ConnectionState::Connected);
                // The timer starts after the handshake, from this negotiate's lifetime.
                self.refreshing = self.refreshing(auth, lifetime);
                if let Some(start) = start {
                    let _ = start.send(Ok(()));
                }
                if retry.is_some() {
                    self.emit(ConnectionEvent::Reconnected(id));
                }
                // Messages that came with the handshake answer (one poll, event or frame
                // may carry both) are read now, not when the next bytes arrive.
                self.session_event(SessionEvent::Data);
            }
            Err(error) => match (start, retry) {
                (Some(start), _) => {
                    self.publish(ConnectionState::Disconnected);
                    let _ = start.send(Err(error));
                }
                (None, Some(mut retry)) => {
                    tracing::debug!(%error, retries = retry.retries, "reconnect attempt failed");
                    retry.retries = retry.retries.saturating_add(1);
                    self.schedule(retry);
                }
                (None, None) => self.publish(ConnectionState::Disconnected),
            },
        }
    }

    /// Waits for the policy's next delay, or gives up.
    fn schedule(&mut self, retry: Retry) {
        match retry
            .policy
            .next_delay(retry.retries, retry.since.elapsed())
        {
            Some(delay) => {
                self.phase = Phase::Waiting {
                    until: later(Instant::now(), delay),
                    retry,
                };
            }
            None => self.closed(retry.reason, true),
        }
    }

    pub(super) fn retry_due(&mut self) {
        if let Phase::Waiting { retry, .. } =
            std::mem::replace(&mut self.phase, Phase::Disconnected)
        {
            self.phase = Phase::Connecting {
                attempt: self.open(),
                start: None,
                retry: Some(retry),
            };
        }
    }

    /// The session closed: resume a stateful connection whose transport failed; otherwise
    /// reconnect as the policy says, or close.
    pub(super) fn lost(&mut self, reason: Option<String>, allow_reconnect: bool, by_server: bool) {
        let Phase::Connected(session) = std::mem::replace(&mut self.phase, Phase::Disconnected)
        else {
            return;
        };
        let connection_id = session.connection_id.clone();
        let (stateful, waiting, resuming) = (*session).abandon();
        match stateful {
            Some(stateful) if !by_server => {
                // What was queued is in the replay buffer: it will go out after the resume.
                for sent in waiting {
                    let _ = sent.send(Ok(()));
                }
                tracing::debug!(reason = ?reason, "transport lost; resuming the connection");
                let now = Instant::now();
                match resuming {
                    // A resume the server never confirmed: the same attempt goes on, with
                    // its back-off and its window.
                    Some(resuming) => {
                        self.phase = Phase::Resuming {
                            attempt: None,
                            next_try: later(now, backoff(resuming.tries)),
                            tries: resuming.tries.saturating_add(1),
                            since: resuming.since,
                            stateful,
                            connection_id,
                            reason: resuming.reason,
                        };
                    }
                    None => {
                        self.phase = Phase::Resuming {
                            attempt: None,
                            next_try: now,
                            tries: 0,
                            since: now,
                            stateful,
                            connection_id,
                            reason: reason.clone(),
                        };
                        self.publish(ConnectionState::Reconnecting);
                        self.emit(ConnectionEvent::Reconnecting(reason));
                    }
                }
            }
            _ => {
                for sent in waiting {
                    let _ = sent.send(Err(InvokeError::NotConnected));
                }
                self.reconnect_or_close(reason, allow_reconnect, resuming.is_some());
            }
        }
    }

    fn reconnect_or_close(
        &mut self,
        reason: Option<String>,
        allow_reconnect: bool,
        announced: bool,
    ) {
        // A new connection, if any, refreshes on its own.
        self.refreshing = None;
        let policy = self.config.retry.clone().filter(|_| allow_reconnect);
        let Some(policy) = policy else {
            self.closed(reason, true);
            return;
        };
        self.fail_all(&match &reason {
            Some(error) => wire::server_closed_with_error(error),
            None => wire::INVOCATION_CANCELED_CLOSED.to_owned(),
        });
        self.publish(ConnectionState::Reconnecting);
        if !announced {
            self.emit(ConnectionEvent::Reconnecting(reason.clone()));
        }
        self.schedule(Retry {
            policy,
            since: Instant::now(),
            retries: 0,
            reason,
        });
    }

    pub(super) fn resume_due(&mut self) {
        if let Phase::Resuming {
            attempt: attempt @ None,
            stateful,
            since,
            ..
        } = &mut self.phase
        {
            let (config, net, at) = (self.config.clone(), self.net.clone(), stateful.at.clone());
            // An attempt ends with the window, even on a network that swallows packets.
            let deadline = later(*since, self.config.resume_window);
            *attempt = Some(Box::pin(async move {
                tokio::time::timeout_at(deadline, handshake::resume(&config, &net, &at))
                    .await
                    .unwrap_or_else(|_| {
                        Err(StartError::Transport("the resume timed out".to_owned()))
                    })
            }));
        }
    }

    pub(super) fn resumed(&mut self, resumed: Result<Link, StartError>) {
        let Phase::Resuming {
            tries,
            since,
            stateful,
            connection_id,
            reason,
            ..
        } = std::mem::replace(&mut self.phase, Phase::Disconnected)
        else {
            return;
        };
        match resumed {
            Ok(link) => {
                // Announced as resumed once the server's Sequence arrives.
                let session = Session::resumed(
                    link,
                    Settings::of(&self.config),
                    stateful,
                    connection_id,
                    Resuming {
                        since,
                        tries,
                        reason,
                    },
                );
                self.phase = Phase::Connected(Box::new(session));
            }
            Err(error) if since.elapsed() < self.config.resume_window => {
                tracing::debug!(%error, tries, "resume attempt failed");
                self.phase = Phase::Resuming {
                    attempt: None,
                    next_try: later(Instant::now(), backoff(tries)),
                    tries: tries.saturating_add(1),
                    since,
                    stateful,
                    connection_id,
                    reason,
                };
            }
            Err(error) => {
                tracing::debug!(%error, "the connection could not be resumed");
                self.reconnect_or_close(reason, true, true);
            }
        }
    }
}
