//! The signing capability: keys the pipeline names (`keys:`), loaded by the
//! host when a run starts, used by a step granted them (`grants.keys`) through
//! the `signing` import. The plugin hands over a digest or a payload; the key
//! never leaves the host.

use std::collections::BTreeMap;
use std::sync::Arc;

use flow_pipeline::{Diagnostic, Diagnostics, Plan};
use flow_provenance::{Envelope, SigningKey, sshsig};

use crate::runtime::bindings::flow::plugin::signing as wit_signing;

/// The keys of one run: name -> key.
#[derive(Default, Clone)]
pub struct KeyRing(pub BTreeMap<String, Arc<SigningKey>>);

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(n, k)| (n, k.keyid())))
            .finish()
    }
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
                flow_provenance::keys::load_signing_key(&path).map_err(|e| e.to_string())
            });
            match loaded {
                Ok(key) => {
                    keys.insert(decl.name.clone(), Arc::new(key));
                }
                Err(message) => problems.push(
                    Diagnostic::error(&decl.declared_in, decl.file_span, format!("key `{}`: {message}", decl.name))
                        .with_help("an ed25519 private key in PKCS#8 PEM: create one with `flow keys generate`"),
                ),
            }
        }
        if problems.is_empty() {
            Ok(KeyRing(keys))
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

impl crate::runtime::StepState {
    fn key(&self, name: &str) -> Result<Arc<SigningKey>, String> {
        match self.keys.as_ref().and_then(|k| k.0.get(name)) {
            Some(key) => Ok(key.clone()),
            None => {
                let granted: Vec<&str> = self
                    .keys
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

impl wit_signing::Host for crate::runtime::StepState {
    fn key_info(&mut self, key: String) -> Result<wit_signing::PublicKeyInfo, String> {
        let signing = self.key(&key)?;
        Ok(wit_signing::PublicKeyInfo {
            ssh_public_key: sshsig::ssh_public_key(signing.public_key(), &format!("flow:{key}")),
            public_pem: signing.public_key().to_pem(),
            keyid: signing.keyid().to_owned(),
        })
    }

    fn sign_ssh(
        &mut self,
        key: String,
        namespace: String,
        sha512: Vec<u8>,
    ) -> Result<String, String> {
        let signing = self.key(&key)?;
        let digest: [u8; 64] = sha512
            .as_slice()
            .try_into()
            .map_err(|_| format!("a SHA-512 is 64 bytes, not {}", sha512.len()))?;
        if namespace.is_empty() || namespace.len() > 256 || namespace.contains(char::is_whitespace)
        {
            return Err(format!("invalid signature namespace `{namespace}`"));
        }
        Ok(sshsig::sign(&signing, &namespace, &digest))
    }

    fn sign_dsse(
        &mut self,
        key: String,
        payload_type: String,
        payload: Vec<u8>,
    ) -> Result<String, String> {
        let signing = self.key(&key)?;
        if payload_type.is_empty() {
            return Err("a DSSE payload type is required".into());
        }
        let envelope = Envelope::sign(payload_type, payload, &signing);
        String::from_utf8(envelope.to_json()).map_err(|e| e.to_string())
    }

    fn verify_dsse(&mut self, key: String, envelope: Vec<u8>) -> Result<String, String> {
        let signing = self.key(&key)?;
        let envelope =
            Envelope::from_json(&envelope).map_err(|e| format!("not a DSSE envelope: {e}"))?;
        envelope
            .verify(std::slice::from_ref(signing.public_key()))
            .map_err(|e| format!("not signed by key `{key}` ({}): {e}", signing.keyid()))?;
        Ok(envelope.payload_type.clone())
    }
}
