//! The crate must never panic on input: feed truncations and mutations of every case file
//! through parse, check and rendering.

mod common;

use std::path::PathBuf;

fn exercise(source: &str, dir: &std::path::Path) {
    // The reader of a template's identity and sealed steps (`flow verify --policy`).
    let file = flow_pipeline::SourceFile::new("template.yaml", source);
    let _ = flow_pipeline::read_template_declaration(&file).map_err(|d| d.render());
    match flow_pipeline::parse(source, "flow.yaml", dir) {
        Ok(pipeline) => match flow_pipeline::check(&pipeline, &common::TestResolver) {
            Ok(plan) => {
                let _ =
                    plan.bind_inputs(&[("who".into(), "x".into()), ("nope".into(), "1".into())]);
                let ctx = flow_pipeline::EvalContext::new(Default::default());
                for step in &plan.steps {
                    let _ = step.evaluate_condition(&ctx);
                    let _ = step.resolve_params(&ctx).map_err(|d| d.render());
                }
            }
            Err(diagnostics) => {
                let _ = diagnostics.render();
            }
        },
        Err(diagnostics) => {
            let _ = diagnostics.render();
        }
    }
}

/// A small deterministic generator, so failures reproduce.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % bound.max(1)
    }
}

#[test]
fn malformed_inputs_never_panic() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("tests/cases exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("flow.yaml").is_file())
        .collect();
    dirs.sort();
    let fragments = [
        "${{", "}}", "[", "{", ":", "- ", "\"", "'", "\t", "&a ", "*a", "!!str ", "\n  ", "é", "?",
        "#",
    ];
    let mut rng = Lcg(7);
    let mut runs = 0;
    for dir in &dirs {
        let source = std::fs::read_to_string(dir.join("flow.yaml")).expect("read case");
        let mut boundaries: Vec<usize> = source.char_indices().map(|(i, _)| i).collect();
        boundaries.push(source.len());
        // Truncations, every few characters.
        for &cut in boundaries.iter().step_by(7) {
            exercise(&source[..cut], dir);
            runs += 1;
        }
        // Random insertions and deletions.
        for _ in 0..40 {
            let mut text = source.clone();
            let at = boundaries[rng.next(boundaries.len())];
            if rng.next(2) == 0 {
                text.insert_str(at, fragments[rng.next(fragments.len())]);
            } else {
                let end = text[at..]
                    .char_indices()
                    .nth(1 + rng.next(5))
                    .map_or(text.len(), |(i, _)| at + i);
                text.replace_range(at..end, "");
            }
            exercise(&text, dir);
            runs += 1;
        }
    }
    assert!(runs > 300, "only {runs} inputs were tried");
}

#[test]
fn malformed_expressions_never_panic() {
    let pieces = [
        "steps",
        "inputs",
        ".",
        "[",
        "]",
        "(",
        ")",
        "{",
        "}",
        "'",
        "\"",
        "1",
        "-",
        "+",
        "*",
        "/",
        "%",
        "==",
        "?",
        ":",
        ",",
        "x",
        ".map(",
        "has(",
        "size(",
        "é",
        " ",
        "\\",
        "0x",
        "9223372036854775807",
        "b'",
        "r'",
        "!",
        "&&",
        "||",
        "in",
        "null",
        "1.5e",
        "u",
    ];
    let mut rng = Lcg(11);
    let mut ctx = flow_pipeline::EvalContext::new(
        [("who".to_owned(), serde_json::json!("w"))]
            .into_iter()
            .collect(),
    );
    ctx.record_step("a", flow_pipeline::StepOutcome::Failed, Default::default());
    for _ in 0..600 {
        let length = 1 + rng.next(8);
        let text: String = (0..length)
            .map(|_| pieces[rng.next(pieces.len())])
            .collect();
        if let Ok(expression) = flow_pipeline::Expression::parse(&text) {
            let _ = expression.eval(&ctx);
            let _ = expression.eval_bool(&ctx);
        }
        let _ = flow_pipeline::Template::parse_str(&format!("x ${{{{ {text} }}}} y"))
            .map(|t| t.render(&ctx));
    }
}
