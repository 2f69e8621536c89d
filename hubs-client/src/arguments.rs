//! Binding the arguments of a server's call to a handler's parameter tuple.

use hubs_protocol::{DecodeError, Value};
use serde::de::DeserializeOwned;

/// A tuple of handler parameters, bound from a call's arguments: `()`, `(A,)`, `(A, B)`, …
pub trait FromArguments: Sized {
    /// Binds `values` (their count must match).
    ///
    /// # Errors
    ///
    /// [`DecodeError::Bind`] when the count or a type does not match.
    fn from_values(values: &[Value]) -> Result<Self, DecodeError>;
}

impl FromArguments for () {
    fn from_values(values: &[Value]) -> Result<Self, DecodeError> {
        if values.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Bind(format!(
                "expected no arguments, got {}",
                values.len()
            )))
        }
    }
}

macro_rules! tuple_from_arguments {
    ($count:literal: $($name:ident $index:tt)+) => {
        impl<$($name: DeserializeOwned),+> FromArguments for ($($name,)+) {
            fn from_values(values: &[Value]) -> Result<Self, DecodeError> {
                if values.len() != $count {
                    return Err(DecodeError::Bind(format!("expected {} argument(s), got {}", $count, values.len())));
                }
                // Every index is below `$count`, the length just checked: no panic.
                Ok(($(values[$index].deserialize::<$name>()?,)+))
            }
        }
    };
}

tuple_from_arguments!(1: A 0);
tuple_from_arguments!(2: A 0 B 1);
tuple_from_arguments!(3: A 0 B 1 C 2);
tuple_from_arguments!(4: A 0 B 1 C 2 D 3);
tuple_from_arguments!(5: A 0 B 1 C 2 D 3 E 4);
tuple_from_arguments!(6: A 0 B 1 C 2 D 3 E 4 F 5);
tuple_from_arguments!(7: A 0 B 1 C 2 D 3 E 4 F 5 G 6);
tuple_from_arguments!(8: A 0 B 1 C 2 D 3 E 4 F 5 G 6 H 7);
