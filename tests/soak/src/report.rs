//! What a soak saw: outcomes by action, and failures by class with examples.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::Action;

/// A kind of failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    /// A flow process panicked.
    Panic,
    /// A flow process did not end.
    Hang,
    /// An exit code the outcome does not give, or flow could not start.
    Unexpected,
    /// A run missing from the store.
    Lost,
    /// A run left `running` (or `interrupted`) after its process ended and, when
    /// killed, after it was resumed.
    LeftRunning,
    /// A run that ended otherwise than its pipeline ends.
    WrongEnd,
    /// A run whose provenance does not verify.
    Verify,
    /// A host command that outlived its step.
    Orphan,
}

impl Class {
    fn describe(self) -> &'static str {
        match self {
            Class::Panic => "panic",
            Class::Hang => "hang",
            Class::Unexpected => "unexpected exit",
            Class::Lost => "run lost",
            Class::LeftRunning => "left running",
            Class::WrongEnd => "wrong end",
            Class::Verify => "provenance does not verify",
            Class::Orphan => "orphan process",
        }
    }
}

/// How many examples of each class are kept.
const EXAMPLES: usize = 3;

/// The soak's report.
#[derive(Debug, Default)]
pub struct Report {
    pub seed: u64,
    pub rounds: usize,
    pub elapsed: Duration,
    /// What happened, by action.
    pub outcomes: BTreeMap<(Action, &'static str), usize>,
    /// Failures by class: how many, and the first few.
    pub failures: BTreeMap<Class, (usize, Vec<String>)>,
}

impl Report {
    pub fn new(seed: u64) -> Report {
        Report {
            seed,
            ..Report::default()
        }
    }

    pub fn outcome(&mut self, action: Action, what: &'static str) {
        *self.outcomes.entry((action, what)).or_default() += 1;
    }

    pub fn failure(&mut self, class: Class, example: String) {
        let entry = self.failures.entry(class).or_default();
        entry.0 += 1;
        if entry.1.len() < EXAMPLES {
            entry.1.push(example);
        }
    }

    /// No failure of any class.
    pub fn is_clean(&self) -> bool {
        self.failures.is_empty()
    }

    /// The report as text.
    pub fn render(&self) -> String {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "soak: {} rounds in {:.0} s (seed {})",
            self.rounds,
            self.elapsed.as_secs_f64(),
            self.seed
        );
        let _ = writeln!(text, "outcomes:");
        for ((action, what), n) in &self.outcomes {
            let _ = writeln!(text, "  {action:<9} {what:<38} {n:>6}");
        }
        if self.failures.is_empty() {
            let _ = writeln!(text, "failures: none");
        } else {
            let _ = writeln!(text, "failures by class:");
            for (class, (n, examples)) in &self.failures {
                let _ = writeln!(text, "  {:<27} {n:>6}", class.describe());
                for example in examples {
                    let _ = writeln!(text, "      e.g. {example}");
                }
            }
        }
        text
    }
}
