//! `build`: runs a build command the step is granted (`cargo build --release`,
//! `make`...) in the workspace, then reports the artifacts matching the
//! declared patterns, with their sha256, as outputs.
//!
//! ```yaml
//! build:
//!   uses: build
//!   needs: [checkout]
//!   grants:
//!     exec: [{ command: cargo, reads: [~/.rustup, ~/.cargo] }]
//!     env: [HOME]
//!   with:
//!     command: [cargo, build, --release, --offline]
//!     dir: src
//!     artifacts: [target/release/hello]
//! ```

mod glob;

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use flow_plugin_sdk::exec::Command;
use flow_plugin_sdk::{
    Capability, Context, Description, Param, ParamType, Plugin, StepError, export_plugin,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

struct Build;

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Params {
    command: Value,
    dir: String,
    #[serde(default)]
    env: Map<String, Value>,
    artifacts: Vec<String>,
    allow_no_artifacts: bool,
}

/// `[cargo, build]` or `"cargo build"` (split on spaces; no shell quoting).
fn command_line(value: &Value) -> Result<Vec<String>, StepError> {
    let words: Vec<String> = match value {
        Value::String(s) => s.split_whitespace().map(str::to_owned).collect(),
        Value::Array(items) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                other => Err(StepError::new(format!(
                    "`command` must hold strings, found {other}"
                ))),
            })
            .collect::<Result<_, _>>()?,
        other => {
            return Err(StepError::new(format!(
                "`command` must be a list or a string, found {other}"
            )));
        }
    };
    if words.is_empty() {
        return Err(StepError::new("`command` is empty"));
    }
    Ok(words)
}

/// `dir` inside the workspace: relative, without `..`.
fn build_dir(workspace: &str, dir: &str) -> Result<PathBuf, StepError> {
    let path = Path::new(dir);
    if path.is_absolute() || path.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(StepError::new(format!(
            "`dir: {dir}` must be a path inside the workspace, without `..`"
        )));
    }
    Ok(Path::new(workspace).join(path))
}

fn sha256_file(path: &Path) -> Result<(String, u64), StepError> {
    let mut file = std::fs::File::open(path)
        .map_err(|e| StepError::new(format!("{}: {e}", path.display())))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| StepError::new(format!("{}: {e}", path.display())))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((hex::encode(hasher.finalize()), size))
}

impl Plugin for Build {
    type Params = Params;

    fn describe() -> Description {
        Description::new(
            "build",
            env!("CARGO_PKG_VERSION"),
            "Runs a granted build command in the workspace and reports the artifacts it made, with their sha256",
        )
        .param(
            Param::new("command", ParamType::Any, "the command and its arguments: `[cargo, build, --release]` (a string is split on spaces)")
                .required(),
        )
        .param(Param::string("dir", "where to run it, relative to the workspace").default("."))
        .param(Param::new("env", ParamType::Object, "variables to set; each must be granted in `grants.env`").default(json!({})))
        .param(Param::list("artifacts", "patterns of the files it makes, relative to `dir` (`*`, `?`, `[..]`, `**`)").default(json!([])))
        .param(Param::boolean("allow-no-artifacts", "succeed even when a pattern matches nothing").default(false))
        .output("artifacts", "the artifacts as JSON: [{path, sha256, size}], paths relative to the workspace")
        .output("digests", "one `<sha256>  <path>` line per artifact, as `sha256sum` prints them")
        .output("count", "how many artifacts were found")
        .needs(Capability::Exec)
    }

    fn run(params: Params, ctx: &mut Context) -> Result<(), StepError> {
        let words = command_line(&params.command)?;
        let dir = build_dir(ctx.workspace(), &params.dir)?;
        if !dir.is_dir() {
            return Err(StepError::new(format!(
                "`dir: {}` does not exist in the workspace",
                params.dir
            )));
        }
        let patterns = params
            .artifacts
            .iter()
            .map(|p| glob::Pattern::new(p))
            .collect::<Result<Vec<_>, _>>()?;
        let mut command = Command::new(&words[0]).args(&words[1..]).current_dir(&dir);
        for (name, value) in &params.env {
            let value = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            command = command.env(name, value);
        }
        ctx.info(&format!("running {}", command.display()));
        let status = command.run()?;
        if !status.success() {
            return Err(StepError::new(format!(
                "`{}` failed: {status}",
                command.display()
            )));
        }

        let mut artifacts = Vec::new();
        let mut digests = String::new();
        let base = dir
            .strip_prefix(ctx.workspace())
            .unwrap_or(Path::new(""))
            .to_path_buf();
        for pattern in &patterns {
            let found = pattern.find(&dir)?;
            if found.is_empty() && !params.allow_no_artifacts {
                return Err(StepError::new(format!(
                    "the build succeeded but made nothing matching `{}` in {}",
                    pattern.as_str(),
                    if params.dir == "." {
                        "the workspace".to_owned()
                    } else {
                        format!("`{}`", params.dir)
                    }
                )));
            }
            for rel in found {
                let (sha256, size) = sha256_file(&dir.join(&rel))?;
                let path = base.join(&rel).to_string_lossy().into_owned();
                ctx.info(&format!("artifact {path}: sha256:{sha256} ({size} bytes)"));
                digests.push_str(&format!("{sha256}  {path}\n"));
                artifacts.push(json!({ "path": path, "sha256": sha256, "size": size }));
            }
        }
        ctx.set_output("count", &artifacts.len().to_string());
        ctx.set_output("artifacts", &Value::Array(artifacts).to_string());
        ctx.set_output("digests", &digests);
        Ok(())
    }
}

export_plugin!(Build);
