//! What [`crate::verify()`] found: one [`Failure`] per thing that does not hold, in a
//! [`Report`] with the steps that verified.

use std::fmt;

use crate::dsse::DsseError;

use super::bundle::{LAYOUT_FILE, OWNER_KEY_FILE, RUN_FILE};

/// One thing that does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// `owner.pub` is not the key the user trusts.
    UntrustedOwner {
        /// The trusted key's id.
        expected: String,
        /// The bundle's key id.
        found: String,
    },
    /// An envelope's signature does not verify.
    Signature {
        /// The file (or step document) concerned.
        file: String,
        /// What failed, naming the key.
        error: DsseError,
    },
    /// An envelope has the wrong payload type.
    PayloadType {
        /// The file.
        file: String,
        /// The type it must have.
        expected: String,
        /// The type it has.
        found: String,
    },
    /// A document is not what it should be.
    Malformed {
        /// The file.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// The layout's `expires` has passed.
    LayoutExpired {
        /// The expiry.
        expires: String,
    },
    /// A layout step has fewer valid links than its threshold.
    MissingLink {
        /// The step.
        step: String,
        /// The file(s) looked for.
        file: String,
    },
    /// A link or statement for no step of the layout.
    ExtraFile {
        /// The file.
        file: String,
    },
    /// A material of `step` that a step it needs produced with another digest: the file
    /// was changed between the two steps, or one of the records was.
    MaterialMismatch {
        /// The step that read it.
        step: String,
        /// The link file of that step.
        file: String,
        /// The artifact.
        artifact: String,
        /// The step that produced it.
        producer: String,
        /// The digest `producer` recorded.
        expected: String,
        /// The digest `step` read.
        found: String,
    },
    /// A material that no step `step` needs produced and no rule allows.
    DisallowedMaterial {
        /// The step.
        step: String,
        /// Its link file.
        file: String,
        /// The artifact.
        artifact: String,
        /// Its digest.
        digest: String,
    },
    /// A product the layout's rules reject (e.g. recorded as produced but unchanged).
    DisallowedProduct {
        /// The step.
        step: String,
        /// Its link file.
        file: String,
        /// The artifact.
        artifact: String,
        /// Its digest.
        digest: String,
    },
    /// A rule this verifier does not implement (use `in-toto-verify`).
    UnsupportedRule {
        /// The step.
        step: String,
        /// The rule.
        rule: String,
    },
    /// A statement disagrees with its step's link or the run.
    StatementMismatch {
        /// The step.
        step: String,
        /// The statement file.
        file: String,
        /// What differs.
        what: String,
    },
    /// A step has a link but no statement.
    MissingStatement {
        /// The step.
        step: String,
        /// The file looked for.
        file: String,
    },
    /// The run record names a step whose documents are not there.
    StepRemoved {
        /// The step.
        step: String,
    },
    /// A step's documents are there but the run record does not list it.
    StepNotInRun {
        /// The step.
        step: String,
    },
    /// A step envelope differs from the one the run record chained.
    EnvelopeChanged {
        /// The step.
        step: String,
        /// The file.
        file: String,
        /// The sha256 in the run record.
        expected: String,
        /// The envelope's sha256.
        found: String,
    },
    /// The layout differs from the one the run record names.
    LayoutChanged {
        /// The sha256 in the run record.
        expected: String,
        /// The layout envelope's sha256.
        found: String,
    },
    /// Steps are stored in another order than the run record's.
    Reordered {
        /// The step.
        step: String,
        /// Its position in the run record (0-based).
        expected_position: usize,
        /// Its position in the store.
        found_position: usize,
    },
    /// The run record lists a step before a step it needs.
    OrderViolatesNeeds {
        /// The step.
        step: String,
        /// The needed step that comes later or not at all.
        needs: String,
    },
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UntrustedOwner { expected, found } => {
                write!(
                    f,
                    "{OWNER_KEY_FILE}: owner key {found} is not the trusted key {expected}"
                )
            }
            Self::Signature { file, error } => write!(f, "{file}: {error}"),
            Self::PayloadType {
                file,
                expected,
                found,
            } => {
                write!(f, "{file}: payload type {found:?}, expected {expected:?}")
            }
            Self::Malformed { file, reason } => write!(f, "{file}: {reason}"),
            Self::LayoutExpired { expires } => {
                write!(f, "{LAYOUT_FILE}: the layout expired at {expires}")
            }
            Self::MissingLink { step, file } => write!(f, "step {step}: missing link {file}"),
            Self::ExtraFile { file } => write!(f, "{file}: belongs to no step of the layout"),
            Self::MaterialMismatch {
                step,
                file,
                artifact,
                producer,
                expected,
                found,
            } => write!(
                f,
                "step {step} ({file}): material {artifact} has sha256 {found}, but step {producer} produced sha256 {expected}"
            ),
            Self::DisallowedMaterial {
                step,
                file,
                artifact,
                digest,
            } => write!(
                f,
                "step {step} ({file}): material {artifact} (sha256 {digest}) was produced by no step it needs and is not allowed"
            ),
            Self::DisallowedProduct {
                step,
                file,
                artifact,
                digest,
            } => write!(
                f,
                "step {step} ({file}): product {artifact} (sha256 {digest}) is neither created nor modified by the step"
            ),
            Self::UnsupportedRule { step, rule } => {
                write!(
                    f,
                    "step {step}: rule {rule} is not supported here; check with in-toto-verify"
                )
            }
            Self::StatementMismatch { step, file, what } => {
                write!(f, "step {step} ({file}): {what}")
            }
            Self::MissingStatement { step, file } => {
                write!(f, "step {step}: missing statement {file}")
            }
            Self::StepRemoved { step } => {
                write!(
                    f,
                    "step {step}: listed in {RUN_FILE} but its link or statement is missing (step removed)"
                )
            }
            Self::StepNotInRun { step } => write!(
                f,
                "step {step}: has documents but is not listed in {RUN_FILE}"
            ),
            Self::EnvelopeChanged {
                step,
                file,
                expected,
                found,
            } => write!(
                f,
                "step {step} ({file}): envelope sha256 is {found}, but {RUN_FILE} chained {expected}"
            ),
            Self::LayoutChanged { expected, found } => {
                write!(
                    f,
                    "{LAYOUT_FILE}: sha256 is {found}, but {RUN_FILE} names {expected}"
                )
            }
            Self::Reordered {
                step,
                expected_position,
                found_position,
            } => write!(
                f,
                "step {step}: stored at position {found_position}, but {RUN_FILE} has it at {expected_position} (steps reordered)"
            ),
            Self::OrderViolatesNeeds { step, needs } => {
                write!(
                    f,
                    "step {step}: {RUN_FILE} lists it before step {needs}, which it needs"
                )
            }
        }
    }
}

/// A step as verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepSummary {
    /// The step.
    pub step: String,
    /// The outcome its link records.
    pub outcome: Option<String>,
    /// How many materials and products its link records.
    pub materials: usize,
    /// How many products.
    pub products: usize,
}

/// The result of [`verify`](crate::verify()): all holds exactly when `failures` is empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Every failure found, in the order checked.
    pub failures: Vec<Failure>,
    /// The layout's steps that had a valid link, in layout order.
    pub steps: Vec<StepSummary>,
}

impl Report {
    /// Whether everything verified.
    pub fn is_ok(&self) -> bool {
        self.failures.is_empty()
    }
}

/// One line per failure, or a one-line summary of the steps when all holds.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.failures.is_empty() {
            let steps: Vec<String> = self
                .steps
                .iter()
                .map(|s| {
                    format!(
                        "{} ({})",
                        s.step,
                        s.outcome.as_deref().unwrap_or("no outcome")
                    )
                })
                .collect();
            return write!(f, "verified: {}", steps.join(", "));
        }
        for failure in &self.failures {
            writeln!(f, "{failure}")?;
        }
        Ok(())
    }
}
