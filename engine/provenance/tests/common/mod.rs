//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod demo;

use std::path::{Path, PathBuf};

use base64::Engine as _;
use flow_provenance::Envelope;

/// Copies the flat export directory `from` to `to`.
pub fn copy_dir(from: &Path, to: &Path) -> PathBuf {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read export") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
    to.to_owned()
}

pub fn read_envelope(path: &Path) -> Envelope {
    Envelope::from_json(&std::fs::read(path).expect("read")).expect("envelope")
}

pub fn write_envelope(path: &Path, env: &Envelope) {
    std::fs::write(path, env.to_json()).expect("write");
}

/// The one file in `dir` whose name starts with `prefix` and ends with `suffix`.
pub fn find(dir: &Path, prefix: &str, suffix: &str) -> PathBuf {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .find(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            name.starts_with(prefix) && name.ends_with(suffix)
        })
        .unwrap_or_else(|| panic!("no {prefix}*{suffix} in {}", dir.display()))
}

/// The ways an export is tampered with; each must fail `in-toto-verify` and `verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tamper {
    /// A product digest in `a`'s link payload changed (payload re-encoded, signature kept).
    LinkPayload,
    /// One byte of `b`'s link signature flipped.
    LinkSignature,
    /// `b`'s link deleted.
    DeleteLink,
    /// The layout's payload changed (a rule dropped), signature kept.
    LayoutPayload,
}

impl Tamper {
    pub const ALL: [Tamper; 4] = [
        Tamper::LinkPayload,
        Tamper::LinkSignature,
        Tamper::DeleteLink,
        Tamper::LayoutPayload,
    ];

    /// Applies the tamper to the export in `dir`.
    pub fn apply(self, dir: &Path) {
        match self {
            Tamper::LinkPayload => {
                let path = find(dir, "a.", ".link");
                let mut env = read_envelope(&path);
                let mut link: serde_json::Value =
                    serde_json::from_slice(&env.payload).expect("json");
                link["products"]["data/table.bin"]["sha256"] = "f".repeat(64).into();
                env.payload = serde_json::to_vec(&link).expect("json");
                write_envelope(&path, &env);
            }
            Tamper::LinkSignature => {
                let path = find(dir, "b.", ".link");
                let mut env = read_envelope(&path);
                env.signatures[0].sig[10] ^= 0x01;
                write_envelope(&path, &env);
            }
            Tamper::DeleteLink => std::fs::remove_file(find(dir, "b.", ".link")).expect("remove"),
            Tamper::LayoutPayload => {
                let path = dir.join("root.layout");
                let mut env = read_envelope(&path);
                let mut layout: serde_json::Value =
                    serde_json::from_slice(&env.payload).expect("json");
                for step in layout["steps"].as_array_mut().expect("steps") {
                    step["expected_materials"] = serde_json::json!([["ALLOW", "*"]]);
                }
                env.payload = serde_json::to_vec(&layout).expect("json");
                write_envelope(&path, &env);
            }
        }
    }
}

/// base64 of `bytes` (for assertions on raw JSON).
pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
