//! The versioned envelope around every stored value.
//!
//! Byte 0 is the format version, the rest is bincode (standard config,
//! through serde). A later format bumps the version and keeps a decoder for
//! the old one, so a daemon upgrade never meets bytes it cannot read.

use serde::{de::DeserializeOwned, Serialize};

/// The first format. Values written in it lack what later formats added
/// at the end of their types (see [`since_v3`]); they still read.
pub const FORMAT_V1: u8 = 1;

/// V1's bincode plus the fields [`since_v3`] marks.
pub const FORMAT_V3: u8 = 3;

/// The current format of every stored value: V3 plus the fields
/// [`since_v4`] marks (a line item's virtual-bundle SKUs).
pub const FORMAT_V4: u8 = 4;

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
    encode_version(FORMAT_V4, v)
}

thread_local! {
    /// The format version of the value being decoded on this thread.
    static READING: std::cell::Cell<u8> = const { std::cell::Cell::new(FORMAT_V4) };
}

/// A field added in `since`: a value of an older format has no bytes for
/// it (bincode is positional), so it reads as the default without
/// consuming anything; anywhere else it reads normally.
fn added_in<'de, D, T>(since: u8, d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de> + Default,
{
    if READING.with(|r| r.get()) < since {
        Ok(T::default())
    } else {
        T::deserialize(d)
    }
}

/// `deserialize_with` for a field added in V3: a V1 value reads it as the
/// default; V3 and later (and JSON) read it normally.
pub fn since_v3<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de> + Default,
{
    added_in(FORMAT_V3, d)
}

/// `deserialize_with` for a field added in V4: V1 and V3 values read it as
/// the default.
pub fn since_v4<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de> + Default,
{
    added_in(FORMAT_V4, d)
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
        Some((&FORMAT_V4, body)) => decode_body(body),
        Some((&v @ (FORMAT_V1 | FORMAT_V3), body)) => {
            READING.with(|r| r.set(v));
            let out = decode_body(body);
            READING.with(|r| r.set(FORMAT_V4));
            out
        }
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
        assert_eq!(b[0], FORMAT_V4);
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

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Old {
        a: String,
        b: u64,
    }

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct New {
        a: String,
        b: u64,
        #[serde(default, deserialize_with = "since_v3")]
        c: Vec<String>,
    }

    #[test]
    fn a_v1_value_reads_with_the_fields_added_since_as_defaults() {
        let old = Old {
            a: "o1".into(),
            b: 7,
        };
        let v1 = encode_version(FORMAT_V1, &old).unwrap();
        // Inside a list, with a value after it: nothing is misaligned.
        let list = encode_version(FORMAT_V1, &(vec![&old, &old], 9u8)).unwrap();
        let back: New = decode(&v1).unwrap();
        assert_eq!((back.a.as_str(), back.b, back.c.len()), ("o1", 7, 0));
        let (items, tail): (Vec<New>, u8) = decode(&list).unwrap();
        assert_eq!((items.len(), items[1].b, tail), (2, 7, 9));
        let new = New {
            a: "n".into(),
            b: 1,
            c: vec!["x".into()],
        };
        // After V1 reads, a current value reads its new field again.
        assert_eq!(decode::<New>(&encode(&new).unwrap()).unwrap(), new);
    }

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Newer {
        a: String,
        b: u64,
        #[serde(default, deserialize_with = "since_v3")]
        c: Vec<String>,
        #[serde(default, deserialize_with = "since_v4")]
        d: u32,
    }

    #[test]
    fn a_v3_value_reads_with_the_v4_fields_as_defaults() {
        let v3 = New {
            a: "o".into(),
            b: 2,
            c: vec!["x".into()],
        };
        let bytes = encode_version(FORMAT_V3, &(vec![&v3, &v3], 5u8)).unwrap();
        let (items, tail): (Vec<Newer>, u8) = decode(&bytes).unwrap();
        assert_eq!((items[1].c.len(), items[1].d, tail), (1, 0, 5));
        let v1 = encode_version(
            FORMAT_V1,
            &Old {
                a: "p".into(),
                b: 3,
            },
        )
        .unwrap();
        let back: Newer = decode(&v1).unwrap();
        assert_eq!((back.c.len(), back.d), (0, 0));
        let newer = Newer {
            a: "n".into(),
            b: 1,
            c: vec![],
            d: 7,
        };
        assert_eq!(decode::<Newer>(&encode(&newer).unwrap()).unwrap(), newer);
    }
}
