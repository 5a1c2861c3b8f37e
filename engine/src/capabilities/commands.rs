//! Host commands a pipeline grants (`grants.exec`, `grants.env`): resolved to files
//! and hashed when the pipeline is loaded ([`ExecPlan::resolve`]), and what one step
//! may run, with which environment and working directory ([`ExecPolicy`]).

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use flow_pipeline::{Diagnostic, Diagnostics, ExecConfinement, FsAccess, Plan, PlannedStep};
use flow_sandbox::{Bind, ResolvedCommand};

use super::secret_values::SecretValues;

/// The system directories commands find their tools in, after the granted commands' own.
const SYSTEM_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// One granted command, resolved.
#[derive(Debug, Clone)]
pub struct GrantedCommand {
    /// The name the plugin asks for: the grant's file name (`cargo` for `/usr/bin/cargo`).
    pub name: String,
    /// The file, its real path and sha256.
    pub resolved: Arc<ResolvedCommand>,
    /// Directories it may read when confined.
    pub reads: Vec<PathBuf>,
}

impl GrantedCommand {
    /// How provenance and `flow check --json` describe it.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name,
            "path": self.resolved.path.display().to_string(),
            "realPath": self.resolved.real_path.display().to_string(),
            "sha256": self.resolved.sha256,
            "reads": self.reads.iter().map(|r| r.display().to_string()).collect::<Vec<_>>(),
        })
    }

    /// `cargo = /usr/bin/cargo -> /real/path (sha256:0123456789ab)`, for `flow check`.
    pub fn describe(&self) -> String {
        let r = &self.resolved;
        let path = if r.path == r.real_path {
            r.path.display().to_string()
        } else {
            format!("{} -> {}", r.path.display(), r.real_path.display())
        };
        format!(
            "{} = {path} (sha256:{})",
            self.name,
            r.sha256.get(..12).unwrap_or(&r.sha256)
        )
    }
}

/// Every step's granted commands, and whether they run confined.
#[derive(Debug, Clone, Default)]
pub struct ExecPlan {
    /// Per step (plan order).
    pub steps: Vec<Vec<GrantedCommand>>,
    /// Whether commands run under bubblewrap.
    pub confine: bool,
    /// For `flow check`: how commands will run, in a sentence. `None` when no step
    /// has commands.
    pub summary: Option<String>,
}

impl ExecPlan {
    /// Resolve every step's `grants.exec` on this host's `PATH`, and decide on
    /// confinement. Every problem is reported at once, with its place in the file.
    pub fn resolve(plan: &Plan) -> Result<ExecPlan, Diagnostics> {
        let path_env = std::env::var_os("PATH");
        let mut problems = Vec::new();
        let mut steps = Vec::with_capacity(plan.steps.len());
        for step in &plan.steps {
            let mut commands = Vec::new();
            let writable: Vec<&Path> = step
                .fs_grants
                .iter()
                .filter(|g| g.access == FsAccess::Write)
                .map(|g| g.path.as_path())
                .collect();
            for grant in &step.exec_grants {
                match flow_sandbox::resolve(&grant.command, path_env.as_deref()) {
                    Ok(resolved)
                        if writable.iter().any(|w| resolved.path.starts_with(w) || resolved.real_path.starts_with(w)) =>
                    {
                        problems.push(
                            Diagnostic::error(
                                &grant.source,
                                grant.span,
                                format!(
                                    "`{}` ({}) is inside a directory this step may write: the step could replace the command it runs",
                                    grant.command,
                                    resolved.real_path.display()
                                ),
                            )
                            .with_help("grant a command installed outside the step's writable directories"),
                        )
                    }
                    Ok(resolved) => commands.push(GrantedCommand {
                        name: grant
                            .command
                            .rsplit('/')
                            .next()
                            .unwrap_or(&grant.command)
                            .to_owned(),
                        resolved: Arc::new(resolved),
                        reads: grant.reads.clone(),
                    }),
                    Err(e) => problems.push(
                        Diagnostic::error(&grant.source, grant.span, e.to_string()).with_help(
                            "grant a command on the host's PATH by name, or by its absolute path",
                        ),
                    ),
                }
            }
            steps.push(commands);
        }
        let any = plan.steps.iter().any(|s| !s.exec_grants.is_empty());
        let policy = plan.exec_confinement.map(|(p, _)| p).unwrap_or_default();
        if !any {
            // Nothing runs on the host: no need to probe bubblewrap (a trial
            // sandbox costs a run several milliseconds), and no grant to report.
            return Ok(ExecPlan {
                steps,
                confine: false,
                summary: None,
            });
        }
        let available = match flow_sandbox::confinement() {
            flow_sandbox::Confinement::Available { version, .. } => Ok(version.clone()),
            flow_sandbox::Confinement::Unavailable { reason } => Err(reason.clone()),
        };
        let (confine, summary) = match (policy, available) {
            (ExecConfinement::Off, _) => (
                false,
                "host commands run unconfined (`exec-confinement: off`)".to_owned(),
            ),
            (_, Ok(version)) => (
                true,
                format!("host commands run confined by bubblewrap {version}"),
            ),
            (ExecConfinement::Required, Err(reason)) => {
                if any && let Some((_, span)) = plan.exec_confinement {
                    problems.push(
                        Diagnostic::error(
                            &plan.exec_confinement_source,
                            span,
                            format!("`exec-confinement: required`, but commands cannot be confined here: {reason}"),
                        )
                        .with_help("install bubblewrap (`bwrap`), or write `exec-confinement: preferred`"),
                    );
                }
                (false, String::new())
            }
            (ExecConfinement::Preferred, Err(reason)) => (
                false,
                format!("host commands run NOT confined, with a clean environment only: {reason}"),
            ),
        };
        if !problems.is_empty() {
            problems.sort_by_key(|d| d.primary.as_ref().map(|l| l.span.start));
            return Err(Diagnostics(problems));
        }
        let summary = if confine || !any {
            summary
        } else {
            // Unconfined commands run as the user; say what that means here.
            let reaping = match flow_sandbox::reaping() {
                flow_sandbox::ReapingSupport::PidNamespace { .. } => {
                    "each in a PID namespace, so every process it starts ends with it".to_owned()
                }
                flow_sandbox::ReapingSupport::ProcessGroupOnly { reason } => format!(
                    "in a process group only, so a process that leaves it can outlive the step ({reason})"
                ),
            };
            format!(
                "{summary}; they run as you and can read what you can, your signing key's file included; {reaping}"
            )
        };
        Ok(ExecPlan {
            steps,
            confine,
            summary: any.then_some(summary),
        })
    }

    /// What a step may run and with which environment, built when it starts
    /// (the host's values of `grants.env` names are read then).
    pub fn policy(
        &self,
        step: &PlannedStep,
        workspace: &Path,
        secrets: &SecretValues,
    ) -> Option<Arc<ExecPolicy>> {
        let commands = self.steps.get(step.index).cloned().unwrap_or_default();
        if commands.is_empty() && step.env_grants.is_empty() {
            return None;
        }
        let mut env = Vec::new();
        let mut missing = Vec::new();
        for grant in &step.env_grants {
            if let Some((secret, _)) = &grant.secret {
                // Loaded when the run started; a missing one stopped it then.
                if let Some(value) = secrets.0.get(secret) {
                    env.push((grant.name.clone(), value.clone()));
                }
                continue;
            }
            match &grant.value {
                Some(value) => env.push((grant.name.clone(), value.clone())),
                None => match std::env::var(&grant.name) {
                    Ok(value) => env.push((grant.name.clone(), value)),
                    Err(_) => missing.push(grant.name.clone()),
                },
            }
        }
        // A variable the pipeline gives a value (or a secret) is the pipeline's: the
        // plugin may set only those it is granted by name alone.
        let granted_names = step
            .env_grants
            .iter()
            .filter(|g| g.value.is_none() && g.secret.is_none())
            .map(|g| g.name.clone())
            .collect();
        let fixed_names = step
            .env_grants
            .iter()
            .filter(|g| g.value.is_some() || g.secret.is_some())
            .map(|g| g.name.clone())
            .collect();
        let mut binds = vec![Bind {
            path: workspace.to_path_buf(),
            writable: true,
        }];
        binds.extend(step.fs_grants.iter().map(|g| Bind {
            path: g.path.clone(),
            writable: g.access == FsAccess::Write,
        }));
        let mut reads: Vec<PathBuf> = commands
            .iter()
            .flat_map(|c| c.reads.iter().cloned())
            .collect();
        reads.sort();
        reads.dedup();
        let cwd_roots = binds.iter().map(|b| b.path.clone()).collect();
        binds.extend(reads.into_iter().map(|path| Bind {
            path,
            writable: false,
        }));
        Some(Arc::new(ExecPolicy {
            commands,
            env,
            missing_env: missing,
            granted_names,
            fixed_names,
            binds,
            cwd_roots,
            workspace: workspace.to_path_buf(),
            confine: self.confine,
        }))
    }
}

/// What one step may run.
#[derive(Debug)]
pub struct ExecPolicy {
    pub(crate) commands: Vec<GrantedCommand>,
    /// The granted variables and their values.
    pub(crate) env: Vec<(String, String)>,
    /// Granted names the host does not have (reported in the log).
    pub(crate) missing_env: Vec<String>,
    /// Variables the plugin may set for a command (granted by name alone).
    pub(crate) granted_names: BTreeSet<String>,
    /// Variables the pipeline fixed (a value or a secret): never the plugin's to change.
    pub(crate) fixed_names: BTreeSet<String>,
    pub(crate) binds: Vec<Bind>,
    pub(crate) cwd_roots: Vec<PathBuf>,
    pub(crate) workspace: PathBuf,
    pub(crate) confine: bool,
}

impl ExecPolicy {
    pub(crate) fn command(&self, name: &str) -> Result<&GrantedCommand, String> {
        self.commands.iter().find(|c| c.name == name).ok_or_else(|| {
            let granted: Vec<&str> = self.commands.iter().map(|c| c.name.as_str()).collect();
            if granted.is_empty() {
                format!("`{name}` is not granted: this step may run no host commands (`grants.exec`)")
            } else {
                format!("`{name}` is not granted: this step may run only {}", granted.join(", "))
            }
        })
    }

    pub(crate) fn cwd(&self, cwd: Option<&str>) -> Result<PathBuf, String> {
        let Some(cwd) = cwd else {
            return Ok(self.workspace.clone());
        };
        let path = Path::new(cwd);
        if !path.is_absolute()
            || path
                .components()
                .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
        {
            return Err(format!(
                "the working directory `{cwd}` must be an absolute path without `.` or `..`"
            ));
        }
        let real = path
            .canonicalize()
            .map_err(|e| format!("the working directory `{cwd}`: {e}"))?;
        if !self.cwd_roots.iter().any(|root| real.starts_with(root)) {
            return Err(format!(
                "the working directory `{cwd}` is outside the workspace and the granted directories"
            ));
        }
        Ok(real)
    }

    pub(crate) fn environment(
        &self,
        extra: Vec<(String, String)>,
    ) -> Result<Vec<(String, String)>, String> {
        let mut env = self.env.clone();
        for (name, value) in extra {
            if self.fixed_names.contains(&name) {
                return Err(format!(
                    "variable `{name}` is fixed by the pipeline (`grants.env`): the plugin cannot change it"
                ));
            }
            if !self.granted_names.contains(&name) {
                return Err(format!("variable `{name}` is not granted (`grants.env`)"));
            }
            env.retain(|(n, _)| *n != name);
            env.push((name, value));
        }
        if !env.iter().any(|(n, _)| n == "PATH") {
            let mut dirs: Vec<String> = Vec::new();
            for command in &self.commands {
                if let Some(dir) = command.resolved.path.parent().and_then(Path::to_str)
                    && !dirs.iter().any(|d| d == dir)
                {
                    dirs.push(dir.to_owned());
                }
            }
            for dir in SYSTEM_PATH.split(':') {
                if !dirs.iter().any(|d| d == dir) {
                    dirs.push(dir.to_owned());
                }
            }
            env.push(("PATH".to_owned(), dirs.join(":")));
        }
        Ok(env)
    }
}
