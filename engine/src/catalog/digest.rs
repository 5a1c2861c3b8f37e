//! The digest that identifies a template's content (`docs/templates.md`, "Signed
//! templates"): the sha256 of the lines `<file sha256>  <relative path>\n`, one per
//! regular file of the template's directory (subdirectories included) except
//! `template.sig`, sorted by path.
//!
//! Relative paths use `/` between components and are compared byte by byte. A template
//! holds regular files and directories only: a symbolic link or a special file (socket,
//! FIFO, device) makes the digest fail, naming it, rather than be skipped or followed.
//! So does a template of more than 10,000 files or 256 MiB.

use std::fs::File;
use std::io;
use std::path::Path;

use sha2::{Digest, Sha256};

/// The file that declares a template, in its directory.
pub const TEMPLATE_FILE: &str = "template.yaml";

/// The template cache's directory under flow's cache directory.
pub const CACHE_SUBDIR: &str = "templates";

/// Where the template cache under `cache_dir` keeps the template whose digest is
/// `sha256`: `<cache_dir>/templates/<sha256>` (a copy of the template's directory).
pub fn cached_template_dir(cache_dir: &std::path::Path, sha256: &str) -> std::path::PathBuf {
    cache_dir.join(CACHE_SUBDIR).join(sha256)
}

/// The signature file a template directory may hold; it is not part of the digest.
pub const SIGNATURE_FILE: &str = "template.sig";

/// The most bytes a template directory may hold.
const MAX_BYTES: u64 = 256 << 20;
/// The most files a template directory may hold.
const MAX_FILES: usize = 10_000;

/// The files of a template being listed, and their total size so far.
struct Listing<'a> {
    root: &'a Path,
    files: Vec<(String, String)>,
    bytes: u64,
}

/// The hex sha256 of the template directory `dir` (see the module documentation).
///
/// Errors (as a message naming the path) when `dir` is not a directory, when it holds a
/// symbolic link, a special file, or a file name that is not UTF-8 or holds a line
/// break, when it is too large, or when a file cannot be read.
pub fn template_digest(dir: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if !meta.is_dir() {
        return Err(format!(
            "{}: not a directory (a template is a directory holding template.yaml)",
            dir.display()
        ));
    }
    let mut listing = Listing {
        root: dir,
        files: Vec::new(),
        bytes: 0,
    };
    collect(dir, "", &mut listing)?;
    listing.files.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut digest = Sha256::new();
    for (path, sha256) in &listing.files {
        digest.update(sha256.as_bytes());
        digest.update(b"  ");
        digest.update(path.as_bytes());
        digest.update(b"\n");
    }
    Ok(hex::encode(digest.finalize()))
}

/// Adds `(relative path, hex sha256)` for every regular file under `dir`, whose path
/// relative to the template is `prefix` (empty at the top).
fn collect(dir: &Path, prefix: &str, listing: &mut Listing) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = entry.path();
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            return Err(format!(
                "{}: the file name is not UTF-8; a template's file names must be",
                path.display()
            ));
        };
        if name.contains(['\n', '\r']) {
            return Err(format!(
                "{}: a file name with a line break cannot be part of a template",
                path.display()
            ));
        }
        let relative = if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}/{name}")
        };
        let kind = entry
            .file_type()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if kind.is_symlink() {
            return Err(format!(
                "{}: is a symbolic link; a template holds only regular files and directories",
                path.display()
            ));
        } else if kind.is_dir() {
            collect(&path, &relative, listing)?;
        } else if kind.is_file() {
            if relative == SIGNATURE_FILE {
                continue;
            }
            let (sha256, bytes) =
                hash_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            listing.bytes += bytes;
            listing.files.push((relative, sha256));
            if listing.bytes > MAX_BYTES {
                return Err(format!(
                    "template {} holds more than 256 MiB",
                    listing.root.display()
                ));
            }
            if listing.files.len() > MAX_FILES {
                return Err(format!(
                    "template {} holds more than {MAX_FILES} files",
                    listing.root.display()
                ));
            }
        } else {
            return Err(format!(
                "{}: is not a regular file or directory (a socket, FIFO or device); a template holds only regular files and directories",
                path.display()
            ));
        }
    }
    Ok(())
}

/// The hex sha256 of a regular file, and its size.
fn hash_file(path: &Path) -> io::Result<(String, u64)> {
    let file = File::open(path)?;
    // It was a regular file when listed; refuse whatever replaced it since.
    if !file.metadata()?.is_file() {
        return Err(io::Error::other("no longer a regular file"));
    }
    let mut digest = Sha256::new();
    // Read at most one byte past the limit: enough to tell the template is too large.
    let bytes = io::copy(&mut io::Read::take(file, MAX_BYTES + 1), &mut digest)?;
    Ok((hex::encode(digest.finalize()), bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, relative: &str, text: &str) {
        let path = dir.join(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    fn template(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for (path, text) in files {
            write(dir.path(), path, text);
        }
        dir
    }

    #[test]
    fn is_the_sha256_of_the_sorted_file_lines() {
        let dir = template(&[
            ("template.yaml", "template: 1\n"),
            ("plugins/scan.wasm", "wasm"),
            ("b", ""),
        ]);
        let sha = |t: &str| hex::encode(Sha256::digest(t.as_bytes()));
        let expected = sha(&format!(
            "{}  b\n{}  plugins/scan.wasm\n{}  template.yaml\n",
            sha(""),
            sha("wasm"),
            sha("template: 1\n")
        ));
        assert_eq!(template_digest(dir.path()).expect("digest"), expected);
    }

    #[test]
    fn does_not_depend_on_creation_order_or_location() {
        let a = template(&[("template.yaml", "x"), ("z/1", "1"), ("a/2", "2")]);
        let b = template(&[("a/2", "2"), ("z/1", "1"), ("template.yaml", "x")]);
        assert_eq!(
            template_digest(a.path()).expect("a"),
            template_digest(b.path()).expect("b")
        );
        // Empty directories hold no file: they do not count.
        std::fs::create_dir(b.path().join("empty")).expect("mkdir");
        assert_eq!(
            template_digest(a.path()).expect("a"),
            template_digest(b.path()).expect("b")
        );
    }

    #[test]
    fn changes_with_any_file_its_name_or_a_new_file() {
        let dir = template(&[("template.yaml", "version: 1.0.0\n"), ("policy.yaml", "p")]);
        let before = template_digest(dir.path()).expect("digest");
        write(dir.path(), "policy.yaml", "q");
        let changed = template_digest(dir.path()).expect("digest");
        assert_ne!(before, changed);
        std::fs::rename(
            dir.path().join("policy.yaml"),
            dir.path().join("policy.yml"),
        )
        .expect("rename");
        let renamed = template_digest(dir.path()).expect("digest");
        assert_ne!(changed, renamed);
        write(dir.path(), "sub/new", "");
        assert_ne!(renamed, template_digest(dir.path()).expect("digest"));
    }

    #[test]
    fn the_signature_is_not_part_of_it() {
        let dir = template(&[("template.yaml", "x")]);
        let unsigned = template_digest(dir.path()).expect("digest");
        write(dir.path(), SIGNATURE_FILE, "{\"signatures\": []}");
        assert_eq!(template_digest(dir.path()).expect("digest"), unsigned);
        // Only the template's own signature: a file of that name deeper down counts.
        write(dir.path(), "sub/template.sig", "");
        assert_ne!(template_digest(dir.path()).expect("digest"), unsigned);
    }

    #[cfg(unix)]
    #[test]
    fn refuses_symbolic_links_and_special_files() {
        let dir = template(&[("template.yaml", "x")]);
        std::os::unix::fs::symlink("template.yaml", dir.path().join("link")).expect("symlink");
        let error = template_digest(dir.path()).expect_err("a symlink");
        assert!(
            error.contains("link") && error.contains("symbolic link"),
            "{error}"
        );
        std::fs::remove_file(dir.path().join("link")).expect("rm");

        let outside = tempfile::tempdir().expect("tempdir");
        std::os::unix::fs::symlink(outside.path(), dir.path().join("sub")).expect("symlink");
        assert!(
            template_digest(dir.path())
                .expect_err("a symlinked directory")
                .contains("symbolic link")
        );
        std::fs::remove_file(dir.path().join("sub")).expect("rm");

        let socket = std::os::unix::net::UnixListener::bind(dir.path().join("sock"));
        if socket.is_ok() {
            let error = template_digest(dir.path()).expect_err("a socket");
            assert!(error.contains("sock") && error.contains("not a regular file"));
        }
    }

    #[test]
    fn refuses_what_is_not_a_directory() {
        let dir = template(&[("template.yaml", "x")]);
        assert!(template_digest(&dir.path().join("template.yaml")).is_err());
        assert!(template_digest(&dir.path().join("missing")).is_err());
    }
}
