//! The connection context hub methods receive.

use std::sync::{Arc, Mutex};

use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use tokio_util::sync::CancellationToken;

use crate::clients::{Clients, Groups};
use crate::connection::{ConnectionHandle, Streams};
use crate::connection_id::ConnectionId;
use crate::hub::Hub;
use crate::identity::User;
use crate::runtime::HubRuntime;
use hubs_protocol::Protocol;
use hubs_protocol::TransportKind;

/// The HTTP request that opened a connection: its URI (with the query string), headers
/// (cookies included), and the user its credential authenticated.
#[derive(Clone, Debug, Default)]
pub struct Request {
    uri: Uri,
    headers: HeaderMap,
    user: Option<Arc<User>>,
}

impl Request {
    /// A request with this URI and these headers.
    pub fn new(uri: Uri, headers: HeaderMap) -> Self {
        Self {
            uri,
            headers,
            user: None,
        }
    }

    /// A request that a connection keeps for its lifetime: copies of `uri` and `headers`
    /// that hold nothing else alive. A server that parses without copying (hyper does)
    /// makes the URI and every header value slices of its read buffer, and one kept slice
    /// keeps that whole buffer (8 KiB in hyper) for as long as the connection lasts.
    ///
    /// ```
    /// # use hubs_core::Request;
    /// let uri: http::Uri = "/chat?id=x".parse().unwrap();
    /// let mut headers = http::HeaderMap::new();
    /// headers.insert("x-room", http::HeaderValue::from_static("7"));
    /// let request = Request::owned(&uri, &headers);
    /// assert_eq!(request.uri(), &uri);
    /// assert_eq!(request.header("X-Room"), Some("7"));
    /// ```
    pub fn owned(uri: &Uri, headers: &HeaderMap) -> Self {
        let uri = Uri::try_from(uri.to_string()).unwrap_or_else(|_| uri.clone());
        let mut copies = HeaderMap::with_capacity(headers.len());
        for (name, value) in headers {
            let mut copy =
                HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| value.clone());
            copy.set_sensitive(value.is_sensitive());
            let name =
                HeaderName::from_bytes(name.as_str().as_bytes()).unwrap_or_else(|_| name.clone());
            copies.append(name, copy);
        }
        Self::new(uri, copies)
    }

    /// The same request, authenticated as `user`.
    #[must_use]
    pub fn with_user(mut self, user: Option<Arc<User>>) -> Self {
        self.user = user;
        self
    }

    /// The user the request's credential authenticated (see
    /// [`Authenticator`](crate::Authenticator)); `None` for an anonymous request.
    pub fn user(&self) -> Option<&User> {
        self.user.as_deref()
    }

    /// The user, shared.
    pub fn user_arc(&self) -> Option<Arc<User>> {
        self.user.clone()
    }

    /// The request URI.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The request headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// A header's value as text; `None` when absent or not text. Names ignore case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A query parameter's raw value (the first, if repeated).
    ///
    /// ```
    /// # use hubs_core::Request;
    /// let request = Request::new("/chat?id=x&room=7".parse().unwrap(), Default::default());
    /// assert_eq!(request.query("room"), Some("7"));
    /// ```
    pub fn query(&self, name: &str) -> Option<&str> {
        self.uri.query()?.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key == name).then_some(value)
        })
    }

    /// The bearer token the client sent: the `Authorization: Bearer <token>` header
    /// (Node, .NET, Java clients, long polling) or, where a client cannot set headers
    /// (browsers' WebSockets and Server-Sent Events), the `access_token` query parameter,
    /// percent-decoded.
    ///
    /// ```
    /// # use hubs_core::Request;
    /// let mut headers = http::HeaderMap::new();
    /// headers.insert("authorization", "Bearer abc.def".parse().unwrap());
    /// let request = Request::new("/chat".parse().unwrap(), headers);
    /// assert_eq!(request.access_token().as_deref(), Some("abc.def"));
    ///
    /// let request = Request::new("/chat?id=1&access_token=a%2Bb".parse().unwrap(), Default::default());
    /// assert_eq!(request.access_token().as_deref(), Some("a+b"));
    /// ```
    pub fn access_token(&self) -> Option<std::borrow::Cow<'_, str>> {
        let header = self.header("authorization").and_then(|value| {
            let (scheme, token) = value.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
        match header {
            Some(token) if !token.is_empty() => Some(token.into()),
            _ => self
                .query("access_token")
                .map(|raw| percent_encoding::percent_decode_str(raw).decode_utf8_lossy()),
        }
    }

    /// A cookie's value.
    ///
    /// ```
    /// # use hubs_core::Request;
    /// let mut headers = http::HeaderMap::new();
    /// headers.insert("cookie", "a=1; testCookie=testValue".parse().unwrap());
    /// let request = Request::new("/".parse().unwrap(), headers);
    /// assert_eq!(request.cookie("testCookie"), Some("testValue"));
    /// ```
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|pair| {
                let (key, value) = pair.trim().split_once('=')?;
                (key == name).then_some(value)
            })
    }
}

/// Values that live as long as one connection (`Context.Items`), keyed by type.
///
/// ```
/// # use hubs_core::Items;
/// #[derive(Clone, Debug, PartialEq)]
/// struct Nick(String);
/// let items = Items::default();
/// items.insert(Nick("ann".into()));
/// assert_eq!(items.get::<Nick>(), Some(Nick("ann".into())));
/// ```
#[derive(Debug, Default)]
pub struct Items {
    map: Mutex<http::Extensions>,
}

impl Items {
    fn lock(&self) -> std::sync::MutexGuard<'_, http::Extensions> {
        self.map
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Stores `value`, returning the previous value of that type.
    pub fn insert<T: Clone + Send + Sync + 'static>(&self, value: T) -> Option<T> {
        self.lock().insert(value)
    }

    /// A copy of the value of type `T`.
    pub fn get<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.lock().get::<T>().cloned()
    }

    /// Removes and returns the value of type `T`.
    pub fn remove<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.lock().remove::<T>()
    }

    /// Runs `f` on the value of type `T` in place, inserting `T::default()` first if
    /// absent.
    pub fn with<T: Clone + Default + Send + Sync + 'static, R>(
        &self,
        f: impl FnOnce(&mut T) -> R,
    ) -> R {
        let mut map = self.lock();
        f(map.get_or_insert_default::<T>())
    }
}

/// What lives as long as one connection.
#[derive(Debug)]
pub(crate) struct ConnectionState {
    pub(crate) handle: Arc<ConnectionHandle>,
    pub(crate) request: Request,
    pub(crate) transport: TransportKind,
    pub(crate) items: Items,
    pub(crate) streams: Arc<Streams>,
}

/// The calling connection, given to hub methods and hooks: its id, user, request and
/// items, and the way to reach other clients and groups. Cheap to clone.
pub struct Context<H: Hub> {
    connection: Arc<ConnectionState>,
    runtime: Arc<HubRuntime<H>>,
}

impl<H: Hub> Clone for Context<H> {
    fn clone(&self) -> Self {
        Self {
            connection: self.connection.clone(),
            runtime: self.runtime.clone(),
        }
    }
}

impl<H: Hub> Context<H> {
    pub(crate) fn new(connection: Arc<ConnectionState>, runtime: Arc<HubRuntime<H>>) -> Self {
        Self {
            connection,
            runtime,
        }
    }

    pub(crate) fn runtime(&self) -> &Arc<HubRuntime<H>> {
        &self.runtime
    }

    pub(crate) fn streams(&self) -> &Arc<Streams> {
        &self.connection.streams
    }

    pub(crate) fn handle(&self) -> &Arc<ConnectionHandle> {
        &self.connection.handle
    }

    /// The connection's id (what `clients().client(id)` takes).
    pub fn connection_id(&self) -> &ConnectionId {
        self.connection.handle.id()
    }

    /// The user the connection belongs to, as the hub's user-id provider found it (by
    /// default the authenticated user's id, its `sub` claim).
    pub fn user_identifier(&self) -> Option<&str> {
        self.connection.handle.user()
    }

    /// The authenticated user, with its claims and roles; `None` for an anonymous
    /// connection.
    pub fn user(&self) -> Option<&User> {
        self.connection.request.user()
    }

    /// The HTTP request that opened the connection.
    pub fn request(&self) -> &Request {
        &self.connection.request
    }

    /// The transport the connection uses.
    pub fn transport(&self) -> TransportKind {
        self.connection.transport
    }

    /// The connection's hub protocol.
    pub fn protocol(&self) -> Protocol {
        self.connection.handle.protocol()
    }

    /// Values that live as long as the connection.
    pub fn items(&self) -> &Items {
        &self.connection.items
    }

    /// Cancelled when the connection ends (`Context.ConnectionAborted`).
    pub fn connection_closed(&self) -> CancellationToken {
        self.connection.handle.end_handle().token().clone()
    }

    /// Overrides the hub's slow-consumer policy for this connection (for example in
    /// `on_connected`, for a client known to be on a slow link).
    pub fn set_slow_consumer_policy(&self, policy: crate::SlowConsumerPolicy) {
        self.connection.handle.set_slow_consumer_policy(policy);
    }

    /// Closes the connection (`Context.Abort()`); the client is told not to reconnect.
    pub fn abort(&self) {
        self.connection.handle.abort();
    }

    /// The clients of the hub, including the caller-relative targets.
    pub fn clients(&self) -> Clients<H> {
        Clients::new(self.runtime.clients(), self.connection_id().clone())
    }

    /// Group membership.
    pub fn groups(&self) -> Groups {
        self.runtime.groups()
    }

    /// Who is connected, on every server; ending any connection by id.
    pub fn presence(&self) -> crate::Presence {
        self.runtime.presence()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http::{HeaderMap, HeaderValue, Uri};

    use super::Request;

    /// Whether `part` lies inside `buffer`.
    fn within(buffer: &Bytes, part: &[u8]) -> bool {
        let range = buffer.as_ptr_range();
        range.contains(&part.as_ptr())
    }

    #[test]
    fn an_owned_request_keeps_no_slice_of_the_buffer_it_was_parsed_from() {
        // What a zero-copy parser (hyper) hands over: slices of its read buffer.
        let buffer = Bytes::from(b"/hub?id=abc x-room: 7 cookie: k=v".to_vec());
        let uri = Uri::from_maybe_shared(buffer.slice(0..11)).expect("a URI");
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-room",
            HeaderValue::from_maybe_shared(buffer.slice(20..21)).expect("a value"),
        );
        let mut cookie = HeaderValue::from_maybe_shared(buffer.slice(30..33)).expect("a value");
        cookie.set_sensitive(true);
        headers.insert("cookie", cookie);
        assert!(within(&buffer, headers["x-room"].as_bytes()));
        assert!(within(&buffer, uri.path().as_bytes()));

        let request = Request::owned(&uri, &headers);
        assert_eq!(request.uri(), &uri);
        assert_eq!(request.header("X-Room"), Some("7"));
        assert!(request.headers()["cookie"].is_sensitive());
        assert!(!within(&buffer, request.uri().path().as_bytes()));
        assert!(!within(
            &buffer,
            request.uri().query().unwrap_or("").as_bytes()
        ));
        for value in request.headers().values() {
            assert!(!within(&buffer, value.as_bytes()));
        }
    }
}
