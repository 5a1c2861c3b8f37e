//! A flow process killed mid-run: the next open marks its run interrupted.
//!
//! The test re-runs its own binary as the "flow process" (selected by an environment
//! variable), lets it record a running step, and kills it with SIGKILL.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use flow_store::{
    RunRecord, RunStatus, STEP_INTERRUPTED, StepRecord, StepStatus, Store, StoreError,
};

const CHILD_DIR: &str = "FLOW_STORE_CRASH_CHILD_DIR";
const READY: &str = "flow-store-crash-child: ready";

/// The child's part: record a run with a running step, flush, say so, then hang.
fn crash_child(dir: &str) -> Result<(), StoreError> {
    let store = Store::open(dir)?;
    let run = RunRecord::start(
        store.new_run_id()?,
        "ci",
        "flow.yaml",
        vec!["build".into()],
        "0.1.0",
    );
    store.begin_run(&run)?;
    let step = StepRecord {
        status: StepStatus::Running,
        started_at: Some(run.started_at),
        ..StepRecord::pending("build", 0, "builtin:build@1")
    };
    store.put_step(&run.id, &step)?;
    store.flush()?;
    println!("{READY} {}", run.id);
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

#[test]
fn a_killed_process_leaves_an_interrupted_run() -> Result<(), Box<dyn std::error::Error>> {
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        crash_child(&dir)?;
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let mut child = Command::new(std::env::current_exe()?)
        .args([
            "a_killed_process_leaves_an_interrupted_run",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    // Read the child's output on a thread, so a child that never gets ready cannot
    // hang the test. libtest may print its own text before ours on the same line.
    let stdout = child.stdout.take().ok_or("child stdout")?;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(at) = line.find(READY) {
                let _ = ready_tx.send(line[at + READY.len()..].trim().to_owned());
            }
        }
    });
    let run_id = match ready_rx.recv_timeout(Duration::from_secs(60)) {
        Ok(id) => id,
        Err(_) => {
            let _ = child.kill();
            let status = child.wait()?;
            return Err(format!("the child did not record its run in time ({status})").into());
        }
    };

    // While the child lives, the data dir is its own.
    let err = Store::open(tmp.path()).expect_err("the child holds the data dir");
    assert_eq!(
        err.to_string(),
        format!(
            "the data dir {} is in use by another flow process (pid {}); wait for it to \
             finish, or use another data dir",
            tmp.path().display(),
            child.id()
        )
    );

    child.kill()?; // SIGKILL: no destructor, no flush
    child.wait()?;

    let store = Store::open(tmp.path())?;
    let id = store.resolve(&run_id)?;
    assert_eq!(store.recovered(), std::slice::from_ref(&id));
    let run = store.run(&id)?.ok_or("run missing")?;
    assert_eq!(run.status, RunStatus::Interrupted);
    assert_eq!(run.pid, child.id());
    let steps = store.steps(&id)?;
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].status, StepStatus::Cancelled);
    assert_eq!(steps[0].reason.as_deref(), Some(STEP_INTERRUPTED));
    Ok(())
}
