//! `ComplexObject`, whose wire shape depends on the protocol: base64 and ISO-8601 text in
//! JSON, `bin` and the timestamp extension in MessagePack. The two are told apart by
//! serde's `is_human_readable` (true for JSON, false for MessagePack).

use std::fmt;

use base64::Engine;
use serde::de::{self, Deserializer, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

/// The object `EchoComplexObject` and `SendComplexObject` carry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ComplexObject {
    /// Text.
    pub string: String,
    /// Numbers.
    pub int_array: Vec<i32>,
    /// Bytes: base64 text in JSON, `bin` in MessagePack.
    pub byte_array: ByteArray,
    /// A GUID, as text in both protocols.
    pub guid: String,
    /// A UTC instant: ISO-8601 text in JSON, timestamp extension in MessagePack.
    pub date_time: UtcDateTime,
}

impl ComplexObject {
    /// The value `SendComplexObject` returns.
    pub fn sample() -> Self {
        Self {
            string: "hello world".to_owned(),
            int_array: vec![1, 2, 3],
            byte_array: ByteArray(vec![1, 2, 3]),
            guid: "00010203-0405-0607-0706-050403020100".to_owned(),
            date_time: UtcDateTime::from_civil(2000, 1, 1, 0, 0, 0),
        }
    }
}

/// Bytes with the .NET serializers' wire shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ByteArray(pub Vec<u8>);

impl Serialize for ByteArray {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
        } else {
            serializer.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for ByteArray {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ByteArray;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("base64 text or bytes")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<ByteArray, E> {
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map(ByteArray)
                    .map_err(E::custom)
            }
            fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<ByteArray, E> {
                Ok(ByteArray(bytes.to_vec()))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<ByteArray, A::Error> {
                let mut bytes = Vec::new();
                while let Some(byte) = seq.next_element()? {
                    bytes.push(byte);
                }
                Ok(ByteArray(bytes))
            }
        }
        if deserializer.is_human_readable() {
            deserializer.deserialize_str(V)
        } else {
            deserializer.deserialize_bytes(V)
        }
    }
}

/// Seconds and nanoseconds since the Unix epoch, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UtcDateTime {
    seconds: i64,
    nanos: u32,
}

impl UtcDateTime {
    /// The instant at this UTC calendar date and time.
    pub fn from_civil(
        year: i64,
        month: u32,
        day: u32,
        hour: u32,
        minute: u32,
        second: u32,
    ) -> Self {
        let days = days_from_civil(year, month, day);
        Self {
            seconds: days * 86_400 + i64::from(hour * 3600 + minute * 60 + second),
            nanos: 0,
        }
    }

    fn parse(text: &str) -> Option<Self> {
        // YYYY-MM-DDTHH:MM:SS[.fraction](Z|+00:00)
        let text = text
            .strip_suffix('Z')
            .or_else(|| text.strip_suffix("+00:00"))?;
        let (date, time) = text.split_once('T')?;
        let mut date = date.split('-');
        let year = date.next()?.parse().ok()?;
        let month = date.next()?.parse().ok()?;
        let day = date.next()?.parse().ok()?;
        let (time, fraction) = time.split_once('.').unwrap_or((time, ""));
        let mut time = time.split(':');
        let hour = time.next()?.parse().ok()?;
        let minute = time.next()?.parse().ok()?;
        let second = time.next()?.parse().ok()?;
        let mut value = Self::from_civil(year, month, day, hour, minute, second);
        if !fraction.is_empty() {
            let digits: String = fraction.chars().take(9).collect();
            let scale = 10u32.pow(9 - digits.len() as u32);
            value.nanos = digits.parse::<u32>().ok()? * scale;
        }
        Some(value)
    }
}

impl fmt::Display for UtcDateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.seconds.div_euclid(86_400);
        let secs = self.seconds.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
            secs / 3600,
            secs % 3600 / 60,
            secs % 60
        )?;
        if self.nanos != 0 {
            let fraction = format!("{:09}", self.nanos);
            write!(f, ".{}", fraction.trim_end_matches('0'))?;
        }
        f.write_str("Z")
    }
}

/// The name rmp-serde gives MessagePack extension values.
const EXT: &str = "_ExtStruct";
const TIMESTAMP: i8 = -1;

impl Serialize for UtcDateTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            return serializer.collect_str(self);
        }
        // The MessagePack timestamp extension, in its smallest form.
        let data = match (self.nanos, u32::try_from(self.seconds)) {
            (0, Ok(seconds)) => seconds.to_be_bytes().to_vec(),
            _ if (0..1 << 34).contains(&self.seconds) => {
                let packed = (u64::from(self.nanos) << 34) | self.seconds as u64;
                packed.to_be_bytes().to_vec()
            }
            _ => {
                let mut data = self.nanos.to_be_bytes().to_vec();
                data.extend_from_slice(&self.seconds.to_be_bytes());
                data
            }
        };
        serializer.serialize_newtype_struct(EXT, &(TIMESTAMP, serde_bytes_buf(data)))
    }
}

/// Bytes that serialize as `bin`, not as a sequence.
struct Bin(Vec<u8>);

impl Serialize for Bin {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

fn serde_bytes_buf(data: Vec<u8>) -> Bin {
    Bin(data)
}

impl<'de> Deserialize<'de> for UtcDateTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            return Self::parse(&text)
                .ok_or_else(|| de::Error::custom("expected an ISO-8601 UTC date"));
        }
        #[derive(Deserialize)]
        #[serde(rename = "_ExtStruct")]
        struct Ext((i8, ByteArray));
        let Ext((kind, ByteArray(data))) = Ext::deserialize(deserializer)?;
        if kind != TIMESTAMP {
            return Err(de::Error::custom("expected the timestamp extension"));
        }
        match data.len() {
            4 => Ok(Self {
                seconds: i64::from(u32::from_be_bytes([data[0], data[1], data[2], data[3]])),
                nanos: 0,
            }),
            8 => {
                let mut raw = [0u8; 8];
                raw.copy_from_slice(&data);
                let packed = u64::from_be_bytes(raw);
                Ok(Self {
                    seconds: (packed & ((1 << 34) - 1)) as i64,
                    nanos: (packed >> 34) as u32,
                })
            }
            12 => {
                let mut nanos = [0u8; 4];
                nanos.copy_from_slice(&data[..4]);
                let mut seconds = [0u8; 8];
                seconds.copy_from_slice(&data[4..]);
                Ok(Self {
                    seconds: i64::from_be_bytes(seconds),
                    nanos: u32::from_be_bytes(nanos),
                })
            }
            _ => Err(de::Error::custom("invalid timestamp length")),
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let month = i64::from(month);
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubs::protocol::{Protocol, Value};

    fn contract_object() -> ComplexObject {
        ComplexObject {
            string: "Hello, World!".into(),
            int_array: vec![1, 2, 3, 255],
            byte_array: ByteArray(b"hello".to_vec()),
            guid: "00010203-0405-0607-0706-050403020100".into(),
            date_time: UtcDateTime::from_civil(2002, 4, 1, 10, 20, 15),
        }
    }

    #[test]
    fn json_shape() {
        let value = Value::serialize(Protocol::Json, &contract_object()).unwrap();
        assert_eq!(
            std::str::from_utf8(value.as_bytes()).unwrap(),
            r#"{"String":"Hello, World!","IntArray":[1,2,3,255],"ByteArray":"aGVsbG8=","Guid":"00010203-0405-0607-0706-050403020100","DateTime":"2002-04-01T10:20:15Z"}"#
        );
        let back: ComplexObject = value.deserialize().unwrap();
        assert_eq!(back, contract_object());
        let from_js = Value::from_raw(
            Protocol::Json,
            r#"{"String":"s","IntArray":[],"ByteArray":"","Guid":"g","DateTime":"2002-04-01T10:20:15.000Z"}"#,
        );
        let parsed: ComplexObject = from_js.deserialize().unwrap();
        assert_eq!(parsed.date_time.to_string(), "2002-04-01T10:20:15Z");
    }

    #[test]
    fn messagepack_shape() {
        let value = Value::serialize(Protocol::MessagePack, &contract_object()).unwrap();
        let bytes = value.as_bytes();
        // ByteArray as bin8 "hello"; DateTime as fixext4 timestamp.
        assert!(
            bytes
                .windows(7)
                .any(|w| w == [0xc4, 0x05, b'h', b'e', b'l', b'l', b'o'])
        );
        let seconds = 1_017_656_415u32.to_be_bytes();
        assert!(
            bytes
                .windows(6)
                .any(|w| w == [0xd6, 0xff, seconds[0], seconds[1], seconds[2], seconds[3]])
        );
        let back: ComplexObject = value.deserialize().unwrap();
        assert_eq!(back, contract_object());
    }

    #[test]
    fn calendar() {
        assert_eq!(UtcDateTime::from_civil(1970, 1, 1, 0, 0, 0).seconds, 0);
        assert_eq!(
            UtcDateTime::from_civil(2000, 1, 1, 0, 0, 0).to_string(),
            "2000-01-01T00:00:00Z"
        );
        assert_eq!(
            UtcDateTime::parse("1999-12-31T23:59:59.5Z")
                .unwrap()
                .to_string(),
            "1999-12-31T23:59:59.5Z"
        );
    }
}
