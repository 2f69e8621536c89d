//! The one task that owns a connection: its phase (an enum, so each phase holds exactly
//! what it needs), the calls waiting for results, the streams being received, and the
//! commands of every [`HubConnection`](crate::connection::HubConnection) clone, handled in
//! order.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hubs_protocol::wire;
use hubs_protocol::{Close, HubMessage, Outcome, Value};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::command::{self, Call, Command, Sent};
use crate::config::Config;
use crate::dispatch::DispatchItem;
use crate::error::{InvokeError, StartError};
use crate::events::{ConnectionEvent, ConnectionState, Status};
use crate::handshake::{self, Opened};
use crate::retry::RetryPolicy;
use crate::session::{Session, SessionEvent, Stateful};
use crate::transport::{Link, Net};

mod reconnect;
mod refresh;

/// How long `stop` waits for the transport to write what is queued and the Close.
const STOP_PATIENCE: Duration = Duration::from_secs(5);

type Attempt<T> = Pin<Box<dyn Future<Output = Result<T, StartError>> + Send>>;

/// Reconnecting with a retry policy.
struct Retry {
    policy: Arc<dyn RetryPolicy>,
    since: Instant,
    retries: u32,
    reason: Option<String>,
}

enum Phase {
    Disconnected,
    /// Starting (`start` waits) or reconnecting (`retry` is set).
    Connecting {
        attempt: Attempt<Opened>,
        start: Option<oneshot::Sender<Result<(), StartError>>>,
        retry: Option<Retry>,
    },
    /// Waiting before the next reconnect attempt.
    Waiting {
        until: Instant,
        retry: Retry,
    },
    Connected(Box<Session>),
    /// A stateful connection lost its socket; a new one resumes it.
    Resuming {
        attempt: Option<Attempt<Link>>,
        next_try: Instant,
        tries: u32,
        since: Instant,
        stateful: Stateful,
        connection_id: Option<String>,
        reason: Option<String>,
    },
    /// `stop` was called on a live connection: writing the Close, then closing the
    /// transport.
    Stopping {
        closing: Pin<Box<dyn Future<Output = ()> + Send>>,
        waiters: Vec<oneshot::Sender<()>>,
    },
}

enum Event {
    Command(Option<Command>),
    Opened(Result<Opened, StartError>),
    RetryDue,
    Session(SessionEvent),
    Resumed(Result<Link, StartError>),
    ResumeDue,
    Stopped,
    Refresh(refresh::RefreshEvent),
}

pub(crate) struct Supervisor {
    config: Arc<Config>,
    net: Net,
    commands: mpsc::UnboundedReceiver<Command>,
    dispatch: mpsc::UnboundedSender<DispatchItem>,
    status: watch::Sender<Status>,
    events: broadcast::Sender<ConnectionEvent>,
    phase: Phase,
    pending: HashMap<String, oneshot::Sender<Result<Outcome, InvokeError>>>,
    streams: HashMap<String, mpsc::UnboundedSender<Result<Value, InvokeError>>>,
    /// Sends waiting for room in stateful reconnect's buffer.
    deferred: VecDeque<Command>,
    /// The refresh side of the negotiated connection, while it is connected or resuming.
    refreshing: Option<refresh::Refreshing>,
}

impl Supervisor {
    pub(crate) fn new(
        config: Arc<Config>,
        commands: mpsc::UnboundedReceiver<Command>,
        dispatch: mpsc::UnboundedSender<DispatchItem>,
        status: watch::Sender<Status>,
        events: broadcast::Sender<ConnectionEvent>,
    ) -> Self {
        Self {
            net: Net::new(&config),
            config,
            commands,
            dispatch,
            status,
            events,
            phase: Phase::Disconnected,
            pending: HashMap::new(),
            streams: HashMap::new(),
            deferred: VecDeque::new(),
            refreshing: None,
        }
    }

    pub(crate) async fn run(mut self) {
        loop {
            match self.next_event().await {
                Event::Command(Some(command)) => self.command(command),
                Event::Command(None) => {
                    // Every handle is gone: stop, then return.
                    let (waiter, _) = oneshot::channel();
                    self.stop(waiter);
                    if let Phase::Stopping { closing, .. } = &mut self.phase {
                        closing.await;
                    }
                    self.stopped();
                    return;
                }
                Event::Opened(opened) => self.opened(opened),
                Event::RetryDue => self.retry_due(),
                Event::Session(event) => self.session_event(event),
                Event::Resumed(resumed) => self.resumed(resumed),
                Event::ResumeDue => self.resume_due(),
                Event::Stopped => self.stopped(),
                Event::Refresh(event) => self.refresh_event(event),
            }
        }
    }

    async fn next_event(&mut self) -> Event {
        let live = self.live();
        let commands = &mut self.commands;
        let refreshing = &mut self.refreshing;
        match &mut self.phase {
            Phase::Disconnected => Event::Command(commands.recv().await),
            Phase::Connecting { attempt, .. } => tokio::select! {
                command = commands.recv() => Event::Command(command),
                opened = attempt => Event::Opened(opened),
            },
            Phase::Waiting { until, .. } => tokio::select! {
                command = commands.recv() => Event::Command(command),
                () = tokio::time::sleep_until(*until) => Event::RetryDue,
            },
            Phase::Connected(session) => {
                let refresh = async {
                    match refreshing {
                        Some(refreshing) => refreshing.next(live).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    command = commands.recv() => Event::Command(command),
                    event = session.next() => Event::Session(event),
                    event = refresh => Event::Refresh(event),
                }
            }
            Phase::Resuming {
                attempt: Some(attempt),
                ..
            } => tokio::select! {
                command = commands.recv() => Event::Command(command),
                resumed = attempt => Event::Resumed(resumed),
            },
            Phase::Resuming { next_try, .. } => tokio::select! {
                command = commands.recv() => Event::Command(command),
                () = tokio::time::sleep_until(*next_try) => Event::ResumeDue,
            },
            Phase::Stopping { closing, .. } => tokio::select! {
                command = commands.recv() => Event::Command(command),
                () = closing => Event::Stopped,
            },
        }
    }

    fn publish(&self, state: ConnectionState) {
        let (connection_id, transport, stateful) = match &self.phase {
            Phase::Connected(session) => (
                session.connection_id.clone(),
                Some(session.transport()),
                session.stateful.is_some(),
            ),
            Phase::Resuming { connection_id, .. } => (
                connection_id.clone(),
                Some(hubs_protocol::TransportKind::WebSockets),
                true,
            ),
            _ => (None, None, false),
        };
        self.status.send_replace(Status {
            state,
            connection_id,
            transport,
            stateful,
        });
    }

    fn emit(&self, event: ConnectionEvent) {
        let _ = self.events.send(event);
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Start(reply) => self.start(reply),
            Command::Stop(reply) => self.stop(reply),
            Command::Send { bytes, call, sent } => self.send(bytes, call, sent),
            Command::Refresh(reply) => self.refresh(reply),
            Command::Cancel(id) => {
                if self.streams.remove(&id).is_some()
                    && let Some(bytes) = command::encode(self.config.protocol, &command::cancel(id))
                {
                    self.send(bytes, Call::None, None);
                }
            }
        }
    }

    fn start(&mut self, reply: oneshot::Sender<Result<(), StartError>>) {
        if !matches!(self.phase, Phase::Disconnected) {
            let _ = reply.send(Err(StartError::State));
            return;
        }
        self.phase = Phase::Connecting {
            attempt: self.open(),
            start: Some(reply),
            retry: None,
        };
        self.publish(ConnectionState::Connecting);
    }

    fn open(&self) -> Attempt<Opened> {
        let (config, net) = (self.config.clone(), self.net.clone());
        Box::pin(async move { handshake::open(&config, &net).await })
    }

    fn stop(&mut self, reply: oneshot::Sender<()>) {
        match std::mem::replace(&mut self.phase, Phase::Disconnected) {
            Phase::Disconnected => {
                let _ = reply.send(());
            }
            Phase::Connecting { start, retry, .. } => {
                if let Some(start) = start {
                    let _ = start.send(Err(StartError::Stopped));
                }
                self.closed(None, retry.is_some());
                let _ = reply.send(());
            }
            Phase::Waiting { .. } | Phase::Resuming { .. } => {
                self.closed(None, true);
                let _ = reply.send(());
            }
            Phase::Connected(session) => {
                self.refreshing = None;
                self.phase = Phase::Stopping {
                    closing: Box::pin(
                        (*session).close(Some(HubMessage::Close(Close::default())), STOP_PATIENCE),
                    ),
                    waiters: vec![reply],
                };
            }
            Phase::Stopping {
                closing,
                mut waiters,
            } => {
                waiters.push(reply);
                self.phase = Phase::Stopping { closing, waiters };
            }
        }
    }

    fn stopped(&mut self) {
        if let Phase::Stopping { waiters, .. } =
            std::mem::replace(&mut self.phase, Phase::Disconnected)
        {
            self.closed(None, true);
            for waiter in waiters {
                let _ = waiter.send(());
            }
        }
    }

    /// The connection closed: calls fail, the state is Disconnected, and (when it had
    /// been connected) `Closed` is the last event.
    fn closed(&mut self, reason: Option<String>, announce: bool) {
        self.phase = Phase::Disconnected;
        self.refreshing = None;
        self.fail_all(&match &reason {
            Some(error) => wire::server_closed_with_error(error),
            None => wire::INVOCATION_CANCELED_CLOSED.to_owned(),
        });
        self.publish(ConnectionState::Disconnected);
        if announce {
            self.emit(ConnectionEvent::Closed(reason));
        }
    }

    fn fail_all(&mut self, reason: &str) {
        for (_, waiting) in self.pending.drain() {
            let _ = waiting.send(Err(InvokeError::Closed(reason.to_owned())));
        }
        for (_, stream) in self.streams.drain() {
            let _ = stream.send(Err(InvokeError::Closed(reason.to_owned())));
        }
        for command in self.deferred.drain(..) {
            if let Command::Send {
                sent: Some(sent), ..
            } = command
            {
                let _ = sent.send(Err(InvokeError::NotConnected));
            }
        }
    }

    fn register(&mut self, call: Call) {
        match call {
            Call::None => {}
            Call::Invoke(id, reply) => {
                self.pending.insert(id, reply);
            }
            Call::Stream(id, items) => {
                self.streams.insert(id, items);
            }
        }
    }

    /// Whether sends are taken now: `Some(full)` while connected or resuming, with whether
    /// stateful reconnect's buffer is full; `None` otherwise.
    fn room(&self) -> Option<bool> {
        match &self.phase {
            Phase::Connected(session) => Some(session.is_full()),
            Phase::Resuming { stateful, .. } => Some(stateful.replay.is_full()),
            _ => None,
        }
    }

    fn send(&mut self, bytes: Bytes, call: Call, sent: Option<Sent>) {
        let Some(full) = self.room() else {
            if let Some(sent) = sent {
                let _ = sent.send(Err(InvokeError::NotConnected));
            }
            return;
        };
        if full || !self.deferred.is_empty() {
            self.deferred.push_back(Command::Send { bytes, call, sent });
            return;
        }
        self.push(bytes, call, sent);
    }

    /// Hands a message to the session, or (resuming) to the replay buffer.
    fn push(&mut self, bytes: Bytes, call: Call, sent: Option<Sent>) {
        self.register(call);
        match &mut self.phase {
            Phase::Connected(session) => session.push(bytes, sent),
            Phase::Resuming { stateful, .. } => {
                // Kept for the replay: on its way as far as the caller is concerned.
                stateful.replay.push(bytes);
                if let Some(sent) = sent {
                    let _ = sent.send(Ok(()));
                }
            }
            _ => {}
        }
    }

    /// Sends what waited for room in stateful reconnect's buffer, while there is room.
    fn drain_deferred(&mut self) {
        while self.room() == Some(false) {
            let Some(Command::Send { bytes, call, sent }) = self.deferred.pop_front() else {
                return;
            };
            self.push(bytes, call, sent);
        }
    }

    fn session_event(&mut self, event: SessionEvent) {
        match event {
            SessionEvent::Idle => {}
            SessionEvent::Lost(reason) => self.lost(reason, true, false),
            SessionEvent::Closed => self.lost(None, true, true),
            SessionEvent::Data => {
                loop {
                    let Phase::Connected(session) = &mut self.phase else {
                        return;
                    };
                    match session.next_message() {
                        Ok(Some(message)) => {
                            if let Some((error, allow_reconnect)) = self.message(message) {
                                self.lost(error, allow_reconnect, true);
                                return;
                            }
                        }
                        Ok(None) => break,
                        Err(error) => {
                            // A message the client cannot read would come back in a
                            // replay: no resume. A sequence it cannot follow closes it.
                            let fatal = error == hubs_protocol::SEQUENCE_AHEAD;
                            self.lost(Some(error), !fatal, true);
                            return;
                        }
                    }
                }
                if let Phase::Connected(session) = &mut self.phase
                    && session.take_confirmed()
                {
                    // The server's Sequence: the connection is the same one again.
                    self.publish(ConnectionState::Connected);
                    self.emit(ConnectionEvent::Resumed);
                }
                self.drain_deferred();
            }
        }
    }

    /// Handles one message; `Some` (error, may reconnect) when the server closed.
    fn message(&mut self, message: HubMessage) -> Option<(Option<String>, bool)> {
        match message {
            HubMessage::Completion(completion) => {
                if let Some(waiting) = self.pending.remove(&completion.invocation_id) {
                    let _ = waiting.send(Ok(completion.outcome));
                } else if let Some(stream) = self.streams.remove(&completion.invocation_id)
                    && let Outcome::Error(error) = completion.outcome
                {
                    let _ = stream.send(Err(InvokeError::Server(error)));
                }
            }
            HubMessage::StreamItem(item) => {
                // Buffered for the reader: an unread stream holds up nothing else.
                let gone = self
                    .streams
                    .get(&item.invocation_id)
                    .is_some_and(|stream| stream.send(Ok(item.item)).is_err());
                if gone {
                    // The caller gave up before it got its stream: cancel it.
                    self.streams.remove(&item.invocation_id);
                    if let Some(bytes) =
                        command::encode(self.config.protocol, &command::cancel(item.invocation_id))
                    {
                        self.send(bytes, Call::None, None);
                    }
                }
            }
            HubMessage::Invocation(invocation) => {
                let _ = self.dispatch.send(DispatchItem::Invoke(invocation));
            }
            HubMessage::Close(close) => return Some((close.error, close.allow_reconnect)),
            _ => {}
        }
        None
    }
}
