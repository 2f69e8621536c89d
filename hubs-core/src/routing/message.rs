//! Messages for many recipients, encoded at most once per protocol.

use std::sync::OnceLock;

use bytes::Bytes;

use hubs_protocol::Arguments;
use hubs_protocol::{EncodeError, Headers, HubMessage, Invocation, Protocol, Value};

/// One `T` for each hub protocol: what is encoded once per protocol and shared by every
/// recipient that speaks it.
///
/// ```
/// use hubs_core::PerProtocol;
/// use hubs_core::protocol::Protocol;
///
/// let names = PerProtocol::from_fn(|protocol| protocol.name().len());
/// assert_eq!(names[Protocol::Json], 4);
/// assert_eq!(names[Protocol::MessagePack], 11);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PerProtocol<T> {
    json: T,
    messagepack: T,
}

impl<T> PerProtocol<T> {
    /// The JSON and the MessagePack values.
    pub fn new(json: T, messagepack: T) -> Self {
        Self { json, messagepack }
    }

    /// The value `f` makes for each protocol.
    pub fn from_fn(mut f: impl FnMut(Protocol) -> T) -> Self {
        Self {
            json: f(Protocol::Json),
            messagepack: f(Protocol::MessagePack),
        }
    }

    /// The value `f` makes for each protocol, or the first error.
    ///
    /// # Errors
    ///
    /// The first error `f` returns.
    pub fn try_from_fn<E>(mut f: impl FnMut(Protocol) -> Result<T, E>) -> Result<Self, E> {
        Ok(Self {
            json: f(Protocol::Json)?,
            messagepack: f(Protocol::MessagePack)?,
        })
    }

    /// The value for `protocol`.
    pub fn get(&self, protocol: Protocol) -> &T {
        match protocol {
            Protocol::Json => &self.json,
            Protocol::MessagePack => &self.messagepack,
        }
    }

    /// The JSON and the MessagePack values.
    pub fn into_parts(self) -> (T, T) {
        (self.json, self.messagepack)
    }
}

impl<T> std::ops::Index<Protocol> for PerProtocol<T> {
    type Output = T;

    fn index(&self, protocol: Protocol) -> &T {
        self.get(protocol)
    }
}

/// Arguments already encoded for both protocols (for instance to outlive their caller, or
/// as received from a backplane).
impl Arguments for PerProtocol<Vec<Value>> {
    fn to_values(&self, protocol: Protocol) -> Result<Vec<Value>, EncodeError> {
        Ok(self[protocol].clone())
    }
}

/// An invocation for clients, encoded lazily: at most once per protocol, shared by every
/// recipient that speaks it.
///
/// It carries the headers the hub's outgoing filters gave it (the trace context of the
/// span it was made in, with the `opentelemetry` feature, so clients can continue the
/// trace).
pub struct SerializedMessage<'a> {
    source: Option<(&'a str, &'a dyn Arguments)>,
    headers: Headers,
    cache: PerProtocol<OnceLock<Result<Bytes, EncodeError>>>,
}

fn unavailable() -> EncodeError {
    EncodeError::Serialize("the message is not available in this protocol".to_owned())
}

impl<'a> SerializedMessage<'a> {
    /// A non-blocking invocation of `target` with `arguments`, carrying `headers`.
    pub fn invocation(target: &'a str, arguments: &'a dyn Arguments, headers: Headers) -> Self {
        Self {
            source: Some((target, arguments)),
            headers,
            cache: PerProtocol::default(),
        }
    }

    /// A message already encoded (for instance received from a backplane). A protocol
    /// given no bytes yields an error when asked for.
    pub fn encoded(json: Option<Bytes>, messagepack: Option<Bytes>) -> Self {
        let cache: PerProtocol<OnceLock<_>> = PerProtocol::default();
        let _ = cache[Protocol::Json].set(json.ok_or_else(unavailable));
        let _ = cache[Protocol::MessagePack].set(messagepack.ok_or_else(unavailable));
        Self {
            source: None,
            headers: Headers::new(),
            cache,
        }
    }

    /// The framed message in `protocol`.
    ///
    /// # Errors
    ///
    /// [`EncodeError`] when an argument cannot be serialized.
    pub fn bytes(&self, protocol: Protocol) -> Result<Bytes, EncodeError> {
        self.cache[protocol]
            .get_or_init(|| {
                let (target, arguments) = self.source.ok_or_else(unavailable)?;
                let message = HubMessage::Invocation(Invocation {
                    headers: self.headers.clone(),
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
