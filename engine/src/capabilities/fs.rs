//! The filesystem capability: the run's workspace (read-write, the working
//! directory) and the directories a step is granted, each preopened at the
//! same absolute path as on the host. Nothing else is visible.

use std::path::{Path, PathBuf};

use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use crate::runtime::RuntimeError;

/// One directory a step may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirGrant {
    /// Absolute, canonical host path; the plugin sees the same path.
    pub path: PathBuf,
    /// Whether the step may write there.
    pub writable: bool,
}

/// Preopen the workspace and the granted directories.
pub(crate) fn prepare(
    builder: &mut WasiCtxBuilder,
    workspace: &Path,
    dirs: &[DirGrant],
) -> Result<(), RuntimeError> {
    preopen(builder, workspace, true)?;
    for dir in dirs {
        preopen(builder, &dir.path, dir.writable)?;
    }
    Ok(())
}

fn preopen(builder: &mut WasiCtxBuilder, path: &Path, writable: bool) -> Result<(), RuntimeError> {
    let guest = path.to_str().ok_or_else(|| RuntimeError::Grant {
        path: path.to_path_buf(),
        reason: "the path is not valid UTF-8".into(),
    })?;
    let perms = if writable {
        FsPerms::ReadWrite
    } else {
        FsPerms::ReadOnly
    };
    builder
        .preopened_dir(path, guest, perms)
        .map_err(|e| RuntimeError::Grant {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    Ok(())
}
