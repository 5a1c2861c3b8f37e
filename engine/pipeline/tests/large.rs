//! F7: reading and checking stay linear in the number of steps. These build pipelines of
//! 100,000 steps and check the plans; the times are in `cargo bench --bench check`.

mod common;
#[path = "common/generate.rs"]
mod generate;

use std::path::Path;

fn plan(text: &str) -> flow_pipeline::Plan {
    let pipeline = flow_pipeline::parse(text, "flow.yaml", Path::new(".")).expect("parses");
    flow_pipeline::check(&pipeline, &common::TestResolver).unwrap_or_else(|d| panic!("{d}"))
}

const STEPS: usize = 100_000;

#[test]
fn a_chain_of_100000_steps_is_planned() {
    let plan = plan(&generate::generate("chain", STEPS));
    assert_eq!(plan.steps.len(), STEPS);
    for (i, step) in plan.steps.iter().enumerate() {
        assert_eq!(step.id, format!("s{i}"));
        assert_eq!(step.index, i);
        let before: Vec<usize> = i.checked_sub(1).into_iter().collect();
        assert_eq!(step.needs, before);
        let after: Vec<usize> = Some(i + 1).filter(|&a| a < STEPS).into_iter().collect();
        assert_eq!(step.dependents, after);
        assert_eq!(step.params.len(), 1);
    }
}

#[test]
fn a_fan_in_of_100000_steps_is_planned() {
    let plan = plan(&generate::generate("fan-in", STEPS));
    assert_eq!(plan.steps.len(), STEPS);
    let (sink, leaves) = plan.steps.split_last().expect("steps");
    assert_eq!(sink.id, "sink");
    assert_eq!(sink.needs, (0..STEPS - 1).collect::<Vec<_>>());
    assert_eq!(sink.params.len(), STEPS - 1);
    assert!(sink.dependents.is_empty());
    for (i, leaf) in leaves.iter().enumerate() {
        assert_eq!(leaf.id, format!("s{i}"));
        assert!(leaf.needs.is_empty());
        assert_eq!(leaf.dependents, [STEPS - 1]);
    }
}

#[test]
fn steps_reading_far_back_and_random_dags_are_planned() {
    for shape in ["far", "random"] {
        let plan = plan(&generate::generate(shape, 20_000));
        assert_eq!(plan.steps.len(), 20_000, "{shape}");
        for step in &plan.steps {
            assert!(step.needs.iter().all(|&n| n < step.index), "{shape}");
        }
    }
}

#[test]
fn a_cycle_through_50000_steps_is_one_problem() {
    // A chain, with its first step needing the last one.
    let steps = 50_000;
    let text = generate::generate("chain", steps).replacen(
        "  s0:\n    uses: echo\n",
        &format!("  s0:\n    uses: echo\n    needs: [s{}]\n", steps - 1),
        1,
    );
    let pipeline = flow_pipeline::parse(&text, "flow.yaml", Path::new(".")).expect("parses");
    let problems = flow_pipeline::check(&pipeline, &common::TestResolver).expect_err("a cycle");
    assert_eq!(problems.len(), 1);
    let cycle = &problems.0[0];
    assert!(
        cycle.message.starts_with(&format!(
            "dependency cycle: s0 -> s{} -> s{} -> ",
            steps - 1,
            steps - 2
        )),
        "{}",
        &cycle.message[..100]
    );
    assert!(cycle.message.ends_with(" -> s2 -> s1 -> s0"));
    assert_eq!(cycle.notes.len(), steps - 1);
}

#[test]
fn thousands_of_unknown_names_are_all_reported() {
    // Each step needs a misspelt step and reads one that does not exist: every problem is
    // reported. Suggestions have a budget, so that not every name is compared with every
    // step id: the first problems have one, the last ones not.
    let steps = 20_000;
    let mut text = String::from("version: 1\nname: typos\nsteps:\n");
    for i in 0..steps {
        text.push_str(&format!(
            "  s{i}:\n    uses: echo\n    needs: [s{}_]\n    with: {{ x: \"${{{{ steps.u{i}.outputs.x }}}}\" }}\n",
            (i + 1) % steps
        ));
    }
    let pipeline = flow_pipeline::parse(&text, "flow.yaml", Path::new(".")).expect("parses");
    let problems = flow_pipeline::check(&pipeline, &common::TestResolver).expect_err("typos");
    assert_eq!(problems.len(), 2 * steps);
    assert_eq!(
        problems.0[0].message,
        "step `s0` needs `s1_`, which is not a step of this pipeline"
    );
    assert_eq!(problems.0[0].help.as_deref(), Some("did you mean `s1`?"));
    assert_eq!(
        problems.0[1].message,
        "unknown step `u0` in expression `steps.u0.outputs.x`"
    );
    let last = &problems.0[2 * steps - 2];
    assert_eq!(
        last.message,
        format!(
            "step `s{}` needs `s0_`, which is not a step of this pipeline",
            steps - 1
        )
    );
    assert_eq!(last.help, None);
    let rendered = problems.render();
    assert_eq!(rendered.matches(": error: ").count(), 2 * steps);
}
