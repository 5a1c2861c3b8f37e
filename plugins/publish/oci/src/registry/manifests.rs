//! Manifests: fetching one by tag or digest (its digest checked), whether one exists,
//! and putting one.

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::manifest::{
    Descriptor, ImageManifest, MAX_MANIFEST_SIZE, MEDIA_TYPE_DOCKER_LIST, MEDIA_TYPE_INDEX,
    MEDIA_TYPE_MANIFEST,
};
use crate::reference::RegistryRef;
use crate::transport::{Request, Transport};

use super::client::{Client, Repo};
use super::http::{check_digest_header, expect, fail};

const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.manifest.v1+json, \
application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.list.v2+json";

/// A manifest as fetched: its media type, exact bytes and (verified) digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedManifest {
    /// The `Content-Type` the registry sent (or the payload's `mediaType`).
    pub media_type: String,
    /// The exact bytes.
    pub bytes: Vec<u8>,
    /// sha256 of `bytes`.
    pub digest: Digest,
}

impl FetchedManifest {
    /// A descriptor of this manifest, with `artifactType` and annotations
    /// filled in when it is an image manifest.
    pub fn descriptor(&self) -> Descriptor {
        let mut d = Descriptor::of(&self.media_type, &self.bytes);
        if let Ok(m) = ImageManifest::from_slice(&self.bytes) {
            d.artifact_type = Some(m.effective_artifact_type());
            d.annotations = m.annotations;
        }
        d
    }

    pub(super) fn is_index(&self) -> bool {
        self.media_type == MEDIA_TYPE_INDEX || self.media_type == MEDIA_TYPE_DOCKER_LIST
    }
}

impl<T: Transport> Client<T> {
    /// Fetches the manifest `r` names (digest first, else tag); `None` if it does not exist.
    /// A digest reference is verified against the bytes; for a tag, the
    /// registry's `Docker-Content-Digest` must match the bytes.
    pub fn fetch_manifest(&self, r: &RegistryRef) -> Result<Option<FetchedManifest>> {
        let reference = r.reference().ok_or_else(|| Error::InvalidReference {
            input: r.to_string(),
            reason: "needs a tag or a digest".into(),
        })?;
        self.fetch_manifest_at(&Repo::from(r), &reference, r.digest.as_ref())
    }

    /// The manifest `digest` in `repo`, which must exist (`what` names it in the error).
    pub(super) fn fetch_manifest_by_digest(
        &self,
        repo: &Repo<'_>,
        digest: &Digest,
        what: &str,
    ) -> Result<FetchedManifest> {
        self.fetch_manifest_at(repo, &digest.to_string(), Some(digest))?
            .ok_or_else(|| {
                Error::NotFound(format!("{what} {digest} in {}/{}", repo.host, repo.name))
            })
    }

    pub(super) fn fetch_manifest_at(
        &self,
        repo: &Repo<'_>,
        reference: &str,
        expected: Option<&Digest>,
    ) -> Result<Option<FetchedManifest>> {
        let url = self.url(repo, &format!("manifests/{reference}"));
        let request = Request::new("GET", &url).header("Accept", ACCEPT_MANIFESTS);
        let r = self.send(repo.host, &Self::scopes(repo, false), request)?;
        if r.status == 404 {
            return Ok(None);
        }
        expect(&r, &[200], "GET", &url)?;
        if r.body.len() > MAX_MANIFEST_SIZE {
            return Err(Error::malformed(
                "manifest",
                format!("{url} is larger than 4 MiB"),
            ));
        }
        let digest = Digest::of(&r.body);
        let what = format!("manifest {}/{}:{reference}", repo.host, repo.name);
        if let Some(e) = expected
            && *e != digest
        {
            return Err(Error::DigestMismatch {
                what,
                expected: e.to_string(),
                actual: digest.to_string(),
            });
        }
        check_digest_header(&r, &digest, &what)?;
        let media_type = match r
            .header("content-type")
            .map(|c| c.split(';').next().unwrap_or("").trim())
        {
            Some(c) if !c.is_empty() && c != "application/json" => c.to_string(),
            _ => payload_media_type(&r.body).unwrap_or_else(|| MEDIA_TYPE_MANIFEST.to_string()),
        };
        Ok(Some(FetchedManifest {
            media_type,
            bytes: r.body,
            digest,
        }))
    }

    /// Whether the manifest exists (HEAD).
    pub(super) fn manifest_exists(&self, repo: &Repo<'_>, digest: &Digest) -> Result<bool> {
        let url = self.url(repo, &format!("manifests/{digest}"));
        let request = Request::new("HEAD", &url).header("Accept", ACCEPT_MANIFESTS);
        let r = self.send(repo.host, &Self::scopes(repo, true), request)?;
        match r.status {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(fail("HEAD", &url, &r)),
        }
    }

    /// PUTs manifest bytes under `reference` (a tag or their digest). Returns
    /// whether the registry reported processing a `subject` (`OCI-Subject`).
    pub(super) fn put_manifest(
        &self,
        repo: &Repo<'_>,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<bool> {
        let digest = Digest::of(bytes);
        let url = self.url(repo, &format!("manifests/{reference}"));
        let request = Request::new("PUT", &url)
            .header("Content-Type", media_type)
            .body(bytes.to_vec());
        let r = self.send(repo.host, &Self::scopes(repo, true), request)?;
        expect(&r, &[201], "PUT", &url)?;
        check_digest_header(
            &r,
            &digest,
            &format!("manifest {}/{}:{reference}", repo.host, repo.name),
        )?;
        Ok(r.header("oci-subject").is_some())
    }
}

fn payload_media_type(bytes: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
    }
    let p: Probe = serde_json::from_slice(bytes).ok()?;
    p.media_type.or_else(|| {
        Some(
            if p.manifests.is_some() {
                MEDIA_TYPE_INDEX
            } else {
                MEDIA_TYPE_MANIFEST
            }
            .to_string(),
        )
    })
}
