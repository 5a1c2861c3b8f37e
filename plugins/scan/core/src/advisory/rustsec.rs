//! RustSec advisories: Markdown files with TOML front matter in a ```` ```toml ```` fence.
//!
//! Which versions an advisory affects follows `rustsec` (the library behind
//! `cargo-audit`): every `patched` and `unaffected` requirement is turned into one
//! version interval ([`VersionReq::to_interval`]); the intervals must not overlap; a
//! version is affected when it lies in none of them. Comparisons use plain SemVer order,
//! so a pre-release such as `1.3.0-alpha` *is* covered by `>= 1.2.3` here (Cargo's
//! resolver rule would not match it), exactly as `cargo-audit` decides.

use super::{Advisory, Affects, Collection, Informational};
use crate::cvss::Cvss;
use crate::error::{Error, Result, toml_error};
use crate::lockfile::Ecosystem;
use crate::semver::{VersionInterval, VersionReq};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

const CRATES_IO_INDEX: &str = "https://github.com/rust-lang/crates.io-index";

#[derive(Deserialize)]
struct Front {
    advisory: Meta,
    #[serde(default)]
    versions: Versions,
    #[serde(default)]
    affected: Affected,
}

#[derive(Deserialize)]
struct Meta {
    id: String,
    package: String,
    date: Option<toml::Value>,
    url: Option<String>,
    #[serde(default)]
    references: Vec<String>,
    #[serde(default)]
    categories: Vec<String>,
    #[serde(default)]
    keywords: Vec<String>,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    related: Vec<String>,
    cvss: Option<String>,
    informational: Option<String>,
    withdrawn: Option<toml::Value>,
    source: Option<String>,
}

#[derive(Deserialize, Default)]
struct Versions {
    #[serde(default)]
    patched: Vec<String>,
    #[serde(default)]
    unaffected: Vec<String>,
}

#[derive(Deserialize, Default)]
struct Affected {
    #[serde(default)]
    os: Vec<String>,
    #[serde(default)]
    arch: Vec<String>,
    #[serde(default)]
    functions: BTreeMap<String, Vec<String>>,
}

/// Reads one RustSec advisory file.
pub fn read(path: &Path) -> Result<Advisory> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    parse(path, &text)
}

/// Parses RustSec advisory text; `path` decides the collection (`rust/` vs `crates/`)
/// and names the file in errors.
pub fn parse(path: &Path, text: &str) -> Result<Advisory> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let (front, front_line, body) = split_front_matter(text).ok_or_else(|| {
        Error::parse(
            path,
            Some(1),
            "no ```toml front matter block at the top of the advisory",
        )
    })?;
    let raw: Front = toml::from_str(front).map_err(|e| {
        let (line, msg) = toml_error(front, &e, front_line - 1);
        Error::parse(path, line, format!("invalid advisory front matter: {msg}"))
    })?;
    let line_of = |needle: &str| {
        front
            .lines()
            .position(|l| l.contains(needle))
            .map(|i| i + front_line)
    };
    let meta = raw.advisory;
    if meta.id.trim().is_empty() || meta.package.trim().is_empty() {
        return Err(Error::parse(
            path,
            Some(front_line),
            "`[advisory]` needs a non-empty `id` and `package`",
        ));
    }
    let cvss = match &meta.cvss {
        Some(v) => Some(Cvss::parse(v).map_err(|m| Error::parse(path, line_of("cvss"), m))?),
        None => None,
    };
    let mut safe: Vec<VersionInterval> = Vec::new();
    for req_text in raw.versions.unaffected.iter().chain(&raw.versions.patched) {
        let at = || line_of(&format!("\"{req_text}\""));
        let req = VersionReq::parse(req_text)
            .map_err(|e| Error::parse(path, at(), format!("invalid version requirement: {e}")))?;
        let interval = req.to_interval().map_err(|e| {
            Error::parse(path, at(), format!("unsupported version requirement: {e}"))
        })?;
        if let Some(other) = safe.iter().find(|o| o.overlaps(&interval)) {
            return Err(Error::parse(
                path,
                at(),
                format!(
                    "overlapping version ranges: `{req_text}` is {interval}, which overlaps {other}"
                ),
            ));
        }
        safe.push(interval);
    }
    let (title, description) = split_body(body);
    let collection = if path.components().any(|c| c.as_os_str() == "rust")
        && !path.components().any(|c| c.as_os_str() == "crates")
    {
        Collection::Rust
    } else {
        Collection::Crates
    };
    let registry = meta.source.filter(|s| {
        let url = s.strip_prefix("registry+").unwrap_or(s);
        url != CRATES_IO_INDEX
    });
    let mut references = Vec::new();
    references.extend(meta.url.clone());
    references.extend(meta.references);
    Ok(Advisory {
        url: format!("https://rustsec.org/advisories/{}.html", meta.id),
        id: meta.id,
        aliases: meta.aliases,
        related: meta.related,
        ecosystem: Ecosystem::CratesIo,
        package: meta.package,
        collection,
        title: title.unwrap_or_default(),
        description,
        date: meta.date.map(value_text),
        references,
        categories: meta.categories,
        keywords: meta.keywords,
        informational: meta.informational.as_deref().map(Informational::parse),
        withdrawn: meta.withdrawn.map(value_text),
        cvss,
        database_severity: None,
        patched: raw.versions.patched,
        affected_os: raw.affected.os,
        affected_arch: raw.affected.arch,
        affected_functions: raw.affected.functions.into_keys().collect(),
        registry,
        affects: Affects::RustSec { safe },
        file: path.to_path_buf(),
    })
}

fn value_text(v: toml::Value) -> String {
    match v {
        toml::Value::String(s) => s,
        other => other.to_string(),
    }
}

/// Splits ```` ```toml ... ``` ```` at the top: (TOML, 1-based line where it starts, rest).
fn split_front_matter(text: &str) -> Option<(&str, usize, &str)> {
    let mut skipped_lines = 0;
    let mut rest = text;
    // Blank lines before the fence are tolerated.
    while let Some(stripped) = rest
        .strip_prefix('\n')
        .or_else(|| rest.strip_prefix("\r\n"))
    {
        rest = stripped;
        skipped_lines += 1;
    }
    let after_fence = rest.strip_prefix("```toml")?;
    let after_fence = after_fence
        .strip_prefix("\r\n")
        .or_else(|| after_fence.strip_prefix('\n'))?;
    let mut offset = 0;
    for line in after_fence.split_inclusive('\n') {
        if line.trim_end() == "```" {
            return Some((
                &after_fence[..offset],
                skipped_lines + 2,
                &after_fence[offset + line.len()..],
            ));
        }
        offset += line.len();
    }
    None
}

/// Title (first `# ` heading) and the Markdown after it.
fn split_body(body: &str) -> (Option<String>, String) {
    let mut offset = 0;
    for line in body.split_inclusive('\n') {
        if let Some(title) = line.trim_end().strip_prefix("# ") {
            let rest = &body[offset + line.len()..];
            return (Some(title.trim().to_string()), rest.trim().to_string());
        }
        offset += line.len();
    }
    (None, body.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::semver::Version;

    const SAMPLE: &str = r#"```toml
[advisory]
id = "RUSTSEC-2018-0003"
package = "smallvec"
aliases = ["CVE-2018-20991"]
cvss = "CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
date = "2018-07-19"
url = "https://github.com/servo/rust-smallvec/issues/96"

[versions]
patched = [">= 0.6.3", "^0.3.4", "^0.4.5", "^0.5.1"]
unaffected = ["< 0.3.2"]
```

# Possible double free during unwinding in SmallVec::insert_many

If an iterator passed to `SmallVec::insert_many` panicked...
"#;

    fn affected(a: &Advisory, v: &str) -> bool {
        assert!(Version::parse(v).is_ok());
        a.affects_version(v)
    }

    #[test]
    fn parses_sample() {
        let a = parse(Path::new("crates/smallvec/RUSTSEC-2018-0003.md"), SAMPLE).unwrap();
        assert_eq!(a.id, "RUSTSEC-2018-0003");
        assert_eq!(
            a.title,
            "Possible double free during unwinding in SmallVec::insert_many"
        );
        assert!(a.description.starts_with("If an iterator"));
        assert_eq!(a.cvss_score(), Some(9.8));
        assert_eq!(a.collection, Collection::Crates);
        assert_eq!(a.patched.len(), 4);
        assert!(!affected(&a, "0.3.1"), "unaffected < 0.3.2");
        assert!(affected(&a, "0.3.2"));
        assert!(!affected(&a, "0.3.4"));
        assert!(affected(&a, "0.4.4"));
        assert!(!affected(&a, "0.5.1"));
        assert!(affected(&a, "0.6.2"));
        assert!(!affected(&a, "0.6.3"));
        assert!(!affected(&a, "1.0.0"));
        // Interval semantics: the pre-release of a later version counts as patched.
        assert!(!affected(&a, "0.7.0-alpha.1"));
        assert!(affected(&a, "0.6.3-alpha.1"));
    }

    #[test]
    fn errors_name_the_line() {
        let bad = SAMPLE.replace("package = \"smallvec\"", "package = smallvec");
        let e = parse(Path::new("x.md"), &bad).unwrap_err();
        assert_eq!(e.line(), Some(4), "{e}");
        assert!(
            e.to_string()
                .starts_with("x.md:4: invalid advisory front matter"),
            "{e}"
        );

        let bad = SAMPLE.replace("\"^0.4.5\"", "\"^0.4.5, < 3\"");
        let e = parse(Path::new("x.md"), &bad).unwrap_err();
        assert_eq!(e.line(), Some(11), "{e}");

        let bad = SAMPLE.replace("\"^0.4.5\"", "\"^0.6.0\"");
        let e = parse(Path::new("x.md"), &bad).unwrap_err();
        assert!(e.to_string().contains("overlapping"), "{e}");

        let bad = SAMPLE.replace("CVSS:3.0/AV:N", "CVSS:3.0/AV:Z");
        assert_eq!(parse(Path::new("x.md"), &bad).unwrap_err().line(), Some(6));

        let e = parse(Path::new("x.md"), "# just markdown\n").unwrap_err();
        assert!(e.to_string().contains("front matter"), "{e}");
        let e = parse(Path::new("x.md"), "```toml\n[advisory]\nid = \"X\"\n").unwrap_err();
        assert!(e.to_string().contains("front matter"), "{e}");
        let e = parse(Path::new("x.md"), "```toml\n[advisory]\nid = \"X\"\n```\n").unwrap_err();
        assert!(e.to_string().contains("package"), "{e}");
    }

    #[test]
    fn informational_and_withdrawn() {
        let text = "```toml\n[advisory]\nid = \"RUSTSEC-2020-0001\"\npackage = \"x\"\ninformational = \"unmaintained\"\nwithdrawn = \"2021-01-01\"\n\n[versions]\npatched = []\n```\n\n# x is unmaintained\n";
        let a = parse(Path::new("rust/x/a.md"), text).unwrap();
        assert_eq!(a.informational, Some(Informational::Unmaintained));
        assert_eq!(a.withdrawn.as_deref(), Some("2021-01-01"));
        assert_eq!(a.collection, Collection::Rust);
        assert!(
            a.affects_version("9.9.9"),
            "no patched versions: every version"
        );
        assert_eq!(a.severity(), None);
    }
}
