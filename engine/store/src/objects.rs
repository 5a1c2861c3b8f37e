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
        valid.then(|| self.dir.join("sha256").join(&sha256[..2]).join(&sha256[2..]))
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
        let temp = self.dir.join("tmp").join(format!(
            "{}-{}",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
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
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o444)
            .open(temp)?;
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
            out.write_all(&buf[..n])?;
            let before = size;
            size += n as u64;
            if before >> 20 != size >> 20 && deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the deadline passed while the file was stored",
                ));
            }
        }
        let sha256 = hex(&hasher.finalize());
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
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::rename(temp, &path)?;
        Ok(Stored {
            sha256,
            size,
            existed: false,
        })
    }

    /// Takes the file at `path` into the store (read without following a final symlink).
    pub fn store_file(&self, path: &Path) -> io::Result<Stored> {
        self.store_file_until(path, None)
    }

    /// [`Objects::store_file`] that gives up at `deadline` (see [`Objects::store_until`]).
    pub fn store_file_until(&self, path: &Path, deadline: Option<Instant>) -> io::Result<Stored> {
        let mut file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)?;
        self.store_until(&mut file, deadline)
    }

    /// Writes the object `sha256` to a new file at `dest` (never following or
    /// replacing anything there), executable or not.
    pub fn copy_to(&self, sha256: &str, dest: &Path, executable: bool) -> io::Result<()> {
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
        // The umask may have narrowed the mode.
        to.set_permissions(std::fs::Permissions::from_mode(mode))?;
        Ok(())
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
        assert_eq!(std::fs::read_dir(objects.dir().join("tmp")).unwrap().count(), 0);

        let dest = dir.path().join("copy");
        objects.copy_to(&first.sha256, &dest, true).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"hello\n");
        let mode = std::fs::metadata(&dest).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        // Editing the copy leaves the object alone.
        std::fs::write(&dest, b"changed").unwrap();
        assert!(objects.verify(&first.sha256).unwrap());
        // A copy never replaces what is at its destination.
        assert!(objects.copy_to(&first.sha256, &dest, false).is_err());
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
