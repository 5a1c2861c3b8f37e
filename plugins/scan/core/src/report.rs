//! Plain-text summary.

use crate::policy::{Evaluation, Status};
use crate::scan::FindingKind;
use std::fmt::Write;

/// A readable summary: one line per finding (severity, id, package@version, title, fix),
/// then ignore notes and the verdict.
///
/// ```text
/// CRITICAL  RUSTSEC-2019-0009  smallvec@0.6.9  Double-free and use-after-free in SmallVec::grow()  fix: >= 0.6.10
/// ```
pub fn text_summary(eval: &Evaluation) -> String {
    let mut rows: Vec<[String; 5]> = Vec::new();
    for e in &eval.findings {
        let f = &e.finding;
        let mut sev = match (&f.kind, e.effective_severity) {
            (FindingKind::Warning(info), _) => info.as_str().to_ascii_uppercase(),
            (_, Some(s)) if f.severity.is_some() => s.as_str().to_ascii_uppercase(),
            (_, Some(s)) => format!("{}?", s.as_str().to_ascii_uppercase()),
            (_, None) => "UNKNOWN".into(),
        };
        match &e.status {
            Status::Ignored { .. } => sev = format!("ignored:{}", sev.to_ascii_lowercase()),
            Status::IgnoreExpired { .. } => sev.push_str("(expired ignore)"),
            Status::Active => {}
        }
        let fix = if f.patched_versions.is_empty() {
            "fix: none".to_string()
        } else {
            format!("fix: {}", f.patched_versions.join(" | "))
        };
        rows.push([
            sev,
            f.advisory_id.clone(),
            format!("{}@{}", f.package, f.version),
            shorten(&f.title, 72),
            fix,
        ]);
    }
    let mut widths = [0usize; 4];
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r.iter()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let _ = writeln!(
            out,
            "{:<w0$}  {:<w1$}  {:<w2$}  {:<w3$}  {}",
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3]
        );
    }
    for ig in &eval.expired_ignores {
        let when = ig.expires.map(|d| d.to_string()).unwrap_or_default();
        let _ = writeln!(
            out,
            "note: ignore for {} expired on {when} ({})",
            ig.id, ig.reason
        );
    }
    for ig in &eval.stale_ignores {
        let _ = writeln!(out, "note: ignore for {} matched nothing (stale)", ig.id);
    }
    let _ = writeln!(
        out,
        "{} vulnerabilities, {} warnings, {} ignored; {} failing fail_on={}: {}",
        eval.active_vulnerabilities(),
        eval.active_warnings(),
        eval.ignored(),
        eval.failing(),
        serde_json::to_value(eval.fail_on)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        if eval.failed { "FAIL" } else { "PASS" }
    );
    out
}

/// `s` cut to at most `max` characters, with an ellipsis when cut.
fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}
