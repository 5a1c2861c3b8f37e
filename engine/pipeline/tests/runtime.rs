//! What the engine does with a plan while running: bind inputs, evaluate conditions, resolve
//! parameters, and render the problems with the pipeline's snippet.

mod common;

use std::collections::BTreeMap;

use flow_pipeline::{EvalContext, Plan, StepOutcome};
use serde_json::json;

const PIPELINE: &str = r#"version: 1
name: runtime
inputs:
  who: { type: string, default: world }
  count: { type: integer }
  loud: { type: boolean, default: false }
steps:
  first:
    uses: echo
    with: { message: "hello ${{ inputs.who }}", n: "${{ inputs.count }}" }
  second:
    uses: typed
    needs: [first]
    if: ${{ steps.first.outcome == 'succeeded' && inputs.loud }}
    with:
      text: ${{ steps.first.outputs.message }}
      count: ${{ steps.first.outputs.n }}
      items: ["${{ inputs.who }}", 2]
  third:
    uses: typed
    needs: [second]
    if: inputs.count
    with:
      text: ${{ steps.second.outputs.result }}
      ratio: ${{ steps.first.outputs.message }}
"#;

fn plan() -> Plan {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("flow.yaml");
    std::fs::write(&path, PIPELINE).expect("write the pipeline");
    let loaded = flow_pipeline::load(&path).expect("loads");
    assert_eq!(loaded.source().name, path.display().to_string());
    // Shown as `flow.yaml`, as if the user had run `flow run` in that directory.
    let pipeline = flow_pipeline::parse(PIPELINE, "flow.yaml", dir.path()).expect("parses");
    flow_pipeline::check(&pipeline, &common::TestResolver).expect("checks")
}

fn given(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn the_plan_is_in_topological_order_with_indices() {
    let plan = plan();
    let ids: Vec<&str> = plan.steps.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["first", "second", "third"]);
    assert_eq!(plan.steps[1].needs, [0]);
    assert_eq!(plan.steps[1].dependents, [2]);
    assert_eq!(plan.step("third").map(|s| s.index), Some(2));
    assert_eq!(plan.path(), "flow.yaml");
}

#[test]
fn inputs_are_bound_with_defaults_and_types() {
    let plan = plan();
    let bound = plan
        .bind_inputs(&given(&[("count", "3"), ("loud", "true")]))
        .expect("valid inputs");
    assert_eq!(
        bound,
        BTreeMap::from([
            ("who".to_owned(), json!("world")),
            ("count".to_owned(), json!(3)),
            ("loud".to_owned(), json!(true)),
        ])
    );
    let errors = plan
        .bind_inputs(&given(&[("wh", "x"), ("loud", "yes")]))
        .expect_err("invalid inputs");
    assert_eq!(
        errors.render(),
        "error: unknown input `wh` (given with `--input wh=...`)\n    = help: did you mean `who`?\n\n\
         error: input `loud` must be a boolean, found `yes`\n    = help: give it as `--input loud=<boolean>`\n\n\
         error: missing required input `count`\n    = help: give it with `--input count=<integer>`\n"
    );
}

#[test]
fn steps_resolve_their_params_and_conditions() {
    let plan = plan();
    let inputs = plan
        .bind_inputs(&given(&[("count", "3"), ("loud", "true")]))
        .expect("valid");
    let mut ctx = EvalContext::new(inputs);
    let first = &plan.steps[0];
    assert_eq!(first.evaluate_condition(&ctx), Ok(true));
    let params = first.resolve_params(&ctx).expect("first's params");
    assert_eq!(json!(params), json!({"message": "hello world", "n": 3}));

    ctx.record_step(
        "first",
        StepOutcome::Succeeded,
        BTreeMap::from([
            ("message".to_owned(), "hello world".to_owned()),
            ("n".to_owned(), "3".to_owned()),
        ]),
    );
    let second = &plan.steps[1];
    assert_eq!(second.evaluate_condition(&ctx), Ok(true));
    // The output "3" becomes the integer the param wants; `count`'s default is not needed.
    let params = second.resolve_params(&ctx).expect("second's params");
    assert_eq!(
        json!(params),
        json!({"text": "hello world", "count": 3, "items": ["world", 2]})
    );

    ctx.record_step(
        "second",
        StepOutcome::Succeeded,
        BTreeMap::from([("result".to_owned(), "done".to_owned())]),
    );
    let third = &plan.steps[2];
    let error = third.evaluate_condition(&ctx).expect_err("not a boolean");
    assert_eq!(
        error.render(),
        "flow.yaml:22:9: error: the condition of step `third` cannot be evaluated: condition `inputs.count` must give a boolean, but gave an integer\n     |\n  22 |     if: inputs.count\n     |         ^^^^^^^^^^^^\n"
    );
    let error = third.resolve_params(&ctx).expect_err("not a number");
    assert_eq!(
        error.render(),
        "flow.yaml:25:14: error: param `ratio` of plugin `typed` expects a number, but the value is a string: \"hello world\"\n     |\n  25 |       ratio: ${{ steps.first.outputs.message }}\n     |              ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
    );
}
