//! The distribution-spec client: pushing artifacts and referrers, pulling
//! them back, and promoting them between repositories, over a [`Transport`].
//!
//! Everything a registry sends is treated as untrusted input: manifests and
//! blobs are hashed and compared with the digest asked for, the
//! `Docker-Content-Digest` header is checked against our own digest, and
//! unexpected statuses become [`Error::Registry`] with the registry's error
//! codes.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use crate::auth::{Credentials, encode_query, parse_challenges, parse_token_response};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::manifest::{
    Artifact, Descriptor, ImageIndex, ImageManifest, MAX_MANIFEST_SIZE, MEDIA_TYPE_DOCKER_LIST,
    MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST,
};
use crate::reference::RegistryRef;
use crate::transport::{Request, Response, Transport};
use crate::{Outcome, Published, PulledArtifact};

const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.manifest.v1+json, \
application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.list.v2+json";

/// How deep promotion follows indexes and referrers of referrers.
const MAX_DEPTH: usize = 4;
/// Redirects followed when fetching blobs.
const MAX_REDIRECTS: usize = 5;

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

    fn is_index(&self) -> bool {
        self.media_type == MEDIA_TYPE_INDEX || self.media_type == MEDIA_TYPE_DOCKER_LIST
    }
}

/// Options for [`Client::promote`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PromoteOptions {
    /// Replace the destination tag if it names different content.
    pub overwrite: bool,
    /// Skip copying the source's referrers (attestations, signatures).
    pub skip_referrers: bool,
}

/// What [`Client::promote`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promoted {
    /// The destination (with tag if one was given) and the manifest digest.
    pub published: Published,
    /// Digests of the referrer manifests copied along.
    pub referrers: Vec<Digest>,
}

/// Whether a cross-repository mount worked.
enum Mount {
    Mounted,
    /// The registry opened an upload session instead (this is its URL).
    Upload(String),
}

/// A registry client. Holds the transport, per-host credentials and the
/// tokens obtained so far. Not thread-safe (the plugin has no threads).
pub struct Client<T: Transport> {
    transport: T,
    credentials: BTreeMap<String, Credentials>,
    plain_http: BTreeSet<String>,
    auth_cache: RefCell<BTreeMap<String, String>>,
    chunk_size: Option<usize>,
}

impl<T: Transport> std::fmt::Debug for Client<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field(
                "credentials_for",
                &self.credentials.keys().collect::<Vec<_>>(),
            )
            .field("plain_http", &self.plain_http)
            .finish_non_exhaustive()
    }
}

struct Repo<'a> {
    host: &'a str,
    name: &'a str,
}

impl<'a> From<&'a RegistryRef> for Repo<'a> {
    fn from(r: &'a RegistryRef) -> Self {
        Repo {
            host: &r.host,
            name: &r.repository,
        }
    }
}

impl<T: Transport> Client<T> {
    /// A client using `transport`, anonymous and over `https://` for every host.
    pub fn new(transport: T) -> Client<T> {
        Client {
            transport,
            credentials: BTreeMap::new(),
            plain_http: BTreeSet::new(),
            auth_cache: RefCell::new(BTreeMap::new()),
            chunk_size: None,
        }
    }

    /// Uploads blobs larger than `bytes` in chunks (`PATCH` with
    /// `Content-Range`, then the closing `PUT`), for registries or proxies
    /// that limit request sizes. By default every blob is one `PUT`.
    pub fn with_chunk_size(mut self, bytes: usize) -> Self {
        self.chunk_size = Some(bytes.max(1));
        self
    }

    /// Uses `credentials` for `host` (as written in references, e.g. `ghcr.io` or `127.0.0.1:5000`).
    pub fn with_credentials(mut self, host: impl Into<String>, credentials: Credentials) -> Self {
        self.credentials.insert(host.into(), credentials);
        self
    }

    /// Talks plain `http://` to `host` (a loopback test registry; never for real registries).
    pub fn with_plain_http(mut self, host: impl Into<String>) -> Self {
        self.plain_http.insert(host.into());
        self
    }

    /// The transport.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    // ----- plumbing ---------------------------------------------------------------

    fn origin(&self, host: &str) -> String {
        let scheme = if self.plain_http.contains(host) {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{host}")
    }

    fn url(&self, repo: &Repo<'_>, tail: &str) -> String {
        format!("{}/v2/{}/{}", self.origin(repo.host), repo.name, tail)
    }

    fn scopes(repo: &Repo<'_>, push: bool) -> Vec<String> {
        vec![format!(
            "repository:{}:{}",
            repo.name,
            if push { "pull,push" } else { "pull" }
        )]
    }

    /// Sends a request to `host`, authenticating on a 401 challenge and retrying once.
    fn send(&self, host: &str, scopes: &[String], request: Request) -> Result<Response> {
        let scope_key = format!("{host}|{}", scopes.join(" "));
        let host_key = format!("{host}|*");
        let cached = {
            let cache = self.auth_cache.borrow();
            cache
                .get(&scope_key)
                .or_else(|| cache.get(&host_key))
                .cloned()
        };
        let response = self.raw(&request, cached.as_deref())?;
        if response.status != 401 {
            return Ok(response);
        }
        let (header, host_wide) = self.authenticate(host, scopes, &response, cached.as_deref())?;
        let response = self.raw(&request, Some(&header))?;
        if response.status == 401 {
            return Err(Error::Unauthorized {
                registry: host.to_string(),
                detail: format!(
                    "credentials refused for {} {}{}",
                    request.method,
                    strip_query(&request.url),
                    registry_message(&response.body)
                ),
            });
        }
        self.auth_cache
            .borrow_mut()
            .insert(if host_wide { host_key } else { scope_key }, header);
        Ok(response)
    }

    fn raw(&self, request: &Request, authorization: Option<&str>) -> Result<Response> {
        match authorization {
            None => self.transport.send(request),
            Some(a) => {
                let mut r = request.clone();
                r.headers.push(("Authorization".to_string(), a.to_string()));
                self.transport.send(&r)
            }
        }
        .map_err(|e| Error::Transport(e.0))
    }

    /// Answers a 401: returns the `Authorization` value to retry with, and
    /// whether it holds for the whole host (basic) or just these scopes (token).
    fn authenticate(
        &self,
        host: &str,
        scopes: &[String],
        response: &Response,
        already_sent: Option<&str>,
    ) -> Result<(String, bool)> {
        let unauthorized = |detail: String| Error::Unauthorized {
            registry: host.to_string(),
            detail,
        };
        let challenges: Vec<_> = response
            .headers_named("www-authenticate")
            .flat_map(parse_challenges)
            .collect();
        let creds = self.credentials.get(host);
        if let Some(Credentials::Bearer(token)) = creds {
            let h = format!("Bearer {token}");
            if already_sent == Some(h.as_str()) {
                return Err(unauthorized("the bearer token was refused".into()));
            }
            return Ok((h, true));
        }
        if let Some(c) = challenges.iter().find(|c| c.scheme == "bearer") {
            let realm = c
                .params
                .get("realm")
                .ok_or_else(|| unauthorized("Bearer challenge without a realm".into()))?;
            if !(realm.starts_with("https://")
                || (realm.starts_with("http://") && self.plain_http.contains(host)))
            {
                return Err(unauthorized(format!(
                    "refusing token realm `{realm}` (must be https:// for an https registry)"
                )));
            }
            let mut all_scopes: Vec<String> = c
                .params
                .get("scope")
                .map(|s| {
                    s.split(' ')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            for s in scopes {
                if !all_scopes.contains(s) {
                    all_scopes.push(s.clone());
                }
            }
            let mut query = Vec::new();
            if let Some(service) = c.params.get("service") {
                query.push(format!("service={}", encode_query(service)));
            }
            for s in &all_scopes {
                query.push(format!("scope={}", encode_query(s)));
            }
            let url = if query.is_empty() {
                realm.clone()
            } else {
                format!(
                    "{realm}{}{}",
                    if realm.contains('?') { '&' } else { '?' },
                    query.join("&")
                )
            };
            let basic = creds.and_then(Credentials::basic_header);
            let token_response = self.raw(&Request::new("GET", url), basic.as_deref())?;
            if token_response.status != 200 {
                return Err(unauthorized(format!(
                    "token endpoint {realm} returned HTTP {}{}",
                    token_response.status,
                    if creds.is_none() {
                        " (no credentials given)"
                    } else {
                        ""
                    }
                )));
            }
            let token = parse_token_response(&token_response.body)
                .ok_or_else(|| unauthorized(format!("token endpoint {realm} sent no token")))?;
            let h = format!("Bearer {token}");
            if already_sent == Some(h.as_str()) {
                return Err(unauthorized("the registry refused a fresh token".into()));
            }
            return Ok((h, false));
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            let h = creds.and_then(Credentials::basic_header).ok_or_else(|| {
                unauthorized(
                    "the registry requires credentials (HTTP basic) and none were given".into(),
                )
            })?;
            if already_sent == Some(h.as_str()) {
                return Err(unauthorized("user name or password refused".into()));
            }
            return Ok((h, true));
        }
        Err(unauthorized(
            "HTTP 401 without a Basic or Bearer WWW-Authenticate challenge".into(),
        ))
    }

    /// GET/HEAD following redirects (blob storage often redirects to a CDN).
    /// `Authorization` is only sent to the registry's own origin.
    fn send_following(&self, host: &str, scopes: &[String], request: Request) -> Result<Response> {
        let origin = self.origin(host);
        let mut response = self.send(host, scopes, request.clone())?;
        let mut url = request.url.clone();
        for _ in 0..MAX_REDIRECTS {
            if !matches!(response.status, 301 | 302 | 303 | 307 | 308) {
                return Ok(response);
            }
            let Some(location) = response.header("location") else {
                return Ok(response);
            };
            url = resolve_location(&url, location);
            let next = Request {
                url: url.clone(),
                ..request.clone()
            };
            response = if same_origin(&url, &origin) {
                self.send(host, scopes, next)?
            } else {
                self.raw(&next, None)?
            };
        }
        Err(Error::Registry {
            method: request.method,
            url: strip_query(&request.url).to_string(),
            status: response.status,
            message: "too many redirects".into(),
        })
    }

    // ----- blobs ----------------------------------------------------------------

    /// Checks the registry answers `GET /v2/` (authenticating if needed).
    pub fn ping(&self, host: &str) -> Result<()> {
        let url = format!("{}/v2/", self.origin(host));
        let r = self.send(host, &[], Request::new("GET", &url))?;
        expect(&r, &[200], "GET", &url)
    }

    /// Whether `repo` has the blob `digest`.
    pub fn blob_exists(&self, repo: &RegistryRef, digest: &Digest) -> Result<bool> {
        let repo = Repo::from(repo);
        self.blob_exists_in(&repo, digest, false)
    }

    fn blob_exists_in(&self, repo: &Repo<'_>, digest: &Digest, push: bool) -> Result<bool> {
        let url = self.url(repo, &format!("blobs/{digest}"));
        let r = self.send_following(
            repo.host,
            &Self::scopes(repo, push),
            Request::new("HEAD", &url),
        )?;
        match r.status {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(fail("HEAD", &url, &r)),
        }
    }

    /// Downloads a blob and checks its digest.
    pub fn fetch_blob(&self, repo: &RegistryRef, digest: &Digest) -> Result<Vec<u8>> {
        let repo = Repo::from(repo);
        self.fetch_blob_from(&repo, digest)
    }

    fn fetch_blob_from(&self, repo: &Repo<'_>, digest: &Digest) -> Result<Vec<u8>> {
        let url = self.url(repo, &format!("blobs/{digest}"));
        let r = self.send_following(
            repo.host,
            &Self::scopes(repo, false),
            Request::new("GET", &url),
        )?;
        if r.status == 404 {
            return Err(Error::NotFound(format!(
                "blob {digest} in {}/{}",
                repo.host, repo.name
            )));
        }
        expect(&r, &[200], "GET", &url)?;
        let actual = Digest::of(&r.body);
        if actual != *digest {
            return Err(Error::DigestMismatch {
                what: format!("blob from {}/{}", repo.host, repo.name),
                expected: digest.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(r.body)
    }

    /// Uploads a blob unless the repository already has it (monolithic POST + PUT).
    pub fn push_blob(&self, repo: &RegistryRef, bytes: Vec<u8>) -> Result<Digest> {
        let repo = Repo::from(repo);
        let digest = Digest::of(&bytes);
        if !self.blob_exists_in(&repo, &digest, true)? {
            let location = self.start_upload(&repo)?;
            self.finish_upload(&repo, &location, &digest, bytes)?;
        }
        Ok(digest)
    }

    /// Opens an upload session, or mounts `mount` = (digest, from repository).
    fn start_upload_or_mount(
        &self,
        repo: &Repo<'_>,
        mount: Option<(&Digest, &str)>,
    ) -> Result<Mount> {
        let mut url = self.url(repo, "blobs/uploads/");
        let mut scopes = Self::scopes(repo, true);
        if let Some((digest, from)) = mount {
            url.push_str(&format!(
                "?mount={}&from={}",
                encode_query(&digest.to_string()),
                encode_query(from)
            ));
            scopes.push(format!("repository:{from}:pull"));
        }
        let r = self.send(repo.host, &scopes, Request::new("POST", &url))?;
        match r.status {
            201 if mount.is_some() => Ok(Mount::Mounted),
            202 => {
                let location = r.header("location").ok_or_else(|| {
                    Error::malformed("upload session", "202 Accepted without a Location header")
                })?;
                Ok(Mount::Upload(resolve_location(&url, location)))
            }
            _ => Err(fail("POST", &url, &r)),
        }
    }

    fn start_upload(&self, repo: &Repo<'_>) -> Result<String> {
        match self.start_upload_or_mount(repo, None)? {
            Mount::Upload(l) => Ok(l),
            Mount::Mounted => Err(Error::malformed("upload session", "unexpected 201")),
        }
    }

    fn finish_upload(
        &self,
        repo: &Repo<'_>,
        location: &str,
        digest: &Digest,
        bytes: Vec<u8>,
    ) -> Result<()> {
        let scopes = Self::scopes(repo, true);
        let mut location = location.to_string();
        let bytes = match self.chunk_size {
            Some(n) if bytes.len() > n => {
                let mut offset = 0usize;
                for chunk in bytes.chunks(n) {
                    let end = offset + chunk.len() - 1;
                    let request = Request::new("PATCH", &location)
                        .header("Content-Type", "application/octet-stream")
                        .header("Content-Range", format!("{offset}-{end}"))
                        .body(chunk.to_vec());
                    let r = self.send(repo.host, &scopes, request)?;
                    expect(&r, &[202], "PATCH", &location)?;
                    let next = r.header("location").ok_or_else(|| {
                        Error::malformed("chunked upload", "202 Accepted without a Location header")
                    })?;
                    location = resolve_location(&location, next);
                    offset += chunk.len();
                }
                Vec::new()
            }
            _ => bytes,
        };
        let url = format!(
            "{location}{}digest={}",
            if location.contains('?') { '&' } else { '?' },
            encode_query(&digest.to_string())
        );
        let request = Request::new("PUT", &url)
            .header("Content-Type", "application/octet-stream")
            .body(bytes);
        let r = self.send(repo.host, &scopes, request)?;
        expect(&r, &[201], "PUT", &url)?;
        check_digest_header(
            &r,
            digest,
            &format!("blob upload to {}/{}", repo.host, repo.name),
        )
    }

    // ----- manifests --------------------------------------------------------------

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
    fn fetch_manifest_by_digest(
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

    fn fetch_manifest_at(
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
    fn manifest_exists(&self, repo: &Repo<'_>, digest: &Digest) -> Result<bool> {
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
    fn put_manifest(
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

    // ----- artifacts ----------------------------------------------------------------

    fn push_blobs(&self, repo: &Repo<'_>, artifact: &Artifact) -> Result<()> {
        for blob in &artifact.blobs {
            let digest = blob.descriptor.digest;
            if self.blob_exists_in(repo, &digest, true)? {
                continue;
            }
            let bytes = blob.read()?;
            let location = self.start_upload(repo)?;
            self.finish_upload(repo, &location, &digest, bytes)?;
        }
        Ok(())
    }

    /// Pushes `artifact` to `to` (which must have a tag; a digest-only
    /// reference pushes untagged and must equal the artifact's digest).
    ///
    /// One artifact per version: if the tag already names a manifest with
    /// different content, this fails with [`Error::TagExists`] unless
    /// `overwrite`. Same content (same files and types; manifest annotations
    /// such as the creation time may differ) is a no-op returning the
    /// existing manifest ([`Outcome::Unchanged`]).
    pub fn push(
        &self,
        to: &RegistryRef,
        artifact: &Artifact,
        overwrite: bool,
    ) -> Result<Published> {
        let repo = Repo::from(to);
        let digest = artifact.digest();
        let Some(tag) = &to.tag else {
            return match to.digest {
                Some(d) if d != digest => Err(Error::DigestMismatch {
                    what: format!("artifact pushed to {to}"),
                    expected: d.to_string(),
                    actual: digest.to_string(),
                }),
                _ => {
                    self.push_blobs(&repo, artifact)?;
                    self.put_manifest(
                        &repo,
                        &digest.to_string(),
                        MEDIA_TYPE_MANIFEST,
                        &artifact.manifest_bytes,
                    )?;
                    Ok(Published {
                        reference: to.with_digest(digest).to_string(),
                        descriptor: artifact.descriptor(),
                        outcome: Outcome::Created,
                    })
                }
            };
        };
        let reference = to.with_tag(tag)?.to_string();
        let existing = self.fetch_manifest_at(&repo, tag, None)?;
        let outcome = match decide(
            &reference,
            existing.as_ref(),
            artifact.digest(),
            Some(&artifact.manifest),
            overwrite,
        )? {
            Decision::Unchanged(d) => {
                return Ok(Published {
                    reference,
                    descriptor: d,
                    outcome: Outcome::Unchanged,
                });
            }
            Decision::Write(outcome) => outcome,
        };
        self.push_blobs(&repo, artifact)?;
        self.put_manifest(&repo, tag, MEDIA_TYPE_MANIFEST, &artifact.manifest_bytes)?;
        Ok(Published {
            reference,
            descriptor: artifact.descriptor(),
            outcome,
        })
    }

    /// Attaches `artifact` (which must have a `subject`) to its subject in
    /// `repo`'s repository: pushes it by digest, then, unless the registry
    /// reports handling the subject itself (`OCI-Subject`, referrers API),
    /// adds it to the referrers tag schema index `sha256-<subject hex>`.
    pub fn attach(&self, repo: &RegistryRef, artifact: &Artifact) -> Result<Published> {
        let subject = artifact.manifest.subject.as_ref().ok_or_else(|| {
            Error::InvalidArtifact("a referrer needs a subject (ArtifactBuilder::subject)".into())
        })?;
        let r = Repo::from(repo);
        let digest = artifact.digest();
        self.push_blobs(&r, artifact)?;
        let handled = self.put_manifest(
            &r,
            &digest.to_string(),
            MEDIA_TYPE_MANIFEST,
            &artifact.manifest_bytes,
        )?;
        if !handled {
            self.add_to_referrers_tag(&r, &subject.digest, artifact.descriptor())?;
        }
        Ok(Published {
            reference: repo.with_digest(digest).to_string(),
            descriptor: artifact.descriptor(),
            outcome: Outcome::Created,
        })
    }

    /// Adds `descriptor` to the referrers tag schema index of `subject`, unless
    /// the registry's referrers API already lists it.
    fn add_to_referrers_tag(
        &self,
        repo: &Repo<'_>,
        subject: &Digest,
        descriptor: Descriptor,
    ) -> Result<()> {
        if let Some(listed) = self.referrers_api(repo, subject)?
            && listed.iter().any(|d| d.digest == descriptor.digest)
        {
            return Ok(());
        }
        let tag = subject.referrers_tag();
        let mut index = match self.fetch_manifest_at(repo, &tag, None)? {
            Some(m) => ImageIndex::from_slice(&m.bytes)?,
            None => ImageIndex::new(),
        };
        if index
            .manifests
            .iter()
            .any(|d| d.digest == descriptor.digest)
        {
            return Ok(());
        }
        index.manifests.push(descriptor);
        self.put_manifest(repo, &tag, MEDIA_TYPE_INDEX, &index.to_bytes())?;
        Ok(())
    }

    /// The referrers API's answer, or `None` if the registry has no referrers API.
    fn referrers_api(&self, repo: &Repo<'_>, subject: &Digest) -> Result<Option<Vec<Descriptor>>> {
        let url = self.url(repo, &format!("referrers/{subject}"));
        let request = Request::new("GET", &url).header("Accept", MEDIA_TYPE_INDEX);
        let r = self.send(repo.host, &Self::scopes(repo, false), request)?;
        match r.status {
            200 => {
                let is_index = r
                    .header("content-type")
                    .is_some_and(|c| c.starts_with(MEDIA_TYPE_INDEX));
                if !is_index {
                    // Something answered, but not the referrers API.
                    return Ok(None);
                }
                Ok(Some(ImageIndex::from_slice(&r.body)?.manifests))
            }
            // 404: no such API; 400/405: some registries answer unknown routes so.
            400 | 404 | 405 => Ok(None),
            _ => Err(fail("GET", &url, &r)),
        }
    }

    /// The referrers of `subject` in `repo`'s repository (referrers API, else
    /// the tag schema), optionally only those of `artifact_type`.
    pub fn referrers(
        &self,
        repo: &RegistryRef,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>> {
        let r = Repo::from(repo);
        let all = match self.referrers_api(&r, subject)? {
            Some(list) => list,
            None => match self.fetch_manifest_at(&r, &subject.referrers_tag(), None)? {
                Some(m) => ImageIndex::from_slice(&m.bytes)?.manifests,
                None => Vec::new(),
            },
        };
        Ok(all
            .into_iter()
            .filter(|d| artifact_type.is_none_or(|t| d.artifact_type.as_deref() == Some(t)))
            .collect())
    }

    /// Fetches an artifact (manifest and every layer, digests verified).
    pub fn pull(&self, r: &RegistryRef) -> Result<PulledArtifact> {
        let m = self
            .fetch_manifest(r)?
            .ok_or_else(|| Error::NotFound(format!("manifest {r}")))?;
        let manifest = ImageManifest::from_slice(&m.bytes)?;
        let repo = Repo::from(r);
        let mut files = Vec::new();
        for layer in &manifest.layers {
            let bytes = self.fetch_blob_from(&repo, &layer.digest)?;
            files.push((layer.clone(), bytes));
        }
        Ok(PulledArtifact {
            descriptor: m.descriptor(),
            manifest,
            files,
        })
    }

    /// Fetches every referrer of `subject` (optionally only of
    /// `artifact_type`) with its layers, e.g. to verify attestations before
    /// promoting. Referrers that are not image manifests are skipped.
    pub fn pull_referrers(
        &self,
        repo: &RegistryRef,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<PulledArtifact>> {
        let mut out = Vec::new();
        for d in self.referrers(repo, subject, artifact_type)? {
            if d.media_type != MEDIA_TYPE_MANIFEST {
                continue;
            }
            out.push(self.pull(&repo.with_digest(d.digest))?);
        }
        Ok(out)
    }

    // ----- promotion ----------------------------------------------------------------

    /// Copies the manifest `from` names (by digest, or by tag) and all its
    /// blobs to `to`'s repository — under `to`'s tag if it has one — and then
    /// its referrers (unless `options.skip_referrers`). Blobs are mounted
    /// across repositories of one registry when possible, else pulled and
    /// pushed. The destination tag follows the one-artifact-per-version rule
    /// of [`Client::push`].
    pub fn promote(
        &self,
        from: &RegistryRef,
        to: &RegistryRef,
        options: &PromoteOptions,
    ) -> Result<Promoted> {
        let src = Repo::from(from);
        let dst = Repo::from(to);
        let manifest = self
            .fetch_manifest(from)?
            .ok_or_else(|| Error::NotFound(format!("manifest {from}")))?;
        let digest = manifest.digest;
        if let Some(d) = to.digest
            && d != digest
        {
            return Err(Error::DigestMismatch {
                what: format!("promotion destination {to}"),
                expected: d.to_string(),
                actual: digest.to_string(),
            });
        }
        let mut published = Published {
            reference: to.with_digest(digest).to_string(),
            descriptor: manifest.descriptor(),
            outcome: Outcome::Created,
        };
        let mut visited = BTreeSet::new();
        match &to.tag {
            Some(tag) => {
                let reference = to.with_tag(tag)?.to_string();
                let existing = self.fetch_manifest_at(&dst, tag, None)?;
                published.reference = reference.clone();
                let parsed = ImageManifest::from_slice(&manifest.bytes).ok();
                match decide(
                    &reference,
                    existing.as_ref(),
                    manifest.digest,
                    parsed.as_ref(),
                    options.overwrite,
                )? {
                    Decision::Unchanged(d) => {
                        published.descriptor = d;
                        published.outcome = Outcome::Unchanged;
                        // Still make sure its content and referrers are there.
                        self.copy_manifest(&src, &dst, &manifest, 0, &mut visited)?;
                    }
                    Decision::Write(outcome) => {
                        self.copy_manifest(&src, &dst, &manifest, 0, &mut visited)?;
                        self.put_manifest(&dst, tag, &manifest.media_type, &manifest.bytes)?;
                        published.outcome = outcome;
                    }
                }
            }
            None => {
                self.copy_manifest(&src, &dst, &manifest, 0, &mut visited)?;
            }
        }
        let mut referrers = Vec::new();
        if !options.skip_referrers {
            self.copy_referrers(&src, &dst, &digest, 0, &mut visited, &mut referrers)?;
        }
        Ok(Promoted {
            published,
            referrers,
        })
    }

    fn copy_referrers(
        &self,
        src: &Repo<'_>,
        dst: &Repo<'_>,
        subject: &Digest,
        depth: usize,
        visited: &mut BTreeSet<Digest>,
        copied: &mut Vec<Digest>,
    ) -> Result<()> {
        if depth >= MAX_DEPTH {
            return Ok(());
        }
        let src_ref = RegistryRef {
            host: src.host.to_string(),
            repository: src.name.to_string(),
            tag: None,
            digest: None,
        };
        for d in self.referrers(&src_ref, subject, None)? {
            if visited.contains(&d.digest) {
                continue;
            }
            let m = self.fetch_manifest_by_digest(src, &d.digest, "referrer")?;
            let handled = self.copy_manifest(src, dst, &m, 0, visited)?;
            if !handled {
                self.add_to_referrers_tag(dst, subject, d.clone())?;
            }
            copied.push(d.digest);
            self.copy_referrers(src, dst, &d.digest, depth + 1, visited, copied)?;
        }
        Ok(())
    }

    /// Copies a manifest (recursively for indexes) and its blobs, by digest.
    /// Returns whether the destination reported handling a subject.
    fn copy_manifest(
        &self,
        src: &Repo<'_>,
        dst: &Repo<'_>,
        manifest: &FetchedManifest,
        depth: usize,
        visited: &mut BTreeSet<Digest>,
    ) -> Result<bool> {
        if depth > MAX_DEPTH {
            return Err(Error::malformed("index", "nested deeper than 4 levels"));
        }
        visited.insert(manifest.digest);
        if manifest.is_index() {
            let index = ImageIndex::from_slice(&manifest.bytes)?;
            for child in &index.manifests {
                if self.manifest_exists(dst, &child.digest)? {
                    continue;
                }
                let m = self.fetch_manifest_by_digest(src, &child.digest, "manifest")?;
                self.copy_manifest(src, dst, &m, depth + 1, visited)?;
            }
        } else {
            let m = ImageManifest::from_slice(&manifest.bytes)?;
            for blob in std::iter::once(&m.config).chain(&m.layers) {
                self.copy_blob(src, dst, &blob.digest)?;
            }
        }
        self.put_manifest(
            dst,
            &manifest.digest.to_string(),
            &manifest.media_type,
            &manifest.bytes,
        )
    }

    fn copy_blob(&self, src: &Repo<'_>, dst: &Repo<'_>, digest: &Digest) -> Result<()> {
        if self.blob_exists_in(dst, digest, true)? {
            return Ok(());
        }
        let location = if src.host == dst.host {
            match self.start_upload_or_mount(dst, Some((digest, src.name)))? {
                Mount::Mounted => return Ok(()),
                Mount::Upload(location) => location,
            }
        } else {
            self.start_upload(dst)?
        };
        let bytes = self.fetch_blob_from(src, digest)?;
        self.finish_upload(dst, &location, digest, bytes)
    }
}

// ----- tag policy ---------------------------------------------------------------------

pub(crate) enum Decision {
    Unchanged(Descriptor),
    Write(Outcome),
}

/// The one-artifact-per-version rule for a tag that may already name `existing`, when
/// the manifest `new` (its digest, and its content if it parses as an image manifest)
/// is to be written under it: the same digest or the same content leaves the tag
/// unchanged; other content replaces it only with `overwrite`.
pub(crate) fn decide(
    reference: &str,
    existing: Option<&FetchedManifest>,
    new: Digest,
    new_manifest: Option<&ImageManifest>,
    overwrite: bool,
) -> Result<Decision> {
    let Some(existing) = existing else {
        return Ok(Decision::Write(Outcome::Created));
    };
    let same_content = || {
        new_manifest.is_some_and(|n| {
            ImageManifest::from_slice(&existing.bytes).is_ok_and(|m| m.same_content(n))
        })
    };
    if existing.digest == new || same_content() {
        return Ok(Decision::Unchanged(existing.descriptor()));
    }
    if overwrite {
        return Ok(Decision::Write(Outcome::Replaced {
            previous: existing.digest,
        }));
    }
    Err(Error::TagExists {
        reference: reference.to_string(),
        existing: existing.digest,
        new,
    })
}

// ----- helpers ------------------------------------------------------------------------

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

fn check_digest_header(r: &Response, ours: &Digest, what: &str) -> Result<()> {
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

fn expect(r: &Response, ok: &[u16], method: &str, url: &str) -> Result<()> {
    if ok.contains(&r.status) {
        Ok(())
    } else {
        Err(fail(method, url, r))
    }
}

fn fail(method: &str, url: &str, r: &Response) -> Error {
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
fn registry_message(body: &[u8]) -> String {
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

fn strip_query(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

fn same_origin(url: &str, origin: &str) -> bool {
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
