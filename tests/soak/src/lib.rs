//! The soak: runs the `flow` command over a mixed pipeline set for a set time,
//! one run after another in one data dir, each left alone, cancelled (SIGINT or
//! SIGTERM) or killed (SIGKILL, then resumed) at a random moment, and checks after
//! each what flow promises:
//!
//! - no flow process panics, hangs, or exits with a code its outcome does not give;
//! - every run ends recorded as what happened to it (never left `running`), and a
//!   killed run resumes to the end its pipeline has when nothing interrupts it;
//! - every run's provenance verifies (`flow verify`);
//! - no host command outlives its step;
//! - the store lists every run recorded so far.
//!
//! What went wrong is counted by class, with the first examples of each.

mod pipelines;
mod report;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use pipelines::{Expect, Pipeline};
pub use report::{Class, Report};

/// What to soak, and for how long.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `flow` binary.
    pub flow: PathBuf,
    /// Where the pipelines, the data dir and the cache go.
    pub work: PathBuf,
    /// How long to go on starting rounds.
    pub duration: Duration,
    /// At most this many rounds.
    pub max_rounds: Option<usize>,
    /// The random choices' seed (printed, to replay a soak).
    pub seed: u64,
    /// The RustSec database for the scan pipeline (left out without it).
    pub advisory_db: Option<PathBuf>,
    /// Say each round on stderr.
    pub verbose: bool,
}

/// What a round does to its run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// Left alone.
    Complete,
    /// SIGINT after a while (Ctrl-C).
    Interrupt,
    /// SIGTERM after a while.
    Terminate,
    /// SIGKILL after a while, then `flow run --resume`.
    Kill,
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            Action::Complete => "complete",
            Action::Interrupt => "interrupt",
            Action::Terminate => "terminate",
            Action::Kill => "kill",
        })
    }
}

/// A small deterministic generator (xorshift64*), enough to pick actions.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A seed from the system's randomness.
pub fn random_seed() -> u64 {
    let mut bytes = [0u8; 8];
    let _ = getrandom::getrandom(&mut bytes);
    u64::from_le_bytes(bytes) | 1
}

/// The longest a flow command may take before it counts as hung.
const HANG: Duration = Duration::from_secs(120);

/// What one flow command did.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    hung: bool,
}

struct Soak<'a> {
    options: &'a Options,
    data: PathBuf,
    cache: PathBuf,
    report: Report,
    /// Runs recorded so far (checked against `flow runs`).
    recorded: usize,
    /// How long each pipeline's latest uninterrupted run took.
    usual: std::collections::HashMap<&'static str, Duration>,
}

/// A pipeline's length until one of its runs was left alone.
const DEFAULT_LENGTH: Duration = Duration::from_millis(1500);

/// Runs the soak and returns its report.
pub fn run(options: &Options) -> std::io::Result<Report> {
    let set = pipelines::write_set(
        &options.work.join("pipelines"),
        options.advisory_db.as_deref(),
    )?;
    let mut soak = Soak {
        options,
        data: options.work.join("data"),
        cache: options.work.join("cache"),
        report: Report::new(options.seed),
        recorded: 0,
        usual: Default::default(),
    };
    // A key of the soak's own, outside the data dir.
    let keys = options.work.join("keys");
    if !keys.join("signing-key.pem").is_file() {
        let made = soak.ran(
            "flow keys generate",
            &["keys", "generate", "--out", &keys.display().to_string()],
        );
        if made.code != Some(0) {
            return Err(std::io::Error::other(format!(
                "flow keys generate: {}",
                made.stderr.trim()
            )));
        }
    }
    let mut rng = Rng(options.seed | 1);
    let started = Instant::now();
    let mut round = 0usize;
    while started.elapsed() < options.duration && options.max_rounds.is_none_or(|m| round < m) {
        let pipeline = &set[rng.below(set.len() as u64) as usize];
        let action = match rng.below(10) {
            0..=3 => Action::Complete,
            4 | 5 => Action::Interrupt,
            6 => Action::Terminate,
            _ => Action::Kill,
        };
        // A moment within the pipeline's usual length (as its uninterrupted runs
        // took), so that most signals land mid-run.
        let usual = soak
            .usual
            .get(pipeline.name)
            .copied()
            .unwrap_or(DEFAULT_LENGTH);
        let delay = Duration::from_millis(rng.below(usual.as_millis() as u64 * 11 / 10 + 1));
        soak.round(round, pipeline, action, delay);
        round += 1;
        if round.is_multiple_of(25) {
            soak.check_store(round);
        }
    }
    soak.check_store(round);
    soak.report.rounds = round;
    soak.report.elapsed = started.elapsed();
    Ok(soak.report)
}

impl Soak<'_> {
    fn flow(&self) -> Command {
        let mut command = Command::new(&self.options.flow);
        command
            .arg("--data-dir")
            .arg(&self.data)
            .arg("--cache-dir")
            .arg(&self.cache)
            .env(
                "FLOW_SIGNING_KEY",
                self.options.work.join("keys/signing-key.pem"),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// Runs a flow command to its end (or kills it as hung).
    fn ran(&mut self, what: &str, args: &[&str]) -> Ran {
        match self.flow().args(args).spawn() {
            Ok(child) => wait(child, None),
            Err(e) => {
                self.report
                    .failure(Class::Unexpected, format!("{what}: cannot start flow: {e}"));
                Ran {
                    code: None,
                    stdout: String::new(),
                    stderr: String::new(),
                    hung: false,
                }
            }
        }
    }

    fn round(&mut self, round: usize, pipeline: &Pipeline, action: Action, delay: Duration) {
        let label = format!("round {round}: {} {action} after {delay:?}", pipeline.name);
        let file = pipeline.file.display().to_string();
        let before = self.run_ids();
        let child = match self.flow().args(["--json", "run", &file]).spawn() {
            Ok(child) => child,
            Err(e) => {
                self.report.failure(
                    Class::Unexpected,
                    format!("{label}: cannot start flow: {e}"),
                );
                return;
            }
        };
        let signal = match action {
            Action::Complete => None,
            Action::Interrupt => Some(libc::SIGINT),
            Action::Terminate => Some(libc::SIGTERM),
            Action::Kill => Some(libc::SIGKILL),
        };
        let began = Instant::now();
        let ran = wait(child, signal.map(|s| (s, delay)));
        if action == Action::Complete {
            self.usual.insert(pipeline.name, began.elapsed());
        }
        if !self.judge_process(&label, &ran) {
            return;
        }
        let Some(run) = self.new_run(&before) else {
            // Killed (or interrupted) before the run was recorded: nothing to check.
            if ran.code == Some(0) || (action == Action::Complete) {
                self.report.failure(
                    Class::Lost,
                    format!("{label}: the run is not in `flow runs`"),
                );
            } else {
                self.report
                    .outcome(action, "stopped before the run was recorded");
            }
            if self.options.verbose {
                eprintln!("{label}: not recorded");
            }
            return;
        };
        self.recorded += 1;
        let status = self.status(&run);
        let finished = match (action, status.as_deref()) {
            (Action::Kill, Some("running" | "interrupted")) => {
                let resumed = self.ran(&label, &["--json", "run", &file, "--resume", &run]);
                if !self.judge_process(&format!("{label}, resumed"), &resumed) {
                    return;
                }
                self.report.outcome(action, "killed mid-run, resumed");
                self.status(&run)
            }
            (Action::Interrupt | Action::Terminate, Some("cancelled")) => {
                self.report.outcome(action, "cancelled");
                Some("cancelled".to_string())
            }
            (_, status) => {
                if action != Action::Complete {
                    self.report.outcome(action, "ended before the signal");
                } else {
                    self.report.outcome(action, "ran to its end");
                }
                status.map(str::to_string)
            }
        };
        self.judge_end(&label, pipeline, &run, finished.as_deref());
        self.check_orphans(&label);
        if self.options.verbose {
            eprintln!("{label}: {}", finished.as_deref().unwrap_or("?"));
        }
    }

    /// A panic, a hang or an exit code flow does not give are failures; says
    /// whether the round can go on being checked.
    fn judge_process(&mut self, label: &str, ran: &Ran) -> bool {
        if let Some(at) = ran.stderr.find("panicked at") {
            let line = ran.stderr[at..].lines().next().unwrap_or_default();
            self.report
                .failure(Class::Panic, format!("{label}: {line}"));
        }
        if ran.hung {
            self.report.failure(
                Class::Hang,
                format!("{label}: flow did not end within {HANG:?}"),
            );
            return false;
        }
        match ran.code {
            // Success, a failed or cancelled run; killed by the soak's signal.
            Some(0 | 1) | None => true,
            Some(code) => {
                let why = ran.stderr.lines().last().unwrap_or_default();
                self.report.failure(
                    Class::Unexpected,
                    format!("{label}: flow exited {code}: {why}"),
                );
                false
            }
        }
    }

    /// The run ended as its pipeline ends, and its provenance verifies.
    fn judge_end(&mut self, label: &str, pipeline: &Pipeline, run: &str, status: Option<&str>) {
        let Some(status) = status else {
            self.report
                .failure(Class::Lost, format!("{label}: run {run} cannot be shown"));
            return;
        };
        let fine = match (status, pipeline.expect) {
            ("cancelled", _) => true,
            ("succeeded", Expect::Succeeds | Expect::Either) => true,
            ("failed", Expect::Fails(why)) => self.reason_has(run, why),
            ("failed", Expect::Either) => true,
            ("running" | "interrupted", _) => {
                self.report.failure(
                    Class::LeftRunning,
                    format!("{label}: run {run} is still `{status}` after its process ended"),
                );
                return;
            }
            _ => false,
        };
        if !fine {
            self.report.failure(
                Class::WrongEnd,
                format!(
                    "{label}: run {run} ended `{status}`, expected {:?}",
                    pipeline.expect
                ),
            );
        }
        let verified = self.ran(label, &["verify", run]);
        if verified.code != Some(0) {
            let why = verified
                .stdout
                .lines()
                .chain(verified.stderr.lines())
                .last()
                .unwrap_or_default()
                .to_string();
            self.report
                .failure(Class::Verify, format!("{label}: flow verify {run}: {why}"));
        }
    }

    fn run_ids(&mut self) -> Vec<String> {
        let ran = self.ran("flow runs", &["--json", "runs", "-n", "1000000"]);
        ran.stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["id"].as_str().map(str::to_string))
            .collect()
    }

    fn new_run(&mut self, before: &[String]) -> Option<String> {
        self.run_ids().into_iter().find(|id| !before.contains(id))
    }

    fn show(&mut self, run: &str) -> Option<serde_json::Value> {
        let ran = self.ran("flow show", &["--json", "show", run]);
        serde_json::from_str(ran.stdout.trim()).ok()
    }

    fn status(&mut self, run: &str) -> Option<String> {
        self.show(run)
            .and_then(|v| v["run"]["status"].as_str().map(str::to_string))
    }

    fn reason_has(&mut self, run: &str, why: &str) -> bool {
        self.show(run).is_some_and(|v| {
            v["steps"].as_array().is_some_and(|steps| {
                steps
                    .iter()
                    .any(|s| s["reason"].as_str().is_some_and(|r| r.contains(why)))
            })
        })
    }

    /// No process sleeps the marked time once its round is over.
    fn check_orphans(&mut self, label: &str) {
        let left = processes_with(pipelines::MARK_SECONDS);
        if !left.is_empty() {
            self.report.failure(
                Class::Orphan,
                format!(
                    "{label}: {} host command(s) outlived their step",
                    left.len()
                ),
            );
            for pid in left {
                // SAFETY: kill(2) on a pid read from /proc; at worst it is gone.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
    }

    fn check_store(&mut self, round: usize) {
        let ids = self.run_ids();
        if ids.len() != self.recorded {
            self.report.failure(
                Class::Lost,
                format!(
                    "after round {round}: `flow runs` lists {} runs, {} were recorded",
                    ids.len(),
                    self.recorded
                ),
            );
            self.recorded = ids.len();
        }
    }
}

/// Waits for `child`, sending it `signal` after its delay; kills it as hung after
/// [`HANG`].
fn wait(mut child: Child, signal: Option<(i32, Duration)>) -> Ran {
    let started = Instant::now();
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = reader(out.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let stderr = reader(err.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let mut pending = signal;
    let mut hung = false;
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break Some(status);
        }
        if let Some((signal, delay)) = pending
            && started.elapsed() >= delay
        {
            // SAFETY: kill(2) on our own child, not yet reaped.
            unsafe {
                libc::kill(child.id() as i32, signal);
            }
            pending = None;
        }
        if started.elapsed() > HANG {
            hung = true;
            let _ = child.kill();
            break child.wait().ok();
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Ran {
        code: status.and_then(|s| s.code()),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
        hung,
    }
}

/// The pids whose command line holds `mark`.
fn processes_with(mark: &str) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = std::process::id() as i32;
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| c.split(|&b| b == 0).any(|arg| arg == mark.as_bytes()))
                .unwrap_or(false)
        })
        .collect()
}

/// The project's RustSec database, when the soak runs from a checkout.
pub fn bundled_advisory_db() -> Option<PathBuf> {
    let db = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../plugins/scan/core/tests/data/rustsec-advisory-db");
    db.canonicalize().ok()
}
