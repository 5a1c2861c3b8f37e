//! cargo run -p flow-provenance --example demo_export -- /tmp/flow-demo
//!
//! Records a three-step pipeline over real files and exports its provenance to
//! `<OUT>/export`, ready for
//! `in-toto-verify --layout root.layout --verification-keys owner.pub --link-dir .`
//! (run in `<OUT>/export`). Keys go to `<OUT>/keys/{owner,other}`.

#[path = "../tests/common/demo.rs"]
mod demo;

fn main() -> anyhow::Result<()> {
    let out = std::env::args_os()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("flow-demo"));
    if out.exists() {
        anyhow::bail!("{} exists; give a new directory", out.display());
    }
    std::fs::create_dir_all(&out)?;
    let demo = demo::build(&out)?;
    let report = flow_provenance::verify::verify(&demo.bundle, &Default::default());
    println!(
        "exported {} step(s) to {}",
        demo.steps.len(),
        demo.export.display()
    );
    println!(
        "flow verify: {}",
        if report.is_ok() {
            "ok".to_owned()
        } else {
            format!("{:#?}", report.failures)
        }
    );
    println!(
        "in-toto-verify --layout root.layout --verification-keys owner.pub --link-dir . # in {}",
        demo.export.display()
    );
    Ok(())
}
