//! Prints a run's events as they come: a live view on a terminal, one line
//! per event otherwise, or JSON lines.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use flow_engine::Event;
use flow_engine::units::{format_duration, format_progress};
use flow_store::{CacheUse, StepStatus};
use tokio::sync::mpsc::UnboundedReceiver;

use super::Style;

/// Above this many steps the live view shows counts and the running steps only.
const LIVE_ALL_STEPS: usize = 12;
const FRAME: Duration = Duration::from_millis(100);
const SPINNER: [&str; 4] = ["|", "/", "-", "\\"];

/// `explain`: say why each step missed the cache (or did without it).
pub(crate) async fn render(
    mut rx: UnboundedReceiver<Event>,
    style: Style,
    steps: Vec<String>,
    explain: bool,
) {
    match style {
        Style::Json => {
            while let Some(event) = rx.recv().await {
                if let Ok(line) = serde_json::to_string(&event) {
                    let _ = writeln!(std::io::stdout().lock(), "{line}");
                }
            }
        }
        Style::Plain => {
            let width = steps.iter().map(String::len).max().unwrap_or(0);
            let mut started = std::collections::BTreeSet::new();
            let mut told: BTreeMap<String, Instant> = BTreeMap::new();
            while let Some(event) = rx.recv().await {
                if let Event::StepStarted { step, .. } = &event {
                    started.insert(step.clone());
                }
                if let Event::StepProgress {
                    step,
                    done,
                    total,
                    unit,
                    ..
                } = &event
                {
                    let due = told
                        .get(step)
                        .is_none_or(|at| at.elapsed() >= PLAIN_PROGRESS);
                    if due {
                        told.insert(step.clone(), Instant::now());
                        outln!("{step:<width$}  {}", format_progress(*done, *total, unit));
                    }
                    continue;
                }
                let ran =
                    matches!(&event, Event::StepFinished { step, .. } if started.contains(step));
                if let Some(line) = plain_line(&event, width, ran) {
                    outln!("{line}");
                }
                if explain && let Some(lines) = explanation(&event, width) {
                    outln!("{lines}");
                }
            }
        }
        Style::Live => {
            let explained = live(rx, steps.clone()).await;
            if explain {
                let width = steps.iter().map(String::len).max().unwrap_or(0);
                for event in &explained {
                    if let Some(lines) = explanation(event, width) {
                        outln!("{lines}");
                    }
                }
            }
        }
    }
}

/// `ran`: the step of a `StepFinished` started (so its time is worth showing,
/// even when it rounds to 0ms).
fn plain_line(event: &Event, width: usize, ran: bool) -> Option<String> {
    Some(match event {
        Event::RunStarted {
            run,
            pipeline,
            steps,
            ..
        } => {
            format!(
                "run {run} started: {pipeline} ({} step{})",
                steps.len(),
                plural(steps.len())
            )
        }
        Event::StepStarted { step, .. } => format!("{step:<width$}  started"),
        Event::StepRetrying {
            step,
            attempt,
            attempts,
            status,
            reason,
            delay_ms,
            ..
        } => format!(
            "{step:<width$}  attempt {attempt} of {attempts} {status}: {}; retrying in {}",
            first_line(reason),
            format_duration(Duration::from_millis(*delay_ms))
        ),
        Event::StepFinished {
            run: this_run,
            step,
            status,
            cache: Some(CacheUse::Hit { run, step: from }),
            ..
        } => {
            if run == this_run && from == step {
                format!("{step:<width$}  {status}, kept (it finished before the run was resumed)")
            } else {
                format!("{step:<width$}  {status}, cached (from {run}/{from})")
            }
        }
        Event::StepFinished {
            step,
            status,
            reason,
            duration_ms,
            ..
        } => {
            let mut line = format!("{step:<width$}  {status}");
            if ran || *duration_ms > 0 || *status == StepStatus::Succeeded {
                line.push_str(&format!(
                    " in {}",
                    format_duration(Duration::from_millis(*duration_ms))
                ));
            }
            if let Some(reason) = reason {
                line.push_str(&format!(": {}", first_line(reason)));
            }
            line
        }
        // The end is the summary's to tell; events added later are not shown.
        _ => return None,
    })
}

/// Why a finished step ran rather than being taken from the cache, one line per cause.
fn explanation(event: &Event, width: usize) -> Option<String> {
    let Event::StepFinished {
        cache: Some(cache), ..
    } = event
    else {
        return None;
    };
    let pad = " ".repeat(width + 2);
    match cache {
        CacheUse::Miss { why } => Some(
            why.iter()
                .map(|cause| format!("{pad}not cached: {cause}"))
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        CacheUse::Off { why } => Some(format!("{pad}cache not asked: {why}")),
        _ => None,
    }
}

pub(crate) fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

pub(crate) use flow_engine::units::first_line;

struct StepView {
    status: Option<StepStatus>,
    started: Option<Instant>,
    took: Option<Duration>,
    /// Taken from the step cache.
    cached: bool,
    /// What it last said of its progress.
    progress: Option<String>,
}

/// In plain output, a step's progress is printed at most this often.
const PLAIN_PROGRESS: Duration = Duration::from_secs(5);

/// A one-character mark for a step state, coloured for a terminal.
pub(crate) fn symbol(status: StepStatus, color: bool) -> String {
    let (mark, code) = match status {
        StepStatus::Succeeded => ("✓", "32"),
        StepStatus::Failed => ("✗", "31"),
        StepStatus::TimedOut => ("⏱", "31"),
        StepStatus::Cancelled => ("⊘", "33"),
        StepStatus::Skipped => ("-", "2"),
        StepStatus::Pending => ("·", "2"),
        StepStatus::Running => ("*", "36"),
    };
    if color {
        format!("\x1b[{code}m{mark}\x1b[0m")
    } else {
        mark.to_string()
    }
}

/// Draws the run as it goes; returns the steps' `StepFinished` events.
async fn live(mut rx: UnboundedReceiver<Event>, steps: Vec<String>) -> Vec<Event> {
    let mut finished = Vec::new();
    let width = steps.iter().map(String::len).max().unwrap_or(0);
    let mut views: BTreeMap<String, StepView> = steps
        .iter()
        .map(|s| {
            (
                s.clone(),
                StepView {
                    status: None,
                    started: None,
                    took: None,
                    cached: false,
                    progress: None,
                },
            )
        })
        .collect();
    let mut drawn = 0usize;
    let mut tick = 0usize;
    let mut header = String::new();
    let mut ticker = tokio::time::interval(FRAME);
    loop {
        tokio::select! {
            event = rx.recv() => match event {
                Some(Event::RunStarted { run, pipeline, .. }) => header = format!("run {run}: {pipeline}"),
                Some(Event::StepStarted { step, .. }) => {
                    if let Some(v) = views.get_mut(&step) {
                        v.status = Some(StepStatus::Running);
                        v.started = Some(Instant::now());
                    }
                }
                Some(Event::StepRetrying { step, .. }) => {
                    if let Some(v) = views.get_mut(&step) {
                        v.status = Some(StepStatus::Running);
                        v.progress = None;
                    }
                }
                Some(Event::StepProgress { step, done, total, unit, .. }) => {
                    if let Some(v) = views.get_mut(&step) {
                        v.progress = Some(format_progress(done, total, &unit));
                    }
                }
                Some(event @ Event::StepFinished { .. }) => {
                    if let Event::StepFinished { step, status, duration_ms, cache, .. } = &event
                        && let Some(v) = views.get_mut(step)
                    {
                        v.status = Some(*status);
                        v.took = Some(Duration::from_millis(*duration_ms));
                        v.cached = matches!(cache, Some(CacheUse::Hit { .. }));
                    }
                    finished.push(event);
                }
                Some(_) => {}
                None => break,
            },
            _ = ticker.tick() => tick += 1,
        }
        // Nothing to show until the run is recorded.
        if !header.is_empty() {
            drawn = redraw(&steps, &views, &header, width, tick, drawn);
        }
    }
    if !header.is_empty() {
        redraw(&steps, &views, &header, width, tick, drawn);
    }
    finished
}

fn redraw(
    steps: &[String],
    views: &BTreeMap<String, StepView>,
    header: &str,
    width: usize,
    tick: usize,
    drawn: usize,
) -> usize {
    let mut frame = String::new();
    if drawn > 0 {
        frame.push_str(&format!("\x1b[{drawn}A"));
    }
    let mut lines = vec![header.to_string()];
    let compact = steps.len() > LIVE_ALL_STEPS;
    if compact {
        let done = views
            .values()
            .filter(|v| v.status.is_some_and(|s| s.is_terminal()))
            .count();
        let running = views
            .values()
            .filter(|v| v.status == Some(StepStatus::Running))
            .count();
        lines.push(format!(
            "  {done}/{} steps done, {running} running",
            steps.len()
        ));
    }
    for id in steps {
        let Some(view) = views.get(id) else { continue };
        let status = view.status.unwrap_or(StepStatus::Pending);
        if compact && status != StepStatus::Running {
            continue;
        }
        let elapsed = match (status, view.started, view.took) {
            (StepStatus::Running, Some(start), _) => format_duration(start.elapsed()),
            (_, _, Some(took)) if status.is_terminal() && view.started.is_some() => {
                format_duration(took)
            }
            _ => String::new(),
        };
        let mark = if status == StepStatus::Running {
            SPINNER[tick % SPINNER.len()].to_string()
        } else {
            symbol(status, true)
        };
        if view.cached {
            lines.push(format!("  {mark} {id:<width$}  cached"));
        } else if let (StepStatus::Running, Some(progress)) = (status, &view.progress) {
            lines.push(format!(
                "  {mark} {id:<width$}  {status:<9} {elapsed:<7} {progress}"
            ));
        } else {
            lines.push(format!("  {mark} {id:<width$}  {status:<9} {elapsed}"));
        }
    }
    for line in &lines {
        frame.push_str("\x1b[2K");
        frame.push_str(line);
        frame.push('\n');
    }
    // Clear lines left over from a taller previous frame.
    for _ in lines.len()..drawn {
        frame.push_str("\x1b[2K\n");
    }
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(frame.as_bytes());
    let _ = out.flush();
    lines.len().max(drawn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_name_the_step_and_its_state() {
        let event = Event::StepFinished {
            run: "r".into(),
            step: "greet".into(),
            status: StepStatus::Failed,
            reason: Some("boom\nmore".into()),
            duration_ms: 1500,
            outputs: BTreeMap::new(),
            cache: None,
            at: 0,
        };
        assert_eq!(
            plain_line(&event, 6, true).as_deref(),
            Some("greet   failed in 1.5s: boom")
        );
    }

    #[test]
    fn cached_steps_say_where_from_and_misses_explain_themselves() {
        let finished = |cache| Event::StepFinished {
            run: "r2".into(),
            step: "build".into(),
            status: StepStatus::Succeeded,
            reason: None,
            duration_ms: 3,
            outputs: BTreeMap::new(),
            cache: Some(cache),
            at: 0,
        };
        let hit = finished(CacheUse::Hit {
            run: "r1".into(),
            step: "build".into(),
        });
        assert_eq!(
            plain_line(&hit, 5, true).as_deref(),
            Some("build  succeeded, cached (from r1/build)")
        );
        assert_eq!(explanation(&hit, 5), None);
        let miss = finished(CacheUse::Miss {
            why: vec![
                "param `a` changed: 1 → 2".into(),
                "secret `t` changed".into(),
            ],
        });
        assert_eq!(
            explanation(&miss, 5).as_deref(),
            Some(
                "       not cached: param `a` changed: 1 → 2\n       not cached: secret `t` changed"
            )
        );
    }
}
