//! Object ids (SHA-1) and abbreviated ids.

use std::fmt;
use std::str::FromStr;

use sha1::{Digest, Sha1};

use crate::ObjectKind;

/// A 20-byte SHA-1 object id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId([u8; 20]);

impl ObjectId {
    /// Length of an id in bytes.
    pub const LEN: usize = 20;
    /// Length of an id in hexadecimal.
    pub const HEX_LEN: usize = 40;

    /// Wraps raw bytes.
    pub const fn from_bytes(bytes: [u8; 20]) -> Self {
        Self(bytes)
    }

    /// Wraps a 20-byte slice; `None` if the length is wrong.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// Parses 40 hexadecimal digits (either case).
    pub fn from_hex(hex: &str) -> Option<Self> {
        let hex = hex.as_bytes();
        if hex.len() != Self::HEX_LEN {
            return None;
        }
        let mut out = [0u8; 20];
        for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
            *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
        }
        Some(Self(out))
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    /// Lower-case hexadecimal form.
    pub fn to_hex(&self) -> String {
        self.to_string()
    }

    /// The id git gives an object of `kind` with this content (`git hash-object`).
    pub fn hash_object(kind: ObjectKind, data: &[u8]) -> Self {
        let mut hasher = Sha1::new();
        hasher.update(kind.as_str().as_bytes());
        hasher.update(format!(" {}\0", data.len()).as_bytes());
        hasher.update(data);
        Self(hasher.finalize().into())
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut buf = [0u8; 40];
        for (i, b) in self.0.iter().enumerate() {
            buf[2 * i] = HEX[usize::from(b >> 4)];
            buf[2 * i + 1] = HEX[usize::from(b & 15)];
        }
        // The buffer only holds ASCII hex digits.
        f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectId({self})")
    }
}

impl FromStr for ObjectId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::from_hex(s).ok_or_else(|| format!("not a 40-digit hex object id: {s:?}"))
    }
}

/// The value of one hexadecimal digit.
pub(crate) fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// An abbreviated object id: 1 to 40 hex digits.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Prefix {
    /// The digits, zero-padded.
    bytes: [u8; 20],
    /// Number of hex digits.
    nibbles: usize,
}

impl Prefix {
    pub(crate) fn parse(hex: &str) -> Option<Self> {
        let digits = hex.as_bytes();
        if digits.is_empty() || digits.len() > ObjectId::HEX_LEN {
            return None;
        }
        let mut bytes = [0u8; 20];
        for (i, &c) in digits.iter().enumerate() {
            let v = nibble(c)?;
            bytes[i / 2] |= if i % 2 == 0 { v << 4 } else { v };
        }
        Some(Self {
            bytes,
            nibbles: digits.len(),
        })
    }

    /// The first byte (meaningful when at least two digits were given; otherwise its low half is 0).
    pub(crate) fn first_byte(&self) -> u8 {
        self.bytes[0]
    }

    /// Number of hex digits.
    pub(crate) fn len(&self) -> usize {
        self.nibbles
    }

    /// The zero-padded prefix: the smallest id it can match.
    pub(crate) fn lowest(&self) -> &[u8; 20] {
        &self.bytes
    }

    /// Whether the 20-byte `id` starts with this prefix.
    pub(crate) fn matches(&self, id: &[u8]) -> bool {
        let full = self.nibbles / 2;
        let (Some(head), Some(want)) = (id.get(..full), self.bytes.get(..full)) else {
            return false;
        };
        if head != want {
            return false;
        }
        if self.nibbles % 2 == 1 {
            return match (id.get(full), self.bytes.get(full)) {
                (Some(a), Some(b)) => a >> 4 == b >> 4,
                _ => false,
            };
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_hash() {
        let id = ObjectId::hash_object(ObjectKind::Blob, b"");
        assert_eq!(id.to_hex(), "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391");
        assert_eq!(ObjectId::from_hex(&id.to_hex()), Some(id));
        assert_eq!(
            ObjectId::from_hex("e69de29bb2d1d6434b8b29ae775ad8c2e48c539"),
            None
        );
        assert_eq!(
            ObjectId::from_hex("g69de29bb2d1d6434b8b29ae775ad8c2e48c5391"),
            None
        );
    }

    #[test]
    fn prefixes() {
        let id = ObjectId::hash_object(ObjectKind::Blob, b"");
        for n in 1..=40 {
            let p = Prefix::parse(&id.to_hex()[..n]).unwrap();
            assert!(p.matches(id.as_bytes()), "{n}");
        }
        assert!(!Prefix::parse("e69f").unwrap().matches(id.as_bytes()));
        assert!(!Prefix::parse("e7").unwrap().matches(id.as_bytes()));
        assert!(Prefix::parse("e6x").is_none());
    }
}
