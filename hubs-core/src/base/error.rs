//! Errors of the hub runtime.

use std::fmt;

use hubs_protocol::{DecodeError, EncodeError, HubError, wire};

/// Sending a message to clients failed.
///
/// In a hub method, `?` turns it into a [`HubError`], so the caller's invocation fails
/// with a message it is shown (`HubException: {message}`). The message says what failed,
/// never why inside the server: [`Encode`](Self::Encode) reads `The message could not be
/// encoded.`, [`Routing`](Self::Routing) `The message could not be routed.` (what the
/// broker said is the server's business, not the caller's), and
/// [`Dropped`](Self::Dropped) `The message was dropped: {reason}`, with the reason the
/// outgoing filter gave.
///
/// ```
/// use hubs_core::{HubError, SendError};
///
/// let error: HubError = SendError::Routing("redis: connection refused".into()).into();
/// assert_eq!(error.message(), "The message could not be routed.");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The arguments could not be serialized.
    #[error("cannot encode the message")]
    Encode(#[source] EncodeError),
    /// The lifetime manager (for example a backplane) could not route the message.
    #[error("cannot route the message: {0}")]
    Routing(String),
    /// An outgoing filter dropped the message, for this reason.
    #[error("the message was dropped: {0}")]
    Dropped(String),
}

impl From<SendError> for HubError {
    fn from(error: SendError) -> Self {
        match error {
            SendError::Encode(_) => HubError::new("The message could not be encoded."),
            SendError::Routing(_) => HubError::new("The message could not be routed."),
            SendError::Dropped(reason) => {
                HubError::new(format!("The message was dropped: {reason}"))
            }
        }
    }
}

/// Why a hub method call failed, before the wire text is chosen.
///
/// Generated dispatchers produce it; the runtime turns it into the caller's error text
/// (in one place, [`DispatchError::invocation_text`]), hiding details unless the hub enables
/// detailed errors.
#[derive(Debug)]
#[non_exhaustive]
pub enum DispatchError {
    /// The arguments did not match the method's parameters.
    Bind {
        /// What went wrong, shown only with detailed errors.
        detail: String,
    },
    /// The method returned an error (or panicked).
    Failed {
        /// The short type name of the error (`HubException` for [`HubError`]).
        type_name: String,
        /// The error's message.
        message: String,
        /// Whether the error is a [`HubError`], whose text is always shown.
        hub_error: bool,
    },
    /// A service the method injects is not registered on the server.
    MissingService {
        /// The service's type name (and key).
        service: String,
    },
    /// The result could not be serialized.
    Encode(EncodeError),
    /// The caller does not meet the method's requirement: the caller gets the official
    /// `Failed to invoke 'X' because user is unauthorized`.
    Unauthorized,
    /// A filter refused the call with this exact text (a limit, for instance).
    Refused {
        /// What the caller gets.
        text: String,
    },
}

impl DispatchError {
    /// An error returned by a hub method.
    pub fn failed<E: fmt::Display + 'static>(error: E) -> Self {
        let any: &dyn std::any::Any = &error;
        if let Some(hub) = any.downcast_ref::<HubError>() {
            return Self::hub(hub.message());
        }
        Self::Failed {
            type_name: short_type_name(std::any::type_name::<E>()).to_owned(),
            message: error.to_string(),
            hub_error: false,
        }
    }

    /// A [`HubError`] with `message`.
    pub fn hub(message: impl Into<String>) -> Self {
        Self::Failed {
            type_name: "HubException".to_owned(),
            message: message.into(),
            hub_error: true,
        }
    }

    /// An argument that could not be bound.
    pub fn bind(error: DecodeError) -> Self {
        Self::Bind {
            detail: format!(
                "Error binding arguments. Make sure that the types of the provided values match the types of the hub method being invoked. {error}"
            ),
        }
    }
}

impl DispatchError {
    /// The text sent to the caller of `method` for `error`: details are shown only for
    /// [`HubError`](crate::HubError)s or when the hub enables detailed errors.
    pub fn invocation_text(&self, method: &str, detailed: bool) -> String {
        match self {
            DispatchError::Bind { detail } => wire::bind_failed(
                method,
                detailed.then_some(("InvalidDataException", detail.as_str())),
            ),
            DispatchError::Failed {
                type_name,
                message,
                hub_error,
            } => wire::unexpected_error(
                method,
                (detailed || *hub_error).then_some((type_name.as_str(), message.as_str())),
            ),
            DispatchError::MissingService { service } => {
                let message = format!("No service for type '{service}' has been registered.");
                wire::unexpected_error(
                    method,
                    detailed.then_some(("InvalidOperationException", message.as_str())),
                )
            }
            DispatchError::Encode(error) => wire::unexpected_error(
                method,
                detailed.then_some(("EncodeError", error.to_string().as_str())),
            ),
            DispatchError::Unauthorized => wire::unauthorized_method(method),
            DispatchError::Refused { text } => text.clone(),
        }
    }

    /// The error Completion of a stream that failed after it started.
    pub fn streaming_text(&self, method: &str, detailed: bool) -> String {
        let text = wire::STREAMING_FAILED.to_owned();
        match self {
            DispatchError::Failed {
                type_name,
                message,
                hub_error,
            } => wire::with_detail(
                text,
                (detailed || *hub_error).then_some((type_name.as_str(), message.as_str())),
            ),
            other => wire::with_detail(
                text,
                detailed.then_some((
                    "InvalidDataException",
                    other.invocation_text(method, true).as_str(),
                )),
            ),
        }
    }
}

/// `a::b::Foo<c::D>` → `Foo`.
fn short_type_name(full: &str) -> &str {
    let base = full.split('<').next().unwrap_or(full);
    base.rsplit("::").next().unwrap_or(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct InvalidOperationException(&'static str);
    impl fmt::Display for InvalidOperationException {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    #[test]
    fn failures_keep_their_type_name() {
        let DispatchError::Failed {
            type_name,
            hub_error,
            ..
        } = DispatchError::failed(InvalidOperationException("An error occurred."))
        else {
            panic!("a failure");
        };
        assert_eq!(type_name, "InvalidOperationException");
        assert!(!hub_error);
        assert!(matches!(
            DispatchError::failed(HubError::new("Nope")),
            DispatchError::Failed {
                hub_error: true,
                ..
            }
        ));
        assert_eq!(
            short_type_name("alloc::boxed::Box<dyn core::error::Error>"),
            "Box"
        );
    }

    #[test]
    fn details_are_shown_only_when_allowed() {
        let failed = DispatchError::Failed {
            type_name: "InvalidOperationException".to_owned(),
            message: "An error occurred.".to_owned(),
            hub_error: false,
        };
        assert_eq!(
            failed.invocation_text("ThrowException", true),
            "An unexpected error occurred invoking 'ThrowException' on the server. InvalidOperationException: An error occurred."
        );
        assert_eq!(
            failed.invocation_text("ThrowException", false),
            "An unexpected error occurred invoking 'ThrowException' on the server."
        );
        let hub = DispatchError::hub("Nope");
        assert_eq!(
            hub.invocation_text("Add", false),
            "An unexpected error occurred invoking 'Add' on the server. HubException: Nope"
        );
        assert_eq!(
            hub.streaming_text("Add", false),
            "An error occurred on the server while streaming results. HubException: Nope"
        );
        assert_eq!(
            failed.streaming_text("S", false),
            "An error occurred on the server while streaming results."
        );
        let bind = DispatchError::Bind {
            detail: wire::argument_count_mismatch(0, 1),
        };
        assert_eq!(
            bind.invocation_text("Echo", true),
            "Failed to invoke 'Echo' due to an error on the server. InvalidDataException: Invocation provides 0 argument(s) but target expects 1."
        );
    }
}
