//! What [`crate::verify()`] trusts: the owner key and the time.

use std::time::SystemTime;

use crate::keys::PublicKey;

/// What [`verify`](crate::verify()) trusts.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// The owner key the user expects. Without it, the bundle's own `owner.pub` is
    /// trusted, which proves integrity but not who signed.
    pub trusted_owner: Option<PublicKey>,
    /// "Now" for the layout's expiry, unix seconds.
    pub now_unix_s: u64,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            trusted_owner: None,
            now_unix_s: now.as_secs(),
        }
    }
}
