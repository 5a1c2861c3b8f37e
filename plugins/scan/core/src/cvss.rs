//! CVSS vectors and qualitative severity.
//!
//! * CVSS v3.0 / v3.1 vectors are parsed and their **base score** computed with the
//!   CVSS 3.1 specification formula (section 7.1 and appendix A `Roundup`). CVSS 3.0
//!   differs only in its `Roundup`, which could give a 0.1 higher score on
//!   floating-point artefacts; the 3.1 `Roundup` is used for both. Temporal and
//!   environmental metrics are accepted and ignored (the base score is reported).
//! * CVSS v4.0 vectors are validated (mandatory base metrics present, values known) but
//!   not scored: the v4 score comes from a 270-entry macro-vector lookup table plus
//!   interpolation, which this crate does not ship. Such advisories have
//!   `score = None` and are treated as *unscored* by the policy (see
//!   [`crate::policy::Policy::unscored_as`]).
//! * CVSS v2 is not supported (unscored).

use serde::{Deserialize, Serialize};
use std::fmt;

/// Qualitative severity (CVSS v3.1 table 14 ranges).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// 0.0
    None,
    /// 0.1 – 3.9
    Low,
    /// 4.0 – 6.9
    Medium,
    /// 7.0 – 8.9
    High,
    /// 9.0 – 10.0
    Critical,
}

impl Severity {
    /// The rating of a CVSS score.
    pub fn from_score(score: f64) -> Self {
        if score >= 9.0 {
            Severity::Critical
        } else if score >= 7.0 {
            Severity::High
        } else if score >= 4.0 {
            Severity::Medium
        } else if score > 0.0 {
            Severity::Low
        } else {
            Severity::None
        }
    }

    /// Lowercase name (`critical`, `high`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::None => "none",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// Parses a lowercase or capitalised name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "none" => Severity::None,
            "low" => Severity::Low,
            "medium" | "moderate" => Severity::Medium,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            _ => return None,
        })
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed CVSS vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Cvss {
    /// The vector as written.
    pub vector: String,
    /// `"3.0"`, `"3.1"` or `"4.0"`.
    pub version: &'static str,
    /// Base score, when this crate can compute it (v3.x).
    pub score: Option<f64>,
}

impl Cvss {
    /// Parses a `CVSS:3.0/…`, `CVSS:3.1/…` or `CVSS:4.0/…` vector.
    pub fn parse(vector: &str) -> Result<Self, String> {
        let vector = vector.trim();
        let (prefix, rest) = vector
            .split_once('/')
            .ok_or_else(|| format!("`{vector}` is not a CVSS vector"))?;
        let version = match prefix {
            "CVSS:3.0" => "3.0",
            "CVSS:3.1" => "3.1",
            "CVSS:4.0" => "4.0",
            other => return Err(format!("unsupported CVSS version `{other}` in `{vector}`")),
        };
        let metrics = split_metrics(rest, vector)?;
        let score = if version == "4.0" {
            validate_v4(&metrics, vector)?;
            None
        } else {
            Some(base_score_v3(&metrics, vector)?)
        };
        Ok(Cvss {
            vector: vector.to_string(),
            version,
            score,
        })
    }

    /// Severity of the computed score, if any.
    pub fn severity(&self) -> Option<Severity> {
        self.score.map(Severity::from_score)
    }
}

fn split_metrics<'a>(rest: &'a str, vector: &str) -> Result<Vec<(&'a str, &'a str)>, String> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for part in rest.split('/') {
        let (k, v) = part
            .split_once(':')
            .ok_or_else(|| format!("malformed metric `{part}` in `{vector}`"))?;
        if out.iter().any(|(seen, _)| *seen == k) {
            return Err(format!("metric `{k}` repeated in `{vector}`"));
        }
        out.push((k, v));
    }
    Ok(out)
}

fn metric<'a>(metrics: &[(&str, &'a str)], key: &str, vector: &str) -> Result<&'a str, String> {
    metrics
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| *v)
        .ok_or_else(|| format!("missing base metric `{key}` in `{vector}`"))
}

/// CVSS 3.1 appendix A `Roundup`: smallest one-decimal number >= x, robust to float noise.
fn roundup(x: f64) -> f64 {
    let int_input = (x * 100_000.0).round() as i64;
    if int_input % 10_000 == 0 {
        int_input as f64 / 100_000.0
    } else {
        ((int_input / 10_000) + 1) as f64 / 10.0
    }
}

fn base_score_v3(metrics: &[(&str, &str)], vector: &str) -> Result<f64, String> {
    const TEMPORAL_ENV: &[&str] = &[
        "E", "RL", "RC", "CR", "IR", "AR", "MAV", "MAC", "MPR", "MUI", "MS", "MC", "MI", "MA",
    ];
    const BASE: &[&str] = &["AV", "AC", "PR", "UI", "S", "C", "I", "A"];
    for (k, _) in metrics {
        if !BASE.contains(k) && !TEMPORAL_ENV.contains(k) {
            return Err(format!("unknown CVSS v3 metric `{k}` in `{vector}`"));
        }
    }
    let bad = |k: &str, v: &str| format!("invalid value `{v}` for `{k}` in `{vector}`");
    let get = |k: &str| metric(metrics, k, vector);

    let scope_changed = match get("S")? {
        "U" => false,
        "C" => true,
        v => return Err(bad("S", v)),
    };
    let av = match get("AV")? {
        "N" => 0.85,
        "A" => 0.62,
        "L" => 0.55,
        "P" => 0.2,
        v => return Err(bad("AV", v)),
    };
    let ac = match get("AC")? {
        "L" => 0.77,
        "H" => 0.44,
        v => return Err(bad("AC", v)),
    };
    let pr = match (get("PR")?, scope_changed) {
        ("N", _) => 0.85,
        ("L", false) => 0.62,
        ("L", true) => 0.68,
        ("H", false) => 0.27,
        ("H", true) => 0.5,
        (v, _) => return Err(bad("PR", v)),
    };
    let ui = match get("UI")? {
        "N" => 0.85,
        "R" => 0.62,
        v => return Err(bad("UI", v)),
    };
    let cia = |k: &str| -> Result<f64, String> {
        match get(k)? {
            "H" => Ok(0.56),
            "L" => Ok(0.22),
            "N" => Ok(0.0),
            v => Err(bad(k, v)),
        }
    };
    let (c, i, a) = (cia("C")?, cia("I")?, cia("A")?);

    let iss = 1.0 - (1.0 - c) * (1.0 - i) * (1.0 - a);
    let impact = if scope_changed {
        7.52 * (iss - 0.029) - 3.25 * (iss - 0.02).powi(15)
    } else {
        6.42 * iss
    };
    let exploitability = 8.22 * av * ac * pr * ui;
    if impact <= 0.0 {
        return Ok(0.0);
    }
    Ok(if scope_changed {
        roundup((1.08 * (impact + exploitability)).min(10.0))
    } else {
        roundup((impact + exploitability).min(10.0))
    })
}

fn validate_v4(metrics: &[(&str, &str)], vector: &str) -> Result<(), String> {
    const BASE: &[(&str, &[&str])] = &[
        ("AV", &["N", "A", "L", "P"]),
        ("AC", &["L", "H"]),
        ("AT", &["N", "P"]),
        ("PR", &["N", "L", "H"]),
        ("UI", &["N", "P", "A"]),
        ("VC", &["H", "L", "N"]),
        ("VI", &["H", "L", "N"]),
        ("VA", &["H", "L", "N"]),
        ("SC", &["H", "L", "N"]),
        ("SI", &["H", "L", "N"]),
        ("SA", &["H", "L", "N"]),
    ];
    for (key, allowed) in BASE {
        let v = metric(metrics, key, vector)?;
        if !allowed.contains(&v) {
            return Err(format!("invalid value `{v}` for `{key}` in `{vector}`"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(v: &str) -> f64 {
        Cvss::parse(v).unwrap().score.unwrap()
    }

    #[test]
    fn known_v31_scores() {
        assert_eq!(score("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"), 9.8);
        assert_eq!(score("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H"), 10.0);
        assert_eq!(score("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N"), 5.5);
        assert_eq!(score("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"), 7.5);
        assert_eq!(score("CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:N"), 5.9);
        assert_eq!(score("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N"), 6.1);
        assert_eq!(score("CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N"), 1.6);
        assert_eq!(score("CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:H/I:H/A:H"), 9.9);
        assert_eq!(score("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N"), 0.0);
        assert_eq!(score("CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"), 9.8);
        // Temporal metrics are ignored.
        assert_eq!(
            score("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/E:U/RL:O/RC:C"),
            9.8
        );
    }

    #[test]
    fn severities() {
        assert_eq!(Severity::from_score(0.0), Severity::None);
        assert_eq!(Severity::from_score(0.1), Severity::Low);
        assert_eq!(Severity::from_score(3.9), Severity::Low);
        assert_eq!(Severity::from_score(4.0), Severity::Medium);
        assert_eq!(Severity::from_score(7.0), Severity::High);
        assert_eq!(Severity::from_score(9.0), Severity::Critical);
        assert!(Severity::Critical > Severity::High);
        assert_eq!(Severity::parse("MODERATE"), Some(Severity::Medium));
    }

    #[test]
    fn v4_is_validated_not_scored() {
        let c =
            Cvss::parse("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N").unwrap();
        assert_eq!(c.version, "4.0");
        assert_eq!(c.score, None);
        assert!(Cvss::parse("CVSS:4.0/AV:N/AC:L").is_err());
    }

    #[test]
    fn malformed_vectors() {
        for bad in [
            "",
            "AV:N/AC:L",
            "CVSS:2.0/AV:N",
            "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H",
            "CVSS:3.1/AV:Q/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
            "CVSS:3.1/AV:N/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
            "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/ZZ:1",
            "CVSS:3.1/AVN",
        ] {
            assert!(Cvss::parse(bad).is_err(), "{bad:?}");
        }
    }
}
