//! Where templates come from: the engine implements [`TemplateSource`] (catalogs, the
//! lock, the cache) and answers with a [`FoundTemplate`].

use std::path::PathBuf;

use crate::origin::TemplateInfo;

/// A template found in a catalog.
#[derive(Debug, Clone)]
pub struct FoundTemplate {
    /// The text of its `template.yaml`.
    pub text: String,
    /// The path shown for it in messages.
    pub display_path: String,
    /// Its directory (relative `uses:` paths of its steps are resolved against it).
    pub dir: PathBuf,
    /// Its identity and digest.
    pub info: TemplateInfo,
}

/// Finds templates: the engine's catalogs, lock and cache.
pub trait TemplateSource {
    /// The template `id` at the version matching `requirement` (written as
    /// `requirement_text`), or why there is none, in one message (help after a
    /// line break, if any).
    fn find(
        &self,
        id: &str,
        requirement: &semver::VersionReq,
        requirement_text: &str,
    ) -> Result<FoundTemplate, String>;
}
