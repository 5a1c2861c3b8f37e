//! Provenance commands: `flow keys generate`, `flow attest export|show`,
//! `flow verify`, and the signing key every `flow run` uses.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use flow_engine::templates::policy::{Policy, RunFacts, TemplateLocator, evaluate};
use flow_provenance::keys::{
    KeyPairPaths, load_key_pair, load_public_key, load_signing_key, write_key_pair,
};
use flow_provenance::link::LinkPayload;
use flow_provenance::{
    Bundle, Envelope, KeyError, PublicKey, SigningKey, StepAttestation, TemplateOrigin,
    VerifyOptions, verify,
};
use flow_store::{RunId, Store};

use super::{Failure, Style, exit};

/// Where a data dir keeps its key pair.
pub(crate) fn keys_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("keys")
}

/// The key `flow run` signs with: `--signing-key` / `FLOW_SIGNING_KEY`, else
/// the data dir's, else a new one created in the data dir (said once, on
/// stderr): provenance is never skipped silently.
pub(crate) fn signing_key(
    flag: Option<&Path>,
    data_dir: &Path,
) -> Result<Arc<SigningKey>, Failure> {
    if let Some(path) = flag {
        return load_signing_key(path).map(Arc::new).map_err(|e| {
            Failure::Invalid(format!(
                "error: cannot load the signing key {}: {e}",
                path.display()
            ))
        });
    }
    let dir = keys_dir(data_dir);
    let paths = KeyPairPaths::in_dir(&dir);
    if paths.private_key.exists() {
        return load_key_pair(&dir)
            .map(Arc::new)
            .map_err(|e| Failure::Io(format!("cannot load the data dir's signing key: {e}")));
    }
    let key = SigningKey::generate().map_err(|e| Failure::Internal(e.to_string()))?;
    let written = write_key_pair(&dir, &key)
        .map_err(|e| Failure::Io(format!("cannot save a signing key: {e}")))?;
    eprintln!(
        "note: created a signing key for this data dir: {} (key id {}); every run's provenance is signed with it",
        written.private_key.display(),
        &key.keyid()[..16]
    );
    Ok(Arc::new(key))
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
    println!("private key  {} (mode 0600)", paths.private_key.display());
    println!("public key   {}", paths.public_key.display());
    println!("key id       {}", key.keyid());
    Ok(exit::SUCCESS)
}

/// A run's provenance from the store, in the order its steps completed.
fn bundle_from_store(store: &Store, run: &RunId) -> Result<Bundle, Failure> {
    let Some(run_attestation) = store.run_attestation(run)? else {
        return Err(Failure::Invalid(format!(
            "error: run {run} has no provenance: it did not finish (interrupted runs are not signed as a whole) \
             or it was recorded without a signing key"
        )));
    };
    let steps = store.steps(run)?;
    let mut attestations = store.step_attestations(run)?;
    attestations.sort_by_key(|(_, a)| a.position);
    let corrupt = |what: String| Failure::Invalid(format!("error: run {run}: {what}"));
    let mut step_attestations = Vec::new();
    for (index, stored) in attestations {
        let step_id = steps
            .iter()
            .find(|s| s.index == index)
            .map(|s| s.step_id.clone())
            .ok_or_else(|| {
                corrupt(format!(
                    "an attestation for step #{index}, which the run does not have"
                ))
            })?;
        let parse = |text: &str| {
            Envelope::from_json(text.as_bytes())
                .map_err(|e| corrupt(format!("step `{step_id}`: {e}")))
        };
        step_attestations.push(StepAttestation {
            statement: parse(&stored.statement)?,
            link: parse(&stored.link)?,
            link_file_name: stored.link_file_name,
            step_id,
        });
    }
    let envelope = |text: &str, what: &str| {
        Envelope::from_json(text.as_bytes()).map_err(|e| corrupt(format!("the {what}: {e}")))
    };
    let owner = PublicKey::from_pem(&run_attestation.owner_public_key)
        .map_err(|e| corrupt(format!("the owner key: {e}")))?;
    Ok(Bundle::new(
        envelope(&run_attestation.layout, "layout")?,
        owner,
        envelope(&run_attestation.chain, "run chain")?,
        &step_attestations,
    ))
}

/// `flow attest export RUN --out DIR`.
pub(crate) fn export(store: &Store, query: &str, out: &Path) -> Result<u8, Failure> {
    let run = store.resolve(query)?;
    let bundle = bundle_from_store(store, &run)?;
    bundle
        .write_dir(out)
        .map_err(|e| Failure::Io(format!("cannot export: {e}")))?;
    println!(
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
    policy: Policy,
    locator: TemplateLocator,
}

/// Reads the policy and hashes the template directories given: problems with either are
/// invalid input.
pub(crate) fn load_policy(args: PolicyArgs<'_>) -> Result<LoadedPolicy, Failure> {
    let policy = Policy::load(args.file).map_err(|d| Failure::Invalid(d.render()))?;
    let locator = TemplateLocator::new(args.cache_dir, args.template_dirs)
        .map_err(|e| Failure::Invalid(format!("error: {e}")))?;
    Ok(LoadedPolicy {
        file: args.file.to_path_buf(),
        policy,
        locator,
    })
}

/// Checks a verified bundle against a policy, printing one line per check and a summary.
fn check_policy(bundle: &Bundle, what: &str, loaded: &LoadedPolicy) -> u8 {
    let name = loaded.file.display();
    let statements = bundle
        .statements
        .iter()
        .map(|(step, env)| (step.as_str(), env.payload.as_slice()));
    let run = match RunFacts::from_statements(statements) {
        Ok(run) => run,
        Err(e) => {
            println!("policy {name}: FAILED: {what}: {e}");
            return exit::RUN_FAILED;
        }
    };
    let evaluation = evaluate(&loaded.policy, &run, &mut |template| {
        loaded.locator.find(template).map(|(_, d)| d.sealed_steps)
    });
    for check in &evaluation.checks {
        println!("  {check}");
    }
    let total = evaluation.checks.len();
    if evaluation.passed() {
        println!("policy {name}: passed ({total} checks)");
        exit::SUCCESS
    } else {
        println!(
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
    data_dir: &Path,
    policy: Option<&LoadedPolicy>,
) -> Result<u8, Failure> {
    let (bundle, what) = match (query, dir) {
        (_, Some(dir)) => (
            Bundle::read_dir(dir)
                .map_err(|e| Failure::Invalid(format!("error: cannot read the export: {e}")))?,
            dir.display().to_string(),
        ),
        (Some(query), None) => {
            let store = store.ok_or_else(|| Failure::Internal("no store".into()))?;
            let run = store.resolve(query)?;
            (bundle_from_store(store, &run)?, format!("run {run}"))
        }
        (None, None) => return Err(Failure::Invalid("error: give a RUN or --dir DIR".into())),
    };
    // Trust the key the user names, else this data dir's own key when it has one.
    let trusted = match key {
        Some(path) => {
            Some(load_public_key(path).map_err(|e| Failure::Invalid(format!("error: {e}")))?)
        }
        None => {
            let paths = KeyPairPaths::in_dir(&keys_dir(data_dir));
            if dir.is_none() && paths.public_key.exists() {
                load_public_key(&paths.public_key).ok()
            } else {
                None
            }
        }
    };
    let options = VerifyOptions {
        trusted_owner: trusted,
        ..VerifyOptions::default()
    };
    let report = verify(&bundle, &options);
    if report.is_ok() {
        println!("{what}: {report}");
        // Only verified statements are read for the policy.
        Ok(match policy {
            Some(policy) => check_policy(&bundle, &what, policy),
            None => exit::SUCCESS,
        })
    } else {
        println!("{what}: verification FAILED");
        print!("{report}");
        if let Some(policy) = policy {
            println!(
                "policy {}: not checked (the provenance does not verify)",
                policy.file.display()
            );
        }
        Ok(exit::RUN_FAILED)
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
    let bundle = bundle_from_store(store, &run)?;
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
            println!("{value}");
            continue;
        }
        let payload = LinkPayload::parse(&link.payload).ok();
        let statement_body: serde_json::Value =
            serde_json::from_slice(&statement.payload).unwrap_or_default();
        let dependency = &statement_body["predicate"]["buildDefinition"]["resolvedDependencies"][0];
        println!("step {step_id}");
        if let Some(payload) = &payload {
            let outcome = payload
                .byproducts
                .get("outcome")
                .and_then(|v| v.as_str())
                .unwrap_or("?");
            println!("  outcome    {outcome}");
            if let Some(reason) = payload
                .byproducts
                .get("failure-reason")
                .and_then(|v| v.as_str())
            {
                println!("  reason     {}", reason.lines().next().unwrap_or(""));
            }
        }
        println!(
            "  plugin     {} sha256:{}",
            dependency["uri"].as_str().unwrap_or("?"),
            dependency["digest"]["sha256"].as_str().unwrap_or("?")
        );
        println!(
            "  signed by  {}",
            link.keyids().collect::<Vec<_>>().join(", ")
        );
        let origin =
            &statement_body["predicate"]["buildDefinition"]["internalParameters"]["template"];
        if let Ok(origin) = serde_json::from_value::<TemplateOrigin>(origin.clone()) {
            println!("  template   {}", describe_origin(&origin));
        }
        if let Some(payload) = &payload {
            println!("  materials  {}", files(payload.materials.len()));
            println!("  products   {}", files(payload.products.len()));
            for (name, digests) in &payload.products {
                println!(
                    "    {name}  sha256:{}",
                    digests.get("sha256").map(String::as_str).unwrap_or("?")
                );
            }
        }
        println!("  link       {link_file}");
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
