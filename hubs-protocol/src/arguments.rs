//! Argument lists for calls to clients.

use serde::Serialize;

use crate::error::EncodeError;
use crate::format::Protocol;
use crate::message::Value;

/// A list of arguments for an invocation sent to clients: `()`, or a tuple of serializable
/// values (up to 12).
///
/// A broadcast encodes the list once per protocol in use, and only then.
///
/// ```
/// use hubs_protocol::Arguments;
/// use hubs_protocol::Protocol;
///
/// let values = ("ann", 3).to_values(Protocol::Json).unwrap();
/// assert_eq!(values[1].as_bytes(), b"3");
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an argument list",
    note = "pass the arguments as a tuple of serializable values: `()`, `(a,)`, `(a, b)`, …"
)]
pub trait Arguments: Sync {
    /// Encodes each argument with `protocol`.
    ///
    /// # Errors
    ///
    /// [`EncodeError::Serialize`] when an argument cannot be serialized.
    fn to_values(&self, protocol: Protocol) -> Result<Vec<Value>, EncodeError>;
}

impl Arguments for () {
    fn to_values(&self, _: Protocol) -> Result<Vec<Value>, EncodeError> {
        Ok(Vec::new())
    }
}

impl Arguments for [Value] {
    /// Raw values are passed through when their protocol matches.
    fn to_values(&self, protocol: Protocol) -> Result<Vec<Value>, EncodeError> {
        self.iter()
            .map(|value| {
                if value.protocol() == protocol {
                    Ok(value.clone())
                } else {
                    Err(EncodeError::ProtocolMismatch {
                        value: value.protocol().name(),
                        encoder: protocol.name(),
                    })
                }
            })
            .collect()
    }
}

impl<T: Arguments + ?Sized> Arguments for &T {
    fn to_values(&self, protocol: Protocol) -> Result<Vec<Value>, EncodeError> {
        (**self).to_values(protocol)
    }
}

macro_rules! tuple_arguments {
    ($($name:ident)+) => {
        impl<$($name: Serialize + Sync),+> Arguments for ($($name,)+) {
            #[allow(non_snake_case)]
            fn to_values(&self, protocol: Protocol) -> Result<Vec<Value>, EncodeError> {
                let ($($name,)+) = self;
                Ok(vec![$(Value::serialize(protocol, $name)?),+])
            }
        }
    };
}

tuple_arguments!(A);
tuple_arguments!(A B);
tuple_arguments!(A B C);
tuple_arguments!(A B C D);
tuple_arguments!(A B C D E);
tuple_arguments!(A B C D E F);
tuple_arguments!(A B C D E F G);
tuple_arguments!(A B C D E F G H);
tuple_arguments!(A B C D E F G H I);
tuple_arguments!(A B C D E F G H I J);
tuple_arguments!(A B C D E F G H I J K);
tuple_arguments!(A B C D E F G H I J K L);
