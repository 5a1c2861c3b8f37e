//! The distribution-spec client: pushing artifacts and referrers, pulling
//! them back, and promoting them between repositories, over a
//! [`Transport`](crate::Transport).
//!
//! Everything a registry sends is treated as untrusted input: manifests and
//! blobs are hashed and compared with the digest asked for, the
//! `Docker-Content-Digest` header is checked against our own digest, and
//! unexpected statuses become [`Error::Registry`](crate::Error::Registry) with
//! the registry's error codes.
//!
//! [`Client`] is in `client.rs`; its requests are sent (and authenticated) in
//! `send.rs`, and its operations are split by what they act on: `blobs.rs`,
//! `manifests.rs`, `artifacts.rs` (push and pull), `referrers.rs` and
//! `promote.rs`. `tag_policy.rs` holds the one-artifact-per-version rule, `http.rs`
//! the reading of HTTP answers and URLs.

mod artifacts;
mod blobs;
mod client;
mod http;
mod manifests;
mod promote;
mod referrers;
mod send;
mod tag_policy;

pub use client::Client;
pub use manifests::FetchedManifest;
pub use promote::{PromoteOptions, Promoted};
pub(crate) use tag_policy::{Decision, decide};
