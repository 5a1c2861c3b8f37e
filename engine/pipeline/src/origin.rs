//! Where the steps of a resolved pipeline came from: the chain of templates
//! ([`TemplateInfo`]) and each step's place in it ([`StepOrigin`]).

/// One template of the chain a pipeline was resolved from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateInfo {
    /// Its id, `namespace/name`.
    pub id: String,
    /// Its version (semver).
    pub version: String,
    /// The sha256 (hex) of its directory's content (see `docs/templates.md`).
    pub sha256: String,
    /// Where it was found: the catalog's location and the template's directory in it.
    pub source: String,
}

impl TemplateInfo {
    /// `id@version`.
    pub fn name(&self) -> String {
        format!("{}@{}", self.id, self.version)
    }
}

/// Where a step of a resolved pipeline came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepOrigin {
    /// The template that declared it (an index into [`crate::Plan::templates`]), or
    /// `None` for the pipeline file itself.
    pub template: Option<usize>,
    /// Whether a template seals it (`sealed: true` or sealed keys).
    pub sealed: bool,
    /// The slot it fills, if it was added through `fill:`.
    pub slot: Option<String>,
    /// The interface it implements (`uses: interface:<name>`), if any.
    pub interface: Option<String>,
}
