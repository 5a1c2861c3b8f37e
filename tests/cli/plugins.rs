//! `flow plugins` and `flow --version`.

use crate::session::Session;

#[test]
fn plugins_lists_echo_with_its_digest() {
    let session = Session::new();
    let out = session.flow(["plugins"]).run();
    out.expect_success();
    let json = session.flow(["--json", "plugins"]).run();
    json.expect_success();
    let echo = &json.json_lines()[0];
    let digest = echo["digest"].as_str().expect("a digest");
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );
    assert_eq!(
        out.stdout,
        format!(
            "echo {version}  {digest}
  Sets one output per `with:` param, with the param's value (strings as they are, other values as JSON)
  params:
    any other param is accepted
  outputs:
    one per param, with the param's value

",
            version = env!("CARGO_PKG_VERSION")
        )
    );

    // The digest is the one runs record, and a pin to it is accepted.
    session.file("flow.yaml", format!("version: 1\nname: pinned\nsteps:\n  a:\n    uses: echo@{digest}\n    with: {{ m: x }}\n"));
    session.flow(["run", "flow.yaml"]).run().expect_success();
    let show = session.flow(["--json", "show", "last"]).run().json();
    assert_eq!(show["steps"][0]["plugin_digest"], digest);
}

#[test]
fn version_prints_the_crate_version() {
    let session = Session::new();
    let out = session.flow(["--version"]).run();
    out.expect_success();
    assert_eq!(out.stdout, format!("flow {}\n", env!("CARGO_PKG_VERSION")));
}
