//! Reading a [`Digest`] from text: [`Digest::parse`], and through it [`FromStr`] and
//! [`Deserialize`]. Anything but `sha256:<64 lowercase hex>` is an
//! [`Error::InvalidDigest`] with the reason.

use std::str::FromStr;

use serde::{Deserialize, Deserializer};

use crate::digest::Digest;
use crate::error::Error;

impl Digest {
    /// Parses `sha256:<64 lowercase hex>`; anything else is refused with the reason.
    pub fn parse(s: &str) -> Result<Digest, Error> {
        let bad = |reason: &str| Error::InvalidDigest {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        let (algorithm, encoded) = s
            .split_once(':')
            .ok_or_else(|| bad("expected ALGORITHM:HEX, e.g. sha256:<64 hex digits>"))?;
        if algorithm != "sha256" {
            return Err(bad("only sha256 digests are supported"));
        }
        if encoded.len() != 64 {
            return Err(bad("a sha256 digest has 64 hex digits"));
        }
        if !encoded
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(bad("the hex digits must be lowercase 0-9a-f"));
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(encoded, &mut out).map_err(|_| bad("invalid hex"))?;
        Ok(Digest::from_raw(out))
    }
}

impl FromStr for Digest {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_malformed() {
        for bad in [
            "",
            "sha256",
            "sha256:",
            "sha512:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
            "sha256:44136FA355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8",
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8g",
        ] {
            assert!(Digest::parse(bad).is_err(), "{bad}");
        }
    }
}
