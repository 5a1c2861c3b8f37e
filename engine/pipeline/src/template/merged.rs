//! What the merge builds, level by level: the steps with their seals, the slots, the
//! interfaces and the top-level settings of the chain merged so far.

use std::sync::Arc;

use crate::diag::{SourceFile, Span};
use crate::grants::ExecConfinement;
use crate::model::{InputDecl, KeyDecl, SecretDecl, StepDecl};

use super::config::BindingDecl;
use super::interfaces::Interface;
use super::seal::Rule;

/// A step of the chain as merged so far, with its seals.
pub(super) struct MergedStep {
    pub(super) decl: StepDecl,
    pub(super) level: usize,
    pub(super) sealed_all: Option<Rule>,
    pub(super) sealed_keys: Vec<(String, Rule)>,
    pub(super) removed: Option<(Arc<SourceFile>, Span)>,
}

impl MergedStep {
    /// The rule that forbids changing `key` (`with.x`, `grants.fs`, `uses`...).
    pub(super) fn seal_of(&self, key: &str) -> Option<&Rule> {
        if let Some(rule) = &self.sealed_all {
            return Some(rule);
        }
        let parent = key.split_once('.').map(|(p, _)| p);
        self.sealed_keys
            .iter()
            .find(|(k, _)| k == key || Some(k.as_str()) == parent)
            .map(|(_, r)| r)
    }

    /// The first rule that seals the step or one of its keys, if any.
    pub(super) fn any_seal(&self) -> Option<&Rule> {
        self.sealed_all
            .as_ref()
            .or_else(|| self.sealed_keys.first().map(|(_, r)| r))
    }
}

/// A slot a template declares (`slots:`), and how a level below filled it.
pub(super) struct Slot {
    pub(super) name: String,
    pub(super) file: Arc<SourceFile>,
    pub(super) span: Span,
    pub(super) level: usize,
    pub(super) by: String,
    pub(super) required: bool,
    pub(super) needs: Vec<(String, Span)>,
    pub(super) filled: Option<(usize, Arc<SourceFile>, Span)>,
    pub(super) steps: Vec<String>,
}

/// A top-level value with where it was set.
pub(super) struct Setting<T> {
    pub(super) value: T,
    pub(super) span: Span,
    pub(super) file: Option<Arc<SourceFile>>,
}

/// The chain merged so far, from the top template down.
#[derive(Default)]
pub(super) struct Merged {
    pub(super) steps: Vec<MergedStep>,
    pub(super) slots: Vec<Slot>,
    pub(super) interfaces: Vec<Interface>,
    pub(super) template_bindings: Vec<(usize, BindingDecl)>,
    pub(super) name: Option<Setting<String>>,
    pub(super) description: Option<Setting<String>>,
    pub(super) exec_confinement: Option<Setting<ExecConfinement>>,
    pub(super) inputs: Vec<InputDecl>,
    pub(super) secrets: Vec<SecretDecl>,
    pub(super) keys: Vec<KeyDecl>,
    pub(super) sealed: Vec<(String, Rule)>,
}
