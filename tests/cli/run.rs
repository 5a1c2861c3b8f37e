//! `flow run`: what a run prints, what it records, inputs, conditions,
//! failures and parallelism.

use serde_json::Value;

use crate::session::{Session, run_id};

const HELLO: &str = r#"version: 1
name: hello
inputs:
  who: { type: string, default: world }
steps:
  greet:
    uses: echo
    with: { message: "hi ${{ inputs.who }}" }
  shout:
    uses: echo
    needs: [greet]
    if: ${{ steps.greet.outputs.message == "hi world" }}
    with: { message: "${{ steps.greet.outputs.message }}!" }
"#;

/// `event` for run-level events, `step event status` for step events.
fn event_kinds(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            let kind = e["event"].as_str().expect("an event name");
            match (e["step"].as_str(), e["status"].as_str()) {
                (Some(step), Some(status)) => format!("{step} {kind} {status}"),
                (Some(step), None) => format!("{step} {kind}"),
                (None, Some(status)) => format!("{kind} {status}"),
                (None, None) => kind.to_string(),
            }
        })
        .collect()
}

fn step<'a>(show: &'a Value, id: &str) -> &'a Value {
    show["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["step_id"] == id)
        .unwrap_or_else(|| panic!("no step {id} in {show}"))
}

#[test]
fn the_hello_pipeline_runs_and_is_recorded() {
    let session = Session::new();
    session.file("flow.yaml", HELLO);
    let out = session.flow(["run", "flow.yaml"]).run();
    out.expect_success();
    assert_eq!(
        session.normalize(&out.stdout),
        "run RUN started: hello (2 steps)
greet  started
greet  succeeded in <dur>
shout  started
shout  succeeded in <dur>
run RUN succeeded in <dur> (2 succeeded)
"
    );

    let show = session.flow(["show", "last"]).run();
    show.expect_success();
    assert_eq!(
        session.normalize(&show.stdout),
        "run       RUN
pipeline  hello (flow.yaml)
status    succeeded
started   <time>
duration <dur>

  STEP   STATUS     DURATION  PLUGIN
✓ greet  succeeded <dur>  echo
         message = hi world
✓ shout  succeeded <dur>  echo
         message = hi world!
"
    );
    assert!(show.stdout.contains(&run_id(&out.stdout)));
}

#[test]
fn json_prints_one_event_per_line_in_order() {
    let session = Session::new();
    session.file("flow.yaml", HELLO);
    let out = session.flow(["--json", "run", "flow.yaml"]).run();
    out.expect_success();
    let events = out.json_lines();
    assert_eq!(
        event_kinds(&events),
        [
            "run-started",
            "greet step-started",
            "greet step-finished succeeded",
            "shout step-started",
            "shout step-finished succeeded",
            "run-finished succeeded"
        ]
    );
    let run = events[0]["run"].as_str().expect("a run id");
    assert!(
        events.iter().all(|e| e["run"] == run),
        "one run id throughout"
    );
    assert_eq!(events[0]["pipeline"], "hello");
    assert_eq!(events[0]["steps"], serde_json::json!(["greet", "shout"]));
    assert_eq!(
        events[0]["workspace"],
        session
            .data_dir()
            .join("workspaces")
            .join(run)
            .display()
            .to_string()
    );
    assert_eq!(
        events[4]["outputs"],
        serde_json::json!({"message": "hi world!"})
    );
    let times: Vec<u64> = events
        .iter()
        .map(|e| e["at"].as_u64().expect("at"))
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "timestamps in order: {times:?}"
    );
}

#[test]
fn an_input_from_the_command_line_reaches_the_steps() {
    let session = Session::new();
    session.file("flow.yaml", HELLO);
    session
        .flow(["run", "flow.yaml", "--input", "who=you"])
        .run()
        .expect_success();
    let show = session.flow(["--json", "show", "last"]).run();
    let show = show.json();
    assert_eq!(step(&show, "greet")["outputs"]["message"], "hi you");
    // The condition compared with "hi world": now false.
    assert_eq!(step(&show, "shout")["status"], "skipped");
    assert_eq!(
        step(&show, "shout")["reason"],
        r#"condition `steps.greet.outputs.message == "hi world"` was false"#
    );
}

const TYPED_INPUTS: &str = r#"version: 1
name: inputs
inputs:
  times: { type: integer }
steps:
  greet:
    uses: echo
    with: { message: "x${{ inputs.times }}" }
"#;

#[test]
fn an_input_of_the_wrong_type() {
    let session = Session::new();
    session.file("flow.yaml", TYPED_INPUTS);
    let out = session
        .flow(["run", "flow.yaml", "-i", "times=three"])
        .run();
    out.expect_code(2);
    assert_eq!(out.stdout, "");
    assert_eq!(
        out.stderr,
        "error: input `times` must be an integer, found `three`\n    = help: give it as `--input times=<integer>`\n"
    );
    let runs = session.flow(["runs"]).run();
    assert_eq!(
        session.normalize(&runs.stdout),
        "no runs yet in SESSION/data\n",
        "nothing is recorded"
    );
}

#[test]
fn a_missing_required_input() {
    let session = Session::new();
    session.file("flow.yaml", TYPED_INPUTS);
    let out = session.flow(["run", "flow.yaml"]).run();
    out.expect_code(2);
    assert_eq!(
        out.stderr,
        "error: missing required input `times`\n    = help: give it with `--input times=<integer>`\n"
    );
}

#[test]
fn an_unknown_input_suggests_the_right_one() {
    let session = Session::new();
    session.file("flow.yaml", TYPED_INPUTS);
    let out = session
        .flow(["run", "flow.yaml", "-i", "tims=3", "-i", "times=3"])
        .run();
    out.expect_code(2);
    assert_eq!(
        out.stderr,
        "error: unknown input `tims` (given with `--input tims=...`)\n    = help: did you mean `times`?\n"
    );
}

#[test]
fn an_input_without_a_value() {
    let session = Session::new();
    session.file("flow.yaml", TYPED_INPUTS);
    let out = session.flow(["run", "flow.yaml", "--input", "times"]).run();
    out.expect_code(2);
    assert_eq!(
        out.stderr,
        "error: invalid value 'times' for '--input <NAME=VALUE>': `times` is not `name=value`\n\nFor more information, try '--help'.\n"
    );
}

#[test]
fn a_false_condition_skips_the_step_and_its_dependents() {
    let session = Session::new();
    session.file(
        "flow.yaml",
        r#"version: 1
name: cond
inputs:
  go: { type: boolean, default: false }
steps:
  maybe:
    uses: echo
    if: ${{ inputs.go }}
    with: { m: x }
  after:
    uses: echo
    needs: [maybe]
    with: { m: y }
  other:
    uses: echo
    with: { m: z }
"#,
    );
    let out = session.flow(["run", "flow.yaml"]).run();
    out.expect_success();
    assert_eq!(
        session.normalize(&out.stdout),
        "run RUN started: cond (3 steps)
maybe  skipped: condition `inputs.go` was false
after  skipped: needs `maybe`, which was skipped
other  started
other  succeeded in <dur>
run RUN succeeded in <dur> (2 skipped, 1 succeeded)
"
    );

    let out = session.flow(["run", "flow.yaml", "-i", "go=true"]).run();
    out.expect_success();
    assert!(out.stdout.ends_with("(3 succeeded)\n"), "{}", out.stdout);
}

const FAILING: &str = r#"version: 1
name: failing
steps:
  slow:
    uses: ./misbehave.wasm
    with: { mode: flood, count: 40000 }
  bad:
    uses: ./misbehave.wasm
    with: { mode: fail }
  after:
    uses: echo
    needs: [bad]
    with: { m: x }
  later:
    uses: echo
    with: { m: z }
"#;

#[test]
fn a_failing_step_fails_the_run_lets_running_steps_finish_and_starts_nothing_new() {
    let session = Session::new();
    session.plugin("misbehave").file("flow.yaml", FAILING);
    let out = session
        .flow(["--json", "run", "flow.yaml", "-j", "2"])
        .run();
    out.expect_code(1);
    assert_eq!(out.stderr, "");
    let events = out.json_lines();
    assert_eq!(
        event_kinds(&events),
        [
            "run-started",
            "slow step-started",
            "bad step-started",
            "bad step-finished failed",
            "after step-finished skipped",
            "slow step-finished succeeded",
            "later step-finished skipped",
            "run-finished failed"
        ]
    );
    assert_eq!(events[3]["reason"], "misbehave was told to fail");
    assert_eq!(events[4]["reason"], "needs `bad`, which failed");
    assert_eq!(events[6]["reason"], "not run: step `bad` failed");
    assert_eq!(
        events[7]["failure"],
        "step `bad` failed: misbehave was told to fail"
    );

    let show = session.flow(["show", "last"]).run();
    show.expect_success();
    assert_eq!(
        session.normalize(&show.stdout),
        "run       RUN
pipeline  failing (flow.yaml)
status    failed
started   <time>
duration <dur>
failure   step `bad` failed: misbehave was told to fail

  STEP   STATUS     DURATION  PLUGIN
✓ slow   succeeded <dur>  ./misbehave.wasm
         (log truncated)
✗ bad    failed <dur>  ./misbehave.wasm
         misbehave was told to fail
- after  skipped           -  echo
         needs `bad`, which failed
- later  skipped           -  echo
         not run: step `bad` failed
"
    );
}

#[test]
fn the_summary_of_a_failed_run_names_the_step_and_its_log() {
    let session = Session::new();
    session.plugin("misbehave").file(
        "flow.yaml",
        "version: 1\nname: failing\nsteps:\n  bad:\n    uses: ./misbehave.wasm\n    with: { mode: fail }\n  after:\n    uses: echo\n    needs: [bad]\n",
    );
    let out = session.flow(["run", "flow.yaml"]).run();
    out.expect_code(1);
    assert_eq!(out.stderr, "");
    assert_eq!(
        session.normalize(&out.stdout),
        "run RUN started: failing (2 steps)
bad    started
bad    failed in <dur>: misbehave was told to fail
after  skipped: needs `bad`, which failed
run RUN failed in <dur> (1 failed, 1 skipped)
  ✗ bad failed: misbehave was told to fail
"
    );
}

#[test]
fn continue_on_error_lets_dependents_run_and_the_run_succeed() {
    let session = Session::new();
    session.plugin("misbehave").file(
        "flow.yaml",
        "version: 1\nname: tolerant\nsteps:\n  bad:\n    uses: ./misbehave.wasm\n    with: { mode: fail }\n    continue-on-error: true\n  after:\n    uses: echo\n    needs: [bad]\n    with: { m: ran }\n",
    );
    let out = session.flow(["run", "flow.yaml"]).run();
    out.expect_success();
    assert_eq!(
        session.normalize(&out.stdout),
        "run RUN started: tolerant (2 steps)
bad    started
bad    failed in <dur>: misbehave was told to fail
after  started
after  succeeded in <dur>
run RUN succeeded in <dur> (1 failed, 1 succeeded)
  ✗ bad failed: misbehave was told to fail
"
    );
    let show = session.flow(["--json", "show", "last"]).run().json();
    assert_eq!(show["run"]["status"], "succeeded");
    assert_eq!(step(&show, "after")["outputs"]["m"], "ran");
}

const THREE_INDEPENDENT: &str = r#"version: 1
name: three
steps:
  flood:
    uses: ./misbehave.wasm
    with: { mode: flood, count: 20000 }
  quick:
    uses: echo
    with: { m: x }
  probe:
    uses: ./fs_probe.wasm
"#;

/// (step, started index, finished index) for each step.
fn spans(events: &[Value]) -> Vec<(String, usize, usize)> {
    let mut spans = Vec::new();
    for (i, e) in events.iter().enumerate() {
        if e["event"] == "step-started" {
            let step = e["step"].as_str().expect("step").to_string();
            let end = events
                .iter()
                .position(|f| f["event"] == "step-finished" && f["step"] == step.as_str())
                .expect("every started step finishes");
            spans.push((step, i, end));
        }
    }
    spans
}

#[test]
fn with_one_job_no_two_steps_overlap() {
    let session = Session::new();
    session
        .plugin("misbehave")
        .plugin("fs_probe")
        .file("flow.yaml", THREE_INDEPENDENT);
    let out = session
        .flow(["--json", "run", "flow.yaml", "-j", "1"])
        .run();
    out.expect_success();
    let spans = spans(&out.json_lines());
    assert_eq!(spans.len(), 3);
    for pair in spans.windows(2) {
        assert!(
            pair[0].2 < pair[1].1,
            "{} started before {} finished: {spans:?}",
            pair[1].0,
            pair[0].0
        );
    }
}

#[test]
fn with_two_jobs_independent_steps_overlap() {
    let session = Session::new();
    session
        .plugin("misbehave")
        .plugin("fs_probe")
        .file("flow.yaml", THREE_INDEPENDENT);
    let out = session
        .flow(["--json", "run", "flow.yaml", "-j", "2"])
        .run();
    out.expect_success();
    let spans = spans(&out.json_lines());
    assert_eq!(spans.len(), 3);
    // The first two start together; at most two run at any time.
    assert!(
        spans[1].1 < spans[0].2,
        "the second step waited for the first: {spans:?}"
    );
    for (i, (step, start, _)) in spans.iter().enumerate() {
        let running = spans[..i].iter().filter(|(_, _, end)| end > start).count();
        assert!(
            running < 2,
            "{step} started while {running} others ran: {spans:?}"
        );
    }
}

#[test]
fn jobs_must_be_at_least_one() {
    let session = Session::new();
    session.file("flow.yaml", HELLO);
    let out = session.flow(["run", "flow.yaml", "-j", "0"]).run();
    out.expect_code(2);
    assert_eq!(
        out.stderr,
        "error: invalid value '0' for '--jobs <N>': 0 is not in 1..=1024\n\nFor more information, try '--help'.\n"
    );
}

/// The text a terminal shows once `raw` is drawn: cursor-up and erase-line
/// sequences applied, colours removed.
fn rendered_screen(raw: &str) -> Vec<String> {
    let mut screen: Vec<String> = vec![String::new()];
    let mut row = 0usize;
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' if chars.peek() == Some(&'[') => {
                chars.next();
                let mut arg = String::new();
                while let Some(&d) = chars.peek() {
                    if d.is_ascii_digit() {
                        arg.push(d);
                        chars.next();
                    } else {
                        break;
                    }
                }
                match chars.next() {
                    Some('A') => row = row.saturating_sub(arg.parse().unwrap_or(1)),
                    Some('K') => screen[row].clear(),
                    _ => {} // colours
                }
            }
            '\r' => {}
            '\n' => {
                row += 1;
                if screen.len() <= row {
                    screen.push(String::new());
                }
            }
            c => screen[row].push(c),
        }
    }
    screen
        .into_iter()
        .map(|l| l.trim_end().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn on_a_terminal_run_redraws_a_live_view_in_place() {
    let session = Session::new();
    session.file("flow.yaml", HELLO);
    let out = session.flow(["run", "flow.yaml"]).on_terminal().run();
    out.expect_code(0);
    // Redrawn in place: the cursor moves up over the previous frame.
    assert!(
        out.stdout.contains("\x1b[3A"),
        "no redraw in {:?}",
        out.stdout
    );
    let screen: Vec<String> = rendered_screen(&out.stdout)
        .iter()
        .map(|l| session.normalize(l).trim_end().to_string())
        .collect();
    assert_eq!(
        screen,
        [
            "run RUN: hello",
            "  ✓ greet  succeeded <dur>",
            "  ✓ shout  succeeded <dur>",
            "run RUN succeeded in <dur> (2 succeeded)",
        ],
        "raw output: {:?}",
        out.stdout
    );
}
