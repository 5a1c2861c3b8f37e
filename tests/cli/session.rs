//! The test session: a temp dir with the user's files, and `flow` run in it
//! the way a user runs it, with its own data dir and compiled-component cache.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long any one `flow` command may take before the test gives up on it.
const COMMAND_DEADLINE: Duration = Duration::from_secs(60);

/// A user's working directory (`work/`) beside the user's own places: a home
/// (`home/`), a data dir (`data/`), a cache dir (`cache/`) and a signing key
/// (`keys/`), all in one temp dir that is removed at the end of the test. Like a
/// real user's, the data dir, the cache and the key are outside the directory whose
/// files pipelines grant to their steps.
pub struct Session {
    dir: tempfile::TempDir,
    /// The temp dir, canonical.
    base: PathBuf,
    root: PathBuf,
    /// The key `flow` signs with (through `FLOW_SIGNING_KEY`), if any.
    signing_key: Option<PathBuf>,
}

impl Session {
    /// A session whose runs are signed with a key of its own (`keys/`, beside
    /// the working directory), so that the first run does not create the user's
    /// key and say so on stderr.
    pub fn new() -> Self {
        let mut session = Self::without_signing_key();
        let keys = session.base.join("keys");
        let key = flow_provenance::SigningKey::generate().expect("generate a signing key");
        let paths = flow_provenance::keys::write_key_pair(&keys, &key)
            .expect("write the session's signing key");
        session.signing_key = Some(paths.private_key);
        session
    }

    /// A session with no signing key configured: like a user's first run, `flow
    /// run` uses (or creates) the data dir's key.
    pub fn without_signing_key() -> Self {
        let dir = tempfile::tempdir().expect("create a temp dir");
        // Messages name canonical paths; so do the tests.
        let base = dir
            .path()
            .canonicalize()
            .expect("canonicalize the temp dir");
        let root = base.join("work");
        std::fs::create_dir_all(&root).expect("create the working directory");
        std::fs::create_dir_all(base.join("home")).expect("create the home directory");
        Session {
            dir,
            base,
            root,
            signing_key: None,
        }
    }

    /// The user's home directory (`HOME` of every command).
    pub fn home(&self) -> PathBuf {
        self.base.join("home")
    }

    /// Where `flow` keeps the user's own keys (`~/.local/share/flow/keys`).
    pub fn user_key_dir(&self) -> PathBuf {
        self.home().join(".local/share/flow/keys")
    }

    /// The session's directory (the working directory of every command).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `root/<relative>`.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    /// The data dir `flow` is told to use (through `FLOW_DATA_DIR`).
    pub fn data_dir(&self) -> PathBuf {
        self.base.join("data")
    }

    /// The compiled-component cache `flow` is told to use.
    pub fn cache_dir(&self) -> PathBuf {
        self.base.join("cache")
    }

    /// Write a file, creating its parent directories.
    pub fn file(&self, relative: &str, text: impl AsRef<[u8]>) -> &Self {
        let path = self.path(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent dirs");
        }
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        self
    }

    pub fn dir(&self, relative: &str) -> &Self {
        std::fs::create_dir_all(self.path(relative)).expect("create dir");
        self
    }

    /// Copy a test plugin (`misbehave`, `fs_probe`) into the session as
    /// `<name>.wasm`, so that pipelines say `uses: ./<name>.wasm`.
    pub fn plugin(&self, name: &str) -> &Self {
        let from = Path::new(env!("FLOW_TEST_PLUGIN_DIR")).join(format!("flow_plugin_{name}.wasm"));
        std::fs::copy(&from, self.path(&format!("{name}.wasm")))
            .unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
        self
    }

    /// A `flow` command: `--plain` unless the args ask for `--json`, run in
    /// the session's directory with its data dir and cache.
    pub fn flow<'a>(&self, args: impl IntoIterator<Item = &'a str>) -> Flow {
        let args: Vec<String> = args.into_iter().map(String::from).collect();
        let mut command = Command::new(env!("CARGO_BIN_EXE_flow"));
        if !args.iter().any(|a| a == "--json") {
            command.arg("--plain");
        }
        command
            .args(&args)
            .current_dir(&self.root)
            .env("FLOW_DATA_DIR", self.data_dir())
            .env("FLOW_CACHE_DIR", self.cache_dir())
            .env("HOME", self.home())
            .env_remove("XDG_DATA_HOME")
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("XDG_CACHE_HOME")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("FLOW_CONFIG")
            .env_remove("FLOW_ORG_CONFIG")
            .env_remove("RUST_LOG")
            .env_remove("RUST_BACKTRACE")
            .env_remove("NO_COLOR")
            .stdin(Stdio::null());
        // A key configured in the caller's environment must not sign test runs.
        match &self.signing_key {
            Some(key) => command.env("FLOW_SIGNING_KEY", key),
            None => command.env_remove("FLOW_SIGNING_KEY"),
        };
        Flow { command }
    }

    /// Replace what differs between runs of the same test: the session's
    /// paths (the working directory is `TMP`, the temp dir around it `SESSION`),
    /// run ids, timestamps and durations.
    pub fn normalize(&self, text: &str) -> String {
        let text = text
            .replace(&self.root.display().to_string(), "TMP")
            .replace(&self.base.display().to_string(), "SESSION");
        let text = replace_run_ids(&text);
        text.lines().map(normalize_line).map(|l| l + "\n").collect()
    }

    /// The private key runs sign their provenance with, if the session has one.
    pub fn signing_key(&self) -> Option<&Path> {
        self.signing_key.as_deref()
    }

    /// The public half of [`Session::signing_key`]: what a promotion trusts.
    pub fn signing_public_key(&self) -> Option<PathBuf> {
        self.signing_key.as_ref().map(|k| k.with_extension("pub"))
    }

    /// A release key (for `sign` steps), made on first use beside the session's
    /// provenance key and never the same: flow refuses to grant that one.
    pub fn release_key(&self) -> PathBuf {
        let dir = self.base.join("release-key");
        let paths = flow_provenance::keys::KeyPairPaths::in_dir(&dir);
        if !paths.private_key.exists() {
            let key = flow_provenance::SigningKey::generate().expect("generate a release key");
            flow_provenance::keys::write_key_pair(&dir, &key).expect("write the release key");
        }
        paths.private_key
    }

    /// `flow run --plain flow.yaml`, expecting exit `code`; then [`Session::last_run`].
    pub fn run_and_show(&self, code: i32) -> (serde_json::Value, PathBuf) {
        self.flow(["run", "--plain", "flow.yaml"])
            .run()
            .expect_code(code);
        self.last_run()
    }

    /// `flow show --json last` and the last run's workspace.
    pub fn last_run(&self) -> (serde_json::Value, PathBuf) {
        let show = self.flow(["--json", "show", "last"]).run();
        show.expect_success();
        let show = show.json();
        let id = show["run"]["id"].as_str().expect("a run id").to_owned();
        (show, self.data_dir().join("workspaces").join(id))
    }

    /// The decoded in-toto Statement of `step` in the last run.
    pub fn statement(&self, step: &str) -> serde_json::Value {
        let out = self.flow(["--json", "attest", "show", "last", step]).run();
        out.expect_success();
        let envelope = out.json_lines()[0]["statement"].to_string();
        let envelope =
            flow_provenance::Envelope::from_json(envelope.as_bytes()).expect("an envelope");
        serde_json::from_slice(&envelope.payload).expect("a JSON payload")
    }

    /// Keep the temp dir (for debugging a failing test by hand).
    #[allow(dead_code)]
    pub fn keep(self) -> PathBuf {
        self.dir.keep()
    }
}

pub struct Flow {
    command: Command,
}

/// A directory of the user running the tests (`RUSTUP_HOME`, `CARGO_HOME`),
/// from its variable or under the real `HOME` (sessions set their own `HOME`).
pub fn real_home_dir(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(default)
    })
}

/// This project's checkout when it is a git clone (CI runs from one);
/// otherwise says the test is not run and returns `None`.
pub fn repo_root() -> Option<&'static Path> {
    // These tests belong to the `flow` package, in engine/cli.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("engine/cli is in the workspace");
    if root.join(".git").exists() {
        return Some(root);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI runs from a clone, with its .git"
    );
    eprintln!("NOT RUN: {} is not a git clone", root.display());
    None
}

/// Assert that step `step` of a `flow show --json` ended with a reason
/// containing `expected`.
pub fn assert_reason(show: &serde_json::Value, step: usize, expected: &str) {
    let reason = show["steps"][step]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(expected),
        "step {step}: `{expected}` is not in `{reason}`"
    );
}

impl Flow {
    /// Point rustup and cargo at the real toolchain.
    pub fn with_toolchain(self) -> Self {
        self.env("RUSTUP_HOME", real_home_dir("RUSTUP_HOME", ".rustup"))
            .env("CARGO_HOME", real_home_dir("CARGO_HOME", ".cargo"))
    }

    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        self.command.env(key, value);
        self
    }

    pub fn env_remove(mut self, key: &str) -> Self {
        self.command.env_remove(key);
        self
    }

    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.command.current_dir(dir);
        self
    }

    /// The same command with a pseudo-terminal as its stdout (util-linux
    /// `script`) and without `--plain`, as a person at a terminal runs it.
    pub fn on_terminal(self) -> Flow {
        let quote =
            |text: &std::ffi::OsStr| format!("'{}'", text.to_string_lossy().replace('\'', "'\\''"));
        let mut line = quote(self.command.get_program());
        for arg in self.command.get_args().filter(|a| *a != "--plain") {
            line.push(' ');
            line.push_str(&quote(arg));
        }
        let mut script = Command::new("script");
        script
            .arg("-qec")
            .arg(line)
            .arg("/dev/null")
            .stdin(Stdio::null());
        for (key, value) in self.command.get_envs() {
            match value {
                Some(value) => script.env(key, value),
                None => script.env_remove(key),
            };
        }
        if let Some(dir) = self.command.get_current_dir() {
            script.current_dir(dir);
        }
        Flow { command: script }
    }

    /// Run to completion (or fail the test after a deadline).
    pub fn run(self) -> Output {
        let mut running = self.spawn();
        running.wait(COMMAND_DEADLINE)
    }

    /// Start it and return at once; the process is killed if the test ends
    /// before it does.
    pub fn spawn(mut self) -> Running {
        self.command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = self.command.spawn().expect("start flow");
        let stdout = Captured::start(child.stdout.take().expect("piped stdout"));
        let stderr = Captured::start(child.stderr.take().expect("piped stderr"));
        Running {
            child,
            stdout,
            stderr,
        }
    }

    /// Start it, read one line of its stdout and close the pipe, the way
    /// `flow ... | head -1` does.
    pub fn spawn_with_closed_stdout_after_first_line(mut self) -> Running {
        self.command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = self.command.spawn().expect("start flow");
        let mut pipe = child.stdout.take().expect("piped stdout");
        let stderr = Captured::start(child.stderr.take().expect("piped stderr"));
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while pipe.read(&mut byte).is_ok_and(|n| n == 1) && byte[0] != b'\n' {
            line.push(byte[0]);
        }
        drop(pipe);
        let stdout = Captured::start(std::io::empty());
        stdout.text.lock().unwrap().extend_from_slice(&line);
        Running {
            child,
            stdout,
            stderr,
        }
    }
}

/// Reads a pipe on a thread so the child never blocks on a full pipe.
struct Captured {
    text: Arc<Mutex<Vec<u8>>>,
    reader: Option<JoinHandle<()>>,
}

impl Captured {
    fn start(mut pipe: impl Read + Send + 'static) -> Self {
        let text = Arc::new(Mutex::new(Vec::new()));
        let sink = text.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Captured {
            text,
            reader: Some(reader),
        }
    }

    fn snapshot(&self) -> String {
        String::from_utf8_lossy(&self.text.lock().unwrap()).into_owned()
    }

    fn finish(&mut self) -> String {
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        self.snapshot()
    }
}

/// A `flow` process that is still running. Dropping it kills it.
pub struct Running {
    child: Child,
    stdout: Captured,
    stderr: Captured,
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.snapshot()
    }

    /// Wait until stdout contains `text`; fail the test after `deadline`.
    pub fn wait_for_stdout(&self, text: &str, deadline: Duration) {
        let start = Instant::now();
        while !self.stdout().contains(text) {
            if start.elapsed() > deadline {
                panic!(
                    "flow did not print {text:?} within {deadline:?}\nstdout:\n{}\nstderr:\n{}",
                    self.stdout(),
                    self.stderr.snapshot()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Send a signal (`INT`, `KILL`...) with kill(1).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {} failed", self.pid());
    }

    /// Wait for the process to exit; fail the test after `deadline`.
    pub fn wait(&mut self, deadline: Duration) -> Output {
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for flow") {
                break status;
            }
            if start.elapsed() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "flow did not exit within {deadline:?}\nstdout:\n{}\nstderr:\n{}",
                    self.stdout.finish(),
                    self.stderr.finish()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        Output {
            status,
            stdout: self.stdout.finish(),
            stderr: self.stderr.finish(),
            took: start.elapsed(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What a finished `flow` command did.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// From the call to `wait` to the exit.
    pub took: Duration,
}

impl Output {
    /// The exit code (`None` if a signal ended it).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Assert the exit code, with both streams in the failure message.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code(),
            Some(code),
            "exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Assert exit 0 and an empty stderr.
    #[track_caller]
    pub fn expect_success(&self) -> &Self {
        self.expect_code(0);
        assert_eq!(self.stderr, "", "stderr of a successful command");
        self
    }

    /// Stdout as JSON lines.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }

    /// Stdout as one JSON value.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

/// `20261122-034455-7f3a` (8 digits, `-`, 6 digits, `-`, 4 hex digits) -> `RUN`.
fn replace_run_ids(text: &str) -> String {
    const SHAPE: &[u8] = b"dddddddd-dddddd-xxxx";
    let bytes = text.as_bytes();
    let fits = |at: usize| {
        at + SHAPE.len() <= bytes.len()
            && SHAPE
                .iter()
                .zip(&bytes[at..])
                .all(|(shape, b)| match shape {
                    b'd' => b.is_ascii_digit(),
                    b'x' => b.is_ascii_hexdigit() && !b.is_ascii_uppercase(),
                    other => b == other,
                })
            && bytes
                .get(at + SHAPE.len())
                .is_none_or(|b| !b.is_ascii_alphanumeric())
            && (at == 0 || !bytes[at - 1].is_ascii_alphanumeric())
    };
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        if fits(i) {
            out.push_str("RUN");
            i += SHAPE.len();
        } else {
            let ch = text[i..].chars().next().expect("in bounds");
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// Durations (`850ms`, `1.5s`, `2m5s`) become `<dur>`, with the padding
/// before them squeezed to one space (they are right-aligned in tables);
/// RFC 3339 timestamps become `<time>`.
fn normalize_line(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while !rest.is_empty() {
        let word_end = rest.find(' ').unwrap_or(rest.len());
        let (word, tail) = rest.split_at(word_end);
        if word.is_empty() {
            let spaces = rest.len() - rest.trim_start_matches(' ').len();
            out.push_str(&rest[..spaces]);
            rest = &rest[spaces..];
            continue;
        }
        let core = word.trim_end_matches([':', ',', ')']);
        let suffix = &word[core.len()..];
        if is_duration(core) {
            let trimmed = out.trim_end_matches(' ').len();
            if trimmed < out.len() && out.len() - trimmed > 1 {
                out.truncate(trimmed + 1);
            }
            out.push_str("<dur>");
            out.push_str(suffix);
        } else if is_timestamp(core) {
            out.push_str("<time>");
            out.push_str(suffix);
        } else {
            out.push_str(word);
        }
        rest = tail;
    }
    out
}

fn is_duration(word: &str) -> bool {
    let Some(first) = word.chars().next() else {
        return false;
    };
    first.is_ascii_digit()
        && word.ends_with('s')
        && word
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'h' | 'm' | 's'))
}

fn is_timestamp(word: &str) -> bool {
    // 2026-11-22T04:05:41.122Z
    word.len() == 24
        && word.ends_with('Z')
        && word.as_bytes()[10] == b'T'
        && word
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '-' | ':' | '.' | 'T' | 'Z'))
}

/// Every file below `dir` (not following links), depth first.
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() && !path.is_symlink() {
            out.extend(files_below(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// A run id from a `run RUN started: ...` line.
pub fn run_id(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("run ").and_then(|r| r.split(' ').next()))
        .unwrap_or_else(|| panic!("no run id in:\n{stdout}"))
        .to_string()
}

#[test]
fn normalizing_hides_only_what_varies() {
    let session = Session::new();
    let text = format!(
        "run 20261122-040541-86e0 started in {}/x\n✓ greet  succeeded     850ms  echo\nA  2026-11-22T04:05:41.122Z  1.5s  2m5s,\nflow.yaml:8:13: error: 1s\n",
        session.root().display()
    );
    assert_eq!(
        session.normalize(&text),
        "run RUN started in TMP/x\n✓ greet  succeeded <dur>  echo\nA  <time> <dur> <dur>,\nflow.yaml:8:13: error: <dur>\n"
    );
}
