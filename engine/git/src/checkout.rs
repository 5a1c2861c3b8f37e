//! Writing a tree out through a [`Sink`].

use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::object::{EntryMode, parse_commit_tree, tree_entries};
use crate::odb::Data;
use crate::{ObjectId, ObjectKind, Repository};

/// The first line of a Git LFS pointer file.
const LFS_SIGNATURE: &[u8] = b"version https://git-lfs.github.com/spec/v1";
/// LFS pointer files are smaller than this (per the spec).
const LFS_MAX_POINTER: usize = 1024;
/// Deepest tree nesting accepted (git's `core.maxTreeDepth` default).
const MAX_TREE_DEPTH: usize = 4096;

/// Receives what a checkout writes. Paths are relative to the checkout root, `/`-separated, and
/// have been validated (no `..`, `.git`, empty or absolute components). Parent directories are
/// always created (through [`Sink::create_dir`]) before their contents.
pub trait Sink {
    /// Creates a directory.
    fn create_dir(&mut self, path: &str) -> io::Result<()>;
    /// Creates (or replaces) a regular file.
    fn write_file(&mut self, path: &str, data: &[u8], executable: bool) -> io::Result<()>;
    /// Creates a symbolic link at `path` pointing to `target` (raw bytes from the blob).
    fn symlink(&mut self, target: &[u8], path: &str) -> io::Result<()>;
}

impl<S: Sink + ?Sized> Sink for &mut S {
    fn create_dir(&mut self, path: &str) -> io::Result<()> {
        (**self).create_dir(path)
    }
    fn write_file(&mut self, path: &str, data: &[u8], executable: bool) -> io::Result<()> {
        (**self).write_file(path, data, executable)
    }
    fn symlink(&mut self, target: &[u8], path: &str) -> io::Result<()> {
        (**self).symlink(target, path)
    }
}

/// A submodule (gitlink) met during checkout; an empty directory was created for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submodule {
    /// Its path in the tree.
    pub path: String,
    /// The commit the superproject records.
    pub commit: ObjectId,
    /// Its URL from the tree's `.gitmodules`, if listed there.
    pub url: Option<String>,
}

/// What a checkout wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckoutReport {
    /// Regular files written, executables included.
    pub files: usize,
    /// Of those, executables.
    pub executables: usize,
    /// Symbolic links created.
    pub symlinks: usize,
    /// Directories created (submodule directories included, the root excluded).
    pub dirs: usize,
    /// Bytes of file content written (symlink targets excluded).
    pub bytes: u64,
    /// Submodules, in tree order.
    pub submodules: Vec<Submodule>,
    /// Paths of Git LFS pointer files (written as they are).
    pub lfs_pointers: Vec<String>,
}

/// Progress of a checkout: `done` of `total` files, symlinks and submodules written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Entries written so far.
    pub done: usize,
    /// Entries to write.
    pub total: usize,
}

/// One thing to write, in git order.
enum Item {
    Dir(String),
    File {
        path: String,
        id: ObjectId,
        executable: bool,
    },
    Symlink {
        path: String,
        id: ObjectId,
    },
    Gitlink {
        path: String,
        commit: ObjectId,
    },
}

impl Repository {
    /// Checks out `tree` (a tree id, or a commit id whose tree is taken) through `sink`.
    ///
    /// All trees are read and validated before anything is written, so an unsafe entry name
    /// (`.git`, `..`, `.`, empty, containing `/` or NUL, ...) fails the checkout without side
    /// effects.
    pub fn checkout<S: Sink + ?Sized>(
        &self,
        tree: ObjectId,
        sink: &mut S,
    ) -> Result<CheckoutReport> {
        self.checkout_with_progress(tree, sink, &mut |_| {})
    }

    /// Like [`Repository::checkout`], calling `progress` after each file, symlink or submodule.
    pub fn checkout_with_progress<S: Sink + ?Sized>(
        &self,
        tree: ObjectId,
        sink: &mut S,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<CheckoutReport> {
        let root = self.root_tree(tree)?;
        let mut items = Vec::new();
        self.plan(root, &mut items)?;
        let total = items.iter().filter(|i| !matches!(i, Item::Dir(_))).count();
        let mut report = CheckoutReport::default();
        let mut done = 0;
        let sink_err = |path: &str| {
            let path = path.to_owned();
            move |source| Error::Sink { path, source }
        };
        for item in &items {
            match item {
                Item::Dir(path) => {
                    sink.create_dir(path).map_err(sink_err(path))?;
                    report.dirs += 1;
                    continue;
                }
                Item::File {
                    path,
                    id,
                    executable,
                } => {
                    let data = self.read_blob(id)?;
                    if data.len() < LFS_MAX_POINTER && data.starts_with(LFS_SIGNATURE) {
                        report.lfs_pointers.push(path.clone());
                    }
                    sink.write_file(path, &data, *executable)
                        .map_err(sink_err(path))?;
                    report.files += 1;
                    report.executables += usize::from(*executable);
                    report.bytes += data.len() as u64;
                }
                Item::Symlink { path, id } => {
                    let target = self.read_blob(id)?;
                    sink.symlink(&target, path).map_err(sink_err(path))?;
                    report.symlinks += 1;
                }
                Item::Gitlink { path, commit } => {
                    sink.create_dir(path).map_err(sink_err(path))?;
                    report.dirs += 1;
                    report.submodules.push(Submodule {
                        path: path.clone(),
                        commit: *commit,
                        url: None,
                    });
                }
            }
            done += 1;
            progress(Progress { done, total });
        }
        if !report.submodules.is_empty() {
            self.fill_submodule_urls(root, &mut report.submodules);
        }
        Ok(report)
    }

    /// The tree to check out: `id` itself, or the tree of commit `id`.
    fn root_tree(&self, id: ObjectId) -> Result<ObjectId> {
        let (kind, data) = self.read_raw(&id)?;
        match kind {
            ObjectKind::Tree => Ok(id),
            ObjectKind::Commit => parse_commit_tree(&data).ok_or_else(|| Error::CorruptObject {
                id,
                kind,
                msg: "missing or malformed tree line".into(),
            }),
            actual => Err(Error::WrongType {
                id,
                expected: ObjectKind::Tree,
                actual,
            }),
        }
    }

    fn read_blob(&self, id: &ObjectId) -> Result<Data> {
        let (kind, data) = self.read_raw(id)?;
        if kind != ObjectKind::Blob {
            return Err(Error::WrongType {
                id: *id,
                expected: ObjectKind::Blob,
                actual: kind,
            });
        }
        Ok(data)
    }

    fn read_tree(&self, id: &ObjectId) -> Result<Data> {
        let (kind, data) = self.read_raw(id)?;
        if kind != ObjectKind::Tree {
            return Err(Error::WrongType {
                id: *id,
                expected: ObjectKind::Tree,
                actual: kind,
            });
        }
        Ok(data)
    }

    /// Lists everything under `root` in git order (depth-first, entries in tree order), validating
    /// names. Iterative, so deep trees cannot overflow the stack.
    fn plan(&self, root: ObjectId, items: &mut Vec<Item>) -> Result<()> {
        // Each frame: tree id, its content, position of the next entry, path prefix ("" or "a/b/").
        let mut stack: Vec<(ObjectId, Data, usize, String)> =
            vec![(root, self.read_tree(&root)?, 0, String::new())];
        loop {
            let depth = stack.len();
            let Some((tree_id, data, pos, prefix)) = stack.last_mut() else {
                break;
            };
            let mut entries = tree_entries(data.get(*pos..).unwrap_or_default());
            let Some(entry) = entries.next() else {
                stack.pop();
                continue;
            };
            *pos += entries.position();
            let entry = entry.map_err(|msg| Error::CorruptObject {
                id: *tree_id,
                kind: ObjectKind::Tree,
                msg,
            })?;
            let path = checked_path(prefix, entry.name)?;
            let entry = (entry.mode, entry.id);
            match entry.0 {
                EntryMode::Tree => {
                    if depth >= MAX_TREE_DEPTH {
                        return Err(Error::UnsafePath {
                            path,
                            reason: "trees nest too deeply",
                        });
                    }
                    let sub = self.read_tree(&entry.1)?;
                    items.push(Item::Dir(path.clone()));
                    stack.push((entry.1, sub, 0, path + "/"));
                }
                EntryMode::Regular | EntryMode::Executable => items.push(Item::File {
                    path,
                    id: entry.1,
                    executable: entry.0 == EntryMode::Executable,
                }),
                EntryMode::Symlink => items.push(Item::Symlink { path, id: entry.1 }),
                EntryMode::Gitlink => items.push(Item::Gitlink {
                    path,
                    commit: entry.1,
                }),
            }
        }
        Ok(())
    }

    /// Fills submodule URLs from the root tree's `.gitmodules`, if there is one.
    fn fill_submodule_urls(&self, root: ObjectId, submodules: &mut [Submodule]) {
        let Ok(tree) = self.read_tree(&root) else {
            return;
        };
        let Some(id) = tree_entries(&tree)
            .filter_map(|e| e.ok())
            .find(|e| e.name == b".gitmodules" && e.mode == EntryMode::Regular)
            .map(|e| e.id)
        else {
            return;
        };
        let Ok(data) = self.read_blob(&id) else {
            return;
        };
        let modules = parse_gitmodules(&String::from_utf8_lossy(&data));
        for sub in submodules {
            sub.url = modules
                .iter()
                .find(|(path, _)| *path == sub.path)
                .map(|(_, url)| url.clone());
        }
    }
}

/// Validates a tree entry name and joins it to `prefix`.
fn checked_path(prefix: &str, name: &[u8]) -> Result<String> {
    let refuse = |reason| {
        Err(Error::UnsafePath {
            path: format!("{prefix}{}", String::from_utf8_lossy(name)),
            reason,
        })
    };
    if name.is_empty() {
        return refuse("empty name");
    }
    if name == b"." || name == b".." {
        return refuse("relative path component");
    }
    if name.contains(&b'/') || name.contains(&0) {
        return refuse("name contains '/' or NUL");
    }
    // `.git` in any case, also with the trailing dots and spaces Windows ignores, and its 8.3
    // short name.
    let trimmed = name
        .iter()
        .rposition(|&b| b != b'.' && b != b' ')
        .map_or(&name[..0], |i| &name[..=i]);
    if trimmed.eq_ignore_ascii_case(b".git") || name.eq_ignore_ascii_case(b"git~1") {
        return refuse("'.git' is reserved");
    }
    let Ok(name) = std::str::from_utf8(name) else {
        return refuse("name is not valid UTF-8");
    };
    Ok(format!("{prefix}{name}"))
}

/// Extracts `(path, url)` pairs from a `.gitmodules` file (git config syntax, simplified:
/// `[submodule "name"]` sections with `path = ` and `url = ` keys).
fn parse_gitmodules(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut in_submodule = false;
    let (mut path, mut url) = (None::<String>, None::<String>);
    let mut flush = |path: &mut Option<String>, url: &mut Option<String>| {
        if let (Some(p), Some(u)) = (path.take(), url.take()) {
            out.push((p, u));
        }
    };
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            flush(&mut path, &mut url);
            in_submodule = line
                .trim_start_matches('[')
                .trim_start()
                .to_ascii_lowercase()
                .starts_with("submodule");
            continue;
        }
        if !in_submodule {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim().trim_matches('"').to_owned();
        match key.trim().to_ascii_lowercase().as_str() {
            "path" => path = Some(value),
            "url" => url = Some(value),
            _ => {}
        }
    }
    flush(&mut path, &mut url);
    out
}

/// Platform operations [`FsSink`] cannot do with portable `std`: marking a file executable and
/// creating a symlink. Paths are full paths (root joined with the relative path).
///
/// On unix, [`NativeHooks`] uses `std::os::unix`. On WASI (no chmod in preview 2, no stable
/// symlink creation in `std` for `wasm32-wasip2`), supply hooks that route these operations to
/// the host, e.g. with [`FnHooks`].
pub trait FsHooks {
    /// Marks the just-written file at `path` executable.
    fn set_executable(&mut self, path: &Path) -> io::Result<()>;
    /// Creates a symlink at `path` pointing to `target`.
    fn symlink(&mut self, target: &[u8], path: &Path) -> io::Result<()>;
}

/// The default [`FsHooks`]: native on unix. Elsewhere, executable bits are ignored and symlinks
/// are written as regular files holding the target (what git does with `core.symlinks=false`).
#[derive(Clone, Copy, Debug, Default)]
pub struct NativeHooks;

impl FsHooks for NativeHooks {
    fn set_executable(&mut self, path: &Path) -> io::Result<()> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mut perms = std::fs::metadata(path)?.permissions();
            // Add x wherever r is set, as git does (subject to the umask applied at creation).
            let mode = perms.mode();
            perms.set_mode(mode | ((mode & 0o444) >> 2));
            std::fs::set_permissions(path, perms)
        }
        #[cfg(not(unix))]
        {
            let _ = path;
            Ok(())
        }
    }

    fn symlink(&mut self, target: &[u8], path: &Path) -> io::Result<()> {
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            let target = std::ffi::OsStr::from_bytes(target);
            match std::os::unix::fs::symlink(target, path) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    std::fs::remove_file(path)?;
                    std::os::unix::fs::symlink(target, path)
                }
                other => other,
            }
        }
        #[cfg(not(unix))]
        {
            std::fs::write(path, target)
        }
    }
}

/// [`FsHooks`] from two closures: `set_executable(path)` and `symlink(target, path)`.
///
/// ```
/// use flow_git::{FnHooks, FsSink};
/// let sink = FsSink::with_hooks(
///     "/tmp/out",
///     FnHooks(|_path: &std::path::Path| Ok(()), |_target: &[u8], _path: &std::path::Path| Ok(())),
/// );
/// # drop(sink);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct FnHooks<E, L>(pub E, pub L);

impl<E, L> FsHooks for FnHooks<E, L>
where
    E: FnMut(&Path) -> io::Result<()>,
    L: FnMut(&[u8], &Path) -> io::Result<()>,
{
    fn set_executable(&mut self, path: &Path) -> io::Result<()> {
        (self.0)(path)
    }
    fn symlink(&mut self, target: &[u8], path: &Path) -> io::Result<()> {
        (self.1)(target, path)
    }
}

/// A [`Sink`] writing under a root directory with `std::fs`.
///
/// Meant for an empty (or absent) root: existing files are overwritten and existing directories
/// reused, but stray files are not removed, and writing through a pre-existing symlink is not
/// guarded against.
#[derive(Debug)]
pub struct FsSink<H = NativeHooks> {
    root: PathBuf,
    hooks: H,
}

impl FsSink<NativeHooks> {
    /// A sink writing under `root` (created if missing), with [`NativeHooks`].
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self::with_hooks(root, NativeHooks)
    }
}

impl<H: FsHooks> FsSink<H> {
    /// A sink writing under `root` (created if missing), using `hooks` for executable bits and
    /// symlinks.
    pub fn with_hooks(root: impl Into<PathBuf>, hooks: H) -> Self {
        Self {
            root: root.into(),
            hooks,
        }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn full(&self, path: &str) -> PathBuf {
        self.root.join(path)
    }
}

impl<H: FsHooks> Sink for FsSink<H> {
    fn create_dir(&mut self, path: &str) -> io::Result<()> {
        let full = self.full(path);
        match std::fs::create_dir(&full) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => std::fs::create_dir_all(&full),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && full.is_dir() => Ok(()),
            other => other,
        }
    }

    fn write_file(&mut self, path: &str, data: &[u8], executable: bool) -> io::Result<()> {
        let full = self.full(path);
        match std::fs::write(&full, data) {
            // The root itself may not exist yet.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if let Some(parent) = full.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::write(&full, data)?;
            }
            other => other?,
        }
        if executable {
            self.hooks.set_executable(&full)?;
        }
        Ok(())
    }

    fn symlink(&mut self, target: &[u8], path: &str) -> io::Result<()> {
        let full = self.full(path);
        if let Some(parent) = full.parent()
            && !parent.exists()
        {
            std::fs::create_dir_all(parent)?;
        }
        self.hooks.symlink(target, &full)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_names() {
        for bad in [
            &b""[..],
            b".",
            b"..",
            b".git",
            b".GIT",
            b".Git",
            b".git.",
            b".git ",
            b"git~1",
            b"a/b",
            b"a\0b",
        ] {
            assert!(checked_path("x/", bad).is_err(), "{bad:?}");
        }
        for ok in [
            &b"a"[..],
            b".gitignore",
            b".github",
            b"git",
            b"...",
            b".git2",
        ] {
            assert!(checked_path("x/", ok).is_ok(), "{ok:?}");
        }
        assert!(checked_path("", &[0xff, 0xfe]).is_err());
    }

    #[test]
    fn gitmodules() {
        let text = "[submodule \"lib\"]\n\tpath = vendor/lib\n\turl = https://example.com/lib.git\n[core]\n\turl = nope\n[submodule \"x\"]\n path=x\n";
        assert_eq!(
            parse_gitmodules(text),
            vec![(
                "vendor/lib".to_owned(),
                "https://example.com/lib.git".to_owned()
            )]
        );
    }
}
