//! Export and verification of a run's provenance.
//!
//! An export directory holds:
//!
//! | file                    | what                                                  |
//! |-------------------------|-------------------------------------------------------|
//! | `root.layout`           | the layout envelope, signed by the owner               |
//! | `<step>.<keyid8>.link`  | each step's in-toto link envelope                      |
//! | `<step>.intoto.json`    | each step's Statement (SLSA Provenance) envelope       |
//! | `run.json`              | the run record envelope ([`crate::chain`])             |
//! | `owner.pub`             | the owner's public key, SubjectPublicKeyInfo PEM       |
//!
//! so that `in-toto-verify --layout root.layout --verification-keys owner.pub
//! --link-dir DIR` works on it unchanged. [`verify`] checks the same things in-toto does
//! for flow's layouts (signatures, thresholds, the materials -> products chain, the
//! product rules) and what in-toto cannot (statements against links, the run chain), and
//! reports every failure rather than stopping at the first.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::chain::{RUN_PAYLOAD_TYPE, RUN_RECORD_TYPE, RunRecord};
use crate::dsse::{DsseError, Envelope, IN_TOTO_PAYLOAD_TYPE};
use crate::keys::PublicKey;
use crate::link::{LinkPayload, link_file_name};
use crate::record::StepAttestation;
use crate::statement::{SLSA_PROVENANCE_V1, STATEMENT_TYPE, step_subject_name};
use crate::time::parse_rfc3339_seconds;

/// The layout's file name in an export.
pub const LAYOUT_FILE: &str = "root.layout";
/// The run record's file name in an export.
pub const RUN_FILE: &str = "run.json";
/// The owner key's file name in an export.
pub const OWNER_KEY_FILE: &str = "owner.pub";
/// Suffix of statement files: `<step>.intoto.json`.
pub const STATEMENT_SUFFIX: &str = ".intoto.json";

/// Everything needed to verify a run, from the store or an export directory.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The layout envelope.
    pub layout: Envelope,
    /// The owner key that signed the layout (and, in flow, everything else).
    pub owner: PublicKey,
    /// The run record envelope.
    pub run: Envelope,
    /// Link envelopes by file name, in execution order when [`Bundle::ordered`].
    pub links: Vec<(String, Envelope)>,
    /// Statement envelopes by step id, in execution order when [`Bundle::ordered`].
    pub statements: Vec<(String, Envelope)>,
    /// Whether `links` and `statements` are in the order the store holds the steps (then a
    /// reordering in the store is reported); a directory has no order.
    pub ordered: bool,
    /// Files of an export that could not be read as envelopes, with the reason.
    pub unreadable: Vec<(String, String)>,
}

/// Errors writing or reading an export directory.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// A required file is not a valid envelope or key.
    #[error("{path}: {reason}")]
    Format {
        /// The path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Exports go to a new or empty directory, so no stale link is verified by mistake.
    #[error("{0}: the export directory is not empty")]
    NotEmpty(PathBuf),
}

impl Bundle {
    /// A bundle from memory, `steps` in execution order (so [`Bundle::ordered`] is true).
    pub fn new(
        layout: Envelope,
        owner: PublicKey,
        run: Envelope,
        steps: &[StepAttestation],
    ) -> Self {
        Self {
            layout,
            owner,
            run,
            links: steps
                .iter()
                .map(|s| (s.link_file_name.clone(), s.link.clone()))
                .collect(),
            statements: steps
                .iter()
                .map(|s| (s.step_id.clone(), s.statement.clone()))
                .collect(),
            ordered: true,
            unreadable: Vec::new(),
        }
    }

    /// Writes the export files to `dir`, which must not exist or be empty.
    pub fn write_dir(&self, dir: &Path) -> Result<(), ExportError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| ExportError::Io { path, source }
        };
        if let Ok(mut entries) = std::fs::read_dir(dir)
            && entries.next().is_some()
        {
            return Err(ExportError::NotEmpty(dir.to_owned()));
        }
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let write = |name: &str, bytes: &[u8]| {
            let path = dir.join(name);
            std::fs::write(&path, bytes).map_err(io(&path))
        };
        write(LAYOUT_FILE, &self.layout.to_json())?;
        write(RUN_FILE, &self.run.to_json())?;
        write(OWNER_KEY_FILE, self.owner.to_pem().as_bytes())?;
        for (name, link) in &self.links {
            write(name, &link.to_json())?;
        }
        for (step, statement) in &self.statements {
            write(&format!("{step}{STATEMENT_SUFFIX}"), &statement.to_json())?;
        }
        Ok(())
    }

    /// Reads an export directory. A missing or invalid `root.layout`, `run.json` or
    /// `owner.pub` is an error; an unreadable link or statement is kept in
    /// [`Bundle::unreadable`] and reported by [`verify`].
    pub fn read_dir(dir: &Path) -> Result<Self, ExportError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).map_err(|source| ExportError::Io { path, source })
        };
        let envelope = |name: &str| {
            Envelope::from_json(&read(name)?).map_err(|e| ExportError::Format {
                path: dir.join(name),
                reason: e.to_string(),
            })
        };
        let layout = envelope(LAYOUT_FILE)?;
        let run = envelope(RUN_FILE)?;
        let owner_pem = String::from_utf8_lossy(&read(OWNER_KEY_FILE)?).into_owned();
        let owner = PublicKey::from_pem(&owner_pem).map_err(|e| ExportError::Format {
            path: dir.join(OWNER_KEY_FILE),
            reason: e.to_string(),
        })?;
        let mut bundle = Self {
            layout,
            owner,
            run,
            links: vec![],
            statements: vec![],
            ordered: false,
            unreadable: vec![],
        };
        let entries = std::fs::read_dir(dir).map_err(|source| ExportError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| ExportError::Io {
                path: dir.to_owned(),
                source,
            })?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        for name in names {
            let statement_step = name.strip_suffix(STATEMENT_SUFFIX).map(str::to_owned);
            if !name.ends_with(".link") && statement_step.is_none() {
                continue;
            }
            match read(&name)
                .map_err(|e| e.to_string())
                .and_then(|b| Envelope::from_json(&b).map_err(|e| e.to_string()))
            {
                Ok(env) => match statement_step {
                    Some(step) => bundle.statements.push((step, env)),
                    None => bundle.links.push((name, env)),
                },
                Err(reason) => bundle.unreadable.push((name, reason)),
            }
        }
        Ok(bundle)
    }
}

/// Writes `bundle` to `dir` (see [`Bundle::write_dir`]).
pub fn export(dir: &Path, bundle: &Bundle) -> Result<(), ExportError> {
    bundle.write_dir(dir)
}

/// What [`verify`] trusts.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// The owner key the user expects. Without it, the bundle's own `owner.pub` is
    /// trusted, which proves integrity but not who signed.
    pub trusted_owner: Option<PublicKey>,
    /// "Now" for the layout's expiry, unix seconds.
    pub now_unix_s: u64,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            trusted_owner: None,
            now_unix_s: now.as_secs(),
        }
    }
}

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

/// The result of [`verify`]: all holds exactly when `failures` is empty.
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

/// A layout step as parsed.
struct Step {
    name: String,
    pubkeys: Vec<String>,
    threshold: usize,
    materials: Vec<Vec<String>>,
    products: Vec<Vec<String>>,
}

/// Verifies `bundle`; see the module documentation for what is checked.
pub fn verify(bundle: &Bundle, options: &VerifyOptions) -> Report {
    let mut report = Report::default();
    let failures = &mut report.failures;
    for (file, reason) in &bundle.unreadable {
        failures.push(Failure::Malformed {
            file: file.clone(),
            reason: reason.clone(),
        });
    }

    // 1. The owner and the layout.
    let owner = match &options.trusted_owner {
        Some(trusted) if trusted != &bundle.owner => {
            failures.push(Failure::UntrustedOwner {
                expected: trusted.keyid().into(),
                found: bundle.owner.keyid().into(),
            });
            trusted.clone()
        }
        Some(trusted) => trusted.clone(),
        None => bundle.owner.clone(),
    };
    let Some((keys, steps)) = check_layout(bundle, &owner, options, failures) else {
        return report;
    };

    // 2. Links: signatures and thresholds.
    let mut links: BTreeMap<&str, (String, LinkPayload)> = BTreeMap::new();
    let mut claimed: BTreeSet<&str> = BTreeSet::new();
    for step in &steps {
        let mut valid = Vec::new();
        let mut looked_for = Vec::new();
        for keyid in &step.pubkeys {
            let file = link_file_name(&step.name, keyid);
            let Some((name, env)) = bundle.links.iter().find(|(name, _)| *name == file) else {
                looked_for.push(file);
                continue;
            };
            claimed.insert(name.as_str());
            let allowed: Vec<PublicKey> = keys
                .iter()
                .filter(|k| step.pubkeys.iter().any(|p| p == k.keyid()))
                .cloned()
                .collect();
            if check_envelope(&file, env, &allowed, IN_TOTO_PAYLOAD_TYPE, failures).is_some() {
                match LinkPayload::parse(&env.payload) {
                    Ok(payload) if payload.type_ == "link" && payload.name == step.name => {
                        valid.push((file, payload))
                    }
                    Ok(payload) => failures.push(Failure::Malformed {
                        file,
                        reason: format!(
                            "a {:?} document named {:?}, expected the link of step {:?}",
                            payload.type_, payload.name, step.name
                        ),
                    }),
                    Err(e) => failures.push(Failure::Malformed {
                        file,
                        reason: format!("not an in-toto link: {e}"),
                    }),
                }
            }
        }
        if valid.len() < step.threshold {
            failures.push(Failure::MissingLink {
                step: step.name.clone(),
                file: if looked_for.is_empty() {
                    format!("{} valid link(s)", step.threshold)
                } else {
                    looked_for.join(", ")
                },
            });
        }
        if let Some(first) = valid.into_iter().next() {
            links.insert(step.name.as_str(), first);
        }
    }
    for (file, _) in &bundle.links {
        if !claimed.contains(file.as_str()) {
            failures.push(Failure::ExtraFile { file: file.clone() });
        }
    }

    // 3. Artifact rules: the materials -> products chain.
    for step in &steps {
        let Some((file, link)) = links.get(step.name.as_str()) else {
            continue;
        };
        check_rules(step, file, link, &links, failures);
        report.steps.push(StepSummary {
            step: step.name.clone(),
            outcome: link.outcome().map(str::to_owned),
            materials: link.materials.len(),
            products: link.products.len(),
        });
    }

    // 4. The run record.
    let run = check_run(bundle, &owner, &keys, &steps, failures);

    // 5. Statements against links and the run.
    let run_id = run.as_ref().map(|r| r.run_id.as_str());
    for (step_id, env) in &bundle.statements {
        let file = format!("{step_id}{STATEMENT_SUFFIX}");
        let Some(step) = steps.iter().find(|s| &s.name == step_id) else {
            failures.push(Failure::ExtraFile { file });
            continue;
        };
        let allowed: Vec<PublicKey> = keys
            .iter()
            .filter(|k| step.pubkeys.iter().any(|p| p == k.keyid()))
            .cloned()
            .collect();
        if check_envelope(&file, env, &allowed, IN_TOTO_PAYLOAD_TYPE, failures).is_none() {
            continue;
        }
        if let Some((link_file, link)) = links.get(step_id.as_str()) {
            let link_env = bundle
                .links
                .iter()
                .find(|(n, _)| n == link_file)
                .map(|(_, e)| e);
            check_statement(step_id, &file, env, link, link_env, run_id, failures);
        }
    }
    for step in links.keys() {
        if !bundle.statements.iter().any(|(s, _)| s == step) {
            failures.push(Failure::MissingStatement {
                step: (*step).to_owned(),
                file: format!("{step}{STATEMENT_SUFFIX}"),
            });
        }
    }
    report
}

/// Verifies and parses the layout; `None` when nothing further can be checked.
fn check_layout(
    bundle: &Bundle,
    owner: &PublicKey,
    options: &VerifyOptions,
    failures: &mut Vec<Failure>,
) -> Option<(Vec<PublicKey>, Vec<Step>)> {
    check_envelope(
        LAYOUT_FILE,
        &bundle.layout,
        std::slice::from_ref(owner),
        IN_TOTO_PAYLOAD_TYPE,
        failures,
    )?;
    let malformed = |reason: String| Failure::Malformed {
        file: LAYOUT_FILE.into(),
        reason,
    };
    let layout: Value = match serde_json::from_slice(&bundle.layout.payload) {
        Ok(v) => v,
        Err(e) => {
            failures.push(malformed(format!("not JSON: {e}")));
            return None;
        }
    };
    if layout["_type"] != "layout" {
        failures.push(malformed("not an in-toto layout".into()));
        return None;
    }
    match layout["expires"]
        .as_str()
        .map(|t| (t, parse_rfc3339_seconds(t)))
    {
        Some((_, Some(expires))) if expires > options.now_unix_s => {}
        Some((text, Some(_))) => failures.push(Failure::LayoutExpired {
            expires: text.to_owned(),
        }),
        _ => failures.push(malformed("expires is not YYYY-MM-DDTHH:MM:SSZ".into())),
    }
    let mut keys = Vec::new();
    for (keyid, key) in layout["keys"].as_object().into_iter().flatten() {
        let public = key["keyval"]["public"]
            .as_str()
            .and_then(|h| hex::decode(h).ok())
            .and_then(|b| <[u8; 32]>::try_from(b).ok());
        match public.map(|b| PublicKey::from_bytes(&b)) {
            Some(Ok(k))
                if k.keyid() == keyid
                    && key["keytype"] == "ed25519"
                    && key["scheme"] == "ed25519" =>
            {
                keys.push(k)
            }
            Some(Ok(k)) => failures.push(malformed(format!(
                "key {keyid} is not the ed25519 key with that id (its id is {})",
                k.keyid()
            ))),
            _ => failures.push(malformed(format!(
                "key {keyid} is not an ed25519 public key"
            ))),
        }
    }
    let rules = |v: &Value| -> Vec<Vec<String>> {
        v.as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                r.as_array()
                    .into_iter()
                    .flatten()
                    .map(|s| s.as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .collect()
    };
    let mut steps = Vec::new();
    for step in layout["steps"].as_array().into_iter().flatten() {
        let Some(name) = step["name"].as_str() else {
            failures.push(malformed("a step without a name".into()));
            continue;
        };
        if !crate::layout::valid_step_name(name) {
            failures.push(malformed(format!(
                "step name {name:?} is not a safe file name"
            )));
            continue;
        }
        steps.push(Step {
            name: name.to_owned(),
            pubkeys: step["pubkeys"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|k| k.as_str().map(str::to_owned))
                .collect(),
            threshold: step["threshold"]
                .as_u64()
                .and_then(|t| usize::try_from(t).ok())
                .unwrap_or(1)
                .max(1),
            materials: rules(&step["expected_materials"]),
            products: rules(&step["expected_products"]),
        });
    }
    Some((keys, steps))
}

/// Checks an envelope's type and signature; `Some(key)` when valid.
fn check_envelope<'k>(
    file: &str,
    env: &Envelope,
    keys: &'k [PublicKey],
    payload_type: &str,
    failures: &mut Vec<Failure>,
) -> Option<&'k PublicKey> {
    let key = match env.verify(keys) {
        Ok(key) => key,
        Err(error) => {
            failures.push(Failure::Signature {
                file: file.to_owned(),
                error,
            });
            return None;
        }
    };
    if env.payload_type != payload_type {
        failures.push(Failure::PayloadType {
            file: file.into(),
            expected: payload_type.into(),
            found: env.payload_type.clone(),
        });
        return None;
    }
    Some(key)
}

type Artifacts = BTreeMap<String, BTreeMap<String, String>>;

/// Applies a step's material and product rules as in-toto does: each rule consumes
/// artifacts from a queue; DISALLOW fails on what is left that matches.
fn check_rules(
    step: &Step,
    file: &str,
    link: &LinkPayload,
    links: &BTreeMap<&str, (String, LinkPayload)>,
    failures: &mut Vec<Failure>,
) {
    for (is_materials, rules, artifacts) in [
        (true, &step.materials, &link.materials),
        (false, &step.products, &link.products),
    ] {
        let mut queue: BTreeSet<&String> = artifacts.keys().collect();
        let mut matched_from: Vec<&str> = Vec::new();
        for rule in rules {
            let words: Vec<&str> = rule.iter().map(String::as_str).collect();
            let unsupported = || Failure::UnsupportedRule {
                step: step.name.clone(),
                rule: format!("{rule:?}"),
            };
            let consumed: Vec<&String> = match words.as_slice() {
                [
                    "MATCH",
                    pattern,
                    "WITH",
                    which @ ("MATERIALS" | "PRODUCTS"),
                    "FROM",
                    other,
                ] => {
                    matched_from.push(other);
                    let Some((_, source)) = links.get(other) else {
                        continue;
                    };
                    let dest: &Artifacts = if *which == "MATERIALS" {
                        &source.materials
                    } else {
                        &source.products
                    };
                    queue
                        .iter()
                        .copied()
                        .filter(|a| fnmatch(pattern, a) && dest.get(*a) == artifacts.get(*a))
                        .collect()
                }
                ["ALLOW", pattern] => queue
                    .iter()
                    .copied()
                    .filter(|a| fnmatch(pattern, a))
                    .collect(),
                ["CREATE", pattern] => queue
                    .iter()
                    .copied()
                    .filter(|a| {
                        fnmatch(pattern, a) && !is_materials && !link.materials.contains_key(*a)
                    })
                    .collect(),
                ["MODIFY", pattern] => queue
                    .iter()
                    .copied()
                    .filter(|a| {
                        fnmatch(pattern, a)
                            && link.materials.contains_key(*a)
                            && link.products.contains_key(*a)
                            && link.materials.get(*a) != link.products.get(*a)
                    })
                    .collect(),
                ["DELETE", pattern] => queue
                    .iter()
                    .copied()
                    .filter(|a| {
                        fnmatch(pattern, a) && is_materials && !link.products.contains_key(*a)
                    })
                    .collect(),
                ["REQUIRE", pattern] => {
                    if !artifacts.keys().any(|a| a == pattern) {
                        failures.push(Failure::Malformed {
                            file: file.to_owned(),
                            reason: format!("required artifact {pattern} is not recorded"),
                        });
                    }
                    continue;
                }
                ["DISALLOW", pattern] => {
                    for artifact in queue.iter().filter(|a| fnmatch(pattern, a)) {
                        let digest = sha256_of(artifacts.get(*artifact));
                        failures.push(if is_materials {
                            disallowed_material(step, file, artifact, &digest, &matched_from, links)
                        } else {
                            Failure::DisallowedProduct {
                                step: step.name.clone(),
                                file: file.to_owned(),
                                artifact: (*artifact).clone(),
                                digest,
                            }
                        });
                    }
                    continue;
                }
                _ => {
                    failures.push(unsupported());
                    continue;
                }
            };
            for artifact in consumed {
                queue.remove(artifact);
            }
        }
    }
}

fn disallowed_material(
    step: &Step,
    file: &str,
    artifact: &str,
    digest: &str,
    matched_from: &[&str],
    links: &BTreeMap<&str, (String, LinkPayload)>,
) -> Failure {
    for producer in matched_from {
        if let Some((_, link)) = links.get(producer)
            && let Some(produced) = link.products.get(artifact)
        {
            return Failure::MaterialMismatch {
                step: step.name.clone(),
                file: file.to_owned(),
                artifact: artifact.to_owned(),
                producer: (*producer).to_owned(),
                expected: sha256_of(Some(produced)),
                found: digest.to_owned(),
            };
        }
    }
    Failure::DisallowedMaterial {
        step: step.name.clone(),
        file: file.to_owned(),
        artifact: artifact.to_owned(),
        digest: digest.to_owned(),
    }
}

fn sha256_of(hashes: Option<&BTreeMap<String, String>>) -> String {
    hashes
        .and_then(|h| h.get("sha256"))
        .cloned()
        .unwrap_or_else(|| "(none)".into())
}

/// Python's `fnmatch.fnmatch` on POSIX: `*` (also across `/`), `?`, `[seq]`, `[!seq]`.
fn fnmatch(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
            continue;
        }
        if pi < p.len()
            && let Some((matched, width)) = match_one(&p[pi..], n[ni])
            && matched
        {
            pi += width;
            ni += 1;
            continue;
        }
        match star {
            Some((sp, sn)) => {
                pi = sp + 1;
                ni = sn + 1;
                star = Some((sp, sn + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Whether the pattern element at the start of `p` matches `c`, and its width.
fn match_one(p: &[char], c: char) -> Option<(bool, usize)> {
    match p.first()? {
        '?' => Some((true, 1)),
        '[' => {
            let mut i = 1;
            let negate = matches!(p.get(i), Some('!'));
            if negate {
                i += 1;
            }
            let start = i;
            let mut hit = false;
            while i < p.len() && (p[i] != ']' || i == start) {
                if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
                    hit |= p[i] <= c && c <= p[i + 2];
                    i += 3;
                } else {
                    hit |= p[i] == c;
                    i += 1;
                }
            }
            if i >= p.len() {
                // No closing bracket: a literal '['.
                return Some((c == '[', 1));
            }
            Some((hit != negate, i + 1))
        }
        &literal => Some((literal == c, 1)),
    }
}

/// Verifies the run record and compares it with the bundle.
fn check_run(
    bundle: &Bundle,
    owner: &PublicKey,
    keys: &[PublicKey],
    steps: &[Step],
    failures: &mut Vec<Failure>,
) -> Option<RunRecord> {
    let mut signers = vec![owner.clone()];
    signers.extend(keys.iter().filter(|k| *k != owner).cloned());
    check_envelope(RUN_FILE, &bundle.run, &signers, RUN_PAYLOAD_TYPE, failures)?;
    let record = match RunRecord::parse(&bundle.run.payload) {
        Ok(r) if r.type_ == RUN_RECORD_TYPE => r,
        Ok(r) => {
            failures.push(Failure::Malformed {
                file: RUN_FILE.into(),
                reason: format!("_type is {:?}", r.type_),
            });
            return None;
        }
        Err(e) => {
            failures.push(Failure::Malformed {
                file: RUN_FILE.into(),
                reason: e.to_string(),
            });
            return None;
        }
    };
    let layout_sha = bundle.layout.sha256();
    if record.layout_sha256 != layout_sha {
        failures.push(Failure::LayoutChanged {
            expected: record.layout_sha256.clone(),
            found: layout_sha,
        });
    }
    let mut seen = BTreeSet::new();
    for entry in &record.steps {
        if !seen.insert(entry.step.as_str()) {
            failures.push(Failure::Malformed {
                file: RUN_FILE.into(),
                reason: format!("step {} listed twice", entry.step),
            });
            continue;
        }
        let statement = bundle.statements.iter().find(|(s, _)| *s == entry.step);
        let link = steps
            .iter()
            .find(|s| s.name == entry.step)
            .into_iter()
            .flat_map(|s| s.pubkeys.iter().map(|k| link_file_name(&s.name, k)))
            .find_map(|file| bundle.links.iter().find(|(n, _)| *n == file));
        let (Some((_, statement)), Some((link_file, link))) = (statement, link) else {
            failures.push(Failure::StepRemoved {
                step: entry.step.clone(),
            });
            continue;
        };
        for (file, env, expected) in [
            (
                format!("{}{STATEMENT_SUFFIX}", entry.step),
                statement,
                &entry.statement_sha256,
            ),
            (link_file.clone(), link, &entry.link_sha256),
        ] {
            let found = env.sha256();
            if &found != expected {
                failures.push(Failure::EnvelopeChanged {
                    step: entry.step.clone(),
                    file,
                    expected: expected.clone(),
                    found,
                });
            }
        }
    }
    // Every step with documents must be chained.
    let documented: BTreeSet<&str> = bundle.statements.iter().map(|(s, _)| s.as_str()).collect();
    for step in &documented {
        if !seen.contains(step) {
            failures.push(Failure::StepNotInRun {
                step: (*step).to_owned(),
            });
        }
    }
    // Execution order respects needs (as the layout's MATCH rules state them).
    let position: BTreeMap<&str, usize> = record
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.step.as_str(), i))
        .collect();
    for step in steps {
        let Some(&at) = position.get(step.name.as_str()) else {
            continue;
        };
        for rule in &step.materials {
            if let [m, _, w, _, f, need] = rule.as_slice()
                && m == "MATCH"
                && w == "WITH"
                && f == "FROM"
                && position.get(need.as_str()).is_none_or(|&p| p > at)
            {
                failures.push(Failure::OrderViolatesNeeds {
                    step: step.name.clone(),
                    needs: need.clone(),
                });
            }
        }
    }
    // The store's order must be the record's.
    if bundle.ordered {
        let stored: Vec<&str> = bundle
            .statements
            .iter()
            .map(|(s, _)| s.as_str())
            .filter(|s| position.contains_key(s))
            .collect();
        let recorded: Vec<&str> = record
            .steps
            .iter()
            .map(|s| s.step.as_str())
            .filter(|s| documented.contains(s))
            .collect();
        for (found_position, step) in stored.iter().enumerate() {
            if let Some(expected_position) = recorded.iter().position(|s| s == step)
                && expected_position != found_position
            {
                failures.push(Failure::Reordered {
                    step: (*step).to_owned(),
                    expected_position,
                    found_position,
                });
            }
        }
    }
    Some(record)
}

/// Compares a statement with its step's link and the run.
fn check_statement(
    step: &str,
    file: &str,
    env: &Envelope,
    link: &LinkPayload,
    link_env: Option<&Envelope>,
    run_id: Option<&str>,
    failures: &mut Vec<Failure>,
) {
    let mut differs = |what: String| {
        failures.push(Failure::StatementMismatch {
            step: step.into(),
            file: file.into(),
            what,
        })
    };
    let statement: Value = match serde_json::from_slice(&env.payload) {
        Ok(v) => v,
        Err(e) => return differs(format!("not JSON: {e}")),
    };
    if statement["_type"] != STATEMENT_TYPE || statement["predicateType"] != SLSA_PROVENANCE_V1 {
        return differs("not an in-toto Statement v1 with a SLSA Provenance v1 predicate".into());
    }
    let pairs = |v: &Value, skip_uri: bool| -> BTreeMap<String, String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter(|d| !(skip_uri && d.get("uri").is_some()))
            .map(|d| {
                (
                    d["name"].as_str().unwrap_or_default().to_owned(),
                    d["digest"]["sha256"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                )
            })
            .collect()
    };
    let flat = |a: &Artifacts| -> BTreeMap<String, String> {
        a.iter()
            .map(|(k, v)| (k.clone(), sha256_of(Some(v))))
            .collect()
    };
    let subject = pairs(&statement["subject"], false);
    let expected_subject = if link.products.is_empty() {
        let run = run_id.unwrap_or_default();
        let digest = link_env
            .map(|e| hex::encode(Sha256::digest(&e.payload)))
            .unwrap_or_default();
        [(step_subject_name(run, step), digest)]
            .into_iter()
            .collect()
    } else {
        flat(&link.products)
    };
    if subject != expected_subject {
        differs(describe_difference("subject", &expected_subject, &subject));
    }
    let predicate = &statement["predicate"];
    let materials = pairs(&predicate["buildDefinition"]["resolvedDependencies"], true);
    let expected_materials = flat(&link.materials);
    if materials != expected_materials {
        differs(describe_difference(
            "resolvedDependencies",
            &expected_materials,
            &materials,
        ));
    }
    if let Some(run) = run_id {
        let expected = format!("{run}/{step}");
        let found = predicate["runDetails"]["metadata"]["invocationId"]
            .as_str()
            .unwrap_or_default();
        if found != expected {
            differs(format!("invocationId is {found:?}, expected {expected:?}"));
        }
    }
    let outcome = predicate["runDetails"]["byproducts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|b| b["name"] == "outcome")
        .and_then(|b| b["annotations"]["outcome"].as_str());
    if outcome != link.outcome() {
        differs(format!(
            "outcome is {outcome:?}, the link says {:?}",
            link.outcome()
        ));
    }
}

fn describe_difference(
    what: &str,
    expected: &BTreeMap<String, String>,
    found: &BTreeMap<String, String>,
) -> String {
    for (name, digest) in expected {
        match found.get(name) {
            None => return format!("{what} lacks {name} (sha256 {digest}) that the link records"),
            Some(f) if f != digest => {
                return format!(
                    "{what} has {name} with sha256 {f}, the link records sha256 {digest}"
                );
            }
            Some(_) => {}
        }
    }
    match found.keys().find(|k| !expected.contains_key(*k)) {
        Some(extra) => format!("{what} has {extra}, which the link does not record"),
        None => format!("{what} differs from the link"),
    }
}

#[cfg(test)]
mod tests {
    use super::fnmatch;

    #[test]
    fn fnmatch_is_pythons() {
        for (p, n, m) in [
            ("*", "a/b/c", true),
            ("/srv/assets/*", "/srv/assets/x/y.png", true),
            ("/srv/assets/*", "/srv/other", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("[ab]x", "bx", true),
            ("[!ab]x", "bx", false),
            ("[a-c]", "b", true),
            ("x[", "x[", true),
            ("*.rs", "src/main.rs", true),
            ("", "", true),
            ("", "a", false),
        ] {
            assert_eq!(fnmatch(p, n), m, "{p} vs {n}");
        }
    }
}
