//! A step's grants: the secrets and keys it names are declared, and the directories of its
//! `fs` grants and `exec` reads exist and are reached without passing through a link.

use std::path::Path;
use std::sync::Arc;

use crate::diag::Span;
use crate::grant_path::{self, WalkError, Walked};
use crate::host_path::host_path_parts;
use crate::model::StepDecl;
use crate::plan::{ExecGrant, FsGrant};

use super::checker::Checker;

/// Every secret a step names (in `grants.secrets` or an env grant) is declared.
pub(super) fn check_secret_grants(checker: &mut Checker, step: &StepDecl) {
    let pipeline = checker.pipeline;
    let declared = || pipeline.secrets.iter().map(|s| s.name.as_str());
    let named = step
        .grants
        .secrets
        .iter()
        .chain(step.grants.env.iter().filter_map(|e| e.secret.as_ref()));
    let mut problems = Vec::new();
    for (name, span) in named {
        if !checker.secrets.contains(name.as_str()) {
            let help = checker.suggest(name, declared()).unwrap_or_else(|| {
                format!("declare it: `secrets: {{ {name}: {{ env: VARIABLE }} }}` at the top of the file")
            });
            let kind = if step
                .grants
                .secrets
                .iter()
                .any(|(n, s)| n == name && s == span)
            {
                "grants.secrets"
            } else {
                "grants.env"
            };
            problems.push((
                Arc::clone(step.file_of(kind)),
                *span,
                format!("unknown secret `{name}`"),
                help,
            ));
        }
    }
    let keys = || pipeline.keys.iter().map(|k| k.name.as_str());
    for (name, span) in &step.grants.keys {
        if !checker.keys.contains(name.as_str()) {
            let help = checker.suggest(name, keys()).unwrap_or_else(|| {
                format!("declare it: `keys: {{ {name}: {{ file: path/to/key.pem }} }}` at the top of the file")
            });
            problems.push((
                Arc::clone(step.file_of("grants.keys")),
                *span,
                format!("unknown key `{name}`"),
                help,
            ));
        }
    }
    for (file, span, message, help) in problems {
        checker.file = file;
        checker.error(span, message).help = Some(help);
    }
}

/// The directories each `exec` grant `reads`, made absolute (`~/` is the host
/// user's home) and checked to exist without passing through a symbolic link below the
/// home directory or the variable's value. The commands themselves are resolved by the
/// engine, which knows the host's `PATH`.
pub(super) fn resolve_exec_grants(checker: &mut Checker, step: &StepDecl) -> Vec<ExecGrant> {
    checker.file = Arc::clone(step.file_of("grants.exec"));
    let mut out = Vec::new();
    for grant in &step.grants.exec {
        let mut reads = Vec::new();
        let mut reads_identity = Vec::new();
        for (written, span) in &grant.reads {
            let (start, rest) = match host_path_parts(written) {
                Ok(parts) => parts,
                Err(message) => {
                    checker.error(*span, message);
                    continue;
                }
            };
            let walked = match start {
                Some(start) => {
                    let start = if start.is_absolute() {
                        start
                    } else {
                        checker.pipeline.base_dir.join(start)
                    };
                    match std::fs::canonicalize(&start) {
                        Ok(trusted) => grant_path::walk(&trusted, &start, &rest),
                        Err(_) => Err(WalkError::Missing),
                    }
                }
                None => walk_written(checker, &rest),
            };
            match walked {
                Ok(walked) => {
                    reads.push(walked.path);
                    reads_identity.push(walked.identity);
                }
                Err(WalkError::NotDirectory) => {
                    checker.error(*span, format!("`{written}` is not a directory"));
                }
                Err(WalkError::Missing) => {
                    checker.error(*span, format!("directory `{written}` does not exist"))
                        .help = Some(
                        "paths are relative to the directory of the pipeline file; `~/` is your home, `${NAME:-fallback}` a host variable".into(),
                    );
                }
                Err(link) => link_error(checker, *span, written, link),
            }
        }
        out.push(ExecGrant {
            command: grant.command.clone(),
            span: grant.span,
            reads,
            reads_identity,
            source: Arc::clone(&checker.file),
        });
    }
    out
}

/// The directories of the `fs` grants, each walked without following a link.
pub(super) fn resolve_fs_grants(checker: &mut Checker, step: &StepDecl) -> Vec<FsGrant> {
    checker.file = Arc::clone(step.file_of("grants.fs"));
    let mut out = Vec::new();
    for grant in &step.grants.fs {
        match walk_written(checker, Path::new(&grant.path)) {
            Ok(walked) => out.push(FsGrant {
                path: walked.path,
                written: grant.path.clone(),
                access: grant.access,
                hash: grant.hash,
                span: grant.span,
                source: Arc::clone(&checker.file),
                identity: walked.identity,
            }),
            Err(WalkError::NotDirectory) => {
                checker
                    .error(
                        grant.span,
                        format!("granted path `{}` is not a directory", grant.path),
                    )
                    .help = Some("grant the directory that holds it".into());
            }
            Err(WalkError::Missing) => {
                checker
                    .error(
                        grant.span,
                        format!("granted directory `{}` does not exist", grant.path),
                    )
                    .help = Some("paths are relative to the directory of the pipeline file".into());
            }
            Err(link) => link_error(checker, grant.span, &grant.path, link),
        }
    }
    out
}

/// Walks a granted path as written: from `/` when it is absolute, from the pipeline's
/// directory otherwise.
fn walk_written(checker: &Checker, path: &Path) -> Result<Walked, WalkError> {
    if path.is_absolute() {
        return grant_path::walk(Path::new("/"), Path::new(""), path);
    }
    match &checker.base {
        Some(base) => grant_path::walk(base, Path::new(""), path),
        None => Err(WalkError::Missing),
    }
}

/// Refuses a grant whose path passes through a symbolic link.
fn link_error(checker: &mut Checker, span: Span, written: &str, problem: WalkError) {
    let WalkError::Link {
        link,
        target,
        parent,
        real,
    } = problem
    else {
        return;
    };
    let guard = format!(
        "a step that can write `{}` could otherwise redirect this grant",
        parent.display()
    );
    let help = match real {
        Some(real) => format!(
            "grant the real directory (`{}`) if that is what you mean; {guard}",
            real.display()
        ),
        None => format!("the link leads to no directory: grant a real one; {guard}"),
    };
    checker
        .error(
            span,
            format!(
                "granted directory `{written}` passes through a symbolic link: `{}` -> `{}`",
                link.display(),
                target.display()
            ),
        )
        .help = Some(help);
}
