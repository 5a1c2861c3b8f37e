//! The exec capability: host commands a step is granted (`grants.exec`).
//!
//! Commands are resolved to files, and hashed, when the pipeline is loaded
//! ([`ExecPlan::resolve`]); a plugin then asks for one by its granted name and
//! the host runs it through [`flow_sandbox`]: a clean environment (the granted
//! variables and a `PATH` of the granted commands' directories and the
//! system's), confined by bubblewrap where available (only the workspace, the
//! step's granted directories and the commands' `reads` are visible; no
//! network), its output streamed into the step log, and its whole process
//! tree killed at the step's timeout or on cancellation.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use flow_pipeline::{Diagnostics, PlannedStep};
use flow_sandbox::{CommandSpec, StopReason, Stream};

use serde_json::{Map, Value};
use wasmtime::component::{HasSelf, Linker};

use super::recorded::Claims;
use super::secret_values::SecretValues;
use super::step_log::{LogSink, LogSource};
use super::unit::{Capability, RunInputs, StepInputs, StoreData};
use crate::bindings::flow::plugin::exec as wit_exec;
use crate::cancel::{CancelFlag, Stop};

pub use super::commands::{ExecPlan, ExecPolicy, GrantedCommand};

/// The exec capability (`grants.exec`, `grants.env`): host commands run on the
/// plugin's behalf. Commands are resolved and hashed when the pipeline is loaded
/// ([`ExecPlan::resolve`]); a run adds the secret values its variables take.
pub(crate) struct Exec;

/// What a run's commands need: the load-time plan and the run's secret values.
pub(crate) struct ExecRun {
    plan: Arc<ExecPlan>,
    secrets: Arc<SecretValues>,
}

impl ExecRun {
    /// The commands each step is granted.
    pub(crate) fn plan(&self) -> &ExecPlan {
        &self.plan
    }
}

/// What one step's `exec` calls work on.
pub(crate) struct ExecStep {
    policy: Option<Arc<ExecPolicy>>,
    deadline: Instant,
    cancel: CancelFlag,
    log: LogSink,
    claims: Claims,
    /// Set when a command was killed because the step ran out of time or was cancelled.
    stopped: Option<Stop>,
}

impl ExecStep {
    /// Why a command was stopped, if one was: the step's end.
    pub(crate) fn stopped(&self) -> Option<Stop> {
        self.stopped
    }

    /// The variables the plugin itself sees: the granted ones.
    pub(crate) fn plugin_env(&self) -> &[(String, String)] {
        self.policy
            .as_ref()
            .map(|p| p.env.as_slice())
            .unwrap_or(&[])
    }
}

impl Capability for Exec {
    type Run = ExecRun;
    type Step = ExecStep;

    fn resolve(inputs: &RunInputs<'_>) -> Result<ExecRun, Diagnostics> {
        Ok(ExecRun {
            plan: inputs.exec.clone(),
            secrets: inputs.secrets.clone(),
        })
    }

    fn prepare(run: &ExecRun, inputs: &StepInputs<'_>) -> ExecStep {
        let policy = run.plan.policy(inputs.step, inputs.workspace, &run.secrets);
        if let Some(policy) = &policy
            && !policy.missing_env.is_empty()
        {
            inputs.log.line(
                LogSource::Host,
                &format!(
                    "granted but not set on the host: {}",
                    policy.missing_env.join(", ")
                ),
            );
        }
        ExecStep {
            policy,
            deadline: inputs.deadline,
            cancel: inputs.cancel.clone(),
            log: inputs.log.clone(),
            claims: inputs.claims.clone(),
            stopped: None,
        }
    }

    fn none(log: &LogSink) -> ExecStep {
        ExecStep {
            policy: None,
            deadline: Instant::now(),
            cancel: CancelFlag::new(),
            log: log.clone(),
            claims: Claims::new(),
            stopped: None,
        }
    }

    fn describe(run: &ExecRun, step: &PlannedStep, grants: &mut Map<String, Value>) {
        let commands = run
            .plan
            .steps
            .get(step.index)
            .map(Vec::as_slice)
            .unwrap_or_default();
        if !commands.is_empty() {
            grants.insert(
                "exec".into(),
                commands.iter().map(GrantedCommand::to_json).collect(),
            );
            grants.insert("confined".into(), run.plan.confine.into());
        }
        if !step.env_grants.is_empty() {
            // Names only: values may be secret.
            grants.insert(
                "env".into(),
                step.env_grants.iter().map(|g| g.name.clone()).collect(),
            );
        }
    }

    fn link<T: StoreData>(
        linker: &mut Linker<T>,
        project: fn(&mut T) -> &mut ExecStep,
    ) -> wasmtime::Result<()> {
        wit_exec::add_to_linker::<T, HasSelf<ExecStep>>(linker, project)
    }
}

impl wit_exec::Host for ExecStep {
    async fn run(&mut self, command: wit_exec::Command) -> Result<wit_exec::ExitStatus, String> {
        let Some(policy) = self.policy.clone() else {
            return Err(format!(
                "`{}` is not granted: this step may run no host commands (`grants.exec`)",
                command.name
            ));
        };
        let granted = policy.command(&command.name)?;
        granted
            .resolved
            .check_unchanged()
            .map_err(|e| e.to_string())?;
        let cwd = policy.cwd(command.cwd.as_deref())?;
        let env = policy.environment(command.env)?;
        // What the command will see must still be what was checked: no directory of
        // its binds became a symbolic link since (an earlier step could have made one).
        for bind in &policy.binds {
            crate::capabilities::fs::open_beneath_root(&bind.path)
                .map_err(|why| format!("cannot run `{}`: {why}", granted.name))?;
        }
        // A rustup proxy runs whichever toolchain the working directory and the
        // environment name: record that binary, not only the proxy.
        let toolchain = {
            let resolved = granted.resolved.clone();
            let (cwd, env) = (cwd.clone(), env.clone());
            let untrusted: Vec<PathBuf> = policy
                .binds
                .iter()
                .filter(|b| b.writable)
                .map(|b| b.path.clone())
                .collect();
            tokio::task::spawn_blocking(move || {
                let untrusted: Vec<&Path> = untrusted.iter().map(PathBuf::as_path).collect();
                flow_sandbox::rustup_toolchain(&resolved, &cwd, &env, &untrusted)
            })
            .await
            .map_err(|e| format!("cannot run `{}`: {e}", granted.name))?
        };
        let toolchain = match toolchain {
            Some(Ok(binary)) => Some(binary),
            Some(Err(e)) => return Err(format!("cannot run `{}`: {e}", granted.name)),
            None => None,
        };
        let spec = CommandSpec {
            command: (*granted.resolved).clone(),
            args: command.args.clone(),
            cwd: cwd.clone(),
            env,
            binds: policy.binds.clone(),
            network: false,
            confine: policy.confine,
        };
        let shown = std::iter::once(granted.name.as_str())
            .chain(command.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ");
        let how = if policy.confine {
            "confined".to_owned()
        } else {
            match flow_sandbox::reaping() {
                flow_sandbox::ReapingSupport::PidNamespace { .. } => "not confined".to_owned(),
                flow_sandbox::ReapingSupport::ProcessGroupOnly { .. } => {
                    "not confined; processes that leave its group may outlive it".to_owned()
                }
            }
        };
        self.log.line(
            LogSource::Host,
            &format!("$ {shown}  ({how}, in {})", cwd.display()),
        );
        if let Some(binary) = &toolchain {
            self.log.line(
                LogSource::Host,
                &format!(
                    "  `{}` runs {} ({})",
                    granted.name,
                    binary.real_path.display(),
                    binary.version.as_deref().unwrap_or("version unknown")
                ),
            );
        }
        let log = self.log.clone();
        let (deadline, cancel) = (self.deadline, self.cancel.clone());
        let stop = async move {
            tokio::select! {
                () = tokio::time::sleep_until(deadline.into()) => StopReason::Timeout,
                () = cancel.cancelled() => StopReason::Cancelled,
            }
        };
        // cargo says what it compiled, one `Compiling` line per crate, on stderr: that
        // is its progress (it cannot say the total without a terminal).
        let mut crates = (granted.name == "cargo").then(CratesCompiled::default);
        let on_output = move |stream: Stream, bytes: &[u8]| {
            let source = match stream {
                Stream::Stdout => LogSource::Stdout,
                Stream::Stderr => LogSource::Stderr,
            };
            log.write(source, bytes);
            if let (Some(crates), Stream::Stderr) = (crates.as_mut(), stream)
                && let Some(count) = crates.read(bytes)
            {
                log.progress(count, None, "crates compiled");
            }
        };
        let outcome = flow_sandbox::run(&spec, on_output, stop)
            .await
            .map_err(|e| format!("cannot run `{}`: {e}", granted.name))?;
        let mut record = serde_json::json!({
            "name": granted.name,
            "path": granted.resolved.real_path.display().to_string(),
            "args": command.args,
            "cwd": cwd.display().to_string(),
            "confined": outcome.confined,
            "reaped": match outcome.reaped {
                flow_sandbox::Reaping::PidNamespace => "pid-namespace",
                _ => "process-group",
            },
            "durationMs": outcome.duration.as_millis() as u64,
        });
        if let Some(binary) = &toolchain {
            record["toolchain"] = serde_json::json!({
                "path": binary.real_path.display().to_string(),
                "sha256": binary.sha256,
                "version": binary.version,
                "name": binary.toolchain,
            });
            self.claims.add_observed(flow_provenance::Dependency {
                uri: format!("file://{}", binary.real_path.display()),
                name: Some(format!(
                    "{} ({})",
                    granted.name,
                    binary.toolchain.as_deref().unwrap_or("toolchain")
                )),
                digest: [("sha256".to_owned(), binary.sha256.clone())]
                    .into_iter()
                    .collect(),
                claimed_by: None,
            });
        }
        if let Some(code) = outcome.code {
            record["exitCode"] = code.into();
        }
        if let Some(signal) = outcome.signal {
            record["signal"] = signal.into();
        }
        self.claims.add_command(record);
        if !outcome.confined {
            self.claims
                .add_outside(format!("it ran `{}` unconfined", granted.name));
        }
        if let Some(stopped) = outcome.stopped {
            self.stopped = Some(match stopped {
                StopReason::Timeout => Stop::TimedOut,
                StopReason::Cancelled => Stop::Cancelled,
            });
            return Err(format!(
                "`{}` was killed: the step {}",
                granted.name,
                match stopped {
                    StopReason::Timeout => "ran past its timeout",
                    StopReason::Cancelled => "was cancelled",
                }
            ));
        }
        Ok(wit_exec::ExitStatus {
            code: outcome.code,
            signal: outcome.signal,
            confined: outcome.confined,
        })
    }
}

/// Counts the `Compiling NAME VERSION` lines of cargo's stderr as they stream by.
#[derive(Default)]
struct CratesCompiled {
    count: u64,
    line: Vec<u8>,
}

impl CratesCompiled {
    /// Takes a chunk of output; the count when it finished a `Compiling` line.
    fn read(&mut self, bytes: &[u8]) -> Option<u64> {
        let before = self.count;
        for &b in bytes {
            if b == b'\n' {
                if String::from_utf8_lossy(&self.line)
                    .trim_start()
                    .starts_with("Compiling ")
                {
                    self.count += 1;
                }
                self.line.clear();
            } else if self.line.len() < 256 {
                self.line.push(b);
            }
        }
        (self.count > before).then_some(self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::CratesCompiled;

    #[test]
    fn compiling_lines_are_counted_across_chunks() {
        let mut crates = CratesCompiled::default();
        assert_eq!(crates.read(b"   Compiling libc v0.2.1\n   Compil"), Some(1));
        assert_eq!(crates.read(b"ing serde v1.0.0\n"), Some(2));
        assert_eq!(
            crates.read(b"    Finished `dev` profile\nwarning: Compiling x\n"),
            None
        );
        assert_eq!(crates.count, 2);
    }
}
