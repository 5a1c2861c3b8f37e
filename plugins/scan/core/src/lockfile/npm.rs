//! npm `package-lock.json` / `npm-shrinkwrap.json`.
//!
//! v2 and v3 lockfiles list every installed package in the `packages` map, keyed by its
//! install path (`node_modules/a/node_modules/b`); v1 lockfiles only have the nested
//! `dependencies` tree, which is walked instead.

use super::{Ecosystem, Lockfile, LockfileKind, Package, Source};
use crate::error::{Error, Result};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::Path;

const NPM_REGISTRY: &str = "https://registry.npmjs.org/";

pub(super) fn parse(path: &Path, text: &str) -> Result<Lockfile> {
    let root: Value = serde_json::from_str(text).map_err(|e| {
        Error::parse(
            path,
            Some(e.line()),
            format!("not a valid package-lock.json: {e}"),
        )
    })?;
    let Some(obj) = root.as_object() else {
        return Err(Error::parse(
            path,
            Some(1),
            "not a package-lock.json: the top level is not an object",
        ));
    };
    let version = match obj.get("lockfileVersion") {
        Some(Value::Number(n)) => {
            n.as_u64().filter(|v| (1..=3).contains(v)).ok_or_else(|| {
                Error::parse(path, None, format!("unsupported lockfileVersion {n}"))
            })? as u32
        }
        Some(other) => {
            return Err(Error::parse(
                path,
                None,
                format!("invalid lockfileVersion {other}"),
            ));
        }
        None => {
            return Err(Error::parse(
                path,
                Some(1),
                "not a package-lock.json: no `lockfileVersion`",
            ));
        }
    };
    let lines = object_key_lines(text);
    let mut packages = Vec::new();
    if let Some(map) = obj.get("packages") {
        let map = map
            .as_object()
            .ok_or_else(|| Error::parse(path, None, "`packages` is not an object"))?;
        for (key, entry) in map {
            let line = lines.get(&join(&["packages", key])).copied().unwrap_or(1);
            if let Some(p) = from_packages_entry(path, key, entry, line)? {
                packages.push(p);
            }
        }
    } else if let Some(deps) = obj.get("dependencies") {
        let mut prefix = Vec::new();
        walk_v1(path, deps, &mut prefix, &lines, &mut packages)?;
    }
    packages.sort_by_key(|p| p.line);
    Ok(Lockfile {
        path: path.to_path_buf(),
        kind: LockfileKind::Npm { version },
        packages,
    })
}

fn entry_obj<'a>(
    path: &Path,
    key: &str,
    entry: &'a Value,
    line: usize,
) -> Result<&'a Map<String, Value>> {
    entry
        .as_object()
        .ok_or_else(|| Error::parse(path, Some(line), format!("entry `{key}` is not an object")))
}

fn str_field<'a>(o: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    o.get(k).and_then(Value::as_str)
}

fn from_packages_entry(
    path: &Path,
    key: &str,
    entry: &Value,
    line: usize,
) -> Result<Option<Package>> {
    let o = entry_obj(path, key, entry, line)?;
    if key.is_empty() || o.get("link").and_then(Value::as_bool) == Some(true) {
        return Ok(None); // the root project, or a symlink to an entry listed separately
    }
    let in_node_modules = key.starts_with("node_modules/") || key.contains("/node_modules/");
    let name = match str_field(o, "name") {
        Some(n) => n.to_string(),
        None => match key.rfind("node_modules/") {
            Some(i) => key[i + "node_modules/".len()..].to_string(),
            None => key.rsplit('/').next().unwrap_or(key).to_string(),
        },
    };
    let Some(version) = str_field(o, "version") else {
        return Ok(None); // e.g. an optional dependency npm did not install
    };
    let source = if in_node_modules {
        source_of(str_field(o, "resolved"), version)
    } else {
        Source::Path {
            path: key.to_string(),
        }
    };
    Ok(Some(Package {
        ecosystem: Ecosystem::Npm,
        name,
        version: version.to_string(),
        source,
        line,
    }))
}

fn walk_v1(
    path: &Path,
    deps: &Value,
    prefix: &mut Vec<String>,
    lines: &HashMap<String, usize>,
    out: &mut Vec<Package>,
) -> Result<()> {
    let Some(map) = deps.as_object() else {
        return Err(Error::parse(path, None, "`dependencies` is not an object"));
    };
    for (name, entry) in map {
        prefix.push("dependencies".into());
        prefix.push(name.clone());
        let key_path: Vec<&str> = prefix.iter().map(String::as_str).collect();
        let line = lines.get(&join(&key_path)).copied().unwrap_or(1);
        let o = entry_obj(path, name, entry, line)?;
        if let Some(version) = str_field(o, "version") {
            // npm aliases: "version": "npm:real-name@1.2.3".
            let (real_name, real_version) = match version.strip_prefix("npm:").and_then(|s| {
                // Scoped names start with `@`: search from the second character.
                let at = s.get(1..)?.find('@')? + 1;
                Some((s[..at].to_string(), s[at + 1..].to_string()))
            }) {
                Some(pair) => pair,
                None => (name.clone(), version.to_string()),
            };
            let source = source_of(str_field(o, "resolved"), version);
            out.push(Package {
                ecosystem: Ecosystem::Npm,
                name: real_name,
                version: real_version,
                source,
                line,
            });
        }
        if let Some(nested) = o.get("dependencies") {
            walk_v1(path, nested, prefix, lines, out)?;
        }
        prefix.truncate(prefix.len() - 2);
    }
    Ok(())
}

fn source_of(resolved: Option<&str>, version: &str) -> Source {
    let git = |u: &str| u.starts_with("git+") || u.starts_with("git:") || u.starts_with("github:");
    if git(version) {
        return Source::Git {
            url: version.to_string(),
        };
    }
    if let Some(p) = version.strip_prefix("file:") {
        return Source::Path {
            path: p.to_string(),
        };
    }
    match resolved {
        Some(u) if git(u) => Source::Git { url: u.to_string() },
        Some(u) if u.starts_with("file:") => Source::Path {
            path: u["file:".len()..].to_string(),
        },
        Some(u) if u.starts_with("http://") || u.starts_with("https://") => Source::Registry {
            url: u.to_string(),
            default: u.starts_with(NPM_REGISTRY),
        },
        Some(u) => Source::Path {
            path: u.to_string(),
        },
        None => Source::Registry {
            url: String::new(),
            default: true,
        },
    }
}

fn join(parts: &[&str]) -> String {
    parts.join("\u{1f}")
}

/// Line of every object-valued key, by its path of keys (joined with U+001F).
///
/// A small structural JSON scanner: `serde_json` does not report positions of values, and
/// SARIF needs the line of each package entry. Runs only on text `serde_json` accepted.
fn object_key_lines(text: &str) -> HashMap<String, usize> {
    let bytes = text.as_bytes();
    let mut out = HashMap::new();
    // Stack of containers: Some(current key) for objects, None for arrays.
    let mut stack: Vec<Option<String>> = Vec::new();
    let mut path: Vec<String> = Vec::new();
    let mut line = 1;
    let mut pending_key: Option<(String, usize)> = None;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => line += 1,
            b'"' => {
                let start = i;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                let raw = &text[start..=i.min(bytes.len() - 1)];
                // A string directly followed by `:` is a key.
                let mut j = i + 1;
                while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                    j += 1;
                }
                if j < bytes.len() && bytes[j] == b':' && matches!(stack.last(), Some(Some(_))) {
                    let key: String = serde_json::from_str(raw).unwrap_or_default();
                    pending_key = Some((key, line));
                }
            }
            b'{' => {
                if let Some((key, key_line)) = pending_key.take() {
                    path.push(key);
                    out.insert(path.join("\u{1f}"), key_line);
                    stack.push(Some(String::new()));
                } else {
                    path.push(String::new());
                    stack.push(Some(String::new()));
                }
            }
            b'[' => {
                path.push(pending_key.take().map(|(k, _)| k).unwrap_or_default());
                stack.push(None);
            }
            b'}' | b']' => {
                pending_key = None;
                stack.pop();
                path.pop();
            }
            b',' => pending_key = None,
            _ => {}
        }
        i += 1;
    }
    // The top-level object contributes an empty first path element; strip it.
    out.into_iter()
        .filter_map(|(k, v)| k.strip_prefix('\u{1f}').map(|s| (s.to_string(), v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_lines() {
        let text = "{\n  \"packages\": {\n    \"\": {\"name\": \"x\"},\n    \"node_modules/a\": {\n      \"version\": \"1.0.0\"\n    },\n    \"node_modules/\\\"q\": {}\n  },\n  \"arr\": [{\"k\": {}}]\n}";
        let lines = object_key_lines(text);
        assert_eq!(lines.get(&join(&["packages"])), Some(&2));
        assert_eq!(lines.get(&join(&["packages", ""])), Some(&3));
        assert_eq!(lines.get(&join(&["packages", "node_modules/a"])), Some(&4));
        assert_eq!(
            lines.get(&join(&["packages", "node_modules/\"q"])),
            Some(&7)
        );
    }

    #[test]
    fn sources() {
        assert!(matches!(
            source_of(Some("https://registry.npmjs.org/a/-/a-1.0.0.tgz"), "1.0.0"),
            Source::Registry { default: true, .. }
        ));
        assert!(matches!(
            source_of(Some("https://npm.corp/a.tgz"), "1.0.0"),
            Source::Registry { default: false, .. }
        ));
        assert!(matches!(
            source_of(Some("git+ssh://git@github.com/a/b.git#abc"), "1.0.0"),
            Source::Git { .. }
        ));
        assert!(matches!(source_of(None, "file:../x"), Source::Path { .. }));
        assert!(matches!(source_of(None, "1.0.0"), Source::Registry { .. }));
    }
}
