//! Repairs the database needs after a crash or a full disk, before it opens.

use std::path::Path;

/// Removes the snapshots sled left half-written (`snap.N.generating`: it writes a
/// snapshot under that name and renames it when complete, and sled 0.34 takes a
/// leftover one for the newest snapshot). Whether any was removed.
pub(crate) fn clear_partial_snapshots(db_dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(db_dir) else {
        return false;
    };
    let mut removed = false;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            removed |= std::fs::remove_file(entry.path()).is_ok();
        }
    }
    removed
}
