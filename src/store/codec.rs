//! The versioned envelope around every stored value.
//!
//! Byte 0 is the format version, the rest is bincode (standard config,
//! through serde). A later format bumps the version and keeps a decoder for
//! the old one, so a daemon upgrade never meets bytes it cannot read.

use serde::{de::DeserializeOwned, Serialize};

/// The current format of every stored value.
pub const FORMAT_V1: u8 = 1;

/// The audit tree's values from version 2 on: a list of entries, every
/// entry one checkpoint wrote, under the key of the first (one sled write
/// per checkpoint instead of one per entry). The body is bincode as in V1;
/// no other tree uses it, and a V1 audit value still reads as one entry.
pub const FORMAT_V2_AUDIT_GROUP: u8 = 2;

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
    encode_version(FORMAT_V1, v)
}

/// [`encode`] under another version byte (see [`FORMAT_V2_AUDIT_GROUP`]).
pub fn encode_version<T: Serialize>(version: u8, v: &T) -> Result<Vec<u8>, Error> {
    let mut out = Envelope(Vec::with_capacity(ENVELOPE_CAPACITY));
    out.0.push(version);
    bincode::serde::encode_into_writer(v, &mut out, bincode::config::standard())
        .map_err(|e| Error::Encode(e.to_string()))?;
    Ok(out.0)
}

/// Room reserved up front for an encoded value: a small order's checkpoint
/// fits without the buffer growing.
const ENVELOPE_CAPACITY: usize = 512;

/// Bincode writes straight into the envelope after its version byte
/// (`encode_to_vec` grew a second buffer from empty, which was then copied:
/// once per checkpoint, a few percent of a step).
struct Envelope(Vec<u8>);

impl bincode::enc::write::Writer for Envelope {
    #[inline]
    fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    match bytes.split_first() {
        None => Err(Error::Empty),
        Some((&FORMAT_V1, body)) => decode_body(body),
        Some((&v, _)) => Err(Error::UnknownVersion(v)),
    }
}

/// The bincode body after the version byte.
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    let (v, _) = bincode::serde::decode_from_slice(body, bincode::config::standard())
        .map_err(|e| Error::Decode(e.to_string()))?;
    Ok(v)
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
