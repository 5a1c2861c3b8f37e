//! Every path the crate offered before its modules were cut along their seams still
//! resolves: `flow-engine` and other users name these. A path that stops resolving breaks
//! this file's build. (`model::{Uses, parse_uses, parse_uses_spec}` and
//! `template::is_template_id`, which nothing outside the crate used, are now private.)

#![allow(unused_imports)]

use flow_pipeline::check::{check, expand_host_path};
use flow_pipeline::diag::{
    Diagnostic, Diagnostics, Location, Note, Position, Severity, SourceFile, Span,
};
use flow_pipeline::expr::{
    EvalContext, EvalError, Expression, Reference, Segment, StepOutcome, Template,
};
use flow_pipeline::model::{
    EnvGrantDecl, ExecConfinement, ExecGrantDecl, FsAccess, FsGrantDecl, GrantsDecl, InputDecl,
    InputType, KeyDecl, MAX_MEMORY, ParamDecl, Pipeline, SecretDecl, SecretSource, StepDecl,
    parse_duration, parse_size,
};
use flow_pipeline::plan::{
    DirIdentity, ExecGrant, FsGrant, Plan, PlannedParam, PlannedStep, StepOrigin, TemplateInfo,
};
use flow_pipeline::plugin::{
    Capability, OutputSpec, ParamSpec, ParamType, PluginDescription, PluginRef, PluginResolver,
};
use flow_pipeline::template::{
    BindingDecl, BoundInterface, CatalogDecl, CatalogLocation, Config, Document, Extends,
    FoundTemplate, TemplateDeclaration, TemplateSource, TypedParam, parse_document, read_config,
    read_document, read_template_declaration, render_resolved, resolve,
};
use flow_pipeline::yaml::{Entry, Node, NodeKind, Scalar, parse, resolve_plain};
use flow_pipeline::{
    BindingDecl as _, Capability as _, CatalogDecl as _, CatalogLocation as _, Config as _,
    DEFAULT_FILE, Diagnostic as _, Diagnostics as _, DirIdentity as _, Document as _,
    EnvGrantDecl as _, EvalContext as _, EvalError as _, ExecConfinement as _, ExecGrant as _,
    ExecGrantDecl as _, Expression as _, FoundTemplate as _, FsAccess as _, FsGrant as _,
    InputDecl as _, InputType as _, KeyDecl as _, Location as _, Note as _, OutputSpec as _,
    ParamSpec as _, ParamType as _, Pipeline as _, Plan as _, PlannedParam as _, PlannedStep as _,
    PluginDescription as _, PluginRef as _, PluginResolver as _, Position as _, Reference as _,
    SecretDecl as _, SecretSource as _, Severity as _, SourceFile as _, Span as _, StepDecl as _,
    StepOrigin as _, StepOutcome as _, Template as _, TemplateDeclaration as _, TemplateInfo as _,
    TemplateSource as _, load,
};

#[test]
fn the_paths_name_the_same_items_as_before() {
    let _: fn(&str) -> Option<u64> = flow_pipeline::model::parse_size;
    let _: fn(&str) -> Option<u64> = parse_size;
    assert_eq!(MAX_MEMORY, 4 << 30);
    assert_eq!(DEFAULT_FILE, "flow.yaml");
    assert_eq!(FsAccess::Read, flow_pipeline::FsAccess::Read);
    assert_eq!(ExecConfinement::default(), ExecConfinement::Preferred);
    assert_eq!(
        DirIdentity::default(),
        flow_pipeline::DirIdentity::default()
    );
    let _: fn(&str) -> Result<std::path::PathBuf, String> = flow_pipeline::expand_host_path;
    let _: fn(&str) -> Result<std::path::PathBuf, String> = expand_host_path;
}
