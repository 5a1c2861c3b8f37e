//! The steps' `needs`: each name found among the steps, and the order they run in, with
//! every dependency cycle reported.

use crate::diag::Diagnostic;

use super::checker::Checker;
use super::order::{cycles, topological_order};

/// The indices of the steps each step needs; reports unknown, repeated and checker needs.
pub(super) fn resolve_needs(checker: &mut Checker) -> Vec<Vec<usize>> {
    let steps = checker.pipeline.steps.as_slice();
    let mut out = Vec::with_capacity(steps.len());
    let mut problems = Vec::new();
    // `listed[n] == i` once step `i` has listed step `n`.
    let mut listed = vec![usize::MAX; steps.len()];
    for (i, step) in steps.iter().enumerate() {
        let mut needs: Vec<usize> = Vec::new();
        for (need, span) in &step.needs {
            let file = step.file_of(&format!("needs.{need}"));
            match checker.ids.get(need.as_str()).copied() {
                Some(n) if n == i => problems.push(Diagnostic::error(
                    file,
                    *span,
                    format!("step `{need}` needs itself"),
                )),
                Some(n) if listed[n] == i => problems.push(Diagnostic::error(
                    file,
                    *span,
                    format!(
                        "step `{}` lists `{need}` more than once in `needs`",
                        step.id
                    ),
                )),
                Some(n) => {
                    listed[n] = i;
                    needs.push(n);
                }
                None => {
                    let others = steps
                        .iter()
                        .map(|s| s.id.as_str())
                        .filter(|id| *id != step.id);
                    problems.push(
                        Diagnostic::error(
                            file,
                            *span,
                            format!(
                                "step `{}` needs `{need}`, which is not a step of this pipeline",
                                step.id
                            ),
                        )
                        .with_optional_help(checker.suggest(need, others)),
                    );
                }
            }
        }
        out.push(needs);
    }
    checker.problems.append(&mut problems);
    out
}

/// A topological order (ties broken by file order); reports each dependency cycle.
pub(super) fn order_steps(checker: &mut Checker, needs: &[Vec<usize>]) -> Vec<usize> {
    let (order, remaining) = topological_order(needs);
    for cycle in cycles(needs, &remaining) {
        let steps = checker.steps();
        let names: Vec<&str> = cycle.iter().map(|&i| steps[i].id.as_str()).collect();
        // The `needs` entry of each step on the cycle that names the next one.
        let entry = |from: usize, to: usize| {
            let file = steps[from].file_of(&format!("needs.{}", steps[to].id));
            let span = steps[from]
                .needs
                .iter()
                .find(|(n, _)| *n == steps[to].id)
                .map(|(_, span)| *span)
                .unwrap_or(steps[from].span);
            (file, span)
        };
        let first = cycle[0];
        let (file, span) = entry(first, cycle[1 % cycle.len()]);
        let mut diagnostic = Diagnostic::error(
            file,
            span,
            format!("dependency cycle: {} -> {}", names.join(" -> "), names[0]),
        );
        for k in 1..cycle.len() {
            let (from, to) = (cycle[k], cycle[(k + 1) % cycle.len()]);
            let (file, span) = entry(from, to);
            diagnostic = diagnostic.with_note_at(
                file,
                span,
                format!("`{}` needs `{}` here", steps[from].id, steps[to].id),
            );
        }
        diagnostic = diagnostic.with_help("remove one of these `needs` to break the cycle");
        checker.problems.push(diagnostic);
    }
    order
}
