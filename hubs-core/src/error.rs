//! Errors of the hub runtime.

use std::fmt;

use crate::protocol::{DecodeError, EncodeError};

/// An error whose message is meant for the caller: the `HubException` of ASP.NET Core.
///
/// When a hub method fails with a `HubError`, the caller's error reads
/// `An unexpected error occurred invoking '{method}' on the server. HubException: {message}`
/// even when detailed errors are off; any other error type is reduced to the generic first
/// sentence unless the hub enables detailed errors.
///
/// # Examples
///
/// ```
/// use hubs_core::HubError;
///
/// fn withdraw(balance: u64, amount: u64) -> Result<u64, HubError> {
///     balance
///         .checked_sub(amount)
///         .ok_or_else(|| HubError::new("insufficient funds"))
/// }
/// assert_eq!(withdraw(1, 2).unwrap_err().message(), "insufficient funds");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct HubError {
    message: String,
}

impl HubError {
    /// An error carrying `message` to the caller.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// The message the caller sees.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<&str> for HubError {
    fn from(message: &str) -> Self {
        Self::new(message)
    }
}

impl From<String> for HubError {
    fn from(message: String) -> Self {
        Self::new(message)
    }
}

/// Sending a message to clients failed.
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

/// Why a hub method call failed, before the wire text is chosen.
///
/// Generated dispatchers produce it; the runtime turns it into the caller's error text
/// (in one place, `wire::invocation_error`), hiding details unless the hub enables
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
}
