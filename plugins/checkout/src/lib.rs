//! `checkout`: checks out a commit (branch, tag or sha; the repository's HEAD by
//! default) of a local git repository, bare or with a work tree, into the
//! workspace. It runs entirely inside the WebAssembly sandbox: the repository
//! is granted read-only and the plugin reads its packs and loose objects itself
//! (`flow-git`); executable bits and symbolic links are set through the host's
//! `files` interface, inside the workspace only.
//!
//! ```yaml
//! checkout:
//!   uses: checkout
//!   grants: { fs: [{ path: ../app, access: read }] }
//!   with: { ref: v1.2.0, path: src }
//! ```

use std::path::{Component, Path, PathBuf};
use std::time::Instant;

use flow_git::{Repository, Sink};
use flow_plugin_sdk::fs::{EntryKind, TreeEntry};
use flow_plugin_sdk::{
    Capability, Context, Description, Param, Plugin, StepError, export_plugin, provenance,
};
use serde::Deserialize;

struct Checkout;

#[derive(Deserialize)]
struct Params {
    repo: Option<String>,
    #[serde(rename = "ref")]
    reference: Option<String>,
    path: String,
}

/// `https://...`, `ssh://...`, `git://...`, `git@host:path`: not a local path.
fn is_remote(repo: &str) -> bool {
    ["http://", "https://", "ssh://", "git://", "file://", "git+"]
        .iter()
        .any(|p| repo.starts_with(p))
        || repo
            .split_once(':')
            .is_some_and(|(host, _)| host.contains('@') && !host.contains('/'))
}

/// The repository: `repo` as given (relative paths are taken from the
/// workspace), or the one directory the step is granted.
fn repository_path(params: &Params, ctx: &Context) -> Result<PathBuf, StepError> {
    match &params.repo {
        Some(repo) if is_remote(repo) => Err(StepError::new(format!(
            "cannot fetch `{repo}`: fetching a remote repository needs the network capability, which this version of flow does not provide; \
             clone it on the host and grant the clone instead: `grants: {{ fs: [{{ path: <clone>, access: read }}] }}` and `repo: <clone>`"
        ))),
        Some(repo) => Ok(Path::new(ctx.workspace()).join(repo)),
        None => match ctx.granted_dirs() {
            [one] => Ok(PathBuf::from(&one.path)),
            [] => Err(StepError::new(
                "no repository: give `repo:` and grant it with `grants: { fs: [{ path: <repo>, access: read }] }`",
            )),
            many => Err(StepError::new(format!(
                "the step is granted {} directories; say which is the repository with `repo:`",
                many.len()
            ))),
        },
    }
}

/// `path` inside the workspace, empty or absent.
fn destination(workspace: &str, path: &str) -> Result<PathBuf, StepError> {
    let rel = Path::new(path);
    if rel.is_absolute() || rel.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(StepError::new(format!(
            "`path: {path}` must be a directory inside the workspace, without `..`"
        )));
    }
    let dest = Path::new(workspace).join(rel);
    match std::fs::read_dir(&dest) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(StepError::new(format!(
                    "the destination `{path}` is not empty; check out into an empty directory (`path:`)"
                )));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(&dest)
                .map_err(|e| StepError::new(format!("cannot create `{path}`: {e}")))?;
        }
        Err(e) => return Err(StepError::new(format!("cannot read `{path}`: {e}"))),
    }
    Ok(dest)
}

/// Writes through the host's `files.write-tree`, a few thousand entries or
/// some megabytes at a time, instead of a WASI call sequence per file.
struct BatchSink {
    root: PathBuf,
    entries: Vec<TreeEntry>,
    bytes: usize,
}

/// Flush when this much is waiting.
const BATCH_BYTES: usize = 8 << 20;
const BATCH_ENTRIES: usize = 2048;

impl BatchSink {
    fn new(root: &Path) -> Self {
        BatchSink {
            root: root.to_path_buf(),
            entries: Vec::new(),
            bytes: 0,
        }
    }

    fn push(&mut self, path: &str, kind: EntryKind, data: Vec<u8>) -> std::io::Result<()> {
        self.bytes += data.len() + path.len();
        self.entries.push(TreeEntry {
            path: path.to_owned(),
            kind,
            data,
        });
        if self.bytes >= BATCH_BYTES || self.entries.len() >= BATCH_ENTRIES {
            self.flush()
                .map_err(|e| std::io::Error::other(e.message().to_owned()))?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StepError> {
        if !self.entries.is_empty() {
            flow_plugin_sdk::fs::write_tree(&self.root, &self.entries)?;
            self.entries.clear();
            self.bytes = 0;
        }
        Ok(())
    }
}

impl Sink for BatchSink {
    fn create_dir(&mut self, path: &str) -> std::io::Result<()> {
        self.push(path, EntryKind::Directory, Vec::new())
    }

    fn write_file(&mut self, path: &str, data: &[u8], executable: bool) -> std::io::Result<()> {
        let kind = if executable {
            EntryKind::ExecutableFile
        } else {
            EntryKind::File
        };
        self.push(path, kind, data.to_vec())
    }

    fn symlink(&mut self, target: &[u8], path: &str) -> std::io::Result<()> {
        self.push(path, EntryKind::Symlink, target.to_vec())
    }
}

impl Plugin for Checkout {
    type Params = Params;

    fn describe() -> Description {
        Description::new(
            "checkout",
            env!("CARGO_PKG_VERSION"),
            "Checks out a commit of a local git repository (bare or with a work tree) into the workspace",
        )
        .param(Param::string(
            "repo",
            "the repository's path, granted with `access: read` (default: the one directory the step is granted)",
        ))
        .param(Param::string("ref", "a branch, tag, full ref or (abbreviated) commit sha (default: the repository's HEAD)"))
        .param(Param::string("path", "where to write it, relative to the workspace; must be empty or absent").default("."))
        .output("commit", "the commit checked out (sha-1, 40 hex)")
        .output("tree", "its tree (sha-1, 40 hex); equals `git rev-parse <commit>^{tree}`")
        .output("ref", "the full ref name the `ref` resolved through, or empty for a sha or a detached HEAD")
        .output("files", "how many files were written")
        .needs(Capability::FsRead)
    }

    fn run(params: Params, ctx: &mut Context) -> Result<(), StepError> {
        let repo_path = repository_path(&params, ctx)?;
        let opened = Instant::now();
        let repo = Repository::open(&repo_path).map_err(|e| StepError::new(e.to_string()))?;
        let resolved = repo
            .resolve(params.reference.as_deref())
            .map_err(|e| StepError::new(e.to_string()))?;
        ctx.debug(&format!(
            "opened the repository and resolved the revision in {} ms",
            opened.elapsed().as_millis()
        ));
        let dest = destination(ctx.workspace(), &params.path)?;
        let shown = params.reference.as_deref().unwrap_or("HEAD");
        ctx.info(&format!(
            "checking out {shown} ({}) of {} into {}",
            resolved.commit,
            repo_path.display(),
            params.path
        ));

        let started = Instant::now();
        let mut sink = BatchSink::new(&dest);
        let mut next_report = 0;
        let report = repo
            .checkout_with_progress(resolved.tree, &mut sink, &mut |p| {
                // The host thins these out; the terminal and the dashboard show them.
                ctx.progress(p.done as u64, Some(p.total as u64), "files");
                if p.total >= 2_000 && p.done >= next_report {
                    ctx.info(&format!("{} of {} files written", p.done, p.total));
                    next_report += p.total / 4;
                }
            })
            .map_err(|e| StepError::new(e.to_string()))?;
        sink.flush()?;
        ctx.info(&format!(
            "wrote {} files ({} executable), {} symbolic links, {} directories, {} bytes in {} ms",
            report.files,
            report.executables,
            report.symlinks,
            report.dirs,
            report.bytes,
            started.elapsed().as_millis()
        ));
        for submodule in &report.submodules {
            ctx.warn(&format!(
                "submodule `{}` at {}{} not fetched: its directory is left empty",
                submodule.path,
                submodule.commit,
                submodule
                    .url
                    .as_deref()
                    .map(|u| format!(" ({u})"))
                    .unwrap_or_default()
            ));
        }
        if !report.lfs_pointers.is_empty() {
            ctx.info(&format!(
                "{} Git LFS pointer files are left as they are (e.g. {})",
                report.lfs_pointers.len(),
                report.lfs_pointers[0]
            ));
        }

        let commit = resolved.commit.to_hex();
        let mut uri = format!("git+file://{}", repo_path.display());
        if let Some(name) = &resolved.ref_name {
            uri.push('@');
            uri.push_str(name);
        }
        let name = repo_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        provenance::add_dependency(&uri, name.as_deref(), &[("gitCommit", &commit)]);
        ctx.set_output("commit", &commit);
        ctx.set_output("tree", &resolved.tree.to_hex());
        ctx.set_output("ref", resolved.ref_name.as_deref().unwrap_or(""));
        ctx.set_output("files", &report.files.to_string());
        Ok(())
    }
}

export_plugin!(Checkout);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_urls_are_recognised() {
        for remote in [
            "https://github.com/a/b",
            "http://x/y.git",
            "ssh://git@h/r",
            "git://h/r",
            "git@github.com:a/b.git",
            "file:///srv/r",
        ] {
            assert!(is_remote(remote), "{remote}");
        }
        for local in ["/srv/repo", "repo", "./a:b", "dir/x@y:z"] {
            assert!(!is_remote(local), "{local}");
        }
    }
}
