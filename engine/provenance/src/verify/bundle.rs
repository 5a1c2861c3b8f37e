//! An export directory and its in-memory form, the [`Bundle`] that [`crate::verify()`]
//! checks: the files' names, writing and reading them.

use std::path::{Path, PathBuf};

use crate::dsse::Envelope;
use crate::keys::PublicKey;
use crate::record::StepAttestation;

/// The layout's file name in an export.
pub const LAYOUT_FILE: &str = "root.layout";
/// The run record's file name in an export.
pub const RUN_FILE: &str = "run.json";
/// The owner key's file name in an export.
pub const OWNER_KEY_FILE: &str = "owner.pub";
/// Suffix of statement files: `<step>.intoto.json`.
pub const STATEMENT_SUFFIX: &str = ".intoto.json";

/// Everything needed to verify a run, from the store or an export directory.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The layout envelope.
    pub layout: Envelope,
    /// The owner key that signed the layout (and, in flow, everything else).
    pub owner: PublicKey,
    /// The run record envelope.
    pub run: Envelope,
    /// Link envelopes by file name, in execution order when [`Bundle::ordered`].
    pub links: Vec<(String, Envelope)>,
    /// Statement envelopes by step id, in execution order when [`Bundle::ordered`].
    pub statements: Vec<(String, Envelope)>,
    /// Whether `links` and `statements` are in the order the store holds the steps (then a
    /// reordering in the store is reported); a directory has no order.
    pub ordered: bool,
    /// Files of an export that could not be read as envelopes, with the reason.
    pub unreadable: Vec<(String, String)>,
}

/// Errors writing or reading an export directory.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// A required file is not a valid envelope or key.
    #[error("{path}: {reason}")]
    Format {
        /// The path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Exports go to a new or empty directory, so no stale link is verified by mistake.
    #[error("{0}: the export directory is not empty")]
    NotEmpty(PathBuf),
}

impl Bundle {
    /// A bundle from memory, `steps` in execution order (so [`Bundle::ordered`] is true).
    pub fn new(
        layout: Envelope,
        owner: PublicKey,
        run: Envelope,
        steps: &[StepAttestation],
    ) -> Self {
        Self {
            layout,
            owner,
            run,
            links: steps
                .iter()
                .map(|s| (s.link_file_name.clone(), s.link.clone()))
                .collect(),
            statements: steps
                .iter()
                .map(|s| (s.step_id.clone(), s.statement.clone()))
                .collect(),
            ordered: true,
            unreadable: Vec::new(),
        }
    }

    /// Writes the export files to `dir`, which must not exist or be empty.
    pub fn write_dir(&self, dir: &Path) -> Result<(), ExportError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| ExportError::Io { path, source }
        };
        if let Ok(mut entries) = std::fs::read_dir(dir)
            && entries.next().is_some()
        {
            return Err(ExportError::NotEmpty(dir.to_owned()));
        }
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let write = |name: &str, bytes: &[u8]| {
            let path = dir.join(name);
            std::fs::write(&path, bytes).map_err(io(&path))
        };
        write(LAYOUT_FILE, &self.layout.to_json())?;
        write(RUN_FILE, &self.run.to_json())?;
        write(OWNER_KEY_FILE, self.owner.to_pem().as_bytes())?;
        for (name, link) in &self.links {
            write(name, &link.to_json())?;
        }
        for (step, statement) in &self.statements {
            write(&format!("{step}{STATEMENT_SUFFIX}"), &statement.to_json())?;
        }
        Ok(())
    }

    /// Reads an export directory. A missing or invalid `root.layout`, `run.json` or
    /// `owner.pub` is an error; an unreadable link or statement is kept in
    /// [`Bundle::unreadable`] and reported by [`verify`](crate::verify()).
    pub fn read_dir(dir: &Path) -> Result<Self, ExportError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).map_err(|source| ExportError::Io { path, source })
        };
        let envelope = |name: &str| {
            Envelope::from_json(&read(name)?).map_err(|e| ExportError::Format {
                path: dir.join(name),
                reason: e.to_string(),
            })
        };
        let layout = envelope(LAYOUT_FILE)?;
        let run = envelope(RUN_FILE)?;
        let owner_pem = String::from_utf8_lossy(&read(OWNER_KEY_FILE)?).into_owned();
        let owner = PublicKey::from_pem(&owner_pem).map_err(|e| ExportError::Format {
            path: dir.join(OWNER_KEY_FILE),
            reason: e.to_string(),
        })?;
        let mut bundle = Self {
            layout,
            owner,
            run,
            links: vec![],
            statements: vec![],
            ordered: false,
            unreadable: vec![],
        };
        let entries = std::fs::read_dir(dir).map_err(|source| ExportError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| ExportError::Io {
                path: dir.to_owned(),
                source,
            })?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        for name in names {
            let statement_step = name.strip_suffix(STATEMENT_SUFFIX).map(str::to_owned);
            if !name.ends_with(".link") && statement_step.is_none() {
                continue;
            }
            match read(&name)
                .map_err(|e| e.to_string())
                .and_then(|b| Envelope::from_json(&b).map_err(|e| e.to_string()))
            {
                Ok(env) => match statement_step {
                    Some(step) => bundle.statements.push((step, env)),
                    None => bundle.links.push((name, env)),
                },
                Err(reason) => bundle.unreadable.push((name, reason)),
            }
        }
        Ok(bundle)
    }
}

/// Writes `bundle` to `dir` (see [`Bundle::write_dir`]).
pub fn export(dir: &Path, bundle: &Bundle) -> Result<(), ExportError> {
    bundle.write_dir(dir)
}
