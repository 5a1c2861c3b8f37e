//! The `flow` command as a whole process; prints figures. Run with:
//!
//!     cargo bench -p flow-cli --bench run
//!
//! `flow run` of a one-step pipeline (`echo`), compiled plugins cached, a data dir,
//! cache and key of its own: what a user waits for, from exec to exit.

use std::process::Command;
use std::time::Instant;

#[path = "../../benches/common/stats.rs"]
#[allow(dead_code)]
mod stats;
use stats::{median, ms, percentile};

fn main() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let flow = env!("CARGO_BIN_EXE_flow");
    let dir = tmp.path().join("one");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(
        dir.join("flow.yaml"),
        "version: 1\nname: one\nsteps:\n  greet:\n    uses: echo\n    with: { message: hi }\n",
    )
    .expect("write");
    let mut samples = Vec::new();
    for i in 0..31 {
        let start = Instant::now();
        let status = Command::new(flow)
            .args(["run", "--plain"])
            .arg(dir.join("flow.yaml"))
            .env("HOME", tmp.path())
            .env_remove("XDG_DATA_HOME")
            .env_remove("XDG_CACHE_HOME")
            .env_remove("FLOW_SIGNING_KEY")
            .env_remove("FLOW_DATA_DIR")
            .env_remove("FLOW_CACHE_DIR")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("run flow");
        assert!(status.success());
        // The first run compiles the plugin and creates the key.
        if i > 0 {
            samples.push(start.elapsed());
        }
    }
    println!(
        "`flow run` one echo step, whole process, cache warm, {} runs: median {}, p90 {}",
        samples.len(),
        ms(median(samples.clone())),
        ms(percentile(&samples, 0.9))
    );
}
