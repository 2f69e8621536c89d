//! [`Binary`]: bytes as SignalR clients see them, base64 text in JSON and `bin` in
//! MessagePack.

use std::fmt;
use std::ops::{Deref, DerefMut};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Bytes in a hub payload, encoded as the official SignalR servers encode `byte[]`: a
/// base64 string in the JSON protocol and a MessagePack `bin` in the MessagePack protocol.
/// A JavaScript client receives a `string` or a `Uint8Array`; serde's default for
/// `Vec<u8>` (an array of numbers) is neither.
///
/// It reads all three forms (base64 text, `bin`, and an array of numbers), so any client
/// may send it.
///
/// ```
/// use hubs_protocol::Binary;
///
/// let json = serde_json::to_string(&Binary::from(vec![1, 2, 3])).unwrap();
/// assert_eq!(json, r#""AQID""#);
/// let back: Binary = serde_json::from_str(&json).unwrap();
/// assert_eq!(&back[..], &[1, 2, 3]);
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Binary(pub Vec<u8>);

impl Binary {
    /// The bytes.
    pub fn into_inner(self) -> Vec<u8> {
        self.0
    }
}

impl fmt::Debug for Binary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Binary({} bytes)", self.0.len())
    }
}

impl From<Vec<u8>> for Binary {
    fn from(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
}

impl From<&[u8]> for Binary {
    fn from(bytes: &[u8]) -> Self {
        Self(bytes.to_vec())
    }
}

impl From<Binary> for Vec<u8> {
    fn from(binary: Binary) -> Self {
        binary.0
    }
}

impl Deref for Binary {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl DerefMut for Binary {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

impl AsRef<[u8]> for Binary {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Serialize for Binary {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&STANDARD.encode(&self.0))
        } else {
            serializer.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Binary {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BinaryVisitor;

        impl<'de> Visitor<'de> for BinaryVisitor {
            type Value = Binary;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("bytes, a base64 string or an array of bytes")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Binary, E> {
                STANDARD
                    .decode(text)
                    .map(Binary)
                    .map_err(|_| E::invalid_value(de::Unexpected::Str(text), &self))
            }

            fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Binary, E> {
                Ok(Binary(bytes.to_vec()))
            }

            fn visit_byte_buf<E: de::Error>(self, bytes: Vec<u8>) -> Result<Binary, E> {
                Ok(Binary(bytes))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Binary, A::Error> {
                let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some(byte) = seq.next_element::<u8>()? {
                    bytes.push(byte);
                }
                Ok(Binary(bytes))
            }
        }

        if deserializer.is_human_readable() {
            deserializer.deserialize_any(BinaryVisitor)
        } else {
            deserializer.deserialize_byte_buf(BinaryVisitor)
        }
    }
}

/// In TypeScript a `Binary` is the alias `Binary`, which the generated module declares
/// for its protocol (`string` for JSON, `Uint8Array` for MessagePack).
#[cfg(feature = "typescript")]
impl ts_rs::TS for Binary {
    type WithoutGenerics = Self;
    type OptionInnerType = Self;

    fn name(_: &ts_rs::Config) -> String {
        "Binary".to_owned()
    }

    fn inline(_: &ts_rs::Config) -> String {
        "Binary".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_base64_and_reads_every_form() {
        let binary = Binary(vec![0, 255, 7]);
        assert_eq!(serde_json::to_string(&binary).unwrap(), r#""AP8H""#);
        assert_eq!(serde_json::from_str::<Binary>(r#""AP8H""#).unwrap(), binary);
        assert_eq!(serde_json::from_str::<Binary>("[0,255,7]").unwrap(), binary);
        assert!(serde_json::from_str::<Binary>(r#""not base64!""#).is_err());
        assert!(serde_json::from_str::<Binary>("[256]").is_err());
    }

    #[test]
    fn messagepack_is_bin() {
        let binary = Binary(vec![1, 2, 3]);
        let bytes = rmp_serde::to_vec(&binary).unwrap();
        assert_eq!(bytes, [0xc4, 3, 1, 2, 3]);
        assert_eq!(rmp_serde::from_slice::<Binary>(&bytes).unwrap(), binary);
        // An array of small integers, as some clients send.
        assert_eq!(
            rmp_serde::from_slice::<Binary>(&[0x93, 1, 2, 3]).unwrap(),
            binary
        );
    }
}
