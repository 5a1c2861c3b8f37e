//! Reading a data dir that a writer may open at any moment: [`copy_locked`] takes
//! sled's lock for as long as it takes to copy the database's files into a private
//! directory, and never writes in the data dir. The copy is opened by sled like any
//! database (sled writes as it opens: its snapshot, a torn log tail), but those writes
//! land in the copy.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Result, StoreError};

/// The prefix of the private directories copies are made in, in the temp dir.
const COPY_PREFIX: &str = "flow-store-copy-";

/// A private copy of a data dir's database, removed when dropped.
#[derive(Debug)]
pub(crate) struct DbCopy {
    path: PathBuf,
}

impl DbCopy {
    /// Where the copied database is.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for DbCopy {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Why [`copy_locked`] could not copy: the database is held (by whom, as its pid
/// file says), or something else failed.
pub(crate) enum Held {
    /// Someone holds sled's lock; the pid file's pid, if it names one.
    By(Option<u32>),
    /// Another failure.
    Failed(StoreError),
}

/// Copies the database in `db_dir` (sled's files) while holding sled's lock on it, so
/// no writer changes it meanwhile; fails at once when the lock is held. `pid_file` is
/// read to name the holder.
pub(crate) fn copy_locked(dir: &Path, db_dir: &Path, pid_file: &str) -> Result<DbCopy, Held> {
    let io_error = |source: io::Error| {
        Held::Failed(StoreError::Storage {
            dir: dir.to_path_buf(),
            source: sled::Error::Io(source),
        })
    };
    // sled locks its `db` file with flock(2), exclusively; so does this.
    let lock = File::open(db_dir.join("db")).map_err(io_error)?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let pid = fs::read_to_string(db_dir.join(pid_file))
                .ok()
                .and_then(|text| text.trim().parse::<u32>().ok());
            return Err(Held::By(pid));
        }
        Err(fs::TryLockError::Error(e)) => return Err(io_error(e)),
    }
    remove_stale_copies();
    let copy = DbCopy {
        path: new_copy_dir().map_err(io_error)?,
    };
    copy_tree(db_dir, &copy.path).map_err(io_error)?;
    drop(lock);
    Ok(copy)
}

/// A new empty directory of this process's own in the temp dir.
fn new_copy_dir() -> io::Result<PathBuf> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let base = std::env::temp_dir();
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = base.join(format!("{COPY_PREFIX}{}-{n}", std::process::id()));
        match fs::create_dir(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                // Left by a dead process with the same pid: start afresh.
                fs::remove_dir_all(&path)?;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Copies the regular files and directories below `from` into `to` (links and other
/// kinds are left out: sled makes none).
fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            fs::create_dir(&target)?;
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Removes the copies that processes which have ended left behind (killed before
/// they could remove their own).
fn remove_stale_copies() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(COPY_PREFIX)) else {
            continue;
        };
        let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid
            && pid != std::process::id()
            && !process_alive(pid)
        {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Whether a process with this pid exists (it may not be the one that wrote the pid,
/// should the pid have been reused).
pub fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // Signal 0 checks that the process exists without signalling it.
    // SAFETY: kill(2) with signal 0 has no effect on the process.
    let result = unsafe { libc::kill(pid, 0) };
    result == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_pid_zero_is_none() {
        assert!(process_alive(std::process::id()));
        assert!(!process_alive(0));
        assert!(!process_alive(u32::MAX));
    }
}
