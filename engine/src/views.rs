//! Each step's own view of the workspace.
//!
//! Steps never share a mutable directory. Before a step runs, the host writes its
//! *view*: a new directory holding the run's starting workspace plus the changes of
//! every step it needs, directly or through others, applied in plan order (the plan
//! is topological: a step's changes come after those of every step it needs; between
//! steps with no path between them, the later in the file wins). After it runs, the
//! host walks the view and keeps what changed ([`Changes`]): new and edited files go
//! to the content-addressed object store, and the view is removed. Steps with no
//! path between them never see each other's files, so what a step reads does not
//! depend on timing, and its materials are products of the steps it needs.
//!
//! Views are copies of stored objects (`copy_file_range`: on a filesystem that shares
//! extents, such as btrfs or XFS, the kernel shares them; elsewhere it copies in the
//! kernel), so a step that edits a file it received changes neither the stored
//! object nor another step's view. No root or mount privilege is needed.
//!
//! When the run ends, every step's changes are applied, in plan order, to the run's
//! workspace, which then holds what the steps made, as a shared workspace did.

use std::collections::{BTreeMap, HashMap};

use sha2::{Digest, Sha256};
use std::fs::Metadata;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::time::Instant;

use flow_provenance::{SnapshotLimits, SnapshotStop};
use flow_store::{Change, Changes, Entry, Objects, Tree};

/// A file is trusted unchanged by its metadata only when its ctime is older than this
/// before the step started (a write within one timestamp tick may leave it alone).
const FINE_RACY_WINDOW: Duration = Duration::from_millis(50);
/// The same for whole-second timestamps.
const COARSE_RACY_WINDOW: Duration = Duration::from_secs(2);

/// The identity of a file the host wrote into a view: if it still has all of these
/// after the step, the step did not touch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileIdentity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    mode: u32,
}

impl FileIdentity {
    fn of(meta: &Metadata) -> Self {
        FileIdentity {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
            mode: meta.mode(),
        }
    }

    /// Whether a write in the same timestamp tick as the host's could be invisible.
    fn racy(&self, step_started: SystemTime) -> bool {
        let window = if self.ctime.1 == 0 {
            COARSE_RACY_WINDOW
        } else {
            FINE_RACY_WINDOW
        };
        let ctime = UNIX_EPOCH
            + Duration::from_secs(self.ctime.0.max(0) as u64)
            + Duration::from_nanos(self.ctime.1.max(0) as u64);
        ctime + window > step_started
    }
}

/// A view the host has written: the tree it shows and the identity of each file.
#[derive(Debug, Default)]
pub(crate) struct Written {
    pub tree: Tree,
    files: HashMap<String, FileIdentity>,
}

/// The view of the step at `index` in `run_dir`.
pub(crate) fn view_dir(run_dir: &Path, index: usize) -> PathBuf {
    run_dir.join(index.to_string())
}

/// Views left empty by the steps that used them, for the next steps of the run.
pub(crate) type SpareViews = std::sync::Arc<std::sync::Mutex<Vec<PathBuf>>>;

/// Creates an empty view directory, or takes a spare one as it is when it is still an
/// empty directory (anything else at its path is removed and made again). Its
/// parent, the run's views directory, exists.
pub(crate) fn create_or_reuse(dir: &Path) -> io::Result<()> {
    match std::fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let empty_dir = std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir())
                && std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none());
            if empty_dir {
                return Ok(());
            }
            remove(dir)?;
            std::fs::create_dir(dir)
        }
        Err(e) => Err(e),
    }
}

/// Removes what runs that have ended (or were interrupted when their process died,
/// perhaps on a full disk) left in `views` (`DATA/views/RUN`): their steps' views
/// are of no further use, and take space. Runs still running, and runs not yet
/// recorded (another run of this process may be starting), keep theirs.
pub(crate) fn remove_dead_views(store: &flow_store::Store, views: &Path) {
    let Ok(entries) = std::fs::read_dir(views) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let ended = flow_store::RunId::parse(&name.to_string_lossy())
            .ok()
            .and_then(|id| store.run(&id).ok().flatten())
            .is_some_and(|run| run.status != flow_store::RunStatus::Running);
        if ended {
            let _ = remove(&entry.path());
        }
    }
}

/// Removes a view (or anything at its path) without following links in it.
pub(crate) fn remove(dir: &Path) -> io::Result<()> {
    // Directories a step made unreadable or unwritable would stop the removal.
    fn open_up(dir: &Path) {
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    open_up(&entry.path());
                }
            }
        }
    }
    match std::fs::symlink_metadata(dir) {
        Ok(meta) if meta.is_dir() => {
            if std::fs::remove_dir_all(dir).is_err() {
                open_up(dir);
                std::fs::remove_dir_all(dir)?;
            }
            Ok(())
        }
        Ok(_) => std::fs::remove_file(dir),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Writes `tree` into the empty directory `dir`.
pub(crate) fn materialize(objects: &Objects, dir: &Path, tree: Tree) -> io::Result<Written> {
    let mut files = HashMap::new();
    // Parents come before their children (path order), and the tree is consistent:
    // every parent is a directory this loop made, so nothing here follows a link.
    for (path, entry) in tree.entries() {
        let target = dir.join(path);
        match entry {
            Entry::Dir => std::fs::create_dir(&target)?,
            Entry::Symlink { target: to } => std::os::unix::fs::symlink(to, &target)?,
            Entry::File {
                sha256,
                executable,
                modified_ns,
                ..
            } => {
                let meta =
                    objects.copy_to(sha256, &target, *executable, system_time(*modified_ns))?;
                files.insert(path.to_owned(), FileIdentity::of(&meta));
            }
        }
    }
    Ok(Written { tree, files })
}

/// What a walk of a view found.
#[derive(Debug, Default)]
pub(crate) struct Captured {
    /// What the view holds now.
    pub tree: Tree,
    /// What was not kept, and why (special files, names that are not UTF-8).
    pub notes: Vec<String>,
}

/// Why keeping a view's files failed.
#[derive(Debug)]
pub(crate) enum CaptureError {
    /// The host could not read the view or write the store.
    Io(io::Error),
    /// It stopped at the step's deadline or the run's workspace quota.
    Stopped(SnapshotStop),
}

impl From<io::Error> for CaptureError {
    fn from(e: io::Error) -> Self {
        CaptureError::Io(e)
    }
}

impl std::fmt::Display for CaptureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CaptureError::Io(e) => e.fmt(f),
            CaptureError::Stopped(SnapshotStop::Deadline { .. }) => {
                f.write_str("the step's time ran out")
            }
            CaptureError::Stopped(SnapshotStop::Quota { quota, .. }) => {
                write!(
                    f,
                    "the workspace holds more than the quota of {quota} bytes"
                )
            }
        }
    }
}

/// What becomes of the files a walk keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Take {
    /// They are moved into the store (a view about to be removed).
    Move,
    /// They are copied, and stay (a directory that outlives the walk).
    Copy,
}

/// The bounds of one walk, and how far it got.
struct Walk<'a> {
    batch: flow_store::objects::Batch<'a>,
    written: &'a Written,
    step_started: SystemTime,
    limits: SnapshotLimits,
    /// Whether files are moved into the store (a view about to be removed) rather
    /// than copied (a directory that stays, such as the run's workspace).
    take: Take,
    files: u64,
    bytes: u64,
    out: Captured,
}

impl Walk<'_> {
    /// Counts a file of `size` bytes; stops at the deadline or past the quota.
    fn count(&mut self, size: u64) -> Result<(), CaptureError> {
        self.files += 1;
        self.bytes = self.bytes.saturating_add(size);
        if let Some(quota) = self.limits.workspace_quota
            && self.bytes > quota
        {
            return Err(CaptureError::Stopped(SnapshotStop::Quota {
                bytes: self.bytes,
                quota,
            }));
        }
        if self
            .limits
            .deadline
            .is_some_and(|deadline| Instant::now() >= deadline)
        {
            return Err(CaptureError::Stopped(SnapshotStop::Deadline {
                files: self.files,
                bytes: self.bytes,
            }));
        }
        Ok(())
    }
}

/// Walks `dir` (never following links) and takes into the store each file that is new
/// or changed since `written` (moved, not copied: the view is not used again; the
/// files the step left there are gone from it afterwards); files the step cannot have
/// touched keep their digest.
/// Stops at `limits` (the step's deadline, the run's workspace quota, counted in the
/// files' apparent sizes before any is read).
pub(crate) fn capture(
    objects: &Objects,
    dir: &Path,
    written: &Written,
    step_started: SystemTime,
    limits: SnapshotLimits,
    take: Take,
) -> Result<Captured, CaptureError> {
    let mut walk = Walk {
        take,
        batch: objects.batch(),
        written,
        step_started,
        limits,
        files: 0,
        bytes: 0,
        out: Captured::default(),
    };
    walk_dir(&mut walk, dir, "")?;
    // The new objects are durable and named before the changes that name them exist.
    walk.batch.commit()?;
    Ok(walk.out)
}

/// How deep a view's directories may nest: deeper, the step fails (the walk recurses,
/// and no real tree comes near it).
pub(crate) const MAX_DEPTH: usize = 256;

fn walk_dir(walk: &mut Walk<'_>, dir: &Path, prefix: &str) -> Result<(), CaptureError> {
    let (written, step_started) = (walk.written, walk.step_started);
    if prefix.matches('/').count() > MAX_DEPTH {
        return Err(CaptureError::Io(io::Error::other(format!(
            "its directories nest deeper than {MAX_DEPTH} levels (at {})",
            prefix.chars().take(120).collect::<String>()
        ))));
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let out = &mut walk.out;
        let os_name = entry.file_name();
        let Some(name) = os_name.to_str() else {
            out.notes.push(format!(
                "not kept: {prefix}{}: the name is not UTF-8",
                os_name.to_string_lossy()
            ));
            continue;
        };
        let path = format!("{prefix}{name}");
        let full = entry.path();
        let meta = std::fs::symlink_metadata(&full)?;
        let kind = meta.file_type();
        if kind.is_dir() {
            out.tree.put(&path, Entry::Dir);
            walk_dir(walk, &full, &format!("{path}/"))?;
        } else if kind.is_symlink() {
            let target = std::fs::read_link(&full)?;
            match target.to_str() {
                Some(target) => {
                    out.tree.put(
                        &path,
                        Entry::Symlink {
                            target: target.to_owned(),
                        },
                    );
                }
                None => out
                    .notes
                    .push(format!("not kept: {path}: the link's target is not UTF-8")),
            }
        } else if kind.is_file() {
            walk.count(meta.len())?;
            let out = &mut walk.out;
            let executable = meta.mode() & 0o111 != 0;
            let unchanged = written
                .files
                .get(&path)
                .filter(|id| **id == FileIdentity::of(&meta) && !id.racy(step_started));
            let entry = match (unchanged, written.tree.get(&path)) {
                (Some(_), Some(Entry::File { sha256, size, .. })) => Entry::File {
                    sha256: sha256.clone(),
                    size: *size,
                    executable,
                    modified_ns: modified_ns(&meta),
                },
                _ => {
                    let deadline = walk.limits.deadline;
                    let stored = match walk.take {
                        Take::Move => walk.batch.take_file_until(&full, deadline),
                        Take::Copy => walk.batch.store_file_until(&full, deadline),
                    };
                    let stored = match stored {
                        Ok(stored) => stored,
                        Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                            return Err(CaptureError::Stopped(SnapshotStop::Deadline {
                                files: walk.files,
                                bytes: walk.bytes,
                            }));
                        }
                        Err(e) => return Err(e.into()),
                    };
                    Entry::File {
                        sha256: stored.sha256,
                        size: stored.size,
                        executable,
                        modified_ns: modified_ns(&meta),
                    }
                }
            };
            out.tree.put(&path, entry);
        } else {
            out.notes
                .push(format!("not kept: {path}: not a file, directory or link"));
        }
    }
    Ok(())
}

/// Applies `changes` to the directory `workspace`, never following a link that lies
/// in the way (a link where a directory must be is replaced by the directory).
pub(crate) fn publish(objects: &Objects, workspace: &Path, changes: &Changes) -> io::Result<()> {
    for (path, change) in changes {
        if !flow_store::tree::valid_path(path) {
            continue;
        }
        let target = workspace.join(path);
        match change {
            // Nothing lies below a link or a file: a path whose parent is not a real
            // directory of the workspace is not there to remove (and a link in the way
            // is never followed).
            Change::Removed if parents_are_dirs(workspace, path) => remove(&target)?,
            Change::Removed => {}
            Change::Put { entry } => {
                make_parents(workspace, path)?;
                match entry {
                    Entry::Dir => match std::fs::symlink_metadata(&target) {
                        Ok(meta) if meta.is_dir() => {}
                        Ok(_) => {
                            remove(&target)?;
                            std::fs::create_dir(&target)?;
                        }
                        Err(_) => std::fs::create_dir(&target)?,
                    },
                    Entry::Symlink { target: to } => {
                        let temp = temp_beside(&target, std::process::id());
                        std::os::unix::fs::symlink(to, &temp)?;
                        replace(&temp, &target)?;
                    }
                    Entry::File {
                        sha256,
                        executable,
                        modified_ns,
                        ..
                    } => {
                        let temp = temp_beside(&target, std::process::id());
                        objects.copy_to(sha256, &temp, *executable, system_time(*modified_ns))?;
                        replace(&temp, &target)?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// A file's modification time in nanoseconds since the epoch (the metadata it was read
/// with: a step's write after that is a new entry anyway).
fn modified_ns(meta: &Metadata) -> Option<i64> {
    meta.mtime()
        .checked_mul(1_000_000_000)?
        .checked_add(meta.mtime_nsec())
}

/// A tree's files and links as provenance artifacts (workspace-relative name →
/// sha256): a file by its content, a link by its target's text, as the digest
/// snapshot of a directory names them.
pub(crate) fn artifacts(tree: &Tree) -> BTreeMap<String, String> {
    tree.entries()
        .filter_map(|(path, entry)| match entry {
            Entry::File { sha256, .. } => Some((path.to_owned(), sha256.clone())),
            Entry::Symlink { target } => Some((
                path.to_owned(),
                hex::encode(Sha256::digest(target.as_bytes())),
            )),
            Entry::Dir => None,
        })
        .collect()
}

/// A recorded modification time as a time to set.
fn system_time(modified_ns: Option<i64>) -> Option<SystemTime> {
    let ns = modified_ns.filter(|ns| *ns >= 0)?;
    Some(UNIX_EPOCH + Duration::from_nanos(ns as u64))
}

/// Renames `temp` over `target` (a directory there is removed first).
fn replace(temp: &Path, target: &Path) -> io::Result<()> {
    if std::fs::symlink_metadata(target).is_ok_and(|m| m.is_dir()) {
        remove(target)?;
    }
    std::fs::rename(temp, target).inspect_err(|_| {
        let _ = std::fs::remove_file(temp);
    })
}

/// The name a file is written under beside `target` by process `pid` before it is
/// renamed over it.
fn temp_beside(target: &Path, pid: u32) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!(".{name}.flow-{pid}"))
}

/// Removes what process `pid`, killed while it wrote `changes` into `workspace`, may
/// have left beside their paths (a file written but not yet renamed).
pub(crate) fn remove_leftovers(workspace: &Path, changes: &Changes, pid: u32) -> io::Result<()> {
    for path in changes.keys() {
        if !flow_store::tree::valid_path(path) || !parents_are_dirs(workspace, path) {
            continue;
        }
        let temp = temp_beside(&workspace.join(path), pid);
        match std::fs::symlink_metadata(&temp) {
            Ok(meta) if !meta.is_dir() => std::fs::remove_file(&temp)?,
            _ => {}
        }
    }
    Ok(())
}

/// Makes every parent of `path` below `root` a directory.
/// Whether every parent of `path` below `root` is a directory (not a link, not missing).
fn parents_are_dirs(root: &Path, path: &str) -> bool {
    let mut dir = root.to_path_buf();
    let mut components: Vec<&str> = path.split('/').collect();
    components.pop();
    components.into_iter().all(|component| {
        dir.push(component);
        std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir())
    })
}

fn make_parents(root: &Path, path: &str) -> io::Result<()> {
    let mut dir = root.to_path_buf();
    let mut components: Vec<&str> = path.split('/').collect();
    components.pop();
    for component in components {
        dir.push(component);
        match std::fs::symlink_metadata(&dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                remove(&dir)?;
                std::fs::create_dir(&dir)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => std::fs::create_dir(&dir)?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Objects) {
        let dir = tempfile::tempdir().unwrap();
        let objects = Objects::open(dir.path().join("objects")).unwrap();
        (dir, objects)
    }

    fn much_later() -> SystemTime {
        SystemTime::now() + Duration::from_secs(10)
    }

    #[test]
    fn removing_a_path_below_a_link_never_reaches_outside_the_workspace() {
        let dir = tempfile::tempdir().unwrap();
        let (ws, outside) = (dir.path().join("ws"), dir.path().join("outside"));
        std::fs::create_dir_all(&ws).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("x"), "not the run's").unwrap();
        std::fs::write(outside.join(".x.flow-4242"), "not the run's").unwrap();
        std::os::unix::fs::symlink(&outside, ws.join("d")).unwrap();
        let objects = Objects::open(dir.path().join("objects")).unwrap();
        let changes: Changes = [("d/x".to_owned(), Change::Removed)].into();
        publish(&objects, &ws, &changes).unwrap();
        remove_leftovers(&ws, &changes, 4242).unwrap();
        assert!(outside.join("x").exists(), "removed through the link");
        assert!(
            outside.join(".x.flow-4242").exists(),
            "removed through the link"
        );
    }

    #[test]
    fn leftovers_of_a_killed_publish_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path();
        std::fs::write(ws.join("a.txt"), "published").unwrap();
        std::fs::write(ws.join(".a.txt.flow-4242"), "half").unwrap();
        std::fs::write(ws.join(".a.txt.flow-7"), "another process's").unwrap();
        std::fs::write(ws.join(".b.txt.flow-4242"), "not a changed path").unwrap();
        let changes: Changes = [("a.txt".to_owned(), Change::Removed)].into();
        remove_leftovers(ws, &changes, 4242).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(ws)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, [".a.txt.flow-7", ".b.txt.flow-4242", "a.txt"]);
    }

    #[test]
    fn a_view_round_trips_and_edits_are_changes() {
        let (tmp, objects) = setup();
        let first = tmp.path().join("first");
        std::fs::create_dir_all(first.join("src")).unwrap();
        std::fs::write(first.join("src/main.rs"), "fn main() {}\n").unwrap();
        std::fs::write(first.join("run.sh"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(first.join("run.sh"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        std::os::unix::fs::symlink("src/main.rs", first.join("link")).unwrap();
        std::fs::create_dir(first.join("empty")).unwrap();
        let base = capture(
            &objects,
            &first,
            &Written::default(),
            much_later(),
            SnapshotLimits::default(),
            Take::Copy,
        )
        .unwrap();
        let changes = Tree::new().changes_to(&base.tree);
        assert_eq!(changes.len(), 5, "{changes:?}");

        // A view of that tree, edited by a "step".
        let view = tmp.path().join("view");
        create_or_reuse(&view).unwrap();
        let written = materialize(&objects, &view, base.tree.clone()).unwrap();
        assert_eq!(
            std::fs::read_to_string(view.join("src/main.rs")).unwrap(),
            "fn main() {}\n"
        );
        assert_eq!(
            std::fs::read_link(view.join("link")).unwrap(),
            Path::new("src/main.rs")
        );
        // Times are kept, so tools that compare them see the order the files were made in.
        assert_eq!(
            std::fs::metadata(view.join("src/main.rs"))
                .unwrap()
                .modified()
                .unwrap(),
            std::fs::metadata(first.join("src/main.rs"))
                .unwrap()
                .modified()
                .unwrap()
        );
        let mode = std::fs::metadata(view.join("run.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        std::fs::write(view.join("src/main.rs"), "fn main() { edited() }\n").unwrap();
        std::fs::remove_file(view.join("run.sh")).unwrap();
        std::fs::write(view.join("new.txt"), "new").unwrap();
        let after = capture(
            &objects,
            &view,
            &written,
            SystemTime::now(),
            SnapshotLimits::default(),
            Take::Move,
        )
        .unwrap();
        let changes = base.tree.changes_to(&after.tree);
        let names: Vec<&str> = changes.keys().map(String::as_str).collect();
        assert_eq!(names, ["new.txt", "run.sh", "src/main.rs"]);
        // The stored object of the original is untouched.
        let Some(Entry::File { sha256, .. }) = base.tree.get("src/main.rs") else {
            panic!()
        };
        assert!(objects.verify(sha256).unwrap());

        // Publishing applies them to a workspace.
        let workspace = tmp.path().join("workspace");
        std::fs::create_dir(&workspace).unwrap();
        publish(&objects, &workspace, &Tree::new().changes_to(&base.tree)).unwrap();
        publish(&objects, &workspace, &changes).unwrap();
        assert!(!workspace.join("run.sh").exists());
        assert_eq!(
            std::fs::read_to_string(workspace.join("src/main.rs")).unwrap(),
            "fn main() { edited() }\n"
        );
        assert!(workspace.join("empty").is_dir());
        remove(&view).unwrap();
        assert!(!view.exists());
    }

    #[test]
    fn an_in_place_edit_with_the_same_size_and_times_is_seen() {
        let (tmp, objects) = setup();
        let mut tree = Tree::new();
        let stored = objects.store(&mut &b"aaaa"[..]).unwrap();
        tree.put(
            "f",
            Entry::File {
                sha256: stored.sha256.clone(),
                size: 4,
                executable: false,
                modified_ns: None,
            },
        );
        let view = tmp.path().join("view");
        create_or_reuse(&view).unwrap();
        let written = materialize(&objects, &view, tree.clone()).unwrap();
        let before = std::fs::metadata(view.join("f")).unwrap();
        std::fs::write(view.join("f"), b"bbbb").unwrap();
        let file = std::fs::File::options()
            .write(true)
            .open(view.join("f"))
            .unwrap();
        file.set_modified(before.modified().unwrap()).unwrap();
        // Even when the step started long after the host wrote the file, its ctime moved.
        let after = capture(
            &objects,
            &view,
            &written,
            much_later(),
            SnapshotLimits::default(),
            Take::Move,
        )
        .unwrap();
        assert_ne!(after.tree.get("f"), tree.get("f"));
    }

    #[test]
    fn directories_nested_too_deep_are_refused_not_walked_forever() {
        let (tmp, objects) = setup();
        let mut deep = tmp.path().join("view");
        for _ in 0..MAX_DEPTH + 2 {
            deep.push("d");
        }
        std::fs::create_dir_all(&deep).unwrap();
        let err = capture(
            &objects,
            &tmp.path().join("view"),
            &Written::default(),
            much_later(),
            SnapshotLimits::default(),
            Take::Move,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("nest deeper than 256 levels"),
            "{err}"
        );
        // Just within the limit is kept.
        let shallow = tmp.path().join("shallow");
        let mut path = shallow.clone();
        for _ in 0..MAX_DEPTH {
            path.push("d");
        }
        std::fs::create_dir_all(&path).unwrap();
        let kept = capture(
            &objects,
            &shallow,
            &Written::default(),
            much_later(),
            SnapshotLimits::default(),
            Take::Move,
        )
        .unwrap();
        assert_eq!(kept.tree.len(), MAX_DEPTH);
    }

    #[test]
    fn publishing_never_follows_a_link_in_the_workspace() {
        let (tmp, objects) = setup();
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        let workspace = tmp.path().join("workspace");
        std::fs::create_dir(&workspace).unwrap();
        std::os::unix::fs::symlink(&outside, workspace.join("out")).unwrap();
        let stored = objects.store(&mut &b"x"[..]).unwrap();
        let mut changes = Changes::new();
        changes.insert(
            "out/file".into(),
            Change::Put {
                entry: Entry::File {
                    sha256: stored.sha256,
                    size: 1,
                    executable: false,
                    modified_ns: None,
                },
            },
        );
        publish(&objects, &workspace, &changes).unwrap();
        assert!(workspace.join("out").is_dir());
        assert!(
            !std::fs::symlink_metadata(workspace.join("out"))
                .unwrap()
                .is_symlink()
        );
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    }
}
