//! Semantic versions and Cargo-style version requirements.
//!
//! [`Version`] implements SemVer 2.0 precedence: build metadata is kept for display but
//! ignored by comparisons (so `1.0.0+a == 1.0.0+b`). [`VersionReq`] parses the requirement
//! syntax Cargo accepts (`>=`, `>`, `<`, `<=`, `=`, `^`, `~`, bare version = caret, `*` and
//! `x` wildcards, comma-separated AND) and offers two evaluations:
//!
//! * [`VersionReq::matches`] — Cargo's resolver semantics (as the `semver` crate): a
//!   pre-release version only matches when some comparator names the same
//!   `major.minor.patch` with a pre-release of its own;
//! * [`VersionReq::to_interval`] — the interval view RustSec uses to decide whether an
//!   advisory affects a version (see [`crate::advisory::rustsec`]); pre-release versions
//!   are then just points in the total SemVer order.

use std::cmp::Ordering;
use std::fmt;

/// A parse failure, with a human-readable reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SemverError(pub String);

impl fmt::Display for SemverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SemverError {}

fn err<T>(msg: impl Into<String>) -> Result<T, SemverError> {
    Err(SemverError(msg.into()))
}

/// One dot-separated pre-release identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identifier {
    /// Digits only, compared numerically (kept as text: no overflow on huge numbers).
    Numeric(String),
    /// Anything else, compared as ASCII text.
    AlphaNumeric(String),
}

impl Identifier {
    fn parse(s: &str) -> Result<Self, SemverError> {
        if s.is_empty() {
            return err("empty pre-release identifier");
        }
        if !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return err(format!("invalid character in pre-release identifier `{s}`"));
        }
        if s.bytes().all(|b| b.is_ascii_digit()) {
            // Leading zeros are tolerated and ignored when comparing.
            let trimmed = s.trim_start_matches('0');
            Ok(Identifier::Numeric(if trimmed.is_empty() {
                "0".into()
            } else {
                trimmed.into()
            }))
        } else {
            Ok(Identifier::AlphaNumeric(s.to_string()))
        }
    }
}

impl Ord for Identifier {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Identifier::Numeric(a), Identifier::Numeric(b)) => {
                a.len().cmp(&b.len()).then_with(|| a.cmp(b))
            }
            (Identifier::Numeric(_), Identifier::AlphaNumeric(_)) => Ordering::Less,
            (Identifier::AlphaNumeric(_), Identifier::Numeric(_)) => Ordering::Greater,
            (Identifier::AlphaNumeric(a), Identifier::AlphaNumeric(b)) => a.cmp(b),
        }
    }
}

impl PartialOrd for Identifier {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identifier::Numeric(s) | Identifier::AlphaNumeric(s) => f.write_str(s),
        }
    }
}

/// A pre-release tag (`alpha.1`); the empty tag denotes a release and sorts *above* every
/// non-empty tag, as SemVer prescribes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Prerelease(pub Vec<Identifier>);

impl Prerelease {
    /// Parses a dot-separated tag; the empty string is the empty (release) tag.
    pub fn parse(s: &str) -> Result<Self, SemverError> {
        if s.is_empty() {
            return Ok(Prerelease::default());
        }
        s.split('.')
            .map(Identifier::parse)
            .collect::<Result<_, _>>()
            .map(Prerelease)
    }

    /// `true` for a release (no pre-release tag).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Ord for Prerelease {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self.is_empty(), other.is_empty()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => self.0.cmp(&other.0),
        }
    }
}

impl PartialOrd for Prerelease {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Prerelease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, id) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{id}")?;
        }
        Ok(())
    }
}

/// A SemVer 2.0 version. Equality and ordering follow SemVer precedence (build metadata
/// ignored).
#[derive(Debug, Clone)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    pub pre: Prerelease,
    /// Build metadata (after `+`), informative only.
    pub build: String,
}

impl Version {
    /// A release version `major.minor.patch`.
    pub const fn new(major: u64, minor: u64, patch: u64) -> Self {
        Version {
            major,
            minor,
            patch,
            pre: Prerelease(Vec::new()),
            build: String::new(),
        }
    }

    /// Parses a full `major.minor.patch[-pre][+build]` version (no `v` prefix, no spaces).
    pub fn parse(s: &str) -> Result<Self, SemverError> {
        let (rest, build) = match s.split_once('+') {
            Some((r, b)) => {
                if b.is_empty()
                    || !b.split('.').all(|p| {
                        !p.is_empty() && p.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
                    })
                {
                    return err(format!("invalid build metadata in `{s}`"));
                }
                (r, b.to_string())
            }
            None => (s, String::new()),
        };
        let (core, pre) = match rest.split_once('-') {
            Some((c, p)) => (
                c,
                parse_nonempty_pre(p).map_err(|e| SemverError(format!("`{s}`: {e}")))?,
            ),
            None => (rest, Prerelease::default()),
        };
        let mut parts = core.split('.');
        let mut next = |what: &str| -> Result<u64, SemverError> {
            match parts.next() {
                Some(p) => parse_number(p).map_err(|e| SemverError(format!("`{s}`: {what} {e}"))),
                None => err(format!("`{s}` is not a full version (major.minor.patch)")),
            }
        };
        let major = next("major")?;
        let minor = next("minor")?;
        let patch = next("patch")?;
        if parts.next().is_some() {
            return err(format!("`{s}` has more than three numeric components"));
        }
        Ok(Version {
            major,
            minor,
            patch,
            pre,
            build,
        })
    }

    fn triple(&self) -> (u64, u64, u64) {
        (self.major, self.minor, self.patch)
    }
}

fn parse_nonempty_pre(p: &str) -> Result<Prerelease, SemverError> {
    if p.is_empty() {
        return err("empty pre-release after `-`");
    }
    Prerelease::parse(p)
}

fn parse_number(p: &str) -> Result<u64, SemverError> {
    if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
        return err(format!("`{p}` is not a number"));
    }
    p.parse::<u64>()
        .map_err(|_| SemverError(format!("`{p}` is too large")))
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.triple()
            .cmp(&other.triple())
            .then_with(|| self.pre.cmp(&other.pre))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl std::str::FromStr for Version {
    type Err = SemverError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Version::parse(s)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if !self.pre.is_empty() {
            write!(f, "-{}", self.pre)?;
        }
        if !self.build.is_empty() {
            write!(f, "+{}", self.build)?;
        }
        Ok(())
    }
}

/// Comparison operator of a [`Comparator`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=1.2.3`
    Exact,
    /// `>1.2.3`
    Greater,
    /// `>=1.2.3`
    GreaterEq,
    /// `<1.2.3`
    Less,
    /// `<=1.2.3`
    LessEq,
    /// `~1.2.3`
    Tilde,
    /// `^1.2.3` or bare `1.2.3`
    Caret,
    /// `1.*`, `1.2.x`
    Wildcard,
}

/// One comparator: an operator and a possibly partial version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparator {
    pub op: Op,
    pub major: u64,
    pub minor: Option<u64>,
    pub patch: Option<u64>,
    pub pre: Prerelease,
}

impl Comparator {
    fn parse(text: &str) -> Result<Self, SemverError> {
        let t = text.trim();
        let (op, rest) = if let Some(r) = t.strip_prefix(">=") {
            (Some(Op::GreaterEq), r)
        } else if let Some(r) = t.strip_prefix("<=") {
            (Some(Op::LessEq), r)
        } else if let Some(r) = t.strip_prefix('>') {
            (Some(Op::Greater), r)
        } else if let Some(r) = t.strip_prefix('<') {
            (Some(Op::Less), r)
        } else if let Some(r) = t.strip_prefix('=') {
            (Some(Op::Exact), r)
        } else if let Some(r) = t.strip_prefix('~') {
            (Some(Op::Tilde), r)
        } else if let Some(r) = t.strip_prefix('^') {
            (Some(Op::Caret), r)
        } else {
            (None, t)
        };
        let rest = rest.trim_start();
        if rest.is_empty() {
            return err(format!("missing version in comparator `{t}`"));
        }
        if rest.contains(char::is_whitespace) {
            return err(format!("unexpected whitespace in comparator `{t}`"));
        }
        let rest = rest.split_once('+').map_or(rest, |(r, _build)| r);
        let (core, pre) = match rest.split_once('-') {
            Some((c, p)) => (c, parse_nonempty_pre(p)?),
            None => (rest, Prerelease::default()),
        };
        let is_wild = |p: &str| matches!(p, "*" | "x" | "X");
        let mut parts = core.split('.');
        let major_s = parts.next().unwrap_or("");
        let minor_s = parts.next();
        let patch_s = parts.next();
        if parts.next().is_some() {
            return err(format!("too many version components in `{t}`"));
        }
        if is_wild(major_s) {
            return err(format!(
                "`{t}`: a major-version wildcard must stand alone as `*`"
            ));
        }
        let major = parse_number(major_s)?;
        let mut wildcard = false;
        let minor = match minor_s {
            None => None,
            Some(s) if is_wild(s) => {
                wildcard = true;
                None
            }
            Some(s) => Some(parse_number(s)?),
        };
        let patch = match patch_s {
            None => None,
            Some(s) if is_wild(s) => {
                wildcard = true;
                None
            }
            Some(_) if minor.is_none() => {
                return err(format!("`{t}`: patch given without minor"));
            }
            Some(s) => Some(parse_number(s)?),
        };
        if !pre.is_empty() && patch.is_none() {
            return err(format!(
                "`{t}`: a pre-release needs a full major.minor.patch"
            ));
        }
        let op = match (op, wildcard) {
            (None, true) | (Some(Op::Exact), true) => Op::Wildcard,
            (Some(_), true) => {
                return err(format!(
                    "`{t}`: wildcards cannot be combined with an operator"
                ));
            }
            (None, false) => Op::Caret,
            (Some(op), false) => op,
        };
        Ok(Comparator {
            op,
            major,
            minor,
            patch,
            pre,
        })
    }

    /// The version this comparator names, missing parts filled with zero.
    pub fn floor_version(&self) -> Version {
        Version {
            major: self.major,
            minor: self.minor.unwrap_or(0),
            patch: self.patch.unwrap_or(0),
            pre: self.pre.clone(),
            build: String::new(),
        }
    }

    /// Whether `v` satisfies this comparator alone (ignoring the pre-release rule, which
    /// applies to the whole requirement).
    pub fn matches(&self, v: &Version) -> bool {
        match self.op {
            Op::Exact => self.matches_exact(v),
            Op::Greater => self.matches_greater(v),
            Op::GreaterEq => self.matches_exact(v) || self.matches_greater(v),
            Op::Less => self.matches_less(v),
            Op::LessEq => self.matches_exact(v) || self.matches_less(v),
            Op::Tilde => self.matches_tilde(v),
            Op::Caret => self.matches_caret(v),
            Op::Wildcard => v.major == self.major && self.minor.is_none_or(|m| v.minor == m),
        }
    }

    fn matches_exact(&self, v: &Version) -> bool {
        v.major == self.major
            && self.minor.is_none_or(|m| v.minor == m)
            && self.patch.is_none_or(|p| v.patch == p)
            && v.pre == self.pre
    }

    fn matches_greater(&self, v: &Version) -> bool {
        if v.major != self.major {
            return v.major > self.major;
        }
        let Some(minor) = self.minor else {
            return false;
        };
        if v.minor != minor {
            return v.minor > minor;
        }
        let Some(patch) = self.patch else {
            return false;
        };
        if v.patch != patch {
            return v.patch > patch;
        }
        v.pre > self.pre
    }

    fn matches_less(&self, v: &Version) -> bool {
        if v.major != self.major {
            return v.major < self.major;
        }
        let Some(minor) = self.minor else {
            return false;
        };
        if v.minor != minor {
            return v.minor < minor;
        }
        let Some(patch) = self.patch else {
            return false;
        };
        if v.patch != patch {
            return v.patch < patch;
        }
        v.pre < self.pre
    }

    fn matches_tilde(&self, v: &Version) -> bool {
        if v.major != self.major {
            return false;
        }
        if let Some(minor) = self.minor
            && v.minor != minor
        {
            return false;
        }
        if let Some(patch) = self.patch
            && v.patch != patch
        {
            return v.patch > patch;
        }
        v.pre >= self.pre
    }

    fn matches_caret(&self, v: &Version) -> bool {
        if v.major != self.major {
            return false;
        }
        let Some(minor) = self.minor else { return true };
        let Some(patch) = self.patch else {
            return if self.major > 0 {
                v.minor >= minor
            } else {
                v.minor == minor
            };
        };
        if self.major > 0 {
            if v.minor != minor {
                return v.minor > minor;
            }
            if v.patch != patch {
                return v.patch > patch;
            }
        } else if minor > 0 {
            if v.minor != minor {
                return false;
            }
            if v.patch != patch {
                return v.patch > patch;
            }
        } else if v.minor != minor || v.patch != patch {
            return false;
        }
        v.pre >= self.pre
    }

    /// Whether this comparator allows pre-releases of `v`'s `major.minor.patch`.
    fn allows_prerelease_of(&self, v: &Version) -> bool {
        !self.pre.is_empty()
            && self.major == v.major
            && self.minor == Some(v.minor)
            && self.patch == Some(v.patch)
    }
}

impl fmt::Display for Comparator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            Op::Exact => "=",
            Op::Greater => ">",
            Op::GreaterEq => ">=",
            Op::Less => "<",
            Op::LessEq => "<=",
            Op::Tilde => "~",
            Op::Caret => "^",
            Op::Wildcard => "",
        };
        write!(f, "{op}{}", self.major)?;
        match self.minor {
            Some(m) => write!(f, ".{m}")?,
            None if self.op == Op::Wildcard => return f.write_str(".*"),
            None => return Ok(()),
        }
        match self.patch {
            Some(p) => write!(f, ".{p}")?,
            None if self.op == Op::Wildcard => return f.write_str(".*"),
            None => return Ok(()),
        }
        if !self.pre.is_empty() {
            write!(f, "-{}", self.pre)?;
        }
        Ok(())
    }
}

/// A bound of a [`VersionInterval`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bound {
    Unbounded,
    Inclusive(Version),
    Exclusive(Version),
}

/// A contiguous range of versions in SemVer order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInterval {
    pub start: Bound,
    pub end: Bound,
}

impl VersionInterval {
    /// Whether `v` lies in the interval (plain SemVer order, pre-releases included).
    pub fn contains(&self, v: &Version) -> bool {
        let after_start = match &self.start {
            Bound::Unbounded => true,
            Bound::Inclusive(s) => v >= s,
            Bound::Exclusive(s) => v > s,
        };
        let before_end = match &self.end {
            Bound::Unbounded => true,
            Bound::Inclusive(e) => v <= e,
            Bound::Exclusive(e) => v < e,
        };
        after_start && before_end
    }

    /// Whether the two intervals share at least one version.
    pub fn overlaps(&self, other: &VersionInterval) -> bool {
        starts_before_end(&self.start, &other.end) && starts_before_end(&other.start, &self.end)
    }
}

/// `start <= end` in the sense that some version can be both `>= start` and `<= end`
/// (an exclusive bound at the same version as the other bound leaves nothing).
fn starts_before_end(start: &Bound, end: &Bound) -> bool {
    match (start, end) {
        (Bound::Unbounded, _) | (_, Bound::Unbounded) => true,
        (Bound::Inclusive(s), Bound::Inclusive(e)) => s <= e,
        (Bound::Inclusive(s) | Bound::Exclusive(s), Bound::Inclusive(e) | Bound::Exclusive(e)) => {
            s < e
        }
    }
}

impl fmt::Display for VersionInterval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.start {
            Bound::Unbounded => f.write_str("[0")?,
            Bound::Inclusive(v) => write!(f, "[{v}")?,
            Bound::Exclusive(v) => write!(f, "({v}")?,
        }
        f.write_str(", ")?;
        match &self.end {
            Bound::Unbounded => f.write_str("∞)"),
            Bound::Inclusive(v) => write!(f, "{v}]"),
            Bound::Exclusive(v) => write!(f, "{v})"),
        }
    }
}

/// A version requirement: comparators that must all hold. `*` has no comparators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionReq {
    pub comparators: Vec<Comparator>,
}

impl VersionReq {
    /// Parses a Cargo-style requirement, e.g. `>= 1.2.3, < 2`, `^0.9.1`, `~1.2`, `*`.
    pub fn parse(s: &str) -> Result<Self, SemverError> {
        let t = s.trim();
        if t.is_empty() {
            return err("empty version requirement");
        }
        if matches!(t, "*" | "x" | "X") {
            return Ok(VersionReq {
                comparators: Vec::new(),
            });
        }
        let comparators = t
            .split(',')
            .map(|c| Comparator::parse(c).map_err(|e| SemverError(format!("in `{t}`: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(VersionReq { comparators })
    }

    /// Cargo resolver semantics: every comparator matches and, for a pre-release `v`, some
    /// comparator names `v`'s exact `major.minor.patch` with a pre-release.
    pub fn matches(&self, v: &Version) -> bool {
        self.comparators.iter().all(|c| c.matches(v))
            && (v.pre.is_empty() || self.comparators.iter().any(|c| c.allows_prerelease_of(v)))
    }

    /// The interval RustSec derives from a requirement in an advisory's `patched` or
    /// `unaffected` list. Rules (mirroring `rustsec`):
    ///
    /// * at most two comparators: one lower bound (`>`, `>=`) and/or one upper bound
    ///   (`<`, `<=`); `=`, `^` and `~` must stand alone;
    /// * partial versions are zero-filled (`> 0.5` is `> 0.5.0`, unlike Cargo);
    /// * `^`/`~` end just before the first pre-release of the next incompatible version
    ///   (`^1.2.3` is `[1.2.3, 2.0.0-0)`);
    /// * `*` is unbounded on both sides; `1.*`-style wildcards are rejected.
    pub fn to_interval(&self) -> Result<VersionInterval, SemverError> {
        if self.comparators.len() > 2 {
            return err(format!("too many comparators in `{self}`"));
        }
        let alone = |what: &str| -> Result<(), SemverError> {
            if self.comparators.len() != 1 {
                return err(format!(
                    "`{what}` requirements must stand alone (in `{self}`)"
                ));
            }
            Ok(())
        };
        let mut start = Bound::Unbounded;
        let mut end = Bound::Unbounded;
        for c in &self.comparators {
            let v = c.floor_version();
            match c.op {
                Op::Greater | Op::GreaterEq => {
                    if start != Bound::Unbounded {
                        return err(format!("more than one lower bound in `{self}`"));
                    }
                    start = if c.op == Op::Greater {
                        Bound::Exclusive(v)
                    } else {
                        Bound::Inclusive(v)
                    };
                }
                Op::Less | Op::LessEq => {
                    if end != Bound::Unbounded {
                        return err(format!("more than one upper bound in `{self}`"));
                    }
                    end = if c.op == Op::Less {
                        Bound::Exclusive(v)
                    } else {
                        Bound::Inclusive(v)
                    };
                }
                Op::Exact => {
                    alone("=")?;
                    start = Bound::Inclusive(v.clone());
                    end = Bound::Inclusive(v);
                }
                Op::Caret => {
                    alone("^")?;
                    let mut upper = if c.major > 0 {
                        Version::new(c.major + 1, 0, 0)
                    } else {
                        match (c.minor, c.patch) {
                            (Some(0), Some(p)) => Version::new(0, 0, p + 1),
                            (Some(m), _) => Version::new(0, m + 1, 0),
                            (None, _) => Version::new(1, 0, 0),
                        }
                    };
                    upper.pre = lowest_prerelease();
                    start = Bound::Inclusive(v);
                    end = Bound::Exclusive(upper);
                }
                Op::Tilde => {
                    alone("~")?;
                    let mut upper = match c.minor {
                        None => Version::new(c.major + 1, 0, 0),
                        Some(m) => Version::new(c.major, m + 1, 0),
                    };
                    upper.pre = lowest_prerelease();
                    start = Bound::Inclusive(v);
                    end = Bound::Exclusive(upper);
                }
                Op::Wildcard => {
                    return err(format!(
                        "wildcard requirements are not supported here: `{self}`"
                    ));
                }
            }
        }
        let interval = VersionInterval { start, end };
        if !starts_before_end(&interval.start, &interval.end) {
            return err(format!("empty range `{self}`: start must not exceed end"));
        }
        Ok(interval)
    }
}

/// `-0`: the smallest possible pre-release tag.
fn lowest_prerelease() -> Prerelease {
    Prerelease(vec![Identifier::Numeric("0".into())])
}

impl std::str::FromStr for VersionReq {
    type Err = SemverError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        VersionReq::parse(s)
    }
}

impl fmt::Display for VersionReq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.comparators.is_empty() {
            return f.write_str("*");
        }
        for (i, c) in self.comparators.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }
    fn req(s: &str) -> VersionReq {
        VersionReq::parse(s).unwrap()
    }

    #[test]
    fn version_parse_and_order() {
        assert_eq!(v("1.2.3").to_string(), "1.2.3");
        assert_eq!(
            v("1.2.3-alpha.1+build.5").to_string(),
            "1.2.3-alpha.1+build.5"
        );
        // SemVer 2.0 §11 example chain.
        let chain = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
        ];
        for w in chain.windows(2) {
            assert!(v(w[0]) < v(w[1]), "{} < {}", w[0], w[1]);
        }
        assert_eq!(v("1.0.0+a"), v("1.0.0+b"));
        assert!(v("1.2.4-0") > v("1.2.3"));
        assert!(v("1.0.0-99999999999999999999999") > v("1.0.0-2"));
        for bad in [
            "1",
            "1.2",
            "1.2.3.4",
            "a.b.c",
            "1.2.3-",
            "1.2.3+",
            "1.2.3-a..b",
            " 1.2.3",
            "v1.2.3",
        ] {
            assert!(Version::parse(bad).is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn requirement_parse() {
        assert_eq!(req(">= 1.2.3").to_string(), ">=1.2.3");
        assert_eq!(req("^0.9.1").to_string(), "^0.9.1");
        assert_eq!(req("0.9").comparators[0].op, Op::Caret);
        assert_eq!(req("1.2.*").comparators[0].op, Op::Wildcard);
        assert_eq!(req("=1.x").comparators[0].op, Op::Wildcard);
        assert!(req("*").comparators.is_empty());
        assert_eq!(req(">= 1.2, < 1.5").comparators.len(), 2);
        for bad in [
            "",
            ">=",
            ">= a",
            "1.2.3.4",
            ">=1.*",
            "1.2-alpha",
            "^1.2.3 4",
            "*.1",
        ] {
            assert!(VersionReq::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn cargo_matching() {
        let m = |r: &str, ver: &str| req(r).matches(&v(ver));
        assert!(m("^1.2.3", "1.9.0"));
        assert!(!m("^1.2.3", "2.0.0"));
        assert!(!m("^1.2.3", "1.2.2"));
        assert!(m("^0.2.3", "0.2.9"));
        assert!(!m("^0.2.3", "0.3.0"));
        assert!(m("^0.0.3", "0.0.3"));
        assert!(!m("^0.0.3", "0.0.4"));
        assert!(m("^0", "0.9.9"));
        assert!(m("~1.2.3", "1.2.9"));
        assert!(!m("~1.2.3", "1.3.0"));
        assert!(m("~1", "1.9.0"));
        assert!(m("> 0.5", "0.6.0"));
        assert!(!m("> 0.5", "0.5.9"), "Cargo: >0.5 means >=0.6.0");
        assert!(m("<= 1.2", "1.2.9"));
        assert!(m("= 1.2", "1.2.7"));
        assert!(m(">= 1.2, < 1.5", "1.4.0"));
        assert!(!m(">= 1.2, < 1.5", "1.5.0"));
        assert!(m("1.*", "1.4.0"));
        assert!(m("*", "3.0.0"));
        // Pre-release rule.
        assert!(!m(">= 1.0.0", "1.1.0-alpha"));
        assert!(!m("*", "1.0.0-alpha"));
        assert!(m(">= 1.1.0-alpha", "1.1.0-beta"));
        assert!(!m(">= 1.1.0-alpha", "1.2.0-beta"));
        assert!(m("^1.1.0-alpha", "1.1.0"));
        assert!(!m("< 1.0.0", "1.0.0-rc.1"));
        assert!(m("< 1.0.0-rc.2", "1.0.0-rc.1"));
    }

    #[test]
    fn rustsec_intervals() {
        let i = |r: &str| req(r).to_interval().unwrap().to_string();
        assert_eq!(i(">= 1.2.3"), "[1.2.3, ∞)");
        assert_eq!(i("> 0.5"), "(0.5.0, ∞)");
        assert_eq!(i("< 0.3.2"), "[0, 0.3.2)");
        assert_eq!(i("^0.9.1"), "[0.9.1, 0.10.0-0)");
        assert_eq!(i("^0.0.3"), "[0.0.3, 0.0.4-0)");
        assert_eq!(i("^1.2"), "[1.2.0, 2.0.0-0)");
        assert_eq!(i("~1.2.3"), "[1.2.3, 1.3.0-0)");
        assert_eq!(i("= 1.0.4"), "[1.0.4, 1.0.4]");
        assert_eq!(i(">= 1.2, < 1.5"), "[1.2.0, 1.5.0)");
        assert_eq!(i("*"), "[0, ∞)");
        for bad in [">= 1, >= 2", "^1, < 3", "1.*", "> 2, < 1", ">= 1, < 2, < 3"] {
            assert!(req(bad).to_interval().is_err(), "{bad}");
        }
        // Pre-releases are ordinary points of the order here.
        let r = req(">= 1.2.3").to_interval().unwrap();
        assert!(r.contains(&v("1.3.0-alpha")));
        assert!(!r.contains(&v("1.2.3-alpha")));
        let a = req("< 1.0.0").to_interval().unwrap();
        let b = req(">= 1.0.0").to_interval().unwrap();
        assert!(!a.overlaps(&b));
        let c = req("<= 1.0.0").to_interval().unwrap();
        assert!(c.overlaps(&b));
    }
}
