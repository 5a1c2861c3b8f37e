//! `*`, `?`, `[a-z]`, `[!x]` within a path segment, and `**` for any number of
//! segments: enough for artifact patterns such as `target/release/*.so` or
//! `dist/**/*.whl`.

use std::path::{Path, PathBuf};

/// A checked pattern, split into `/` segments.
#[derive(Debug, Clone)]
pub struct Pattern {
    text: String,
    segments: Vec<String>,
}

impl Pattern {
    /// Parse a relative pattern.
    pub fn new(text: &str) -> Result<Pattern, String> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err("an empty artifact pattern".into());
        }
        if trimmed.starts_with('/') {
            return Err(format!(
                "artifact pattern `{text}` must be relative to the build directory"
            ));
        }
        let segments: Vec<String> = trimmed
            .split('/')
            .filter(|s| !s.is_empty() && *s != ".")
            .map(str::to_owned)
            .collect();
        if segments.iter().any(|s| s == "..") {
            return Err(format!("artifact pattern `{text}` must not contain `..`"));
        }
        for segment in &segments {
            if segment.contains("**") && segment != "**" {
                return Err(format!(
                    "in `{text}`, `**` must be a whole path segment (`a/**/b`)"
                ));
            }
            check_classes(segment).map_err(|e| format!("in `{text}`: {e}"))?;
        }
        Ok(Pattern {
            text: trimmed.to_owned(),
            segments,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Every regular file under `base` the pattern matches, sorted. Symbolic
    /// links are not followed.
    pub fn find(&self, base: &Path) -> Result<Vec<PathBuf>, String> {
        let mut out = Vec::new();
        walk(base, PathBuf::new(), &self.segments, &mut out)?;
        out.sort();
        out.dedup();
        Ok(out)
    }
}

fn check_classes(segment: &str) -> Result<(), String> {
    let mut chars = segment.chars();
    while let Some(c) = chars.next() {
        if c == '[' && !chars.by_ref().any(|c| c == ']') {
            return Err(format!("unclosed `[` in `{segment}`"));
        }
    }
    Ok(())
}

fn walk(
    dir: &Path,
    rel: PathBuf,
    segments: &[String],
    out: &mut Vec<PathBuf>,
) -> Result<(), String> {
    let Some((first, rest)) = segments.split_first() else {
        return Ok(());
    };
    if first == "**" {
        // Zero segments here, or one more directory and still `**`.
        walk(dir, rel.clone(), rest, out)?;
        for (name, path, is_dir, _) in entries(dir)? {
            if is_dir {
                walk(&path, rel.join(&name), segments, out)?;
            }
        }
        return Ok(());
    }
    let literal = !first.contains(['*', '?', '[']);
    let candidates = if literal {
        let path = dir.join(first);
        match std::fs::symlink_metadata(&path) {
            Ok(meta) => vec![(first.clone(), path, meta.is_dir(), meta.is_file())],
            Err(_) => Vec::new(),
        }
    } else {
        entries(dir)?
            .into_iter()
            .filter(|(name, ..)| matches(first, name))
            .collect()
    };
    for (name, path, is_dir, is_file) in candidates {
        if rest.is_empty() {
            if is_file {
                out.push(rel.join(&name));
            }
        } else if is_dir {
            walk(&path, rel.join(&name), rest, out)?;
        }
    }
    Ok(())
}

/// (name, path, is a directory, is a regular file), not following links.
fn entries(dir: &Path) -> Result<Vec<(String, PathBuf, bool, bool)>, String> {
    let read = match std::fs::read_dir(dir) {
        Ok(read) => read,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot list {}: {e}", dir.display())),
    };
    let mut out = Vec::new();
    for entry in read {
        let entry = entry.map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let file_type = entry
            .file_type()
            .map_err(|e| format!("{}: {e}", entry.path().display()))?;
        out.push((name, entry.path(), file_type.is_dir(), file_type.is_file()));
    }
    Ok(out)
}

/// Whether one segment pattern matches one name. A leading `.` must be matched
/// literally, as in shells.
pub fn matches(pattern: &str, name: &str) -> bool {
    if name.starts_with('.') && !pattern.starts_with('.') {
        return false;
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    match_from(&p, &n)
}

fn match_from(p: &[char], n: &[char]) -> bool {
    // Iterative matching with backtracking to the last `*`.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ni));
                    pi += 1;
                    continue;
                }
                '?' => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                '[' => {
                    if let Some((matched, len)) = class(&p[pi..], n[ni])
                        && matched
                    {
                        pi += len;
                        ni += 1;
                        continue;
                    }
                }
                c if c == n[ni] => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, sn)) => {
                pi = sp + 1;
                ni = sn + 1;
                star = Some((sp, sn + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Match `c` against the class at the start of `p` (`[...]`): (matched, length).
fn class(p: &[char], c: char) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(p.get(i), Some('!') | Some('^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < p.len() {
        if p[i] == ']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|&e| e != ']') {
            if p[i] <= c && c <= p[i + 2] {
                matched = true;
            }
            i += 3;
        } else {
            if p[i] == c {
                matched = true;
            }
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_patterns() {
        assert!(matches("*.so", "libx.so"));
        assert!(!matches("*.so", "libx.so.1"));
        assert!(matches("lib?.a", "libz.a"));
        assert!(matches("[a-c]x", "bx"));
        assert!(!matches("[!a-c]x", "bx"));
        assert!(matches("*", "hello"));
        assert!(!matches("*", ".hidden"));
        assert!(matches(".*", ".hidden"));
        assert!(matches("a*b*c", "axxbyyc"));
        assert!(!matches("a*b*c", "axxbyy"));
        assert!(matches("hello", "hello"));
    }

    #[test]
    fn finds_files_through_double_star() {
        let dir = std::env::temp_dir().join(format!("flow-glob-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("target/release/deps")).unwrap();
        std::fs::write(dir.join("target/release/app"), "x").unwrap();
        std::fs::write(dir.join("target/release/deps/libx.rlib"), "x").unwrap();
        std::fs::write(dir.join("target/release/deps/liby.rlib"), "x").unwrap();
        let found = Pattern::new("target/**/*.rlib")
            .unwrap()
            .find(&dir)
            .unwrap();
        assert_eq!(
            found,
            vec![
                PathBuf::from("target/release/deps/libx.rlib"),
                PathBuf::from("target/release/deps/liby.rlib")
            ]
        );
        let found = Pattern::new("target/release/app")
            .unwrap()
            .find(&dir)
            .unwrap();
        assert_eq!(found, vec![PathBuf::from("target/release/app")]);
        assert!(
            Pattern::new("target/release/deps")
                .unwrap()
                .find(&dir)
                .unwrap()
                .is_empty(),
            "directories are not artifacts"
        );
        assert!(Pattern::new("../x").is_err());
        assert!(Pattern::new("/abs").is_err());
        assert!(Pattern::new("a**").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
