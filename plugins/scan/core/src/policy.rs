//! Pass/fail policy: severity threshold and reviewed ignores.
//!
//! * `fail_on`: `critical`, `high`, `medium`, `low` fail on a vulnerability of at least
//!   that severity; `any` fails on every vulnerability (even CVSS 0.0); `none` never fails
//!   (report only). Warnings (informational advisories) never fail, as in `cargo-audit`.
//! * Unscored vulnerabilities (no CVSS v3 vector, a CVSS v4 vector this crate cannot score,
//!   no database rating) count as [`Policy::unscored_as`], **`high` by default**. Image
//!   scanners (Trivy, Grype) label these "unknown" and let them pass a `high` gate, which
//!   silently waves through most RustSec advisories (many have no CVSS); here they fail a
//!   `high` gate unless reviewed and ignored. Set `unscored_as` to change this.
//! * `ignore`: `{id, reason, expires}`. The id matches the advisory id or any alias. A
//!   non-empty reason is required. `expires` (`YYYY-MM-DD`, optional) is the last day the
//!   ignore applies: when `expires < today` the finding counts again and the ignore is
//!   reported as expired. An ignore that matched no finding is reported as stale.

use crate::cvss::Severity;
use crate::error::{Error, Result};
use crate::scan::Finding;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A calendar date (`YYYY-MM-DD`), proleptic Gregorian.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    pub year: u16,
    pub month: u8,
    pub day: u8,
}

impl Date {
    /// Parses `YYYY-MM-DD`, checking the day exists.
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a date in YYYY-MM-DD form");
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(bad());
        }
        let num = |r: std::ops::Range<usize>| -> Result<u16, String> {
            let part = &s[r];
            if !part.bytes().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            part.parse().map_err(|_| bad())
        };
        let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        let days = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return Err(format!("`{s}`: no month {month}")),
        };
        if day == 0 || day > days {
            return Err(format!("`{s}`: no day {day} in that month"));
        }
        Ok(Date {
            year,
            month: month as u8,
            day: day as u8,
        })
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl std::str::FromStr for Date {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Date::parse(s)
    }
}

impl Serialize for Date {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Date {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Date::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The `fail_on` threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailOn {
    Critical,
    High,
    Medium,
    Low,
    /// Every vulnerability.
    Any,
    /// Never fail.
    None,
}

impl FailOn {
    /// Whether a vulnerability of this (effective) severity fails the policy.
    pub fn fails(self, severity: Severity) -> bool {
        match self {
            FailOn::Critical => severity >= Severity::Critical,
            FailOn::High => severity >= Severity::High,
            FailOn::Medium => severity >= Severity::Medium,
            FailOn::Low => severity >= Severity::Low,
            FailOn::Any => true,
            FailOn::None => false,
        }
    }

    /// Parses `critical|high|medium|low|any|none`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "critical" => FailOn::Critical,
            "high" => FailOn::High,
            "medium" => FailOn::Medium,
            "low" => FailOn::Low,
            "any" => FailOn::Any,
            "none" => FailOn::None,
            _ => return None,
        })
    }
}

/// A reviewed finding to ignore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ignore {
    /// Advisory id or alias (`RUSTSEC-…`, `GHSA-…`, `CVE-…`).
    pub id: String,
    /// Why it is acceptable; required.
    pub reason: String,
    /// Last day the ignore applies.
    #[serde(default)]
    pub expires: Option<Date>,
}

fn default_fail_on() -> FailOn {
    FailOn::High
}

fn default_unscored() -> Severity {
    Severity::High
}

/// The policy (deserializable from the step's parameters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Default `high`.
    #[serde(default = "default_fail_on")]
    pub fail_on: FailOn,
    /// Severity assumed for unscored vulnerabilities; default `high`.
    #[serde(default = "default_unscored")]
    pub unscored_as: Severity,
    #[serde(default)]
    pub ignore: Vec<Ignore>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            fail_on: default_fail_on(),
            unscored_as: default_unscored(),
            ignore: Vec::new(),
        }
    }
}

impl Policy {
    /// Checks ignores: non-empty ids and reasons.
    pub fn validate(&self) -> Result<()> {
        for (i, ig) in self.ignore.iter().enumerate() {
            if ig.id.trim().is_empty() {
                return Err(Error::Policy(format!("ignore[{i}]: empty `id`")));
            }
            if ig.reason.trim().is_empty() {
                return Err(Error::Policy(format!(
                    "ignore[{i}] ({}): a `reason` is required",
                    ig.id
                )));
            }
        }
        Ok(())
    }
}

/// What the policy made of a finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Status {
    /// Counts.
    Active,
    /// Suppressed by a valid ignore.
    Ignored {
        reason: String,
        expires: Option<Date>,
    },
    /// Its ignore expired: counts again.
    IgnoreExpired { reason: String, expired: Date },
}

/// A finding with the policy's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluated {
    #[serde(flatten)]
    pub finding: Finding,
    /// Severity used by the threshold: the finding's, or `unscored_as` for an unscored
    /// vulnerability; `None` for warnings.
    pub effective_severity: Option<Severity>,
    #[serde(flatten)]
    pub status: Status,
    /// Whether this finding (alone) fails the policy.
    pub fails: bool,
}

/// The outcome of applying a policy.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    pub findings: Vec<Evaluated>,
    /// Ignores that matched no finding.
    pub stale_ignores: Vec<Ignore>,
    /// Ignores past their expiry date that matched a finding.
    pub expired_ignores: Vec<Ignore>,
    pub fail_on: FailOn,
    /// `true` when some active vulnerability reaches the threshold.
    pub failed: bool,
}

impl Evaluation {
    /// Active (non-ignored) vulnerabilities.
    pub fn active_vulnerabilities(&self) -> usize {
        self.findings
            .iter()
            .filter(|e| e.finding.is_vulnerability() && !e.is_ignored())
            .count()
    }

    /// Active warnings.
    pub fn active_warnings(&self) -> usize {
        self.findings
            .iter()
            .filter(|e| !e.finding.is_vulnerability() && !e.is_ignored())
            .count()
    }

    /// Findings suppressed by an ignore.
    pub fn ignored(&self) -> usize {
        self.findings.iter().filter(|e| e.is_ignored()).count()
    }

    /// Findings that fail the policy.
    pub fn failing(&self) -> usize {
        self.findings.iter().filter(|e| e.fails).count()
    }
}

impl Evaluated {
    /// Suppressed by a valid ignore.
    pub fn is_ignored(&self) -> bool {
        matches!(self.status, Status::Ignored { .. })
    }
}

/// Applies `policy` to `findings` on the day `today` (given by the caller: the plugin has
/// no trustworthy clock of its own).
pub fn evaluate(policy: &Policy, findings: Vec<Finding>, today: Date) -> Result<Evaluation> {
    policy.validate()?;
    let mut used = vec![false; policy.ignore.len()];
    let mut expired_used = vec![false; policy.ignore.len()];
    let mut out = Vec::with_capacity(findings.len());
    for finding in findings {
        let matches = |ig: &Ignore| {
            let id = ig.id.trim();
            finding.advisory_id.eq_ignore_ascii_case(id)
                || finding.aliases.iter().any(|a| a.eq_ignore_ascii_case(id))
        };
        // A valid ignore wins over an expired one for the same finding.
        let valid = policy
            .ignore
            .iter()
            .position(|ig| matches(ig) && ig.expires.is_none_or(|d| d >= today));
        let expired = policy
            .ignore
            .iter()
            .position(|ig| matches(ig) && ig.expires.is_some_and(|d| d < today));
        let status = match (valid, expired) {
            (Some(i), _) => {
                used[i] = true;
                let ig = &policy.ignore[i];
                Status::Ignored {
                    reason: ig.reason.clone(),
                    expires: ig.expires,
                }
            }
            (None, Some(i)) => {
                expired_used[i] = true;
                let ig = &policy.ignore[i];
                Status::IgnoreExpired {
                    reason: ig.reason.clone(),
                    expired: ig.expires.unwrap_or(today),
                }
            }
            (None, None) => Status::Active,
        };
        let effective_severity = finding
            .is_vulnerability()
            .then(|| finding.severity.unwrap_or(policy.unscored_as));
        let fails = finding.is_vulnerability()
            && !matches!(status, Status::Ignored { .. })
            && effective_severity.is_some_and(|s| policy.fail_on.fails(s));
        out.push(Evaluated {
            finding,
            effective_severity,
            status,
            fails,
        });
    }
    let stale_ignores = policy
        .ignore
        .iter()
        .enumerate()
        .filter(|(i, _)| !used[*i] && !expired_used[*i])
        .map(|(_, ig)| ig.clone())
        .collect();
    let expired_ignores = policy
        .ignore
        .iter()
        .enumerate()
        .filter(|(i, _)| expired_used[*i])
        .map(|(_, ig)| ig.clone())
        .collect();
    let failed = out.iter().any(|e| e.fails);
    Ok(Evaluation {
        findings: out,
        stale_ignores,
        expired_ignores,
        fail_on: policy.fail_on,
        failed,
    })
}
