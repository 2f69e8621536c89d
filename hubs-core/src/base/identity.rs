//! Who is on the other end: the authenticated [`User`] a connection belongs to, and the
//! [`Authenticator`] that turns a request into one.
//!
//! The transports run the authenticator on every request of a hub (negotiate, the
//! WebSocket upgrade, each long poll and POST): a credential it rejects gets `401`, and a
//! long-polling or Server-Sent Events connection whose later requests carry another user
//! gets `403`. Hub code reads the user with [`Context::user`](crate::Context::user).

use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use crate::base::future::BoxFuture;

/// An authenticated user: an id (the name-identifier claim, `sub`), a name, roles, every
/// other claim, and when the credential expires.
///
/// ```
/// use hubs_core::User;
///
/// let user = User::new("42").with_name("ann").with_role("admin");
/// assert_eq!(user.id(), Some("42"));
/// assert!(user.is_in_role("admin"));
///
/// // From a JWT's claims: `sub`, `name`, `role`/`roles`, `exp`.
/// let claims = serde_json::json!({"sub": "7", "name": "bob", "roles": ["a", "b"], "exp": 2000000000, "team": "x"});
/// let user = User::from_claims(claims.as_object().unwrap().clone());
/// assert_eq!((user.id(), user.name()), (Some("7"), Some("bob")));
/// assert_eq!(user.roles(), ["a", "b"]);
/// assert_eq!(user.claim("team"), Some(&serde_json::json!("x")));
/// assert!(user.expires_at().is_some());
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct User {
    id: Option<String>,
    name: Option<String>,
    roles: Vec<String>,
    claims: Map<String, Value>,
    expires_at: Option<SystemTime>,
}

/// The claim names ASP.NET Core reads roles and names from, besides the JWT ones.
const ROLE_CLAIMS: [&str; 3] = [
    "role",
    "roles",
    "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
];
const NAME_CLAIMS: [&str; 3] = [
    "name",
    "unique_name",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
];
const ID_CLAIMS: [&str; 2] = [
    "sub",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier",
];

impl User {
    /// A user with this id.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: Some(id.into()),
            ..Self::default()
        }
    }

    /// The user of a set of claims (a JWT's payload): the id from `sub`, the name from
    /// `name` or `unique_name`, the roles from `role` or `roles` (a string or an array),
    /// the expiry from `exp`; every claim stays readable with [`claim`](Self::claim).
    pub fn from_claims(claims: Map<String, Value>) -> Self {
        let text = |names: &[&str]| {
            names.iter().find_map(|name| match claims.get(*name) {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Number(n)) => Some(n.to_string()),
                _ => None,
            })
        };
        let mut roles = Vec::new();
        for name in ROLE_CLAIMS {
            match claims.get(name) {
                Some(Value::String(role)) => roles.push(role.clone()),
                Some(Value::Array(values)) => {
                    roles.extend(values.iter().filter_map(Value::as_str).map(str::to_owned))
                }
                _ => {}
            }
        }
        let expires_at = claims
            .get("exp")
            .and_then(Value::as_u64)
            .map(|seconds| UNIX_EPOCH + Duration::from_secs(seconds));
        Self {
            id: text(&ID_CLAIMS),
            name: text(&NAME_CLAIMS),
            roles,
            expires_at,
            claims,
        }
    }

    /// Sets the name.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Adds a role.
    #[must_use]
    pub fn with_role(mut self, role: impl Into<String>) -> Self {
        self.roles.push(role.into());
        self
    }

    /// Adds a claim.
    #[must_use]
    pub fn with_claim(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.claims.insert(name.into(), value.into());
        self
    }

    /// Sets when the credential expires.
    #[must_use]
    pub fn with_expiry(mut self, expires_at: SystemTime) -> Self {
        self.expires_at = Some(expires_at);
        self
    }

    /// The user id (the name-identifier claim): what `Clients::user` addresses unless the
    /// hub has its own user-id provider.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// The user's name.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The user's roles.
    pub fn roles(&self) -> &[String] {
        &self.roles
    }

    /// Whether the user has `role`.
    pub fn is_in_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// A claim by name.
    pub fn claim(&self, name: &str) -> Option<&Value> {
        self.claims.get(name)
    }

    /// Every claim.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    /// When the credential expires, if it does.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at
    }
}

/// A credential was presented and refused (bad signature, expired, wrong audience): the
/// request gets `401`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AuthError(pub String);

/// Turns a request into a user: a JWT validator (`hubs-auth`), cookies, API keys, an
/// introspection call.
///
/// `Ok(None)` is an anonymous request (no credential), which hubs that require
/// authentication refuse with `401`; `Err` is a credential that was refused.
///
/// A closure works too:
///
/// ```
/// use hubs_core::{AuthError, Authenticator, Request, User};
///
/// let api_keys = |request: Request| async move {
///     match request.header("x-api-key") {
///         None => Ok(None),
///         Some("k-42") => Ok(Some(User::new("42"))),
///         Some(_) => Err(AuthError("unknown API key".into())),
///     }
/// };
/// fn takes(_: impl Authenticator) {}
/// takes(api_keys);
/// ```
pub trait Authenticator: Send + Sync + 'static {
    /// The user `request` authenticates, if any.
    fn authenticate(&self, request: &Request) -> BoxFuture<Result<Option<User>, AuthError>>;
}

impl<F, Fut> Authenticator for F
where
    F: Fn(Request) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Option<User>, AuthError>> + Send + 'static,
{
    fn authenticate(&self, request: &Request) -> BoxFuture<Result<Option<User>, AuthError>> {
        Box::pin(self(request.clone()))
    }
}

impl<A: Authenticator + ?Sized> Authenticator for Arc<A> {
    fn authenticate(&self, request: &Request) -> BoxFuture<Result<Option<User>, AuthError>> {
        (**self).authenticate(request)
    }
}

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
    /// [`Authenticator`](crate::base::identity::Authenticator)); `None` for an anonymous request.
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
