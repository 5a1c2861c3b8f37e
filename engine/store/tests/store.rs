//! The store's public API, one behaviour per test.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use flow_store::{
    LogLevel, LogLine, LogStream, RUN_INTERRUPTED, RunAttestation, RunId, RunRecord, RunStatus,
    SCHEMA_VERSION, STEP_INTERRUPTED, STEP_NEVER_STARTED, StepAttestation, StepRecord, StepStatus,
    Store, StoreError,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn id(text: &str) -> RunId {
    RunId::parse(text).expect("test ids are valid")
}

fn run_at(text: &str, started_at: u64) -> RunRecord {
    RunRecord {
        started_at,
        ..RunRecord::start(
            id(text),
            "ci",
            "flow.yaml",
            vec!["a".into(), "b".into()],
            "0.1.0",
        )
    }
}

fn step(step_id: &str, index: u32, status: StepStatus) -> StepRecord {
    StepRecord {
        status,
        ..StepRecord::pending(step_id, index, "builtin:echo@1")
    }
}

fn lines(n: u64, prefix: &str) -> Vec<LogLine> {
    (0..n)
        .map(|seq| LogLine {
            seq,
            at: 1000 + seq,
            stream: if seq % 2 == 0 {
                LogStream::Stdout
            } else {
                LogStream::Plugin(LogLevel::Info)
            },
            text: format!("{prefix} line {seq}"),
        })
        .collect()
}

/// Opens the sled database under a closed store's data dir, to write what the store
/// never would.
fn raw_db(dir: &Path) -> sled::Db {
    // sled's flusher can hold the store's dropped handle (and its lock) a moment longer.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        match sled::open(dir.join("store")) {
            Ok(db) => return db,
            Err(e) if std::time::Instant::now() >= deadline => panic!("raw sled open: {e}"),
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
        }
    }
}

#[test]
fn open_creates_the_dir_and_reopens_with_data() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("nested/.flow");
    let run = run_at("r1", 5);
    {
        let store = Store::open(&dir)?;
        assert_eq!(store.dir(), dir);
        assert!(store.recovered().is_empty());
        store.begin_run(&run)?;
        store.finish_run(&RunRecord {
            status: RunStatus::Succeeded,
            finished_at: Some(9),
            ..run.clone()
        })?;
        store.flush()?;
    }
    let store = Store::open(&dir)?;
    assert!(store.recovered().is_empty());
    let back = store.run(&run.id)?.ok_or("run missing after reopen")?;
    assert_eq!(back.status, RunStatus::Succeeded);
    assert_eq!(back.finished_at, Some(9));
    Ok(())
}

#[test]
fn opening_a_dir_twice_in_one_process_is_refused() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let _store = Store::open(tmp.path())?;
    let err = Store::open(tmp.path()).expect_err("second open must fail");
    assert!(matches!(err, StoreError::AlreadyOpen { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "the data dir {} is already open in this process; clone the open Store instead \
             of opening the dir again",
            tmp.path().display()
        )
    );
    Ok(())
}

#[test]
fn an_uncreatable_dir_is_reported() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let file = tmp.path().join("file");
    std::fs::write(&file, "not a dir")?;
    let err = Store::open(file.join("sub")).expect_err("a file is in the way");
    assert!(matches!(err, StoreError::CreateDir { .. }), "{err:?}");
    assert!(err.to_string().starts_with(&format!(
        "cannot create the data dir {}",
        file.join("sub").display()
    )));
    Ok(())
}

#[test]
fn begin_run_stores_the_record_once() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let store = Store::open(tmp.path())?;
    let run = run_at("r1", 5);
    store.begin_run(&run)?;
    assert_eq!(store.run(&run.id)?, Some(run.clone()));
    assert_eq!(store.run(&id("other"))?, None);
    let err = store.begin_run(&run).expect_err("duplicate id");
    assert_eq!(
        err.to_string(),
        format!(
            "run r1 already exists in {}; take a fresh id from Store::new_run_id",
            tmp.path().display()
        )
    );
    Ok(())
}

#[test]
fn new_run_ids_are_unique_and_typeable() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let store = Store::open(tmp.path())?;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..200 {
        let id = store.new_run_id()?;
        assert_eq!(id.as_str().len(), 20, "{id}");
        store.begin_run(&run_at(id.as_str(), 1))?;
        assert!(seen.insert(id));
    }
    Ok(())
}

#[test]
fn steps_need_a_run_and_come_back_in_index_order() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let store = Store::open(tmp.path())?;
    let run = run_at("r1", 5);
    let err = store
        .put_step(&run.id, &step("a", 0, StepStatus::Pending))
        .expect_err("no run yet");
    assert_eq!(
        err.to_string(),
        format!(
            "run r1 is not in {}; call begin_run first",
            tmp.path().display()
        )
    );
    store.begin_run(&run)?;
    // A run whose id extends this one's must not leak into its scans.
    store.begin_run(&run_at("r10", 6))?;
    store.put_step(&id("r10"), &step("other", 1, StepStatus::Running))?;
    for index in [256, 10, 2, 0, 1] {
        store.put_step(
            &run.id,
            &step(&format!("s{index}"), index, StepStatus::Pending),
        )?;
    }
    store.put_step(&run.id, &step("s2", 2, StepStatus::Running))?;
    let steps = store.steps(&run.id)?;
    let ids: Vec<_> = steps
        .iter()
        .map(|s| (s.step_id.as_str(), s.index))
        .collect();
    assert_eq!(
        ids,
        [("s0", 0), ("s1", 1), ("s2", 2), ("s10", 10), ("s256", 256)]
    );
    assert_eq!(steps[2].status, StepStatus::Running);
    assert!(store.steps(&id("nope"))?.is_empty());
    Ok(())
}

#[test]
fn finish_step_writes_the_step_and_its_logs_together() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let store = Store::open(tmp.path())?;
    let run = run_at("r1", 5);
    store.begin_run(&run)?;
    let mut b = step("b", 1, StepStatus::Succeeded);
    b.outputs = BTreeMap::from([("version".to_string(), "1.2.3".to_string())]);
    b.log_bytes = 99;
    store.finish_step(&run.id, &b, &lines(3, "b"))?;
    store.finish_step(&run.id, &step("a", 0, StepStatus::Failed), &lines(300, "a"))?;

    assert_eq!(store.steps(&run.id)?[1], b);
    let all = store.logs(&run.id, None)?;
    assert_eq!(all.len(), 303);
    // Step by step in plan order, then by seq (300 > 255 checks numeric order).
    let order: Vec<_> = all.iter().map(|l| (l.step_index, l.line.seq)).collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted);
    assert_eq!(all[0].step_id, "a");
    assert_eq!(all[300].step_id, "b");
    assert_eq!(all[301].line, lines(3, "b")[1]);

    let only_b = store.logs(&run.id, Some("b"))?;
    assert_eq!(
        only_b.iter().map(|l| l.line.clone()).collect::<Vec<_>>(),
        lines(3, "b")
    );
    let err = store.logs(&run.id, Some("zz")).expect_err("no such step");
    assert_eq!(
        err.to_string(),
        format!("run r1 in {} has no step `zz`", tmp.path().display())
    );
    Ok(())
}

#[test]
fn finish_step_replaces_earlier_lines_of_the_step() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let store = Store::open(tmp.path())?;
    let run = run_at("r1", 5);
    store.begin_run(&run)?;
    store.finish_step(
        &run.id,
        &step("a", 0, StepStatus::Failed),
        &lines(5, "first"),
    )?;
    store.finish_step(
        &run.id,
        &step("b", 1, StepStatus::Succeeded),
        &lines(2, "b"),
    )?;
    store.finish_step(
        &run.id,
        &step("a", 0, StepStatus::Succeeded),
        &lines(2, "second"),
    )?;
    let a = store.logs(&run.id, Some("a"))?;
    assert_eq!(
        a.iter().map(|l| l.line.text.as_str()).collect::<Vec<_>>(),
        ["second line 0", "second line 1"]
    );
    assert_eq!(store.logs(&run.id, Some("b"))?.len(), 2);
    Ok(())
}

#[test]
fn a_failed_finish_step_writes_nothing() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let store = Store::open(tmp.path())?;
    let ghost = id("ghost");
    let err = store
        .finish_step(&ghost, &step("a", 0, StepStatus::Succeeded), &lines(4, "a"))
        .expect_err("run was never begun");
    assert!(matches!(err, StoreError::UnknownRun { .. }), "{err:?}");
    assert!(store.steps(&ghost)?.is_empty());
    // Begin the run now: no orphan lines from the failed write show up.
    store.begin_run(&run_at("ghost", 1))?;
    assert!(store.logs(&ghost, None)?.is_empty());
    Ok(())
}

#[test]
fn readers_never_see_a_step_without_its_logs() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let store = Store::open(tmp.path())?;
    let run = run_at("r1", 5);
    store.begin_run(&run)?;
    let writer = {
        let store = store.clone();
        let run = run.id.clone();
        std::thread::spawn(move || -> Result<(), StoreError> {
            for index in 0..300 {
                store.finish_step(
                    &run,
                    &step(&format!("s{index}"), index, StepStatus::Succeeded),
                    &lines(20, "x"),
                )?;
            }
            Ok(())
        })
    };
    let mut checks = 0;
    while !writer.is_finished() || checks == 0 {
        // Read the steps first: the lines of every step seen were committed with it,
        // so the logs read afterwards hold all 20 of them.
        let steps = store.steps(&run.id)?;
        let logs = store.logs(&run.id, None)?;
        for s in &steps {
            let n = logs.iter().filter(|l| l.step_index == s.index).count();
            assert_eq!(n, 20, "step {} visible with {n} lines", s.index);
        }
        checks += 1;
    }
    writer.join().map_err(|_| "writer panicked")??;
    assert_eq!(store.logs(&run.id, None)?.len(), 300 * 20);
    Ok(())
}

#[test]
fn finish_run_needs_a_begun_run() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let store = Store::open(tmp.path())?;
    let err = store.finish_run(&run_at("r1", 5)).expect_err("never begun");
    assert!(matches!(err, StoreError::UnknownRun { .. }), "{err:?}");
    Ok(())
}

#[test]
fn runs_are_listed_newest_first() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let store = Store::open(tmp.path())?;
    assert!(store.runs(None)?.is_empty());
    // Same second, suffixes out of start order: the exact start time decides.
    store.begin_run(&run_at("20261122-034455-ffff", 1_795_319_095_100))?;
    store.begin_run(&run_at("20261122-034455-0001", 1_795_319_095_900))?;
    store.begin_run(&run_at("20261122-034455-8000", 1_795_319_095_500))?;
    store.begin_run(&run_at("20261121-120000-aaaa", 1_795_262_400_000))?;
    store.begin_run(&run_at("20261123-000000-0000", 1_795_392_000_000))?;
    let all: Vec<_> = store
        .runs(None)?
        .into_iter()
        .map(|r| r.id.to_string())
        .collect();
    assert_eq!(
        all,
        [
            "20261123-000000-0000",
            "20261122-034455-0001",
            "20261122-034455-8000",
            "20261122-034455-ffff",
            "20261121-120000-aaaa",
        ]
    );
    for limit in 0..=6 {
        let some: Vec<_> = store
            .runs(Some(limit))?
            .into_iter()
            .map(|r| r.id.to_string())
            .collect();
        assert_eq!(some, all[..limit.min(all.len())], "limit {limit}");
    }
    Ok(())
}

#[test]
fn resolve_takes_last_a_full_id_or_a_unique_prefix() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let store = Store::open(tmp.path())?;
    let dir = tmp.path().display();
    assert_eq!(
        store.resolve("last").expect_err("empty").to_string(),
        format!("no runs yet in {dir}")
    );
    assert_eq!(
        store.resolve("2026").expect_err("empty").to_string(),
        format!("no runs yet in {dir}")
    );

    store.begin_run(&run_at("20261121-120000-aaaa", 1_795_262_400_000))?;
    store.begin_run(&run_at("20261122-034455-7f3a", 1_795_319_095_000))?;
    store.begin_run(&run_at("20261122-034455-7f3b", 1_795_319_095_001))?;
    store.begin_run(&run_at("20261122-0344", 1))?; // a full id that prefixes others

    assert_eq!(store.resolve("last")?, id("20261122-034455-7f3b"));
    assert_eq!(
        store.resolve("20261122-034455-7f3a")?,
        id("20261122-034455-7f3a")
    );
    assert_eq!(store.resolve("20261121")?, id("20261121-120000-aaaa"));
    assert_eq!(store.resolve("20261122-0344")?, id("20261122-0344"));
    assert_eq!(
        store.resolve("2026").expect_err("ambiguous").to_string(),
        format!(
            "`2026` matches 4 runs in {dir}: 20261122-034455-7f3b, 20261122-034455-7f3a, \
             20261122-0344, 20261121-120000-aaaa; give more of the id"
        )
    );
    assert_eq!(
        store
            .resolve("20261122-034455-7f3")
            .expect_err("ambiguous")
            .to_string(),
        format!(
            "`20261122-034455-7f3` matches 2 runs in {dir}: 20261122-034455-7f3b, \
             20261122-034455-7f3a; give more of the id"
        )
    );
    assert_eq!(
        store.resolve("2025").expect_err("none").to_string(),
        format!("no run `2025` in {dir}")
    );
    assert_eq!(
        store.resolve("").expect_err("none").to_string(),
        format!("no run `` in {dir}")
    );
    Ok(())
}

#[test]
fn ambiguous_matches_list_the_newest_few() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let store = Store::open(tmp.path())?;
    for n in 0..8 {
        store.begin_run(&run_at(&format!("run-{n}"), n))?;
    }
    let err = store.resolve("run-").expect_err("ambiguous");
    assert_eq!(
        err.to_string(),
        format!(
            "`run-` matches 8 runs in {}: run-7, run-6, run-5, run-4, run-3 and 3 more; give \
             more of the id",
            tmp.path().display()
        )
    );
    Ok(())
}

#[test]
fn reopening_interrupts_runs_left_running() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let running = run_at("r-running", 1);
    let done = run_at("r-done", 2);
    {
        let store = Store::open(tmp.path())?;
        store.begin_run(&running)?;
        store.finish_step(
            &running.id,
            &step("a", 0, StepStatus::Succeeded),
            &lines(1, "a"),
        )?;
        store.put_step(&running.id, &step("b", 1, StepStatus::Running))?;
        store.put_step(&running.id, &step("c", 2, StepStatus::Pending))?;
        store.begin_run(&done)?;
        store.finish_run(&RunRecord {
            status: RunStatus::Failed,
            ..done.clone()
        })?;
        // Dropped without finish_run: as if the process died.
    }
    let store = Store::open(tmp.path())?;
    assert_eq!(store.recovered(), std::slice::from_ref(&running.id));
    let run = store.run(&running.id)?.ok_or("run missing")?;
    assert_eq!(run.status, RunStatus::Interrupted);
    assert_eq!(run.failure.as_deref(), Some(RUN_INTERRUPTED));
    let steps = store.steps(&running.id)?;
    let states: Vec<_> = steps
        .iter()
        .map(|s| (s.status, s.reason.as_deref()))
        .collect();
    assert_eq!(
        states,
        [
            (StepStatus::Succeeded, None),
            (StepStatus::Cancelled, Some(STEP_INTERRUPTED)),
            (StepStatus::Cancelled, Some(STEP_NEVER_STARTED)),
        ]
    );
    assert_eq!(
        store.run(&done.id)?.map(|r| r.status),
        Some(RunStatus::Failed)
    );
    drop(store);
    // Recovery happens once.
    assert!(Store::open(tmp.path())?.recovered().is_empty());
    Ok(())
}

#[test]
fn a_newer_schema_is_refused() -> TestResult {
    let tmp = tempfile::tempdir()?;
    drop(Store::open(tmp.path())?);
    {
        let db = raw_db(tmp.path());
        db.open_tree("meta")?
            .insert("schema_version", &(SCHEMA_VERSION + 1).to_be_bytes())?;
        db.flush()?;
    }
    let err = Store::open(tmp.path()).expect_err("newer schema");
    assert_eq!(
        err.to_string(),
        format!(
            "the data dir {} holds store schema version {}, but this flow reads at most \
             version {SCHEMA_VERSION}; upgrade flow, or use another data dir",
            tmp.path().display(),
            SCHEMA_VERSION + 1
        )
    );
    Ok(())
}

#[test]
fn a_corrupt_record_is_an_error_naming_its_key() -> TestResult {
    let tmp = tempfile::tempdir()?;
    {
        let store = Store::open(tmp.path())?;
        store.begin_run(&run_at("good", 1))?;
        store.finish_run(&RunRecord {
            status: RunStatus::Succeeded,
            ..run_at("good", 1)
        })?;
    }
    {
        let db = raw_db(tmp.path());
        db.open_tree("runs")?.insert("bad", &b"{not json"[..])?;
        let mut step_key = b"good\0".to_vec();
        step_key.extend_from_slice(&3u32.to_be_bytes());
        db.open_tree("steps")?.insert(step_key, &b"[]"[..])?;
        db.flush()?;
    }
    let store = Store::open(tmp.path())?;
    let dir = tmp.path().display();
    let err = store.run(&id("bad")).expect_err("corrupt run");
    assert!(
        matches!(&err, StoreError::Corrupt { tree: "runs", key, .. } if key == "bad"),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "corrupt record `bad` in the `runs` tree of the data dir {dir}: "
        )),
        "{text}"
    );
    assert!(
        text.ends_with("; move the data dir aside to start afresh"),
        "{text}"
    );
    assert!(store.runs(None).is_err());
    let err = store.steps(&id("good")).expect_err("corrupt step");
    assert!(
        err.to_string().starts_with(&format!(
            "corrupt record `good/3` in the `steps` tree of the data dir {dir}: "
        )),
        "{err}"
    );
    // Records around it still read.
    assert!(store.run(&id("good"))?.is_some());
    Ok(())
}

#[test]
fn a_corrupt_schema_version_is_an_error() -> TestResult {
    let tmp = tempfile::tempdir()?;
    {
        let db = raw_db(tmp.path());
        db.open_tree("meta")?.insert("schema_version", &b"1"[..])?;
        db.flush()?;
    }
    let err = Store::open(tmp.path()).expect_err("corrupt version");
    assert!(
        err.to_string()
            .starts_with("corrupt record `schema_version` in the `meta` tree"),
        "{err}"
    );
    Ok(())
}

#[test]
fn flush_async_completes() -> TestResult {
    struct ThreadWaker(std::thread::Thread);
    impl Wake for ThreadWaker {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let tmp = tempfile::tempdir()?;
    let store = Store::open(tmp.path())?;
    store.begin_run(&run_at("r1", 1))?;
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut flush = std::pin::pin!(store.flush_async());
    loop {
        match flush.as_mut().poll(&mut cx) {
            Poll::Ready(result) => return Ok(result?),
            Poll::Pending => std::thread::park(),
        }
    }
}

#[test]
fn long_logs_span_chunks_and_are_replaced_whole() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let store = Store::open(tmp.path())?;
    let run = run_at("r1", 5);
    store.begin_run(&run)?;
    let long = |n: u64, tag: &str| -> Vec<LogLine> {
        let mut ls = lines(n, tag);
        for l in &mut ls {
            l.text = format!("{} {}", l.text, "x".repeat(500));
        }
        ls
    };
    // ~250 KiB: several chunks. Given out of order: stored and returned by seq.
    let mut first = long(500, "first");
    first.reverse();
    store.finish_step(&run.id, &step("a", 0, StepStatus::Failed), &first)?;
    let back = store.logs(&run.id, Some("a"))?;
    assert_eq!(
        back.iter().map(|l| l.line.seq).collect::<Vec<_>>(),
        (0..500).collect::<Vec<_>>()
    );
    assert!(back.iter().all(|l| l.line.text.starts_with("first line")));

    // A retry with a shorter log leaves none of the first attempt's chunks behind.
    store.finish_step(
        &run.id,
        &step("a", 0, StepStatus::Succeeded),
        &long(3, "retry"),
    )?;
    let back = store.logs(&run.id, None)?;
    assert_eq!(back.len(), 3);
    assert!(back.iter().all(|l| l.line.text.starts_with("retry line")));
    store.finish_step(&run.id, &step("a", 0, StepStatus::Succeeded), &[])?;
    assert!(store.logs(&run.id, None)?.is_empty());
    Ok(())
}

#[test]
fn a_corrupt_log_chunk_is_an_error_naming_its_key() -> TestResult {
    let tmp = tempfile::tempdir()?;
    {
        let store = Store::open(tmp.path())?;
        store.begin_run(&run_at("r1", 1))?;
        store.finish_step(
            &id("r1"),
            &step("a", 2, StepStatus::Succeeded),
            &lines(3, "a"),
        )?;
    }
    {
        let db = raw_db(tmp.path());
        let mut key = b"r1\0".to_vec();
        key.extend_from_slice(&2u32.to_be_bytes());
        key.extend_from_slice(&0u64.to_be_bytes());
        db.open_tree("logs")?.insert(key, &b"[{\"seq\":"[..])?;
        db.flush()?;
    }
    let store = Store::open(tmp.path())?;
    let err = store.logs(&id("r1"), None).expect_err("corrupt chunk");
    assert!(
        err.to_string().starts_with(&format!(
            "corrupt record `r1/2/0` in the `logs` tree of the data dir {}: ",
            tmp.path().display()
        )),
        "{err}"
    );
    Ok(())
}

#[test]
fn attestations_are_written_with_their_step_and_run() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let store = Store::open(tmp.path())?;
    let run = run_at("r1", 1);
    store.begin_run(&run)?;
    let attestation = |n: &str| StepAttestation {
        position: 0,
        link_file_name: format!("{n}.12345678.link"),
        statement: format!("{{\"statement\":\"{n}\"}}"),
        link: format!("{{\"link\":\"{n}\"}}"),
        keyid: "k".into(),
    };
    // Out of index order, as parallel steps finish.
    store.finish_step_attested(
        &run.id,
        &step("b", 1, StepStatus::Failed),
        &[],
        Some(&attestation("b")),
    )?;
    store.finish_step_attested(
        &run.id,
        &step("a", 0, StepStatus::Succeeded),
        &lines(2, "a"),
        Some(&attestation("a")),
    )?;
    let stored = store.step_attestations(&run.id)?;
    assert_eq!(stored, vec![(0, attestation("a")), (1, attestation("b"))]);
    assert_eq!(store.steps(&run.id)?.len(), 2);

    // A write that fails writes no attestation either.
    let ghost = id("ghost");
    assert!(
        store
            .finish_step_attested(
                &ghost,
                &step("a", 0, StepStatus::Succeeded),
                &[],
                Some(&attestation("x"))
            )
            .is_err()
    );
    assert!(store.step_attestations(&ghost)?.is_empty());

    assert_eq!(store.run_attestation(&run.id)?, None);
    let finished = RunRecord {
        status: RunStatus::Succeeded,
        finished_at: Some(2),
        ..run.clone()
    };
    let run_attestation = RunAttestation {
        layout: "L".into(),
        chain: "C".into(),
        owner_public_key: "P".into(),
    };
    store.finish_run_attested(&finished, Some(&run_attestation))?;
    assert_eq!(store.run_attestation(&run.id)?, Some(run_attestation));
    assert_eq!(
        store.run(&run.id)?.map(|r| r.status),
        Some(RunStatus::Succeeded)
    );
    Ok(())
}

#[test]
fn a_step_s_changes_are_written_with_it_and_survive_a_reopen() -> TestResult {
    use flow_store::{Change, Changes, Entry, StepCompletion};
    let tmp = tempfile::tempdir()?;
    let run = run_at("r1", 1);
    let mut changes = Changes::new();
    changes.insert("gone.txt".into(), Change::Removed);
    changes.insert(
        "out/app".into(),
        Change::Put {
            entry: Entry::File {
                sha256: "ab".repeat(32),
                size: 3,
                executable: true,
                modified_ns: Some(1_700_000_000_000_000_000),
            },
        },
    );
    {
        let store = Store::open(tmp.path())?;
        store.begin_run(&run)?;
        store.complete_step(
            &run.id,
            &step("build", 0, StepStatus::Succeeded),
            StepCompletion {
                lines: &lines(1, "build"),
                changes: Some(&changes),
                ..StepCompletion::default()
            },
        )?;
        // A step that did not run has none.
        store.finish_step(&run.id, &step("skipped", 1, StepStatus::Skipped), &[])?;
        store.flush()?;
    }
    let store = Store::open(tmp.path())?;
    assert_eq!(store.step_changes(&run.id, 0)?, Some(changes));
    assert_eq!(store.step_changes(&run.id, 1)?, None);
    // A step of an unknown run writes nothing.
    let ghost = id("ghost");
    assert!(
        store
            .complete_step(
                &ghost,
                &step("a", 0, StepStatus::Succeeded),
                StepCompletion::default()
            )
            .is_err()
    );
    assert_eq!(store.step_changes(&ghost, 0)?, None);
    Ok(())
}

/// The disk filled while sled wrote a snapshot: the half-written one is left
/// aside, the store opens with everything recorded before.
#[test]
fn a_snapshot_cut_short_by_a_full_disk_does_not_stop_the_store_opening() -> TestResult {
    let tmp = tempfile::tempdir()?;
    {
        let store = Store::open(tmp.path())?;
        store.begin_run(&run_at("r1", 1))?;
        store.flush()?;
    }
    // Dropped handles let go of the lock on their own time.
    std::thread::sleep(std::time::Duration::from_millis(100));
    std::fs::write(
        tmp.path().join("store/snap.7FFFFFFFFFFFFFFF.generating"),
        b"",
    )?;
    let store = Store::open(tmp.path())?;
    assert_eq!(store.runs(None)?.len(), 1);
    assert!(
        !tmp.path()
            .join("store/snap.7FFFFFFFFFFFFFFF.generating")
            .exists()
    );
    Ok(())
}

#[test]
fn a_full_disk_is_said_in_words() {
    let err = StoreError::Storage {
        dir: "/data".into(),
        source: sled::Error::Io(std::io::Error::from_raw_os_error(28)),
    };
    assert_eq!(
        err.to_string(),
        "no space left on /data (the data dir): free some space and run again; what was \
         recorded before is kept"
    );
}

/// Every file below `dir` with its size and modification time.
fn listing(dir: &Path) -> Vec<(std::path::PathBuf, u64, std::time::SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                out.push((entry.path(), meta.len(), meta.modified().unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// A reader of `dir`, once this process's dropped writer has let go of it (sled's
/// flusher can hold a dropped handle a little longer).
fn reader(dir: &Path) -> Result<Store, StoreError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        match Store::open_reader(dir) {
            Err(StoreError::AlreadyOpen { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

#[test]
fn a_reader_sees_the_runs_and_writes_nothing_in_the_data_dir() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("data");
    let err = Store::open_reader(&dir).expect_err("no store yet");
    assert!(matches!(err, StoreError::NoRuns { .. }), "{err:?}");
    assert!(!dir.exists(), "the reader created the data dir");
    let running = run_at("20240101T000000Z-aaaa", 1);
    {
        let store = Store::open(&dir)?;
        store.begin_run(&running)?;
        store.put_step(&running.id, &step("a", 0, StepStatus::Running))?;
        store.flush()?;
    }
    // Once the writer has let go (a reader gets the lock), nothing changes the dir.
    drop(reader(&dir)?);
    let before = listing(&dir);
    for _ in 0..3 {
        let reader = reader(&dir)?;
        let runs = reader.runs(None)?;
        assert_eq!(runs.len(), 1);
        // No recovery: a run left running reads as running.
        assert_eq!(runs[0].status, RunStatus::Running);
        assert!(reader.recovered().is_empty());
        assert_eq!(reader.steps(&running.id)?[0].status, StepStatus::Running);
    }
    assert_eq!(listing(&dir), before, "a reader wrote in the data dir");

    // The data dir is free while a reader is open: a writer opens it (and recovers the
    // run); the reader's copy stays as it was read, a new reader sees the change.
    let reader = reader(&dir)?;
    let writer = Store::open(&dir)?;
    assert_eq!(writer.recovered(), std::slice::from_ref(&running.id));
    drop(writer);
    assert_eq!(reader.runs(None)?[0].status, RunStatus::Running);
    let again = self::reader(&dir)?;
    assert_eq!(again.runs(None)?[0].status, RunStatus::Interrupted);
    Ok(())
}

/// Holds sled's lock on `dir`'s database the way a reader does, for `hold`.
fn hold_lock(dir: &Path, hold: std::time::Duration) -> std::thread::JoinHandle<()> {
    let file = std::fs::File::open(dir.join("store/db")).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while file.try_lock().is_err() {
        assert!(std::time::Instant::now() < deadline, "the lock is held");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    std::thread::spawn(move || {
        std::thread::sleep(hold);
        drop(file);
    })
}

#[test]
fn a_writer_waits_for_a_readers_brief_hold_but_not_for_a_live_writer() -> TestResult {
    let tmp = tempfile::tempdir()?;
    drop(Store::open(tmp.path())?);
    // The pid file names a process that has ended: whoever holds the lock is a reader.
    let mut ended = std::process::Command::new("true").spawn()?;
    ended.wait()?;
    std::fs::write(tmp.path().join("store/flow.pid"), ended.id().to_string())?;
    let held = hold_lock(tmp.path(), std::time::Duration::from_millis(300));
    let err = Store::open_reader(tmp.path()).expect_err("a reader does not wait");
    assert!(
        matches!(err, StoreError::InUse { pid, .. } if pid == ended.id()),
        "{err:?}"
    );
    let store = Store::open(tmp.path())?;
    held.join().unwrap();
    drop(store);

    // No pid file at all: the same.
    std::fs::remove_file(tmp.path().join("store/flow.pid"))?;
    let held = hold_lock(tmp.path(), std::time::Duration::from_millis(300));
    drop(Store::open(tmp.path())?);
    held.join().unwrap();

    // A live process named by the pid file is a writer: refused at once.
    let mut live = std::process::Command::new("sleep").arg("30").spawn()?;
    std::fs::write(tmp.path().join("store/flow.pid"), live.id().to_string())?;
    let held = hold_lock(tmp.path(), std::time::Duration::from_millis(2500));
    let start = std::time::Instant::now();
    let err = Store::open(tmp.path()).expect_err("held by a live process");
    assert!(
        matches!(err, StoreError::InUse { pid, .. } if pid == live.id()),
        "{err:?}"
    );
    assert!(start.elapsed() < std::time::Duration::from_secs(1));
    live.kill()?;
    live.wait()?;
    held.join().unwrap();
    Ok(())
}
