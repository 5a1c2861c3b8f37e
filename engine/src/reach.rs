//! What a step can reach on the host, and the host paths that must stay out of
//! every step's reach: the provenance signing key, the data dir (the store, other
//! runs' workspaces), the compiled-plugin cache, and the files behind declared keys
//! and secrets.
//!
//! A step reaches its workspace, its granted directories (`grants.fs`) and, through
//! the host commands it is granted, the directories those commands may read
//! (`reads`), the directories the commands live in, and — when they run confined —
//! the system directories bubblewrap shows them (`/usr`, `/etc`...). A protected
//! path inside any of those, or any of those inside a protected path, is refused
//! before anything runs, at the line of the grant, with what it would expose.
//!
//! Paths are compared after symlinks are resolved on both sides (grants are
//! canonical and never pass through a symlink; protected paths are canonicalised
//! here), so a link cannot make a protected file look like somewhere else.
//!
//! Unconfined host commands (`exec-confinement: off`, or no bubblewrap) run as the
//! user and can read whatever the user can: that is said by `flow check` and in
//! `docs/security.md`, and is why an ssh-agent held key exists.

use std::path::{Path, PathBuf};

use flow_pipeline::{Diagnostic, Diagnostics, Plan, PlannedStep, SecretSource};

use crate::capabilities::exec::ExecPlan;

/// The directories bubblewrap shows every confined command, read-only.
const CONFINED_SYSTEM_DIRS: &[&str] =
    &["/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/etc"];

/// A host path no step may reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protected {
    /// The path, canonical (symlinks resolved).
    pub path: PathBuf,
    /// What it is.
    pub kind: ProtectedKind,
}

/// What a protected path holds.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtectedKind {
    /// The key that signs the run's provenance.
    SigningKey,
    /// The data dir: the store, keys kept there by older versions, other runs' workspaces.
    DataDir,
    /// The compiled-plugin cache (native code) and the template cache.
    Cache,
    /// The key file of a key the pipeline declares (`keys:`).
    DeclaredKey(String),
    /// The file of a secret the pipeline declares (`secrets: { x: { file: ... } }`).
    SecretFile(String),
}

impl ProtectedKind {
    fn what(&self) -> String {
        match self {
            ProtectedKind::SigningKey => "the provenance signing key".into(),
            ProtectedKind::DataDir => "flow's data dir".into(),
            ProtectedKind::Cache => "flow's compiled-plugin cache".into(),
            ProtectedKind::DeclaredKey(name) => format!("the file of key `{name}`"),
            ProtectedKind::SecretFile(name) => format!("the file of secret `{name}`"),
        }
    }

    fn risk(&self) -> &'static str {
        match self {
            ProtectedKind::SigningKey => {
                "the step could read it and sign forged provenance that verifies"
            }
            ProtectedKind::DataDir => {
                "the step could read or rewrite recorded runs and other runs' workspaces"
            }
            ProtectedKind::Cache => {
                "the step could replace the native code of the plugins other steps run"
            }
            ProtectedKind::DeclaredKey(_) => {
                "the step could read the key, which steps may only use through `grants.keys`"
            }
            ProtectedKind::SecretFile(_) => {
                "the step could read the secret, which steps may only get through their grants"
            }
        }
    }

    fn help(&self) -> &'static str {
        match self {
            ProtectedKind::SigningKey => {
                "keep the signing key outside every granted directory (flow's default is ~/.local/share/flow/keys), or hold it in an ssh-agent (`--signing-key ssh-agent:`)"
            }
            ProtectedKind::DataDir => {
                "record runs outside the granted directories (flow's default data dir is under ~/.local/share/flow), or grant a directory that does not hold it"
            }
            ProtectedKind::Cache => {
                "keep the cache outside the granted directories (flow's default is ~/.cache/flow)"
            }
            ProtectedKind::DeclaredKey(_) => {
                "keep key files outside every directory a step is granted (for example under ~/.local/share/flow/keys)"
            }
            ProtectedKind::SecretFile(_) => {
                "keep secret files outside every directory a step is granted, or take the secret from an environment variable"
            }
        }
    }
}

impl Protected {
    /// `path` as protected `kind`, canonicalised when it exists (a path that does not
    /// exist yet, such as a data dir about to be created, is made absolute as given).
    pub fn new(path: &Path, kind: ProtectedKind) -> Self {
        Protected {
            path: canonical_or_absolute(path),
            kind,
        }
    }
}

fn canonical_or_absolute(path: &Path) -> PathBuf {
    if let Ok(real) = path.canonicalize() {
        return real;
    }
    // The nearest existing ancestor, canonicalised, with the rest appended.
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    };
    let mut rest = Vec::new();
    let mut at = absolute.as_path();
    while let Some(parent) = at.parent() {
        if let Some(name) = at.file_name() {
            rest.push(name.to_owned());
        }
        if let Ok(real) = parent.canonicalize() {
            let mut out = real;
            for name in rest.iter().rev() {
                out.push(name);
            }
            return out;
        }
        at = parent;
    }
    absolute
}

/// The files behind the keys and secrets a plan declares, as protected paths.
pub fn declared_files(plan: &Plan) -> Vec<Protected> {
    let resolve = |written: &str| -> Option<PathBuf> {
        let path = flow_pipeline::expand_host_path(written).ok()?;
        Some(if path.is_absolute() {
            path
        } else {
            plan.base_dir.join(path)
        })
    };
    let mut out = Vec::new();
    for key in &plan.keys {
        if let Some(path) = resolve(&key.file) {
            out.push(Protected::new(
                &path,
                ProtectedKind::DeclaredKey(key.name.clone()),
            ));
        }
    }
    for secret in &plan.secrets {
        if let SecretSource::File(file) = &secret.source
            && let Some(path) = resolve(file)
        {
            out.push(Protected::new(
                &path,
                ProtectedKind::SecretFile(secret.name.clone()),
            ));
        }
    }
    out
}

/// How two paths overlap, if they do.
fn overlap(reached: &Path, protected: &Path) -> Option<&'static str> {
    if protected.starts_with(reached) {
        Some("holds")
    } else if reached.starts_with(protected) {
        Some("is inside")
    } else {
        None
    }
}

/// Refuses every way a step of `plan` could reach a protected path. `workspace` is
/// the run's workspace when it is known (a run), and may lie inside the data dir's
/// `workspaces/` directory, where the engine makes it.
pub fn check(
    plan: &Plan,
    exec: &ExecPlan,
    workspace: Option<&Path>,
    protected: &[Protected],
) -> Result<(), Diagnostics> {
    let mut problems = Vec::new();
    if let Some(workspace) = workspace {
        let workspace = canonical_or_absolute(workspace);
        for p in protected {
            let allowed = p.kind == ProtectedKind::DataDir
                && workspace.starts_with(p.path.join("workspaces"))
                && workspace != p.path.join("workspaces");
            if allowed {
                continue;
            }
            if let Some(how) = overlap(&workspace, &p.path) {
                problems.push(
                    Diagnostic::error_without_location(format!(
                        "the run's workspace {} {how} {} ({}): {}",
                        workspace.display(),
                        p.kind.what(),
                        p.path.display(),
                        p.kind.risk()
                    ))
                    .with_help(p.kind.help()),
                );
            }
        }
    }
    let confined = exec.confine;
    for step in &plan.steps {
        check_step(step, exec, confined, protected, &mut problems);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Diagnostics(problems))
    }
}

fn check_step(
    step: &PlannedStep,
    exec: &ExecPlan,
    confined: bool,
    protected: &[Protected],
    problems: &mut Vec<Diagnostic>,
) {
    for grant in &step.fs_grants {
        for p in protected {
            if let Some(how) = overlap(&grant.path, &p.path) {
                problems.push(
                    Diagnostic::error(
                        &grant.source,
                        grant.span,
                        format!(
                            "step `{}` is granted `{}` ({}), which {how} {} ({}): {}",
                            step.id,
                            grant.written,
                            grant.path.display(),
                            p.kind.what(),
                            p.path.display(),
                            p.kind.risk()
                        ),
                    )
                    .with_help(p.kind.help()),
                );
            }
        }
    }
    let commands = exec.steps.get(step.index).map(Vec::as_slice).unwrap_or(&[]);
    for (grant, command) in step.exec_grants.iter().zip(commands) {
        let mut reached: Vec<(PathBuf, String)> = grant
            .reads
            .iter()
            .map(|r| (r.clone(), format!("may read {}", r.display())))
            .collect();
        for file in [&command.resolved.real_path, &command.resolved.path] {
            if let Some(dir) = file.parent() {
                let dir = canonical_or_absolute(dir);
                let why = format!("sees its own directory {}", dir.display());
                reached.push((dir, why));
            }
        }
        if confined {
            for dir in CONFINED_SYSTEM_DIRS {
                let dir = canonical_or_absolute(Path::new(dir));
                let why = format!("sees {} when confined", dir.display());
                reached.push((dir, why));
            }
        }
        for (path, why) in reached {
            for p in protected {
                if let Some(how) = overlap(&path, &p.path) {
                    problems.push(
                        Diagnostic::error(
                            &grant.source,
                            grant.span,
                            format!(
                                "command `{}` of step `{}` {why}, which {how} {} ({}): {}",
                                grant.command,
                                step.id,
                                p.kind.what(),
                                p.path.display(),
                                p.kind.risk()
                            ),
                        )
                        .with_help(p.kind.help()),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_in_both_directions() {
        let a = Path::new("/a/b");
        assert_eq!(overlap(a, Path::new("/a/b/c")), Some("holds"));
        assert_eq!(overlap(a, Path::new("/a/b")), Some("holds"));
        assert_eq!(overlap(Path::new("/a/b/c"), a), Some("is inside"));
        assert_eq!(overlap(Path::new("/a/bc"), a), None);
        assert_eq!(overlap(Path::new("/x"), a), None);
    }

    #[test]
    fn a_path_that_does_not_exist_is_made_absolute_below_its_real_ancestor() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().canonicalize().unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("link")).unwrap();
        let p = Protected::new(&dir.path().join("link/not/yet"), ProtectedKind::DataDir);
        assert_eq!(p.path, real.join("not/yet"));
    }
}
