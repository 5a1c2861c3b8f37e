//! `flow plugins` and `flow --version`.

use crate::session::Session;

#[test]
fn plugins_lists_echo_with_its_digest() {
    let session = Session::new();
    let out = session.flow(["plugins"]).run();
    out.expect_success();
    let json = session.flow(["--json", "plugins"]).run();
    json.expect_success();
    let lines = json.json_lines();
    let names: Vec<&str> = lines
        .iter()
        .map(|l| l["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        names,
        ["build", "checkout", "echo", "publish", "scan", "sign"]
    );
    let echo = &lines[2];
    let digest = echo["digest"].as_str().expect("a digest");
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );
    assert!(
        out.stdout.contains("checkout 0.1.0  sha256:"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("  needs: host commands (`grants.exec`)\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("  needs: to read a granted directory (`grants.fs`)\n"),
        "{}",
        out.stdout
    );
    let echo_start = out.stdout.find("echo ").expect("echo is listed");
    let echo_end = out.stdout[echo_start..]
        .find("\n\n")
        .map_or(out.stdout.len(), |i| echo_start + i + 2);
    let echo_block = &out.stdout[echo_start..echo_end];
    assert_eq!(
        echo_block,
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
