//! Outgoing filters: code around every message the server sends ([`OutgoingFilter`], which
//! no SignalR has), and the chain every sender carries.

use std::sync::Arc;

use hubs_protocol::Headers;

/// What kind of message the server is sending.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OutgoingKind {
    /// A call to client methods (`clients.x().send(..)`), to one or many connections.
    Invocation,
    /// A call that asks for a client result.
    ClientResult,
    /// An item of a stream a client asked for.
    StreamItem,
}

/// A message on its way to clients, as outgoing filters see it: once per send (a
/// broadcast is filtered once, then encoded once per protocol), before it is encoded.
#[derive(Debug)]
pub struct OutgoingMessage<'a> {
    pub(crate) hub: &'a str,
    pub(crate) kind: OutgoingKind,
    pub(crate) target: Option<&'a str>,
    pub(crate) headers: &'a mut Headers,
}

impl OutgoingMessage<'_> {
    /// The hub's name.
    pub fn hub(&self) -> &str {
        self.hub
    }

    /// What kind of message it is.
    pub fn kind(&self) -> OutgoingKind {
        self.kind
    }

    /// The client method called (for invocations and client results).
    pub fn target(&self) -> Option<&str> {
        self.target
    }

    /// The message's headers (string to string), which clients receive.
    pub fn headers(&self) -> &Headers {
        self.headers
    }

    /// Adds or replaces a header.
    pub fn set_header(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.headers.insert(name.into(), value.into());
    }
}

/// Why an outgoing filter dropped a message: the sender gets
/// [`SendError::Dropped`](crate::base::error::SendError::Dropped) with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dropped(pub String);

/// Code around every message the server sends to clients: invocations on every Clients
/// target, client-result calls and stream items (no SignalR has them). Synchronous: it runs
/// on the send path.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use hubs_core::{Dropped, OutgoingFilter, OutgoingMessage};
///
/// /// Numbers every message in a header, and refuses to send `Secret`.
/// #[derive(Default)]
/// struct Numbered(AtomicU64);
///
/// impl OutgoingFilter for Numbered {
///     fn on_send(&self, message: &mut OutgoingMessage<'_>) -> Result<(), Dropped> {
///         if message.target() == Some("Secret") {
///             return Err(Dropped("not to clients".into()));
///         }
///         let n = self.0.fetch_add(1, Ordering::Relaxed);
///         message.set_header("x-seq", n.to_string());
///         Ok(())
///     }
/// }
/// ```
pub trait OutgoingFilter: Send + Sync + 'static {
    /// Looks at (and may add headers to) a message; `Err` drops it.
    ///
    /// # Errors
    ///
    /// [`Dropped`] to drop the message, with the reason.
    fn on_send(&self, message: &mut OutgoingMessage<'_>) -> Result<(), Dropped>;
}

/// A hub's outgoing filters, as every sender carries them.
#[derive(Clone)]
pub(crate) struct OutgoingFilters {
    hub: Arc<str>,
    filters: Arc<[Arc<dyn OutgoingFilter>]>,
}

impl std::fmt::Debug for OutgoingFilters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutgoingFilters")
            .field("hub", &self.hub)
            .field("filters", &self.filters.len())
            .finish()
    }
}

impl OutgoingFilters {
    pub(crate) fn new(hub: Arc<str>, filters: Vec<Arc<dyn OutgoingFilter>>) -> Self {
        Self {
            hub,
            filters: filters.into(),
        }
    }

    /// No filters (connections made without a hub, in tests).
    pub(crate) fn none() -> Self {
        Self::new(Arc::from(""), Vec::new())
    }

    /// The headers of a new message of `kind`, after every filter; `Err` when one drops
    /// it.
    pub(crate) fn headers(
        &self,
        kind: OutgoingKind,
        target: Option<&str>,
    ) -> Result<Headers, Dropped> {
        let mut headers = Headers::new();
        let mut message = OutgoingMessage {
            hub: &self.hub,
            kind,
            target,
            headers: &mut headers,
        };
        for filter in self.filters.iter() {
            filter.on_send(&mut message)?;
        }
        Ok(headers)
    }
}

/// Carries W3C trace context (`traceparent`, `tracestate`) in the headers of every
/// outgoing message, from the current span (with the `opentelemetry` feature; without it
/// there is no context and nothing is added). Installed on every hub.
#[derive(Clone, Copy, Debug, Default)]
pub struct TraceContext;

impl OutgoingFilter for TraceContext {
    fn on_send(&self, message: &mut OutgoingMessage<'_>) -> Result<(), Dropped> {
        for (name, value) in hubs_protocol::trace_context::current() {
            message.headers.entry(name).or_insert(value);
        }
        Ok(())
    }
}
