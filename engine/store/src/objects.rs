//! The content-addressed store of files in the data dir (`objects/`): a file's content
//! kept once under its sha256 (`objects/sha256/ab/cdef…`), written to a temporary
//! file and renamed into place (a crash leaves a whole object or none), read-only,
//! never modified in place, shared by every run of the data dir.
//!
//! Steps never see this directory: a step's view gets copies (a filesystem that
//! shares extents makes those copies cheap), so a step that edits a file it received
//! changes neither the stored object nor another step's view.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use sha2::{Digest, Sha256};

/// The content-addressed file store of a data dir.
#[derive(Debug, Clone)]
pub struct Objects {
    dir: PathBuf,
}

/// A file taken into the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Lowercase hex sha256 of its content.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
    /// Whether the store already held it (nothing was written).
    pub existed: bool,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Objects {
    /// Opens (creating) the store in `dir` (normally `DATA/objects`).
    pub fn open(dir: impl Into<PathBuf>) -> io::Result<Objects> {
        let dir = dir.into();
        std::fs::create_dir_all(dir.join("sha256"))?;
        std::fs::create_dir_all(dir.join("tmp"))?;
        Ok(Objects { dir })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the object of `sha256` lives (whether or not it is there).
    /// `None` for anything but 64 lowercase hex digits.
    pub fn path(&self, sha256: &str) -> Option<PathBuf> {
        let valid = sha256.len() == 64
            && sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        valid.then(|| {
            self.dir
                .join("sha256")
                .join(&sha256[..2])
                .join(&sha256[2..])
        })
    }

    /// Every object held: its sha256 and size (what `flow cache gc` weighs).
    pub fn list(&self) -> io::Result<Vec<(String, u64)>> {
        let mut out = Vec::new();
        for fan in std::fs::read_dir(self.dir.join("sha256"))? {
            let fan = fan?;
            let prefix = fan.file_name().to_string_lossy().into_owned();
            if !fan.file_type()?.is_dir() {
                continue;
            }
            for object in std::fs::read_dir(fan.path())? {
                let object = object?;
                let sha256 = format!("{prefix}{}", object.file_name().to_string_lossy());
                if self.path(&sha256).is_some() {
                    out.push((sha256, object.metadata()?.len()));
                }
            }
        }
        Ok(out)
    }

    /// Removes the object of `sha256` (nothing if it is not held); the bytes freed.
    pub fn remove(&self, sha256: &str) -> io::Result<u64> {
        let Some(path) = self.path(sha256) else {
            return Ok(0);
        };
        match std::fs::symlink_metadata(&path) {
            Ok(meta) => {
                std::fs::remove_file(&path)?;
                Ok(meta.len())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Whether the store holds `sha256`.
    pub fn contains(&self, sha256: &str) -> bool {
        self.path(sha256).is_some_and(|p| p.is_file())
    }

    /// Takes the content of the open file `source` into the store, hashing it while it
    /// is copied (one read).
    pub fn store(&self, source: &mut impl Read) -> io::Result<Stored> {
        self.store_until(source, None)
    }

    /// [`Objects::store`] that gives up at `deadline` with [`io::ErrorKind::TimedOut`]
    /// (checked every mebibyte), leaving nothing behind.
    pub fn store_until(
        &self,
        source: &mut impl Read,
        deadline: Option<Instant>,
    ) -> io::Result<Stored> {
        let temp = self.temp_path();
        let result = self.store_via(source, &temp, deadline);
        if result.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        result
    }

    fn store_via(
        &self,
        source: &mut impl Read,
        temp: &Path,
        deadline: Option<Instant>,
    ) -> io::Result<Stored> {
        let (out, sha256, size) = self.write_temp(source, temp, deadline)?;
        let path = self.path(&sha256).expect("a sha256 is 64 hex digits");
        if path.is_file() {
            drop(out);
            std::fs::remove_file(temp)?;
            return Ok(Stored {
                sha256,
                size,
                existed: true,
            });
        }
        // Durable before it is named: a crash never leaves a named, partial object.
        out.sync_all()?;
        drop(out);
        self.name(temp, &path)?;
        Ok(Stored {
            sha256,
            size,
            existed: false,
        })
    }

    /// Renames a written temporary file to its object's name.
    fn name(&self, temp: &Path, path: &Path) -> io::Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::rename(temp, path)
    }

    /// A new temporary file's path.
    fn temp_path(&self) -> PathBuf {
        self.dir.join("tmp").join(format!(
            "{}-{}",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ))
    }

    /// Copies `source` to the new file `temp`, hashing it: the open file, its digest
    /// and size.
    fn write_temp(
        &self,
        source: &mut impl Read,
        temp: &Path,
        deadline: Option<Instant>,
    ) -> io::Result<(File, String, u64)> {
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o444)
            .open(temp)?;
        let (sha256, size) = hash_until(source, deadline, Some(&mut out))?;
        Ok((out, sha256, size))
    }

    /// Starts taking many files into the store at once: each is written and hashed
    /// now, and all are made durable with one filesystem sync and named by
    /// [`Batch::commit`] (rather than one sync per file). Dropped without a commit, it
    /// leaves nothing behind.
    pub fn batch(&self) -> Batch<'_> {
        Batch {
            objects: self,
            pending: Vec::new(),
            named: std::collections::HashSet::new(),
        }
    }

    /// Takes the file at `path` into the store (read without following a final symlink).
    pub fn store_file(&self, path: &Path) -> io::Result<Stored> {
        self.store_file_until(path, None)
    }

    /// [`Objects::store_file`] that gives up at `deadline` (see [`Objects::store_until`]).
    pub fn store_file_until(&self, path: &Path, deadline: Option<Instant>) -> io::Result<Stored> {
        let mut file = open_no_follow(path)?;
        self.store_until(&mut file, deadline)
    }

    /// Writes the object `sha256` to a new file at `dest` (never following or
    /// replacing anything there), executable or not, with the modification time
    /// `modified` when given; returns the new file's metadata.
    pub fn copy_to(
        &self,
        sha256: &str,
        dest: &Path,
        executable: bool,
        modified: Option<std::time::SystemTime>,
    ) -> io::Result<std::fs::Metadata> {
        let source = self.path(sha256).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("`{sha256}` is not a sha256"),
            )
        })?;
        let mut from = File::open(&source).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("object {sha256} is missing from the store: {e}"),
            )
        })?;
        let mode = if executable { 0o755 } else { 0o644 };
        let mut to = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(dest)?;
        // `io::copy` between files uses copy_file_range: the kernel copies, and shares
        // extents where the filesystem can.
        io::copy(&mut from, &mut to)?;
        if let Some(modified) = modified {
            to.set_modified(modified)?;
        }
        let meta = to.metadata()?;
        // The umask may have narrowed the mode.
        if meta.permissions().mode() & 0o777 != mode {
            to.set_permissions(std::fs::Permissions::from_mode(mode))?;
            return to.metadata();
        }
        Ok(meta)
    }

    /// Reads the object `sha256` back and checks its content still has that digest.
    pub fn verify(&self, sha256: &str) -> io::Result<bool> {
        let Some(path) = self.path(sha256) else {
            return Ok(false);
        };
        let mut file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        let mut hasher = Sha256::new();
        io::copy(&mut file, &mut hasher)?;
        Ok(hex(&hasher.finalize()) == sha256)
    }
}

/// Opens a file for reading without following a final symlink.
fn open_no_follow(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Files being taken into the store together; see [`Objects::batch`].
pub struct Batch<'a> {
    objects: &'a Objects,
    /// Written temporary files and the object names they get.
    pending: Vec<(PathBuf, PathBuf)>,
    /// Digests already pending in this batch.
    named: std::collections::HashSet<String>,
}

impl Batch<'_> {
    /// Whether the store has, or this batch will name, the object `sha256`: its path
    /// when not.
    fn missing(&self, sha256: &str) -> Option<PathBuf> {
        let object = self
            .objects
            .path(sha256)
            .expect("a sha256 is 64 hex digits");
        (!self.named.contains(sha256) && !object.is_file()).then_some(object)
    }

    /// Remembers `temp` to be named `object` on commit.
    fn pend(&mut self, sha256: String, size: u64, temp: PathBuf, object: PathBuf) -> Stored {
        self.named.insert(sha256.clone());
        self.pending.push((temp, object));
        Stored {
            sha256,
            size,
            existed: false,
        }
    }

    /// Writes and hashes the file at `path` (without following a final symlink),
    /// giving up at `deadline` with [`io::ErrorKind::TimedOut`]. The object exists
    /// once the batch is committed.
    pub fn store_file_until(
        &mut self,
        path: &Path,
        deadline: Option<Instant>,
    ) -> io::Result<Stored> {
        let mut file = open_no_follow(path)?;
        let temp = self.objects.temp_path();
        let written = self.objects.write_temp(&mut file, &temp, deadline);
        let (out, sha256, size) = match written {
            Ok(written) => written,
            Err(e) => {
                let _ = std::fs::remove_file(&temp);
                return Err(e);
            }
        };
        drop(out);
        let Some(object) = self.missing(&sha256) else {
            std::fs::remove_file(&temp)?;
            return Ok(Stored {
                sha256,
                size,
                existed: true,
            });
        };
        Ok(self.pend(sha256, size, temp, object))
    }

    /// Takes the file at `path` itself into the store: hashed by reading it, then moved
    /// (renamed) rather than copied, so nothing is written. Only for a file nothing
    /// else uses any more (a step's view after the step ended): a file with other
    /// links, or on another filesystem, is copied as [`Batch::store_file_until`] does.
    pub fn take_file_until(
        &mut self,
        path: &Path,
        deadline: Option<Instant>,
    ) -> io::Result<Stored> {
        use std::os::unix::fs::MetadataExt;
        let mut file = open_no_follow(path)?;
        let meta = file.metadata()?;
        if !meta.is_file() || meta.nlink() != 1 {
            return self.store_file_until(path, deadline);
        }
        let (sha256, size) = hash_until(&mut file, deadline, None)?;
        let Some(object) = self.missing(&sha256) else {
            return Ok(Stored {
                sha256,
                size,
                existed: true,
            });
        };
        let temp = self.objects.temp_path();
        match std::fs::rename(path, &temp) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                return self.store_file_until(path, deadline);
            }
            Err(e) => return Err(e),
        }
        // Still the file that was hashed, and read-only from now on.
        let moved = std::fs::symlink_metadata(&temp)?;
        if moved.ino() != meta.ino() || moved.dev() != meta.dev() || moved.len() != size {
            let _ = std::fs::remove_file(&temp);
            return Err(io::Error::other(format!(
                "{} changed while it was stored",
                path.display()
            )));
        }
        file.set_permissions(std::fs::Permissions::from_mode(0o444))?;
        Ok(self.pend(sha256, size, temp, object))
    }

    /// Makes every written file durable (one sync of the store's filesystem), then
    /// names them: a crash never leaves a named, partial object.
    pub fn commit(mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        sync_filesystem(&self.objects.dir)?;
        for (temp, object) in std::mem::take(&mut self.pending) {
            self.objects.name(&temp, &object)?;
        }
        Ok(())
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        for (temp, _) in &self.pending {
            let _ = std::fs::remove_file(temp);
        }
    }
}

/// Flushes every written file of the filesystem holding `dir` (`syncfs`).
fn sync_filesystem(dir: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let handle = File::open(dir)?;
    // SAFETY: syncfs takes an open descriptor, which `handle` keeps open for the call.
    if unsafe { libc::syncfs(handle.as_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The sha256 and size of what `source` holds, copied to `copy` when given, giving up
/// at `deadline` (checked every mebibyte) with [`io::ErrorKind::TimedOut`].
fn hash_until(
    source: &mut impl Read,
    deadline: Option<Instant>,
    mut copy: Option<&mut File>,
) -> io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match source.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        if let Some(out) = copy.as_deref_mut() {
            out.write_all(&buf[..n])?;
        }
        let before = size;
        size += n as u64;
        if before >> 20 != size >> 20 && deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the deadline passed while the file was read",
            ));
        }
    }
    Ok((hex(&hasher.finalize()), size))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_stored_once_under_its_digest_and_copied_back() {
        let dir = tempfile::tempdir().unwrap();
        let objects = Objects::open(dir.path().join("objects")).unwrap();
        let src = dir.path().join("hello");
        std::fs::write(&src, b"hello\n").unwrap();
        let first = objects.store_file(&src).unwrap();
        assert_eq!(
            first.sha256,
            "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
        );
        assert_eq!(first.size, 6);
        assert!(!first.existed);
        let second = objects.store_file(&src).unwrap();
        assert!(second.existed);
        assert!(objects.verify(&first.sha256).unwrap());
        // Nothing is left in the temporary directory.
        assert_eq!(
            std::fs::read_dir(objects.dir().join("tmp"))
                .unwrap()
                .count(),
            0
        );

        let dest = dir.path().join("copy");
        objects.copy_to(&first.sha256, &dest, true, None).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"hello\n");
        let mode = std::fs::metadata(&dest).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        // Editing the copy leaves the object alone.
        std::fs::write(&dest, b"changed").unwrap();
        assert!(objects.verify(&first.sha256).unwrap());
        // A copy never replaces what is at its destination.
        assert!(objects.copy_to(&first.sha256, &dest, false, None).is_err());
    }

    #[test]
    fn a_batch_names_its_objects_only_when_committed() {
        let dir = tempfile::tempdir().unwrap();
        let objects = Objects::open(dir.path().join("objects")).unwrap();
        for (name, text) in [("a", "one"), ("b", "two"), ("c", "one")] {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let mut batch = objects.batch();
        let a = batch.store_file_until(&dir.path().join("a"), None).unwrap();
        let b = batch.store_file_until(&dir.path().join("b"), None).unwrap();
        let c = batch.store_file_until(&dir.path().join("c"), None).unwrap();
        assert_eq!(a.sha256, c.sha256);
        assert!(c.existed, "the same content once per batch");
        assert!(!objects.contains(&a.sha256), "named before the commit");
        batch.commit().unwrap();
        assert!(objects.verify(&a.sha256).unwrap() && objects.verify(&b.sha256).unwrap());
        assert_eq!(
            std::fs::read_dir(objects.dir().join("tmp"))
                .unwrap()
                .count(),
            0
        );

        // Dropped without a commit: nothing named, nothing left.
        std::fs::write(dir.path().join("d"), "three").unwrap();
        let mut batch = objects.batch();
        let d = batch.store_file_until(&dir.path().join("d"), None).unwrap();
        drop(batch);
        assert!(!objects.contains(&d.sha256));
        assert_eq!(
            std::fs::read_dir(objects.dir().join("tmp"))
                .unwrap()
                .count(),
            0
        );
    }

    #[test]
    fn a_taken_file_is_moved_unless_it_has_other_links() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let objects = Objects::open(dir.path().join("objects")).unwrap();
        let alone = dir.path().join("alone");
        std::fs::write(&alone, "moved").unwrap();
        let ino = std::fs::metadata(&alone).unwrap().ino();
        let shared = dir.path().join("shared");
        std::fs::write(&shared, "copied").unwrap();
        std::fs::hard_link(&shared, dir.path().join("elsewhere")).unwrap();
        let mut batch = objects.batch();
        let moved = batch.take_file_until(&alone, None).unwrap();
        let copied = batch.take_file_until(&shared, None).unwrap();
        batch.commit().unwrap();
        assert!(!alone.exists(), "moved into the store");
        let object = objects.path(&moved.sha256).unwrap();
        assert_eq!(std::fs::metadata(&object).unwrap().ino(), ino);
        assert_eq!(
            std::fs::metadata(&object).unwrap().permissions().mode() & 0o777,
            0o444
        );
        // The linked file stays, and the object is a copy of its own.
        assert!(shared.exists());
        std::fs::write(dir.path().join("elsewhere"), "changed later").unwrap();
        assert!(objects.verify(&copied.sha256).unwrap());
    }

    #[test]
    fn a_symlink_is_not_followed_when_stored() {
        let dir = tempfile::tempdir().unwrap();
        let objects = Objects::open(dir.path().join("objects")).unwrap();
        std::fs::write(dir.path().join("target"), b"x").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path().join("target"), &link).unwrap();
        assert!(objects.store_file(&link).is_err());
    }

    #[test]
    fn an_edited_object_fails_verification_and_bad_names_have_no_path() {
        let dir = tempfile::tempdir().unwrap();
        let objects = Objects::open(dir.path().join("objects")).unwrap();
        let stored = objects.store(&mut &b"content"[..]).unwrap();
        let path = objects.path(&stored.sha256).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::write(&path, b"forged").unwrap();
        assert!(!objects.verify(&stored.sha256).unwrap());
        assert!(objects.path("../../etc/passwd").is_none());
        assert!(objects.path(&"A".repeat(64)).is_none());
        assert!(!objects.verify(&"0".repeat(64)).unwrap());
    }
}
