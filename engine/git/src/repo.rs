//! Opening repositories and resolving revisions.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result, io_err};
use crate::object::{parse_commit_tree, parse_tag};
use crate::odb::{Data, Odb};
use crate::oid::Prefix;
use crate::refs::{Lookup, Refs, is_valid_ref_name};
use crate::{Object, ObjectId, ObjectKind};

/// Tuning knobs for [`Repository::open_with`].
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// Byte budget of the cache of decompressed delta bases. Default: 64 MiB.
    pub delta_cache_bytes: usize,
    /// Packs up to this size are read into memory whole when the repository is opened; larger
    /// ones are read one entry at a time (positioned reads). Default: 32 MiB.
    pub whole_pack_limit: u64,
    /// Objects (and deltas) declaring a larger size are rejected as corrupt. Default: 1 GiB.
    pub max_object_size: u64,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            delta_cache_bytes: 64 << 20,
            whole_pack_limit: 32 << 20,
            max_object_size: 1 << 30,
        }
    }
}

/// A revision resolved to a commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The commit (annotated tags are peeled).
    pub commit: ObjectId,
    /// The commit's tree.
    pub tree: ObjectId,
    /// The full ref name (e.g. `refs/heads/main`) when the revision named a ref; `None` for object
    /// ids and a detached HEAD.
    pub ref_name: Option<String>,
}

/// A git repository opened for reading.
///
/// Not thread-safe (`!Sync`): it keeps a delta base cache and file handles in interior-mutable
/// state. Open one per thread if needed.
pub struct Repository {
    git_dir: PathBuf,
    common_dir: PathBuf,
    work_tree: Option<PathBuf>,
    refs: Refs,
    pub(crate) odb: Odb,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("git_dir", &self.git_dir)
            .field("work_tree", &self.work_tree)
            .field("packs", &self.odb.pack_count())
            .finish_non_exhaustive()
    }
}

impl Repository {
    /// Opens the repository at `path` with default options: a work tree (containing a `.git`
    /// directory or a `.git` file with `gitdir: <path>`), or a git directory itself (bare
    /// repositories, `.git` directories).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, OpenOptions::default())
    }

    /// Like [`Repository::open`], with explicit options.
    pub fn open_with(path: impl AsRef<Path>, options: OpenOptions) -> Result<Self> {
        let path = path.as_ref();
        let dot_git = path.join(".git");
        let (git_dir, work_tree) = match std::fs::metadata(&dot_git) {
            Ok(m) if m.is_dir() => (dot_git, Some(path.to_owned())),
            Ok(m) if m.is_file() => (read_gitdir_file(&dot_git)?, Some(path.to_owned())),
            _ if is_git_dir(path) => (path.to_owned(), None),
            _ => return Err(Error::NotARepository(path.to_owned())),
        };
        if !is_git_dir(&git_dir) {
            return Err(Error::NotARepository(path.to_owned()));
        }
        let common_dir = match std::fs::read_to_string(git_dir.join("commondir")) {
            Ok(text) => git_dir.join(text.trim_end_matches(['\n', '\r'])),
            Err(_) => git_dir.clone(),
        };
        let objects = common_dir.join("objects");
        if !objects.is_dir() {
            return Err(Error::NotARepository(path.to_owned()));
        }
        let refs = Refs::open(&git_dir, &common_dir)?;
        let odb = Odb::open(&objects, &options)?;
        Ok(Self {
            git_dir,
            common_dir,
            work_tree,
            refs,
            odb,
        })
    }

    /// The git directory (for a linked work tree, its private directory under `worktrees/`).
    pub fn git_dir(&self) -> &Path {
        &self.git_dir
    }

    /// The directory holding objects and shared refs (the git dir except for linked work trees).
    pub fn common_dir(&self) -> &Path {
        &self.common_dir
    }

    /// The work tree, if the repository was opened through one.
    pub fn work_tree(&self) -> Option<&Path> {
        self.work_tree.as_deref()
    }

    /// Whether the repository was opened without a work tree.
    pub fn is_bare(&self) -> bool {
        self.work_tree.is_none()
    }

    /// Reads an object.
    pub fn read_object(&self, id: &ObjectId) -> Result<Object> {
        let (kind, data) = self.odb.read(id)?;
        Ok(Object {
            kind,
            data: data.into_vec(),
        })
    }

    /// Reads an object without copying it out of the delta base cache.
    pub(crate) fn read_raw(&self, id: &ObjectId) -> Result<(ObjectKind, Data)> {
        self.odb.read(id)
    }

    /// Whether the object exists.
    pub fn contains(&self, id: &ObjectId) -> Result<bool> {
        self.odb.contains(id)
    }

    /// The object a ref points to (full name, e.g. `refs/heads/main` or `HEAD`), following
    /// symbolic refs; `None` if it does not exist (or is unborn).
    pub fn find_reference(&self, name: &str) -> Result<Option<ObjectId>> {
        Ok(match self.refs.lookup(name)? {
            Lookup::Found { id, .. } => Some(id),
            _ => None,
        })
    }

    /// Full names of the refs under `prefix` (e.g. `refs/heads/`, `refs/tags/`, or `refs/`).
    pub fn references(&self, prefix: &str) -> Vec<String> {
        self.refs.names(prefix)
    }

    /// Resolves a revision to a commit; `None` means `HEAD`.
    ///
    /// Accepted: `HEAD` (or `@`), a full 40-digit id, a full ref name, a short ref name looked up
    /// like git does (`<rev>`, `refs/<rev>`, `refs/tags/<rev>`, `refs/heads/<rev>`,
    /// `refs/remotes/<rev>`, `refs/remotes/<rev>/HEAD`), and a unique abbreviated id of at least 4
    /// digits, each optionally followed by `~N`/`^N` ancestry steps. A trailing `^{}` or
    /// `^{commit}` is allowed. Annotated tags are peeled (also tags of
    /// tags).
    pub fn resolve(&self, rev: Option<&str>) -> Result<Resolved> {
        let given = rev.unwrap_or("HEAD");
        let mut rev = given.trim();
        for suffix in ["^{}", "^{commit}"] {
            if let Some(r) = rev.strip_suffix(suffix) {
                rev = r;
            }
        }
        // Ancestry suffixes: `~N` (N-th first-parent ancestor) and `^N` (N-th parent).
        let (base, nav) = match rev.find(['~', '^']) {
            Some(i) if i > 0 => (&rev[..i], Some(&rev[i..])),
            _ => (rev, None),
        };
        if let Some(nav) = nav {
            let start = self.resolve(Some(base))?;
            return self.navigate(given, start.commit, nav);
        }
        if rev == "@" {
            rev = "HEAD";
        }
        if rev.is_empty() {
            return Err(Error::InvalidRev {
                rev: given.into(),
                msg: "empty revision".into(),
            });
        }
        if let Some(id) = ObjectId::from_hex(rev) {
            return self.peel_to_commit(given, id, None);
        }
        let candidates = [
            rev.to_owned(),
            format!("refs/{rev}"),
            format!("refs/tags/{rev}"),
            format!("refs/heads/{rev}"),
            format!("refs/remotes/{rev}"),
            format!("refs/remotes/{rev}/HEAD"),
        ];
        for (i, name) in candidates.iter().enumerate() {
            // Outside refs/, only all-caps names such as HEAD or FETCH_HEAD are refs.
            if i == 0
                && !name.starts_with("refs/")
                && !name.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
            {
                continue;
            }
            if !is_valid_ref_name(name) {
                continue;
            }
            match self.refs.lookup(name)? {
                Lookup::Found { name, id, peeled } => {
                    let ref_name = (name != "HEAD").then_some(name);
                    return self.peel_to_commit(given, peeled.unwrap_or(id), ref_name);
                }
                Lookup::Unborn { target } => {
                    return Err(Error::InvalidRev {
                        rev: given.into(),
                        msg: format!("{name} points to {target}, which has no commits yet"),
                    });
                }
                Lookup::Missing => {}
            }
        }
        if rev.len() >= 4
            && let Some(prefix) = Prefix::parse(rev)
        {
            return self.resolve_prefix(given, &prefix);
        }
        Err(Error::RevNotFound {
            rev: given.into(),
            suggestions: self.suggestions(rev),
        })
    }

    /// Applies `~N` / `^N` steps to `commit`.
    fn navigate(&self, given: &str, mut commit: ObjectId, nav: &str) -> Result<Resolved> {
        let bad = |msg: String| Error::InvalidRev {
            rev: given.into(),
            msg,
        };
        let mut rest = nav;
        while let Some(op) = rest.chars().next() {
            rest = &rest[1..];
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            let n: usize = if digits == 0 {
                1
            } else {
                rest[..digits]
                    .parse()
                    .map_err(|_| bad(format!("bad number after {op}")))?
            };
            rest = &rest[digits..];
            let (steps, parent) = match op {
                '~' => (n, 1),
                '^' => (usize::from(n > 0), n),
                _ => return Err(bad(format!("unexpected {op:?}"))),
            };
            for _ in 0..steps {
                let (kind, data) = self.odb.read(&commit)?;
                if kind != ObjectKind::Commit {
                    return Err(bad(format!("{commit} is a {kind}, not a commit")));
                }
                commit = crate::object::commit_parents(&data)
                    .nth(parent - 1)
                    .ok_or_else(|| bad(format!("commit {commit} has no parent {parent}")))?;
            }
        }
        self.peel_to_commit(given, commit, None)
    }

    /// Resolves an abbreviated id; if several objects match but exactly one is a commit or tag,
    /// that one wins (as with git's commit-ish disambiguation).
    fn resolve_prefix(&self, given: &str, prefix: &Prefix) -> Result<Resolved> {
        debug_assert!(prefix.len() >= 4);
        let ids = self.odb.find_prefix(prefix)?;
        match ids.as_slice() {
            [] => Err(Error::RevNotFound {
                rev: given.into(),
                suggestions: self.suggestions(given),
            }),
            [id] => self.peel_to_commit(given, *id, None),
            _ => {
                let mut described = Vec::new();
                let mut commitish = Vec::new();
                for id in &ids {
                    let kind = self.odb.read(id).map(|(k, _)| k.as_str()).unwrap_or("?");
                    if kind == "commit" || kind == "tag" {
                        commitish.push(*id);
                    }
                    described.push(format!("{id} {kind}"));
                }
                if let [id] = commitish.as_slice() {
                    return self.peel_to_commit(given, *id, None);
                }
                Err(Error::Ambiguous {
                    prefix: given.into(),
                    candidates: described,
                })
            }
        }
    }

    /// Follows annotated tags from `id` to a commit and reads its tree.
    fn peel_to_commit(
        &self,
        given: &str,
        id: ObjectId,
        ref_name: Option<String>,
    ) -> Result<Resolved> {
        let mut id = id;
        for _ in 0..32 {
            let (kind, data) = match self.odb.read(&id) {
                Err(Error::ObjectNotFound(missing)) if missing == id => {
                    return Err(Error::InvalidRev {
                        rev: given.into(),
                        msg: format!("object {id} does not exist"),
                    });
                }
                other => other?,
            };
            match kind {
                ObjectKind::Commit => {
                    let tree = parse_commit_tree(&data).ok_or_else(|| Error::CorruptObject {
                        id,
                        kind,
                        msg: "missing or malformed tree line".into(),
                    })?;
                    return Ok(Resolved {
                        commit: id,
                        tree,
                        ref_name,
                    });
                }
                ObjectKind::Tag => {
                    let target = parse_tag(&data).ok_or_else(|| Error::CorruptObject {
                        id,
                        kind,
                        msg: "missing or malformed object/type lines".into(),
                    })?;
                    id = target.id;
                }
                other => {
                    return Err(Error::InvalidRev {
                        rev: given.into(),
                        msg: format!("{id} is a {other}, not a commit"),
                    });
                }
            }
        }
        Err(Error::InvalidRev {
            rev: given.into(),
            msg: "tags nest too deeply".into(),
        })
    }

    /// Up to five branch, tag and remote branch names close to `rev`.
    fn suggestions(&self, rev: &str) -> Vec<String> {
        let mut scored: Vec<(usize, String)> = Vec::new();
        for prefix in ["refs/heads/", "refs/tags/", "refs/remotes/"] {
            for full in self.refs.names(prefix) {
                let short = full.strip_prefix(prefix).unwrap_or(&full).to_owned();
                let dist = edit_distance(rev, &short);
                let close = dist <= (rev.chars().count() / 3).max(2)
                    || (rev.len() >= 3 && (short.contains(rev) || rev.contains(short.as_str())));
                if close && !scored.iter().any(|(_, s)| *s == short) {
                    scored.push((dist, short));
                }
            }
        }
        scored.sort();
        scored.into_iter().take(5).map(|(_, s)| s).collect()
    }
}

/// Whether `dir` looks like a git directory.
fn is_git_dir(dir: &Path) -> bool {
    dir.join("HEAD").is_file() && (dir.join("objects").is_dir() || dir.join("commondir").is_file())
}

/// Reads a `.git` file (`gitdir: <path>`, relative to the file's directory).
fn read_gitdir_file(file: &Path) -> Result<PathBuf> {
    let text = std::fs::read_to_string(file).map_err(io_err(file))?;
    let target = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("gitdir:"))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Error::Corrupt {
            path: file.to_owned(),
            msg: "expected `gitdir: <path>`".into(),
        })?;
    let base = file.parent().unwrap_or(Path::new("."));
    Ok(base.join(target))
}

/// Levenshtein distance (by characters).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    #[test]
    fn edit_distance() {
        assert_eq!(super::edit_distance("main", "mian"), 2);
        assert_eq!(super::edit_distance("feature", "featur"), 1);
        assert_eq!(super::edit_distance("", "abc"), 3);
    }
}
