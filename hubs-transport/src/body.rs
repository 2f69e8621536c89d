//! Response bodies.

use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};

/// The response body type of [`HubService`](crate::HubService).
pub type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

pub(crate) fn empty() -> Body {
    full(Bytes::new())
}

/// `200` with an empty body.
pub(crate) fn empty_ok() -> Response<Body> {
    Response::new(empty())
}

/// A `text/plain` response.
pub(crate) fn text(status: StatusCode, text: impl Into<Bytes>) -> Response<Body> {
    let text: Bytes = text.into();
    let mut response = Response::new(full(text.clone()));
    *response.status_mut() = status;
    if !text.is_empty() {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    }
    response
}

pub(crate) fn json(bytes: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(full(bytes));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
