//! The filesystem capability: the step's view of the workspace (read-write, the working
//! directory) and the directories a step is granted, each preopened at the
//! same absolute path as on the host. Nothing else is visible.
//!
//! A granted directory is opened when the step starts by walking its path one
//! component at a time without following symbolic links, and must still be the
//! directory (device and inode) that was checked when the pipeline was loaded: an
//! earlier step that could write a parent cannot swap it for a link to somewhere
//! else. The preopen is made from that very open directory (`/proc/self/fd/N`),
//! so nothing can change between the check and the open.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use flow_pipeline::{FsAccess, PlannedStep};
use serde_json::{Map, Value};
use wasmtime::component::Linker;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use super::step_log::LogSink;
use super::unit::{Capability, RunInputs, StepInputs, StoreData};

/// The filesystem capability (`grants.fs`): WASI preopens, no host functions of its
/// own.
pub(crate) struct Fs;

/// A step's directories: its workspace and its granted directories.
pub(crate) struct FsStep {
    workspace: DirGrant,
    dirs: Vec<DirGrant>,
}

impl Capability for Fs {
    /// The run's workspace.
    type Run = PathBuf;
    type Step = FsStep;

    fn resolve(inputs: &RunInputs<'_>) -> Result<PathBuf, flow_pipeline::Diagnostics> {
        Ok(inputs.workspace.to_path_buf())
    }

    fn prepare(_: &PathBuf, inputs: &StepInputs<'_>) -> FsStep {
        FsStep {
            workspace: DirGrant {
                path: inputs.workspace.to_path_buf(),
                writable: true,
                identity: inputs.workspace_identity,
            },
            dirs: inputs
                .step
                .fs_grants
                .iter()
                .map(|g| DirGrant {
                    path: g.path.clone(),
                    writable: g.access == FsAccess::Write,
                    identity: Some(g.identity),
                })
                .collect(),
        }
    }

    fn none(_: &LogSink) -> FsStep {
        FsStep {
            workspace: DirGrant {
                path: PathBuf::new(),
                writable: false,
                identity: None,
            },
            dirs: Vec::new(),
        }
    }

    fn describe(workspace: &PathBuf, step: &PlannedStep, grants: &mut Map<String, Value>) {
        grants.insert("workspace".into(), workspace.display().to_string().into());
        grants.insert(
            "fs".into(),
            step.fs_grants
                .iter()
                .map(|g| {
                    serde_json::json!({
                        "path": g.path.display().to_string(),
                        "access": match g.access { FsAccess::Read => "read", FsAccess::Write => "write" },
                        "hashed": g.hash,
                    })
                })
                .collect(),
        );
    }

    fn link<T: StoreData>(_: &mut Linker<T>, _: fn(&mut T) -> &mut FsStep) -> wasmtime::Result<()> {
        // WASI's filesystem is linked with the rest of WASI; a step's directories are
        // its store's preopens (`FsStep::preopen`).
        Ok(())
    }
}

impl FsStep {
    /// A step's directories, for a runtime built without a pipeline (benchmarks).
    pub(crate) fn new(workspace: DirGrant, dirs: Vec<DirGrant>) -> FsStep {
        FsStep { workspace, dirs }
    }

    /// The workspace (absolute): read-write, the plugin's working directory.
    pub(crate) fn workspace(&self) -> &Path {
        &self.workspace.path
    }

    /// The granted directories beyond the workspace.
    pub(crate) fn granted(&self) -> &[DirGrant] {
        &self.dirs
    }

    /// Where the step may change files: the workspace and its writable grants.
    pub(crate) fn writable(&self) -> Vec<PathBuf> {
        std::iter::once(self.workspace.path.clone())
            .chain(
                self.dirs
                    .iter()
                    .filter(|d| d.writable)
                    .map(|d| d.path.clone()),
            )
            .collect()
    }

    /// Preopens the workspace and the granted directories, each checked again.
    pub(crate) fn preopen(&self, builder: &mut WasiCtxBuilder) -> Result<(), String> {
        preopen(builder, &self.workspace)?;
        for dir in &self.dirs {
            preopen(builder, dir)?;
        }
        Ok(())
    }
}

pub use flow_pipeline::DirIdentity;

/// The identity of the directory at `path` now.
pub fn identity_of(path: &Path) -> std::io::Result<DirIdentity> {
    std::fs::metadata(path).map(|m| DirIdentity::of(&m))
}

/// One directory a step may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirGrant {
    /// Absolute, canonical host path; the plugin sees the same path.
    pub path: PathBuf,
    /// Whether the step may write there.
    pub writable: bool,
    /// The directory it was when the pipeline was checked, if known.
    pub identity: Option<DirIdentity>,
}

fn preopen(builder: &mut WasiCtxBuilder, grant: &DirGrant) -> Result<(), String> {
    let refuse = |reason: String| format!("cannot grant {}: {reason}", grant.path.display());
    let guest = grant
        .path
        .to_str()
        .ok_or_else(|| refuse("the path is not valid UTF-8".into()))?;
    let perms = if grant.writable {
        FsPerms::ReadWrite
    } else {
        FsPerms::ReadOnly
    };
    let opened = open_beneath_root(&grant.path).map_err(refuse)?;
    if let Some(expected) = grant.identity {
        let now = identity_of_fd(&opened).map_err(|e| refuse(e.to_string()))?;
        if now != expected {
            return Err(refuse(
                "it is no longer the directory that was checked when the pipeline was loaded (it was replaced since)".into(),
            ));
        }
    }
    // Open the preopen from the directory just checked, not from its path again.
    let by_fd = PathBuf::from(format!("/proc/self/fd/{}", opened.as_raw_fd()));
    let host: &Path = if by_fd.exists() { &by_fd } else { &grant.path };
    builder
        .preopened_dir(host, guest, perms)
        .map_err(|e| refuse(e.to_string()))?;
    drop(opened);
    Ok(())
}

/// Opens the directory at the absolute `path` (an `O_PATH` descriptor), walking
/// from `/` one component at a time and refusing a symbolic link anywhere on the way.
pub fn open_beneath_root(path: &Path) -> Result<OwnedFd, String> {
    if !path.is_absolute() {
        return Err("the path is not absolute".into());
    }
    let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    let root = CString::new("/").map_err(|e| e.to_string())?;
    // SAFETY: `root` is a valid NUL-terminated string; the result is checked.
    let fd = unsafe { libc::open(root.as_ptr(), flags) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    // SAFETY: `fd` was just opened and is owned here.
    let mut dir = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut walked = PathBuf::from("/");
    for component in path.components() {
        let name = match component {
            Component::RootDir => continue,
            Component::Normal(name) => name,
            _ => return Err("the path is not normalised".into()),
        };
        walked.push(name);
        let name = CString::new(name.as_bytes()).map_err(|e| e.to_string())?;
        // SAFETY: `dir` is an open directory descriptor and `name` a valid C string.
        let fd = unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags) };
        if fd < 0 {
            let error = std::io::Error::last_os_error();
            return Err(match error.raw_os_error() {
                Some(libc::ELOOP) | Some(libc::ENOTDIR) if is_symlink(&walked) => format!(
                    "{} is now a symbolic link (grants never pass through one; it was a directory when the pipeline was checked)",
                    walked.display()
                ),
                _ => format!("cannot open {}: {error}", walked.display()),
            });
        }
        // SAFETY: as above.
        dir = unsafe { OwnedFd::from_raw_fd(fd) };
    }
    Ok(dir)
}

fn is_symlink(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

fn identity_of_fd(fd: &OwnedFd) -> std::io::Result<DirIdentity> {
    // SAFETY: an all-zero `stat` is a valid value to be overwritten by `fstat`.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is open and `stat` is writable.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut stat) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(DirIdentity {
        dev: stat.st_dev,
        ino: stat.st_ino,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_swapped_for_a_link_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        let granted = base.join("out/cache");
        std::fs::create_dir_all(&granted).unwrap();
        let identity = identity_of(&granted).unwrap();
        assert!(open_beneath_root(&granted).is_ok());
        // The same directory opens and keeps its identity.
        let fd = open_beneath_root(&granted).unwrap();
        assert_eq!(identity_of_fd(&fd).unwrap(), identity);

        let victim = base.join("victim");
        std::fs::create_dir(&victim).unwrap();
        std::fs::remove_dir(&granted).unwrap();
        std::os::unix::fs::symlink(&victim, &granted).unwrap();
        let error = open_beneath_root(&granted).unwrap_err();
        assert!(error.contains("is now a symbolic link"), "{error}");

        // A parent swapped for a link is refused too.
        std::fs::remove_file(&granted).unwrap();
        std::fs::rename(base.join("out"), base.join("real-out")).unwrap();
        std::os::unix::fs::symlink(base.join("real-out"), base.join("out")).unwrap();
        std::fs::create_dir_all(base.join("real-out/cache")).unwrap();
        let error = open_beneath_root(&granted).unwrap_err();
        assert!(error.contains("out is now a symbolic link"), "{error}");
    }

    #[test]
    fn a_replaced_directory_has_another_identity() {
        let dir = tempfile::tempdir().unwrap();
        let granted = dir.path().canonicalize().unwrap().join("d");
        std::fs::create_dir(&granted).unwrap();
        let before = identity_of(&granted).unwrap();
        std::fs::create_dir(dir.path().join("elsewhere")).unwrap();
        std::fs::remove_dir(&granted).unwrap();
        std::fs::rename(dir.path().join("elsewhere"), &granted).unwrap();
        let fd = open_beneath_root(&granted).unwrap();
        assert_ne!(identity_of_fd(&fd).unwrap(), before);
    }
}
