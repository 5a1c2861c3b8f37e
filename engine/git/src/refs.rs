//! References: loose ref files, `packed-refs`, symbolic refs.

use std::io;
use std::path::{Path, PathBuf};

use crate::ObjectId;
use crate::error::{Error, Result, io_err};

/// Deepest chain of symbolic refs followed.
const MAX_SYMREF_DEPTH: usize = 10;

/// The value stored in a ref.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RefValue {
    /// Points directly to an object; `peeled` is the fully peeled target if `packed-refs` knows it.
    Direct {
        id: ObjectId,
        peeled: Option<ObjectId>,
    },
    /// `ref: <name>`.
    Symbolic(String),
}

/// What following a ref leads to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// The final ref name, its object, and its peeled object if known.
    Found {
        name: String,
        id: ObjectId,
        peeled: Option<ObjectId>,
    },
    /// A symbolic ref to a ref that does not exist (e.g. HEAD of an empty repository).
    Unborn { target: String },
    /// No such ref.
    Missing,
}

struct PackedRef {
    name: String,
    id: ObjectId,
    peeled: Option<ObjectId>,
}

/// The refs of a repository (per-worktree `git_dir` and shared `common_dir`).
pub(crate) struct Refs {
    git_dir: PathBuf,
    common_dir: PathBuf,
    /// Sorted by name.
    packed: Vec<PackedRef>,
}

impl Refs {
    pub(crate) fn open(git_dir: &Path, common_dir: &Path) -> Result<Self> {
        let path = common_dir.join("packed-refs");
        let packed = match std::fs::read(&path) {
            Ok(text) => parse_packed(&text).map_err(|msg| Error::Corrupt {
                path: path.clone(),
                msg,
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io_err(path)(e)),
        };
        Ok(Self {
            git_dir: git_dir.to_owned(),
            common_dir: common_dir.to_owned(),
            packed,
        })
    }

    /// Where the loose file of ref `name` lives: per-worktree refs in the git dir, the rest in
    /// the common dir.
    fn loose_path(&self, name: &str) -> PathBuf {
        let per_worktree = !name.starts_with("refs/")
            || ["refs/worktree/", "refs/bisect/", "refs/rewritten/"]
                .iter()
                .any(|p| name.starts_with(p));
        let base = if per_worktree {
            &self.git_dir
        } else {
            &self.common_dir
        };
        base.join(name)
    }

    /// Reads one ref without following symbolic refs. `name` must be a valid ref name.
    pub(crate) fn read(&self, name: &str) -> Result<Option<RefValue>> {
        let path = self.loose_path(name);
        match std::fs::read(&path) {
            Ok(content) => {
                return parse_loose(&content)
                    .map(Some)
                    .map_err(|msg| Error::Corrupt {
                        path: path.clone(),
                        msg,
                    });
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound
                        | io::ErrorKind::NotADirectory
                        | io::ErrorKind::IsADirectory
                ) || path.is_dir() => {}
            Err(e) => return Err(io_err(path)(e)),
        }
        Ok(self
            .packed
            .binary_search_by(|r| r.name.as_str().cmp(name))
            .ok()
            .and_then(|i| self.packed.get(i))
            .map(|r| RefValue::Direct {
                id: r.id,
                peeled: r.peeled,
            }))
    }

    /// Follows `name` through symbolic refs to an object.
    pub(crate) fn lookup(&self, name: &str) -> Result<Lookup> {
        let mut name = name.to_owned();
        for _ in 0..MAX_SYMREF_DEPTH {
            if !is_valid_ref_name(&name) {
                return Ok(Lookup::Missing);
            }
            match self.read(&name)? {
                Some(RefValue::Direct { id, peeled }) => {
                    return Ok(Lookup::Found { name, id, peeled });
                }
                Some(RefValue::Symbolic(target)) => {
                    if self.read(&target)?.is_none() {
                        return Ok(Lookup::Unborn { target });
                    }
                    name = target;
                }
                None => return Ok(Lookup::Missing),
            }
        }
        Err(Error::Corrupt {
            path: self.loose_path(&name),
            msg: "symbolic refs nest too deeply (cycle?)".into(),
        })
    }

    /// Names of all refs under `prefix` (e.g. `refs/heads/`), loose and packed, sorted.
    pub(crate) fn names(&self, prefix: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .packed
            .iter()
            .filter(|r| r.name.starts_with(prefix))
            .map(|r| r.name.clone())
            .collect();
        let dir = self.common_dir.join(prefix.trim_end_matches('/'));
        walk_loose(&dir, prefix.trim_end_matches('/'), &mut out, 0);
        out.sort();
        out.dedup();
        out
    }
}

fn walk_loose(dir: &Path, name: &str, out: &mut Vec<String>, depth: usize) {
    if depth > 32 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Some(file) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let full = format!("{name}/{file}");
        match entry.file_type() {
            Ok(t) if t.is_dir() => walk_loose(&entry.path(), &full, out, depth + 1),
            Ok(_) if is_valid_ref_name(&full) => out.push(full),
            _ => {}
        }
    }
}

/// Parses a loose ref file: 40 hex digits, or `ref: <name>`.
fn parse_loose(content: &[u8]) -> Result<RefValue, String> {
    let text = std::str::from_utf8(content).map_err(|_| "ref is not UTF-8")?;
    let text = text.trim_end();
    if let Some(target) = text.strip_prefix("ref:") {
        let target = target.trim();
        if !is_valid_ref_name(target) {
            return Err(format!("symbolic ref to invalid name {target:?}"));
        }
        return Ok(RefValue::Symbolic(target.to_owned()));
    }
    let hex = text.get(..ObjectId::HEX_LEN).unwrap_or(text);
    ObjectId::from_hex(hex)
        .map(|id| RefValue::Direct { id, peeled: None })
        .ok_or_else(|| format!("malformed ref content {text:?}"))
}

/// Parses `packed-refs`: `<hex> <name>` lines, each optionally followed by `^<hex>` (peeled).
fn parse_packed(content: &[u8]) -> Result<Vec<PackedRef>, String> {
    let text = std::str::from_utf8(content).map_err(|_| "packed-refs is not UTF-8")?;
    let mut out: Vec<PackedRef> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(hex) = line.strip_prefix('^') {
            let peeled = ObjectId::from_hex(hex)
                .ok_or_else(|| format!("malformed peeled line {}", n + 1))?;
            let last = out
                .last_mut()
                .ok_or_else(|| format!("peeled line {} follows no ref", n + 1))?;
            last.peeled = Some(peeled);
            continue;
        }
        let (hex, name) = line
            .split_once(' ')
            .ok_or_else(|| format!("malformed line {}", n + 1))?;
        let id =
            ObjectId::from_hex(hex).ok_or_else(|| format!("malformed id on line {}", n + 1))?;
        out.push(PackedRef {
            name: name.to_owned(),
            id,
            peeled: None,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Whether `name` is a well-formed ref name (a subset of `git check-ref-format` that in
/// particular keeps names from escaping the git directory).
pub(crate) fn is_valid_ref_name(name: &str) -> bool {
    if name.is_empty()
        || name.starts_with('/')
        || name.ends_with('/')
        || name.ends_with('.')
        || name.contains("..")
        || name.contains("@{")
        || name.contains("//")
        || name == "@"
    {
        return false;
    }
    if name
        .bytes()
        .any(|b| b < 0x20 || b == 0x7f || b" ~^:?*[\\".contains(&b))
    {
        return false;
    }
    name.split('/')
        .all(|c| !c.is_empty() && !c.starts_with('.') && !c.ends_with(".lock"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ref_names() {
        for ok in ["HEAD", "refs/heads/main", "refs/tags/v1.0", "feature/x-y"] {
            assert!(is_valid_ref_name(ok), "{ok}");
        }
        for bad in [
            "", "/x", "x/", "a/../b", "..", "a//b", "a/.b", "x.lock", "a b", "a~1", "a^", "a:b",
            "a\\b", "a@{1}", "@", "x.",
        ] {
            assert!(!is_valid_ref_name(bad), "{bad}");
        }
    }

    #[test]
    fn packed_refs() {
        let hex = "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391";
        let hex2 = "0000000000000000000000000000000000000001";
        let text = format!(
            "# pack-refs with: peeled fully-peeled sorted \n{hex} refs/tags/v1\n^{hex2}\n{hex} refs/heads/main\n"
        );
        let refs = parse_packed(text.as_bytes()).unwrap();
        assert_eq!(refs.len(), 2);
        assert_eq!(refs[0].name, "refs/heads/main");
        assert_eq!(refs[1].peeled.unwrap().to_hex(), hex2);
        assert!(parse_packed(b"^abc\n").is_err());
        assert!(parse_packed(b"xyz refs/heads/a\n").is_err());
        assert!(parse_loose(b"ref: refs/heads/main\n").is_ok());
        assert!(parse_loose(b"ref: ../../etc\n").is_err());
        assert!(parse_loose(b"nonsense\n").is_err());
    }
}
