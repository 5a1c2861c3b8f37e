//! What the client makes of HTTP answers and URLs: unexpected statuses as errors carrying
//! the registry's error codes, the `Docker-Content-Digest` check, and resolving
//! `Location` headers.

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::transport::Response;

pub(super) fn check_digest_header(r: &Response, ours: &Digest, what: &str) -> Result<()> {
    let Some(theirs) = r.header("docker-content-digest") else {
        return Ok(());
    };
    let theirs = theirs.trim();
    // Only sha256 is comparable; another algorithm is not a mismatch.
    if !theirs.starts_with("sha256:") {
        return Ok(());
    }
    if theirs != ours.to_string() {
        return Err(Error::DigestMismatch {
            what: format!("{what} (Docker-Content-Digest)"),
            expected: ours.to_string(),
            actual: theirs.chars().take(80).collect(),
        });
    }
    Ok(())
}

pub(super) fn expect(r: &Response, ok: &[u16], method: &str, url: &str) -> Result<()> {
    if ok.contains(&r.status) {
        Ok(())
    } else {
        Err(fail(method, url, r))
    }
}

pub(super) fn fail(method: &str, url: &str, r: &Response) -> Error {
    if r.status == 401 || r.status == 403 {
        let host = url
            .split("://")
            .nth(1)
            .and_then(|s| s.split('/').next())
            .unwrap_or(url);
        return Error::Unauthorized {
            registry: host.to_string(),
            detail: format!(
                "{method} {} returned HTTP {}{}",
                strip_query(url),
                r.status,
                registry_message(&r.body)
            ),
        };
    }
    Error::Registry {
        method: method.to_string(),
        url: strip_query(url).to_string(),
        status: r.status,
        message: registry_message(&r.body)
            .trim_start_matches(": ")
            .to_string(),
    }
}

/// `: CODE: message; ...` from a distribution error body, or a short excerpt.
pub(super) fn registry_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorItem>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorItem {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if body.is_empty() {
        return String::new();
    }
    if let Ok(e) = serde_json::from_slice::<Errors>(body) {
        let parts: Vec<String> = e
            .errors
            .iter()
            .take(5)
            .map(|i| format!("{}: {}", i.code, i.message))
            .collect();
        if !parts.is_empty() {
            return format!(": {}", parts.join("; "));
        }
    }
    let text: String = String::from_utf8_lossy(body)
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    format!(": {}", text.trim())
}

pub(super) fn strip_query(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

pub(super) fn same_origin(url: &str, origin: &str) -> bool {
    url.strip_prefix(origin)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'))
}

/// Resolves a `Location` header against the URL of the request that returned it.
pub(crate) fn resolve_location(request_url: &str, location: &str) -> String {
    let location = location.trim();
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.to_string();
    }
    let (scheme, rest) = request_url
        .split_once("://")
        .unwrap_or(("https", request_url));
    if let Some(net) = location.strip_prefix("//") {
        return format!("{scheme}://{net}");
    }
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let origin = format!("{scheme}://{}", &rest[..authority_end]);
    if location.starts_with('/') {
        return format!("{origin}{location}");
    }
    let path = strip_query(&rest[authority_end..]);
    let dir = match path.rfind('/') {
        Some(i) => &path[..=i],
        None => "/",
    };
    format!("{origin}{dir}{location}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        let base = "http://127.0.0.1:5000/v2/a/b/blobs/uploads/?x=1";
        assert_eq!(
            resolve_location(base, "https://other/up/1?s=2"),
            "https://other/up/1?s=2"
        );
        assert_eq!(
            resolve_location(base, "/v2/a/b/blobs/uploads/uuid?_state=z"),
            "http://127.0.0.1:5000/v2/a/b/blobs/uploads/uuid?_state=z"
        );
        assert_eq!(
            resolve_location(base, "uuid"),
            "http://127.0.0.1:5000/v2/a/b/blobs/uploads/uuid"
        );
        assert_eq!(
            resolve_location(base, "//cdn.example/x"),
            "http://cdn.example/x"
        );
        assert!(same_origin("http://h:1/v2/", "http://h:1"));
        assert!(!same_origin("http://h:10/v2/", "http://h:1"));
    }

    #[test]
    fn error_bodies() {
        assert_eq!(
            registry_message(
                br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#
            ),
            ": MANIFEST_UNKNOWN: manifest unknown"
        );
        assert_eq!(
            registry_message(b"404 page not found\n"),
            ": 404 page not found"
        );
        assert_eq!(registry_message(b""), "");
    }
}
