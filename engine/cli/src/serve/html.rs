//! What every dashboard page shares: escaping, the page frame and its styles,
//! and the words for figures.

use std::time::Duration;

use flow_engine::units::format_duration;

pub(crate) use flow_engine::report::escape;

/// Text made safe for a URL's query value or path segment.
pub(crate) use flow_engine::units::percent_encode as url_encode;

/// Milliseconds as a person reads them (`1.2s`, `3m4s`).
pub(crate) fn ms(ms: u64) -> String {
    format_duration(Duration::from_millis(ms))
}

/// A rate (0 to 1) as a percentage, or `-` when there is none.
pub(crate) fn rate(rate: Option<f64>) -> String {
    rate.map_or_else(|| "-".to_owned(), |r| format!("{:.1}%", r * 100.0))
}

/// The CSS class of a status word (`timed out` -> `timed_out`).
pub(crate) fn status_class(status: &str) -> String {
    status.replace(' ', "_")
}

/// A status badge.
pub(crate) fn badge(status: &str) -> String {
    format!(
        "<span class=\"badge {}\">{}</span>",
        escape(&status_class(status)),
        escape(status)
    )
}

const STYLE: &str = r#"
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:16px;color:#1d2330}
h1{font-size:20px;margin:0 0 8px}h2{font-size:16px;margin:24px 0 8px}h3{font-size:14px;margin:16px 0 6px}
a{color:#0969da}
nav{margin-bottom:12px}nav a{margin-right:12px}
table.grid{border-collapse:collapse;margin:4px 0}
table.grid th,table.grid td{padding:3px 10px 3px 0;text-align:left;border-bottom:1px solid #eaeef2;vertical-align:middle}
table.grid td.n,table.grid th.n{text-align:right}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;color:#fff}
.succeeded{background:#1f883d}.failed{background:#cf222e}.timed_out{background:#bc4c00}
.cancelled{background:#6e7781}.skipped{background:#afb8c1}.running{background:#0969da}
.pending{background:#d0d7de;color:#1d2330}.interrupted{background:#6e7781}.retrying{background:#bf8700}
.ok{color:#1f883d}.bad{color:#cf222e}.muted{color:#57606a}
.banner{border:1px solid #d4a72c;background:#fff8c5;padding:8px 12px;border-radius:6px;margin:8px 0}
.figures{display:flex;gap:24px;flex-wrap:wrap;margin:8px 0}
.figure{border:1px solid #d0d7de;border-radius:6px;padding:8px 14px}
.figure b{display:block;font-size:22px}
form.filters{display:flex;gap:10px;flex-wrap:wrap;align-items:end;margin:8px 0}
form.filters label{display:flex;flex-direction:column;font-size:12px;color:#57606a}
svg text{font:11px system-ui,sans-serif;fill:#57606a}
svg .s-succeeded{fill:#1f883d}svg .s-failed{fill:#cf222e}svg .s-running{fill:#0969da}svg .s-other{fill:#8c959f}
svg .hist{fill:#0969da}svg .trend{fill:none;stroke:#0969da;stroke-width:1.5}
code{font-size:12px}
"#;

/// A whole page: `title`, then `body` (already HTML).
pub(crate) fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n\
         <nav><a href=\"/\">flow dashboard</a></nav>\n{body}</body></html>\n",
        escape(title)
    )
}

/// A page that only says what went wrong.
pub(crate) fn message_page(title: &str, message: &str) -> String {
    page(
        title,
        &format!(
            "<h1>{}</h1>\n<p id=\"message\">{}</p>\n",
            escape(title),
            escape(message)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_leaves_no_markup_and_urls_no_separators() {
        assert_eq!(
            escape("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
        assert_eq!(url_encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }
}
