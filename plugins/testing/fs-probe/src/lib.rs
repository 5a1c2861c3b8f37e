//! A test plugin that lists, reads and writes files where it is told, and
//! reports what it saw. Never shipped in the `flow` binary.

use flow_plugin_sdk::{Context, Description, Param, Plugin, StepError, export_plugin};
use serde::Deserialize;

#[derive(Deserialize)]
struct Params {
    #[serde(default)]
    list: Option<String>,
    #[serde(default)]
    read: Option<String>,
    #[serde(default)]
    write: Option<String>,
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    count: Option<u32>,
}

struct FsProbe;

impl Plugin for FsProbe {
    type Params = Params;

    fn describe() -> Description {
        Description::new(
            "fs-probe",
            env!("CARGO_PKG_VERSION"),
            "Lists, reads and writes files (tests only)",
        )
        .param(Param::string("list", "a directory to list"))
        .param(Param::string("read", "a file to read"))
        .param(Param::string("write", "a file to write"))
        .param(Param::string("content", "what to write").default("probe\n"))
        .param(Param::integer(
            "count",
            "write this many files, `write` followed by 0, 1, ..., a millisecond apart",
        ))
        .output("entries", "the sorted names in `list`, comma-separated")
        .output("content", "the text of `read`")
        .output("cwd", "the working directory")
    }

    fn run(params: Params, ctx: &mut Context) -> Result<(), StepError> {
        let cwd = std::env::current_dir()?;
        ctx.set_output("cwd", &cwd.display().to_string());
        if let Some(dir) = params.list {
            let mut names = Vec::new();
            for entry in std::fs::read_dir(&dir).map_err(|e| format!("cannot list {dir}: {e}"))? {
                names.push(entry?.file_name().to_string_lossy().into_owned());
            }
            names.sort();
            ctx.set_output("entries", &names.join(","));
        }
        if let Some(file) = params.read {
            let text =
                std::fs::read_to_string(&file).map_err(|e| format!("cannot read {file}: {e}"))?;
            ctx.set_output("content", &text);
        }
        if let Some(file) = params.write {
            let content = params.content.unwrap_or_default();
            let names: Vec<String> = match params.count {
                None => vec![file],
                Some(n) => (0..n).map(|i| format!("{file}{i}")).collect(),
            };
            for (i, name) in names.iter().enumerate() {
                if i > 0 {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                std::fs::write(name, &content).map_err(|e| format!("cannot write {name}: {e}"))?;
            }
            ctx.info(&format!("wrote {}", names.join(", ")));
        }
        Ok(())
    }
}

export_plugin!(FsProbe);
