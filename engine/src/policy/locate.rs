//! Finding the templates of a run's recorded chain, by digest.

use std::path::PathBuf;

use flow_pipeline::{SourceFile, TemplateDeclaration, read_template_declaration};
use flow_provenance::TemplateRef;

use crate::catalog::digest::{TEMPLATE_FILE, cached_template_dir, template_digest};

/// Finds templates by digest: in the directories given (`--template-dir`), else in the
/// template cache. Every directory's content is hashed, so a template is only ever read
/// from a directory whose digest is the one the run recorded.
#[derive(Debug, Clone, Default)]
pub struct TemplateLocator {
    cache_dir: Option<PathBuf>,
    dirs: Vec<(PathBuf, String)>,
}

impl TemplateLocator {
    /// A locator over the template cache under `cache_dir` (`<cache_dir>/templates/
    /// <sha256>/`) and the template directories `dirs`, whose digests are computed now
    /// (an error names a directory that cannot be hashed).
    pub fn new(cache_dir: Option<PathBuf>, dirs: &[PathBuf]) -> Result<Self, String> {
        let mut hashed = Vec::with_capacity(dirs.len());
        for dir in dirs {
            let digest = template_digest(dir)
                .map_err(|e| format!("cannot use the template directory {}: {e}", dir.display()))?;
            hashed.push((dir.clone(), digest));
        }
        Ok(TemplateLocator {
            cache_dir,
            dirs: hashed,
        })
    }

    /// The directory holding `template` (with its digest checked) and its declaration.
    pub fn find(&self, template: &TemplateRef) -> Result<(PathBuf, TemplateDeclaration), String> {
        let name = template.name();
        let sha256 = &template.sha256;
        if sha256.len() != 64
            || !sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(format!(
                "template {name}: the recorded digest `{sha256}` is not a sha256"
            ));
        }
        let dir = match self.dirs.iter().find(|(_, d)| d == sha256) {
            Some((dir, _)) => dir.clone(),
            None => {
                let cached = self
                    .cache_dir
                    .as_deref()
                    .map(|root| cached_template_dir(root, sha256));
                let Some(cached) = cached.filter(|dir| dir.exists()) else {
                    let looked = match &self.cache_dir {
                        Some(root) => format!(
                            "it is not in the template cache ({})",
                            cached_template_dir(root, sha256).display()
                        ),
                        None => "there is no template cache (no --cache-dir, FLOW_CACHE_DIR or home directory)".into(),
                    };
                    let dirs = if self.dirs.is_empty() {
                        "no --template-dir was given".to_owned()
                    } else {
                        format!("no --template-dir of the {} given has it", self.dirs.len())
                    };
                    return Err(format!(
                        "template {name} (sha256 {sha256}) is missing: {looked} and {dirs}; give its directory with --template-dir"
                    ));
                };
                let found = template_digest(&cached)
                    .map_err(|e| format!("template {name}: the cached copy: {e}"))?;
                if &found != sha256 {
                    return Err(format!(
                        "template {name}: the cached copy {} has sha256 {found}, not the recorded {sha256} (the cache was changed); give the template with --template-dir",
                        cached.display()
                    ));
                }
                cached
            }
        };
        let path = dir.join(TEMPLATE_FILE);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("template {name}: {}: {e}", path.display()))?;
        let declaration =
            read_template_declaration(&SourceFile::new(path.display().to_string(), text))
                .map_err(|d| format!("template {name}: {}", d.render().trim_end()))?;
        if declaration.id != template.id || declaration.version.to_string() != template.version {
            return Err(format!(
                "template {name}: {} declares {}@{}, not {name}",
                path.display(),
                declaration.id,
                declaration.version,
            ));
        }
        Ok((dir, declaration))
    }
}
