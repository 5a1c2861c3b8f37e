//! Host paths as written in `reads` and catalog paths: `~/x` under the user's home, and a
//! leading `${NAME:-fallback}` expanded from the host's environment.

use std::path::PathBuf;

/// A host path as written in `reads`: `~/x` is under the user's home, and a
/// leading `${NAME:-fallback}` (or `${NAME}`) is the host variable's value, or the
/// fallback (itself expanded) when it is unset or empty.
pub fn expand_host_path(written: &str) -> Result<PathBuf, String> {
    let (start, rest) = host_path_parts(written)?;
    Ok(match start {
        Some(start) if rest.as_os_str().is_empty() => start,
        Some(start) => start.join(rest),
        None => rest,
    })
}

/// A host path as written in `reads`, split into what is taken as given (the home
/// directory, or a variable's value), if anything, and the rest as written, which a grant
/// checks component by component. See [`expand_host_path`].
pub(crate) fn host_path_parts(written: &str) -> Result<(Option<PathBuf>, PathBuf), String> {
    if let Some(rest) = written.strip_prefix("${") {
        let Some((inner, tail)) = rest.split_once('}') else {
            return Err(format!("unclosed `${{` in `{written}`"));
        };
        let (name, fallback) = match inner.split_once(":-") {
            Some((name, fallback)) => (name, Some(fallback)),
            None => (inner, None),
        };
        let tail = tail.trim_start_matches('/');
        return match std::env::var(name) {
            Ok(value) if !value.is_empty() => Ok((Some(PathBuf::from(value)), PathBuf::from(tail))),
            _ => match fallback {
                Some(fallback) => {
                    let (start, rest) = host_path_parts(fallback)?;
                    Ok(if tail.is_empty() {
                        (start, rest)
                    } else {
                        (start, rest.join(tail))
                    })
                }
                None => Err(format!("cannot expand `{written}`: `{name}` is not set")),
            },
        };
    }
    if let Some(rest) = written.strip_prefix("~/") {
        return match std::env::var_os("HOME") {
            Some(home) => Ok((Some(PathBuf::from(home)), PathBuf::from(rest))),
            None => Err(format!("cannot expand `{written}`: `HOME` is not set")),
        };
    }
    Ok((None, PathBuf::from(written)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_paths_split_where_the_trusted_part_ends() {
        let unset = "FLOW_TEST_SURELY_UNSET_VARIABLE";
        assert_eq!(host_path_parts("out/x"), Ok((None, PathBuf::from("out/x"))));
        assert_eq!(
            host_path_parts("/opt/x"),
            Ok((None, PathBuf::from("/opt/x")))
        );
        assert_eq!(
            host_path_parts(&format!("${{{unset}:-/opt/x}}/y")),
            Ok((None, PathBuf::from("/opt/x/y")))
        );
        assert!(host_path_parts(&format!("${{{unset}}}/y")).is_err());
        if let Some(path) = std::env::var_os("PATH").filter(|p| !p.is_empty()) {
            assert_eq!(
                host_path_parts("${PATH}/x"),
                Ok((Some(PathBuf::from(path)), PathBuf::from("x")))
            );
        }
        if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            let home = PathBuf::from(home);
            assert_eq!(
                host_path_parts("~/.rustup"),
                Ok((Some(home.clone()), PathBuf::from(".rustup")))
            );
            let written = format!("${{{unset}:-~/.rustup}}/bin");
            assert_eq!(
                host_path_parts(&written),
                Ok((Some(home.clone()), PathBuf::from(".rustup/bin")))
            );
            assert_eq!(expand_host_path(&written), Ok(home.join(".rustup/bin")));
            assert_eq!(
                expand_host_path(&format!("${{{unset}:-~/.rustup}}")),
                Ok(home.join(".rustup"))
            );
        }
    }
}
