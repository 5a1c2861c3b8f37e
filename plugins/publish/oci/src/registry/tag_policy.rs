//! The one-artifact-per-version rule for a tag, which registry pushes and promotions and
//! image-layout directories ([`crate::layout`]) share.

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::manifest::{Descriptor, ImageManifest};
use crate::published::Outcome;

use super::manifests::FetchedManifest;

/// What to do with a tag: leave it (it already names this content), or write it.
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
