//! The versioned envelope around every stored value.
//!
//! Byte 0 is the format version, the rest is bincode (standard config,
//! through serde). A later format bumps the version and keeps a decoder for
//! the old one, so a daemon upgrade never meets bytes it cannot read.

use serde::{de::DeserializeOwned, Serialize};

/// The current format of every stored value.
pub const FORMAT_V1: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("encode: {0}")]
    Encode(String),
    #[error("decode: {0}")]
    Decode(String),
    #[error("unknown stored format version {0}")]
    UnknownVersion(u8),
    #[error("empty value")]
    Empty,
}

pub fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, Error> {
    let mut out = vec![FORMAT_V1];
    let body = bincode::serde::encode_to_vec(v, bincode::config::standard())
        .map_err(|e| Error::Encode(e.to_string()))?;
    out.extend_from_slice(&body);
    Ok(out)
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    match bytes.split_first() {
        None => Err(Error::Empty),
        Some((&FORMAT_V1, body)) => {
            let (v, _) = bincode::serde::decode_from_slice(body, bincode::config::standard())
                .map_err(|e| Error::Decode(e.to_string()))?;
            Ok(v)
        }
        Some((&v, _)) => Err(Error::UnknownVersion(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_unknown_versions() {
        let v = (String::from("o1"), 42u64, vec![1i64, -2]);
        let b = encode(&v).unwrap();
        assert_eq!(b[0], FORMAT_V1);
        let back: (String, u64, Vec<i64>) = decode(&b).unwrap();
        assert_eq!(back, v);
        let mut future = b.clone();
        future[0] = 9;
        assert!(matches!(
            decode::<(String, u64, Vec<i64>)>(&future),
            Err(Error::UnknownVersion(9))
        ));
        assert!(decode::<u64>(&[]).is_err());
        assert!(decode::<String>(&[FORMAT_V1, 0xff, 0xff]).is_err());
    }
}
