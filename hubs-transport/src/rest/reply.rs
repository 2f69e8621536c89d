//! The API's answers: an empty success with its status, or a failure with the API's
//! `ErrorDetail` body (`code`, `message`, `target`).

use http::{HeaderValue, Response, StatusCode, header};
use serde::Serialize;

use crate::body::{self, Body};

/// A refused request: its status and `ErrorDetail`.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: StatusCode,
    detail: ErrorDetail,
}

/// The API's error body.
#[derive(Debug, Serialize)]
struct ErrorDetail {
    code: &'static str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<&'static str>,
}

impl Failure {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: &str) -> Self {
        Self {
            status,
            detail: ErrorDetail {
                code,
                message: message.to_owned(),
                target: None,
            },
        }
    }

    /// `400` about the parameter `target`.
    pub(crate) fn bad_request(target: &'static str, message: &str) -> Self {
        let mut failure = Self::new(StatusCode::BAD_REQUEST, "InvalidArgument", message);
        failure.detail.target = Some(target);
        failure
    }

    pub(crate) fn not_found(message: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", message)
    }

    pub(crate) fn unauthorized(message: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", message)
    }

    pub(crate) fn into_response(self) -> Response<Body> {
        let bytes = serde_json::to_vec(&self.detail).unwrap_or_default();
        let mut response = body::json(bytes);
        *response.status_mut() = self.status;
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// A success without a body.
pub(crate) fn status(status: StatusCode) -> Response<Body> {
    let mut response = body::empty_ok();
    *response.status_mut() = status;
    response
}

/// A success with a JSON body.
pub(crate) fn json(value: &impl Serialize) -> Response<Body> {
    body::json(serde_json::to_vec(value).unwrap_or_default())
}
