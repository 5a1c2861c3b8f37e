//! The dashboard's pages: the home page (figures, charts and runs of the runs a
//! filter picks) and the page of a run in progress. A finished run's page is
//! `flow report`'s.

use std::collections::BTreeMap;
use std::fmt::Write;

use flow_engine::stats::Stats;
use flow_engine::units::first_line;
use flow_store::{CacheUse, StepStatus, format_rfc3339};

use super::charts;
use super::html::{badge, escape, message_page, ms, page, rate, url_encode};
use super::live::LiveRun;
use super::query::{Filter, PER_PAGE, text};
use super::snapshot::{Access, RunEntry, View};

/// How many of the slowest and flakiest steps the home page lists.
const LISTED: usize = 5;

/// Succeeded over ended runs, over every pipeline.
pub(crate) fn success_rate(stats: &Stats) -> Option<f64> {
    let (ok, ended) = stats.pipelines.iter().fold((0, 0), |(ok, ended), p| {
        (
            ok + p.succeeded,
            ended + p.succeeded + p.failed + p.cancelled,
        )
    });
    (ended > 0).then(|| ok as f64 / ended as f64)
}

/// The step of a run that failed or timed out first.
pub(crate) fn failed_step(entry: &RunEntry) -> Option<&str> {
    entry
        .steps
        .iter()
        .filter(|s| matches!(s.status, StepStatus::Failed | StepStatus::TimedOut))
        .min_by_key(|s| (s.finished_at.unwrap_or(u64::MAX), s.index))
        .map(|s| s.step_id.as_str())
}

/// What the page says about how fresh its figures are, if not plainly fresh.
pub(crate) fn freshness(view: &View) -> Option<String> {
    let as_of = view
        .snapshot
        .read_at
        .map_or_else(|| "never read yet".to_owned(), format_rfc3339);
    match &view.access {
        Access::Read | Access::NoStore => None,
        Access::HeldBy(pid) => Some(format!(
            "data dir held by flow pid {pid} (a run in progress); figures as of {as_of}"
        )),
        Access::Held => Some(format!(
            "data dir held by another process for a moment; figures as of {as_of}"
        )),
        Access::Failed(e) => Some(format!(
            "cannot read the data dir: {e}; figures as of {as_of}"
        )),
    }
}

/// The home page.
pub(crate) fn home(dir: &str, view: &View, filter: &Filter, runs: &[&RunEntry]) -> String {
    let stats = Stats::of_runs(runs.iter().map(|e| (&e.run, e.steps.as_slice())), None);
    let mut b = String::with_capacity(64 * 1024);
    let _ = writeln!(b, "<h1>Runs in {}</h1>", escape(dir));
    if let Some(text) = freshness(view) {
        let _ = writeln!(
            b,
            "<p class=\"banner\" id=\"freshness\">{}</p>",
            escape(&text)
        );
    }
    if view.access == Access::NoStore {
        b.push_str("<p id=\"no-runs\">No runs yet: <code>flow run</code> records them here.</p>\n");
    }
    filters(&mut b, view, filter);
    in_progress(&mut b, &view.live);
    let failures: usize = stats.pipelines.iter().map(|p| p.failed).sum();
    let cancelled: usize = stats.pipelines.iter().map(|p| p.cancelled).sum();
    let _ = write!(
        b,
        "<div class=\"figures\">\
         <div class=\"figure\">runs<b id=\"total-runs\">{}</b></div>\
         <div class=\"figure\">success rate<b id=\"success-rate\">{}</b></div>\
         <div class=\"figure\">failed<b id=\"failed-runs\">{failures}</b></div>\
         <div class=\"figure\">cancelled or interrupted<b id=\"cancelled-runs\">{cancelled}</b></div>\
         </div>\n<h2>Runs over time</h2>\n{}\n",
        stats.runs,
        rate(success_rate(&stats)),
        charts::runs_over_time(
            &runs
                .iter()
                .map(|e| (e.run.started_at, e.run.status))
                .collect::<Vec<_>>()
        )
    );
    let samples = Samples::of(runs);
    pipelines(&mut b, &stats, &samples);
    slowest_and_flakiest(&mut b, &stats);
    recent_failures(&mut b, view, &stats);
    run_table(&mut b, filter, runs);
    page("flow dashboard", &b)
}

fn filters(b: &mut String, view: &View, filter: &Filter) {
    let mut names: Vec<&str> = view
        .snapshot
        .runs
        .iter()
        .map(|e| e.run.pipeline_name.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    b.push_str("<form class=\"filters\" method=\"get\" action=\"/\">");
    b.push_str("<label>pipeline<select name=\"pipeline\"><option value=\"\">any</option>");
    for name in names {
        let _ = write!(
            b,
            "<option{}>{}</option>",
            if filter.given("pipeline") == name {
                " selected"
            } else {
                ""
            },
            escape(name)
        );
    }
    b.push_str(
        "</select></label><label>status<select name=\"status\"><option value=\"\">any</option>",
    );
    for status in ["succeeded", "failed", "cancelled", "interrupted", "running"] {
        let _ = write!(
            b,
            "<option{}>{status}</option>",
            if filter.given("status") == status {
                " selected"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(
        b,
        "</select></label>\
         <label>input (NAME=VALUE or a value)<input name=\"input\" value=\"{}\" placeholder=\"branch=main\"></label>\
         <label>from<input type=\"date\" name=\"from\" value=\"{}\"></label>\
         <label>to<input type=\"date\" name=\"to\" value=\"{}\"></label>\
         <button type=\"submit\">filter</button> <a href=\"/\">clear</a></form>",
        escape(filter.given("input")),
        escape(filter.given("from")),
        escape(filter.given("to"))
    );
}

fn in_progress(b: &mut String, live: &[LiveRun]) {
    if live.is_empty() {
        return;
    }
    b.push_str(
        "<h2>In progress</h2>\n<table class=\"grid\" id=\"in-progress\"><tr><th>run</th>\
         <th>pipeline</th><th>status</th><th>started</th><th class=\"n\">steps done</th></tr>",
    );
    for run in live {
        let done = run
            .steps
            .iter()
            .filter(|s| !matches!(s.status.as_str(), "pending" | "running" | "retrying"))
            .count();
        let _ = write!(
            b,
            "<tr data-run=\"{id}\"><td><a href=\"/runs/{link}\">{id}</a></td><td>{}</td><td>{}</td>\
             <td>{}</td><td class=\"n\">{done} of {}</td></tr>",
            escape(&run.pipeline),
            badge(&run.status),
            format_rfc3339(run.started_at),
            run.steps.len(),
            id = escape(&run.id),
            link = url_encode(&run.id),
        );
    }
    b.push_str("</table>\n");
}

/// Durations in the order they happened, for the charts: per pipeline (runs that
/// ended) and per pipeline and step (times it ran, not taken from the cache).
struct Samples {
    pipelines: BTreeMap<String, Vec<u64>>,
    steps: BTreeMap<(String, String), Vec<u64>>,
}

impl Samples {
    fn of(runs: &[&RunEntry]) -> Samples {
        let mut s = Samples {
            pipelines: BTreeMap::new(),
            steps: BTreeMap::new(),
        };
        for e in runs.iter().rev() {
            if let Some(end) = e.run.finished_at {
                s.pipelines
                    .entry(e.run.pipeline_name.clone())
                    .or_default()
                    .push(end.saturating_sub(e.run.started_at));
            }
            for step in &e.steps {
                if !step.status.is_terminal() || matches!(step.cache, Some(CacheUse::Hit { .. })) {
                    continue;
                }
                if let (Some(a), Some(z)) = (step.started_at, step.finished_at) {
                    s.steps
                        .entry((e.run.pipeline_name.clone(), step.step_id.clone()))
                        .or_default()
                        .push(z.saturating_sub(a));
                }
            }
        }
        s
    }
}

fn pipelines(b: &mut String, stats: &Stats, samples: &Samples) {
    if stats.pipelines.is_empty() {
        return;
    }
    b.push_str(
        "<h2>Pipelines</h2>\n<table class=\"grid\" id=\"pipelines\"><tr><th>pipeline</th>\
         <th class=\"n\">runs</th><th class=\"n\">succeeded</th><th class=\"n\">failed</th>\
         <th class=\"n\">cancelled</th><th class=\"n\">success rate</th><th class=\"n\">median</th>\
         <th class=\"n\">p90</th><th class=\"n\">max</th><th>durations</th><th>trend</th></tr>",
    );
    let none = Vec::new();
    for p in &stats.pipelines {
        let durations = samples.pipelines.get(&p.pipeline).unwrap_or(&none);
        let _ = write!(
            b,
            "<tr data-pipeline=\"{name}\"><td><a href=\"/?pipeline={link}\">{name}</a></td>\
             <td class=\"n runs\">{}</td><td class=\"n ok-count\">{}</td><td class=\"n failed-count\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n rate\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>",
            p.runs,
            p.succeeded,
            p.failed,
            p.cancelled,
            rate(p.success_rate),
            duration(p.durations.count, p.durations.p50_ms),
            duration(p.durations.count, p.durations.p90_ms),
            duration(p.durations.count, p.durations.max_ms),
            charts::histogram(durations),
            charts::trend(durations),
            name = escape(&p.pipeline),
            link = url_encode(&p.pipeline),
        );
    }
    b.push_str("</table>\n");
    for p in &stats.pipelines {
        let _ = write!(
            b,
            "<h3>Steps of {}</h3>\n<table class=\"grid steps\" data-pipeline=\"{}\"><tr><th>step</th>\
             <th class=\"n\">ended</th><th class=\"n\">failed</th><th class=\"n\">retried</th>\
             <th class=\"n\">flaky</th><th class=\"n\">cached</th><th class=\"n\">median</th>\
             <th class=\"n\">p90</th><th class=\"n\">max</th><th>durations</th><th>trend</th></tr>",
            escape(&p.pipeline),
            escape(&p.pipeline)
        );
        for s in &p.steps {
            let durations = samples
                .steps
                .get(&(p.pipeline.clone(), s.step.clone()))
                .unwrap_or(&none);
            let _ = write!(
                b,
                "<tr data-step=\"{}\"><td>{}</td><td class=\"n\">{}</td><td class=\"n failed-count\">{}</td>\
                 <td class=\"n retried\">{}</td><td class=\"n flaky\">{}</td><td class=\"n cached\">{}</td>\
                 <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>",
                escape(&s.step),
                escape(&s.step),
                s.runs,
                s.failed,
                s.retried,
                s.flaky,
                s.cached,
                duration(s.durations.count, s.durations.p50_ms),
                duration(s.durations.count, s.durations.p90_ms),
                duration(s.durations.count, s.durations.max_ms),
                charts::histogram(durations),
                charts::trend(durations),
            );
        }
        b.push_str("</table>\n");
    }
}

fn duration(count: usize, value: u64) -> String {
    if count == 0 { "-".into() } else { ms(value) }
}

fn slowest_and_flakiest(b: &mut String, stats: &Stats) {
    let slowest = stats.slowest(LISTED);
    if !slowest.is_empty() {
        b.push_str("<h2>Slowest steps (median when run)</h2>\n<ol id=\"slowest\">");
        for (pipeline, s) in slowest {
            let _ = write!(
                b,
                "<li>{}/{} <b>{}</b></li>",
                escape(pipeline),
                escape(&s.step),
                ms(s.durations.p50_ms)
            );
        }
        b.push_str("</ol>\n");
    }
    let flakiest = stats.flakiest(LISTED);
    if !flakiest.is_empty() {
        b.push_str("<h2>Flakiest steps</h2>\n<ol id=\"flakiest\">");
        for (pipeline, s) in flakiest {
            let _ = write!(
                b,
                "<li>{}/{}: {} succeeded after a retry, {} failed, of {} runs</li>",
                escape(pipeline),
                escape(&s.step),
                s.flaky,
                s.failed,
                s.runs
            );
        }
        b.push_str("</ol>\n");
    }
}

fn recent_failures(b: &mut String, view: &View, stats: &Stats) {
    if stats.recent_failures.is_empty() {
        return;
    }
    b.push_str(
        "<h2>Recent failures</h2>\n<table class=\"grid\" id=\"failures\"><tr><th>run</th>\
         <th>pipeline</th><th>started</th><th>step</th><th>failure</th></tr>",
    );
    for f in &stats.recent_failures {
        let step = view.snapshot.run(&f.run).and_then(failed_step);
        let anchor = step.map_or_else(String::new, |s| format!("#step-{}", url_encode(s)));
        let _ = write!(
            b,
            "<tr><td><a class=\"failure\" href=\"/runs/{}{anchor}\">{}</a></td><td>{}</td><td>{}</td>\
             <td>{}</td><td class=\"bad\">{}</td></tr>",
            url_encode(&f.run),
            escape(&f.run),
            escape(&f.pipeline),
            format_rfc3339(f.started_at),
            escape(step.unwrap_or("-")),
            escape(first_line(&f.failure))
        );
    }
    b.push_str("</table>\n");
}

fn run_table(b: &mut String, filter: &Filter, runs: &[&RunEntry]) {
    let pages = runs.len().div_ceil(PER_PAGE).max(1);
    let page_no = filter.page.min(pages);
    let _ = write!(
        b,
        "<h2>Runs</h2>\n<table class=\"grid\" id=\"runs\"><tr><th>run</th><th>pipeline</th>\
         <th>status</th><th>started</th><th class=\"n\">duration</th><th>inputs</th></tr>"
    );
    for e in runs.iter().skip((page_no - 1) * PER_PAGE).take(PER_PAGE) {
        let r = &e.run;
        let inputs: Vec<String> = r
            .inputs
            .iter()
            .map(|(k, v)| format!("{k}={}", text(v)))
            .collect();
        let _ = write!(
            b,
            "<tr data-run=\"{id}\"><td><a href=\"/runs/{link}\">{id}</a></td><td>{}</td><td>{}</td>\
             <td>{}</td><td class=\"n\">{}</td><td><code>{}</code></td></tr>",
            escape(&r.pipeline_name),
            badge(r.status.as_str()),
            format_rfc3339(r.started_at),
            r.finished_at
                .map_or_else(|| "-".into(), |f| ms(f.saturating_sub(r.started_at))),
            escape(&inputs.join(" ")),
            id = escape(r.id.as_str()),
            link = url_encode(r.id.as_str()),
        );
    }
    b.push_str("</table>\n<p id=\"pager\">");
    if page_no > 1 {
        let _ = write!(
            b,
            "<a rel=\"prev\" href=\"/{}\">newer</a> ",
            escape(&filter.link(page_no - 1))
        );
    }
    let _ = write!(b, "page {page_no} of {pages} ({} runs)", runs.len());
    if page_no < pages {
        let _ = write!(
            b,
            " <a rel=\"next\" href=\"/{}\">older</a>",
            escape(&filter.link(page_no + 1))
        );
    }
    b.push_str("</p>\n");
}

const LIVE_SCRIPT: &str = r#"
(function(){
var id=document.body.getAttribute('data-run');
function show(el,status){if(!el)return;el.textContent=status;el.className='badge '+status.replace(/ /g,'_');}
function when(ms){return ms?new Date(ms).toISOString().replace('.000Z','Z'):'';}
function tick(){
  fetch('/api/runs/'+encodeURIComponent(id),{cache:'no-store'}).then(function(r){return r.json();}).then(function(d){
    if(d.recorded){
      return fetch('/runs/'+encodeURIComponent(id),{cache:'no-store'}).then(function(r){return r.text();}).then(function(html){
        document.open();document.write(html);document.close();
      });
    }
    var run=d.live;
    if(run){
      show(document.getElementById('run-status'),run.status);
      run.steps.forEach(function(s){
        var row=document.getElementById('live-step-'+s.step);if(!row)return;
        show(row.querySelector('.badge'),s.status);
        row.querySelector('.started').textContent=when(s.started_at);
        row.querySelector('.finished').textContent=when(s.finished_at);
        row.querySelector('.reason').textContent=(s.retries?s.retries+' failed attempt(s) ':'')+(s.reason||'')+(s.progress?' '+s.progress:'');
      });
    }
    setTimeout(tick,1000);
  }).catch(function(){setTimeout(tick,2000);});
}
setTimeout(tick,1000);
})();
"#;

/// The page of a run in progress: its steps as its live file tells, followed every
/// second (`/api/runs/ID`) until the run is recorded, then replaced by its report.
pub(crate) fn live_run(view: &View, run: &LiveRun) -> String {
    let mut b = String::new();
    let _ = writeln!(
        b,
        "<h1>Run {} <span class=\"badge {}\" id=\"run-status\">{}</span></h1>",
        escape(&run.id),
        escape(&run.status.replace(' ', "_")),
        escape(&run.status)
    );
    if let Some(text) = freshness(view) {
        let _ = writeln!(
            b,
            "<p class=\"banner\" id=\"freshness\">{}</p>",
            escape(&text)
        );
    }
    let _ = write!(
        b,
        "<p class=\"muted\" id=\"following\">In progress: this page follows the run and shows \
         its full report once it is recorded.</p>\n<table class=\"grid\"><tr><td>pipeline</td>\
         <td>{}</td></tr><tr><td>started</td><td>{}</td></tr></table>\n\
         <h2>Steps</h2>\n<table class=\"grid\" id=\"live-steps\"><tr><th>step</th><th>status</th>\
         <th>started</th><th>finished</th><th>note</th></tr>",
        escape(&run.pipeline),
        format_rfc3339(run.started_at)
    );
    for s in &run.steps {
        let _ = write!(
            b,
            "<tr id=\"live-step-{id}\" data-step=\"{id}\"><td>{id}</td><td>{}</td>\
             <td class=\"started\">{}</td><td class=\"finished\">{}</td><td class=\"reason\">{}</td></tr>",
            badge(&s.status),
            s.started_at.map(format_rfc3339).unwrap_or_default(),
            s.finished_at.map(format_rfc3339).unwrap_or_default(),
            escape(
                &[s.reason.as_deref(), s.progress.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            id = escape(&s.step),
        );
    }
    b.push_str("</table>\n");
    let _ = writeln!(b, "<script>{LIVE_SCRIPT}</script>");
    page(&format!("flow run {} (in progress)", run.id), &b).replacen(
        "<body>",
        &format!("<body data-run=\"{}\">", escape(&run.id)),
        1,
    )
}

/// The page for a run id nobody knows.
pub(crate) fn no_such_run(view: &View, id: &str) -> String {
    let mut message = format!("There is no run {id} in this data dir.");
    if let Some(text) = freshness(view) {
        message.push_str(&format!(" ({text})"));
    }
    message_page("No such run", &message)
}
