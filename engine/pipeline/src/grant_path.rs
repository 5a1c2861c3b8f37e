//! Where a granted directory leads, walked one component at a time without following
//! symbolic links (F2).
//!
//! A link in a granted path can be planted by a step of an earlier run that could write the
//! directory holding it (`out/cache -> /some/victim`): following it would hand a later step
//! whatever the link names, and `flow check` would show neither. So a grant never passes
//! through a link: every component below the trusted start (the pipeline's directory, `/`,
//! the home directory or a variable's value) must be a real directory. `..` is resolved
//! lexically, which is sound because everything walked before it is a real directory.

use std::fs::Metadata;
use std::path::{Component, Path, PathBuf};

use crate::grants::DirIdentity;

/// A granted directory, checked.
#[derive(Debug)]
pub(crate) struct Walked {
    /// Its canonical absolute path.
    pub(crate) path: PathBuf,
    /// Which directory it was.
    pub(crate) identity: DirIdentity,
}

/// Why a granted path was refused.
#[derive(Debug, PartialEq)]
pub(crate) enum WalkError {
    /// The path, or a directory above it, does not exist (or cannot be looked at).
    Missing,
    /// The path names something that is not a directory.
    NotDirectory,
    /// A component of the path is a symbolic link.
    Link {
        /// The path up to the link, as shown to the user.
        link: PathBuf,
        /// What the link holds, as it holds it.
        target: PathBuf,
        /// The directory that holds the link, as shown to the user.
        parent: PathBuf,
        /// The directory the whole path leads to when links are followed, if any.
        real: Option<PathBuf>,
    },
}

/// Walks `rest` from `trusted` (an absolute, canonical directory taken as it is; an absolute
/// `rest` starts again from `/`). `shown` is how `trusted` is shown in messages (empty for
/// the pipeline's directory, whose paths are shown as written).
pub(crate) fn walk(trusted: &Path, shown: &Path, rest: &Path) -> Result<Walked, WalkError> {
    let mut current = trusted.to_path_buf();
    let mut display = shown.to_path_buf();
    let mut last: Option<Metadata> = None;
    for component in rest.components() {
        if last.as_ref().is_some_and(|m| !m.is_dir()) {
            // A file above the end of the path: the path does not exist.
            return Err(WalkError::Missing);
        }
        match component {
            Component::Prefix(_) => {
                current = PathBuf::from(component.as_os_str());
                display = PathBuf::from(component.as_os_str());
                last = None;
            }
            // Pushing the root onto a path replaces it (keeping a prefix, if any).
            Component::RootDir => {
                current.push(component);
                display.push(component);
                last = None;
            }
            Component::CurDir => display.push(component),
            Component::ParentDir => {
                // Everything walked so far is a real directory: its parent is lexical.
                current.pop();
                display.push(component);
                last = None;
            }
            Component::Normal(name) => {
                let next = current.join(name);
                let parent = if display.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    display.clone()
                };
                display.push(name);
                let meta = std::fs::symlink_metadata(&next).map_err(|_| WalkError::Missing)?;
                if meta.file_type().is_symlink() {
                    let target = std::fs::read_link(&next).map_err(|_| WalkError::Missing)?;
                    let real = std::fs::canonicalize(trusted.join(rest))
                        .ok()
                        .filter(|r| r.is_dir());
                    return Err(WalkError::Link {
                        link: display,
                        target,
                        parent,
                        real,
                    });
                }
                last = Some(meta);
                current = next;
            }
        }
    }
    let meta = match last {
        Some(meta) => meta,
        None => std::fs::symlink_metadata(&current).map_err(|_| WalkError::Missing)?,
    };
    if meta.file_type().is_symlink() {
        // Only a trusted start can be a link here, and those were canonicalised.
        return Err(WalkError::Missing);
    }
    if !meta.is_dir() {
        return Err(WalkError::NotDirectory);
    }
    Ok(Walked {
        path: current,
        identity: DirIdentity::of(&meta),
    })
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn setup() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let base = std::fs::canonicalize(dir.path()).expect("canonical");
        std::fs::create_dir_all(base.join("out/real/sub")).expect("dirs");
        std::fs::write(base.join("out/file"), "x").expect("a file");
        (dir, base)
    }

    #[test]
    fn real_directories_are_walked_and_identified() {
        let (_dir, base) = setup();
        let walked = walk(&base, Path::new(""), Path::new("./out/real/sub")).expect("walks");
        assert_eq!(walked.path, base.join("out/real/sub"));
        let meta = std::fs::metadata(base.join("out/real/sub")).expect("meta");
        assert_eq!(walked.identity, DirIdentity::of(&meta));
        let up = walk(&base, Path::new(""), Path::new("out/real/sub/../..")).expect("walks");
        assert_eq!(up.path, base.join("out"));
        let base_itself = walk(&base, Path::new(""), Path::new(".")).expect("walks");
        assert_eq!(base_itself.path, base);
        let absolute = walk(&base, Path::new(""), &base.join("out")).expect("walks");
        assert_eq!(absolute.path, base.join("out"));
    }

    #[test]
    fn files_and_missing_paths() {
        let (_dir, base) = setup();
        let walk_rel = |p: &str| walk(&base, Path::new(""), Path::new(p)).map(|w| w.path);
        assert_eq!(walk_rel("out/file"), Err(WalkError::NotDirectory));
        assert_eq!(walk_rel("out/file/x"), Err(WalkError::Missing));
        assert_eq!(walk_rel("out/file/.."), Err(WalkError::Missing));
        assert_eq!(walk_rel("nowhere"), Err(WalkError::Missing));
    }

    #[test]
    fn links_anywhere_in_the_path_are_refused() {
        let (_dir, base) = setup();
        symlink(base.join("out/real"), base.join("out/cache")).expect("a link");
        symlink("real/sub", base.join("out/relative")).expect("a link");
        symlink(base.join("gone"), base.join("out/dangling")).expect("a link");
        symlink(base.join("out"), base.join("outlink")).expect("a link");
        let refused = |p: &str| match walk(&base, Path::new(""), Path::new(p)) {
            Err(WalkError::Link {
                link,
                target,
                parent,
                real,
            }) => (link, target, parent, real),
            other => panic!("{p}: {other:?}"),
        };
        assert_eq!(
            refused("out/cache"),
            (
                PathBuf::from("out/cache"),
                base.join("out/real"),
                PathBuf::from("out"),
                Some(base.join("out/real"))
            )
        );
        assert_eq!(
            refused("out/cache/sub"),
            (
                PathBuf::from("out/cache"),
                base.join("out/real"),
                PathBuf::from("out"),
                Some(base.join("out/real/sub"))
            )
        );
        assert_eq!(
            refused("out/relative"),
            (
                PathBuf::from("out/relative"),
                PathBuf::from("real/sub"),
                PathBuf::from("out"),
                Some(base.join("out/real/sub"))
            )
        );
        assert_eq!(
            refused("out/dangling"),
            (
                PathBuf::from("out/dangling"),
                base.join("gone"),
                PathBuf::from("out"),
                None
            )
        );
        assert_eq!(refused("outlink/real").2, PathBuf::from("."));
        // `..` right after a link does not go back up: the link is refused first.
        assert_eq!(refused("out/cache/..").0, PathBuf::from("out/cache"));
        let absolute = base.join("out/cache");
        match walk(Path::new("/"), Path::new(""), &absolute) {
            Err(WalkError::Link { link, .. }) => assert_eq!(link, absolute),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_trusted_start_may_be_reached_through_a_link() {
        let (_dir, base) = setup();
        symlink(base.join("out"), base.join("trusted")).expect("a link");
        let trusted = std::fs::canonicalize(base.join("trusted")).expect("canonical");
        let walked = walk(&trusted, Path::new("/shown"), Path::new("real")).expect("walks");
        assert_eq!(walked.path, base.join("out/real"));
    }
}
