//! What publishing, attaching, promoting or pulling gives back: the manifest's
//! descriptor and where it is, what happened to its tag, or the artifact read back.

use crate::digest::Digest;
use crate::manifest::{Descriptor, ImageManifest};

/// What a push did to its tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The manifest was written (the tag, if any, was new).
    Created,
    /// The tag already named this content; nothing was written.
    Unchanged,
    /// The tag named other content and `overwrite` replaced it.
    Replaced {
        /// The manifest the tag named before.
        previous: Digest,
    },
}

/// The result of a push, attach or promotion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// Where it is: `HOST/REPO:TAG`, `HOST/REPO@sha256:...`, `oci:DIR:TAG` or `oci:DIR@sha256:...`.
    pub reference: String,
    /// The manifest's descriptor (with `artifactType` and annotations): the
    /// subject to attach attestations to. For [`Outcome::Unchanged`] it is the
    /// manifest already there.
    pub descriptor: Descriptor,
    /// What happened.
    pub outcome: Outcome,
}

impl Published {
    /// The manifest digest.
    pub fn digest(&self) -> Digest {
        self.descriptor.digest
    }
}

/// An artifact read back: its manifest and its files (digests verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledArtifact {
    /// The manifest's descriptor.
    pub descriptor: Descriptor,
    /// The manifest.
    pub manifest: ImageManifest,
    /// Each layer's descriptor (title in its annotations) and bytes.
    pub files: Vec<(Descriptor, Vec<u8>)>,
}
