//! Deciding whether a run holds to a policy: one check per rule and step.

use super::facts::{RunFacts, StepFact};
use super::read::Policy;
use std::collections::{HashMap, HashSet};
use std::fmt;

use flow_provenance::{Outcome, TemplateRef};

/// The rule a [`Check`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// The run was resolved from the policy's template, at an accepted version.
    Template,
    /// The declaration of a template of the chain was found, with its digest.
    Declaration,
    /// A sealed step is recorded as such and succeeded.
    Sealed,
    /// A sealed step ran an approved plugin digest.
    Approved,
    /// A required plugin ran in a sealed step that succeeded.
    Required,
    /// A `before` step started after the sealed steps finished.
    Before,
}

impl Rule {
    /// A word for the rule: `template`, `declared`, `sealed`, `approved`, `required`,
    /// `before`.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Template => "template",
            Rule::Declaration => "declared",
            Rule::Sealed => "sealed",
            Rule::Approved => "approved",
            Rule::Required => "required",
            Rule::Before => "before",
        }
    }
}

/// One rule checked for one step (or for the run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Whether it holds.
    pub ok: bool,
    /// The rule.
    pub rule: Rule,
    /// The step concerned, if any.
    pub step: Option<String>,
    /// What holds or not, naming the step, plugin and digest.
    pub message: String,
}

/// `ok    sealed    ...` or `FAIL  sealed    ...`.
impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = if self.ok { "ok" } else { "FAIL" };
        write!(f, "{mark:<5} {:<9} {}", self.rule.as_str(), self.message)
    }
}

/// The result of [`evaluate`]: the policy holds when no check failed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evaluation {
    /// Every check, in the order made.
    pub checks: Vec<Check>,
}

impl Evaluation {
    /// Whether the policy holds.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// How many checks failed.
    pub fn failures(&self) -> usize {
        self.checks.iter().filter(|c| !c.ok).count()
    }

    fn push(&mut self, ok: bool, rule: Rule, step: Option<&str>, message: String) {
        self.checks.push(Check {
            ok,
            rule,
            step: step.map(str::to_owned),
            message,
        });
    }
}

/// Checks `run` against `policy`. `sealed_steps` gives the ids of the steps a template of
/// the run's chain declares sealed, read from the template itself (see
/// [`TemplateLocator`]), or why they cannot be known.
///
/// The policy holds when the run's steps all record the same template chain, holding
/// `policy.template` at a version `policy.versions` accepts; every sealed step of that
/// template and of the templates above it has a record, recorded as declared by one of
/// these templates and sealed, that succeeded, with one of the digests `approved-plugins` lists
/// for its plugin; every plugin of `require` was run by such a sealed step that succeeded;
/// and every step of a `before` plugin that ran started after each sealed
/// step (that is not itself of a `before` plugin) finished: at a later millisecond, or at
/// the same one when it needs that step, directly or not.
pub fn evaluate(
    policy: &Policy,
    run: &RunFacts,
    sealed_steps: &mut dyn FnMut(&TemplateRef) -> Result<Vec<String>, String>,
) -> Evaluation {
    let mut eval = Evaluation::default();
    let Some((chain, index)) = check_template(policy, run, &mut eval) else {
        return eval;
    };

    // The sealed steps of the policy's template and of every template above it.
    let mut sealed: Vec<(String, &TemplateRef)> = Vec::new();
    for template in &chain[index..] {
        match sealed_steps(template) {
            Ok(ids) => {
                let list = if ids.is_empty() {
                    "none".to_owned()
                } else {
                    ids.join(", ")
                };
                eval.push(
                    true,
                    Rule::Declaration,
                    None,
                    format!(
                        "template {} (sha256 {}) seals steps: {list}",
                        template.name(),
                        template.sha256
                    ),
                );
                for id in ids {
                    if !sealed.iter().any(|(s, _)| *s == id) {
                        sealed.push((id, template));
                    }
                }
            }
            Err(reason) => eval.push(false, Rule::Declaration, None, reason),
        }
    }

    let above: Vec<String> = chain[index..].iter().map(TemplateRef::name).collect();
    let by_id: HashMap<&str, &StepFact> = run.steps.iter().map(|s| (s.id.as_str(), s)).collect();
    let mut recorded: Vec<&StepFact> = Vec::new();
    for (id, template) in &sealed {
        let template_name = template.name();
        let Some(step) = by_id.get(id.as_str()).copied() else {
            eval.push(
                false,
                Rule::Sealed,
                Some(id),
                format!(
                    "sealed step `{id}` of {template_name} has no record in run {}",
                    run.run_id
                ),
            );
            continue;
        };
        recorded.push(step);
        let origin = step.template.as_ref();
        let declared_by = origin.and_then(|o| o.declared_by.as_deref());
        // Declared by a template at or above the policy's: a template may seal a step it
        // inherits.
        let from_above = declared_by.is_some_and(|by| above.iter().any(|t| *t == by));
        if !from_above || !origin.is_some_and(|o| o.sealed) {
            let recorded_as = match declared_by {
                Some(by) => format!("declared by {by}"),
                None => "declared by the pipeline file".to_owned(),
            };
            let sealed_word = if origin.is_some_and(|o| o.sealed) {
                "sealed"
            } else {
                "not sealed"
            };
            eval.push(
                false,
                Rule::Sealed,
                Some(id),
                format!(
                    "step {} is recorded as {recorded_as} and {sealed_word}, but {template_name} declares it sealed",
                    step.describe()
                ),
            );
        } else if step.outcome == Outcome::Succeeded {
            eval.push(
                true,
                Rule::Sealed,
                Some(id),
                format!(
                    "sealed step {} of {template_name} succeeded",
                    step.describe()
                ),
            );
        } else {
            eval.push(
                false,
                Rule::Sealed,
                Some(id),
                format!(
                    "sealed step {} of {template_name} did not succeed: {}",
                    step.describe(),
                    step.outcome
                ),
            );
        }
        for (name, digests) in &policy.approved_plugins {
            if !step.is_named(name) {
                continue;
            }
            let ok = digests.contains(&step.plugin_sha256);
            let message = if ok {
                format!("sealed step {} runs an approved `{name}`", step.describe())
            } else {
                let list: Vec<String> = digests.iter().map(|d| format!("sha256:{d}")).collect();
                format!(
                    "sealed step {} runs a `{name}` that is not approved (approved: {})",
                    step.describe(),
                    list.join(", ")
                )
            };
            eval.push(ok, Rule::Approved, Some(id), message);
        }
    }

    // Required plugins: run by a sealed step that is recorded as such and succeeded.
    for name in &policy.require {
        let runs: Vec<&StepFact> = recorded
            .iter()
            .copied()
            .filter(|s| s.is_named(name))
            .collect();
        let good = runs.iter().find(|s| {
            s.outcome == Outcome::Succeeded && s.template.as_ref().is_some_and(|o| o.sealed)
        });
        let (ok, message) = match (good, runs.first()) {
            (Some(step), _) => (
                true,
                format!("`{name}` ran in sealed step {}", step.describe()),
            ),
            (None, Some(step)) => (
                false,
                format!(
                    "`{name}` is required, but sealed step {} did not run it to success",
                    step.describe()
                ),
            ),
            (None, None) => (
                false,
                format!(
                    "`{name}` is required, but no sealed step of {} runs it in run {}",
                    chain[index].name(),
                    run.run_id
                ),
            ),
        };
        eval.push(
            ok,
            Rule::Required,
            good.or(runs.first()).map(|s| s.id.as_str()),
            message,
        );
    }

    // Steps of `before` plugins start after every sealed step (that is not one of them).
    let is_before = |s: &StepFact| policy.before.iter().any(|name| s.is_named(name));
    let gates: Vec<&StepFact> = recorded.iter().copied().filter(|s| !is_before(s)).collect();
    let needs: HashMap<&str, &[String]> = run
        .steps
        .iter()
        .map(|s| (s.id.as_str(), s.needs.as_slice()))
        .collect();
    let mut any = false;
    for step in run.steps.iter().filter(|s| is_before(s)) {
        any = true;
        if step.outcome == Outcome::Skipped {
            eval.push(
                true,
                Rule::Before,
                Some(&step.id),
                format!("step {} did not run", step.describe()),
            );
            continue;
        }
        let mut held = true;
        for gate in &gates {
            let needed = needs_transitively(&needs, &step.id, &gate.id);
            let problem = if step.started_ms > gate.finished_ms {
                None
            } else if step.started_ms == gate.finished_ms {
                (!needed).then(|| {
                    format!(
                        "step {} started in the millisecond sealed step `{}` finished ({}) and does not need it: its order cannot be proven",
                        step.describe(),
                        gate.id,
                        gate.finished_ms
                    )
                })
            } else {
                Some(format!(
                    "step {} started at {}, before sealed step `{}` finished at {}",
                    step.describe(),
                    step.started_ms,
                    gate.id,
                    gate.finished_ms
                ))
            };
            if let Some(problem) = problem {
                held = false;
                eval.push(false, Rule::Before, Some(&step.id), problem);
            }
        }
        if held {
            eval.push(
                true,
                Rule::Before,
                Some(&step.id),
                format!(
                    "step {} started after the {} sealed step(s) before it finished",
                    step.describe(),
                    gates.len()
                ),
            );
        }
    }
    if !any && !policy.before.is_empty() {
        eval.push(
            true,
            Rule::Before,
            None,
            format!(
                "no step of run {} runs {}",
                run.run_id,
                policy
                    .before
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
    eval
}

/// The run's template chain and the index of the policy's template in it, after checking
/// that every step records that chain and that the template's version is accepted.
fn check_template<'r>(
    policy: &Policy,
    run: &'r RunFacts,
    eval: &mut Evaluation,
) -> Option<(&'r [TemplateRef], usize)> {
    let not_resolved = |detail: String| {
        format!(
            "run {} was not resolved from template {}{detail}",
            run.run_id, policy.template
        )
    };
    let mut chain: Option<(&str, &[TemplateRef])> = None;
    let mut without = Vec::new();
    for step in &run.steps {
        let Some(origin) = &step.template else {
            without.push(format!("`{}`", step.id));
            continue;
        };
        match chain {
            None => chain = Some((&step.id, &origin.chain)),
            Some((first, theirs)) if theirs != origin.chain.as_slice() => {
                eval.push(
                    false,
                    Rule::Template,
                    Some(&step.id),
                    format!(
                        "steps `{first}` and `{}` of run {} record different template chains ({} and {})",
                        step.id,
                        run.run_id,
                        chain_names(theirs),
                        chain_names(&origin.chain)
                    ),
                );
                return None;
            }
            Some(_) => {}
        }
    }
    let Some((_, chain)) = chain.filter(|(_, c)| !c.is_empty()) else {
        eval.push(
            false,
            Rule::Template,
            None,
            not_resolved(": its steps record no template chain".into()),
        );
        return None;
    };
    if !without.is_empty() {
        eval.push(
            false,
            Rule::Template,
            None,
            not_resolved(format!(
                " alone: steps {} record no template chain",
                without.join(", ")
            )),
        );
        return None;
    }
    let Some(index) = chain.iter().position(|t| t.id == policy.template) else {
        eval.push(
            false,
            Rule::Template,
            None,
            not_resolved(format!(": its template chain is {}", chain_names(chain))),
        );
        return None;
    };
    let template = &chain[index];
    if let Some(req) = &policy.versions {
        let accepted = match semver::Version::parse(&template.version) {
            Ok(version) => req.matches(&version),
            Err(e) => {
                eval.push(
                    false,
                    Rule::Template,
                    None,
                    format!(
                        "run {} records template {} at version `{}`, which is not semver: {e}",
                        run.run_id, template.id, template.version
                    ),
                );
                return None;
            }
        };
        if !accepted {
            eval.push(
                false,
                Rule::Template,
                None,
                not_resolved(format!(
                    " at versions {req}: it was resolved from {} (sha256 {})",
                    template.name(),
                    template.sha256
                )),
            );
            return None;
        }
    }
    eval.push(
        true,
        Rule::Template,
        None,
        format!(
            "run {} was resolved from template {} (sha256 {})",
            run.run_id,
            template.name(),
            template.sha256
        ),
    );
    Some((chain, index))
}

fn chain_names(chain: &[TemplateRef]) -> String {
    chain
        .iter()
        .map(TemplateRef::name)
        .collect::<Vec<_>>()
        .join(" extends ")
}

/// Whether step `from` needs step `to`, directly or through other steps.
fn needs_transitively(needs: &HashMap<&str, &[String]>, from: &str, to: &str) -> bool {
    let mut seen: HashSet<&str> = HashSet::new();
    let mut stack = vec![from];
    while let Some(step) = stack.pop() {
        for needed in needs.get(step).copied().unwrap_or_default() {
            if needed == to {
                return true;
            }
            if seen.insert(needed.as_str()) {
                stack.push(needed.as_str());
            }
        }
    }
    false
}
