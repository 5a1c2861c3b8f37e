//! A running step's progress (`log.progress`): turned into [`Event::StepProgress`]
//! at most twice per 250 ms per step whatever the plugin calls with, with the
//! plugin's words made safe to print (a plugin is not trusted to write to the
//! user's terminal, nor to flood the run's events).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc::UnboundedSender;

use super::redact::Redactor;
use crate::events::Event;

/// Least time between two progress events of one step; one more, reaching its
/// total, may go out within it (so that the end of the work is seen).
const EVERY: Duration = Duration::from_millis(250);
/// Longest unit kept, in characters.
const UNIT: usize = 32;

/// Where a step's progress goes.
#[derive(Debug, Clone)]
pub struct Progress(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    events: UnboundedSender<Event>,
    run: String,
    step: String,
    redactor: Option<Arc<Redactor>>,
    last: Mutex<Thinning>,
}

/// When the last event of the window went out, and whether the window's one extra
/// event (a total reached) was spent.
#[derive(Debug, Default)]
struct Thinning {
    window: Option<Instant>,
    extra_spent: bool,
}

impl Progress {
    /// Progress of step `step` of run `run`, sent to `events`, masked by `redactor`.
    pub(crate) fn new(
        events: UnboundedSender<Event>,
        run: String,
        step: String,
        redactor: Option<Arc<Redactor>>,
    ) -> Self {
        Progress(Arc::new(Inner {
            events,
            run,
            step,
            redactor: redactor.filter(|r| !r.is_empty()),
            last: Mutex::new(Thinning::default()),
        }))
    }

    /// The plugin's report: sent on when the last went out [`EVERY`] ago or more, or
    /// when it reaches its total and the window's one extra event is not spent. A
    /// plugin that changes units or claims a total at every call gains nothing.
    pub(crate) fn report(&self, done: u64, total: Option<u64>, unit: &str) {
        self.report_at(Instant::now(), done, total, unit);
    }

    fn report_at(&self, now: Instant, done: u64, total: Option<u64>, unit: &str) {
        let unit = printable(unit);
        let unit = match &self.0.redactor {
            Some(redactor) => printable(&redactor.redact(&unit)),
            None => unit,
        };
        let finished = total.is_some_and(|t| done >= t);
        {
            let mut last = self.0.last.lock().unwrap_or_else(|p| p.into_inner());
            match last.window {
                Some(at) if now.duration_since(at) < EVERY => {
                    if !finished || last.extra_spent {
                        return;
                    }
                    last.extra_spent = true;
                }
                _ => {
                    *last = Thinning {
                        window: Some(now),
                        extra_spent: false,
                    }
                }
            }
        }
        let at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let _ = self.0.events.send(Event::StepProgress {
            run: self.0.run.clone(),
            step: self.0.step.clone(),
            done,
            total,
            unit,
            at,
        });
    }
}

/// `text` without control characters (no terminal escapes, no new lines), at most
/// [`UNIT`] characters.
fn printable(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(UNIT)
        .collect::<String>()
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Event>) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        while let Ok(event) = rx.try_recv() {
            if let Event::StepProgress { done, unit, .. } = event {
                out.push((done, unit));
            }
        }
        out
    }

    #[test]
    fn reports_are_thinned_but_the_last_one_and_a_new_unit_go_out() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let progress = Progress::new(tx, "r".into(), "s".into(), None);
        let start = Instant::now();
        for i in 0..100u64 {
            progress.report_at(start + Duration::from_millis(i * 10), i, Some(100), "files");
        }
        progress.report_at(start + Duration::from_millis(1000), 100, Some(100), "files");
        progress.report_at(start + Duration::from_millis(1250), 1, None, "bytes");
        let got = sent(&mut rx);
        // Every 250 ms over one second, the total, and a new unit 250 ms later.
        assert_eq!(
            got,
            [
                (0, "files".to_owned()),
                (25, "files".to_owned()),
                (50, "files".to_owned()),
                (75, "files".to_owned()),
                (100, "files".to_owned()),
                (1, "bytes".to_owned()),
            ]
        );
    }

    #[test]
    fn a_units_escapes_and_length_are_cut() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let progress = Progress::new(tx, "r".into(), "s".into(), None);
        progress.report(1, None, "\u{1b}[2Jfiles\nnow\u{7}");
        progress.report(2, Some(2), &"x".repeat(100));
        let got = sent(&mut rx);
        assert_eq!(got[0].1, "[2Jfilesnow");
        assert_eq!(got[1].1.len(), 32);
    }

    #[test]
    fn a_plugin_changing_units_or_claiming_totals_is_still_thinned() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let progress = Progress::new(tx, "r".into(), "s".into(), None);
        let start = Instant::now();
        // 10,000 calls in one second: every one a new unit, half of them "done".
        for i in 0..10_000u64 {
            let unit = format!("unit-{i}");
            let total = (i % 2 == 0).then_some(i);
            progress.report_at(start + Duration::from_micros(i * 100), i, total, &unit);
        }
        let sent = sent(&mut rx).len();
        // Four windows of 250 ms, at most two events each.
        assert!(sent <= 8, "{sent} events went out");
        assert!(sent >= 4, "{sent} events went out");
    }
}
