//! The files capability: executable bits and symbolic links, which WASI
//! preview 2 cannot set. Both act only inside the workspace and directories
//! granted with `access: write`, through `cap-std`, so a `..` or a symbolic
//! link on the way cannot lead outside them.

use std::path::{Component, Path, PathBuf};

use cap_std::ambient_authority;
use cap_std::fs::{Dir, PermissionsExt};

use crate::runtime::bindings::flow::plugin::files as wit_files;

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

impl wit_files::Host for crate::runtime::StepState {
    fn set_executable(&mut self, path: String, executable: bool) -> Result<(), String> {
        self.writable.set_executable(&path, executable)
    }

    fn symlink(&mut self, target: String, path: String) -> Result<(), String> {
        self.writable.symlink(&target, &path)
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
