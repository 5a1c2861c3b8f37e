//! The OSV range evaluation algorithm, as the OSV schema specifies it
//! (<https://ossf.github.io/osv-schema/#evaluation>):
//!
//! ```text
//! IncludedInRanges(v, ranges):
//!   for range in ranges
//!     if BeforeLimits(v, range)
//!       vulnerable = false
//!       for evt in sorted(range.events)
//!         if evt.introduced is present && v >= evt.introduced: vulnerable = true
//!         else if evt.fixed is present && v >= evt.fixed: vulnerable = false
//!         else if evt.last_affected is present && v > evt.last_affected: vulnerable = false
//!       if vulnerable: return true
//!   return false
//!
//! BeforeLimits(v, range):
//!   no limit events -> true (an implicit limit "*")
//!   any limit event with v < limit -> true, else false
//! ```
//!
//! Events are sorted by version with `introduced: "0"` before every version and
//! `limit: "*"` after every version; the sort is stable, so events at the same version
//! keep their order in the record. Versions are SemVer 2.0 (the ordering of both the
//! `SEMVER` type and the `crates.io` / `npm` `ECOSYSTEM` types); `GIT` ranges name commits,
//! which a lockfile version cannot be compared with, so they never match here.

use crate::semver::{SemverError, Version};
use std::cmp::Ordering;

/// A point on the version line an event refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Point {
    /// `"0"` in an `introduced` event: before every version.
    Zero,
    /// A concrete version.
    Version(Version),
    /// `"*"` in a `limit` event: after every version.
    Infinity,
}

impl Point {
    fn cmp_version(&self, v: &Version) -> Ordering {
        match self {
            Point::Zero => Ordering::Less,
            Point::Version(p) => p.cmp(v),
            Point::Infinity => Ordering::Greater,
        }
    }
}

impl Ord for Point {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Point::Zero, Point::Zero) | (Point::Infinity, Point::Infinity) => Ordering::Equal,
            (Point::Zero, _) | (_, Point::Infinity) => Ordering::Less,
            (_, Point::Zero) | (Point::Infinity, _) => Ordering::Greater,
            (Point::Version(a), Point::Version(b)) => a.cmp(b),
        }
    }
}

impl PartialOrd for Point {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// One event of a range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Introduced(Point),
    Fixed(Point),
    LastAffected(Point),
    Limit(Point),
}

impl Event {
    /// Builds an event from its OSV key (`introduced`, `fixed`, `last_affected`, `limit`)
    /// and version string.
    pub fn parse(kind: &str, version: &str) -> Result<Self, SemverError> {
        let point =
            |special: Option<&str>, make: fn(Point) -> Event| -> Result<Event, SemverError> {
                if special == Some(version) {
                    let p = if version == "0" {
                        Point::Zero
                    } else {
                        Point::Infinity
                    };
                    return Ok(make(p));
                }
                Version::parse(version).map(|v| make(Point::Version(v)))
            };
        match kind {
            "introduced" => point(Some("0"), Event::Introduced),
            "fixed" => point(None, Event::Fixed),
            "last_affected" => point(None, Event::LastAffected),
            "limit" => point(Some("*"), Event::Limit),
            other => Err(SemverError(format!("unknown range event `{other}`"))),
        }
    }

    /// The version the event refers to.
    pub fn point(&self) -> &Point {
        match self {
            Event::Introduced(p) | Event::Fixed(p) | Event::LastAffected(p) | Event::Limit(p) => p,
        }
    }
}

/// A `SEMVER` or `ECOSYSTEM` range whose events are SemVer versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    /// Events sorted as the algorithm requires.
    events: Vec<Event>,
}

impl Range {
    /// Builds a range; the events are sorted here (stable, by version).
    pub fn new(mut events: Vec<Event>) -> Self {
        events.sort_by(|a, b| a.point().cmp(b.point()));
        Range { events }
    }

    /// The events, sorted.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// `BeforeLimits(v, range)`.
    pub fn before_limits(&self, v: &Version) -> bool {
        let mut limits = self.events.iter().filter_map(|e| match e {
            Event::Limit(p) => Some(p),
            _ => None,
        });
        let Some(first) = limits.next() else {
            return true;
        };
        std::iter::once(first)
            .chain(limits)
            .any(|limit| limit.cmp_version(v) == Ordering::Greater)
    }

    /// Whether `v` is affected according to this single range.
    pub fn includes(&self, v: &Version) -> bool {
        if !self.before_limits(v) {
            return false;
        }
        let mut vulnerable = false;
        for evt in &self.events {
            // `p.cmp_version(v)` is the ordering of the event point relative to `v`.
            match evt {
                Event::Introduced(p) if p.cmp_version(v) != Ordering::Greater => vulnerable = true,
                Event::Fixed(p) if p.cmp_version(v) != Ordering::Greater => vulnerable = false,
                Event::LastAffected(p) if p.cmp_version(v) == Ordering::Less => vulnerable = false,
                _ => {}
            }
        }
        vulnerable
    }

    /// Versions named by `fixed` events, for "fixed in" hints.
    pub fn fixed_versions(&self) -> impl Iterator<Item = &Version> {
        self.events.iter().filter_map(|e| match e {
            Event::Fixed(Point::Version(v)) => Some(v),
            _ => None,
        })
    }
}

/// `IncludedInRanges(v, ranges)`.
pub fn included_in_ranges(v: &Version, ranges: &[Range]) -> bool {
    ranges.iter().any(|r| r.includes(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(events: &[(&str, &str)]) -> Range {
        Range::new(
            events
                .iter()
                .map(|(k, v)| Event::parse(k, v).unwrap())
                .collect(),
        )
    }
    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn spec_unfixed_example() {
        let r = range(&[("introduced", "0")]);
        for ver in ["0.0.0", "0.0.0-alpha", "1.0.0", "999.0.0"] {
            assert!(r.includes(&v(ver)), "{ver}");
        }
    }

    #[test]
    fn spec_fixed_example() {
        let r = range(&[("introduced", "0"), ("fixed", "1.0.2")]);
        assert!(r.includes(&v("1.0.1")));
        assert!(r.includes(&v("1.0.2-rc.1")));
        assert!(!r.includes(&v("1.0.2")));
        assert!(!r.includes(&v("2.0.0")));
    }

    #[test]
    fn spec_multiple_range_example() {
        let r = range(&[
            ("introduced", "1.0.0"),
            ("fixed", "1.0.2"),
            ("introduced", "3.0.0"),
            ("fixed", "3.2.5"),
        ]);
        let yes = ["1.0.0", "1.0.1", "3.0.0", "3.2.4"];
        let no = ["0.9.0", "1.0.2", "2.5.0", "3.2.5", "4.0.0"];
        for ver in yes {
            assert!(r.includes(&v(ver)), "{ver}");
        }
        for ver in no {
            assert!(!r.includes(&v(ver)), "{ver}");
        }
    }

    #[test]
    fn spec_last_affected_vs_fixed_example() {
        let last = range(&[("introduced", "0"), ("last_affected", "2.1.214")]);
        let fixed = range(&[("introduced", "0"), ("fixed", "2.1.214")]);
        assert!(last.includes(&v("2.1.214")));
        assert!(!last.includes(&v("2.1.215")));
        assert!(!fixed.includes(&v("2.1.214")));
        assert!(fixed.includes(&v("2.1.213")));
    }

    #[test]
    fn unsorted_events_are_sorted() {
        let r = range(&[
            ("fixed", "3.2.5"),
            ("introduced", "3.0.0"),
            ("fixed", "1.0.2"),
            ("introduced", "1.0.0"),
        ]);
        assert!(r.includes(&v("1.0.1")));
        assert!(!r.includes(&v("2.0.0")));
        assert!(r.includes(&v("3.1.0")));
    }

    #[test]
    fn limits() {
        let r = range(&[("introduced", "1.0.0"), ("limit", "1.5.0")]);
        assert!(r.includes(&v("1.2.0")));
        assert!(!r.includes(&v("1.5.0")));
        assert!(!r.includes(&v("0.5.0")));
        // Any limit above v is enough.
        let r = range(&[("introduced", "0"), ("limit", "1.0.0"), ("limit", "3.0.0")]);
        assert!(r.includes(&v("2.0.0")));
        assert!(!r.includes(&v("3.0.0")));
        let r = range(&[("introduced", "0"), ("limit", "*")]);
        assert!(r.includes(&v("100.0.0")));
    }

    #[test]
    fn several_ranges_any_matches() {
        let a = range(&[("introduced", "0"), ("fixed", "1.0.0")]);
        let b = range(&[("introduced", "2.0.0"), ("fixed", "2.1.0")]);
        let rs = [a, b];
        assert!(included_in_ranges(&v("0.5.0"), &rs));
        assert!(included_in_ranges(&v("2.0.5"), &rs));
        assert!(!included_in_ranges(&v("1.5.0"), &rs));
        assert!(!included_in_ranges(&v("1.5.0"), &[]));
    }

    #[test]
    fn bad_events() {
        assert!(Event::parse("fixed", "0").is_err());
        assert!(Event::parse("introduced", "abc").is_err());
        assert!(Event::parse("broken", "1.0.0").is_err());
        assert_eq!(
            Event::parse("limit", "*").unwrap(),
            Event::Limit(Point::Infinity)
        );
    }
}
