//! Whole artifacts: pushing one under a tag (the one-artifact-per-version rule) and
//! pulling one back with its files.

use crate::error::{Error, Result};
use crate::manifest::{Artifact, ImageManifest, MEDIA_TYPE_MANIFEST};
use crate::published::{Outcome, Published, PulledArtifact};
use crate::reference::RegistryRef;
use crate::transport::Transport;

use super::client::{Client, Repo};
use super::tag_policy::{Decision, decide};

impl<T: Transport> Client<T> {
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
        self.push_observed(to, artifact, overwrite, &|_, _| {})
    }

    /// [`Client::push`], telling `progress` the bytes uploaded of the blobs' total.
    pub fn push_observed(
        &self,
        to: &RegistryRef,
        artifact: &Artifact,
        overwrite: bool,
        progress: &dyn Fn(u64, u64),
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
                    self.push_blobs(&repo, artifact, progress)?;
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
        self.push_blobs(&repo, artifact, progress)?;
        self.put_manifest(&repo, tag, MEDIA_TYPE_MANIFEST, &artifact.manifest_bytes)?;
        Ok(Published {
            reference,
            descriptor: artifact.descriptor(),
            outcome,
        })
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
}
