//! `flow-soak`: runs the flow command over a mixed pipeline set for a set time
//! with random kills, cancels and timeouts, and reports failures by class (see
//! docs/robustness.md):
//!
//!     cargo build --release -p flow-cli -p flow-soak
//!     target/release/flow-soak --for 1h
//!
//! Exits 0 when no failure was seen, 1 otherwise, 2 on bad arguments.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage: flow-soak [--for DURATION] [--rounds N] [--seed N] [--flow PATH] [--work DIR] [--verbose]
  --for DURATION   how long to start rounds: 90s, 30m, 1h (default 10m)
  --rounds N       stop after N rounds
  --seed N         the random choices' seed (default: random, printed)
  --flow PATH      the flow binary (default: `flow` beside this program)
  --work DIR       where pipelines and the data dir go (default: a new temporary directory, kept)
  --verbose        one line per round on stderr";

fn duration(text: &str) -> Option<Duration> {
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = number.parse().ok()?;
    Some(Duration::from_secs(match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return None,
    }))
}

fn main() -> ExitCode {
    let mut options = flow_soak::Options {
        flow: std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("flow")))
            .unwrap_or_else(|| PathBuf::from("flow")),
        work: PathBuf::new(),
        duration: Duration::from_secs(600),
        max_rounds: None,
        seed: flow_soak::random_seed(),
        advisory_db: flow_soak::bundled_advisory_db(),
        verbose: false,
    };
    let mut work = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next();
        let parsed = match arg.as_str() {
            "--for" => value()
                .and_then(|v| duration(&v))
                .map(|d| options.duration = d),
            "--rounds" => value()
                .and_then(|v| v.parse().ok())
                .map(|n| options.max_rounds = Some(n)),
            "--seed" => value()
                .and_then(|v| v.parse().ok())
                .map(|n| options.seed = n),
            "--flow" => value().map(|v| options.flow = PathBuf::from(v)),
            "--work" => value().map(|v| work = Some(PathBuf::from(v))),
            "--verbose" => {
                options.verbose = true;
                Some(())
            }
            _ => None,
        };
        if parsed.is_none() {
            eprintln!("flow-soak: bad argument `{arg}`\n{USAGE}");
            return ExitCode::from(2);
        }
    }
    options.work = match work {
        Some(dir) => dir,
        None => match tempfile_dir() {
            Ok(dir) => dir,
            Err(e) => {
                eprintln!("flow-soak: cannot make a work directory: {e}");
                return ExitCode::from(2);
            }
        },
    };
    eprintln!(
        "flow-soak: {} for {:?} (seed {}), in {}",
        options.flow.display(),
        options.duration,
        options.seed,
        options.work.display()
    );
    match flow_soak::run(&options) {
        Ok(report) => {
            print!("{}", report.render());
            if report.is_clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("flow-soak: {e}");
            ExitCode::from(2)
        }
    }
}

/// A new directory under the system's temporary directory.
fn tempfile_dir() -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "flow-soak-{}",
        flow_soak::random_seed() % 1_000_000
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
