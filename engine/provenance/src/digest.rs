//! sha256 snapshots of the files a step can read (materials) or write (products).
//!
//! A [`DigestCache`] lives for a run and remembers `(path, size, mtime, ctime, inode,
//! device) -> sha256`, so the files that did not change between one snapshot and the next
//! are not read again. Files are hashed in parallel on a few scoped threads.
//!
//! Two rules keep the cache honest:
//! - a digest is remembered only when the file looked the same before and after it was
//!   read, and
//! - a digest is remembered only for a file whose mtime is older than the *racy window*
//!   at the time it was read. A file written again within the same timestamp tick as an
//!   earlier write may keep the same size and mtime; outside the window that cannot
//!   happen. The window is 2 s for an mtime in whole seconds (FAT, some network and old
//!   filesystems tick in seconds) and 50 ms for an mtime with a sub-second part (Linux
//!   filesystems tick at most every 10 ms, others finer). Recently written files are
//!   hashed again by the next snapshot, which costs time, never correctness.
//!
//! Nothing outside a [`Root`] is read: directories are walked without following symlinks,
//! and a symlink is recorded as the sha256 of its target path text. What cannot be read
//! is listed in [`Snapshot::skipped`] with the reason, never dropped silently.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, Metadata};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};

/// The default racy window for whole-second timestamps; see the module documentation.
pub const DEFAULT_RACY_WINDOW: Duration = Duration::from_secs(2);
/// The racy window for sub-second timestamps (never more than the coarse window).
pub const FINE_RACY_WINDOW: Duration = Duration::from_millis(50);

/// A snapshot lists and hashes this many items (directories and files) on the calling
/// thread before it starts more threads, so a small tree costs no thread start.
const SERIAL_ITEMS: usize = 32;

/// A directory to snapshot and the prefix its artifact names get.
///
/// The run's workspace uses the prefix `""`, so names are workspace-relative
/// (`target/app`); a granted host directory uses its absolute path
/// (`/srv/assets/logo.png`). Names always use `/` as the separator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    /// The directory on the host.
    pub dir: PathBuf,
    /// Prepended, with a `/` when not empty, to the path of each file below `dir`.
    pub prefix: String,
}

impl Root {
    /// A root whose artifact names are relative to `dir` (the run's workspace).
    pub fn workspace(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            prefix: String::new(),
        }
    }

    /// A root whose artifact names are the files' host paths (a granted host directory).
    /// `dir` should be absolute; a non-UTF-8 path is named lossily.
    pub fn host(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        let prefix = dir.to_string_lossy().into_owned();
        Self { dir, prefix }
    }

    fn name(&self, relative: &str) -> String {
        if self.prefix.is_empty() {
            relative.to_owned()
        } else if self.prefix.ends_with('/') {
            format!("{}{relative}", self.prefix)
        } else {
            format!("{}/{relative}", self.prefix)
        }
    }
}

/// The result of [`DigestCache::snapshot`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Artifact name -> lowercase hex sha256.
    pub artifacts: BTreeMap<String, String>,
    /// What was not recorded, and why.
    pub skipped: Vec<SkippedFile>,
    /// Set when the snapshot stopped early at one of its [`SnapshotLimits`]; the
    /// artifacts are then incomplete and must not be used as a step's evidence.
    pub stopped: Option<SnapshotStop>,
    /// Bytes of regular files found below the workspace roots ([`Root::workspace`])
    /// (their apparent sizes, what hashing reads), up to where it stopped.
    pub workspace_bytes: u64,
}

/// Bounds on one snapshot: the host's work after a step counts against the step's
/// time, and a workspace may hold only so much.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnapshotLimits {
    /// Stop hashing at this instant.
    pub deadline: Option<Instant>,
    /// Stop once the regular files below the workspace roots add up to more than this
    /// many bytes (apparent sizes: a sparse file counts at its full length, which is what
    /// hashing it would read).
    pub workspace_quota: Option<u64>,
}

/// Why a snapshot stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotStop {
    /// The deadline passed.
    Deadline {
        /// Files hashed or served from the cache by then.
        files: u64,
        /// Bytes of workspace files seen by then.
        bytes: u64,
    },
    /// The workspace holds more than its quota.
    Quota {
        /// Bytes of workspace files seen when the quota was passed (at least this much).
        bytes: u64,
        /// The quota.
        quota: u64,
    },
}

/// What one snapshot is bounded by, shared by its threads.
struct Bounds {
    limits: SnapshotLimits,
    stop: AtomicBool,
    reason: Mutex<Option<SnapshotStop>>,
    workspace_bytes: AtomicU64,
    files: AtomicU64,
}

impl Bounds {
    fn new(limits: SnapshotLimits) -> Self {
        Bounds {
            limits,
            stop: AtomicBool::new(false),
            reason: Mutex::new(None),
            workspace_bytes: AtomicU64::new(0),
            files: AtomicU64::new(0),
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn halt(&self, why: SnapshotStop) {
        let mut reason = self.reason.lock().unwrap_or_else(PoisonError::into_inner);
        reason.get_or_insert(why);
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Checks the deadline; true when the snapshot must stop.
    fn past_deadline(&self) -> bool {
        if self.stopped() {
            return true;
        }
        if let Some(deadline) = self.limits.deadline
            && Instant::now() >= deadline
        {
            self.halt(SnapshotStop::Deadline {
                files: self.files.load(Ordering::Relaxed),
                bytes: self.workspace_bytes.load(Ordering::Relaxed),
            });
            return true;
        }
        false
    }

    /// Counts a workspace file of `size` bytes; true when the quota is passed.
    fn add_workspace_bytes(&self, size: u64) -> bool {
        let total = self
            .workspace_bytes
            .fetch_add(size, Ordering::Relaxed)
            .saturating_add(size);
        match self.limits.workspace_quota {
            Some(quota) if total > quota => {
                self.halt(SnapshotStop::Quota {
                    bytes: total,
                    quota,
                });
                true
            }
            _ => false,
        }
    }
}

/// A file a snapshot could not record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedFile {
    /// The host path.
    pub path: PathBuf,
    /// Why, for a human.
    pub reason: String,
}

/// How many files a cache served and how many it read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Digests served from the cache.
    pub hits: u64,
    /// Files read and hashed.
    pub hashed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    inode: u64,
    device: u64,
}

impl Stamp {
    fn of(meta: &Metadata) -> Self {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            Self {
                size: meta.size(),
                mtime: (meta.mtime(), meta.mtime_nsec()),
                ctime: (meta.ctime(), meta.ctime_nsec()),
                inode: meta.ino(),
                device: meta.dev(),
            }
        }
        #[cfg(not(unix))]
        {
            let since = |t: std::io::Result<SystemTime>| {
                t.ok()
                    .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                    .map(|d| (d.as_secs() as i64, i64::from(d.subsec_nanos())))
                    .unwrap_or((0, 0))
            };
            Self {
                size: meta.len(),
                mtime: since(meta.modified()),
                ctime: since(meta.created()),
                inode: 0,
                device: 0,
            }
        }
    }

    /// Whether the mtime is before the racy limit for its granularity. A later write
    /// sets the mtime to its own, later, tick, so it cannot go unseen; the ctime (which
    /// cannot be set back) only adds detection.
    fn settled(&self, limits: RacyLimits) -> bool {
        if self.mtime.1 == 0 {
            self.mtime < limits.coarse
        } else {
            self.mtime < limits.fine
        }
    }
}

/// A run's memory of file digests; share it (`&DigestCache`) between threads and steps.
#[derive(Debug)]
pub struct DigestCache {
    entries: Mutex<HashMap<PathBuf, (Stamp, String)>>,
    racy_window: Duration,
    hits: AtomicU64,
    hashed: AtomicU64,
    workers: usize,
}

impl Default for DigestCache {
    fn default() -> Self {
        Self::new()
    }
}

/// One unit of snapshot work.
enum Work<'r> {
    Dir {
        root: &'r Root,
        dir: PathBuf,
        relative: String,
    },
    File {
        path: PathBuf,
        name: String,
        /// Below a workspace root (counted against the quota).
        workspace: bool,
    },
}

struct QueueState<'r> {
    items: Vec<Work<'r>>,
    /// Workers processing an item (and so possibly about to add more).
    busy: usize,
}

struct Queue<'r> {
    state: Mutex<QueueState<'r>>,
    changed: Condvar,
}

impl<'r> Queue<'r> {
    fn lock(&self) -> MutexGuard<'_, QueueState<'r>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What one worker recorded.
#[derive(Default)]
struct Found {
    artifacts: Vec<(String, String)>,
    skipped: Vec<SkippedFile>,
}

impl Found {
    fn merge(&mut self, other: Found) {
        self.artifacts.extend(other.artifacts);
        self.skipped.extend(other.skipped);
    }

    fn into_snapshot(mut self, bounds: &Bounds) -> Snapshot {
        self.skipped.sort_by(|a, b| a.path.cmp(&b.path));
        let stopped = *bounds.reason.lock().unwrap_or_else(PoisonError::into_inner);
        Snapshot {
            artifacts: self.artifacts.into_iter().collect(),
            skipped: self.skipped,
            stopped,
            workspace_bytes: bounds.workspace_bytes.load(Ordering::Relaxed),
        }
    }
}

impl DigestCache {
    /// An empty cache with the [`DEFAULT_RACY_WINDOW`], hashing on as many threads as the
    /// machine has cores (at most 8).
    pub fn new() -> Self {
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(8);
        Self {
            entries: Mutex::new(HashMap::new()),
            racy_window: DEFAULT_RACY_WINDOW,
            hits: AtomicU64::new(0),
            hashed: AtomicU64::new(0),
            workers,
        }
    }

    /// Sets the racy window for whole-second timestamps (the sub-second one is the smaller
    /// of this and [`FINE_RACY_WINDOW`]); see the module documentation. Zero trusts the
    /// timestamps fully, which is only safe where they are exact.
    pub fn with_racy_window(mut self, window: Duration) -> Self {
        self.racy_window = window;
        self
    }

    /// Sets the number of hashing threads (at least 1).
    pub fn with_workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// Counters since the cache was made.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            hashed: self.hashed.load(Ordering::Relaxed),
        }
    }

    /// Hashes every file below each root (see [`Root`] for names).
    ///
    /// Directories are listed and files hashed from one work queue: on the calling thread
    /// for the first few items (a small tree starts no thread), then on the configured
    /// number of threads. A root that does not exist contributes nothing and is listed in
    /// `skipped`.
    pub fn snapshot(&self, roots: &[Root]) -> Snapshot {
        self.snapshot_within(roots, SnapshotLimits::default())
    }

    /// [`DigestCache::snapshot`], stopping early at a deadline or once the workspace
    /// roots hold more than a quota ([`Snapshot::stopped`] says which). Reading a file is
    /// interrupted at the deadline too, so one huge file cannot hold a step past it.
    pub fn snapshot_within(&self, roots: &[Root], bounds: SnapshotLimits) -> Snapshot {
        let bounds = Bounds::new(bounds);
        let limits = racy_limits(self.racy_window);
        let items = roots
            .iter()
            .map(|root| Work::Dir {
                root,
                dir: root.dir.clone(),
                relative: String::new(),
            })
            .collect();
        let queue = Queue {
            state: Mutex::new(QueueState { items, busy: 0 }),
            changed: Condvar::new(),
        };
        let mut found = Found::default();
        let mut buffer = vec![0u8; 64 * 1024];
        // Small trees are done before any thread is started.
        let mut done = 0;
        loop {
            let item = {
                let mut state = queue.lock();
                if state.items.is_empty() || bounds.past_deadline() {
                    return found.into_snapshot(&bounds);
                }
                if self.workers > 1 && done >= SERIAL_ITEMS {
                    break;
                }
                done += 1;
                state.items.pop()
            };
            if let Some(item) = item {
                let mut more = Vec::new();
                self.process(item, limits, &bounds, &mut buffer, &mut more, &mut found);
                queue.lock().items.extend(more);
            }
        }
        std::thread::scope(|scope| {
            let helpers: Vec<_> = (1..self.workers)
                .map(|_| scope.spawn(|| self.work(&queue, limits, &bounds)))
                .collect();
            found.merge(self.work(&queue, limits, &bounds));
            for helper in helpers {
                // A hashing thread cannot panic short of a bug; keep what the others found.
                if let Ok(other) = helper.join() {
                    found.merge(other);
                }
            }
        });
        found.into_snapshot(&bounds)
    }

    /// A worker: takes items until the queue is empty and no one can add more.
    fn work<'r>(&self, queue: &Queue<'r>, limits: RacyLimits, bounds: &Bounds) -> Found {
        let mut found = Found::default();
        let mut buffer = vec![0u8; 64 * 1024];
        let mut more = Vec::new();
        loop {
            let item = {
                let mut state = queue.lock();
                loop {
                    if bounds.past_deadline() {
                        // Drop what is left: the snapshot is abandoned.
                        state.items.clear();
                    }
                    if let Some(item) = state.items.pop() {
                        state.busy += 1;
                        break Some(item);
                    }
                    if state.busy == 0 {
                        break None;
                    }
                    state = queue
                        .changed
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            };
            let Some(item) = item else {
                queue.changed.notify_all();
                return found;
            };
            self.process(item, limits, bounds, &mut buffer, &mut more, &mut found);
            let mut state = queue.lock();
            state.busy -= 1;
            let wake = !more.is_empty() || state.busy == 0;
            state.items.append(&mut more);
            drop(state);
            if wake {
                queue.changed.notify_all();
            }
        }
    }

    fn process<'r>(
        &self,
        item: Work<'r>,
        limits: RacyLimits,
        bounds: &Bounds,
        buffer: &mut [u8],
        more: &mut Vec<Work<'r>>,
        found: &mut Found,
    ) {
        match item {
            Work::Dir {
                root,
                dir,
                relative,
            } => list_dir(root, dir, &relative, more, found),
            Work::File {
                path,
                name,
                workspace,
            } => match self.digest_file(&path, workspace, limits, bounds, buffer) {
                Ok(Some(digest)) => found.artifacts.push((name, digest)),
                Ok(None) => {}
                Err(reason) => found.skipped.push(SkippedFile { path, reason }),
            },
        }
    }

    /// The sha256 of one regular file, from the cache when its stamp is unchanged;
    /// `None` when the snapshot stopped (deadline or quota) before it was done.
    fn digest_file(
        &self,
        path: &Path,
        workspace: bool,
        limit: RacyLimits,
        bounds: &Bounds,
        buffer: &mut [u8],
    ) -> Result<Option<String>, String> {
        if bounds.past_deadline() {
            return Ok(None);
        }
        let meta = std::fs::symlink_metadata(path).map_err(|e| format!("cannot stat: {e}"))?;
        if meta.file_type().is_symlink() {
            return symlink_digest(path).map(Some);
        }
        if !meta.is_file() {
            return Err("changed into something other than a file during the snapshot".into());
        }
        if workspace && bounds.add_workspace_bytes(meta.len()) {
            return Ok(None);
        }
        bounds.files.fetch_add(1, Ordering::Relaxed);
        let stamp = Stamp::of(&meta);
        if let Ok(entries) = self.entries.lock()
            && let Some((cached, digest)) = entries.get(path)
            && *cached == stamp
        {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(Some(digest.clone()));
        }
        let mut file = open_regular(path).map_err(|e| format!("cannot open: {e}"))?;
        let opened = file.metadata().map_err(|e| format!("cannot stat: {e}"))?;
        if !opened.is_file() || Stamp::of(&opened).inode != stamp.inode {
            return Err("replaced during the snapshot".into());
        }
        let mut hasher = Sha256::new();
        // Check the deadline every few MiB, so one huge file cannot outlast it.
        let mut since_check = 0usize;
        loop {
            match file.read(buffer) {
                Ok(0) => break,
                Ok(n) => {
                    hasher.update(&buffer[..n]);
                    since_check += n;
                    if since_check >= 4 << 20 {
                        since_check = 0;
                        if bounds.past_deadline() {
                            return Ok(None);
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("cannot read: {e}")),
            }
        }
        let digest = hex::encode(hasher.finalize());
        self.hashed.fetch_add(1, Ordering::Relaxed);
        let after = file.metadata().map(|m| Stamp::of(&m));
        if let Ok(after) = after
            && after == stamp
            && stamp.settled(limit)
            && let Ok(mut entries) = self.entries.lock()
        {
            entries.insert(path.to_owned(), (stamp, digest.clone()));
        }
        Ok(Some(digest))
    }
}

/// Opens a file for hashing without following a symlink and without blocking: a step
/// may swap a file it wrote for a FIFO or a link between the listing and the open.
fn open_regular(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    options.open(path)
}

/// Timestamps at or after these are too recent to trust, as (seconds, nanoseconds).
#[derive(Debug, Clone, Copy)]
struct RacyLimits {
    coarse: (i64, i64),
    fine: (i64, i64),
}

fn racy_limits(window: Duration) -> RacyLimits {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let at = |window: Duration| {
        let limit = now.saturating_sub(window);
        (
            i64::try_from(limit.as_secs()).unwrap_or(i64::MAX),
            i64::from(limit.subsec_nanos()),
        )
    };
    RacyLimits {
        coarse: at(window),
        fine: at(window.min(FINE_RACY_WINDOW)),
    }
}

fn symlink_digest(path: &Path) -> Result<String, String> {
    let target = std::fs::read_link(path).map_err(|e| format!("cannot read symlink: {e}"))?;
    #[cfg(unix)]
    let bytes = {
        use std::os::unix::ffi::OsStrExt;
        target.as_os_str().as_bytes().to_vec()
    };
    #[cfg(not(unix))]
    let bytes = target.to_string_lossy().into_owned().into_bytes();
    Ok(hex::encode(Sha256::digest(bytes)))
}

/// Lists one directory: subdirectories and regular files become work, symlinks are
/// recorded directly, anything else is noted.
fn list_dir<'r>(
    root: &'r Root,
    dir: PathBuf,
    relative: &str,
    more: &mut Vec<Work<'r>>,
    found: &mut Found,
) {
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) => {
            found.skipped.push(SkippedFile {
                path: dir,
                reason: format!("cannot list directory: {e}"),
            });
            return;
        }
    };
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                found.skipped.push(SkippedFile {
                    path: dir.clone(),
                    reason: format!("cannot list directory: {e}"),
                });
                continue;
            }
        };
        let path = entry.path();
        let Some(file_name) = entry.file_name().to_str().map(str::to_owned) else {
            found.skipped.push(SkippedFile {
                path,
                reason: "name is not UTF-8".into(),
            });
            continue;
        };
        let child = if relative.is_empty() {
            file_name
        } else {
            format!("{relative}/{file_name}")
        };
        let file_type = match entry.file_type() {
            Ok(t) => t,
            Err(e) => {
                found.skipped.push(SkippedFile {
                    path,
                    reason: format!("cannot stat: {e}"),
                });
                continue;
            }
        };
        if file_type.is_dir() {
            more.push(Work::Dir {
                root,
                dir: path,
                relative: child,
            });
        } else if file_type.is_symlink() {
            match symlink_digest(&path) {
                Ok(digest) => found.artifacts.push((root.name(&child), digest)),
                Err(reason) => found.skipped.push(SkippedFile { path, reason }),
            }
        } else if file_type.is_file() {
            more.push(Work::File {
                path,
                name: root.name(&child),
                workspace: root.prefix.is_empty(),
            });
        } else {
            found.skipped.push(SkippedFile {
                path,
                reason: "not a regular file, directory or symlink".into(),
            });
        }
    }
}

/// The artifacts in `after` that are new or have a different digest than in `before`:
/// a step's products.
pub fn products(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    after
        .iter()
        .filter(|(name, digest)| before.get(*name) != Some(*digest))
        .map(|(name, digest)| (name.clone(), digest.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    fn backdate(path: &Path) {
        let old = SystemTime::now() - Duration::from_secs(3600);
        let file = File::options().write(true).open(path).expect("open");
        file.set_modified(old).expect("set mtime");
    }

    #[test]
    fn names_digests_and_prefixes() {
        let ws = tempfile::tempdir().expect("tempdir");
        let host = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(ws.path().join("target/deep")).expect("mkdir");
        std::fs::write(ws.path().join("target/app"), b"app").expect("write");
        std::fs::write(ws.path().join("target/deep/x"), b"").expect("write");
        std::fs::write(host.path().join("logo.png"), b"png").expect("write");
        let cache = DigestCache::new();
        let snap = cache.snapshot(&[Root::workspace(ws.path()), Root::host(host.path())]);
        let host_name = format!("{}/logo.png", host.path().display());
        let expected: BTreeMap<String, String> = [
            ("target/app".to_owned(), sha(b"app")),
            ("target/deep/x".to_owned(), sha(b"")),
            (host_name, sha(b"png")),
        ]
        .into_iter()
        .collect();
        assert_eq!(snap.artifacts, expected);
        assert!(snap.skipped.is_empty(), "{:?}", snap.skipped);
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_recorded_not_followed() {
        let ws = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::write(outside.path().join("secret"), b"s").expect("write");
        std::os::unix::fs::symlink(outside.path(), ws.path().join("escape")).expect("symlink");
        std::os::unix::fs::symlink("../etc/passwd", ws.path().join("rel")).expect("symlink");
        let snap = DigestCache::new().snapshot(&[Root::workspace(ws.path())]);
        assert_eq!(snap.artifacts.len(), 2, "{:?}", snap.artifacts);
        assert_eq!(snap.artifacts["rel"], sha(b"../etc/passwd"));
        assert_eq!(
            snap.artifacts["escape"],
            sha(outside.path().to_string_lossy().as_bytes())
        );
    }

    #[test]
    fn missing_root_and_unreadable_files_are_noted() {
        let ws = tempfile::tempdir().expect("tempdir");
        let snap = DigestCache::new().snapshot(&[Root::workspace(ws.path().join("nope"))]);
        assert!(snap.artifacts.is_empty());
        assert_eq!(snap.skipped.len(), 1);
        assert!(
            snap.skipped[0].reason.contains("cannot list directory"),
            "{:?}",
            snap.skipped
        );
    }

    #[cfg(unix)]
    #[test]
    fn unreadable_file_is_noted_when_not_root() {
        use std::os::unix::fs::PermissionsExt;
        let ws = tempfile::tempdir().expect("tempdir");
        let path = ws.path().join("locked");
        std::fs::write(&path, b"x").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).expect("chmod");
        let readable = File::open(&path).is_ok(); // root reads anything
        let snap = DigestCache::new().snapshot(&[Root::workspace(ws.path())]);
        if readable {
            assert!(snap.artifacts.contains_key("locked"));
        } else {
            assert!(snap.artifacts.is_empty());
            assert_eq!(snap.skipped[0].path, path);
            assert!(snap.skipped[0].reason.contains("cannot open"));
        }
    }

    #[test]
    fn unchanged_files_are_not_hashed_twice() {
        let ws = tempfile::tempdir().expect("tempdir");
        for i in 0..50 {
            let path = ws.path().join(format!("f{i}"));
            std::fs::write(&path, format!("file {i}")).expect("write");
            backdate(&path);
        }
        let cache = DigestCache::new();
        let roots = [Root::workspace(ws.path())];
        let first = cache.snapshot(&roots);
        assert_eq!(
            cache.stats(),
            CacheStats {
                hits: 0,
                hashed: 50
            }
        );
        let second = cache.snapshot(&roots);
        assert_eq!(first, second);
        assert_eq!(
            cache.stats(),
            CacheStats {
                hits: 50,
                hashed: 50
            }
        );

        // A change with the same size is seen (mtime and ctime moved).
        let path = ws.path().join("f7");
        std::fs::write(&path, "FILE 7").expect("write");
        let third = cache.snapshot(&roots);
        assert_eq!(third.artifacts["f7"], sha(b"FILE 7"));
        assert_eq!(
            cache.stats(),
            CacheStats {
                hits: 99,
                hashed: 51
            }
        );
        assert_eq!(
            products(&second.artifacts, &third.artifacts)
                .into_keys()
                .collect::<Vec<_>>(),
            ["f7"]
        );
    }

    #[test]
    fn fresh_files_are_hashed_again() {
        let ws = tempfile::tempdir().expect("tempdir");
        std::fs::write(ws.path().join("new"), b"1").expect("write");
        let cache = DigestCache::new();
        let roots = [Root::workspace(ws.path())];
        cache.snapshot(&roots);
        cache.snapshot(&roots);
        assert_eq!(cache.stats(), CacheStats { hits: 0, hashed: 2 });
        let trusting = DigestCache::new().with_racy_window(Duration::ZERO);
        trusting.snapshot(&roots);
        trusting.snapshot(&roots);
        assert_eq!(trusting.stats(), CacheStats { hits: 1, hashed: 1 });
    }

    #[test]
    fn host_prefixes_join_with_one_slash() {
        assert_eq!(
            Root::host("/srv/assets").name("logo.png"),
            "/srv/assets/logo.png"
        );
        assert_eq!(
            Root::host("/srv/assets/").name("logo.png"),
            "/srv/assets/logo.png"
        );
        assert_eq!(Root::host("/").name("etc/hosts"), "/etc/hosts");
        assert_eq!(Root::workspace("/w").name("target/app"), "target/app");
    }

    #[test]
    fn the_racy_window_depends_on_timestamp_granularity() {
        let ws = tempfile::tempdir().expect("tempdir");
        let fine = ws.path().join("fine");
        let coarse = ws.path().join("coarse");
        std::fs::write(&fine, b"1").expect("write");
        std::fs::write(&coarse, b"2").expect("write");
        // A whole-second mtime (this second's start: less than 1 s ago, so
        // still well inside the 2 s coarse window after the sleep below).
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("clock");
        let whole = SystemTime::UNIX_EPOCH + Duration::from_secs(now.as_secs());
        File::options()
            .write(true)
            .open(&coarse)
            .and_then(|f| f.set_modified(whole))
            .expect("mtime");
        std::thread::sleep(FINE_RACY_WINDOW + Duration::from_millis(20));
        let cache = DigestCache::new();
        let roots = [Root::workspace(ws.path())];
        cache.snapshot(&roots);
        cache.snapshot(&roots);
        // `fine` (sub-second mtime, > 50 ms old) is served from the cache; `coarse` is not.
        assert_eq!(cache.stats(), CacheStats { hits: 1, hashed: 3 });
    }

    #[test]
    fn parallel_and_serial_snapshots_agree() {
        let ws = tempfile::tempdir().expect("tempdir");
        for i in 0..300 {
            let path = ws.path().join(format!("d{}/e{}/f{i}", i % 7, i % 3));
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(&path, format!("{i}").repeat(i)).expect("write");
        }
        let roots = [Root::workspace(ws.path())];
        let serial = DigestCache::new().with_workers(1).snapshot(&roots);
        let parallel = DigestCache::new().with_workers(4).snapshot(&roots);
        assert_eq!(serial.artifacts.len(), 300);
        assert_eq!(serial, parallel);
        assert_eq!(
            serial.artifacts["d0/e0/f21"],
            sha("21".repeat(21).as_bytes())
        );
    }

    #[test]
    fn products_are_created_or_changed() {
        let m = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                .collect()
        };
        let before = m(&[("same", "1"), ("changed", "2"), ("deleted", "3")]);
        let after = m(&[("same", "1"), ("changed", "9"), ("created", "4")]);
        assert_eq!(
            products(&before, &after),
            m(&[("changed", "9"), ("created", "4")])
        );
    }
}
