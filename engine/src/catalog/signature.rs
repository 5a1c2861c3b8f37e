//! Signed templates: `template.sig` is a DSSE envelope whose payload names the
//! template's id, version and digest.

use std::path::{Path, PathBuf};

use flow_provenance::{Envelope, PublicKey, SigningKey};
use serde::{Deserialize, Serialize};

use super::digest::{SIGNATURE_FILE, template_digest};

/// The DSSE payload type of a template signature.
pub const PAYLOAD_TYPE: &str = "application/vnd.flow.template.v1+json";

/// What a template signature says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTemplate {
    /// The template id.
    pub id: String,
    /// Its version.
    pub version: String,
    /// The digest of its directory.
    pub sha256: String,
}

/// Signs the template in `dir` (which says it is `id` at `version`) with `key`, writing
/// `template.sig`. Returns the file and the digest signed.
pub fn sign(
    dir: &Path,
    id: &str,
    version: &str,
    key: &SigningKey,
) -> Result<(PathBuf, String), String> {
    let sha256 = template_digest(dir)?;
    let payload = serde_json::to_vec(&SignedTemplate {
        id: id.to_owned(),
        version: version.to_owned(),
        sha256: sha256.clone(),
    })
    .map_err(|e| e.to_string())?;
    let envelope = Envelope::sign(PAYLOAD_TYPE, payload, key).map_err(|e| e.to_string())?;
    let path = dir.join(SIGNATURE_FILE);
    let temporary = dir.join(format!(".{SIGNATURE_FILE}.tmp"));
    std::fs::write(&temporary, envelope.to_json())
        .and_then(|()| std::fs::rename(&temporary, &path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok((path, sha256))
}

/// Checks that the template in `dir`, whose content has digest `sha256`, is signed as
/// `id` at `version` by one of `trusted`. Returns the key id that signed it.
pub fn verify(
    dir: &Path,
    id: &str,
    version: &str,
    sha256: &str,
    trusted: &[PublicKey],
) -> Result<String, String> {
    let path = dir.join(SIGNATURE_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "template {id}@{version} is not signed, and its catalog requires signatures"
            ));
        }
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let envelope = Envelope::from_json(&bytes)
        .map_err(|e| format!("the signature of template {id}@{version} is malformed: {e}"))?;
    if envelope.payload_type != PAYLOAD_TYPE {
        return Err(format!(
            "the signature of template {id}@{version} is not a template signature (payload type `{}`)",
            envelope.payload_type
        ));
    }
    let key = envelope.verify(trusted).map_err(|e| {
        let ids: Vec<&str> = envelope.keyids().collect();
        format!(
            "template {id}@{version} is not signed by a trusted key (signed by {}): {e}",
            if ids.is_empty() {
                "nobody".to_owned()
            } else {
                ids.join(", ")
            }
        )
    })?;
    let signed: SignedTemplate = serde_json::from_slice(&envelope.payload)
        .map_err(|e| format!("the signature of template {id}@{version} is malformed: {e}"))?;
    if signed.id != id || signed.version != version {
        return Err(format!(
            "the signature in template {id}@{version} is for {}@{}",
            signed.id, signed.version
        ));
    }
    if signed.sha256 != sha256 {
        return Err(format!(
            "template {id}@{version} changed since it was signed (signed sha256:{}, now sha256:{sha256})",
            signed.sha256
        ));
    }
    Ok(key.keyid().to_owned())
}
