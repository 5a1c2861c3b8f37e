//! Referrers: attaching an artifact to its subject (through the referrers API, else the
//! referrers tag schema), and listing and pulling the referrers of a subject.

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::manifest::{Artifact, Descriptor, ImageIndex, MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST};
use crate::published::{Outcome, Published, PulledArtifact};
use crate::reference::RegistryRef;
use crate::transport::{Request, Transport};

use super::client::{Client, Repo};
use super::http::fail;

impl<T: Transport> Client<T> {
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
        self.push_blobs(&r, artifact, &|_, _| {})?;
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
    pub(super) fn add_to_referrers_tag(
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
}
