//! The mixed pipeline set: what each pipeline does and how its run must end.

use std::path::{Path, PathBuf};

/// How a pipeline's run ends when nothing interrupts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Every step succeeds.
    Succeeds,
    /// The run fails, with this in a step's reason.
    Fails(&'static str),
    /// Either (a step that fails at random, with retries).
    Either,
}

/// One pipeline of the set.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub name: &'static str,
    pub file: PathBuf,
    pub expect: Expect,
}

/// What a host command's sleep carries so that a process left behind by a
/// step can be found: no other process on the machine sleeps this long.
pub const MARK_SECONDS: &str = "30.4127";

fn step_build(id: &str, needs: &str, command: &str, extra: &str) -> String {
    format!(
        "  {id}:\n    uses: build\n{needs}    grants: {{ exec: [sh] }}\n{extra}    with:\n      command: [sh, -c, \"{command}\"]\n      allow-no-artifacts: true\n"
    )
}

/// Writes the set into `dir` (with a git repository to check out) and returns it.
pub fn write_set(dir: &Path, advisory_db: Option<&Path>) -> std::io::Result<Vec<Pipeline>> {
    std::fs::create_dir_all(dir)?;
    let head = "version: 1\nname: NAME\nsteps:\n";
    let mut set = vec![
        (
            "fan",
            "  a: { uses: echo, with: { message: a } }\n  b: { uses: echo, with: { message: b } }\n  c:\n    uses: echo\n    needs: [a, b]\n    with: { message: \"${{ steps.a.outputs.message }}${{ steps.b.outputs.message }}\" }\n".to_string(),
            Expect::Succeeds,
        ),
        (
            "files",
            step_build("write", "", "i=0; while [ $i -lt 300 ]; do echo $i > f$i; i=$((i+1)); done", "")
                + "  list:\n    uses: echo\n    needs: [write]\n    with: { message: written }\n",
            Expect::Succeeds,
        ),
        (
            "slow",
            step_build("first", "", "sleep 0.7; echo one > one", "")
                + &step_build("second", "    needs: [first]\n", "sleep 0.7; cat one > two", ""),
            Expect::Succeeds,
        ),
        (
            "timeout",
            step_build(
                "stuck",
                "",
                &format!("sleep {MARK_SECONDS}"),
                "    timeout: 1s\n",
            ) + "  after:\n    uses: echo\n    needs: [stuck]\n    with: { message: never }\n",
            Expect::Fails("timed out"),
        ),
        (
            "failing",
            step_build("broken", "", "echo about to fail; exit 3", "")
                + "  after:\n    uses: echo\n    needs: [broken]\n    with: { message: never }\n",
            Expect::Fails("exit"),
        ),
        (
            "flaky",
            step_build(
                "coin",
                "",
                "sleep 0.2; read -r x < /dev/urandom; test $((${#x} % 3)) -ne 0",
                "    retry: { attempts: 3, backoff: 100ms, on: [failed] }\n",
            ),
            Expect::Either,
        ),
    ];
    if let Some(db) = advisory_db {
        let repo = dir.join("repo");
        make_repo(&repo)?;
        set.push((
            "scan",
            format!(
                "  checkout:\n    uses: checkout\n    grants: {{ fs: [{{ path: \"{repo}\", access: read, hash: false }}] }}\n    with: {{ path: src }}\n  scan:\n    uses: scan\n    needs: [checkout]\n    grants: {{ fs: [{{ path: \"{db}\", access: read }}] }}\n    with: {{ db: \"{db}\", lockfiles: [src/Cargo.lock], fail-on: none }}\n",
                repo = repo.display(),
                db = db.display()
            ),
            Expect::Succeeds,
        ));
    }
    let mut pipelines = Vec::new();
    for (name, steps, expect) in set {
        let file = dir.join(format!("{name}.yaml"));
        std::fs::write(&file, head.replace("NAME", name) + &steps)?;
        pipelines.push(Pipeline { name, file, expect });
    }
    Ok(pipelines)
}

/// A repository with a Cargo.lock for the scan pipeline to check out.
fn make_repo(dir: &Path) -> std::io::Result<()> {
    if dir.join(".git").is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("Cargo.lock"),
        "version = 3\n\n[[package]]\nname = \"smallvec\"\nversion = \"1.6.0\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n\n[[package]]\nname = \"time\"\nversion = \"0.1.43\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n",
    )?;
    for args in [
        &["init", "-q"][..],
        &["add", "-A"],
        &["commit", "-q", "-m", "lock"],
    ] {
        let status = std::process::Command::new("git")
            .args(["-c", "user.name=soak", "-c", "user.email=soak@localhost"])
            .args(["-c", "commit.gpgsign=false"])
            .args(args)
            .current_dir(dir)
            .status()?;
        if !status.success() {
            return Err(std::io::Error::other(format!("git {args:?} failed")));
        }
    }
    Ok(())
}
