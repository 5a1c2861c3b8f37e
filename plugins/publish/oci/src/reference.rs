//! Parsing `publish`'s `to:` (and promotion's `from:`/`to:`) references.
//!
//! Two forms:
//! - `HOST[:PORT]/REPO/PATH:TAG`, `HOST[:PORT]/REPO@sha256:<hex>` or
//!   `HOST[:PORT]/REPO:TAG@sha256:<hex>`: a repository in a registry. The host
//!   is mandatory and must look like one (contain a `.` or a `:PORT`, be
//!   `localhost`, or be a bracketed IPv6 address): flow has no implicit
//!   default registry. Repository path components follow the distribution
//!   spec: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`, joined by `/`.
//! - `oci:DIR:TAG` (or `oci:DIR@sha256:<hex>`): an OCI image-layout
//!   directory, as skopeo writes it. `DIR` cannot contain `:` (skopeo could
//!   not address it either).
//!
//! Tags follow `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.

use std::fmt;
use std::path::PathBuf;

use crate::digest::Digest;
use crate::error::{Error, Result};

/// Where `publish` writes: a registry repository or a layout directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `HOST[:PORT]/REPO:TAG`
    Registry(RegistryRef),
    /// `oci:DIR:TAG`
    Layout(LayoutRef),
}

impl Target {
    /// Parses either form; `oci:` selects a layout directory.
    pub fn parse(input: &str) -> Result<Target> {
        if input.starts_with("oci:") {
            LayoutRef::parse(input).map(Target::Layout)
        } else {
            RegistryRef::parse(input).map(Target::Registry)
        }
    }

    /// The tag, if the reference names one.
    pub fn tag(&self) -> Option<&str> {
        match self {
            Target::Registry(r) => r.tag.as_deref(),
            Target::Layout(l) => l.tag.as_deref(),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Registry(r) => r.fmt(f),
            Target::Layout(l) => l.fmt(f),
        }
    }
}

/// A repository in a registry, with a tag and/or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryRef {
    /// `host`, `host:port` or `[v6]:port`, as written.
    pub host: String,
    /// The repository path, e.g. `team/app`.
    pub repository: String,
    /// The tag, if any.
    pub tag: Option<String>,
    /// The manifest digest, if any (takes precedence over the tag when resolving).
    pub digest: Option<Digest>,
}

impl RegistryRef {
    /// Parses `HOST[:PORT]/REPO[:TAG][@sha256:HEX]`; a tag or a digest is required.
    pub fn parse(input: &str) -> Result<RegistryRef> {
        let r = Self::parse_inner(input)?;
        if r.tag.is_none() && r.digest.is_none() {
            return Err(invalid(
                input,
                "missing tag or digest: expected HOST[:PORT]/REPO:TAG or HOST[:PORT]/REPO@sha256:<hex>",
            ));
        }
        Ok(r)
    }

    /// Parses a reference that may name only the repository, `HOST[:PORT]/REPO`
    /// (tag and digest optional), e.g. a promotion destination.
    pub fn parse_repository(input: &str) -> Result<RegistryRef> {
        Self::parse_inner(input)
    }

    fn parse_inner(input: &str) -> Result<RegistryRef> {
        if input.is_empty() {
            return Err(invalid(input, "empty reference"));
        }
        if input.contains("://") {
            return Err(invalid(
                input,
                "write HOST[:PORT]/REPO:TAG without a URL scheme",
            ));
        }
        let (rest, digest) = match input.rsplit_once('@') {
            Some((rest, d)) => (
                rest,
                Some(Digest::parse(d).map_err(|e| invalid(input, &e.to_string()))?),
            ),
            None => (input, None),
        };
        let (host, remainder) = rest.split_once('/').ok_or_else(|| {
            invalid(
                input,
                "missing registry host or repository: expected HOST[:PORT]/REPO:TAG",
            )
        })?;
        validate_host(host).map_err(|reason| invalid(input, &reason))?;
        let (repository, tag) = match remainder.split_once(':') {
            Some((path, tag)) => (path, Some(tag)),
            None => (remainder, None),
        };
        validate_repository(repository).map_err(|reason| invalid(input, &reason))?;
        if host.len() + 1 + repository.len() > 255 {
            return Err(invalid(input, "repository name longer than 255 characters"));
        }
        if let Some(tag) = tag {
            validate_tag(tag).map_err(|reason| invalid(input, &reason))?;
        }
        Ok(RegistryRef {
            host: host.to_string(),
            repository: repository.to_string(),
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// What goes in `/v2/<name>/manifests/<reference>`: the digest if known, else the tag.
    pub fn reference(&self) -> Option<String> {
        self.digest
            .map(|d| d.to_string())
            .or_else(|| self.tag.clone())
    }

    /// The same repository with another tag (and no digest).
    pub fn with_tag(&self, tag: &str) -> Result<RegistryRef> {
        validate_tag(tag).map_err(|reason| invalid(tag, &reason))?;
        Ok(RegistryRef {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        })
    }

    /// The same repository at a digest (and no tag).
    pub fn with_digest(&self, digest: Digest) -> RegistryRef {
        RegistryRef {
            tag: None,
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// `HOST/REPO`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.host, self.repository)
    }
}

impl fmt::Display for RegistryRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.host, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// An OCI image-layout directory, with a tag and/or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutRef {
    /// The layout directory.
    pub dir: PathBuf,
    /// The tag (`org.opencontainers.image.ref.name`), if any.
    pub tag: Option<String>,
    /// The manifest digest, if any.
    pub digest: Option<Digest>,
}

impl LayoutRef {
    /// Parses `oci:DIR:TAG` or `oci:DIR@sha256:HEX`; a tag or digest is required.
    pub fn parse(input: &str) -> Result<LayoutRef> {
        let rest = input
            .strip_prefix("oci:")
            .ok_or_else(|| invalid(input, "a layout reference starts with `oci:`"))?;
        let (dir, tag, digest) = if let Some((dir, d)) = rest.rsplit_once('@') {
            let d = Digest::parse(d).map_err(|e| invalid(input, &e.to_string()))?;
            (dir, None, Some(d))
        } else {
            match rest.split_once(':') {
                Some((dir, tag)) => (dir, Some(tag), None),
                None => {
                    return Err(invalid(
                        input,
                        "missing tag: expected oci:DIR:TAG (or oci:DIR@sha256:<hex>)",
                    ));
                }
            }
        };
        if dir.is_empty() {
            return Err(invalid(input, "empty directory: expected oci:DIR:TAG"));
        }
        if dir.contains(':') {
            return Err(invalid(
                input,
                "the directory of oci:DIR:TAG cannot contain `:`",
            ));
        }
        if let Some(tag) = tag {
            validate_tag(tag).map_err(|reason| invalid(input, &reason))?;
        }
        Ok(LayoutRef {
            dir: PathBuf::from(dir),
            tag: tag.map(str::to_string),
            digest,
        })
    }
}

impl fmt::Display for LayoutRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "oci:{}", self.dir.display())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

fn invalid(input: &str, reason: &str) -> Error {
    Error::InvalidReference {
        input: input.to_string(),
        reason: reason.to_string(),
    }
}

/// Checks a tag against `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub fn validate_tag(tag: &str) -> std::result::Result<(), String> {
    let b = tag.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    match b.first() {
        None => Err("empty tag".into()),
        Some(&c) if !word(c) => Err(format!(
            "tag `{tag}` must start with a letter, digit or `_`"
        )),
        _ if b.len() > 128 => Err(format!("tag `{tag}` is longer than 128 characters")),
        _ if !b.iter().all(|&c| word(c) || c == b'.' || c == b'-') => Err(format!(
            "tag `{tag}` may only contain letters, digits, `_`, `.` and `-`"
        )),
        _ => Ok(()),
    }
}

/// Checks a repository path against the distribution spec's grammar:
/// `/`-separated components of `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
pub fn validate_repository(path: &str) -> std::result::Result<(), String> {
    if path.is_empty() {
        return Err("empty repository path".into());
    }
    for component in path.split('/') {
        if !valid_component(component) {
            return Err(format!(
                "repository path component `{component}` is invalid: use lowercase letters and digits, \
                 separated by `.`, `_`, `__` or dashes, not at the start or end"
            ));
        }
    }
    Ok(())
}

fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    let mut i = 0;
    // [a-z0-9]+ then repeated (separator [a-z0-9]+)
    let run = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && alnum(b[*i]) {
            *i += 1;
        }
        *i > start
    };
    if !run(&mut i) {
        return false;
    }
    while i < b.len() {
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        if !run(&mut i) {
            return false;
        }
    }
    true
}

fn validate_host(host: &str) -> std::result::Result<(), String> {
    let form = "expected HOST[:PORT]/REPO:TAG";
    if host.is_empty() {
        return Err(format!("missing registry host: {form}"));
    }
    let (name, port) = if let Some(v6) = host.strip_prefix('[') {
        let (addr, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("unterminated IPv6 address in host `{host}`"))?;
        if addr.is_empty()
            || !addr
                .bytes()
                .all(|c| c.is_ascii_hexdigit() || c == b':' || c == b'.')
        {
            return Err(format!("invalid IPv6 address in host `{host}`"));
        }
        match after {
            "" => (None, None),
            p => match p.strip_prefix(':') {
                Some(p) => (None, Some(p)),
                None => return Err(format!("invalid host `{host}`")),
            },
        }
    } else {
        match host.split_once(':') {
            Some((n, p)) => (Some(n), Some(p)),
            None => (Some(host), None),
        }
    };
    if let Some(p) = port
        && (p.is_empty()
            || p.len() > 5
            || !p.bytes().all(|c| c.is_ascii_digit())
            || p.parse::<u32>().map_or(true, |n| n == 0 || n > 65535))
    {
        return Err(format!("invalid port in host `{host}`"));
    }
    if let Some(n) = name {
        let label_ok = |l: &str| {
            let b = l.as_bytes();
            !b.is_empty()
                && b.len() <= 63
                && b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-')
                && b[0] != b'-'
                && b[b.len() - 1] != b'-'
        };
        if !n.split('.').all(label_ok) {
            return Err(format!("invalid registry host `{host}`: {form}"));
        }
        if !n.contains('.') && port.is_none() && n != "localhost" {
            return Err(format!(
                "`{host}` is not a registry host (no `.`, no `:PORT`, not `localhost`): {form}"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

    #[test]
    fn registry_refs() {
        let r = RegistryRef::parse("127.0.0.1:5000/team/app:1.2.0").unwrap();
        assert_eq!(r.host, "127.0.0.1:5000");
        assert_eq!(r.repository, "team/app");
        assert_eq!(r.tag.as_deref(), Some("1.2.0"));
        assert_eq!(r.reference().unwrap(), "1.2.0");
        assert_eq!(r.to_string(), "127.0.0.1:5000/team/app:1.2.0");

        let r = RegistryRef::parse(&format!("registry.example.com/a.b/c__d/e--f@{D}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.reference().unwrap(), D);

        let r = RegistryRef::parse(&format!("localhost/app:v1@{D}")).unwrap();
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert_eq!(r.reference().unwrap(), D);

        let r = RegistryRef::parse("[::1]:5000/app:_x").unwrap();
        assert_eq!(r.host, "[::1]:5000");
        assert!(RegistryRef::parse_repository("ghcr.io/org/app").is_ok());

        assert!(matches!(
            Target::parse("oci:out:1").unwrap(),
            Target::Layout(_)
        ));
        assert!(matches!(
            Target::parse("r.io/x:1").unwrap(),
            Target::Registry(_)
        ));
    }

    #[test]
    fn bad_registry_refs() {
        for bad in [
            "",
            "app:1",
            "team/app:1",
            "registry.example.com/app",
            "registry.example.com/App:1",
            "registry.example.com/app/:1",
            "registry.example.com//app:1",
            "registry.example.com/-app:1",
            "registry.example.com/app-:1",
            "registry.example.com/a...b:1",
            "registry.example.com/a___b:1",
            "registry.example.com/app:",
            "registry.example.com/app:-x",
            "registry.example.com/app:a:b",
            "registry.example.com/app:a/b",
            "registry.example.com/app@sha256:abc",
            "registry.example.com:0/app:1",
            "registry.example.com:99999/app:1",
            "registry.example.com:/app:1",
            "-bad.example/app:1",
            "https://registry.example.com/app:1",
            "[::1/app:1",
        ] {
            let err = RegistryRef::parse(bad);
            assert!(err.is_err(), "{bad} parsed as {err:?}");
        }
        let long_tag = format!("r.io/app:{}", "a".repeat(129));
        assert!(RegistryRef::parse(&long_tag).is_err());
        assert!(RegistryRef::parse(&format!("r.io/app:{}", "a".repeat(128))).is_ok());
        let msg = RegistryRef::parse("team/app:1").unwrap_err().to_string();
        assert!(msg.contains("HOST[:PORT]/REPO:TAG"), "{msg}");
    }

    #[test]
    fn layout_refs() {
        let l = LayoutRef::parse("oci:out/dir:v1.0").unwrap();
        assert_eq!(l.dir, PathBuf::from("out/dir"));
        assert_eq!(l.tag.as_deref(), Some("v1.0"));
        assert_eq!(l.to_string(), "oci:out/dir:v1.0");
        let l = LayoutRef::parse(&format!("oci:/tmp/x@{D}")).unwrap();
        assert_eq!(l.digest.unwrap().to_string(), D);
        for bad in [
            "oci:",
            "oci:dir",
            "oci::tag",
            "oci:dir:",
            "oci:a:b:c",
            "oci:dir:!x",
            "dir:tag",
        ] {
            assert!(LayoutRef::parse(bad).is_err(), "{bad}");
        }
    }
}
