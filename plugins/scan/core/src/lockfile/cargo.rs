//! `Cargo.lock` (format versions 1 to 4).

use super::{Ecosystem, Lockfile, LockfileKind, Package, Source};
use crate::error::{Error, Result, toml_error};
use serde::Deserialize;
use std::path::Path;

const CRATES_IO_GIT: &str = "https://github.com/rust-lang/crates.io-index";
const CRATES_IO_SPARSE: &str = "https://index.crates.io/";

#[derive(Deserialize)]
struct RawLock {
    version: Option<toml::Value>,
    #[serde(default)]
    package: Vec<RawPackage>,
    metadata: Option<toml::Table>,
    root: Option<toml::Table>,
}

#[derive(Deserialize)]
struct RawPackage {
    name: String,
    version: String,
    source: Option<String>,
}

pub(super) fn parse(path: &Path, text: &str) -> Result<Lockfile> {
    let raw: RawLock = toml::from_str(text).map_err(|e| {
        let (line, msg) = toml_error(text, &e, 0);
        Error::parse(path, line, format!("not a valid Cargo.lock: {msg}"))
    })?;
    if raw.package.is_empty()
        && raw.version.is_none()
        && raw.metadata.is_none()
        && raw.root.is_none()
    {
        return Err(Error::parse(
            path,
            None,
            "not a Cargo.lock: no `[[package]]` tables and no `version`",
        ));
    }
    let version = match &raw.version {
        // v1 and v2 carry no `version`; v1 keeps checksums in `[metadata]`.
        None if raw.metadata.is_some() => 1,
        None => 2,
        Some(toml::Value::Integer(v)) if (1..=4).contains(v) => *v as u32,
        Some(other) => {
            let line = find_line(text, |l| l.starts_with("version"));
            return Err(Error::parse(
                path,
                line,
                format!("unsupported Cargo.lock version {other}"),
            ));
        }
    };
    let lines = package_lines(text);
    let mut packages = Vec::with_capacity(raw.package.len());
    for (i, p) in raw.package.into_iter().enumerate() {
        let line = lines.get(i).copied().unwrap_or(1);
        if let Err(e) = crate::semver::Version::parse(&p.version) {
            return Err(Error::parse(
                path,
                Some(line),
                format!("package `{}`: invalid version: {e}", p.name),
            ));
        }
        let source = match p.source.as_deref() {
            None => Source::Path {
                path: String::new(),
            },
            Some(s) => parse_source(s).map_err(|m| Error::parse(path, Some(line), m))?,
        };
        packages.push(Package {
            ecosystem: Ecosystem::CratesIo,
            name: p.name,
            version: p.version,
            source,
            line,
        });
    }
    Ok(Lockfile {
        path: path.to_path_buf(),
        kind: LockfileKind::Cargo { version },
        packages,
    })
}

fn parse_source(s: &str) -> Result<Source, String> {
    let (kind, url) = s
        .split_once('+')
        .ok_or_else(|| format!("invalid package source `{s}`"))?;
    Ok(match kind {
        "registry" => Source::Registry {
            url: url.to_string(),
            default: url == CRATES_IO_GIT,
        },
        "sparse" => Source::Registry {
            url: url.to_string(),
            default: url == CRATES_IO_SPARSE,
        },
        "git" => Source::Git {
            url: url.to_string(),
        },
        "path" => Source::Path {
            path: url.to_string(),
        },
        other => return Err(format!("unsupported source kind `{other}` in `{s}`")),
    })
}

fn find_line(text: &str, pred: impl Fn(&str) -> bool) -> Option<usize> {
    text.lines().position(|l| pred(l.trim())).map(|i| i + 1)
}

/// The line of each `[[package]]` entry, in order: its `name = ` line, or the header.
fn package_lines(text: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let mut in_package = false;
    let mut name_seen = false;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('[') {
            in_package = t == "[[package]]";
            if in_package {
                out.push(i + 1);
                name_seen = false;
            }
        } else if in_package
            && !name_seen
            && t.starts_with("name")
            && t[4..].trim_start().starts_with('=')
        {
            if let Some(last) = out.last_mut() {
                *last = i + 1;
            }
            name_seen = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources() {
        assert_eq!(
            parse_source("registry+https://github.com/rust-lang/crates.io-index").unwrap(),
            Source::Registry {
                url: CRATES_IO_GIT.into(),
                default: true
            }
        );
        assert!(matches!(
            parse_source("sparse+https://index.crates.io/"),
            Ok(Source::Registry { default: true, .. })
        ));
        assert!(matches!(
            parse_source("sparse+https://my.registry/"),
            Ok(Source::Registry { default: false, .. })
        ));
        assert!(matches!(
            parse_source("git+https://github.com/a/b?rev=1#abc"),
            Ok(Source::Git { .. })
        ));
        assert!(parse_source("nonsense").is_err());
        assert!(parse_source("svn+https://x").is_err());
    }

    #[test]
    fn lines_point_at_names() {
        let text = "version = 3\n\n[[package]]\nname = \"a\"\nversion = \"1.0.0\"\n\n[[package]]\nversion = \"2.0.0\"\nname = \"b\"\n";
        assert_eq!(package_lines(text), vec![4, 9]);
    }
}
