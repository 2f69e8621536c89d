//! Cross-origin requests from browsers.

use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};

use crate::body::{self, Body};

/// Which browser origins may call the hubs, with credentials (cookies), as the official
/// browser client sends them. Off by default: a page served by the same origin needs
/// nothing.
///
/// Allowed origins get `Access-Control-Allow-Origin: <their origin>` (never `*`, which
/// browsers refuse with credentials), `Access-Control-Allow-Credentials: true`, and
/// preflight answers allowing `GET, POST, DELETE` and the headers the official client
/// sends (`X-Requested-With`, `X-SignalR-User-Agent`, `Authorization`, `Content-Type`,
/// and the 11.0 client's `X-SignalR-Connection-Token` on an authentication refresh) plus
/// any configured ones.
///
/// ```
/// use hubs_transport::Cors;
///
/// let cors = Cors::origins(["https://app.example"]).allow_header("x-tenant");
/// # let _ = cors;
/// ```
#[derive(Clone, Debug)]
pub struct Cors {
    origins: Option<Vec<String>>,
    headers: Vec<String>,
}

const DEFAULT_HEADERS: [&str; 5] = [
    "x-requested-with",
    "x-signalr-user-agent",
    "authorization",
    "content-type",
    "x-signalr-connection-token",
];

impl Cors {
    /// Any origin (echoed back).
    pub fn any() -> Self {
        Self {
            origins: None,
            headers: DEFAULT_HEADERS.map(str::to_owned).to_vec(),
        }
    }

    /// Only these origins (`scheme://host[:port]`, compared without regard to case).
    pub fn origins<I>(origins: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        Self {
            origins: Some(
                origins
                    .into_iter()
                    .map(|o| o.into().to_ascii_lowercase())
                    .collect(),
            ),
            headers: DEFAULT_HEADERS.map(str::to_owned).to_vec(),
        }
    }

    /// Also allows a request header.
    #[must_use]
    pub fn allow_header(mut self, name: &str) -> Self {
        self.headers.push(name.to_ascii_lowercase());
        self
    }

    fn allowed<'a>(&self, headers: &'a HeaderMap) -> Option<&'a HeaderValue> {
        let origin = headers.get(header::ORIGIN)?;
        match &self.origins {
            None => Some(origin),
            Some(list) => {
                let text = origin.to_str().ok()?.to_ascii_lowercase();
                list.contains(&text).then_some(origin)
            }
        }
    }

    /// The headers of the answer to a preflight request (`OPTIONS` with
    /// `Access-Control-Request-Method`), to send with `204`; `None` when the request is not
    /// a preflight. For routes of your own beside the hubs (an axum middleware, say), so
    /// that every path of an application answers browsers alike.
    pub fn preflight_headers(&self, method: &Method, headers: &HeaderMap) -> Option<HeaderMap> {
        if method != Method::OPTIONS || !headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            return None;
        }
        let mut out = HeaderMap::new();
        let Some(origin) = self.allowed(headers).cloned() else {
            return Some(out);
        };
        out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        out.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        out.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, DELETE"),
        );
        if let Ok(value) = HeaderValue::from_str(&self.headers.join(", ")) {
            out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, value);
        }
        out.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        out.insert(header::VARY, HeaderValue::from_static("Origin"));
        Some(out)
    }

    /// Adds the CORS headers for an allowed origin to `response`, the headers of the answer
    /// to a request with headers `request` (for routes of your own; the hubs add them
    /// themselves). Headers already there are kept.
    pub fn add_headers(&self, request: &HeaderMap, response: &mut HeaderMap) {
        if response.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN) {
            return;
        }
        if let Some(origin) = self.allowed(request).cloned() {
            response.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            response.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
            response.append(header::VARY, HeaderValue::from_static("Origin"));
        }
    }

    /// The answer to a preflight request, if this is one.
    pub(crate) fn preflight(&self, method: &Method, headers: &HeaderMap) -> Option<Response<Body>> {
        let out = self.preflight_headers(method, headers)?;
        let mut response = Response::new(body::empty());
        *response.status_mut() = StatusCode::NO_CONTENT;
        *response.headers_mut() = out;
        Some(response)
    }

    /// Adds the CORS headers to a response for an allowed origin.
    pub(crate) fn decorate(&self, request: &HeaderMap, response: &mut Response<Body>) {
        self.add_headers(request, response.headers_mut());
    }
}
