//! Provenance commands: `flow keys generate`, `flow attest export|show`,
//! `flow verify`, and the signing key every `flow run` uses.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use flow_engine::verification::{self, Bundle, Policy, PolicyCheck, VerificationError};
use flow_provenance::keys::{KeyPairPaths, load_public_key, load_signing_key, write_key_pair};
use flow_provenance::link::LinkPayload;
use flow_provenance::{KeyError, PublicKey, SigningKey, TemplateOrigin};
use flow_store::{RunId, Store};

use crate::{Failure, Style, exit};

/// The prefix of a `--signing-key` that names an ssh-agent held key.
const AGENT_PREFIX: &str = "ssh-agent:";

/// The key `flow run` signs with: `--signing-key` / `FLOW_SIGNING_KEY` (a file, or
/// `ssh-agent:[SELECTOR]`), else the user's own key in `~/.local/share/flow/keys`,
/// created there on first use (said once, on stderr): provenance is never skipped
/// silently, and the key never lives where a step can be granted.
pub(crate) fn signing_key(
    flag: Option<&Path>,
    data_dir: &Path,
) -> Result<Arc<SigningKey>, Failure> {
    refuse_key_in_data_dir(data_dir)?;
    if let Some(spec) = flag {
        return load_configured_key(spec).map(Arc::new);
    }
    let dir = crate::places::key_dir().ok_or_else(crate::no_home)?;
    let paths = KeyPairPaths::in_dir(&dir);
    if paths.private_key.exists() {
        return load_signing_key(&paths.private_key)
            .map(Arc::new)
            .map_err(|e| Failure::Invalid(format!("error: cannot load your signing key: {e}")));
    }
    let key = SigningKey::generate().map_err(|e| Failure::Internal(e.to_string()))?;
    crate::places::create_private_dir(&dir)
        .map_err(|e| Failure::Io(format!("cannot create {}: {e}", dir.display())))?;
    let written = write_key_pair(&dir, &key)
        .map_err(|e| Failure::Io(format!("cannot save a signing key: {e}")))?;
    eprintln!(
        "note: created your signing key {} (key id {}); every run's provenance is signed with it",
        written.private_key.display(),
        &key.keyid()[..16]
    );
    // Loaded back, so that the key knows the file it lives in (for the checks that
    // keep it out of every step's reach).
    load_signing_key(&written.private_key)
        .map(Arc::new)
        .map_err(|e| Failure::Io(format!("cannot load the new signing key: {e}")))
}

/// The file of the key `flow run` would sign with, if it is a file (for `flow check`).
pub(crate) fn signing_key_file(flag: Option<&Path>) -> Option<PathBuf> {
    match flag {
        Some(spec) if spec.to_string_lossy().starts_with(AGENT_PREFIX) => None,
        Some(path) => Some(path.to_path_buf()),
        None => crate::places::key_dir().map(|d| KeyPairPaths::in_dir(&d).private_key),
    }
}

/// A key named by `--signing-key`: a PKCS#8 PEM file, or `ssh-agent:[SELECTOR]`.
fn load_configured_key(spec: &Path) -> Result<SigningKey, Failure> {
    let text = spec.to_string_lossy();
    if let Some(selector) = text.strip_prefix(AGENT_PREFIX) {
        let Some(socket) = std::env::var_os("SSH_AUTH_SOCK").filter(|s| !s.is_empty()) else {
            return Err(Failure::Invalid(
                "error: --signing-key ssh-agent: needs a running agent, but SSH_AUTH_SOCK is not set".into(),
            ));
        };
        return SigningKey::from_agent(Path::new(&socket), selector)
            .map_err(|e| Failure::Invalid(format!("error: cannot use the ssh-agent key: {e}")));
    }
    load_signing_key(spec).map_err(|e| {
        Failure::Invalid(format!(
            "error: cannot load the signing key {}: {e}",
            spec.display()
        ))
    })
}

/// Data dirs of earlier versions kept the signing key in `DATA_DIR/keys`, where a
/// step granted the repository could read or replace it. Such a key is not used:
/// the user decides whether to keep it.
fn refuse_key_in_data_dir(data_dir: &Path) -> Result<(), Failure> {
    let legacy = KeyPairPaths::in_dir(&data_dir.join("keys"));
    if !legacy.private_key.exists() {
        return Ok(());
    }
    let home = crate::places::key_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_else(|| "~/.local/share/flow/keys".into());
    Err(Failure::Invalid(format!(
        "error: the data dir {data} keeps a signing key ({key}), where steps granted the \
         directory around it could read or replace it; flow no longer signs with keys kept in data dirs\n\
         help: if no step could ever have reached it, move it to your key directory:\n\
         \x20   mkdir -p -m 700 {home} && mv {key} {public} {home}/\n\
         otherwise delete it (a new key is created on the next run); runs it signed still verify with \
         `flow verify RUN --key {public}`",
        data = data_dir.display(),
        key = legacy.private_key.display(),
        public = legacy.public_key.display(),
    )))
}

/// `flow keys generate`.
pub(crate) fn generate(out: &Path) -> Result<u8, Failure> {
    let key = SigningKey::generate().map_err(|e| Failure::Internal(e.to_string()))?;
    let paths = write_key_pair(out, &key).map_err(|e| match e {
        // Replacing a signing key must be deliberate: the user removes the old one.
        KeyError::Io { path, source } if source.kind() == std::io::ErrorKind::AlreadyExists => Failure::Invalid(format!(
            "error: {} already exists; flow keys generate never replaces a key (move it away or choose another --out)",
            path.display()
        )),
        e => Failure::Io(format!("cannot write the key pair: {e}")),
    })?;
    outln!("private key  {} (mode 0600)", paths.private_key.display());
    outln!("public key   {}", paths.public_key.display());
    outln!("key id       {}", key.keyid());
    Ok(exit::SUCCESS)
}

impl From<VerificationError> for Failure {
    fn from(e: VerificationError) -> Self {
        match e {
            VerificationError::Store(e) => Failure::from(e),
            VerificationError::Export(text) if text.starts_with("cannot export") => {
                Failure::Io(text)
            }
            other => Failure::Invalid(format!("error: {other}")),
        }
    }
}

/// `flow attest export RUN --out DIR`.
pub(crate) fn export(store: &Store, query: &str, out: &Path) -> Result<u8, Failure> {
    let run = store.resolve(query)?;
    let bundle = verification::export(store, &run, out)?;
    outln!(
        "exported run {run} to {}: root.layout, owner.pub, run.json, {} links and {} statements",
        out.display(),
        bundle.links.len(),
        bundle.statements.len()
    );
    Ok(exit::SUCCESS)
}

/// `flow verify --policy FILE [--template-dir DIR]...`, as given.
pub(crate) struct PolicyArgs<'a> {
    pub file: &'a Path,
    pub template_dirs: &'a [PathBuf],
    /// flow's cache directory, whose `templates` directory is the template cache.
    pub cache_dir: Option<PathBuf>,
}

/// A policy read and checked, and where its templates are found.
pub(crate) struct LoadedPolicy {
    file: PathBuf,
    check: PolicyCheck,
}

/// Reads the policy and hashes the template directories given: problems with either are
/// invalid input.
pub(crate) fn load_policy(args: PolicyArgs<'_>) -> Result<LoadedPolicy, Failure> {
    let policy = Policy::load(args.file).map_err(|d| Failure::Invalid(d.render()))?;
    let check = PolicyCheck::new(policy, args.cache_dir, args.template_dirs)?;
    Ok(LoadedPolicy {
        file: args.file.to_path_buf(),
        check,
    })
}

/// Checks a verified bundle against a policy, printing one line per check and a summary.
fn check_policy(bundle: &Bundle, what: &str, loaded: &LoadedPolicy) -> u8 {
    let name = loaded.file.display();
    let evaluation = match loaded.check.evaluate(bundle) {
        Ok(evaluation) => evaluation,
        Err(e) => {
            outln!("policy {name}: FAILED: {what}: {e}");
            return exit::RUN_FAILED;
        }
    };
    for check in &evaluation.checks {
        outln!("  {check}");
    }
    let total = evaluation.checks.len();
    if evaluation.passed() {
        outln!("policy {name}: passed ({total} checks)");
        exit::SUCCESS
    } else {
        outln!(
            "policy {name}: FAILED ({} of {total} checks failed)",
            evaluation.failures()
        );
        exit::RUN_FAILED
    }
}

/// `flow verify RUN` or `flow verify --dir DIR`, with `--policy FILE` checked once the
/// provenance verifies.
pub(crate) fn verify_run(
    store: Option<&Store>,
    query: Option<&str>,
    dir: Option<&Path>,
    key: Option<&Path>,
    policy: Option<&LoadedPolicy>,
) -> Result<u8, Failure> {
    let (bundle, what) = match (query, dir) {
        (_, Some(dir)) => (verification::read_export(dir)?, dir.display().to_string()),
        (Some(query), None) => {
            let store = store.ok_or_else(|| Failure::Internal("no store".into()))?;
            let run = store.resolve(query)?;
            (verification::bundle(store, &run)?, format!("run {run}"))
        }
        (None, None) => return Err(Failure::Invalid("error: give a RUN or --dir DIR".into())),
    };
    // Trust the key the user names, else (for a recorded run) the key `flow run`
    // signs with: FLOW_SIGNING_KEY, or the user's own.
    let trusted = match key {
        Some(path) => {
            Some(load_public_key(path).map_err(|e| Failure::Invalid(format!("error: {e}")))?)
        }
        None if dir.is_none() => default_trusted_key(),
        None => None,
    };
    let report = verification::verify(&bundle, trusted.as_ref());
    if report.is_ok() {
        outln!("{what}: {report}");
        // What the signatures vouch for is what the host recorded; a plugin's claims
        // are only its word, said apart.
        for claim in verification::claims(&bundle) {
            outln!(
                "  step {}: claimed by the plugin, not observed: {}",
                claim.step,
                claim.uri
            );
        }
        // Only verified statements are read for the policy.
        Ok(match policy {
            Some(policy) => check_policy(&bundle, &what, policy),
            None => exit::SUCCESS,
        })
    } else {
        outln!("{what}: verification FAILED");
        out!("{report}");
        if let Some(policy) = policy {
            outln!(
                "policy {}: not checked (the provenance does not verify)",
                policy.file.display()
            );
        }
        Ok(exit::RUN_FAILED)
    }
}

/// `flow report RUN --out FILE`: the run's page, with what `flow verify` (and the
/// policy, when given) says of it.
pub(crate) fn report(
    store: &Store,
    query: &str,
    out: &Path,
    key: Option<&Path>,
    policy: Option<&LoadedPolicy>,
) -> Result<u8, Failure> {
    let run = store.resolve(query)?;
    let trusted = match key {
        Some(path) => {
            Some(load_public_key(path).map_err(|e| Failure::Invalid(format!("error: {e}")))?)
        }
        None => default_trusted_key(),
    };
    let verdict = verdict(store, &run, trusted.as_ref(), policy);
    let html = flow_engine::report::render(store, &run, verdict)?;
    std::fs::write(out, html.as_bytes())
        .map_err(|e| Failure::Io(format!("cannot write {}: {e}", out.display())))?;
    outln!(
        "wrote {} ({}): the report of run {run}",
        out.display(),
        flow_engine::units::format_bytes(html.len() as u64)
    );
    Ok(exit::SUCCESS)
}

/// `flow verify`'s result on a run (and, when it holds, the policy's checks), for its
/// report. `trusted`: the owner key [default: the key `flow run` signs with].
pub(crate) fn verdict(
    store: &Store,
    run: &RunId,
    trusted: Option<&PublicKey>,
    policy: Option<&LoadedPolicy>,
) -> flow_engine::report::Verdict {
    let default;
    let trusted = match trusted {
        Some(key) => Some(key),
        None => {
            default = default_trusted_key();
            default.as_ref()
        }
    };
    match verification::bundle(store, run) {
        Ok(bundle) => {
            let result = verification::verify(&bundle, trusted);
            let ok = result.is_ok();
            let mut verdict = flow_engine::report::Verdict::verified(if ok {
                Ok(result.to_string())
            } else {
                Err(result.to_string())
            });
            if let (true, Some(policy)) = (ok, policy) {
                let name = policy.file.display().to_string();
                let checks = match policy.check.evaluate(&bundle) {
                    Ok(evaluation) => evaluation
                        .checks
                        .iter()
                        .map(|c| (c.ok, c.to_string()))
                        .collect(),
                    Err(e) => vec![(false, e.to_string())],
                };
                verdict = verdict.with_policy(name, checks);
            }
            verdict
        }
        Err(e) => flow_engine::report::Verdict::verified(Err(e.to_string())),
    }
}

/// The public half of the key `flow run` signs with, when it can be found without
/// creating anything.
fn default_trusted_key() -> Option<PublicKey> {
    match std::env::var_os("FLOW_SIGNING_KEY").filter(|v| !v.is_empty()) {
        Some(spec) => load_configured_key(Path::new(&spec))
            .ok()
            .map(|key| key.public_key().clone()),
        None => {
            let paths = KeyPairPaths::in_dir(&crate::places::key_dir()?);
            load_public_key(&paths.public_key).ok()
        }
    }
}

/// `flow attest show RUN [STEP]`.
pub(crate) fn show(
    store: &Store,
    query: &str,
    step: Option<&str>,
    style: Style,
) -> Result<u8, Failure> {
    let run = store.resolve(query)?;
    let bundle = verification::bundle(store, &run)?;
    let mut shown = 0;
    for ((link_file, link), (step_id, statement)) in bundle.links.iter().zip(&bundle.statements) {
        if step.is_some_and(|s| s != step_id) {
            continue;
        }
        shown += 1;
        if style == Style::Json {
            let value = serde_json::json!({
                "step": step_id,
                "link_file": link_file,
                "link": serde_json::from_slice::<serde_json::Value>(&link.to_json()).unwrap_or_default(),
                "statement": serde_json::from_slice::<serde_json::Value>(&statement.to_json()).unwrap_or_default(),
            });
            outln!("{value}");
            continue;
        }
        let payload = LinkPayload::parse(&link.payload).ok();
        let statement_body: serde_json::Value =
            serde_json::from_slice(&statement.payload).unwrap_or_default();
        let dependency = &statement_body["predicate"]["buildDefinition"]["resolvedDependencies"][0];
        outln!("step {step_id}");
        if let Some(payload) = &payload {
            let outcome = payload
                .byproducts
                .get("outcome")
                .and_then(|v| v.as_str())
                .unwrap_or("?");
            outln!("  outcome    {outcome}");
            if let Some(reason) = payload
                .byproducts
                .get("failure-reason")
                .and_then(|v| v.as_str())
            {
                outln!("  reason     {}", reason.lines().next().unwrap_or(""));
            }
        }
        outln!(
            "  plugin     {} sha256:{}",
            dependency["uri"].as_str().unwrap_or("?"),
            dependency["digest"]["sha256"].as_str().unwrap_or("?")
        );
        outln!(
            "  signed by  {}",
            link.keyids().collect::<Vec<_>>().join(", ")
        );
        let origin =
            &statement_body["predicate"]["buildDefinition"]["internalParameters"]["template"];
        if let Ok(origin) = serde_json::from_value::<TemplateOrigin>(origin.clone()) {
            outln!("  template   {}", describe_origin(&origin));
        }
        // What the host observed, and, apart, what the plugin only asserts.
        let dependencies = statement_body["predicate"]["buildDefinition"]["resolvedDependencies"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for dependency in dependencies
            .iter()
            .skip(1)
            .filter(|d| d.get("uri").is_some())
        {
            let digests: Vec<String> = dependency["digest"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(a, v)| format!("{a}:{}", v.as_str().unwrap_or("?")))
                        .collect()
                })
                .unwrap_or_default();
            let uri = dependency["uri"].as_str().unwrap_or("?");
            match dependency["annotations"]["claimedBy"].as_str() {
                Some(by) => outln!("  claimed by the {by}: {uri} {}", digests.join(" ")),
                None => outln!("  uses       {uri} {}", digests.join(" ")),
            }
        }
        if let Some(payload) = &payload {
            outln!("  materials  {}", files(payload.materials.len()));
            outln!("  products   {}", files(payload.products.len()));
            for (name, digests) in &payload.products {
                outln!(
                    "    {name}  sha256:{}",
                    digests.get("sha256").map(String::as_str).unwrap_or("?")
                );
            }
        }
        outln!("  link       {link_file}");
    }
    if let Some(step) = step
        && shown == 0
    {
        return Err(Failure::Invalid(format!(
            "error: run {run} has no step `{step}`"
        )));
    }
    Ok(exit::SUCCESS)
}

/// Where a step came from: `sealed step of acme/base@1.0.0 (chain: ...)`.
fn describe_origin(origin: &TemplateOrigin) -> String {
    let mut what = match (&origin.declared_by, &origin.slot) {
        (Some(by), Some(slot)) => format!("fills slot `{slot}`, from {by}"),
        (None, Some(slot)) => format!("fills slot `{slot}`, from the pipeline file"),
        (Some(by), None) => format!("from {by}"),
        (None, None) => "from the pipeline file".to_owned(),
    };
    if origin.sealed {
        what.push_str(", sealed");
    }
    if let Some(interface) = &origin.interface {
        what.push_str(&format!(", implements interface `{interface}`"));
    }
    let chain: Vec<String> = origin
        .chain
        .iter()
        .map(|t| format!("{} (sha256 {})", t.name(), t.sha256))
        .collect();
    format!("{what}; chain {}", chain.join(" extends "))
}

fn files(n: usize) -> String {
    if n == 1 {
        "1 file".into()
    } else {
        format!("{n} files")
    }
}
