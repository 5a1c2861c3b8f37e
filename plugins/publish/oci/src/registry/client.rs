//! The registry client: its transport, per-host credentials, tokens and settings, and the
//! URLs and token scopes of a repository's requests.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use crate::auth::Credentials;
use crate::reference::RegistryRef;
use crate::transport::Transport;

/// A registry client. Holds the transport, per-host credentials and the
/// tokens obtained so far. Not thread-safe (the plugin has no threads).
pub struct Client<T: Transport> {
    pub(super) transport: T,
    pub(super) credentials: BTreeMap<String, Credentials>,
    pub(super) plain_http: BTreeSet<String>,
    pub(super) auth_cache: RefCell<BTreeMap<String, String>>,
    pub(super) chunk_size: Option<usize>,
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

/// A repository of a registry, as the requests name it.
pub(super) struct Repo<'a> {
    pub(super) host: &'a str,
    pub(super) name: &'a str,
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

    pub(super) fn origin(&self, host: &str) -> String {
        let scheme = if self.plain_http.contains(host) {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{host}")
    }

    pub(super) fn url(&self, repo: &Repo<'_>, tail: &str) -> String {
        format!("{}/v2/{}/{}", self.origin(repo.host), repo.name, tail)
    }

    pub(super) fn scopes(repo: &Repo<'_>, push: bool) -> Vec<String> {
        vec![format!(
            "repository:{}:{}",
            repo.name,
            if push { "pull,push" } else { "pull" }
        )]
    }
}
