//! What the report page is made of, read from the store before it is written.

use std::collections::BTreeMap;

use flow_store::{RunRecord, StepLogLine, StepRecord};

/// What the page says about the run's provenance as a whole.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Verdict {
    /// `flow verify`'s result, in its words (none: not verified).
    pub verification: Option<Result<String, String>>,
    /// The policy checked, and each check with whether it passed.
    pub policy: Option<(String, Vec<(bool, String)>)>,
}

impl Verdict {
    /// A verification result and no policy.
    pub fn verified(result: Result<String, String>) -> Self {
        Verdict {
            verification: Some(result),
            policy: None,
        }
    }

    /// Adds a policy's checks.
    pub fn with_policy(mut self, name: String, checks: Vec<(bool, String)>) -> Self {
        self.policy = Some((name, checks));
        self
    }
}

/// A step's provenance at a glance, read from its signed envelopes.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Glance {
    pub keyid: String,
    pub materials: usize,
    pub products: usize,
    pub templates: Vec<String>,
    pub needs: Vec<String>,
}

/// Everything the page is made of.
pub(crate) struct Page {
    pub run: RunRecord,
    pub steps: Vec<StepRecord>,
    pub logs: BTreeMap<u32, Vec<StepLogLine>>,
    pub glances: BTreeMap<u32, Glance>,
    pub verdict: Verdict,
}
