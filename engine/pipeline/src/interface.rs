//! Interfaces as a resolved step carries them: the typed params an interface (or a
//! template) declares, and the plugin bound to the interface a step calls.

use std::sync::Arc;

use serde_json::Value;

use crate::diag::{SourceFile, Span};
use crate::plugin::ParamType;

/// A typed value a template takes (`parameters:`), or a param of an interface.
#[derive(Debug, Clone, PartialEq)]
pub struct TypedParam {
    /// Its name.
    pub name: String,
    /// Where the name was written.
    pub span: Span,
    /// Its type.
    pub ty: ParamType,
    /// The value used when none is given; without one it must be given.
    pub default: Option<Value>,
    /// A regular expression string values must match whole, as written, with where.
    pub pattern: Option<(String, Span)>,
    /// What it means.
    pub description: Option<String>,
    /// The file it was declared in.
    pub declared_in: Arc<SourceFile>,
}

/// An interface a step calls, and the plugin bound to it.
#[derive(Debug, Clone, PartialEq)]
pub struct BoundInterface {
    /// The interface's name.
    pub name: String,
    /// Its typed params.
    pub params: Vec<TypedParam>,
    /// The outputs callers may read.
    pub outputs: Vec<String>,
    /// Where it was declared.
    pub declared_in: Arc<SourceFile>,
    /// Where its name was written.
    pub span: Span,
    /// The binding as written (`scan@1`).
    pub binding: String,
    /// The version requirement of the binding, if any.
    pub version_req: Option<String>,
    /// The file holding the binding.
    pub binding_file: Arc<SourceFile>,
    /// Where the binding was written.
    pub binding_span: Span,
}
