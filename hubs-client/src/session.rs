//! One live transport of a connection: what to write (in order, without ever waiting on
//! the transport), what was read, keep-alive, and stateful reconnect's accounting.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use hubs_protocol::TransportKind;
use hubs_protocol::wire;
use hubs_protocol::{
    Ack, DecodeError, HubMessage, MessageDecoder, Protocol, ReceivedSequence, ReplayBuffer,
    Sequence, TransferFormat,
};
use tokio::time::{Instant, Interval};

use crate::command::{self, Sent};
use crate::config::Config;
use crate::error::InvokeError;
use crate::handshake::{Opened, ResumeAt};
use crate::transport::{Link, Outgoing};

/// How often a stateful connection acknowledges what it received, at most.
const ACK_INTERVAL: Duration = Duration::from_secs(1);

/// Stateful reconnect's state, kept across transports.
pub(crate) struct Stateful {
    pub(crate) replay: ReplayBuffer,
    pub(crate) received: ReceivedSequence,
    pub(crate) at: ResumeAt,
    /// After a resume, everything is dropped until the server's Sequence.
    awaiting_sequence: bool,
}

impl Stateful {
    pub(crate) fn new(limit: usize, at: ResumeAt) -> Self {
        Self {
            replay: ReplayBuffer::new(limit),
            received: ReceivedSequence::default(),
            at,
            awaiting_sequence: false,
        }
    }
}

/// What a session runs with, from the connection's configuration.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Settings {
    pub(crate) protocol: Protocol,
    pub(crate) keep_alive: Duration,
    pub(crate) server_timeout: Duration,
    /// The largest message read (framing included); `None`: any size.
    pub(crate) max_message_size: Option<usize>,
}

impl Settings {
    pub(crate) fn of(config: &Config) -> Self {
        Self {
            protocol: config.protocol,
            keep_alive: config.keep_alive,
            server_timeout: config.server_timeout,
            max_message_size: config.max_message_size,
        }
    }
}

/// What a session reports.
pub(crate) enum SessionEvent {
    /// Bytes arrived: read them with [`Session::next_message`].
    Data,
    /// The transport is gone (with the reason, if it is not a plain close).
    Lost(Option<String>),
    /// The server closed the transport cleanly (a WebSocket close frame without a Close
    /// message): the connection is over, not to be resumed.
    Closed,
    /// Something was written, or time passed.
    Idle,
}

/// What the session's select found ready.
enum Ready<'a> {
    Chunk(Option<Bytes>),
    Room(Option<tokio::sync::mpsc::Permit<'a, Outgoing>>),
    Tick,
}

pub(crate) struct Session {
    link: Link,
    decoder: MessageDecoder,
    protocol: Protocol,
    /// Pings and the server timeout (not on long polling).
    pings: bool,
    outbox: VecDeque<(Bytes, Option<Sent>)>,
    last_received: Instant,
    last_sent: Instant,
    last_ack: Instant,
    heartbeat: Interval,
    keep_alive: Duration,
    server_timeout: Duration,
    pub(crate) connection_id: Option<String>,
    pub(crate) stateful: Option<Stateful>,
    /// On a resumed socket, until the server's Sequence arrives: how the resume began.
    pub(crate) resuming: Option<Resuming>,
    /// The server's Sequence arrived on a resumed socket (not yet announced).
    confirmed: bool,
}

/// A resume not yet confirmed by the server's Sequence.
#[derive(Clone, Debug)]
pub(crate) struct Resuming {
    pub(crate) since: Instant,
    pub(crate) tries: u32,
    pub(crate) reason: Option<String>,
}

impl Session {
    pub(crate) fn new(opened: Opened, settings: Settings, stateful: Option<Stateful>) -> Self {
        let mut session = Self::on(opened.link, settings, stateful);
        session.decoder.push(&opened.leftover);
        session.connection_id = opened.connection_id;
        session
    }

    fn on(link: Link, settings: Settings, stateful: Option<Stateful>) -> Self {
        let Settings {
            protocol,
            keep_alive,
            server_timeout,
            max_message_size,
        } = settings;
        let pings = link.transport != TransportKind::LongPolling;
        let mut heartbeat = tokio::time::interval(
            Duration::from_millis(250).min(keep_alive.max(Duration::from_millis(10))),
        );
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self {
            link,
            decoder: protocol.decoder().with_max_message_size(max_message_size),
            protocol,
            pings,
            outbox: VecDeque::new(),
            last_received: Instant::now(),
            last_sent: Instant::now(),
            last_ack: Instant::now(),
            heartbeat,
            keep_alive,
            server_timeout,
            connection_id: None,
            stateful,
            resuming: None,
            confirmed: false,
        }
    }

    /// A session on a resumed WebSocket: it announces where its replay starts and
    /// replays what the server did not acknowledge.
    pub(crate) fn resumed(
        link: Link,
        settings: Settings,
        mut stateful: Stateful,
        connection_id: Option<String>,
        resuming: Resuming,
    ) -> Self {
        stateful.awaiting_sequence = true;
        let sequence = HubMessage::Sequence(Sequence {
            sequence_id: stateful.replay.sequence_id(),
        });
        let replay: Vec<Bytes> = stateful.replay.unacknowledged().cloned().collect();
        let mut session = Self::on(link, settings, Some(stateful));
        session.connection_id = connection_id;
        session.resuming = Some(resuming);
        session.push_control(&sequence);
        session
            .outbox
            .extend(replay.into_iter().map(|bytes| (bytes, None)));
        session
    }

    pub(crate) fn transport(&self) -> TransportKind {
        self.link.transport
    }

    /// Queues a trackable message (numbered and kept for a replay when stateful).
    pub(crate) fn push(&mut self, bytes: Bytes, sent: Option<Sent>) {
        if let Some(stateful) = &mut self.stateful {
            stateful.replay.push(bytes.clone());
        }
        self.outbox.push_back((bytes, sent));
    }

    /// Queues a Ping, an Ack, a Sequence or a Close (never numbered).
    pub(crate) fn push_control(&mut self, message: &HubMessage) {
        if let Some(bytes) = command::encode(self.protocol, message) {
            self.outbox.push_back((bytes, None));
        }
    }

    /// Whether stateful reconnect's buffer is full (sends wait for an Ack).
    pub(crate) fn is_full(&self) -> bool {
        self.stateful.as_ref().is_some_and(|s| s.replay.is_full())
    }

    /// Waits for the next thing to report. Cancel safe.
    pub(crate) async fn next(&mut self) -> SessionEvent {
        let ready = tokio::select! {
            chunk = self.link.incoming.recv() => Ready::Chunk(chunk),
            permit = self.link.out.reserve(), if !self.outbox.is_empty() => Ready::Room(permit.ok()),
            _ = self.heartbeat.tick() => Ready::Tick,
        };
        match ready {
            Ready::Chunk(Some(chunk)) => {
                self.last_received = Instant::now();
                self.decoder.push(&chunk);
                SessionEvent::Data
            }
            Ready::Chunk(None) | Ready::Room(None)
                if self
                    .link
                    .closed_cleanly
                    .load(std::sync::atomic::Ordering::Acquire) =>
            {
                SessionEvent::Closed
            }
            Ready::Chunk(None) | Ready::Room(None) => {
                SessionEvent::Lost(self.link.failure.get().cloned())
            }
            Ready::Room(Some(permit)) => {
                if let Some((bytes, sent)) = self.outbox.pop_front() {
                    permit.send(Outgoing {
                        bytes,
                        text: self.protocol.transfer_format() == TransferFormat::Text,
                    });
                    self.last_sent = Instant::now();
                    if let Some(sent) = sent {
                        let _ = sent.send(Ok(()));
                    }
                }
                SessionEvent::Idle
            }
            Ready::Tick => {
                drop(ready);
                self.tick()
            }
        }
    }

    fn tick(&mut self) -> SessionEvent {
        if self.pings {
            if self.last_received.elapsed() > self.server_timeout {
                return SessionEvent::Lost(Some(wire::SERVER_TIMEOUT.to_owned()));
            }
            if self.last_sent.elapsed() >= self.keep_alive && self.outbox.is_empty() {
                self.push_control(&HubMessage::Ping);
                // Counted as sent once queued, so a slow transport gets one Ping at a time.
                self.last_sent = Instant::now();
            }
        }
        // At most one Ack a second, as the official clients.
        if self.last_ack.elapsed() >= ACK_INTERVAL
            && let Some(id) = self.stateful.as_mut().and_then(|s| s.received.ack_due())
        {
            self.last_ack = Instant::now();
            self.push_control(&HubMessage::Ack(Ack { sequence_id: id }));
        }
        SessionEvent::Idle
    }

    /// The next message for the connection, after stateful reconnect's accounting (Acks
    /// and Sequences are consumed, replayed duplicates dropped).
    ///
    /// # Errors
    ///
    /// A message the client cannot read, or a Sequence beyond what was received: the
    /// session cannot go on.
    pub(crate) fn next_message(&mut self) -> Result<Option<HubMessage>, String> {
        loop {
            let message = match self.decoder.next_message() {
                Ok(Some(message)) => message,
                Ok(None) => return Ok(None),
                Err(DecodeError::UnknownMessageType(_)) => continue,
                Err(error) => return Err(format!("invalid message from the server: {error}")),
            };
            let Some(stateful) = &mut self.stateful else {
                return Ok(Some(message));
            };
            match message {
                HubMessage::Sequence(sequence) => {
                    stateful.awaiting_sequence = false;
                    self.confirmed = self.resuming.is_some();
                    stateful
                        .received
                        .sequence(sequence.sequence_id)
                        .map_err(str::to_owned)?;
                }
                _ if stateful.awaiting_sequence => {}
                HubMessage::Ack(ack) => stateful.replay.ack(ack.sequence_id),
                message if message.is_sequenced() => {
                    if stateful.received.accept() {
                        return Ok(Some(message));
                    }
                }
                message => return Ok(Some(message)),
            }
        }
    }

    /// Closes the session gracefully: what is queued is written, then `last` (a Close),
    /// then the transport closes; bounded by `patience`. Tells each waiting sender.
    pub(crate) async fn close(mut self, last: Option<HubMessage>, patience: Duration) {
        if let Some(last) = &last {
            self.push_control(last);
        }
        let outbox = std::mem::take(&mut self.outbox);
        let text = self.protocol.transfer_format() == TransferFormat::Text;
        let link = self.link;
        let _ = tokio::time::timeout(patience, async move {
            for (bytes, sent) in outbox {
                let written = link.out.send(Outgoing { bytes, text }).await.is_ok();
                if let Some(sent) = sent {
                    let _ = sent.send(if written {
                        Ok(())
                    } else {
                        Err(InvokeError::NotConnected)
                    });
                }
            }
            link.close(patience).await;
        })
        .await;
    }

    /// Whether the server's Sequence has just confirmed a resume (once).
    pub(crate) fn take_confirmed(&mut self) -> bool {
        if std::mem::take(&mut self.confirmed) {
            self.resuming = None;
            return true;
        }
        false
    }

    /// Drops the session at once; the stateful state survives, for a resume.
    pub(crate) fn abandon(mut self) -> (Option<Stateful>, Vec<Sent>, Option<Resuming>) {
        let waiting = self.outbox.drain(..).filter_map(|(_, sent)| sent).collect();
        (self.stateful.take(), waiting, self.resuming.take())
    }
}
