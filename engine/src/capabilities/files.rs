//! The files capability: executable bits and symbolic links, which WASI
//! preview 2 cannot set. Both act only inside the workspace and directories
//! granted with `access: write`, through `cap-std`, so a `..` or a symbolic
//! link on the way cannot lead outside them.

use std::path::{Component, Path, PathBuf};

use cap_std::ambient_authority;
use cap_std::fs::{Dir, PermissionsExt};

use flow_pipeline::PlannedStep;
use serde_json::{Map, Value};
use wasmtime::component::{HasSelf, Linker};

use super::step_log::LogSink;
use super::unit::{Capability, RunInputs, StepInputs, StoreData};
use crate::bindings::flow::plugin::files as wit_files;

/// The files capability: the `files` import, acting where the step may write.
pub(crate) struct Files;

impl Capability for Files {
    type Run = ();
    type Step = WritableRoots;

    fn resolve(_: &RunInputs<'_>) -> Result<(), flow_pipeline::Diagnostics> {
        Ok(())
    }

    fn prepare(_: &(), inputs: &StepInputs<'_>) -> WritableRoots {
        let mut roots = vec![inputs.workspace.to_path_buf()];
        roots.extend(
            inputs
                .step
                .fs_grants
                .iter()
                .filter(|g| g.access == flow_pipeline::FsAccess::Write)
                .map(|g| g.path.clone()),
        );
        WritableRoots(roots)
    }

    fn none(_: &LogSink) -> WritableRoots {
        WritableRoots::default()
    }

    /// Its grants are the `fs` capability's.
    fn describe(_: &(), _: &PlannedStep, _: &mut Map<String, Value>) {}

    fn link<T: StoreData>(
        linker: &mut Linker<T>,
        project: fn(&mut T) -> &mut WritableRoots,
    ) -> wasmtime::Result<()> {
        wit_files::add_to_linker::<T, HasSelf<WritableRoots>>(linker, project)
    }
}

/// Where a step may change files: the workspace and its writable grants.
#[derive(Debug, Clone, Default)]
pub(crate) struct WritableRoots(pub Vec<PathBuf>);

impl WritableRoots {
    /// The root holding `path` (absolute, lexically normal) and the path inside it.
    fn locate(&self, path: &str) -> Result<(&Path, PathBuf), String> {
        let path = Path::new(path);
        if !path.is_absolute() {
            return Err(format!("`{}` is not an absolute path", path.display()));
        }
        if path
            .components()
            .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
        {
            return Err(format!("`{}` contains `.` or `..`", path.display()));
        }
        self.0
            .iter()
            .filter_map(|root| {
                path.strip_prefix(root)
                    .ok()
                    .map(|rest| (root.as_path(), rest.to_path_buf()))
            })
            .max_by_key(|(root, _)| root.as_os_str().len())
            .filter(|(_, rest)| !rest.as_os_str().is_empty())
            .ok_or_else(|| {
                format!(
                    "`{}` is outside the workspace and the directories granted for writing",
                    path.display()
                )
            })
    }

    fn open(root: &Path) -> Result<Dir, String> {
        Dir::open_ambient_dir(root, ambient_authority())
            .map_err(|e| format!("cannot open {}: {e}", root.display()))
    }

    pub(crate) fn set_executable(&self, path: &str, executable: bool) -> Result<(), String> {
        let (root, inside) = self.locate(path)?;
        let dir = Self::open(root)?;
        let meta = dir
            .symlink_metadata(&inside)
            .map_err(|e| format!("{path}: {e}"))?;
        if !meta.is_file() {
            return Err(format!("{path} is not a regular file"));
        }
        let mode = meta.permissions().mode() & 0o7777;
        // As git does: x for whoever may read it.
        let mode = if executable {
            mode | ((mode & 0o444) >> 2) | 0o100
        } else {
            mode & !0o111
        };
        dir.set_permissions(&inside, cap_std::fs::Permissions::from_mode(mode))
            .map_err(|e| format!("{path}: {e}"))
    }

    pub(crate) fn symlink(&self, target: &str, link: &str) -> Result<(), String> {
        if target.is_empty() || target.contains('\0') {
            return Err("a symbolic link needs a non-empty target without NUL".into());
        }
        let (root, inside) = self.locate(link)?;
        let dir = Self::open(root)?;
        dir.symlink_contents(target, &inside)
            .map_err(|e| format!("cannot create the link {link}: {e}"))
    }
}

impl WritableRoots {
    /// Create `entries` under `root` (see `files.write-tree`).
    pub(crate) fn write_tree(
        &self,
        root: &str,
        entries: &[wit_files::TreeEntry],
    ) -> Result<(), String> {
        use std::io::Write as _;
        let (base, inside) = self.locate_dir(root)?;
        let dir = Self::open(base)?;
        let dir = if inside.as_os_str().is_empty() {
            dir
        } else {
            dir.open_dir(&inside).map_err(|e| format!("{root}: {e}"))?
        };
        for entry in entries {
            let rel = Path::new(&entry.path);
            if entry.path.is_empty()
                || rel.is_absolute()
                || rel.components().any(|c| !matches!(c, Component::Normal(_)))
            {
                return Err(format!("`{}` is not a plain relative path", entry.path));
            }
            let fail = |e: std::io::Error| format!("{root}/{}: {e}", entry.path);
            match entry.kind {
                wit_files::EntryKind::Directory => match dir.create_dir(rel) {
                    Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(fail(e)),
                    _ => {}
                },
                wit_files::EntryKind::File | wit_files::EntryKind::ExecutableFile => {
                    let mode = if matches!(entry.kind, wit_files::EntryKind::ExecutableFile) {
                        0o755
                    } else {
                        0o644
                    };
                    let mut options = cap_std::fs::OpenOptions::new();
                    options.write(true).create_new(true);
                    cap_std::fs::OpenOptionsExt::mode(&mut options, mode);
                    let mut file = dir.open_with(rel, &options).map_err(fail)?;
                    file.write_all(&entry.data).map_err(fail)?;
                }
                wit_files::EntryKind::Symlink => {
                    let target = std::str::from_utf8(&entry.data).map_err(|_| {
                        format!("{root}/{}: the link's target is not UTF-8", entry.path)
                    })?;
                    dir.symlink_contents(target, rel).map_err(fail)?;
                }
            }
        }
        Ok(())
    }

    /// Like `locate`, but `path` may be a root itself.
    fn locate_dir(&self, path: &str) -> Result<(&Path, PathBuf), String> {
        let p = Path::new(path);
        if let Some(root) = self.0.iter().find(|r| r.as_path() == p) {
            return Ok((root.as_path(), PathBuf::new()));
        }
        self.locate(path)
    }
}

impl wit_files::Host for WritableRoots {
    fn write_tree(
        &mut self,
        root: String,
        entries: Vec<wit_files::TreeEntry>,
    ) -> Result<(), String> {
        WritableRoots::write_tree(self, &root, &entries)
    }

    fn set_executable(&mut self, path: String, executable: bool) -> Result<(), String> {
        WritableRoots::set_executable(self, &path, executable)
    }

    fn symlink(&mut self, target: String, path: String) -> Result<(), String> {
        WritableRoots::symlink(self, &target, &path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn changes_files_only_inside_writable_roots() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        let inside = root.join("ws");
        std::fs::create_dir(&inside).unwrap();
        std::fs::write(inside.join("run.sh"), "#!/bin/sh\n").unwrap();
        std::fs::write(root.join("outside"), "x").unwrap();
        let roots = WritableRoots(vec![inside.clone()]);

        roots
            .set_executable(inside.join("run.sh").to_str().unwrap(), true)
            .unwrap();
        let mode = std::fs::metadata(inside.join("run.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o111,
            0o111,
            "readable by all, so executable by all: {mode:o}"
        );
        roots
            .set_executable(inside.join("run.sh").to_str().unwrap(), false)
            .unwrap();
        assert_eq!(
            std::fs::metadata(inside.join("run.sh"))
                .unwrap()
                .permissions()
                .mode()
                & 0o111,
            0
        );

        roots
            .symlink("../outside", inside.join("link").to_str().unwrap())
            .unwrap();
        assert_eq!(
            std::fs::read_link(inside.join("link")).unwrap(),
            Path::new("../outside")
        );
        roots
            .symlink("/etc/passwd", inside.join("abs").to_str().unwrap())
            .unwrap();

        // Not through a link leading out, not outside, not with `..`.
        let err = roots
            .set_executable(inside.join("link").to_str().unwrap(), true)
            .unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");
        std::os::unix::fs::symlink(&root, inside.join("up")).unwrap();
        let err = roots
            .set_executable(inside.join("up/outside").to_str().unwrap(), true)
            .unwrap_err();
        assert!(!err.is_empty());
        assert_eq!(
            std::fs::metadata(root.join("outside"))
                .unwrap()
                .permissions()
                .mode()
                & 0o111,
            0
        );
        let err = roots
            .symlink("x", root.join("outside2").to_str().unwrap())
            .unwrap_err();
        assert!(err.contains("outside the workspace"), "{err}");
        let err = roots
            .symlink("x", &format!("{}/../escape", inside.display()))
            .unwrap_err();
        assert!(err.contains("`..`"), "{err}");
        let err = roots
            .symlink("x", inside.join("up/escape").to_str().unwrap())
            .unwrap_err();
        assert!(!err.is_empty());
        assert!(!root.join("escape").exists());
        assert!(roots.symlink("x", "relative").is_err());
    }
}
