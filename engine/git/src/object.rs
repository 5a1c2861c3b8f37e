//! Object types and parsing of commits, annotated tags and trees.

use std::fmt;

use crate::ObjectId;

/// The four kinds of git objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    /// A commit.
    Commit,
    /// A tree (directory listing).
    Tree,
    /// A blob (file content or symlink target).
    Blob,
    /// An annotated tag.
    Tag,
}

impl ObjectKind {
    /// The name git uses (`commit`, `tree`, `blob`, `tag`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Commit => "commit",
            Self::Tree => "tree",
            Self::Blob => "blob",
            Self::Tag => "tag",
        }
    }

    /// Parses a type name as found in loose object headers and tag objects.
    pub fn from_name(name: &[u8]) -> Option<Self> {
        match name {
            b"commit" => Some(Self::Commit),
            b"tree" => Some(Self::Tree),
            b"blob" => Some(Self::Blob),
            b"tag" => Some(Self::Tag),
            _ => None,
        }
    }

    /// The kind for a pack entry type number (1 to 4).
    pub(crate) fn from_pack_type(t: u8) -> Option<Self> {
        match t {
            1 => Some(Self::Commit),
            2 => Some(Self::Tree),
            3 => Some(Self::Blob),
            4 => Some(Self::Tag),
            _ => None,
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A decoded object: its kind and its content (without the `kind size\0` header).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Object {
    /// The object type.
    pub kind: ObjectKind,
    /// The content.
    pub data: Vec<u8>,
}

/// Reads the tree id from a commit (its mandatory first header line, `tree <hex>`).
pub fn parse_commit_tree(data: &[u8]) -> Option<ObjectId> {
    let rest = data.strip_prefix(b"tree ")?;
    let hex = rest.get(..ObjectId::HEX_LEN)?;
    if rest.get(ObjectId::HEX_LEN) != Some(&b'\n') {
        return None;
    }
    ObjectId::from_hex(std::str::from_utf8(hex).ok()?)
}

/// The parents of a commit, in order (the `parent <hex>` header lines).
pub fn commit_parents(data: &[u8]) -> impl Iterator<Item = ObjectId> + '_ {
    data.split(|&b| b == b'\n')
        .take_while(|line| !line.is_empty())
        .filter_map(|line| line.strip_prefix(b"parent "))
        .filter_map(|hex| ObjectId::from_hex(std::str::from_utf8(hex).ok()?))
}

/// What an annotated tag points to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TagTarget {
    /// The tagged object.
    pub id: ObjectId,
    /// Its type as the tag declares it.
    pub kind: ObjectKind,
}

/// Reads the `object` and `type` header lines of an annotated tag.
pub fn parse_tag(data: &[u8]) -> Option<TagTarget> {
    let mut id = None;
    let mut kind = None;
    for line in data.split(|&b| b == b'\n') {
        if line.is_empty() {
            break;
        }
        if let Some(hex) = line.strip_prefix(b"object ") {
            id = ObjectId::from_hex(std::str::from_utf8(hex).ok()?);
        } else if let Some(name) = line.strip_prefix(b"type ") {
            kind = ObjectKind::from_name(name);
        }
    }
    Some(TagTarget {
        id: id?,
        kind: kind?,
    })
}

/// The kind of a tree entry, from its mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryMode {
    /// `040000`: a subdirectory.
    Tree,
    /// `100644` (or a legacy regular mode such as `100664`): a regular file.
    Regular,
    /// `100755`: an executable file.
    Executable,
    /// `120000`: a symbolic link; the blob holds the target.
    Symlink,
    /// `160000`: a submodule commit.
    Gitlink,
}

impl EntryMode {
    /// Classifies a numeric mode the way git canonicalises it; `None` for unknown types.
    pub fn from_mode(mode: u32) -> Option<Self> {
        match mode & 0o170000 {
            0o040000 => Some(Self::Tree),
            0o100000 if mode & 0o100 != 0 => Some(Self::Executable),
            0o100000 => Some(Self::Regular),
            0o120000 => Some(Self::Symlink),
            0o160000 => Some(Self::Gitlink),
            _ => None,
        }
    }
}

/// One entry of a tree object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TreeEntry<'a> {
    /// The classified mode.
    pub mode: EntryMode,
    /// The file name (raw bytes; not validated).
    pub name: &'a [u8],
    /// The blob, tree or commit id.
    pub id: ObjectId,
}

/// Iterates over the entries of a tree object, in stored (git) order.
///
/// Yields an error message and stops at the first malformed entry.
pub fn tree_entries(data: &[u8]) -> TreeEntries<'_> {
    TreeEntries { data, pos: 0 }
}

/// Iterator returned by [`tree_entries`].
#[derive(Clone, Debug)]
pub struct TreeEntries<'a> {
    data: &'a [u8],
    pos: usize,
}

impl TreeEntries<'_> {
    /// Byte offset of the next entry.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for TreeEntries<'a> {
    type Item = Result<TreeEntry<'a>, String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.data.len() {
            return None;
        }
        match parse_entry(self.data, self.pos) {
            Ok((entry, next)) => {
                self.pos = next;
                Some(Ok(entry))
            }
            Err(e) => {
                self.pos = self.data.len();
                Some(Err(e))
            }
        }
    }
}

/// Parses the entry at `pos`: `<octal mode> <name>\0<20 bytes>`. Returns it and the next position.
fn parse_entry(data: &[u8], pos: usize) -> Result<(TreeEntry<'_>, usize), String> {
    let rest = data.get(pos..).unwrap_or_default();
    let space = rest
        .iter()
        .take(8)
        .position(|&b| b == b' ')
        .ok_or_else(|| format!("malformed mode at byte {pos}"))?;
    let mut mode = 0u32;
    for &c in &rest[..space] {
        if !(b'0'..=b'7').contains(&c) {
            return Err(format!("malformed mode at byte {pos}"));
        }
        mode = mode * 8 + u32::from(c - b'0');
    }
    if space == 0 {
        return Err(format!("empty mode at byte {pos}"));
    }
    let kind =
        EntryMode::from_mode(mode).ok_or_else(|| format!("unknown mode {mode:o} at byte {pos}"))?;
    let after = &rest[space + 1..];
    let nul = after
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| format!("unterminated name at byte {pos}"))?;
    let name = &after[..nul];
    let id = after
        .get(nul + 1..nul + 1 + ObjectId::LEN)
        .and_then(ObjectId::from_slice)
        .ok_or_else(|| format!("truncated entry at byte {pos}"))?;
    let next = pos + space + 1 + nul + 1 + ObjectId::LEN;
    Ok((
        TreeEntry {
            mode: kind,
            name,
            id,
        },
        next,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tree_entries() {
        let id = ObjectId::from_bytes([7; 20]);
        let mut data = b"100644 a.txt\0".to_vec();
        data.extend_from_slice(id.as_bytes());
        let first_len = data.len();
        data.extend_from_slice(b"40000 dir\0");
        data.extend_from_slice(id.as_bytes());
        let entries: Vec<_> = tree_entries(&data).collect::<Result<_, _>>().unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].mode, EntryMode::Regular);
        assert_eq!(entries[1].name, b"dir");
        assert_eq!(entries[1].mode, EntryMode::Tree);
        // Truncations at every length are errors, never panics.
        for n in 1..data.len() {
            let res: Result<Vec<_>, _> = tree_entries(&data[..n]).collect();
            if n != first_len {
                assert!(res.is_err(), "{n}");
            }
        }
        assert!(tree_entries(b"100644 x").next().unwrap().is_err());
        assert!(tree_entries(b"999 x\0").next().unwrap().is_err());
        assert!(tree_entries(b" x\0").next().unwrap().is_err());
    }

    #[test]
    fn parses_commit_and_tag() {
        let hex = "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391";
        let commit = format!("tree {hex}\nauthor x\n\nmsg");
        assert_eq!(parse_commit_tree(commit.as_bytes()).unwrap().to_hex(), hex);
        assert!(parse_commit_tree(b"tree e69d\n").is_none());
        let tag = format!("object {hex}\ntype commit\ntag v1\n\nmsg\n");
        let t = parse_tag(tag.as_bytes()).unwrap();
        assert_eq!((t.id.to_hex().as_str(), t.kind), (hex, ObjectKind::Commit));
        assert!(parse_tag(b"type commit\n").is_none());
    }
}
