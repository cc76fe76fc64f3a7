//! Serde helpers for Mesos' JSON mapping of protobuf: `bytes` as base64, 64-bit integers
//! as numbers or strings.

use base64::Engine as _;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;

/// A protobuf `bytes` field: raw bytes in Rust, base64 text in JSON.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bytes(pub Vec<u8>);

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Bytes({})",
            base64::engine::general_purpose::STANDARD.encode(&self.0)
        )
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map(Bytes)
            .map_err(|e| de::Error::custom(format!("invalid base64: {e}")))
    }
}

/// `#[serde(with = "int64")]` for `i64` fields: accepts `5` and `"5"`, writes a number.
pub mod int64 {
    use super::*;

    pub fn serialize<S: Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(*v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = i64;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a 64-bit integer as a number or a string")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
                Ok(v)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
                i64::try_from(v).map_err(|_| E::custom("integer out of range"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
                if v.fract() == 0.0 && v.abs() < 9.2e18 {
                    Ok(v as i64)
                } else {
                    Err(E::custom("not an integer"))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
                v.trim()
                    .parse()
                    .map_err(|_| E::custom(format!("not an integer: {v:?}")))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Serialize)]
    struct N {
        #[serde(with = "int64")]
        n: i64,
        b: Bytes,
    }

    #[test]
    fn int64_as_number_or_string() {
        let a: N = serde_json::from_str(r#"{"n":5,"b":""}"#).unwrap();
        let b: N = serde_json::from_str(r#"{"n":"5","b":""}"#).unwrap();
        assert_eq!((a.n, b.n), (5, 5));
        let c: N = serde_json::from_str(r#"{"n":"3000000000","b":""}"#).unwrap();
        assert_eq!(c.n, 3_000_000_000);
        assert!(serde_json::from_str::<N>(r#"{"n":"x","b":""}"#).is_err());
    }

    #[test]
    fn bytes_as_base64() {
        let a: N = serde_json::from_str(r#"{"n":1,"b":"aGk="}"#).unwrap();
        assert_eq!(a.b.0, b"hi");
        assert_eq!(serde_json::to_string(&a).unwrap(), r#"{"n":1,"b":"aGk="}"#);
        assert!(serde_json::from_str::<N>(r#"{"n":1,"b":"!!"}"#).is_err());
    }
}
