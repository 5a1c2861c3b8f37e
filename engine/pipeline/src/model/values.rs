//! The scalar values a pipeline file writes: durations, sizes, `uses:` values and names.

use std::path::Path;
use std::time::Duration;

use crate::plugin::PluginRef;

/// The largest `memory` a step may ask for: a wasm32 memory cannot grow beyond 4 GiB.
pub const MAX_MEMORY: u64 = 4 << 30;

/// Reads a duration: one or more `<number><unit>` with units `h`, `m`, `s`, `ms` in that
/// order, e.g. `500ms`, `30s`, `1h30m`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    const UNITS: [(&str, u64); 4] = [("h", 3_600_000), ("ms", 1), ("m", 60_000), ("s", 1000)];
    let rank = |unit: &str| match unit {
        "h" => 0,
        "m" => 1,
        "s" => 2,
        _ => 3,
    };
    let mut rest = text;
    let mut total: u64 = 0;
    let mut last_rank: Option<u8> = None;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let number: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, millis) = UNITS.iter().find(|(u, _)| rest.starts_with(u))?;
        let r = rank(unit);
        if last_rank.is_some_and(|last| r <= last) {
            return None;
        }
        last_rank = Some(r);
        total = total.checked_add(number.checked_mul(*millis)?)?;
        rest = &rest[unit.len()..];
    }
    Some(Duration::from_millis(total))
}

/// Reads a size in bytes: a plain integer, or an integer followed by `KiB`, `MiB` or `GiB`.
pub fn parse_size(text: &str) -> Option<u64> {
    let digits = text.chars().take_while(char::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let number: u64 = text[..digits].parse().ok()?;
    let factor = match &text[digits..] {
        "" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(factor)
}

/// What a `uses:` value names.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Uses {
    /// A plugin, with a version requirement (`scan@^1`) if one was written.
    Plugin(PluginRef, Option<String>),
    /// `interface:<name>`: whatever plugin the interface is bound to.
    Interface(String),
}

/// Reads a `uses:` value: `interface:<name>`, or a plugin (see [`parse_uses`]) that may
/// also carry a semver requirement: `scan@1`, `scan@^1.2`, `./x.wasm@>=1, <2`.
pub(crate) fn parse_uses_spec(text: &str, base_dir: &Path) -> Result<Uses, String> {
    if let Some(name) = text.strip_prefix("interface:") {
        if !is_identifier(name, true) {
            return Err(format!(
                "invalid interface name `{name}`: use letters, digits, `_` and `-`"
            ));
        }
        return Ok(Uses::Interface(name.to_owned()));
    }
    if let Some((what, req)) = text.rsplit_once('@')
        && !req.starts_with("sha256:")
    {
        if let Err(e) = semver::VersionReq::parse(req) {
            return Err(format!(
                "invalid version requirement `@{req}`: {e}; write e.g. `@1`, `@^1.2` or `@sha256:<64 hex digits>`"
            ));
        }
        return Ok(Uses::Plugin(
            parse_uses(what, base_dir)?,
            Some(req.to_owned()),
        ));
    }
    Ok(Uses::Plugin(parse_uses(text, base_dir)?, None))
}

/// Reads a `uses:` value: a built-in name or a path to a `.wasm` file, optionally pinned
/// with `@sha256:<64 hex digits>`. Paths are resolved against `base_dir`.
fn parse_uses(text: &str, base_dir: &Path) -> Result<PluginRef, String> {
    let (what, pin) = match text.rsplit_once('@') {
        Some((what, pin)) => {
            let hex = pin.strip_prefix("sha256:").unwrap_or("");
            if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(format!(
                    "invalid pin `@{pin}`: a pin is `@sha256:` followed by 64 hex digits"
                ));
            }
            (what, Some(hex.to_ascii_lowercase()))
        }
        None => (text, None),
    };
    if what.is_empty() {
        return Err("`uses` names no plugin".into());
    }
    if what.ends_with(".wasm") || what.contains('/') || what.contains('\\') {
        let joined = base_dir.join(what);
        let path = std::path::absolute(&joined).unwrap_or(joined);
        return Ok(PluginRef::File {
            path,
            written: what.to_owned(),
            pin,
        });
    }
    if what
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return Ok(PluginRef::Builtin {
            name: what.to_owned(),
            pin,
        });
    }
    Err(format!(
        "`uses: {text}` names neither a built-in plugin (such as `echo`) nor a `.wasm` file (such as `./plugins/lister.wasm`)"
    ))
}

/// A POSIX environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
pub(crate) fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether `text` is `[A-Za-z_][A-Za-z0-9_]*`, or with `-` also allowed after the first
/// character when `dashes`.
pub(crate) fn is_identifier(text: &str, dashes: bool) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (dashes && c == '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(
            parse_duration("1m30s500ms"),
            Some(Duration::from_millis(90_500))
        );
        for bad in [
            "",
            "30",
            "s",
            "30 s",
            "1m1h",
            "1s1s",
            "1.5s",
            "-1s",
            "1d",
            "99999999999999999999h",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB"), Some(64 << 20));
        assert_eq!(parse_size("1GiB"), Some(1 << 30));
        assert_eq!(parse_size("3KiB"), Some(3072));
        assert_eq!(parse_size("1000"), Some(1000));
        for bad in [
            "",
            "MiB",
            "64MB",
            "64 MiB",
            "1.5GiB",
            "-1",
            "99999999999999GiB",
        ] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }

    #[test]
    fn uses_values() {
        let base = Path::new("/pipelines");
        assert_eq!(
            parse_uses("echo", base),
            Ok(PluginRef::Builtin {
                name: "echo".into(),
                pin: None
            })
        );
        let pin = "AB".repeat(32);
        assert_eq!(
            parse_uses(&format!("echo@sha256:{pin}"), base),
            Ok(PluginRef::Builtin {
                name: "echo".into(),
                pin: Some("ab".repeat(32))
            })
        );
        match parse_uses("./plugins/x.wasm", base) {
            Ok(PluginRef::File {
                path,
                written,
                pin: None,
            }) => {
                assert!(path.is_absolute());
                assert!(path.ends_with("plugins/x.wasm"));
                assert_eq!(written, "./plugins/x.wasm");
            }
            other => panic!("{other:?}"),
        }
        assert!(parse_uses("echo@sha256:abc", base).is_err());
        assert!(parse_uses("Echo Plugin", base).is_err());
        assert!(parse_uses("", base).is_err());
    }
}
