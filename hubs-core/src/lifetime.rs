//! Routing: which connections a message goes to. One trait, [`LifetimeManager`], with the
//! in-memory default; a backplane (Redis) implements the same trait.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::arguments::Arguments;
use crate::connection_id::ConnectionId;
use crate::error::SendError;
use crate::protocol::{Completion, EncodeError, HubMessage, Invocation, Outcome, Protocol};

/// One write for the transport: whole hub messages, in a text or a binary frame.
#[derive(Clone, Debug)]
pub struct Frame {
    /// The encoded messages.
    pub bytes: Bytes,
    /// Whether the frame is binary (MessagePack) rather than text (JSON, the handshake of
    /// a JSON connection).
    pub binary: bool,
}

/// The sending end of one connection, as routing sees it.
///
/// Every sender (hub methods of any connection, the hub context, a backplane) goes through
/// the connection's bounded queue; one task per connection owns the socket. When the
/// queue is full a send waits up to the send timeout for room, and if there is still none
/// the connection is closed: a client that stops reading slows only itself, and a message
/// that was queued is never silently dropped.
#[derive(Debug)]
pub struct ConnectionHandle {
    id: ConnectionId,
    user: Option<String>,
    protocol: Protocol,
    outbound: mpsc::Sender<Frame>,
    closed: CancellationToken,
    send_timeout: Duration,
    wrote: AtomicBool,
    results: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    next_result: AtomicU64,
}

/// The connection is closed; the message was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the connection is closed")]
pub struct ConnectionClosed;

impl ConnectionHandle {
    pub(crate) fn new(
        id: ConnectionId,
        user: Option<String>,
        protocol: Protocol,
        outbound: mpsc::Sender<Frame>,
        closed: CancellationToken,
        send_timeout: Duration,
    ) -> Self {
        Self {
            id,
            user,
            protocol,
            outbound,
            closed,
            send_timeout,
            wrote: AtomicBool::new(false),
            results: Mutex::new(HashMap::new()),
            next_result: AtomicU64::new(1),
        }
    }

    /// A handle not attached to any transport, with its outbound queue: for benchmarks and
    /// tests of routing.
    #[doc(hidden)]
    pub fn standalone(
        id: ConnectionId,
        user: Option<String>,
        protocol: Protocol,
        capacity: usize,
    ) -> (Arc<Self>, mpsc::Receiver<Frame>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let handle = Self::new(
            id,
            user,
            protocol,
            tx,
            CancellationToken::new(),
            Duration::from_secs(10),
        );
        (Arc::new(handle), rx)
    }

    /// The connection's id.
    pub fn id(&self) -> &ConnectionId {
        &self.id
    }

    /// The user the connection belongs to, if the server identifies users.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// The connection's hub protocol.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    /// Ends the connection.
    pub fn abort(&self) {
        self.closed.cancel();
    }

    fn frame(&self, bytes: Bytes) -> Frame {
        Frame {
            bytes,
            binary: self.protocol == Protocol::MessagePack,
        }
    }

    /// Queues encoded messages without waiting; gives them back when the queue is full.
    ///
    /// # Errors
    ///
    /// `Err(Some(bytes))` when the queue is full, `Err(None)` when the connection is closed.
    pub fn try_write(&self, bytes: Bytes) -> Result<(), Option<Bytes>> {
        if self.closed.is_cancelled() {
            return Err(None);
        }
        match self.outbound.try_send(self.frame(bytes)) {
            Ok(()) => {
                self.wrote.store(true, Ordering::Relaxed);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(frame)) => Err(Some(frame.bytes)),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(None),
        }
    }

    /// Queues encoded messages, waiting for room up to the send timeout; a connection
    /// that makes no room in time is closed.
    ///
    /// # Errors
    ///
    /// [`ConnectionClosed`] when the connection is (or gets) closed.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes drops the message unsent.
    pub async fn write(&self, bytes: Bytes) -> Result<(), ConnectionClosed> {
        let bytes = match self.try_write(bytes) {
            Ok(()) => return Ok(()),
            Err(None) => return Err(ConnectionClosed),
            Err(Some(bytes)) => bytes,
        };
        let frame = self.frame(bytes);
        tokio::select! {
            sent = tokio::time::timeout(self.send_timeout, self.outbound.send(frame)) => match sent {
                Ok(Ok(())) => {
                    self.wrote.store(true, Ordering::Relaxed);
                    Ok(())
                }
                Ok(Err(_)) => Err(ConnectionClosed),
                Err(_) => {
                    tracing::debug!(connection = %self.id, "send timed out; closing the connection");
                    self.abort();
                    Err(ConnectionClosed)
                }
            },
            () = self.closed.cancelled() => Err(ConnectionClosed),
        }
    }

    /// Encodes `message` with the connection's protocol and queues it.
    ///
    /// # Errors
    ///
    /// [`ConnectionClosed`] when the connection is closed. An encoding error is logged and
    /// reported the same way, since nothing was sent.
    pub async fn send_message(&self, message: &HubMessage) -> Result<(), ConnectionClosed> {
        let mut out = Vec::new();
        if let Err(error) = self.protocol.encode(message, &mut out) {
            tracing::error!(connection = %self.id, %error, "cannot encode a message");
            return Err(ConnectionClosed);
        }
        self.write(out.into()).await
    }

    /// Invokes `target` on this client and waits for its Completion (a client result).
    ///
    /// The Invocation carries a server-chosen id (`s1`, `s2`, …); the wait ends on the
    /// client's Completion, after `timeout`, or when the connection ends.
    ///
    /// # Errors
    ///
    /// [`ClientResultError`] for a disconnect, a timeout or an encoding failure. An error
    /// Completion from the client is not an error here: it is returned as
    /// [`Outcome::Error`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future forgets the pending result; a late Completion is then ignored.
    pub async fn invoke(
        &self,
        target: &str,
        arguments: &dyn Arguments,
        timeout: Duration,
    ) -> Result<Outcome, ClientResultError> {
        let id = format!("s{}", self.next_result.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = oneshot::channel();
        let arguments = arguments
            .to_values(self.protocol)
            .map_err(|e| ClientResultError::Send(SendError::Encode(e)))?;
        let message = HubMessage::Invocation(Invocation {
            invocation_id: Some(id.clone()),
            target: target.to_owned(),
            arguments,
            ..Default::default()
        });
        self.lock_results().insert(id.clone(), tx);
        let pending = PendingResult {
            handle: self,
            id: &id,
        };
        if self.send_message(&message).await.is_err() {
            return Err(ClientResultError::Disconnected(self.id.clone()));
        }
        let outcome = tokio::select! {
            outcome = tokio::time::timeout(timeout, rx) => match outcome {
                Ok(Ok(outcome)) => Ok(outcome),
                Ok(Err(_)) => Err(ClientResultError::Disconnected(self.id.clone())),
                Err(_) => Err(ClientResultError::Timeout(timeout)),
            },
            () = self.closed.cancelled() => Err(ClientResultError::Disconnected(self.id.clone())),
        };
        drop(pending);
        outcome
    }

    /// Hands a client's Completion to the invocation waiting for it. Returns `false` when
    /// no result with that id is pending.
    pub fn complete(&self, completion: Completion) -> bool {
        match self.lock_results().remove(&completion.invocation_id) {
            Some(waiting) => {
                let _ = waiting.send(completion.outcome);
                true
            }
            None => false,
        }
    }

    /// Fails every pending client result (the connection ended).
    pub(crate) fn fail_results(&self) {
        self.lock_results().clear();
    }

    fn lock_results(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<Outcome>>> {
        self.results
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether anything was queued since the last call.
    pub(crate) fn take_wrote(&self) -> bool {
        self.wrote.swap(false, Ordering::Relaxed)
    }
}

/// Removes a pending result however the wait ends.
struct PendingResult<'a> {
    handle: &'a ConnectionHandle,
    id: &'a str,
}

impl Drop for PendingResult<'_> {
    fn drop(&mut self) {
        self.handle.lock_results().remove(self.id);
    }
}

/// A client result could not be obtained.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientResultError {
    /// The connection ended (or the server is shutting down) before the client answered.
    #[error("Connection '{0}' disconnected.")]
    Disconnected(ConnectionId),
    /// No connection has this id.
    #[error("Connection '{0}' does not exist.")]
    NoConnection(ConnectionId),
    /// The client did not answer in time.
    #[error("The client did not return a result within {0:?}.")]
    Timeout(Duration),
    /// The invocation could not be sent.
    #[error("cannot invoke the client: {0}")]
    Send(#[source] SendError),
    /// The server the connection is on reported this failure (a backplane).
    #[error("{0}")]
    Remote(String),
}

/// An invocation for clients, encoded lazily: at most once per protocol, shared by every
/// recipient that speaks it.
pub struct SerializedMessage<'a> {
    source: Option<(&'a str, &'a dyn Arguments)>,
    cache: [OnceLock<Result<Bytes, EncodeError>>; 2],
}

impl<'a> SerializedMessage<'a> {
    /// A non-blocking invocation of `target` with `arguments`.
    pub fn invocation(target: &'a str, arguments: &'a dyn Arguments) -> Self {
        Self {
            source: Some((target, arguments)),
            cache: [OnceLock::new(), OnceLock::new()],
        }
    }

    /// A message already encoded (for instance received from a backplane). A protocol
    /// given no bytes yields an error when asked for.
    pub fn encoded(json: Option<Bytes>, messagepack: Option<Bytes>) -> Self {
        let missing = || {
            Err(EncodeError::Serialize(
                "the message is not available in this protocol".to_owned(),
            ))
        };
        let cache = [OnceLock::new(), OnceLock::new()];
        let _ = cache[0].set(json.map_or_else(missing, Ok));
        let _ = cache[1].set(messagepack.map_or_else(missing, Ok));
        Self {
            source: None,
            cache,
        }
    }

    /// The framed message in `protocol`.
    ///
    /// # Errors
    ///
    /// [`EncodeError`] when an argument cannot be serialized.
    pub fn bytes(&self, protocol: Protocol) -> Result<Bytes, EncodeError> {
        let slot = &self.cache[protocol as usize];
        slot.get_or_init(|| {
            let (target, arguments) = self.source.ok_or_else(|| {
                EncodeError::Serialize("the message is not available in this protocol".to_owned())
            })?;
            let message = HubMessage::Invocation(Invocation {
                target: target.to_owned(),
                arguments: arguments.to_values(protocol)?,
                ..Default::default()
            });
            let mut out = Vec::new();
            protocol.encode(&message, &mut out)?;
            Ok(Bytes::from(out))
        })
        .clone()
    }
}

/// Which connections a message is for.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Selection {
    /// Every connection of the hub.
    All,
    /// Every connection but these.
    AllExcept(Vec<ConnectionId>),
    /// One connection.
    Connection(ConnectionId),
    /// These connections.
    Connections(Vec<ConnectionId>),
    /// The members of a group.
    Group(String),
    /// The members of any of these groups (each connection once).
    Groups(Vec<String>),
    /// The members of a group but these connections.
    GroupExcept(String, Vec<ConnectionId>),
    /// The connections of a user.
    User(String),
    /// The connections of any of these users.
    Users(Vec<String>),
}

/// Routes messages to connections and keeps groups; one per hub.
///
/// The in-memory [`InMemoryLifetimeManager`] is the default. A backplane implements the
/// same trait to reach connections on other servers.
#[async_trait]
pub trait LifetimeManager: Send + Sync + 'static {
    /// A connection completed its handshake.
    async fn on_connected(&self, connection: Arc<ConnectionHandle>);

    /// A connection ended; forget it and its group memberships.
    async fn on_disconnected(&self, connection: &ConnectionHandle);

    /// Sends `message` to the selected connections.
    async fn send(
        &self,
        selection: &Selection,
        message: &SerializedMessage<'_>,
    ) -> Result<(), SendError>;

    /// Adds a connection to a group.
    async fn add_to_group(&self, connection: &ConnectionId, group: &str) -> Result<(), SendError>;

    /// Removes a connection from a group.
    async fn remove_from_group(
        &self,
        connection: &ConnectionId,
        group: &str,
    ) -> Result<(), SendError>;

    /// The local connection with this id, if it is connected to this server.
    fn connection(&self, id: &ConnectionId) -> Option<Arc<ConnectionHandle>>;

    /// The ids of the selected connections (on every server, for a backplane).
    async fn connection_ids(&self, selection: &Selection) -> Vec<ConnectionId>;

    /// Invokes `target` on one connection and waits for its result (a client result).
    async fn invoke(
        &self,
        connection: &ConnectionId,
        target: &str,
        arguments: &(dyn Arguments + Send),
        timeout: Duration,
    ) -> Result<Outcome, ClientResultError>;
}

/// The default lifetime manager: every connection of the hub is on this server.
#[derive(Debug, Default)]
pub struct InMemoryLifetimeManager {
    state: RwLock<State>,
}

#[derive(Debug, Default)]
struct State {
    connections: HashMap<ConnectionId, Arc<ConnectionHandle>>,
    groups: HashMap<String, HashSet<ConnectionId>>,
    users: HashMap<String, HashSet<ConnectionId>>,
    memberships: HashMap<ConnectionId, HashSet<String>>,
}

impl InMemoryLifetimeManager {
    /// An empty manager.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The groups a local connection is in.
    pub fn groups_of(&self, connection: &ConnectionId) -> Vec<String> {
        self.read()
            .memberships
            .get(connection)
            .map(|groups| groups.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The local connections a selection names.
    pub fn select(&self, selection: &Selection) -> Vec<Arc<ConnectionHandle>> {
        let state = self.read();
        let by_id = |id: &ConnectionId| state.connections.get(id).cloned();
        let members = |group: &str| state.groups.get(group).into_iter().flatten();
        let of_user = |user: &str| state.users.get(user).into_iter().flatten();
        match selection {
            Selection::All => state.connections.values().cloned().collect(),
            Selection::AllExcept(excluded) => state
                .connections
                .values()
                .filter(|c| !excluded.contains(&c.id))
                .cloned()
                .collect(),
            Selection::Connection(id) => by_id(id).into_iter().collect(),
            Selection::Connections(ids) => unique(ids.iter()).filter_map(by_id).collect(),
            Selection::Group(group) => members(group).filter_map(by_id).collect(),
            Selection::Groups(groups) => unique(groups.iter().flat_map(|g| members(g)))
                .filter_map(by_id)
                .collect(),
            Selection::GroupExcept(group, excluded) => members(group)
                .filter(|id| !excluded.contains(id))
                .filter_map(by_id)
                .collect(),
            Selection::User(user) => of_user(user).filter_map(by_id).collect(),
            Selection::Users(users) => unique(users.iter().flat_map(|u| of_user(u)))
                .filter_map(by_id)
                .collect(),
        }
    }
}

fn unique<'a>(
    ids: impl Iterator<Item = &'a ConnectionId>,
) -> impl Iterator<Item = &'a ConnectionId> {
    let mut seen = HashSet::new();
    ids.filter(move |id| seen.insert(*id))
}

/// Queues `message` on every connection in `targets`, waiting concurrently on those whose
/// queues are full. Used by [`InMemoryLifetimeManager`] and available to backplanes for
/// their local delivery.
///
/// # Errors
///
/// [`SendError::Encode`] when the message cannot be encoded for a recipient's protocol.
pub async fn deliver(
    targets: &[Arc<ConnectionHandle>],
    message: &SerializedMessage<'_>,
) -> Result<(), SendError> {
    let mut waiting = FuturesUnordered::new();
    for connection in targets {
        let bytes = message
            .bytes(connection.protocol())
            .map_err(SendError::Encode)?;
        if let Err(Some(bytes)) = connection.try_write(bytes) {
            waiting.push(async move {
                let _ = connection.write(bytes).await;
            });
        }
    }
    while waiting.next().await.is_some() {}
    Ok(())
}

#[async_trait]
impl LifetimeManager for InMemoryLifetimeManager {
    async fn on_connected(&self, connection: Arc<ConnectionHandle>) {
        let mut state = self.write();
        if let Some(user) = connection.user() {
            state
                .users
                .entry(user.to_owned())
                .or_default()
                .insert(connection.id.clone());
        }
        state.connections.insert(connection.id.clone(), connection);
    }

    async fn on_disconnected(&self, connection: &ConnectionHandle) {
        let mut state = self.write();
        let id = &connection.id;
        state.connections.remove(id);
        if let Some(user) = connection.user()
            && let Some(ids) = state.users.get_mut(user)
        {
            ids.remove(id);
            if ids.is_empty() {
                state.users.remove(user);
            }
        }
        for group in state.memberships.remove(id).unwrap_or_default() {
            if let Some(members) = state.groups.get_mut(&group) {
                members.remove(id);
                if members.is_empty() {
                    state.groups.remove(&group);
                }
            }
        }
    }

    async fn send(
        &self,
        selection: &Selection,
        message: &SerializedMessage<'_>,
    ) -> Result<(), SendError> {
        let targets = self.select(selection);
        deliver(&targets, message).await
    }

    async fn add_to_group(&self, connection: &ConnectionId, group: &str) -> Result<(), SendError> {
        let mut state = self.write();
        if !state.connections.contains_key(connection) {
            return Ok(());
        }
        state
            .groups
            .entry(group.to_owned())
            .or_default()
            .insert(connection.clone());
        state
            .memberships
            .entry(connection.clone())
            .or_default()
            .insert(group.to_owned());
        Ok(())
    }

    async fn remove_from_group(
        &self,
        connection: &ConnectionId,
        group: &str,
    ) -> Result<(), SendError> {
        let mut state = self.write();
        if let Some(members) = state.groups.get_mut(group) {
            members.remove(connection);
            if members.is_empty() {
                state.groups.remove(group);
            }
        }
        if let Some(groups) = state.memberships.get_mut(connection) {
            groups.remove(group);
        }
        Ok(())
    }

    fn connection(&self, id: &ConnectionId) -> Option<Arc<ConnectionHandle>> {
        self.read().connections.get(id).cloned()
    }

    async fn connection_ids(&self, selection: &Selection) -> Vec<ConnectionId> {
        self.select(selection)
            .iter()
            .map(|c| c.id.clone())
            .collect()
    }

    async fn invoke(
        &self,
        connection: &ConnectionId,
        target: &str,
        arguments: &(dyn Arguments + Send),
        timeout: Duration,
    ) -> Result<Outcome, ClientResultError> {
        let handle = self
            .connection(connection)
            .ok_or_else(|| ClientResultError::NoConnection(connection.clone()))?;
        handle.invoke(target, arguments, timeout).await
    }
}
