//! A run's [`Event`]s as CDEvents 0.5.1 (<https://cdevents.dev>): what `flow run
//! --events-to` sends. [`CdEventMapper`] turns each event into zero or more CDEvents,
//! in order; it keeps what later events need (the pipeline's name, the commit checked
//! out, the workspace).
//!
//! | flow event | CDEvents |
//! |---|---|
//! | `RunStarted` | `pipelinerun.queued`, then `pipelinerun.started` |
//! | `StepStarted` (first attempt) | `taskrun.started` |
//! | `StepFinished` | `taskrun.finished` (after a `taskrun.started` if the step had none: taken from the cache, skipped, cancelled) |
//! | `StepRetrying` | none |
//! | `RunFinished` | for each step that succeeded, in the order they finished: `artifact.packaged` per file of a `build` step's `artifacts`, `artifact.signed` per entry of a `sign` step's `signatures`, `artifact.published` for a `publish` step's `digest` and `reference`; then `pipelinerun.finished` |
//!
//! Artifact events wait for the run's end: only then are the steps' files (a
//! signature) in the run's workspace. Their timestamps are their steps' ends.

use std::collections::BTreeSet;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use flow_store::{RunStatus, StepStatus};
use serde_json::{Value, json};

use crate::events::Event;
use crate::units::percent_encode as encode;

/// The CDEvents specification version in every event's `context.specversion`.
pub const SPEC_VERSION: &str = "0.5.1";

/// `pipelinerun.queued`'s type.
pub const PIPELINE_RUN_QUEUED: &str = "dev.cdevents.pipelinerun.queued.0.3.0";
/// `pipelinerun.started`'s type.
pub const PIPELINE_RUN_STARTED: &str = "dev.cdevents.pipelinerun.started.0.3.0";
/// `pipelinerun.finished`'s type.
pub const PIPELINE_RUN_FINISHED: &str = "dev.cdevents.pipelinerun.finished.0.3.0";
/// `taskrun.started`'s type.
pub const TASK_RUN_STARTED: &str = "dev.cdevents.taskrun.started.0.3.0";
/// `taskrun.finished`'s type.
pub const TASK_RUN_FINISHED: &str = "dev.cdevents.taskrun.finished.0.3.0";
/// `artifact.packaged`'s type.
pub const ARTIFACT_PACKAGED: &str = "dev.cdevents.artifact.packaged.0.3.0";
/// `artifact.signed`'s type.
pub const ARTIFACT_SIGNED: &str = "dev.cdevents.artifact.signed.0.3.0";
/// `artifact.published`'s type.
pub const ARTIFACT_PUBLISHED: &str = "dev.cdevents.artifact.published.0.3.0";

/// The most bytes of a signature file an `artifact.signed` event carries.
const MAX_SIGNATURE_BYTES: u64 = 16 * 1024;

/// Maps one run's events to CDEvents.
#[derive(Debug, Clone, Default)]
pub struct CdEventMapper {
    source: Option<String>,
    pipeline: String,
    run: String,
    workspace: Option<PathBuf>,
    /// The commit a step checked out (its `commit` output), for `artifact.packaged`.
    commit: Option<String>,
    started: BTreeSet<String>,
    /// The outputs of the steps that succeeded, and when: their artifact events are
    /// sent when the run ends, once every step's files are in the workspace.
    succeeded: Vec<(std::collections::BTreeMap<String, String>, u64)>,
}

impl CdEventMapper {
    /// A mapper whose events say `source` (a URI reference) made them; `None`:
    /// `/flow/<pipeline>`.
    pub fn new(source: Option<String>) -> Self {
        CdEventMapper {
            source: source.filter(|s| !s.is_empty()),
            ..Default::default()
        }
    }

    /// The events' `context.source`.
    fn source(&self) -> String {
        match &self.source {
            Some(source) => source.clone(),
            None => format!("/flow/{}", encode(&self.pipeline)),
        }
    }

    /// The CDEvents `event` stands for, in the order to send them.
    pub fn map(&mut self, event: &Event) -> Vec<Value> {
        match event {
            Event::RunStarted {
                run,
                pipeline,
                workspace,
                at,
                ..
            } => {
                self.pipeline = pipeline.clone();
                self.run = run.clone();
                self.workspace = Some(PathBuf::from(workspace));
                let content = json!({"pipelineName": pipeline, "uri": self.run_uri()});
                vec![
                    self.event(PIPELINE_RUN_QUEUED, *at, run, content.clone()),
                    self.event(PIPELINE_RUN_STARTED, *at, run, content),
                ]
            }
            Event::StepStarted { step, at, .. } => {
                if !self.started.insert(step.clone()) {
                    return Vec::new(); // a retry's attempt: the task run goes on
                }
                let content = json!({"taskName": step, "pipelineRun": self.pipeline_run()});
                vec![self.event(TASK_RUN_STARTED, *at, &self.task_id(step), content)]
            }
            Event::StepFinished {
                step,
                status,
                reason,
                outputs,
                at,
                ..
            } => {
                let mut content = json!({
                    "taskName": step,
                    "pipelineRun": self.pipeline_run(),
                    "outcome": step_outcome(*status),
                });
                if let Some(reason) = reason.as_ref().filter(|r| !r.is_empty()) {
                    content["errors"] = reason.as_str().into();
                }
                let mut out = Vec::new();
                if self.started.insert(step.clone()) {
                    // Taken from the cache or an earlier run, skipped, or cancelled
                    // before it started: its task run still starts before it finishes.
                    let started = json!({"taskName": step, "pipelineRun": self.pipeline_run()});
                    out.push(self.event(TASK_RUN_STARTED, *at, &self.task_id(step), started));
                }
                out.push(self.event(TASK_RUN_FINISHED, *at, &self.task_id(step), content));
                if *status == StepStatus::Succeeded {
                    if let Some(commit) = outputs.get("commit").filter(|c| is_hex(c)) {
                        self.commit = Some(commit.clone());
                    }
                    self.succeeded.push((outputs.clone(), *at));
                }
                out
            }
            // CDEvents 0.5.1 has no event for a retry or for progress.
            Event::StepRetrying { .. } | Event::StepProgress { .. } => Vec::new(),
            Event::RunFinished {
                run,
                status,
                failure,
                at,
                ..
            } => {
                let mut content = json!({
                    "pipelineName": self.pipeline,
                    "uri": self.run_uri(),
                    "outcome": run_outcome(*status),
                });
                if let Some(failure) = failure.as_ref().filter(|f| !f.is_empty()) {
                    content["errors"] = failure.as_str().into();
                }
                let succeeded = std::mem::take(&mut self.succeeded);
                let mut out: Vec<Value> = succeeded
                    .iter()
                    .flat_map(|(outputs, at)| self.artifacts(outputs, *at))
                    .collect();
                out.push(self.event(PIPELINE_RUN_FINISHED, *at, run, content));
                out
            }
        }
    }

    /// The artifact events of a step's outputs, by their shape: `artifacts` as the
    /// `build` plugin writes it, `signatures` as `sign` does, `digest` and
    /// `reference` as `publish` does.
    fn artifacts(
        &self,
        outputs: &std::collections::BTreeMap<String, String>,
        at: u64,
    ) -> Vec<Value> {
        let mut out = Vec::new();
        let entries = |name: &str| -> Vec<Value> {
            outputs
                .get(name)
                .and_then(|text| serde_json::from_str::<Vec<Value>>(text).ok())
                .unwrap_or_default()
        };
        for artifact in entries("artifacts") {
            let (Some(path), Some(sha256)) =
                (artifact["path"].as_str(), artifact["sha256"].as_str())
            else {
                continue;
            };
            let Some(id) = generic_purl(path, sha256) else {
                continue;
            };
            let change = match &self.commit {
                Some(commit) => json!({"id": commit}),
                None => json!({"id": self.run, "source": self.source()}),
            };
            out.push(self.event(ARTIFACT_PACKAGED, at, &id, json!({"change": change})));
        }
        for signed in entries("signatures") {
            let (Some(file), Some(sha256)) = (signed["file"].as_str(), signed["sha256"].as_str())
            else {
                continue;
            };
            let Some(id) = generic_purl(file, sha256) else {
                continue;
            };
            let signature = signed["signature"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(|sig| self.read_signature(sig).unwrap_or_else(|| sig.to_owned()));
            let Some(signature) = signature else { continue };
            out.push(self.event(ARTIFACT_SIGNED, at, &id, json!({"signature": signature})));
        }
        if let (Some(digest), Some(reference)) = (outputs.get("digest"), outputs.get("reference"))
            && let Some(id) = oci_purl(reference, digest)
        {
            out.push(self.event(ARTIFACT_PUBLISHED, at, &id, json!({})));
        }
        out
    }

    /// The text of a signature file the `sign` plugin wrote (a workspace path): only
    /// a small UTF-8 file inside the workspace, never one a link leads out of it.
    fn read_signature(&self, relative: &str) -> Option<String> {
        let workspace = self.workspace.as_ref()?.canonicalize().ok()?;
        let relative = Path::new(relative);
        if !relative
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
        {
            return None;
        }
        let path = workspace.join(relative).canonicalize().ok()?;
        if !path.starts_with(&workspace) {
            return None;
        }
        // Opened without following a link put there since, checked by its handle, and
        // read no further than the cap.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .ok()?;
        let meta = file.metadata().ok()?;
        if !meta.is_file() || meta.len() > MAX_SIGNATURE_BYTES {
            return None;
        }
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut std::io::Read::take(file, MAX_SIGNATURE_BYTES),
            &mut text,
        )
        .ok()?;
        (!text.trim().is_empty()).then(|| text.trim_end().to_owned())
    }

    fn run_uri(&self) -> String {
        format!("urn:flow:run:{}", encode(&self.run))
    }

    fn task_id(&self, step: &str) -> String {
        format!("{}/{step}", self.run)
    }

    fn pipeline_run(&self) -> Value {
        json!({"id": self.run, "source": self.source()})
    }

    fn event(&self, kind: &str, at: u64, subject: &str, content: Value) -> Value {
        let source = self.source();
        let mut context = json!({
            "specversion": SPEC_VERSION,
            "id": new_id(),
            "source": source,
            "type": kind,
            "timestamp": flow_store::format_rfc3339(at),
        });
        if !self.run.is_empty() {
            context["chainId"] = self.run.as_str().into();
        }
        json!({
            "context": context,
            "subject": {"id": subject, "source": source, "content": content},
        })
    }
}

/// `taskrun.finished`'s `outcome`.
fn step_outcome(status: StepStatus) -> &'static str {
    match status {
        StepStatus::Succeeded => "success",
        StepStatus::Cancelled => "cancel",
        StepStatus::Skipped => "skipped",
        StepStatus::Failed | StepStatus::TimedOut => "failure",
        StepStatus::Pending | StepStatus::Running => "error",
    }
}

/// `pipelinerun.finished`'s `outcome` (one of the schema's four).
fn run_outcome(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Succeeded => "success",
        RunStatus::Failed => "failure",
        RunStatus::Cancelled => "cancel",
        RunStatus::Interrupted | RunStatus::Running => "error",
    }
}

/// A random UUID (version 4) for `context.id`; from the clock and a counter if the
/// system has no randomness to give.
fn new_id() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::getrandom(&mut bytes).is_err() {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default();
        bytes[..8].copy_from_slice(&nanos.to_be_bytes());
        bytes[8..].copy_from_slice(&n.to_be_bytes());
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

fn is_hex(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `pkg:generic/<file name>?checksum=sha256:<hex>` for a file by its sha256.
fn generic_purl(path: &str, sha256: &str) -> Option<String> {
    let name = path.rsplit('/').find(|s| !s.is_empty())?;
    let sha256 = sha256.strip_prefix("sha256:").unwrap_or(sha256);
    is_hex(sha256).then(|| {
        format!(
            "pkg:generic/{}?checksum=sha256:{}",
            encode(name),
            sha256.to_ascii_lowercase()
        )
    })
}

/// `pkg:oci/<name>@sha256%3A<hex>?repository_url=<repository>&tag=<tag>` for an
/// artifact published as `reference` (`HOST/REPO:TAG`, or an OCI layout
/// `oci:DIR:TAG`) with manifest `digest`.
fn oci_purl(reference: &str, digest: &str) -> Option<String> {
    let hex = digest.strip_prefix("sha256:")?;
    if !is_hex(hex) {
        return None;
    }
    let reference = reference.strip_prefix("oci:").unwrap_or(reference);
    let reference = reference.split('@').next().unwrap_or(reference);
    // A tag follows the last `:` after the last `/` (a port comes before a `/`).
    let slash = reference.rfind('/').map_or(0, |i| i + 1);
    let (repository, tag) = match reference[slash..].rfind(':') {
        Some(i) => (&reference[..slash + i], Some(&reference[slash + i + 1..])),
        None => (reference, None),
    };
    let name = repository.rsplit('/').find(|s| !s.is_empty())?;
    let mut purl = format!(
        "pkg:oci/{}@sha256%3A{}?repository_url={}",
        encode(&name.to_ascii_lowercase()),
        hex.to_ascii_lowercase(),
        encode_qualifier(repository)
    );
    if let Some(tag) = tag.filter(|t| !t.is_empty()) {
        purl.push_str(&format!("&tag={}", encode(tag)));
    }
    Some(purl)
}

/// A purl qualifier value: `/` and `:` kept, as in the spec's examples.
fn encode_qualifier(text: &str) -> String {
    text.split('/')
        .map(|part| part.split(':').map(encode).collect::<Vec<_>>().join(":"))
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn started() -> Event {
        Event::RunStarted {
            run: "20260101-000000-abcd".into(),
            pipeline: "release".into(),
            steps: vec!["build".into()],
            workspace: "/nonexistent".into(),
            at: 1_000,
        }
    }

    fn finished(step: &str, status: StepStatus, outputs: &[(&str, &str)]) -> Event {
        Event::StepFinished {
            run: "20260101-000000-abcd".into(),
            step: step.into(),
            status,
            reason: (status != StepStatus::Succeeded).then(|| "it broke".to_owned()),
            duration_ms: 5,
            outputs: outputs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            cache: None,
            at: 2_000,
        }
    }

    fn types(events: &[Value]) -> Vec<&str> {
        events
            .iter()
            .map(|e| e["context"]["type"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn a_run_maps_to_pipeline_and_task_runs() {
        let mut mapper = CdEventMapper::new(None);
        let queued = mapper.map(&started());
        assert_eq!(types(&queued), [PIPELINE_RUN_QUEUED, PIPELINE_RUN_STARTED]);
        let context = &queued[0]["context"];
        assert_eq!(context["specversion"], "0.5.1");
        assert_eq!(context["source"], "/flow/release");
        assert_eq!(context["timestamp"], "1970-01-01T00:00:01.000Z");
        assert_ne!(context["id"], queued[1]["context"]["id"]);
        assert_eq!(queued[1]["subject"]["content"]["pipelineName"], "release");
        let step = Event::StepStarted {
            run: "20260101-000000-abcd".into(),
            step: "build".into(),
            at: 1_500,
        };
        let task = mapper.map(&step);
        assert_eq!(types(&task), [TASK_RUN_STARTED]);
        assert_eq!(task[0]["subject"]["id"], "20260101-000000-abcd/build");
        assert_eq!(
            task[0]["subject"]["content"]["pipelineRun"]["id"],
            "20260101-000000-abcd"
        );
        assert!(
            mapper.map(&step).is_empty(),
            "a retry starts no new task run"
        );
        let failed = mapper.map(&finished("build", StepStatus::TimedOut, &[]));
        assert_eq!(failed[0]["subject"]["content"]["outcome"], "failure");
        assert_eq!(failed[0]["subject"]["content"]["errors"], "it broke");
        let end = mapper.map(&Event::RunFinished {
            run: "20260101-000000-abcd".into(),
            status: RunStatus::Cancelled,
            failure: Some("cancelled".into()),
            duration_ms: 9,
            at: 3_000,
        });
        assert_eq!(types(&end), [PIPELINE_RUN_FINISHED]);
        assert_eq!(end[0]["subject"]["content"]["outcome"], "cancel");
    }

    #[test]
    fn build_sign_and_publish_outputs_map_to_artifact_events() {
        let mut mapper = CdEventMapper::new(Some("https://ci.example/flow".into()));
        mapper.map(&started());
        let sha = "ab".repeat(32);
        mapper.map(&finished(
            "checkout",
            StepStatus::Succeeded,
            &[("commit", "0123abcd")],
        ));
        let artifacts =
            format!(r#"[{{"path":"src/target/release/sample","sha256":"{sha}","size":3}}]"#);
        let built = mapper.map(&finished(
            "build",
            StepStatus::Succeeded,
            &[("artifacts", &artifacts)],
        ));
        assert_eq!(types(&built), [TASK_RUN_STARTED, TASK_RUN_FINISHED]);
        let signatures = format!(
            r#"[{{"file":"src/target/release/sample","sha256":"{sha}","signature":"src/target/release/sample.sig"}}]"#
        );
        let signed = mapper.map(&finished(
            "sign",
            StepStatus::Succeeded,
            &[("signatures", &signatures)],
        ));
        assert_eq!(types(&signed), [TASK_RUN_STARTED, TASK_RUN_FINISHED]);
        let digest = format!("sha256:{sha}");
        let published = mapper.map(&finished(
            "publish",
            StepStatus::Succeeded,
            &[
                ("digest", &digest),
                ("reference", "127.0.0.1:5000/acme/sample:0.1.0"),
            ],
        ));
        assert_eq!(types(&published), [TASK_RUN_STARTED, TASK_RUN_FINISHED]);
        // A step that failed reports no artifacts, whatever it set.
        let failed = mapper.map(&finished(
            "build",
            StepStatus::Failed,
            &[("artifacts", &artifacts)],
        ));
        assert_eq!(types(&failed), [TASK_RUN_FINISHED]);
        // Outputs of another shape are no artifacts.
        let other = mapper.map(&finished(
            "echo",
            StepStatus::Succeeded,
            &[("artifacts", "not json"), ("digest", "md5:00")],
        ));
        assert_eq!(types(&other), [TASK_RUN_STARTED, TASK_RUN_FINISHED]);
        // The artifacts, when the run ends: in the order their steps finished.
        let end = mapper.map(&Event::RunFinished {
            run: "20260101-000000-abcd".into(),
            status: RunStatus::Failed,
            failure: Some("build failed".into()),
            duration_ms: 9,
            at: 3_000,
        });
        assert_eq!(
            types(&end),
            [
                ARTIFACT_PACKAGED,
                ARTIFACT_SIGNED,
                ARTIFACT_PUBLISHED,
                PIPELINE_RUN_FINISHED
            ]
        );
        let purl = format!("pkg:generic/sample?checksum=sha256:{sha}");
        let (built, signed, published) = (&end[0], &end[1], &end[2]);
        assert_eq!(built["subject"]["id"], purl.as_str());
        assert_eq!(built["subject"]["content"]["change"]["id"], "0123abcd");
        assert_eq!(built["context"]["source"], "https://ci.example/flow");
        assert_eq!(built["context"]["timestamp"], "1970-01-01T00:00:02.000Z");
        assert_eq!(signed["subject"]["id"], purl.as_str());
        // No workspace to read it from: the signature file is named.
        assert_eq!(
            signed["subject"]["content"]["signature"],
            "src/target/release/sample.sig"
        );
        assert_eq!(
            published["subject"]["id"],
            format!(
                "pkg:oci/sample@sha256%3A{sha}?repository_url=127.0.0.1:5000/acme/sample&tag=0.1.0"
            )
        );
    }

    #[test]
    fn a_signature_is_read_only_from_inside_the_workspace() {
        let dir = tempfile::tempdir().unwrap();
        let workspace = dir.path().join("ws");
        std::fs::create_dir_all(&workspace).unwrap();
        std::fs::write(
            workspace.join("a.sig"),
            "-----BEGIN SSH SIGNATURE-----\nxyz\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("secret"), "outside").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), workspace.join("link.sig")).unwrap();
        let mut mapper = CdEventMapper::new(None);
        mapper.workspace = Some(workspace);
        assert_eq!(
            mapper.read_signature("a.sig").as_deref(),
            Some("-----BEGIN SSH SIGNATURE-----\nxyz")
        );
        assert_eq!(mapper.read_signature("../secret"), None);
        assert_eq!(mapper.read_signature("link.sig"), None);
        assert_eq!(mapper.read_signature("/etc/hostname"), None);
    }

    #[test]
    fn purls_of_layouts_and_registries() {
        let sha = "0f".repeat(32);
        let digest = format!("sha256:{sha}");
        assert_eq!(
            oci_purl("oci:release:0.1.0", &digest).unwrap(),
            format!("pkg:oci/release@sha256%3A{sha}?repository_url=release&tag=0.1.0")
        );
        assert_eq!(
            oci_purl("localhost:5000/sample", &digest).unwrap(),
            format!("pkg:oci/sample@sha256%3A{sha}?repository_url=localhost:5000/sample")
        );
        assert_eq!(oci_purl("x:1", "sha256:zz"), None);
        assert_eq!(
            generic_purl("dir/", &sha).unwrap(),
            format!("pkg:generic/dir?checksum=sha256:{sha}")
        );
        assert_eq!(
            generic_purl("a b", &sha).unwrap(),
            format!("pkg:generic/a%20b?checksum=sha256:{sha}")
        );
    }
}
