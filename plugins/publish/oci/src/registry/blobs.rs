//! Blobs: whether a repository has one, downloading one (its digest checked), and
//! uploading one (in one request or in chunks, or mounted from another repository of
//! the same registry).

use crate::auth::encode_query;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::manifest::Artifact;
use crate::reference::RegistryRef;
use crate::transport::{Request, Transport};

use super::client::{Client, Repo};
use super::http::{check_digest_header, expect, fail, resolve_location};

/// Whether a cross-repository mount worked.
pub(super) enum Mount {
    Mounted,
    /// The registry opened an upload session instead (this is its URL).
    Upload(String),
}

impl<T: Transport> Client<T> {
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

    pub(super) fn blob_exists_in(
        &self,
        repo: &Repo<'_>,
        digest: &Digest,
        push: bool,
    ) -> Result<bool> {
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

    pub(super) fn fetch_blob_from(&self, repo: &Repo<'_>, digest: &Digest) -> Result<Vec<u8>> {
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
    pub(super) fn start_upload_or_mount(
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

    pub(super) fn start_upload(&self, repo: &Repo<'_>) -> Result<String> {
        match self.start_upload_or_mount(repo, None)? {
            Mount::Upload(l) => Ok(l),
            Mount::Mounted => Err(Error::malformed("upload session", "unexpected 201")),
        }
    }

    pub(super) fn finish_upload(
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

    /// Uploads the blobs the repository lacks; `progress` hears the bytes done (a
    /// blob the registry has counts as done) of the blobs' total after each one.
    pub(super) fn push_blobs(
        &self,
        repo: &Repo<'_>,
        artifact: &Artifact,
        progress: &dyn Fn(u64, u64),
    ) -> Result<()> {
        let total: u64 = artifact.blobs.iter().map(|b| b.descriptor.size).sum();
        let mut done = 0;
        progress(done, total);
        for blob in &artifact.blobs {
            let digest = blob.descriptor.digest;
            if !self.blob_exists_in(repo, &digest, true)? {
                let bytes = blob.read()?;
                let location = self.start_upload(repo)?;
                self.finish_upload(repo, &location, &digest, bytes)?;
            }
            done += blob.descriptor.size;
            progress(done, total);
        }
        Ok(())
    }
}
