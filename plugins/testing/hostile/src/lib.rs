//! A test plugin that attacks the host the way a hostile step would, one attack
//! per `attack` param, each reporting in its outputs what it got. The security
//! tests (`tests/cli/security.rs`) run it and check that every attempt fails.
//! Never shipped in the `flow` binary.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use flow_plugin_sdk::{
    Context, Description, Param, Plugin, StepError, exec, export_plugin, fs, provenance, signing,
};
use serde::Deserialize;

#[derive(Deserialize)]
struct Params {
    attack: String,
    /// Paths to read or write, for `read` and `write`.
    #[serde(default)]
    paths: Vec<String>,
    /// What `hunt` looks for in every file it can read.
    #[serde(default)]
    needle: Option<String>,
    /// For `symlink` and `swap`: the link and where it points.
    #[serde(default)]
    link: Option<String>,
    #[serde(default)]
    target: Option<String>,
    /// For `claim`: the dependencies to claim.
    #[serde(default)]
    claims: Vec<Claim>,
    /// For `exec`: the command, its args and the variables it sets.
    #[serde(default)]
    command: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    /// For `exec`: wait for this file to exist before running (after writing
    /// `ready` in the workspace).
    #[serde(default)]
    wait_for: Option<String>,
    /// For `sign`: the key name.
    #[serde(default)]
    key: Option<String>,
    /// For `sparse` and `fill`: bytes.
    #[serde(default)]
    size: Option<u64>,
}

#[derive(Deserialize)]
struct Claim {
    uri: String,
    #[serde(default)]
    name: Option<String>,
    digest: BTreeMap<String, String>,
}

struct Hostile;

/// Every regular file below `dir` (not following symlinks), at most `limit` of them.
fn walk(dir: &Path, out: &mut Vec<PathBuf>, limit: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if out.len() >= limit {
            return;
        }
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => walk(&path, out, limit),
            Ok(t) if t.is_file() => out.push(path),
            _ => {}
        }
    }
}

impl Plugin for Hostile {
    type Params = Params;

    fn describe() -> Description {
        Description::new(
            "hostile",
            env!("CARGO_PKG_VERSION"),
            "Attacks the host (tests only)",
        )
        .param(
            Param::string(
                "attack",
                "hunt | read | write | symlink | swap | claim | exec | sign | sparse | fill",
            )
            .required(),
        )
        .extra_params()
        .output("found", "files holding the needle (hunt)")
        .output("results", "what each attempt got, one line each")
    }

    fn run(params: Params, ctx: &mut Context) -> Result<(), StepError> {
        let mut results: Vec<String> = Vec::new();
        match params.attack.as_str() {
            // Read every file the step can see, looking for the needle (a key's PEM
            // header, a secret's value).
            "hunt" => {
                let needle = params.needle.ok_or("`hunt` needs `needle`")?;
                let mut roots: Vec<PathBuf> = vec![PathBuf::from(ctx.workspace())];
                roots.extend(ctx.granted_dirs().iter().map(|d| PathBuf::from(&d.path)));
                roots.extend(params.paths.iter().map(PathBuf::from));
                let mut files = Vec::new();
                for root in &roots {
                    walk(root, &mut files, 200_000);
                }
                let mut found = Vec::new();
                for file in &files {
                    let mut bytes = Vec::new();
                    if std::fs::File::open(file)
                        .and_then(|f| f.take(16 << 20).read_to_end(&mut bytes))
                        .is_ok()
                        && bytes
                            .windows(needle.len().max(1))
                            .any(|w| w == needle.as_bytes())
                    {
                        found.push(file.display().to_string());
                    }
                }
                results.push(format!("looked at {} files", files.len()));
                ctx.set_output("found", &found.join("\n"));
            }
            "read" => {
                for path in &params.paths {
                    match std::fs::read(path) {
                        Ok(bytes) => results.push(format!("read {path}: {} bytes", bytes.len())),
                        Err(e) => results.push(format!("read {path}: refused: {e}")),
                    }
                }
            }
            "write" => {
                for path in &params.paths {
                    match std::fs::write(path, b"-----BEGIN PRIVATE KEY-----\nforged\n") {
                        Ok(()) => results.push(format!("wrote {path}")),
                        Err(e) => results.push(format!("write {path}: refused: {e}")),
                    }
                }
            }
            "symlink" => {
                let link = params.link.ok_or("`symlink` needs `link`")?;
                let target = params.target.ok_or("`symlink` needs `target`")?;
                if let Some(parent) = Path::new(&link).parent() {
                    std::fs::create_dir_all(parent).ok();
                }
                fs::symlink(&target, &link)?;
                results.push(format!("linked {link} -> {target}"));
            }
            // Replace a directory by a link to somewhere else.
            "swap" => {
                let link = params.link.ok_or("`swap` needs `link`")?;
                let target = params.target.ok_or("`swap` needs `target`")?;
                std::fs::remove_dir_all(&link).map_err(|e| format!("remove {link}: {e}"))?;
                fs::symlink(&target, &link)?;
                results.push(format!("swapped {link} for a link to {target}"));
            }
            "claim" => {
                for claim in &params.claims {
                    let digest: Vec<(&str, &str)> = claim
                        .digest
                        .iter()
                        .map(|(a, v)| (a.as_str(), v.as_str()))
                        .collect();
                    provenance::add_dependency(&claim.uri, claim.name.as_deref(), &digest);
                    results.push(format!("claimed {}", claim.uri));
                }
            }
            "exec" => {
                let name = params.command.ok_or("`exec` needs `command`")?;
                if let Some(wait) = &params.wait_for {
                    std::fs::write(Path::new(ctx.workspace()).join("ready"), b"ready")
                        .map_err(|e| format!("write ready: {e}"))?;
                    while !Path::new(wait).exists() {
                        std::thread::sleep(std::time::Duration::from_millis(20));
                    }
                }
                let mut command = exec::Command::new(&name).args(params.args.iter().cloned());
                for (k, v) in &params.env {
                    command = command.env(k.clone(), v.clone());
                }
                match command.run() {
                    Ok(status) => results.push(format!("ran {name}: {status}")),
                    Err(e) => results.push(format!("ran {name}: refused: {}", e.message())),
                }
            }
            "sign" => {
                let key = params.key.ok_or("`sign` needs `key`")?;
                match signing::sign_dsse(&key, "application/vnd.in-toto+json", b"{}") {
                    Ok(_) => results.push(format!("signed with {key}")),
                    Err(e) => results.push(format!("sign with {key}: refused: {}", e.message())),
                }
            }
            // A file that is huge to read and costs no disk.
            "sparse" => {
                let size = params.size.ok_or("`sparse` needs `size`")?;
                let mut file =
                    std::fs::File::create("sparse.bin").map_err(|e| format!("create: {e}"))?;
                file.seek(SeekFrom::Start(size.saturating_sub(1)))
                    .and_then(|_| file.write_all(b"x"))
                    .map_err(|e| format!("extend: {e}"))?;
                results.push(format!("made a sparse file of {size} bytes"));
            }
            "fill" => {
                let size = params.size.ok_or("`fill` needs `size`")?;
                let chunk = vec![7u8; 1 << 20];
                let mut file =
                    std::fs::File::create("fill.bin").map_err(|e| format!("create: {e}"))?;
                let mut left = size;
                while left > 0 {
                    let n = left.min(chunk.len() as u64) as usize;
                    file.write_all(&chunk[..n])
                        .map_err(|e| format!("write: {e}"))?;
                    left -= n as u64;
                }
                results.push(format!("wrote {size} bytes"));
            }
            other => return Err(StepError::new(format!("unknown attack `{other}`"))),
        }
        for line in &results {
            ctx.info(line);
        }
        ctx.set_output("results", &results.join("\n"));
        Ok(())
    }
}

export_plugin!(Hostile);
