//! The chain of templates: the pipeline file, the template it extends, the template that
//! one extends...; loaded from the [`TemplateSource`], their headers checked, and each
//! template given its parameters' values by the levels below it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

use crate::diag::{Diagnostic, Position, SourceFile, Span, did_you_mean_help};
use crate::interface::TypedParam;
use crate::model::{Reader, StepMode};
use crate::origin::TemplateInfo;
use crate::yaml::{Entry, Node};

use super::document::{Document, Extends, read_extends};
use super::params::{check_typed_value, read_typed_param};
use super::problems::Problems;
use super::source::{FoundTemplate, TemplateSource};
use super::substitute::substitute;

/// The most templates a chain may hold (a longer chain is surely a mistake).
const MAX_CHAIN: usize = 16;

/// The keys of a template file.
const TEMPLATE_KEYS: [&str; 18] = [
    "template",
    "id",
    "version",
    "description",
    "extends",
    "with",
    "parameters",
    "name",
    "exec-confinement",
    "inputs",
    "secrets",
    "keys",
    "sealed",
    "interfaces",
    "bindings",
    "slots",
    "steps",
    "fill",
];

/// One document of the chain: the pipeline file (level 0) or a template.
pub(super) struct Level {
    pub(super) file: Arc<SourceFile>,
    pub(super) root: Node,
    /// Relative `uses:` paths are resolved against it.
    pub(super) dir: PathBuf,
    pub(super) info: Option<TemplateInfo>,
    pub(super) extends: Option<Extends>,
    pub(super) params: Vec<TypedParam>,
    pub(super) values: BTreeMap<String, Value>,
}

impl Level {
    /// The top-level entry `key` of the level's file.
    pub(super) fn entry(&self, key: &str) -> Option<&Entry> {
        self.root
            .as_mapping()
            .and_then(|entries| entries.iter().find(|e| e.key_text() == key))
    }

    /// The level in messages: `acme/base@1.0.0`, or the pipeline file.
    pub(super) fn name(&self) -> String {
        match &self.info {
            Some(info) => info.name(),
            None => format!("the pipeline file `{}`", self.file.name),
        }
    }
}

/// Loads the chain: the document, then each template it (transitively) extends.
pub(super) fn load_chain(
    problems: &mut Problems,
    source: &dyn TemplateSource,
    document: Document,
) -> Vec<Level> {
    let mut chain = vec![Level {
        file: Arc::clone(&document.file),
        root: document.root,
        dir: document.base_dir,
        info: None,
        extends: document.extends,
        params: Vec::new(),
        values: BTreeMap::new(),
    }];
    loop {
        let last = chain.len() - 1;
        let Some(extends) = chain[last].extends.clone() else {
            break;
        };
        let child_file = Arc::clone(&chain[last].file);
        if let Some(first) = chain
            .iter()
            .position(|l| l.info.as_ref().is_some_and(|i| i.id == extends.id))
        {
            let names: Vec<String> = chain[first..]
                .iter()
                .filter_map(|l| l.info.as_ref().map(|i| i.id.clone()))
                .collect();
            let d = problems.error(
                &child_file,
                extends.span,
                format!(
                    "cycle in `extends`: {} -> {}",
                    names.join(" -> "),
                    extends.id
                ),
            );
            for level in &chain[first..last] {
                if let Some(e) = &level.extends {
                    problems.note(
                        d,
                        &level.file,
                        e.span,
                        format!("{} extends `{}` here", level.name(), e.id),
                    );
                }
            }
            problems.help(
                d,
                "a template cannot extend itself, directly or through others",
            );
            break;
        }
        if chain.len() > MAX_CHAIN {
            problems.error(
                &child_file,
                extends.span,
                format!("more than {MAX_CHAIN} templates extend one another"),
            );
            break;
        }
        let found = match source.find(&extends.id, &extends.requirement, &extends.requirement_text)
        {
            Ok(found) => found,
            Err(message) => {
                let (message, help) = match message.split_once('\n') {
                    Some((m, h)) => (m.to_owned(), Some(h.to_owned())),
                    None => (message, None),
                };
                let d = problems.error(&child_file, extends.span, message);
                if let Some(help) = help {
                    problems.help(d, help);
                }
                break;
            }
        };
        let file = SourceFile::new(found.display_path.clone(), found.text.clone());
        let root = match crate::yaml::parse(&file) {
            Ok((Some(root), mut yaml_problems)) => {
                problems.list.append(&mut yaml_problems);
                root
            }
            Ok((None, _)) => {
                let start = Position { line: 1, column: 1 };
                problems.error(&file, Span::new(start, start), "the template file is empty");
                break;
            }
            Err(d) => {
                problems.list.push(d);
                break;
            }
        };
        let mut level = Level {
            file,
            root,
            dir: found.dir.clone(),
            info: Some(found.info.clone()),
            extends: None,
            params: Vec::new(),
            values: BTreeMap::new(),
        };
        if !read_template_header(problems, &mut level, &found, &extends, &child_file) {
            break;
        }
        chain.push(level);
    }
    chain
}

/// Checks `template:`, `id`, `version`; reads `extends` and `parameters`.
fn read_template_header(
    problems: &mut Problems,
    level: &mut Level,
    found: &FoundTemplate,
    wanted: &Extends,
    child: &Arc<SourceFile>,
) -> bool {
    let file = Arc::clone(&level.file);
    let top = Span::new(level.root.span.start, level.root.span.start);
    let Some(entries) = level.root.as_mapping() else {
        problems.error(
            &file,
            level.root.span,
            format!(
                "a template must be a mapping, found {}",
                level.root.type_name()
            ),
        );
        return false;
    };
    let mut reader = Reader::new(&file, &found.dir, StepMode::Template);
    reader.unknown_keys(entries, &TEMPLATE_KEYS, "in a template");
    let find = |k: &str| entries.iter().find(|e| e.key_text() == k);
    match find("template") {
        Some(e) if e.value.is_int(1) => {}
        Some(e) => {
            reader.error(e.value.span, "this flow reads `template: 1`");
        }
        None => {
            reader.error(top, "missing `template: 1` at the top of the template");
        }
    }
    match find("id").and_then(|e| e.value.as_str().map(|s| (s, e.value.span))) {
        Some((id, _)) if id == wanted.id => {}
        Some((id, span)) => {
            let d = Diagnostic::error(
                &file,
                span,
                format!(
                    "the catalog gave this template for `{}`, but its id is `{id}`",
                    wanted.id
                ),
            )
            .with_note_at(child, wanted.span, "asked for here");
            reader.problems.push(d);
        }
        None => {
            reader.error(top, "missing `id` of the template");
        }
    }
    match find("version").map(|e| (e.value.to_json(), e.value.span)) {
        Some((Value::String(v), span)) => {
            if semver::Version::parse(&v).is_err() {
                reader.error(
                    span,
                    format!("`version: {v}` is not a semver version such as `1.2.0`"),
                );
            }
        }
        Some((_, span)) => {
            reader.error(
                span,
                "`version` must be a semver version such as `1.2.0`, quoted or not",
            );
        }
        None => {
            reader.error(top, "missing `version` of the template");
        }
    }
    if let Some(e) = find("extends") {
        level.extends = read_extends(&mut reader, &e.value);
    }
    if let Some(e) = find("parameters")
        && let Some(params) = reader.mapping(&e.value, "`parameters`")
    {
        level.params = params
            .iter()
            .filter_map(|p| read_typed_param(&mut reader, p, "parameter"))
            .collect();
    }
    let ok = reader.problems.is_empty();
    problems.list.append(&mut reader.problems);
    ok
}

/// Gives every template its parameters' values from the `with:` of the levels below.
pub(super) fn bind_parameters(problems: &mut Problems, chain: &mut [Level]) {
    // Which parameter each level's `with:` gives, checked to exist above it.
    for k in 1..chain.len() {
        let mut values = BTreeMap::new();
        for param in chain[k].params.clone() {
            let mut given: Vec<(usize, Node, Span)> = Vec::new();
            for (j, level) in chain.iter().enumerate().take(k) {
                if let Some(with) = level.entry("with").and_then(|e| e.value.as_mapping())
                    && let Some(entry) = with.iter().find(|e| e.key_text() == param.name)
                {
                    given.push((j, entry.value.clone(), entry.key.span));
                }
            }
            // Nearest to the template first.
            given.sort_by_key(|(j, _, _)| std::cmp::Reverse(*j));
            if given.len() > 1 {
                let (j1, _, s1) = &given[0];
                let (j2, _, s2) = &given[1];
                let (f1, f2) = (Arc::clone(&chain[*j1].file), Arc::clone(&chain[*j2].file));
                let by = chain[*j1].name();
                let d = problems.error(
                    &f2,
                    *s2,
                    format!(
                        "parameter `{}` of {} is already given by {by}",
                        param.name,
                        chain[k].name()
                    ),
                );
                problems.note(d, &f1, *s1, "given here");
                problems.help(
                    d,
                    format!("a parameter is given once; {by} fixes it for the levels below"),
                );
            }
            let value = match given.first() {
                Some((j, node, _)) => {
                    let node =
                        substitute(node, &chain[*j].values, &chain[*j].file, &mut problems.list);
                    Some((node.to_json(), node.span, Arc::clone(&chain[*j].file)))
                }
                None => None,
            };
            match value {
                Some((value, span, file)) => {
                    if value.to_string().contains("${{") {
                        let d = problems.error(
                            &file,
                            span,
                            format!(
                                "parameter `{}` of {}: a parameter value cannot hold `${{{{`",
                                param.name,
                                chain[k].name()
                            ),
                        );
                        problems.help(d, "parameters are fixed when the pipeline is resolved; run-time values are `inputs`");
                    } else if let Some(message) = check_typed_value(&param, &value) {
                        let d = problems.error(
                            &file,
                            span,
                            format!(
                                "parameter `{}` of {}: {message}",
                                param.name,
                                chain[k].name()
                            ),
                        );
                        problems.note(d, &param.declared_in, param.span, "declared here");
                    }
                    values.insert(param.name.clone(), value);
                }
                None => match &param.default {
                    Some(default) => {
                        values.insert(param.name.clone(), default.clone());
                    }
                    None => {
                        let child = &chain[k - 1];
                        let (file, span) = match &child.extends {
                            Some(e) => (Arc::clone(&child.file), e.span),
                            None => (Arc::clone(&child.file), child.root.span),
                        };
                        let d = problems.error(
                            &file,
                            span,
                            format!("missing parameter `{}` of {}", param.name, chain[k].name()),
                        );
                        problems.note(d, &param.declared_in, param.span, "declared here");
                        problems.help(
                            d,
                            format!(
                                "give it: `with: {{ {}: <{}> }}`",
                                param.name,
                                param.ty.described()
                            ),
                        );
                    }
                },
            }
        }
        chain[k].values = values;
    }
    // `with:` entries that no template above takes.
    for j in 0..chain.len() {
        let Some(with) = chain[j].entry("with").map(|e| e.value.clone()) else {
            continue;
        };
        let file = Arc::clone(&chain[j].file);
        let Some(entries) = with.as_mapping() else {
            problems.error(
                &file,
                with.span,
                format!("`with` must be a mapping, found {}", with.type_name()),
            );
            continue;
        };
        if chain.len() == j + 1 {
            let d = problems.error(
                &file,
                with.span,
                "`with` gives parameters, but this file extends no template",
            );
            problems.help(d, "add `extends: <namespace>/<template>@<version>`");
            continue;
        }
        let above: Vec<&TypedParam> = chain[j + 1..]
            .iter()
            .flat_map(|l| l.params.iter())
            .collect();
        for entry in entries {
            let key = entry.key_text();
            if !above.iter().any(|p| p.name == key) {
                let help = did_you_mean_help(key, above.iter().map(|p| p.name.as_str()))
                    .unwrap_or_else(|| {
                        if above.is_empty() {
                            "the templates above take no parameters".to_owned()
                        } else {
                            let list: Vec<String> =
                                above.iter().map(|p| format!("`{}`", p.name)).collect();
                            format!("the parameters are {}", list.join(", "))
                        }
                    });
                let d = problems.error(&file, entry.key.span, format!("unknown parameter `{key}`"));
                problems.help(d, help);
            }
        }
    }
}
