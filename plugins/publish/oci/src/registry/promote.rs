//! Promotion: copying a manifest with its blobs, and then its referrers, to another
//! repository, under the one-artifact-per-version rule.

use std::collections::BTreeSet;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::manifest::{ImageIndex, ImageManifest};
use crate::published::{Outcome, Published};
use crate::reference::RegistryRef;
use crate::transport::Transport;

use super::blobs::Mount;
use super::client::{Client, Repo};
use super::manifests::FetchedManifest;
use super::tag_policy::{Decision, decide};

/// How deep promotion follows indexes and referrers of referrers.
const MAX_DEPTH: usize = 4;

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

impl<T: Transport> Client<T> {
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
