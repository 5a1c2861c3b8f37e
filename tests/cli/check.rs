//! `flow check`: every bad input gets the exact message a user sees, and exit 2.

use crate::session::Session;

const HELLO: &str = r#"version: 1
name: hello
steps:
  greet:
    uses: echo
    with: { message: hi }
  shout:
    uses: echo
    needs: [greet]
    with: { message: "${{ steps.greet.outputs.message }}!" }
"#;

/// `flow check flow.yaml` on `text` must fail with exactly `stderr`.
#[track_caller]
fn rejects(session: &Session, text: &str, stderr: &str) {
    session.file("flow.yaml", text);
    let out = session.flow(["check", "flow.yaml"]).run();
    out.expect_code(2);
    assert_eq!(out.stdout, "");
    assert_eq!(session.normalize(&out.stderr), stderr);
}

#[test]
fn a_valid_file_is_ok() {
    let session = Session::new();
    session.file("flow.yaml", HELLO);
    let out = session.flow(["check", "flow.yaml"]).run();
    out.expect_success();
    assert_eq!(out.stdout, "flow.yaml: ok (2 steps)\n");
}

#[test]
fn check_reads_flow_yaml_by_default_and_speaks_json() {
    let session = Session::new();
    session.file("flow.yaml", HELLO);
    let out = session.flow(["check"]).run();
    out.expect_success();
    assert_eq!(out.stdout, "flow.yaml: ok (2 steps)\n");

    let out = session.flow(["--json", "check"]).run();
    out.expect_success();
    assert_eq!(
        out.json(),
        serde_json::json!({"file": "flow.yaml", "ok": true, "steps": 2})
    );
}

#[test]
fn a_file_that_does_not_exist() {
    let session = Session::new();
    let out = session.flow(["check", "missing.yaml"]).run();
    out.expect_code(2);
    assert_eq!(out.stdout, "");
    assert_eq!(
        out.stderr,
        "error: cannot read pipeline file `missing.yaml`: No such file or directory (os error 2)\n"
    );
}

#[test]
fn malformed_yaml_points_at_the_place() {
    let session = Session::new();
    rejects(
        &session,
        "version: 1\nname: x\nsteps:\n  a:\n    uses: echo\n    with: { m: \"hi }\n",
        r#"flow.yaml:6:16: error: invalid YAML: while scanning a quoted scalar, found unexpected end of stream
    |
  6 |     with: { m: "hi }
    |                ^
"#,
    );
}

#[test]
fn an_unknown_key_suggests_the_right_one() {
    let session = Session::new();
    rejects(
        &session,
        "version: 1\nname: x\nsteps:\n  a:\n    uses: echo\n  b:\n    uses: echo\n    nedds: [a]\n",
        "flow.yaml:8:5: error: unknown key `nedds` in step `b`
    |
  8 |     nedds: [a]
    |     ^^^^^
    = help: did you mean `needs`?
",
    );
}

#[test]
fn an_unknown_plugin_suggests_a_built_in() {
    let session = Session::new();
    rejects(
        &session,
        "version: 1\nname: x\nsteps:\n  a:\n    uses: ehco\n",
        "flow.yaml:5:11: error: unknown plugin `ehco`; did you mean `echo`? (built-in plugins: build, checkout, echo, publish, scan, sign; a plugin file is a path such as `./plugins/my-step.wasm`)
    |
  5 |     uses: ehco
    |           ^^^^
",
    );
}

#[test]
fn a_plugin_file_that_does_not_exist() {
    let session = Session::new();
    rejects(
        &session,
        "version: 1\nname: x\nsteps:\n  a:\n    uses: ./plugins/nope.wasm\n",
        "flow.yaml:5:11: error: plugin file `./plugins/nope.wasm` does not exist (TMP/plugins/nope.wasm)
    |
  5 |     uses: ./plugins/nope.wasm
    |           ^^^^^^^^^^^^^^^^^^^
",
    );
}

#[test]
fn a_plugin_file_of_garbage_bytes() {
    let session = Session::new();
    session.file(
        "x.wasm",
        b"\x7fELF this is not WebAssembly \x00\x01\x02\xff",
    );
    rejects(
        &session,
        "version: 1\nname: x\nsteps:\n  a:\n    uses: ./x.wasm\n",
        r"flow.yaml:5:11: error: ./x.wasm is not a valid flow plugin: the file is not WebAssembly (no `\0asm` header)
    |
  5 |     uses: ./x.wasm
    |           ^^^^^^^^
",
    );
}

#[test]
fn a_wasm_header_followed_by_garbage() {
    let session = Session::new();
    session.file("x.wasm", b"\0asm\x01\0\0\0garbage after the header");
    rejects(
        &session,
        "version: 1\nname: x\nsteps:\n  a:\n    uses: ./x.wasm\n",
        "flow.yaml:5:11: error: ./x.wasm is not a valid flow plugin: failed to parse WebAssembly module: attempted to parse a wasm module with a component parser
    |
  5 |     uses: ./x.wasm
    |           ^^^^^^^^
",
    );
}

#[test]
fn a_pin_that_does_not_match_names_both_digests() {
    let session = Session::new();
    let plugins = session.flow(["--json", "plugins"]).run();
    plugins.expect_success();
    let lines = plugins.json_lines();
    let echo = lines
        .iter()
        .find(|p| p["name"] == "echo")
        .expect("echo is built in");
    let digest = echo["digest"].as_str().expect("a digest").to_string();
    let zeros = "0".repeat(64);
    let uses = format!("echo@sha256:{zeros}");
    rejects(
        &session,
        &format!("version: 1\nname: x\nsteps:\n  a:\n    uses: {uses}\n"),
        &format!(
            "flow.yaml:5:11: error: plugin `echo` is pinned to sha256:{zeros} but its content has {digest}
    |
  5 |     uses: {uses}
    |           {carets}
",
            carets = "^".repeat(uses.len())
        ),
    );
}

#[test]
fn a_param_of_the_wrong_type() {
    let session = Session::new();
    session.plugin("misbehave");
    rejects(
        &session,
        "version: 1\nname: x\nsteps:\n  a:\n    uses: ./misbehave.wasm\n    with: { mode: flood, count: \"many\" }\n",
        r#"flow.yaml:6:33: error: param `count` of plugin `misbehave` expects an integer, found a string
    |
  6 |     with: { mode: flood, count: "many" }
    |                                 ^^^^^^
"#,
    );
}

#[test]
fn a_missing_required_param() {
    let session = Session::new();
    session.plugin("misbehave");
    rejects(
        &session,
        "version: 1\nname: x\nsteps:\n  a:\n    uses: ./misbehave.wasm\n    with: { path: x }\n",
        "flow.yaml:6:5: error: step `a` is missing required param `mode` of plugin `misbehave`
    |
  6 |     with: { path: x }
    |     ^^^^
    = help: add `mode: ...` under `with:`
",
    );
}

#[test]
fn an_unknown_param_lists_the_real_ones() {
    let session = Session::new();
    session.plugin("misbehave");
    rejects(
        &session,
        "version: 1\nname: x\nsteps:\n  a:\n    uses: ./misbehave.wasm\n    with: { mode: ok, colour: red }\n",
        "flow.yaml:6:23: error: plugin `misbehave` has no param `colour`
    |
  6 |     with: { mode: ok, colour: red }
    |                       ^^^^^^
    = help: the params of plugin `misbehave` are `mode`, `path`, `unit`, `count`, `secret`
",
    );
}

#[test]
fn a_misspelt_param_suggests_the_right_one() {
    let session = Session::new();
    session.plugin("misbehave");
    rejects(
        &session,
        "version: 1\nname: x\nsteps:\n  a:\n    uses: ./misbehave.wasm\n    with: { mode: read, pth: /x }\n",
        "flow.yaml:6:25: error: plugin `misbehave` has no param `pth`
    |
  6 |     with: { mode: read, pth: /x }
    |                         ^^^
    = help: did you mean `path`?
",
    );
}

#[test]
fn a_cycle_names_its_steps() {
    let session = Session::new();
    rejects(
        &session,
        "version: 1\nname: x\nsteps:\n  build:\n    uses: echo\n    needs: [test]\n  test:\n    uses: echo\n    needs: [build]\n",
        "flow.yaml:6:13: error: dependency cycle: build -> test -> build
    |
  6 |     needs: [test]
    |             ^^^^
    = help: remove one of these `needs` to break the cycle
flow.yaml:9:13: note: `test` needs `build` here
    |
  9 |     needs: [build]
    |             ^^^^^
",
    );
}

#[test]
fn needs_an_unknown_step() {
    let session = Session::new();
    rejects(
        &session,
        "version: 1\nname: x\nsteps:\n  build:\n    uses: echo\n  test:\n    uses: echo\n    needs: [biuld]\n",
        "flow.yaml:8:13: error: step `test` needs `biuld`, which is not a step of this pipeline
    |
  8 |     needs: [biuld]
    |             ^^^^^
    = help: did you mean `build`?
",
    );
}

#[test]
fn expressions_read_only_needed_steps_and_declared_outputs() {
    let session = Session::new();
    session.plugin("fs_probe");
    rejects(
        &session,
        r#"version: 1
name: x
steps:
  probe:
    uses: ./fs_probe.wasm
  early:
    uses: echo
    with: { m: "${{ steps.probe.outputs.cwd }}" }
  late:
    uses: echo
    needs: [probe]
    with: { m: "${{ steps.probe.outputs.contnt }}" }
"#,
        r#"flow.yaml:8:16: error: step `early` reads `steps.probe` but does not need it
    |
  8 |     with: { m: "${{ steps.probe.outputs.cwd }}" }
    |                ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
    = help: add `probe` to its `needs`

flow.yaml:12:16: error: step `probe` (plugin `fs-probe`) has no output `contnt`
     |
  12 |     with: { m: "${{ steps.probe.outputs.contnt }}" }
     |                ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
     = help: did you mean `content`?
"#,
    );
}

#[test]
fn every_grant_kind_is_understood() {
    let session = Session::new();
    session.file(
        "flow.yaml",
        "version: 1\nname: x\nsecrets:\n  token: { env: TOKEN }\nsteps:\n  a:\n    uses: echo\n    grants:\n      env: [HOME]\n      net: [example.com:443]\n      exec: [sh]\n      secrets: [token]\n",
    );
    let out = session.flow(["check", "flow.yaml"]).run();
    out.expect_success();
}

#[test]
fn an_fs_grant_of_a_missing_directory() {
    let session = Session::new();
    rejects(
        &session,
        "version: 1\nname: x\nsteps:\n  a:\n    uses: echo\n    grants:\n      fs:\n        - { path: ./nowhere, access: read }\n",
        "flow.yaml:8:19: error: granted directory `./nowhere` does not exist
    |
  8 |         - { path: ./nowhere, access: read }
    |                   ^^^^^^^^^
    = help: paths are relative to the directory of the pipeline file
",
    );
}

#[test]
fn run_refuses_an_invalid_file_the_same_way_and_records_nothing() {
    let session = Session::new();
    session.file(
        "flow.yaml",
        "version: 1\nname: x\nsteps:\n  a:\n    uses: ehco\n",
    );
    let check = session.flow(["check", "flow.yaml"]).run();
    let run = session.flow(["run", "flow.yaml"]).run();
    run.expect_code(2);
    assert_eq!(run.stdout, "");
    assert_eq!(run.stderr, check.stderr);
    assert!(
        !session.data_dir().exists(),
        "an invalid pipeline must not create the data dir"
    );
}
