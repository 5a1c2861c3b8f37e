//! The soak (`flow-soak`, tests/soak) for a few dozen rounds: a mixed pipeline
//! set run by the real `flow`, each run left alone, interrupted, terminated or
//! killed and resumed, with every check the long soak makes. The long run is
//! documented in docs/robustness.md.

/// How many rounds: 24 (about a minute); `FLOW_SOAK_ROUNDS` for more.
fn rounds() -> usize {
    std::env::var("FLOW_SOAK_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24)
}

#[test]
fn a_short_soak_finds_no_failure() {
    let work = tempfile::tempdir().unwrap();
    let options = flow_soak::Options {
        flow: env!("CARGO_BIN_EXE_flow").into(),
        work: work.path().to_path_buf(),
        duration: std::time::Duration::from_secs(600),
        max_rounds: Some(rounds()),
        // Fixed, so that a failure here replays; the long soak picks its own.
        seed: 0x5eed_f10e,
        advisory_db: flow_soak::bundled_advisory_db(),
        verbose: true,
    };
    let report = flow_soak::run(&options).unwrap();
    eprint!("{}", report.render());
    assert!(report.is_clean(), "{}", report.render());
    assert_eq!(report.rounds, rounds());
    // Each kind of interruption happened, and found the run in the state it left.
    let seen = |what: &str| report.outcomes.keys().any(|(_, w)| *w == what);
    assert!(seen("ran to its end"), "{}", report.render());
    assert!(seen("cancelled"), "{}", report.render());
    assert!(seen("killed mid-run, resumed"), "{}", report.render());
}
