//! The error a hub method returns to show its caller a message.

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
/// use hubs_protocol::HubError;
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
