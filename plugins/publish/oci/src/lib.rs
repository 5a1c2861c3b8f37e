//! # flow-oci
//!
//! The library behind flow's `publish` step: pushes files as OCI 1.1
//! artifacts to a registry (`HOST[:PORT]/REPO:TAG`) or an OCI image-layout
//! directory (`oci:DIR:TAG`), attaches the run's attestations as referrers,
//! and promotes artifacts (with their referrers) between repositories.
//!
//! It never opens sockets: registry traffic goes through a [`Transport`]
//! the caller provides (wasi:http in the plugin; `transport::tcp` with the
//! `std-transport` feature natively). It builds for `wasm32-wasip2`.
//!
//! ```no_run
//! use flow_oci::{ArtifactBuilder, Client, Credentials, Target, Transport, manifest};
//!
//! /// Publish a release and attach its attestations, over any transport.
//! fn release<T: Transport>(transport: T) -> flow_oci::Result<()> {
//!     let artifact = ArtifactBuilder::new()
//!         .annotation(manifest::ANNOTATION_REVISION, "0123abcd")
//!         .annotation(manifest::ANNOTATION_FLOW_RUN, "run-42")
//!         .file("dist/app.tar.gz")?
//!         .build()?;
//!     let client = Client::new(transport)
//!         .with_credentials("registry.example.com", Credentials::basic("ci", "secret"));
//!     let to = Target::parse("registry.example.com/team/app:1.2.0")?;
//!     let published = flow_oci::publish(&client, &to, &artifact, false)?;
//!     let attestations = ArtifactBuilder::new()
//!         .artifact_type(manifest::ARTIFACT_TYPE_ATTESTATIONS)
//!         .subject(published.descriptor.clone())
//!         .file("provenance.intoto.jsonl")?
//!         .build()?;
//!     flow_oci::attach(&client, &to, &attestations)?;
//!     Ok(())
//! }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
pub mod digest;
mod digest_parse;
pub mod error;
pub mod layout;
pub mod manifest;
mod published;
pub mod reference;
pub mod registry;
pub mod transport;

pub use auth::Credentials;
pub use digest::Digest;
pub use error::{Error, Result};
pub use layout::Layout;
pub use manifest::{Artifact, ArtifactBuilder, Descriptor, ImageIndex, ImageManifest};
pub use published::{Outcome, Published, PulledArtifact};
pub use reference::{LayoutRef, RegistryRef, Target};
pub use registry::{Client, FetchedManifest, PromoteOptions, Promoted};
pub use transport::{Request, Response, Transport, TransportError};

/// Publishes `artifact` to `to` (registry via `client`, or layout directory,
/// created if needed). `to` needs a tag. See [`Client::push`] and
/// [`Layout::push`] for the one-artifact-per-version rule.
pub fn publish<T: Transport>(
    client: &Client<T>,
    to: &Target,
    artifact: &Artifact,
    overwrite: bool,
) -> Result<Published> {
    publish_observed(client, to, artifact, overwrite, &|_, _| {})
}

/// [`publish`], telling `progress` the bytes uploaded (or written) of the blobs'
/// total as it goes.
pub fn publish_observed<T: Transport>(
    client: &Client<T>,
    to: &Target,
    artifact: &Artifact,
    overwrite: bool,
    progress: &dyn Fn(u64, u64),
) -> Result<Published> {
    match to {
        Target::Registry(r) => {
            if r.tag.is_none() {
                return Err(Error::InvalidReference {
                    input: r.to_string(),
                    reason: "publish needs a tag: HOST[:PORT]/REPO:TAG".into(),
                });
            }
            client.push_observed(r, artifact, overwrite, progress)
        }
        Target::Layout(l) => {
            let tag = l.tag.as_deref().ok_or_else(|| Error::InvalidReference {
                input: l.to_string(),
                reason: "publish needs a tag: oci:DIR:TAG".into(),
            })?;
            Layout::create(&l.dir)?.push_observed(tag, artifact, overwrite, progress)
        }
    }
}

/// Attaches a referrer `artifact` (built with a `subject`) next to its
/// subject at `at` (same repository or layout; tag and digest are ignored).
pub fn attach<T: Transport>(
    client: &Client<T>,
    at: &Target,
    artifact: &Artifact,
) -> Result<Published> {
    match at {
        Target::Registry(r) => client.attach(r, artifact),
        Target::Layout(l) => Layout::create(&l.dir)?.attach(artifact),
    }
}
