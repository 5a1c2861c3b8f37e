//! The keys capability: keys the pipeline names (`keys:`), loaded by the
//! host when a run starts, used by a step granted them (`grants.keys`) through
//! the `signing` import. The plugin hands over a digest or a payload; the key
//! never leaves the host.
//!
//! A key file is either a private key (ed25519 PKCS#8 PEM: the step may sign and
//! verify with it) or a public key (SubjectPublicKeyInfo PEM: it may only verify,
//! as a promotion step checks attestations against the provenance key's public
//! half). The key that signs the run's provenance is never a private key here.

use std::collections::BTreeMap;
use std::sync::Arc;

use flow_pipeline::{Diagnostic, Diagnostics, Plan};
use flow_provenance::{Envelope, PublicKey, SigningKey, sshsig};

use serde_json::{Map, Value};
use wasmtime::component::{HasSelf, Linker};

use super::step_log::LogSink;
use super::unit::{Capability, RunInputs, StepInputs, StoreData};
use crate::bindings::flow::plugin::signing as wit_signing;

/// The keys capability (`keys:` and `grants.keys`; its WIT interface is `signing`).
pub(crate) struct Keys;

/// The keys one step is granted.
#[derive(Debug, Default)]
pub(crate) struct KeysStep(Option<Arc<KeyRing>>);

impl Capability for Keys {
    type Run = Arc<KeyRing>;
    type Step = KeysStep;

    fn resolve(inputs: &RunInputs<'_>) -> Result<Arc<KeyRing>, Diagnostics> {
        let keys = KeyRing::load(inputs.plan)?;
        if let Some(owner) = inputs.owner {
            keys.refuse_provenance_key(inputs.plan, owner)?;
        }
        Ok(Arc::new(keys))
    }

    fn prepare(run: &Arc<KeyRing>, inputs: &StepInputs<'_>) -> KeysStep {
        KeysStep(run.for_step(&inputs.step.key_grants))
    }

    fn none(_: &LogSink) -> KeysStep {
        KeysStep(None)
    }

    fn describe(
        run: &Arc<KeyRing>,
        step: &flow_pipeline::PlannedStep,
        grants: &mut Map<String, Value>,
    ) {
        if step.key_grants.is_empty() {
            return;
        }
        grants.insert(
            "keys".into(),
            step.key_grants
                .iter()
                .map(|name| {
                    serde_json::json!({ "name": name, "keyid": run.keyid(name).unwrap_or_default() })
                })
                .collect(),
        );
    }

    fn link<T: StoreData>(
        linker: &mut Linker<T>,
        project: fn(&mut T) -> &mut KeysStep,
    ) -> wasmtime::Result<()> {
        wit_signing::add_to_linker::<T, HasSelf<KeysStep>>(linker, project)
    }
}

/// One key a pipeline declares.
#[derive(Clone)]
pub(crate) enum GrantedKey {
    /// A private key: signs and verifies.
    Signing(Arc<SigningKey>),
    /// A public key: verifies only.
    Verifying(Box<PublicKey>),
}

impl GrantedKey {
    pub(crate) fn public_key(&self) -> &PublicKey {
        match self {
            GrantedKey::Signing(key) => key.public_key(),
            GrantedKey::Verifying(key) => key,
        }
    }

    pub(crate) fn keyid(&self) -> &str {
        self.public_key().keyid()
    }
}

/// The keys of one run: name -> key.
#[derive(Default, Clone)]
pub struct KeyRing(BTreeMap<String, GrantedKey>);

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(n, k)| (n, k.keyid())))
            .finish()
    }
}

/// A key file: private (PKCS#8) or public (SubjectPublicKeyInfo) PEM.
fn load_key_file(path: &std::path::Path) -> Result<GrantedKey, String> {
    let head = std::fs::read(path)
        .map(|bytes| bytes.starts_with(b"-----BEGIN PUBLIC KEY-----"))
        .unwrap_or(false);
    if head {
        return flow_provenance::keys::load_public_key(path)
            .map(|key| GrantedKey::Verifying(Box::new(key)))
            .map_err(|e| e.to_string());
    }
    flow_provenance::keys::load_signing_key(path)
        .map(|k| GrantedKey::Signing(Arc::new(k)))
        .map_err(|e| e.to_string())
}

impl KeyRing {
    /// Load the keys some step is granted. Every problem is reported at once,
    /// at the key's declaration.
    pub fn load(plan: &Plan) -> Result<KeyRing, Diagnostics> {
        let used: std::collections::BTreeSet<&str> = plan
            .steps
            .iter()
            .flat_map(|s| s.key_grants.iter().map(String::as_str))
            .collect();
        let mut keys = BTreeMap::new();
        let mut problems = Vec::new();
        for decl in plan.keys.iter().filter(|k| used.contains(k.name.as_str())) {
            let loaded = flow_pipeline::expand_host_path(&decl.file).and_then(|path| {
                let path = if path.is_absolute() {
                    path
                } else {
                    plan.base_dir.join(path)
                };
                load_key_file(&path)
            });
            match loaded {
                Ok(key) => {
                    keys.insert(decl.name.clone(), key);
                }
                Err(message) => problems.push(
                    Diagnostic::error(&decl.declared_in, decl.file_span, format!("key `{}`: {message}", decl.name))
                        .with_help("an ed25519 private key in PKCS#8 PEM (`flow keys generate --out DIR` writes one), or a public key PEM for a key that only verifies"),
                ),
            }
        }
        if problems.is_empty() {
            Ok(KeyRing(keys))
        } else {
            Err(Diagnostics(problems))
        }
    }

    /// Refuses a declared key that is the run's provenance key: a step granted it
    /// could sign any statement, and it would verify as the engine's own.
    pub fn refuse_provenance_key(
        &self,
        plan: &Plan,
        owner: &SigningKey,
    ) -> Result<(), Diagnostics> {
        let problems: Vec<Diagnostic> = plan
            .keys
            .iter()
            .filter(|decl| {
                matches!(self.0.get(&decl.name), Some(GrantedKey::Signing(k)) if k.public_key() == owner.public_key())
            })
            .map(|decl| {
                Diagnostic::error(
                    &decl.declared_in,
                    decl.file_span,
                    format!(
                        "key `{}` is the key that signs this run's provenance (key id {}): a step granted it could sign statements that verify as flow's own",
                        decl.name,
                        &owner.keyid()[..16]
                    ),
                )
                .with_help("give steps a key of their own (`flow keys generate --out DIR`); to verify what the provenance key signed, name its public half (`signing-key.pub`)")
            })
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Diagnostics(problems))
        }
    }

    /// The keys of `names`.
    pub fn for_step(&self, names: &[String]) -> Option<Arc<KeyRing>> {
        if names.is_empty() {
            return None;
        }
        Some(Arc::new(KeyRing(
            names
                .iter()
                .filter_map(|n| self.0.get(n).map(|k| (n.clone(), k.clone())))
                .collect(),
        )))
    }
}

impl KeyRing {
    /// The key id of key `name`, if it is loaded.
    pub(crate) fn keyid(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(GrantedKey::keyid)
    }
}

impl KeysStep {
    /// A granted private key, to sign with.
    fn signing_key(&self, name: &str) -> Result<Arc<SigningKey>, String> {
        match self.key(name)? {
            GrantedKey::Signing(key) => Ok(key),
            GrantedKey::Verifying(_) => Err(format!(
                "key `{name}` is a public key: a step may verify with it, not sign"
            )),
        }
    }

    fn key(&self, name: &str) -> Result<GrantedKey, String> {
        match self.0.as_ref().and_then(|k| k.0.get(name)) {
            Some(key) => Ok(key.clone()),
            None => {
                let granted: Vec<&str> = self
                    .0
                    .as_ref()
                    .map(|k| k.0.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                Err(if granted.is_empty() {
                    format!(
                        "key `{name}` is not granted: this step is granted no keys (`grants.keys`)"
                    )
                } else {
                    format!(
                        "key `{name}` is not granted: this step may sign only with {}",
                        granted.join(", ")
                    )
                })
            }
        }
    }
}

impl wit_signing::Host for KeysStep {
    fn key_info(&mut self, key: String) -> Result<wit_signing::PublicKeyInfo, String> {
        let granted = self.key(&key)?;
        Ok(wit_signing::PublicKeyInfo {
            ssh_public_key: sshsig::ssh_public_key(granted.public_key(), &format!("flow:{key}")),
            public_pem: granted.public_key().to_pem(),
            keyid: granted.keyid().to_owned(),
        })
    }

    fn sign_ssh(
        &mut self,
        key: String,
        namespace: String,
        sha512: Vec<u8>,
    ) -> Result<String, String> {
        let signing = self.signing_key(&key)?;
        let digest: [u8; 64] = sha512
            .as_slice()
            .try_into()
            .map_err(|_| format!("a SHA-512 is 64 bytes, not {}", sha512.len()))?;
        if namespace.is_empty() || namespace.len() > 256 || namespace.contains(char::is_whitespace)
        {
            return Err(format!("invalid signature namespace `{namespace}`"));
        }
        sshsig::sign(&signing, &namespace, &digest).map_err(|e| e.to_string())
    }

    fn sign_dsse(
        &mut self,
        key: String,
        payload_type: String,
        payload: Vec<u8>,
    ) -> Result<String, String> {
        let signing = self.signing_key(&key)?;
        if payload_type.is_empty() {
            return Err("a DSSE payload type is required".into());
        }
        let envelope =
            Envelope::sign(payload_type, payload, &signing).map_err(|e| e.to_string())?;
        String::from_utf8(envelope.to_json()).map_err(|e| e.to_string())
    }

    fn verify_dsse(&mut self, key: String, envelope: Vec<u8>) -> Result<String, String> {
        let granted = self.key(&key)?;
        let envelope =
            Envelope::from_json(&envelope).map_err(|e| format!("not a DSSE envelope: {e}"))?;
        envelope
            .verify(std::slice::from_ref(granted.public_key()))
            .map_err(|e| format!("not signed by key `{key}` ({}): {e}", granted.keyid()))?;
        Ok(envelope.payload_type.clone())
    }
}
