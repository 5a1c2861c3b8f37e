//! [`RunId`]: the short, typeable, time-sortable name of one run.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::timestamp::UtcDateTime;

/// The id of one run, e.g. `20261122-034455-7f3a`.
///
/// Generated ids are the UTC date and time the run was created (to the second) and four
/// hex digits of randomness, so they sort by creation time, fit in a terminal column and
/// can be typed (or abbreviated to a unique prefix, see
/// [`Store::resolve`](crate::Store::resolve)). Use
/// [`Store::new_run_id`](crate::Store::new_run_id) to get one that is unique in a store.
///
/// Any id accepted by [`RunId::parse`] can be stored: 1 to 64 ASCII letters, digits,
/// `-` or `_`. Ids never contain a 0 byte, which the store's key layout relies on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RunId(String);

/// The longest run id [`RunId::parse`] accepts.
pub const MAX_RUN_ID_LEN: usize = 64;

/// Length of the `YYYYMMDD-HHMMSS` part of a generated id.
const TIME_PART_LEN: usize = 15;
/// Length of a whole generated id: time part, `-`, four hex digits.
const GENERATED_LEN: usize = TIME_PART_LEN + 5;

/// The text given to [`RunId::parse`] is not a run id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{text}` is not a run id: use 1 to {MAX_RUN_ID_LEN} letters, digits, `-` or `_` \
     (flow's ids look like 20261122-034455-7f3a)"
)]
pub struct InvalidRunId {
    /// The rejected text.
    pub text: String,
}

impl RunId {
    /// Checks `text` and wraps it as a run id.
    pub fn parse(text: &str) -> Result<RunId, InvalidRunId> {
        let ok = !text.is_empty()
            && text.len() <= MAX_RUN_ID_LEN
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(RunId(text.to_owned()))
        } else {
            Err(InvalidRunId {
                text: text.to_owned(),
            })
        }
    }

    /// A fresh id for a run created at `unix_millis`, with a random suffix.
    ///
    /// Unique with high probability only; [`Store::new_run_id`](crate::Store::new_run_id)
    /// also checks the store and bumps the suffix on a collision.
    pub fn generate(unix_millis: u64) -> RunId {
        // Each RandomState carries fresh random keys; the counter and the clock make two
        // ids generated in the same process differ even if the keys were to repeat.
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(unix_millis);
        hasher.write_u32(std::process::id());
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        hasher.write_u32(nanos);
        let suffix = (hasher.finish() & 0xffff) as u16;
        RunId::with_suffix(unix_millis, suffix)
    }

    fn with_suffix(unix_millis: u64, suffix: u16) -> RunId {
        let t = UtcDateTime::from_unix_millis(unix_millis);
        RunId(format!(
            "{:04}{:02}{:02}-{:02}{:02}{:02}-{:04x}",
            t.year, t.month, t.day, t.hour, t.minute, t.second, suffix
        ))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The `YYYYMMDD-HHMMSS` part, if this id has the generated shape.
    pub(crate) fn time_part(&self) -> Option<&str> {
        self.generated_suffix()?;
        self.0.get(..TIME_PART_LEN)
    }

    fn generated_suffix(&self) -> Option<u16> {
        let s = &self.0;
        let shaped = s.len() == GENERATED_LEN
            && s.as_bytes()[8] == b'-'
            && s.as_bytes()[TIME_PART_LEN] == b'-'
            && s.bytes().enumerate().all(|(i, b)| {
                i == 8
                    || i == TIME_PART_LEN
                    || b.is_ascii_digit()
                    || (i > 15 && b.is_ascii_hexdigit())
            });
        if !shaped {
            return None;
        }
        u16::from_str_radix(s.get(TIME_PART_LEN + 1..)?, 16).ok()
    }

    /// The next id in the same second (suffix + 1, wrapping), for collision bumping.
    /// `None` if this id does not have the generated shape.
    pub(crate) fn bumped(&self) -> Option<RunId> {
        let suffix = self.generated_suffix()?;
        let time = self.time_part()?;
        Some(RunId(format!("{time}-{:04x}", suffix.wrapping_add(1))))
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for RunId {
    type Err = InvalidRunId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RunId::parse(s)
    }
}

impl TryFrom<String> for RunId {
    type Error = InvalidRunId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        RunId::parse(&s)
    }
}

impl From<RunId> for String {
    fn from(id: RunId) -> String {
        id.0
    }
}

impl AsRef<str> for RunId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: u64 = 1_795_319_095_123; // 2026-11-22T03:44:55.123Z

    #[test]
    fn generated_ids_have_the_documented_shape() {
        let id = RunId::generate(AT);
        assert_eq!(id.as_str().len(), 20);
        assert!(id.as_str().starts_with("20261122-034455-"), "{id}");
        assert_eq!(id.time_part(), Some("20261122-034455"));
        assert_eq!(RunId::parse(id.as_str()), Ok(id));
    }

    #[test]
    fn generated_ids_sort_by_time() {
        let earlier = RunId::with_suffix(AT, 0xffff);
        let later = RunId::with_suffix(AT + 1000, 0);
        assert!(earlier < later);
    }

    #[test]
    fn two_ids_in_one_millisecond_usually_differ() {
        let ids: std::collections::HashSet<_> = (0..50).map(|_| RunId::generate(AT)).collect();
        assert!(ids.len() > 45, "{} distinct of 50", ids.len());
    }

    #[test]
    fn bump_increments_and_wraps_the_suffix() {
        let id = RunId::with_suffix(AT, 0x7f3a);
        assert_eq!(
            id.bumped().map(String::from).as_deref(),
            Some("20261122-034455-7f3b")
        );
        let last = RunId::with_suffix(AT, 0xffff);
        assert_eq!(
            last.bumped().map(String::from).as_deref(),
            Some("20261122-034455-0000")
        );
        assert_eq!(
            RunId::parse("custom-id").ok().and_then(|id| id.bumped()),
            None
        );
    }

    #[test]
    fn parse_rejects_what_cannot_be_a_key() {
        for bad in ["", "a b", "a/b", "a\0b", "é", &"x".repeat(65)] {
            let err = RunId::parse(bad).expect_err(bad);
            assert_eq!(err.text, bad);
        }
        assert!(RunId::parse("run_1-A").is_ok());
        assert!(serde_json::from_str::<RunId>("\"a b\"").is_err());
    }
}
