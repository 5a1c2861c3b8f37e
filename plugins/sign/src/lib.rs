//! `sign`: signs files produced by earlier steps with a key the host holds
//! (`keys:` in the pipeline, granted with `grants.keys`); the key never enters
//! the plugin. For each file it writes
//!
//! - `<file>.sig`: an SSH signature, verified with no flow code by
//!   `ssh-keygen -Y verify -f allowed_signers -I <identity> -n file -s <file>.sig < <file>`;
//! - `<file>.intoto.json`: an in-toto Statement v1 whose subject is the file's
//!   sha256, DSSE-signed with the same key (verifiable with its public key by
//!   any DSSE verifier, e.g. securesystemslib).
//!
//! ```yaml
//! keys:
//!   release: { file: ~/.config/acme/release.pem }
//! steps:
//!   sign:
//!     uses: sign
//!     needs: [build]
//!     grants: { keys: [release] }
//!     with: { files: [target/release/app], key: release }
//! ```

use std::io::Read;
use std::path::Path;

use flow_plugin_sdk::{
    Capability, Context, Description, Param, ParamType, Plugin, StepError, export_plugin, signing,
};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256, Sha512};

struct Sign;

/// The predicate type of the attestation written for each signed file.
const PREDICATE_TYPE: &str = "https://flow.dev/signature/v1";
/// DSSE payload type of in-toto statements.
const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

#[derive(Deserialize)]
struct Params {
    files: Value,
    key: String,
    namespace: String,
    attest: bool,
}

/// sha256 and sha512 of a file, read once.
fn digests(path: &Path) -> Result<([u8; 32], [u8; 64], u64), StepError> {
    let mut file = std::fs::File::open(path)
        .map_err(|e| StepError::new(format!("cannot read {}: {e}", path.display())))?;
    let (mut sha256, mut sha512) = (Sha256::new(), Sha512::new());
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| StepError::new(format!("cannot read {}: {e}", path.display())))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        sha256.update(&buf[..n]);
        sha512.update(&buf[..n]);
    }
    Ok((sha256.finalize().into(), sha512.finalize().into(), size))
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), StepError> {
    std::fs::write(path, bytes)
        .map_err(|e| StepError::new(format!("cannot write {}: {e}", path.display())))
}

impl Plugin for Sign {
    type Params = Params;

    fn describe() -> Description {
        Description::new(
            "sign",
            env!("CARGO_PKG_VERSION"),
            "Signs files with a key the host holds: SSH signatures (`ssh-keygen -Y verify`) and an in-toto attestation per file",
        )
        .param(Param::new("files", ParamType::Any, "the files to sign, relative to the workspace").required())
        .param(Param::string("key", "the key to sign with: a name under `keys:`, granted with `grants.keys`").required())
        .param(Param::string("namespace", "the SSH signature namespace (`ssh-keygen -n`)").default("file"))
        .param(Param::boolean("attest", "also write `<file>.intoto.json`, a signed in-toto statement about the file").default(true))
        .output("signatures", "JSON: [{file, sha256, signature, attestation?}]")
        .output("public-key", "the key's public half, `ssh-ed25519 AAAA…`, for an allowed-signers file")
        .output("keyid", "the key's securesystemslib key id")
        .needs(Capability::Secrets)
    }

    fn run(params: Params, ctx: &mut Context) -> Result<(), StepError> {
        let files = flow_plugin_sdk::params::workspace_paths(&params.files, "files")?;
        let info = signing::key_info(&params.key)?;
        let workspace = Path::new(ctx.workspace()).to_path_buf();
        let mut signed = Vec::new();
        for file in &files {
            let path = workspace.join(file);
            if !path.is_file() {
                return Err(StepError::new(format!(
                    "`{file}` is not a file in the workspace (did an earlier step make it?)"
                )));
            }
            let (sha256, sha512, size) = digests(&path)?;
            let sha256 = hex::encode(sha256);
            let signature = signing::sign_ssh(&params.key, &params.namespace, &sha512)?;
            let sig_name = format!("{file}.sig");
            write(&workspace.join(&sig_name), signature.as_bytes())?;
            let mut entry =
                json!({ "file": file, "sha256": sha256, "size": size, "signature": sig_name });
            if params.attest {
                let statement = json!({
                    "_type": "https://in-toto.io/Statement/v1",
                    "subject": [{ "name": file, "digest": { "sha256": sha256 } }],
                    "predicateType": PREDICATE_TYPE,
                    "predicate": {
                        "signature": {
                            "format": "sshsig",
                            "namespace": params.namespace,
                            "file": sig_name,
                            "digest": { "sha256": hex::encode(Sha256::digest(signature.as_bytes())) },
                        },
                        "signer": { "keyid": info.keyid, "sshPublicKey": info.ssh_public_key, "key": params.key },
                        "invocation": { "run": ctx.run_id(), "step": ctx.step_id() },
                    },
                });
                let envelope = signing::sign_dsse(
                    &params.key,
                    IN_TOTO_PAYLOAD_TYPE,
                    statement.to_string().as_bytes(),
                )?;
                let attestation = format!("{file}.intoto.json");
                write(&workspace.join(&attestation), envelope.as_bytes())?;
                entry["attestation"] = attestation.into();
            }
            ctx.info(&format!(
                "signed {file} (sha256:{sha256}) with key `{}` ({})",
                params.key, info.keyid
            ));
            signed.push(entry);
        }
        ctx.set_output("signatures", &Value::Array(signed).to_string());
        ctx.set_output("public-key", &info.ssh_public_key);
        ctx.set_output("keyid", &info.keyid);
        Ok(())
    }
}

export_plugin!(Sign);
