//! Trees of files by content: what a step's workspace view held ([`Tree`]) and what the
//! step changed in it ([`Changes`]).
//!
//! Paths are relative, `/`-separated, without `.` or `..` components (they come from
//! walking a directory). A tree is always *consistent*: every ancestor of an entry is a
//! directory entry, and nothing lies below a file or a symlink. Applying changes keeps
//! it so, whatever order steps that never saw each other wrote in: a later change wins,
//! a file written below what an earlier change made a symlink replaces the symlink by
//! a directory (a tree never leads outside itself through a link it holds), and a file
//! written where an earlier change made a directory replaces the whole directory.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One entry of a tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Entry {
    /// A regular file: its content by sha256 (lowercase hex) in the object store, and
    /// whether it is executable.
    File {
        /// Lowercase hex sha256 of the content.
        sha256: String,
        /// Its size in bytes.
        size: u64,
        /// Whether anyone may execute it (mode 0755 rather than 0644).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        executable: bool,
        /// When it was last modified, in nanoseconds since the Unix epoch, kept so
        /// that tools that compare times (make, cargo) see the order steps left.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        modified_ns: Option<i64>,
    },
    /// A symbolic link and its target, as written (never followed by the host).
    Symlink {
        /// The link's target text.
        target: String,
    },
    /// A directory (listed so that empty directories are kept).
    Dir,
}

impl Entry {
    /// Whether this entry is a directory.
    pub fn is_dir(&self) -> bool {
        matches!(self, Entry::Dir)
    }
}

/// One change a step made: an entry written (created or replaced) or a path removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Change {
    /// The path now holds this entry.
    Put {
        /// What it holds.
        #[serde(flatten)]
        entry: Entry,
    },
    /// The path (and anything below it) is gone.
    Removed,
}

/// What one step changed in its view, by path, in path order.
pub type Changes = BTreeMap<String, Change>;

/// A consistent tree of files: path → entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    entries: BTreeMap<String, Entry>,
}

impl Tree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// The entries, parents before their children.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.entries.iter().map(|(p, e)| (p.as_str(), e))
    }

    /// The entry at `path`.
    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.entries.get(path)
    }

    /// How many entries it holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sets `path` to `entry`, keeping the tree consistent (see the module
    /// documentation). An invalid path (empty, absolute, with `.` or `..`
    /// components) is ignored and reported as `false`.
    pub fn put(&mut self, path: &str, entry: Entry) -> bool {
        if !valid_path(path) {
            return false;
        }
        // Every ancestor becomes a directory (a file or link in the way is replaced).
        let mut end = 0;
        while let Some(slash) = path[end..].find('/') {
            let parent = &path[..end + slash];
            match self.entries.get(parent) {
                Some(Entry::Dir) => {}
                Some(_) => {
                    self.remove_below(parent);
                    self.entries.insert(parent.to_owned(), Entry::Dir);
                }
                None => {
                    self.entries.insert(parent.to_owned(), Entry::Dir);
                }
            }
            end += slash + 1;
        }
        // Nothing stays below a file or a link; a directory keeps its contents.
        if !entry.is_dir() {
            self.remove_below(path);
        }
        self.entries.insert(path.to_owned(), entry);
        true
    }

    /// Removes `path` and everything below it.
    pub fn remove(&mut self, path: &str) {
        self.entries.remove(path);
        self.remove_below(path);
    }

    /// Applies one step's changes.
    pub fn apply(&mut self, changes: &Changes) {
        for (path, change) in changes {
            match change {
                Change::Put { entry } => {
                    self.put(path, entry.clone());
                }
                Change::Removed => self.remove(path),
            }
        }
    }

    /// What turns `self` into `after`: every entry that is new or different, and every
    /// path that is gone (only the topmost of a removed subtree).
    pub fn changes_to(&self, after: &Tree) -> Changes {
        let mut changes = Changes::new();
        for (path, entry) in &after.entries {
            if self.entries.get(path) != Some(entry) {
                changes.insert(
                    path.clone(),
                    Change::Put {
                        entry: entry.clone(),
                    },
                );
            }
        }
        let mut removed_top: Option<&str> = None;
        for path in self.entries.keys() {
            if after.entries.contains_key(path) {
                continue;
            }
            if let Some(top) = removed_top
                && is_below(path, top)
            {
                continue;
            }
            removed_top = Some(path);
            changes.insert(path.clone(), Change::Removed);
        }
        changes
    }

    /// The bytes its regular files hold.
    pub fn bytes(&self) -> u64 {
        self.entries
            .values()
            .map(|e| match e {
                Entry::File { size, .. } => *size,
                _ => 0,
            })
            .sum()
    }

    /// The regular files' digests, in path order.
    pub fn files(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().filter_map(|(p, e)| match e {
            Entry::File { sha256, .. } => Some((p.as_str(), sha256.as_str())),
            _ => None,
        })
    }

    fn remove_below(&mut self, path: &str) {
        let prefix = format!("{path}/");
        let below: Vec<String> = self
            .entries
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .map(|(p, _)| p.clone())
            .collect();
        for p in below {
            self.entries.remove(&p);
        }
    }
}

/// Whether `path` lies strictly below `dir`.
fn is_below(path: &str, dir: &str) -> bool {
    path.len() > dir.len() && path.starts_with(dir) && path.as_bytes()[dir.len()] == b'/'
}

/// A relative path of normal components only.
pub fn valid_path(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains('\0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(sha: &str) -> Entry {
        Entry::File {
            sha256: sha.into(),
            size: 1,
            executable: false,
            modified_ns: None,
        }
    }

    fn paths(tree: &Tree) -> Vec<String> {
        tree.entries()
            .map(|(p, e)| match e {
                Entry::Dir => format!("{p}/"),
                Entry::Symlink { target } => format!("{p} -> {target}"),
                Entry::File { sha256, .. } => format!("{p}={sha256}"),
            })
            .collect()
    }

    #[test]
    fn putting_a_file_makes_its_parents_directories() {
        let mut tree = Tree::new();
        assert!(tree.put("a/b/c", file("1")));
        assert_eq!(paths(&tree), ["a/", "a/b/", "a/b/c=1"]);
    }

    #[test]
    fn a_file_below_a_symlink_replaces_the_symlink_by_a_directory() {
        let mut tree = Tree::new();
        tree.put(
            "out",
            Entry::Symlink {
                target: "/etc".into(),
            },
        );
        tree.put("out/passwd", file("x"));
        assert_eq!(paths(&tree), ["out/", "out/passwd=x"]);
    }

    #[test]
    fn a_file_over_a_directory_removes_what_was_below() {
        let mut tree = Tree::new();
        tree.put("d/x", file("1"));
        tree.put("d/y/z", file("2"));
        tree.put("d", file("3"));
        assert_eq!(paths(&tree), ["d=3"]);
    }

    #[test]
    fn a_directory_over_a_directory_keeps_its_contents() {
        let mut tree = Tree::new();
        tree.put("d/x", file("1"));
        tree.put("d", Entry::Dir);
        assert_eq!(paths(&tree), ["d/", "d/x=1"]);
    }

    #[test]
    fn invalid_paths_are_refused() {
        let mut tree = Tree::new();
        for bad in ["", "/etc/passwd", "a/../b", "./a", "a//b", "a/"] {
            assert!(!tree.put(bad, file("1")), "{bad:?}");
        }
        assert!(tree.is_empty());
    }

    #[test]
    fn changes_list_new_different_and_removed_paths_and_apply_back() {
        let mut before = Tree::new();
        before.put("keep", file("1"));
        before.put("edit", file("1"));
        before.put("gone/a", file("1"));
        before.put("gone/b/c", file("1"));
        let mut after = Tree::new();
        after.put("keep", file("1"));
        after.put("edit", file("2"));
        after.put("new/x", file("3"));
        let changes = before.changes_to(&after);
        let listed: Vec<(&str, bool)> = changes
            .iter()
            .map(|(p, c)| (p.as_str(), matches!(c, Change::Removed)))
            .collect();
        assert_eq!(
            listed,
            [
                ("edit", false),
                ("gone", true),
                ("new", false),
                ("new/x", false)
            ]
        );
        let mut replay = before.clone();
        replay.apply(&changes);
        assert_eq!(replay, after);
    }

    #[test]
    fn changes_round_trip_through_json() {
        let mut changes = Changes::new();
        changes.insert("a".into(), Change::Removed);
        changes.insert(
            "b".into(),
            Change::Put {
                entry: Entry::File {
                    sha256: "ab".into(),
                    size: 3,
                    executable: true,
                    modified_ns: Some(1),
                },
            },
        );
        changes.insert(
            "c".into(),
            Change::Put {
                entry: Entry::Symlink { target: "b".into() },
            },
        );
        let text = serde_json::to_string(&changes).unwrap();
        assert_eq!(serde_json::from_str::<Changes>(&text).unwrap(), changes);
    }
}
