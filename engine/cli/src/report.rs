//! What `flow runs`, `flow show`, `flow logs` and `flow plugins` print, and
//! the summary at the end of `flow run`.

use flow_pipeline::plugin::Capability;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use flow_engine::RunSummary;
use flow_engine::units::format_duration;
use flow_engine::{LoadedPlugin, RuntimeError};
use flow_store::{LogStream, RunRecord, StepRecord, StepStatus, Store, format_rfc3339};

use super::progress::{first_line, symbol};
use crate::{Failure, Style, exit};

/// Colour marks only for a person at a terminal.
fn color() -> bool {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// Log lines shown under a failed step in the run summary.
const TAIL_LINES: usize = 10;

fn took(start: Option<u64>, end: Option<u64>) -> String {
    match (start, end) {
        (Some(s), Some(e)) => format_duration(Duration::from_millis(e.saturating_sub(s))),
        _ => "-".into(),
    }
}

pub(crate) fn summary(store: &Store, summary: &RunSummary) {
    let run = &summary.run;
    let mut counts: Vec<(StepStatus, usize)> = Vec::new();
    for step in &summary.steps {
        match counts.iter_mut().find(|(s, _)| *s == step.status) {
            Some((_, n)) => *n += 1,
            None => counts.push((step.status, 1)),
        }
    }
    let counts: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
    outln!(
        "run {} {} in {} ({})",
        run.id,
        run.status,
        took(Some(run.started_at), run.finished_at),
        counts.join(", ")
    );
    for step in &summary.steps {
        if !matches!(step.status, StepStatus::Failed | StepStatus::TimedOut) {
            continue;
        }
        outln!(
            "  {} {} {}: {}",
            symbol(step.status, color()),
            step.step_id,
            step.status,
            first_line(step.reason.as_deref().unwrap_or(""))
        );
        for extra in step.reason.as_deref().unwrap_or("").lines().skip(1) {
            outln!("    {extra}");
        }
        if let Ok(lines) = store.logs(&run.id, Some(&step.step_id)) {
            let start = lines.len().saturating_sub(TAIL_LINES);
            for line in &lines[start..] {
                outln!("    | {}", line.line.text);
            }
            if !lines.is_empty() {
                outln!("    (full log: flow logs {} {})", run.id, step.step_id);
            }
        }
    }
}

/// `flow runs` where nothing was ever recorded.
pub(crate) fn no_runs(dir: &std::path::Path, style: Style) {
    if style != Style::Json {
        outln!("no runs yet in {}", dir.display());
    }
}

pub(crate) fn runs(store: &Store, limit: usize, style: Style) -> Result<u8, Failure> {
    let runs = store.runs(Some(limit))?;
    if style == Style::Json {
        for run in &runs {
            outln!("{}", serde_json::to_string(run).unwrap_or_default());
        }
        return Ok(exit::SUCCESS);
    }
    if runs.is_empty() {
        outln!("no runs yet in {}", store.dir().display());
        return Ok(exit::SUCCESS);
    }
    let width = runs.iter().map(|r| r.id.as_str().len()).max().unwrap_or(2);
    outln!(
        "{:<width$}  {:<11}  {:<24}  {:>9}  PIPELINE",
        "RUN",
        "STATUS",
        "STARTED",
        "DURATION"
    );
    for run in &runs {
        outln!(
            "{:<width$}  {:<11}  {:<24}  {:>9}  {}",
            run.id.as_str(),
            run.status.to_string(),
            format_rfc3339(run.started_at),
            took(Some(run.started_at), run.finished_at),
            run.pipeline_name
        );
    }
    Ok(exit::SUCCESS)
}

pub(crate) fn show(store: &Store, query: &str, style: Style) -> Result<u8, Failure> {
    let id = store.resolve(query)?;
    let run: RunRecord = store.run(&id)?.ok_or_else(|| {
        Failure::Invalid(format!(
            "error: no run `{query}` in {}",
            store.dir().display()
        ))
    })?;
    let steps = store.steps(&id)?;
    if style == Style::Json {
        let value = serde_json::json!({ "run": run, "steps": steps });
        outln!("{value}");
        return Ok(exit::SUCCESS);
    }
    outln!("run       {}", run.id);
    outln!("pipeline  {} ({})", run.pipeline_name, run.pipeline_file);
    outln!("status    {}", run.status);
    outln!("started   {}", format_rfc3339(run.started_at));
    outln!("duration  {}", took(Some(run.started_at), run.finished_at));
    for at in &run.resumed_at {
        outln!("resumed   {}", format_rfc3339(*at));
    }
    if let Some(failure) = &run.failure {
        outln!("failure   {}", first_line(failure));
    }
    outln!();
    let width = steps
        .iter()
        .map(|s| s.step_id.len())
        .max()
        .unwrap_or(4)
        .max(4);
    outln!(
        "  {:<width$}  {:<9}  {:>8}  PLUGIN",
        "STEP",
        "STATUS",
        "DURATION"
    );
    for step in &steps {
        print_step(step, width);
    }
    Ok(exit::SUCCESS)
}

fn print_step(step: &StepRecord, width: usize) {
    outln!(
        "{} {:<width$}  {:<9}  {:>8}  {}",
        symbol(step.status, color()),
        step.step_id,
        step.status.to_string(),
        took(step.started_at, step.finished_at),
        step.plugin
    );
    let indent = " ".repeat(width + 4);
    // Earlier attempts of a retried step, each with how it ended.
    for attempt in &step.attempts {
        outln!(
            "{indent}attempt {} {} after {}: {}",
            attempt.attempt,
            attempt.status,
            took(attempt.started_at, Some(attempt.finished_at)),
            first_line(attempt.reason.as_deref().unwrap_or("no reason given"))
        );
    }
    if !step.attempts.is_empty() {
        outln!(
            "{indent}attempt {} {}",
            step.attempts.len() + 1,
            step.status
        );
    }
    if let Some(reason) = &step.reason {
        for line in reason.lines() {
            outln!("{indent}{line}");
        }
    }
    // A step taken from the cache did not run; `flow explain` says why others missed.
    if let Some(flow_store::CacheUse::Hit { run, step: from }) = &step.cache {
        outln!("{indent}cached (from {run}/{from})");
    }
    for (name, value) in &step.outputs {
        outln!("{indent}{name} = {}", first_line(value));
    }
    if step.log_truncated {
        outln!("{indent}(log truncated)");
    }
}

pub(crate) fn logs(
    store: &Store,
    query: &str,
    step: Option<&str>,
    style: Style,
) -> Result<u8, Failure> {
    let id = store.resolve(query)?;
    let lines = store.logs(&id, step)?;
    let width = lines.iter().map(|l| l.step_id.len()).max().unwrap_or(0);
    // Logs are long and often piped into `head`: stop quietly when the reader
    // goes away instead of panicking in `println!`.
    let mut out = std::io::stdout().lock();
    for entry in &lines {
        let written = if style == Style::Json {
            let value = serde_json::json!({
                "step": entry.step_id, "seq": entry.line.seq, "at": entry.line.at,
                "stream": entry.line.stream, "text": entry.line.text,
            });
            writeln!(out, "{value}")
        } else {
            let marker = match entry.line.stream {
                LogStream::Stderr => "!",
                _ => "|",
            };
            if step.is_some() {
                writeln!(out, "{}", entry.line.text)
            } else {
                writeln!(
                    out,
                    "{:<width$} {marker} {}",
                    entry.step_id, entry.line.text
                )
            }
        };
        if written.is_err() {
            break;
        }
    }
    let _ = out.flush();
    Ok(exit::SUCCESS)
}

pub(crate) fn plugins(
    plugins: &[(String, Result<Arc<LoadedPlugin>, RuntimeError>)],
    style: Style,
) -> Result<u8, Failure> {
    let mut failed = false;
    for (name, loaded) in plugins {
        let plugin = match loaded {
            Ok(plugin) => plugin,
            Err(e) => {
                eprintln!("error: built-in plugin `{name}`: {e}");
                failed = true;
                continue;
            }
        };
        let d = &plugin.description;
        if style == Style::Json {
            let params: Vec<_> = d
                .params
                .iter()
                .map(|p| {
                    serde_json::json!({
                        "name": p.name, "type": p.ty.described(), "required": p.required,
                        "default": p.default, "description": p.description,
                    })
                })
                .collect();
            let value = serde_json::json!({
                "name": d.name, "version": d.version, "digest": plugin.digest.to_string(),
                "description": d.description, "params": params, "extra_params": d.extra_params,
                "outputs": d.outputs.iter().map(|o| serde_json::json!({"name": o.name, "description": o.description})).collect::<Vec<_>>(),
                "outputs_from_params": d.outputs_from_params,
                "capabilities": d.capabilities.iter().map(|c| match c {
                    Capability::FsRead => "fs-read",
                    Capability::FsWrite => "fs-write",
                    Capability::Env => "env",
                    Capability::Net => "net",
                    Capability::Exec => "exec",
                    Capability::Secrets => "secrets",
                }).collect::<Vec<_>>(),
            });
            outln!("{value}");
            continue;
        }
        outln!("{} {}  {}", d.name, d.version, plugin.digest);
        outln!("  {}", d.description);
        if !d.params.is_empty() || d.extra_params {
            outln!("  params:");
            for p in &d.params {
                let mut line = format!("    {} ({})", p.name, p.ty.described());
                if p.required {
                    line.push_str(", required");
                }
                if let Some(default) = &p.default {
                    line.push_str(&format!(", default {default}"));
                }
                outln!("{line}: {}", p.description);
            }
            if d.extra_params {
                outln!("    any other param is accepted");
            }
        }
        if !d.outputs.is_empty() || d.outputs_from_params {
            outln!("  outputs:");
            for o in &d.outputs {
                outln!("    {}: {}", o.name, o.description);
            }
            if d.outputs_from_params {
                outln!("    one per param, with the param's value");
            }
        }
        if !d.capabilities.is_empty() {
            let caps: Vec<String> = d
                .capabilities
                .iter()
                .map(|c| {
                    let what = match c {
                        Capability::FsRead => "to read a granted directory",
                        Capability::FsWrite => "to write a granted directory",
                        Capability::Env => "environment variables",
                        Capability::Net => "network access",
                        Capability::Exec => "host commands",
                        Capability::Secrets => "secrets or signing keys",
                    };
                    match c {
                        Capability::Secrets => format!("{what} (`grants.secrets`, `grants.keys`)"),
                        _ => format!("{what} (`grants.{}`)", c.grant_key()),
                    }
                })
                .collect();
            outln!("  needs: {}", caps.join(", "));
        }
        outln!();
    }
    Ok(if failed {
        exit::INTERNAL
    } else {
        exit::SUCCESS
    })
}
