//! The digest of a template: the sha256 of the lines `<file sha256>  <relative path>\n`,
//! sorted by path, over every regular file of its directory except `template.sig`.

use std::path::Path;

use sha2::{Digest, Sha256};

/// The file holding a template's signature, left out of its digest.
pub const SIGNATURE_FILE: &str = "template.sig";

/// The most bytes a template directory may hold.
const MAX_BYTES: u64 = 256 << 20;
/// The most files a template directory may hold.
const MAX_FILES: usize = 10_000;

/// The hex sha256 of the template in `dir`. Symlinks and special files are refused.
pub fn template_digest(dir: &Path) -> Result<String, String> {
    let mut files = Vec::new();
    collect(dir, dir, &mut files)?;
    files.sort();
    let mut total = 0u64;
    let mut listing = String::new();
    for relative in &files {
        let path = dir.join(relative);
        let bytes =
            std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        total += bytes.len() as u64;
        if total > MAX_BYTES {
            return Err(format!(
                "template {} holds more than 256 MiB",
                dir.display()
            ));
        }
        listing.push_str(&format!(
            "{}  {relative}\n",
            hex::encode(Sha256::digest(&bytes))
        ));
    }
    Ok(hex::encode(Sha256::digest(listing.as_bytes())))
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<(), String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        let path = entry.path();
        let kind = entry
            .file_type()
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let relative = path
            .strip_prefix(root)
            .map_err(|_| format!("{} is outside {}", path.display(), root.display()))?;
        let Some(relative) = relative.to_str().map(|r| r.replace('\\', "/")) else {
            return Err(format!(
                "{}: file names in a template must be UTF-8",
                path.display()
            ));
        };
        if kind.is_symlink() {
            return Err(format!(
                "{} is a symlink: a template holds regular files only",
                path.display()
            ));
        } else if kind.is_dir() {
            collect(root, &path, out)?;
        } else if kind.is_file() {
            if relative != SIGNATURE_FILE {
                out.push(relative);
            }
        } else {
            return Err(format!(
                "{} is not a regular file: a template holds regular files only",
                path.display()
            ));
        }
        if out.len() > MAX_FILES {
            return Err(format!(
                "template {} holds more than {MAX_FILES} files",
                root.display()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers_every_file_but_the_signature() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("template.yaml"), "a").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/x.txt"), "b").unwrap();
        let first = template_digest(dir.path()).unwrap();
        std::fs::write(dir.path().join(SIGNATURE_FILE), "sig").unwrap();
        assert_eq!(template_digest(dir.path()).unwrap(), first);
        std::fs::write(dir.path().join("sub/x.txt"), "c").unwrap();
        assert_ne!(template_digest(dir.path()).unwrap(), first);
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("x.txt", dir.path().join("sub/link")).unwrap();
            let error = template_digest(dir.path()).unwrap_err();
            assert!(error.contains("symlink"), "{error}");
        }
    }
}
