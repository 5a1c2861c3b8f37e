//! Policies that `flow verify RUN --policy FILE` checks a run against
//! (`docs/templates.md`, "Provenance and policy"):
//!
//! ```yaml
//! policy: 1
//! template: acme/secure-release      # the run must come from this template...
//! versions: ^1                       # ...at one of these versions
//! approved-plugins:                  # plugin name -> digests allowed
//!   scan: [sha256:<64 hex>]
//! require: [scan, sign]              # plugins sealed steps of the template must run
//! before: [publish]                  # plugins that must come after every sealed step
//! ```
//!
//! Three parts, so that the decision is a pure function:
//! - [`Policy::parse`] reads the policy file, reporting problems at `file:line:column`;
//! - [`RunFacts::from_statements`] reads what the run's signed (and verified) statements
//!   record; [`TemplateLocator`] finds the templates of the recorded chain by digest and
//!   [`flow_pipeline::read_template_declaration`] reads their sealed steps;
//! - [`evaluate`] decides, one [`Check`] per rule and step.
//!
//! A plugin name of the policy names a step when it is the name of the step's plugin
//! (the recorded reference without `@version` or `@sha256:` pin; for a `.wasm` file, its
//! file name without `.wasm`), or the interface the step implements.

mod evaluate;
mod facts;
mod locate;
mod read;
#[cfg(test)]
mod tests;

pub use evaluate::{Check, Evaluation, Rule, evaluate};
pub use facts::RunFacts;
#[cfg(test)]
pub(crate) use facts::StepFact;
pub use locate::TemplateLocator;
pub use read::Policy;
