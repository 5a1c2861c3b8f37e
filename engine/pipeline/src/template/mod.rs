//! Shared templates: a pipeline file that `extends` a template of a catalog, templates
//! that extend templates, and the rules that merge them (see `docs/templates.md`).
//!
//! ```text
//! read_document(flow.yaml) -> Document --resolve(&dyn TemplateSource, bindings)--> Pipeline
//! ```
//!
//! This module merges; it does not look for templates. The engine implements
//! [`TemplateSource`] (catalog directories, git catalogs, the lock, the cache,
//! signatures) and gives the bindings of the user and organisation configs.
//!
//! The files of this module, in the order a resolution goes through them:
//!
//! - `document.rs`: a pipeline file read far enough to know what it extends ([`Document`]);
//! - `config.rs`: user and organisation configs, catalogs and interface bindings;
//! - `source.rs`: the [`TemplateSource`] the engine implements to find templates;
//! - `resolve.rs`: [`resolve`], which runs the steps below and reports every problem;
//! - `chain.rs`: the chain of templates, loaded, and given their parameters' values;
//! - `params.rs`: typed parameters, read and checked; `substitute.rs`: `${{ params.X }}`;
//! - `merge.rs`: one level merged into the levels above (`merged.rs` holds the state),
//!   through `steps.rs` (new and changed steps), `slots.rs` (slots and fills),
//!   `interfaces.rs` (declared and bound) and `seal.rs` (what a template seals);
//! - `assemble.rs`: the merged chain checked as a whole and turned into a [`Pipeline`];
//! - `problems.rs`: the problems found on the way;
//! - `declaration.rs`: a template's identity and sealed steps, read without resolving it;
//! - `render.rs`: [`render_resolved`], the `--resolved` printer.
//!
//! [`Pipeline`]: crate::Pipeline

mod assemble;
mod chain;
mod config;
mod declaration;
mod document;
mod interfaces;
mod merge;
mod merged;
mod params;
mod problems;
mod render;
mod resolve;
mod seal;
mod slots;
mod source;
mod steps;
mod substitute;

pub use crate::interface::{BoundInterface, TypedParam};
pub use config::{BindingDecl, CatalogDecl, CatalogLocation, Config, read_config};
pub use declaration::{TemplateDeclaration, read_template_declaration};
pub use document::{Document, Extends, parse_document, read_document};
pub use render::render_resolved;
pub use resolve::resolve;
pub use source::{FoundTemplate, TemplateSource};
