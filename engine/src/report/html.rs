//! The report page as HTML text: every style and script inline, every value escaped.

use std::fmt::Write;
use std::time::Duration;

use flow_store::{CacheUse, LogStream, StepRecord, StepStatus, format_rfc3339};

use super::layout::places;
use super::page::{Glance, Page};
use crate::units::format_duration;

const STYLE: &str = r#"
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:16px;color:#1d2330}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}
table.facts td{padding:1px 12px 1px 0;vertical-align:top}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;color:#fff}
.succeeded{background:#1f883d}.failed{background:#cf222e}.timed_out{background:#bc4c00}
.cancelled{background:#6e7781}.skipped{background:#afb8c1}.running{background:#0969da}
.pending{background:#d0d7de;color:#1d2330}.interrupted{background:#6e7781}
.ok{color:#1f883d}.bad{color:#cf222e}
svg text{font:12px system-ui,sans-serif}
.node{cursor:pointer}
details.step{border:1px solid #d0d7de;border-radius:6px;margin:6px 0;padding:4px 8px}
details.step>summary{cursor:pointer}
.tag{font-size:12px;color:#57606a;margin-left:6px}
pre.log{background:#f6f8fa;padding:6px;overflow:auto;max-height:480px;margin:4px 0}
.line.stderr{color:#cf222e}.line.host{color:#57606a}
.hidden{display:none}
code{font-size:12px}
"#;

const SCRIPT: &str = r#"
function openStep(id){var d=document.getElementById('step-'+id);if(d){d.open=true;var l=d.querySelector('details.logs');if(l)l.open=true;d.scrollIntoView();}}
document.querySelectorAll('[data-step]').forEach(function(n){n.addEventListener('click',function(){openStep(n.getAttribute('data-step'));});});
if(location.hash.indexOf('#step-')===0)openStep(decodeURIComponent(location.hash.slice(6)));
var box=document.getElementById('search');
box.addEventListener('input',function(){
  var q=box.value.toLowerCase(),hits=0;
  document.querySelectorAll('details.step').forEach(function(step){
    var found=0;
    step.querySelectorAll('.line').forEach(function(line){
      var show=!q||line.textContent.toLowerCase().indexOf(q)>=0;
      line.classList.toggle('hidden',!show);if(q&&show)found++;
    });
    if(q&&found){step.open=true;var l=step.querySelector('details.logs');if(l)l.open=true;}
    hits+=found;
  });
  document.getElementById('hits').textContent=q?hits+' matching lines':'';
});
"#;

/// Text made safe for HTML (element content and quoted attribute values).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn status_class(status: StepStatus) -> &'static str {
    match status {
        StepStatus::Succeeded => "succeeded",
        StepStatus::Failed => "failed",
        StepStatus::TimedOut => "timed_out",
        StepStatus::Cancelled => "cancelled",
        StepStatus::Skipped => "skipped",
        StepStatus::Running => "running",
        _ => "pending",
    }
}

fn took(from: Option<u64>, to: Option<u64>) -> String {
    match (from, to) {
        (Some(a), Some(b)) => format_duration(Duration::from_millis(b.saturating_sub(a))),
        _ => "-".into(),
    }
}

/// The whole page.
pub(super) fn page(p: &Page) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let run = &p.run;
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>flow run {id}</title><style>{STYLE}</style></head><body>\n\
         <h1>Run {id} <span class=\"badge {class}\" id=\"run-status\">{status}</span></h1>\n\
         <table class=\"facts\">\
         <tr><td>pipeline</td><td>{pipeline} ({file})</td></tr>\
         <tr><td>started</td><td>{started}</td></tr>\
         <tr><td>duration</td><td>{duration}</td></tr>\
         <tr><td>steps</td><td>{steps}</td></tr>\
         <tr><td>engine</td><td>{engine}</td></tr>",
        id = escape(run.id.as_str()),
        class = escape(&run.status.to_string()),
        status = escape(&run.status.to_string()),
        pipeline = escape(&run.pipeline_name),
        file = escape(&run.pipeline_file),
        started = format_rfc3339(run.started_at),
        duration = took(Some(run.started_at), run.finished_at),
        steps = p.steps.len(),
        engine = escape(&run.engine_version),
    );
    for at in &run.resumed_at {
        let _ = write!(
            out,
            "<tr><td>resumed</td><td>{}</td></tr>",
            format_rfc3339(*at)
        );
    }
    if let Some(failure) = &run.failure {
        let _ = write!(
            out,
            "<tr><td>failure</td><td class=\"bad\">{}</td></tr>",
            escape(failure)
        );
    }
    out.push_str("</table>\n");
    verdict(&mut out, p);
    out.push_str("<h2>Steps and what they need</h2>\n");
    dag(&mut out, p);
    out.push_str("<h2>Timeline</h2>\n");
    timeline(&mut out, p);
    out.push_str(
        "<h2>Steps</h2>\n<p><input id=\"search\" type=\"search\" placeholder=\"search the logs\" size=\"40\"> <span id=\"hits\"></span></p>\n",
    );
    for step in &p.steps {
        step_section(&mut out, p, step);
    }
    let _ = writeln!(out, "<script>{SCRIPT}</script></body></html>");
    out
}

fn verdict(out: &mut String, p: &Page) {
    out.push_str("<h2>Provenance</h2>\n<p id=\"verification\">");
    match &p.verdict.verification {
        Some(Ok(text)) => {
            let _ = write!(
                out,
                "<span class=\"ok\">flow verify: {}</span>",
                escape(text)
            );
        }
        Some(Err(text)) => {
            let _ = write!(
                out,
                "<span class=\"bad\">flow verify: FAILED</span><pre>{}</pre>",
                escape(text)
            );
        }
        None => out.push_str("not verified"),
    }
    out.push_str("</p>\n");
    if let Some((name, checks)) = &p.verdict.policy {
        let failed = checks.iter().filter(|(ok, _)| !ok).count();
        let _ = write!(
            out,
            "<p id=\"policy\">policy {}: {}</p><ul>",
            escape(name),
            if failed == 0 {
                format!("<span class=\"ok\">passed ({} checks)</span>", checks.len())
            } else {
                format!(
                    "<span class=\"bad\">FAILED ({failed} of {} checks)</span>",
                    checks.len()
                )
            }
        );
        for (ok, text) in checks {
            let _ = write!(
                out,
                "<li class=\"{}\">{}</li>",
                if *ok { "ok" } else { "bad" },
                escape(text)
            );
        }
        out.push_str("</ul>\n");
    }
}

const NODE_W: usize = 150;
const NODE_H: usize = 26;
const COL: usize = 190;
const ROW: usize = 36;

fn dag(out: &mut String, p: &Page) {
    let needs: Vec<Vec<u32>> = if p.run.needs.len() == p.steps.len() {
        p.run.needs.clone()
    } else {
        // A run recorded before runs kept their DAG: what its provenance says, if any.
        p.steps
            .iter()
            .map(|s| {
                let names = p.glances.get(&s.index).map(|g| g.needs.clone());
                names
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|n| p.steps.iter().find(|x| &x.step_id == n))
                    .map(|x| x.index)
                    .collect()
            })
            .collect()
    };
    let at = places(&needs);
    let width = at.iter().map(|a| a.column).max().unwrap_or(0) * COL + NODE_W + 20;
    let height = at.iter().map(|a| a.row).max().unwrap_or(0) * ROW + NODE_H + 20;
    let _ = write!(
        out,
        "<svg id=\"dag\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\">"
    );
    let xy = |i: usize| (10 + at[i].column * COL, 10 + at[i].row * ROW);
    for (i, of) in needs.iter().enumerate() {
        for &n in of {
            let n = n as usize;
            if n >= at.len() || i >= at.len() {
                continue;
            }
            let ((x1, y1), (x2, y2)) = (xy(n), xy(i));
            let (x1, y1, x2, y2) = (x1 + NODE_W, y1 + NODE_H / 2, x2, y2 + NODE_H / 2);
            let mid = (x1 + x2) / 2;
            let _ = write!(
                out,
                "<path d=\"M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}\" fill=\"none\" stroke=\"#8c959f\"/>"
            );
        }
    }
    for (i, step) in p.steps.iter().enumerate() {
        if i >= at.len() {
            break;
        }
        let (x, y) = xy(i);
        let label: String = step.step_id.chars().take(20).collect();
        let _ = write!(
            out,
            "<g class=\"node\" data-step=\"{id}\" id=\"node-{id}\"><title>{id}: {status}</title>\
             <rect class=\"{class}\" x=\"{x}\" y=\"{y}\" width=\"{NODE_W}\" height=\"{NODE_H}\" rx=\"5\"/>\
             <text x=\"{tx}\" y=\"{ty}\" fill=\"#fff\">{label}</text></g>",
            id = escape(&step.step_id),
            status = step.status,
            class = status_class(step.status),
            tx = x + 8,
            ty = y + 17,
            label = escape(&label),
        );
    }
    out.push_str("</svg>\n");
}

fn timeline(out: &mut String, p: &Page) {
    let start = p.run.started_at;
    let end = p
        .steps
        .iter()
        .filter_map(|s| s.finished_at.or(s.started_at))
        .chain(p.run.finished_at)
        .max()
        .unwrap_or(start)
        .max(start + 1);
    const LABEL: usize = 170;
    const WIDTH: usize = 880;
    const BAR: usize = 16;
    let span = (end - start) as f64;
    let x = |t: u64| LABEL + ((t.saturating_sub(start)) as f64 / span * WIDTH as f64) as usize;
    let height = p.steps.len() * (BAR + 4) + 24;
    let _ = write!(
        out,
        "<svg id=\"timeline\" width=\"{}\" height=\"{height}\">",
        LABEL + WIDTH + 10
    );
    for (row, step) in p.steps.iter().enumerate() {
        let y = 4 + row * (BAR + 4);
        let label: String = step.step_id.chars().take(22).collect();
        let _ = write!(
            out,
            "<text x=\"0\" y=\"{}\" data-step=\"{}\" class=\"node\">{}</text>",
            y + 12,
            escape(&step.step_id),
            escape(&label)
        );
        let Some(began) = step.started_at else {
            continue;
        };
        // It waited from when its last need ended until it started.
        let ready = p
            .run
            .needs
            .get(row)
            .into_iter()
            .flatten()
            .filter_map(|&n| p.steps.get(n as usize).and_then(|s| s.finished_at))
            .max()
            .unwrap_or(start);
        if began > ready {
            let _ = write!(
                out,
                "<rect class=\"wait\" x=\"{}\" y=\"{y}\" width=\"{}\" height=\"{BAR}\" fill=\"#eaeef2\"><title>{} waited {}</title></rect>",
                x(ready),
                (x(began) - x(ready)).max(1),
                escape(&step.step_id),
                took(Some(ready), Some(began))
            );
        }
        let ended = step.finished_at.unwrap_or(end);
        let _ = write!(
            out,
            "<rect class=\"{}\" data-step=\"{}\" x=\"{}\" y=\"{y}\" width=\"{}\" height=\"{BAR}\" rx=\"3\"><title>{} {} in {}</title></rect>",
            status_class(step.status),
            escape(&step.step_id),
            x(began),
            (x(ended) - x(began)).max(2),
            escape(&step.step_id),
            step.status,
            took(Some(began), Some(ended))
        );
    }
    let _ = writeln!(
        out,
        "<text x=\"{LABEL}\" y=\"{}\">0</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text></svg>",
        height - 4,
        LABEL + WIDTH,
        height - 4,
        took(Some(start), Some(end))
    );
}

fn step_section(out: &mut String, p: &Page, step: &StepRecord) {
    let id = escape(&step.step_id);
    let _ = write!(
        out,
        "<details class=\"step\" id=\"step-{id}\"><summary><span class=\"badge {class}\">{status}</span> <b>{id}</b> \
         <span class=\"tag\">{plugin}</span> <span class=\"tag\">{duration}</span>",
        class = status_class(step.status),
        status = step.status,
        plugin = escape(&step.plugin),
        duration = took(step.started_at, step.finished_at),
    );
    match &step.cache {
        Some(CacheUse::Hit { run, step: from }) => {
            let _ = write!(
                out,
                " <span class=\"tag cached\">cached (from {}/{})</span>",
                escape(run),
                escape(from)
            );
        }
        Some(CacheUse::Miss { why }) if !why.is_empty() => {
            let _ = write!(out, " <span class=\"tag\">not cached</span>");
        }
        _ => {}
    }
    if !step.attempts.is_empty() {
        let _ = write!(
            out,
            " <span class=\"tag retried\">{} attempts</span>",
            step.attempts.len() + 1
        );
    }
    out.push_str("</summary>\n");
    if let Some(reason) = &step.reason {
        let _ = write!(out, "<pre class=\"reason bad\">{}</pre>", escape(reason));
    }
    for attempt in &step.attempts {
        let _ = write!(
            out,
            "<p>attempt {} {} after {}: {}</p>",
            attempt.attempt,
            attempt.status,
            took(attempt.started_at, Some(attempt.finished_at)),
            escape(attempt.reason.as_deref().unwrap_or("no reason given"))
        );
    }
    match &step.cache {
        Some(CacheUse::Miss { why }) if !why.is_empty() => {
            out.push_str("<p>not taken from the cache:</p><ul>");
            for cause in why {
                let _ = write!(out, "<li>{}</li>", escape(cause));
            }
            out.push_str("</ul>");
        }
        Some(CacheUse::Off { why }) => {
            let _ = write!(out, "<p>cache not asked: {}</p>", escape(why));
        }
        _ => {}
    }
    if !step.outputs.is_empty() {
        out.push_str("<table class=\"outputs\">");
        for (name, value) in &step.outputs {
            let _ = write!(
                out,
                "<tr><td><code>{}</code></td><td><code>{}</code></td></tr>",
                escape(name),
                escape(value)
            );
        }
        out.push_str("</table>");
    }
    provenance(out, step, p.glances.get(&step.index));
    let lines = p.logs.get(&step.index).map(Vec::as_slice).unwrap_or(&[]);
    let _ = write!(
        out,
        "<details class=\"logs\"><summary>log ({} lines{})</summary><pre class=\"log\">",
        lines.len(),
        if step.log_truncated {
            ", cut short"
        } else {
            ""
        }
    );
    for line in lines {
        let class = match line.line.stream {
            LogStream::Stderr => "stderr",
            LogStream::Host => "host",
            _ => "out",
        };
        let _ = writeln!(
            out,
            "<span class=\"line {class}\">{}</span>",
            escape(&line.line.text)
        );
    }
    out.push_str("</pre></details></details>\n");
}

fn provenance(out: &mut String, step: &StepRecord, glance: Option<&Glance>) {
    out.push_str("<table class=\"facts provenance\">");
    if let Some(digest) = &step.plugin_digest {
        let _ = write!(
            out,
            "<tr><td>plugin</td><td><code>{}</code></td></tr>",
            escape(digest)
        );
    }
    match glance {
        Some(g) => {
            let _ = write!(
                out,
                "<tr><td>signed by</td><td><code>{}</code></td></tr>\
                 <tr><td>materials</td><td>{}</td></tr><tr><td>products</td><td>{}</td></tr>",
                escape(&g.keyid),
                g.materials,
                g.products
            );
            if !g.templates.is_empty() {
                let _ = write!(
                    out,
                    "<tr><td>templates</td><td>{}</td></tr>",
                    escape(&g.templates.join(" ← "))
                );
            }
        }
        None => out.push_str("<tr><td>provenance</td><td>none recorded</td></tr>"),
    }
    out.push_str("</table>");
}
