//! A full disk. The data dir (store, objects, views, workspaces) sits on a small
//! tmpfs, filled to leave a little less room each time, so that the disk runs
//! out at every stage of a run: as it starts, while a step writes, while its files
//! are kept, while the record, a cache entry or the workspace is written. Each
//! time the run fails saying "no space left on DIR" (or succeeds), nothing
//! recorded before is lost, the store opens once space is freed, and the next run
//! succeeds and verifies. Mounting needs root: elsewhere the test says it did
//! not run.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::session::Session;

const PIPELINE: &str = r#"version: 1
name: disk
inputs:
  seed: { type: string, default: "0" }
steps:
  write:
    uses: build
    grants: { exec: [sh, head] }
    with:
      command: [sh, -c, 'echo ${{ inputs.seed }} > seed.txt && head -c 1000000 /dev/urandom > big.bin']
      artifacts: [big.bin, seed.txt]
  talk:
    uses: build
    grants: { exec: [sh, head, base64] }
    with:
      command: [sh, -c, 'echo ${{ inputs.seed }}; head -c 600000 /dev/urandom | base64']
      allow-no-artifacts: true
  copy:
    uses: build
    needs: [write]
    grants: { exec: [sh, cp] }
    with:
      command: [sh, -c, 'cp big.bin copy.bin']
      artifacts: [copy.bin]
"#;

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: PathBuf, size: &str) -> Tmpfs {
        std::fs::create_dir_all(&at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&at)
            .output()
            .expect("mount runs");
        assert!(
            out.status.success(),
            "mount: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(at)
    }

    /// Fills it to leave `free` bytes (as near as the file system allows).
    fn fill(&self, free: u64) -> PathBuf {
        let filler = self.0.join("filler");
        let available = available(&self.0);
        let size = available.saturating_sub(free);
        let file = std::fs::File::create(&filler).unwrap();
        // Written, not allocated: tmpfs counts pages written.
        let mut left = size;
        let block = vec![0u8; 64 * 1024];
        let mut file = std::io::BufWriter::new(file);
        while left > 0 {
            let n = left.min(block.len() as u64) as usize;
            if std::io::Write::write_all(&mut file, &block[..n]).is_err() {
                break;
            }
            left -= n as u64;
        }
        let _ = std::io::Write::flush(&mut file);
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn available(dir: &Path) -> u64 {
    let out = Command::new("df")
        .args(["-B1", "--output=avail"])
        .arg(dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[test]
fn a_full_disk_fails_the_run_in_words_and_loses_nothing() {
    if !is_root() {
        eprintln!("NOT RUN: mounting a tmpfs needs root (the full-disk test)");
        return;
    }
    let session = Session::new();
    session.file("disk.yaml", PIPELINE);
    // KiB left free before the run: from none to more than the run needs.
    let frees = [
        0u64, 32, 128, 512, 1024, 1536, 2048, 2560, 3072, 3584, 4096, 4608, 5120, 5632, 6144, 7168,
        8192, 10240,
    ];
    let mut failed_for_space = 0;
    for (round, free) in frees.iter().enumerate() {
        let disk = Tmpfs::mount(session.path(&format!("disk-{round}")), "24m");
        let data = disk.0.join("data");
        let data_dir = data.to_str().unwrap().to_owned();
        let flow = |args: &[&str]| session.flow(args.to_vec()).env("FLOW_DATA_DIR", &data_dir);
        // A run recorded before the disk fills, and one in the step cache.
        flow(&["run", "disk.yaml", "-i", "seed=base"])
            .run()
            .expect_code(0);
        let base = flow(&["--json", "runs"]).run().json_lines()[0]["id"]
            .as_str()
            .unwrap()
            .to_owned();

        let filler = disk.fill(free * 1024);
        let seed = format!("seed=round-{round}");
        let out = flow(&["run", "disk.yaml", "-i", &seed]).run();
        let said = format!("{}{}", out.stdout, out.stderr);
        assert!(!said.contains("panicked"), "{free} KiB free: {said}");
        match out.code() {
            Some(0) => {}
            Some(1) | Some(3) => {
                assert!(
                    said.contains("no space left on "),
                    "{free} KiB free: the failure does not say the disk is full:\n{said}"
                );
                failed_for_space += 1;
            }
            other => panic!("{free} KiB free: exit {other:?}:\n{said}"),
        }
        // Which stage met the full disk, for the test's output.
        let stage = said.lines().find(|l| l.contains("no space left on "));
        eprintln!(
            "{free} KiB free: exit {:?}: {}",
            out.code(),
            stage.unwrap_or("")
        );
        std::fs::remove_file(&filler).unwrap();

        // Nothing recorded before is lost; the store opens; the run that met the
        // full disk is recorded as ended, not left running.
        let runs = flow(&["--json", "runs"]).run();
        // (A run whose end could not be recorded is said to be interrupted.)
        runs.expect_code(0);
        let runs = runs.json_lines();
        let status = |id: &str| {
            runs.iter()
                .find(|r| r["id"] == id)
                .map(|r| r["status"].as_str().unwrap().to_owned())
        };
        assert_eq!(
            status(&base).as_deref(),
            Some("succeeded"),
            "{free} KiB free"
        );
        for run in &runs {
            assert_ne!(run["status"], "running", "{free} KiB free: {run}");
        }
        flow(&["verify", &base]).run().expect_code(0);
        // The next run, with the space freed, succeeds and verifies.
        flow(&["run", "disk.yaml", "-i", &format!("seed=after-{round}")])
            .run()
            .expect_code(0);
        flow(&["verify", "last"]).run().expect_code(0);
    }
    // The disk did run out, more than once.
    assert!(
        failed_for_space >= 3,
        "only {failed_for_space} runs met a full disk"
    );
}
