//! What a step adds to its provenance while it runs: dependencies the plugin
//! claims (the `provenance` import) and the host commands it ran.

use flow_pipeline::PlannedStep;
use flow_provenance::Dependency;
use serde_json::{Map, Value};
use wasmtime::component::{HasSelf, Linker};

pub use super::recorded::{Claims, RunAttestations};
use super::step_log::{LogSink, LogSource};
use super::unit::{Capability, RunInputs, StepInputs, StoreData};
use crate::bindings::flow::plugin::provenance as wit_provenance;

/// The provenance capability: the `provenance` import, always granted (claims are
/// labelled as the plugin's; attestations are the run's own, already signed).
pub(crate) struct Provenance;

/// What a step's `provenance` calls work on.
pub(crate) struct ProvenanceStep {
    claims: Claims,
    log: LogSink,
    attestations: Option<RunAttestations>,
}

impl Capability for Provenance {
    type Run = ();
    type Step = ProvenanceStep;

    fn resolve(_: &RunInputs<'_>) -> Result<(), flow_pipeline::Diagnostics> {
        Ok(())
    }

    fn prepare(_: &(), inputs: &StepInputs<'_>) -> ProvenanceStep {
        ProvenanceStep {
            claims: inputs.claims.clone(),
            log: inputs.log.clone(),
            attestations: inputs.attestations.cloned(),
        }
    }

    fn none(log: &LogSink) -> ProvenanceStep {
        ProvenanceStep {
            claims: Claims::new(),
            log: log.clone(),
            attestations: None,
        }
    }

    fn describe(_: &(), _: &PlannedStep, _: &mut Map<String, Value>) {}

    fn link<T: StoreData>(
        linker: &mut Linker<T>,
        project: fn(&mut T) -> &mut ProvenanceStep,
    ) -> wasmtime::Result<()> {
        wit_provenance::add_to_linker::<T, HasSelf<ProvenanceStep>>(linker, project)
    }
}

impl wit_provenance::Host for ProvenanceStep {
    fn run_attestations(&mut self) -> Vec<(String, Vec<u8>)> {
        self.attestations
            .as_ref()
            .map(RunAttestations::list)
            .unwrap_or_default()
    }

    fn add_dependency(&mut self, dependency: wit_provenance::Dependency) {
        match check_claim(&dependency) {
            Ok(()) => self.claims.add_dependency(Dependency {
                uri: dependency.uri,
                name: dependency.name,
                digest: dependency
                    .digest
                    .into_iter()
                    .map(|(a, d)| (a, d.to_ascii_lowercase()))
                    .collect(),
                claimed_by: Some(CLAIMED_BY_PLUGIN.into()),
            }),
            Err(why) => self.log.line(
                LogSource::Host,
                &format!(
                    "ignored the plugin's provenance claim for `{}`: {why}",
                    dependency.uri.chars().take(200).collect::<String>()
                ),
            ),
        }
    }
}

/// How a claimed dependency is marked in the statement (`annotations.claimedBy`).
pub const CLAIMED_BY_PLUGIN: &str = "plugin";

/// The digest algorithms of the in-toto digest set specification, with the lengths
/// their lower-case hex values have.
const DIGEST_ALGORITHMS: &[(&str, &[usize])] = &[
    ("sha256", &[64]),
    ("sha224", &[56]),
    ("sha384", &[96]),
    ("sha512", &[128]),
    ("sha512_224", &[56]),
    ("sha512_256", &[64]),
    ("sha3_224", &[56]),
    ("sha3_256", &[64]),
    ("sha3_384", &[96]),
    ("sha3_512", &[128]),
    ("blake2b", &[128]),
    ("blake2s", &[64]),
    ("ripemd160", &[40]),
    ("sha1", &[40]),
    ("md5", &[32]),
    ("gitCommit", &[40, 64]),
    ("gitTree", &[40, 64]),
    ("gitBlob", &[40, 64]),
    ("gitTag", &[40, 64]),
    ("dirHash", &[64]),
];

/// Why a plugin's claim cannot be recorded, if it cannot: a URI of sane length, at
/// least one digest, every algorithm one of in-toto's with a value of its length.
fn check_claim(dependency: &wit_provenance::Dependency) -> Result<(), String> {
    if dependency.uri.is_empty() || dependency.uri.len() > 4096 {
        return Err("its URI must be 1 to 4096 characters".into());
    }
    if dependency.uri.chars().any(char::is_control) {
        return Err("its URI holds control characters".into());
    }
    if dependency.name.as_ref().is_some_and(|n| n.len() > 256) {
        return Err("its name is longer than 256 characters".into());
    }
    if dependency.digest.is_empty() {
        return Err("it names no digest".into());
    }
    for (algorithm, value) in &dependency.digest {
        let Some((_, lengths)) = DIGEST_ALGORITHMS.iter().find(|(a, _)| a == algorithm) else {
            let known: Vec<&str> = DIGEST_ALGORITHMS.iter().map(|(a, _)| *a).collect();
            return Err(format!(
                "`{algorithm}` is not a digest algorithm in-toto knows ({})",
                known.join(", ")
            ));
        };
        if !lengths.contains(&value.len()) || !value.chars().all(|c| c.is_ascii_hexdigit()) {
            let lengths: Vec<String> = lengths.iter().map(usize::to_string).collect();
            return Err(format!(
                "a `{algorithm}` digest is {} hex characters, not `{}`",
                lengths.join(" or "),
                value.chars().take(80).collect::<String>()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(uri: &str, digest: &[(&str, &str)]) -> wit_provenance::Dependency {
        wit_provenance::Dependency {
            uri: uri.into(),
            name: None,
            digest: digest
                .iter()
                .map(|(a, v)| ((*a).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn claims_are_checked_against_the_algorithms_lengths() {
        let commit = "a".repeat(40);
        assert_eq!(
            check_claim(&claim("git+https://x/y", &[("gitCommit", &commit)])),
            Ok(())
        );
        assert_eq!(
            check_claim(&claim("file:///x", &[("sha256", &"0".repeat(64))])),
            Ok(())
        );
        let short = check_claim(&claim("file:///x", &[("sha256", "ab")])).unwrap_err();
        assert_eq!(short, "a `sha256` digest is 64 hex characters, not `ab`");
        let unknown = check_claim(&claim("file:///x", &[("crc32", "abcd")])).unwrap_err();
        assert!(
            unknown.starts_with("`crc32` is not a digest algorithm in-toto knows"),
            "{unknown}"
        );
        assert_eq!(
            check_claim(&claim("file:///x", &[])).unwrap_err(),
            "it names no digest"
        );
        assert!(check_claim(&claim("", &[("sha1", &"0".repeat(40))])).is_err());
        assert!(check_claim(&claim("a\nb", &[("sha1", &"0".repeat(40))])).is_err());
        assert!(check_claim(&claim("x", &[("sha1", &"g".repeat(40))])).is_err());
    }
}
