//! Whether bubblewrap confinement works on this host, and the `bwrap` command line.

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::resolve::{ResolveError, ResolvedCommand, resolve};
use crate::spec::{Bind, CommandSpec};

/// Environment variable that, set to anything but empty or `0`, makes the probe report
/// confinement as unavailable (for tests, or users who cannot or will not use bubblewrap).
pub const NO_BWRAP_ENV: &str = "FLOW_NO_BWRAP";

/// Where bubblewrap is looked for when it is not on `PATH`.
const FALLBACK_BWRAP: &str = "/usr/bin/bwrap";

/// Inside the sandbox, the command is executed through a symlink named after the grant in
/// this directory (bubblewrap before 0.9 cannot set `argv[0]` on its own). Binds may not
/// cover it.
pub(crate) const EXEC_DIR: &str = "/run/flow-exec";

/// Host directories made visible, read-only, in every sandbox (if present). A symlink
/// among them (merged `/usr`: `/bin -> usr/bin`) is recreated as the same symlink.
const SYSTEM_DIRS: &[&str] = &["/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/etc"];
/// Files of `/etc` hidden (replaced by an empty file) inside the sandbox.
const SECRET_FILES: &[&str] = &[
    "/etc/shadow",
    "/etc/gshadow",
    "/etc/shadow-",
    "/etc/gshadow-",
];

/// Where coreutils' `env` is looked for (it must exist inside the sandbox, and the
/// system directories are bound at the same paths): bubblewrap always sets `PWD` in the
/// command's environment, and `env -u PWD` takes it out again.
const ENV_HELPERS: &[&str] = &["/usr/bin/env", "/bin/env"];

/// How long the probe's trial sandbox may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether commands can be confined with bubblewrap on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confinement {
    /// `bwrap` exists and a trial sandbox ran.
    Available {
        /// The `bwrap` executable.
        path: PathBuf,
        /// Its version, as reported by `bwrap --version` (`0.8.0`).
        version: String,
    },
    /// Commands cannot be confined here.
    Unavailable {
        /// Why, for humans: what is missing or what failed.
        reason: String,
    },
}

/// The result of [`Confinement::probe`], computed once per process.
pub fn confinement() -> &'static Confinement {
    static PROBED: OnceLock<Confinement> = OnceLock::new();
    PROBED.get_or_init(Confinement::probe)
}

impl Confinement {
    /// Finds `bwrap` (on `PATH`, then at `/usr/bin/bwrap`) and runs a trial sandbox with
    /// the same options used for commands, to prove it works here (user namespaces may be
    /// disabled, or a container may forbid mounts). Blocks for as long as that takes, a
    /// few milliseconds normally; [`confinement()`] caches the answer.
    ///
    /// Setting `FLOW_NO_BWRAP=1` in the environment forces [`Confinement::Unavailable`].
    pub fn probe() -> Confinement {
        let no_bwrap = std::env::var_os(NO_BWRAP_ENV);
        let path = std::env::var_os("PATH");
        probe_with(no_bwrap.as_deref(), path.as_deref())
    }

    /// Whether confinement is available.
    pub fn is_available(&self) -> bool {
        matches!(self, Confinement::Available { .. })
    }
}

pub(crate) fn probe_with(no_bwrap: Option<&OsStr>, path_env: Option<&OsStr>) -> Confinement {
    let unavailable = |reason: String| {
        tracing::debug!(%reason, "bubblewrap confinement unavailable");
        Confinement::Unavailable { reason }
    };
    if let Some(v) = no_bwrap
        && !v.is_empty()
        && v != "0"
    {
        return unavailable(format!(
            "disabled by {NO_BWRAP_ENV}={}",
            v.to_string_lossy()
        ));
    }
    let bwrap = match find_bwrap(path_env, FALLBACK_BWRAP) {
        Ok(bwrap) => bwrap,
        Err(reason) => return unavailable(reason),
    };
    let version = match bwrap_version(&bwrap) {
        Ok(version) => version,
        Err(reason) => return unavailable(reason),
    };
    if let Err(reason) = trial_run(&bwrap, path_env) {
        return unavailable(reason);
    }
    tracing::debug!(path = %bwrap.display(), %version, "bubblewrap confinement available");
    Confinement::Available {
        path: bwrap,
        version,
    }
}

fn find_bwrap(path_env: Option<&OsStr>, fallback: &str) -> Result<PathBuf, String> {
    match resolve("bwrap", path_env) {
        Ok(found) => return Ok(found.path),
        Err(ResolveError::NotFound { .. }) => {}
        Err(e) => return Err(format!("bubblewrap unusable: {e}")),
    }
    match resolve(fallback, None) {
        Ok(found) => Ok(found.path),
        Err(ResolveError::Missing { .. }) => Err(format!(
            "bubblewrap (bwrap) not found on PATH or at {fallback}; \
             install the `bubblewrap` package"
        )),
        Err(e) => Err(format!("bubblewrap unusable: {e}")),
    }
}

fn bwrap_version(bwrap: &Path) -> Result<String, String> {
    let out = Command::new(bwrap)
        .arg("--version")
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bwrap.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "`{} --version` failed ({}): {}",
            bwrap.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let line = stdout.trim();
    Ok(line.strip_prefix("bubblewrap ").unwrap_or(line).to_owned())
}

/// Runs `true` in a sandbox built exactly like a command's, without binds.
fn trial_run(bwrap: &Path, path_env: Option<&OsStr>) -> Result<(), String> {
    let command = resolve("true", path_env)
        .or_else(|_| resolve("/usr/bin/true", None))
        .or_else(|_| resolve("/bin/true", None))
        .map_err(|e| format!("cannot find `true` for a trial sandbox: {e}"))?;
    let spec = CommandSpec {
        command,
        args: Vec::new(),
        cwd: PathBuf::from("/"),
        env: Vec::new(),
        binds: Vec::new(),
        network: false,
        confine: true,
    };
    let args = bwrap_args(&spec)?;
    let mut child = Command::new(bwrap)
        .args(&args)
        .env_clear()
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", bwrap.display()))?;
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < PROBE_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "bwrap trial sandbox did not finish within {PROBE_TIMEOUT:?}"
                ));
            }
            Err(e) => return Err(format!("waiting for bwrap: {e}")),
        }
    };
    if status.success() {
        return Ok(());
    }
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    let stderr = stderr.trim();
    Err(if stderr.is_empty() {
        format!("bwrap failed ({status})")
    } else {
        format!("bwrap failed: {stderr}")
    })
}

/// The arguments to `bwrap` (not including `bwrap` itself) that run `spec` confined.
///
/// Assumes `spec` was validated (absolute, normalised, existing binds and cwd).
pub(crate) fn bwrap_args(spec: &CommandSpec) -> Result<Vec<OsString>, String> {
    let mut a = Args::default();
    a.push(["--unshare-all"]);
    if spec.network {
        a.push(["--share-net"]);
    }
    // --die-with-parent: the sandbox dies if bwrap is killed; --new-session: no access to
    // the controlling terminal (TIOCSTI); --cap-drop ALL: when run as root, bwrap otherwise
    // keeps every capability inside (enough to remount read-only binds writable).
    a.push(["--die-with-parent", "--new-session", "--cap-drop", "ALL"]);

    for dir in SYSTEM_DIRS {
        let dir = Path::new(dir);
        match std::fs::symlink_metadata(dir) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = std::fs::read_link(dir)
                    .map_err(|e| format!("cannot read symlink {}: {e}", dir.display()))?;
                a.push([OsStr::new("--symlink"), target.as_os_str(), dir.as_os_str()]);
            }
            Ok(_) => a.push([OsStr::new("--ro-bind"), dir.as_os_str(), dir.as_os_str()]),
            Err(_) => {}
        }
    }
    // /etc is visible for users, groups, certificates and the like, but not its
    // password hashes (readable when flow runs as root).
    for secret in SECRET_FILES {
        if std::fs::symlink_metadata(secret).is_ok_and(|m| m.is_file()) {
            a.push(["--ro-bind", "/dev/null", secret]);
        }
    }
    if spec.network {
        // Name resolution: /etc/resolv.conf is often a symlink into /run (systemd-resolved,
        // NetworkManager), which is not visible otherwise.
        if let Ok(target) = std::fs::canonicalize("/etc/resolv.conf")
            && !target.starts_with("/etc")
            && !target.starts_with("/usr")
        {
            a.push([
                OsStr::new("--ro-bind-try"),
                target.as_os_str(),
                target.as_os_str(),
            ]);
        }
    }
    a.push(["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]);

    // The command's directories, read-only: the real file's, and the one it was found in
    // (at that same path, so that PATH entries naming it work; it holds sibling tools such
    // as `rustc` next to `cargo`). Those within the system directories are already there.
    let mut command_dirs: Vec<PathBuf> = Vec::new();
    for file in [&spec.command.real_path, &spec.command.path] {
        let Some(dir) = file.parent() else { continue };
        let Ok(real_dir) = std::fs::canonicalize(dir) else {
            continue;
        };
        let covered = SYSTEM_DIRS.iter().any(|sys| {
            let sys = Path::new(sys);
            real_dir.starts_with(sys) && !sys.is_symlink()
        });
        let lexical = !dir.components().any(|c| c == Component::ParentDir);
        let dir = if lexical { dir.to_owned() } else { real_dir };
        if !covered && !command_dirs.contains(&dir) {
            command_dirs.push(dir);
        }
    }
    for dir in &command_dirs {
        a.push([OsStr::new("--ro-bind"), dir.as_os_str(), dir.as_os_str()]);
    }

    // User binds, parents before children so that a nested bind overrides its parent's.
    let mut binds: Vec<&Bind> = spec.binds.iter().collect();
    binds.sort_by_key(|b| b.path.components().count());
    for bind in binds {
        let op = if bind.writable { "--bind" } else { "--ro-bind" };
        a.push([OsStr::new(op), bind.path.as_os_str(), bind.path.as_os_str()]);
    }

    let exec_path = exec_path(&spec.command);
    if spec.command.argv0().contains('=') {
        // `env` would take the command for a variable assignment.
        return Err(format!(
            "the command name `{}` contains `=`, which the sandbox cannot execute",
            spec.command.argv0()
        ));
    }
    a.push([
        OsStr::new("--symlink"),
        spec.command.real_path.as_os_str(),
        exec_path.as_os_str(),
    ]);
    a.push([OsStr::new("--chdir"), spec.cwd.as_os_str()]);

    // bubblewrap always sets PWD (to the working directory); `env` puts the environment
    // back to exactly the one given: `env -u PWD -- [PWD=<given>] <command> <args>`.
    let helper = ENV_HELPERS
        .iter()
        .map(Path::new)
        .find(|p| p.is_file())
        .ok_or_else(|| {
            format!(
                "coreutils `env` not found at {} (needed inside the sandbox)",
                ENV_HELPERS.join(" or ")
            )
        })?;
    a.push([OsStr::new("--"), helper.as_os_str()]);
    a.push(["-u", "PWD", "--"]);
    if let Some((_, pwd)) = spec.env.iter().rev().find(|(k, _)| k == "PWD") {
        a.push([format!("PWD={pwd}")]);
    }
    a.push([exec_path.as_os_str()]);
    a.0.extend(spec.args.iter().map(OsString::from));
    Ok(a.0)
}

/// The path, inside the sandbox, of the symlink through which the command is executed.
pub(crate) fn exec_path(command: &ResolvedCommand) -> PathBuf {
    Path::new(EXEC_DIR).join(command.argv0())
}

/// Whether a bind at `path` would conflict with the sandbox's own [`EXEC_DIR`].
pub(crate) fn conflicts_with_exec_dir(path: &Path) -> bool {
    let exec_dir = Path::new(EXEC_DIR);
    path.starts_with(exec_dir) || exec_dir.starts_with(path)
}

#[derive(Default)]
struct Args(Vec<OsString>);

impl Args {
    fn push<S: AsRef<OsStr>, const N: usize>(&mut self, args: [S; N]) {
        self.0.extend(args.iter().map(|s| s.as_ref().to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forced_unavailable() {
        let c = probe_with(Some(OsStr::new("1")), Some(OsStr::new("/usr/bin:/bin")));
        let Confinement::Unavailable { reason } = c else {
            panic!("expected unavailable, got {c:?}");
        };
        assert!(reason.contains("FLOW_NO_BWRAP"), "{reason}");
    }

    #[test]
    fn not_found_names_the_package() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("bwrap");
        let err = find_bwrap(Some(dir.path().as_os_str()), missing.to_str().unwrap()).unwrap_err();
        assert!(
            err.contains("bubblewrap (bwrap) not found on PATH"),
            "{err}"
        );
        assert!(err.contains("install the `bubblewrap` package"), "{err}");
    }

    #[test]
    fn failing_bwrap_reports_its_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("bwrap");
        std::fs::write(
            &fake,
            "#!/bin/sh\n\
             if [ \"$1\" = --version ]; then echo bubblewrap 9.9.9; exit 0; fi\n\
             echo 'bwrap: No permissions to create a new namespace' >&2; exit 1\n",
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let path =
            std::env::join_paths([dir.path(), Path::new("/usr/bin"), Path::new("/bin")]).unwrap();
        let c = probe_with(None, Some(&path));
        assert_eq!(
            c,
            Confinement::Unavailable {
                reason: "bwrap failed: bwrap: No permissions to create a new namespace".into()
            }
        );
    }

    #[test]
    fn zero_or_empty_does_not_disable() {
        for v in ["", "0"] {
            let c = probe_with(Some(OsStr::new(v)), Some(OsStr::new("/nonexistent")));
            if let Confinement::Unavailable { reason } = c {
                assert!(!reason.contains("FLOW_NO_BWRAP"), "{reason}");
            }
        }
    }
}
