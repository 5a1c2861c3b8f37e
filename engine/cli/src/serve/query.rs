//! The dashboard's filters, from a URL's query string: `pipeline`, `status`,
//! `input` (`NAME=VALUE`, or a value any input has), `branch` (the input `branch`),
//! `from` and `to` (`YYYY-MM-DD`, UTC, both days included; or unix milliseconds) and
//! `page`. Anything else is refused with a message (a 400), never guessed.

use flow_store::{RunRecord, RunStatus};
use serde_json::Value;

use super::html::url_encode;

/// How many runs a page of the runs table lists.
pub(crate) const PER_PAGE: usize = 50;

/// Which runs to count and list.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Filter {
    pub pipeline: Option<String>,
    pub status: Option<RunStatus>,
    /// An input's name (any input when none) and value.
    pub input: Option<(Option<String>, String)>,
    /// Runs started at or after (unix ms).
    pub from: Option<u64>,
    /// Runs started before (unix ms).
    pub to: Option<u64>,
    /// The page of the runs table, from 1.
    pub page: usize,
    /// The query as given (for links that keep it), without `page`.
    kept: Vec<(String, String)>,
}

const STATUSES: [RunStatus; 5] = [
    RunStatus::Running,
    RunStatus::Succeeded,
    RunStatus::Failed,
    RunStatus::Cancelled,
    RunStatus::Interrupted,
];

impl Filter {
    /// Reads a query string (none: no filter).
    pub(crate) fn parse(query: Option<&str>) -> Result<Filter, String> {
        let mut filter = Filter {
            page: 1,
            ..Filter::default()
        };
        for (name, value) in pairs(query.unwrap_or(""))? {
            // Forms send empty fields: an empty value is no filter.
            if value.is_empty() {
                continue;
            }
            match name.as_str() {
                "pipeline" => filter.pipeline = Some(value.clone()),
                "status" => {
                    filter.status = Some(
                        STATUSES
                            .into_iter()
                            .find(|s| s.as_str() == value)
                            .ok_or_else(|| {
                                format!(
                                    "status `{value}` is none of: {}",
                                    STATUSES.map(|s| s.as_str()).join(", ")
                                )
                            })?,
                    )
                }
                "input" => {
                    filter.input = Some(match value.split_once('=') {
                        Some((n, v)) if !n.is_empty() => (Some(n.to_owned()), v.to_owned()),
                        _ => (None, value.clone()),
                    })
                }
                "branch" => filter.input = Some((Some("branch".into()), value.clone())),
                "from" => filter.from = Some(time(&value, false)?),
                "to" => filter.to = Some(time(&value, true)?),
                "page" => {
                    filter.page = value
                        .parse::<usize>()
                        .ok()
                        .filter(|p| (1..=1_000_000).contains(p))
                        .ok_or_else(|| format!("page `{value}` is not a page number"))?;
                    continue;
                }
                other => {
                    return Err(format!(
                        "unknown parameter `{other}`: the filters are pipeline, status, input, \
                         branch, from, to, and page"
                    ));
                }
            }
            filter.kept.push((name, value));
        }
        if let (Some(from), Some(to)) = (filter.from, filter.to)
            && from >= to
        {
            return Err("`from` must come before `to`".into());
        }
        Ok(filter)
    }

    /// Whether `run` is one of the runs asked for.
    pub(crate) fn matches(&self, run: &RunRecord) -> bool {
        self.pipeline
            .as_ref()
            .is_none_or(|p| *p == run.pipeline_name)
            && self.status.is_none_or(|s| s == run.status)
            && self.from.is_none_or(|t| run.started_at >= t)
            && self.to.is_none_or(|t| run.started_at < t)
            && self.input.as_ref().is_none_or(|(name, value)| match name {
                Some(name) => run.inputs.get(name).is_some_and(|v| text(v) == *value),
                None => run.inputs.values().any(|v| text(v) == *value),
            })
    }

    /// This query string (`?...`, or empty) on page `page`.
    pub(crate) fn link(&self, page: usize) -> String {
        let mut parts: Vec<String> = self
            .kept
            .iter()
            .map(|(n, v)| format!("{}={}", url_encode(n), url_encode(v)))
            .collect();
        if page > 1 {
            parts.push(format!("page={page}"));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("?{}", parts.join("&"))
        }
    }

    /// The value given for a filter, for the form (empty when none).
    pub(crate) fn given(&self, name: &str) -> &str {
        self.kept
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// An input's value as text: a string as is, anything else as JSON.
pub(crate) fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `a=1&b=2`, decoded.
fn pairs(query: &str) -> Result<Vec<(String, String)>, String> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (n, v) = p.split_once('=').unwrap_or((p, ""));
            Ok((decode(n)?, decode(v)?))
        })
        .collect()
}

/// Decodes `+` and `%XX` (as UTF-8).
fn decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("`{text}` has a bad %-escape"))?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| format!("`{text}` is not UTF-8"))
}

/// `YYYY-MM-DD` (UTC; with `end`, the end of that day) or unix milliseconds.
fn time(value: &str, end: bool) -> Result<u64, String> {
    if value.bytes().all(|b| b.is_ascii_digit()) {
        return value
            .parse()
            .map_err(|_| format!("`{value}` is too large a time"));
    }
    let bad = || format!("`{value}` is not a date (YYYY-MM-DD) nor unix milliseconds");
    let mut parts = value.splitn(3, '-');
    let mut number = |len: usize| {
        parts
            .next()
            .filter(|p| p.len() == len && p.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|p| p.parse::<u64>().ok())
            .ok_or_else(bad)
    };
    let (y, m, d) = (number(4)?, number(2)?, number(2)?);
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || d < 1 || d > days_in(y, m) {
        return Err(bad());
    }
    let start =
        flow_provenance::parse_rfc3339_millis(&format!("{value}T00:00:00Z")).ok_or_else(bad)?;
    Ok(start + u64::from(end) * 86_400_000)
}

fn days_in(y: u64, m: u64) -> u64 {
    match m {
        2 if (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_read_and_bad_ones_refused() {
        let f = Filter::parse(Some(
            "pipeline=ci&status=failed&input=branch%3Dmain&from=2024-03-01&to=2024-03-01&page=2",
        ))
        .unwrap();
        assert_eq!(f.pipeline.as_deref(), Some("ci"));
        assert_eq!(f.status, Some(RunStatus::Failed));
        assert_eq!(f.input, Some((Some("branch".into()), "main".into())));
        assert_eq!(f.from, Some(1_709_251_200_000));
        assert_eq!(f.to, Some(1_709_251_200_000 + 86_400_000));
        assert_eq!(f.page, 2);
        assert_eq!(
            f.link(3),
            "?pipeline=ci&status=failed&input=branch%3Dmain&from=2024-03-01&to=2024-03-01&page=3"
        );
        assert_eq!(
            Filter::parse(Some("pipeline=&status=")).unwrap().link(1),
            ""
        );
        for bad in [
            "status=nope",
            "page=0",
            "page=x",
            "from=2024-02-30",
            "from=yesterday",
            "to=99999999999999999999999",
            "colour=red",
            "pipeline=%zz",
            "pipeline=%ff",
            "from=2024-03-02&to=2024-03-01",
        ] {
            assert!(Filter::parse(Some(bad)).is_err(), "{bad}");
        }
        assert_eq!(time("1970-01-01", false), Ok(0));
        assert_eq!(time("2000-03-01", false), Ok(11_017 * 86_400_000));
        assert_eq!(time("2000-03-01", true), Ok(11_018 * 86_400_000));
    }
}
