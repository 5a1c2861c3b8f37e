//! OCI descriptors, image manifests and indexes, and the builder for flow's
//! artifacts (OCI 1.1 "artifact" manifests: empty config, one layer per file).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{Error, Result};

/// `application/vnd.oci.image.manifest.v1+json`
pub const MEDIA_TYPE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// `application/vnd.oci.image.index.v1+json`
pub const MEDIA_TYPE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// `application/vnd.oci.empty.v1+json`, the media type of the `{}` config.
pub const MEDIA_TYPE_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// Docker's schema 2 manifest (read when promoting, never written).
pub const MEDIA_TYPE_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker's manifest list (read when promoting, never written).
pub const MEDIA_TYPE_DOCKER_LIST: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
/// The default media type of a published file.
pub const MEDIA_TYPE_OCTET_STREAM: &str = "application/octet-stream";
/// The default `artifactType` of a published artifact.
pub const ARTIFACT_TYPE_FLOW: &str = "application/vnd.flow.artifact.v1";
/// The `artifactType` of flow's attestation bundles attached as referrers.
pub const ARTIFACT_TYPE_ATTESTATIONS: &str = "application/vnd.dev.flow.attestations.v1+json";
/// in-toto's media type, an alternative `artifactType` for attestations.
pub const ARTIFACT_TYPE_IN_TOTO: &str = "application/vnd.in-toto+json";

/// Layer annotation: the file name.
pub const ANNOTATION_TITLE: &str = "org.opencontainers.image.title";
/// Manifest annotation: creation time, RFC 3339.
pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";
/// Manifest annotation: the source commit.
pub const ANNOTATION_REVISION: &str = "org.opencontainers.image.revision";
/// Manifest annotation: the source repository URL.
pub const ANNOTATION_SOURCE: &str = "org.opencontainers.image.source";
/// Manifest annotation: flow's run id.
pub const ANNOTATION_FLOW_RUN: &str = "dev.flow.run";
/// index.json annotation naming a tag in an image layout.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The bytes of the empty config blob, `{}`.
pub const EMPTY_JSON: &[u8] = b"{}";

/// Registries and clients must accept manifests up to 4 MiB; flow refuses larger ones.
pub const MAX_MANIFEST_SIZE: usize = 4 * 1024 * 1024;

/// An OCI content descriptor. Unknown fields are kept (`extra`) so that
/// indexes read from elsewhere round-trip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    pub media_type: String,
    /// Digest of the referenced content.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// For manifests: their `artifactType` (or config media type).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Embedded content, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// Anything else (platform, urls, ...), kept verbatim.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl Descriptor {
    /// A plain descriptor of `bytes`.
    pub fn of(media_type: &str, bytes: &[u8]) -> Descriptor {
        Descriptor {
            media_type: media_type.to_string(),
            digest: Digest::of(bytes),
            size: bytes.len() as u64,
            artifact_type: None,
            annotations: BTreeMap::new(),
            data: None,
            extra: BTreeMap::new(),
        }
    }

    /// The empty config descriptor of OCI 1.1 artifacts (with its data inline).
    pub fn empty_config() -> Descriptor {
        Descriptor {
            data: Some("e30=".to_string()),
            ..Descriptor::of(MEDIA_TYPE_EMPTY, EMPTY_JSON)
        }
    }

    /// The `org.opencontainers.image.title` annotation, if any.
    pub fn title(&self) -> Option<&str> {
        self.annotations.get(ANNOTATION_TITLE).map(String::as_str)
    }
}

/// An OCI image manifest (also used for artifacts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// Always 2.
    pub schema_version: u32,
    /// `application/vnd.oci.image.manifest.v1+json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The artifact's type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The config blob (the empty descriptor for artifacts).
    pub config: Descriptor,
    /// One per file.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// For referrers: the manifest this one is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A manifest or index document: at most 4 MiB of JSON.
fn parse_document<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    if bytes.len() > MAX_MANIFEST_SIZE {
        return Err(Error::malformed(what, "larger than 4 MiB"));
    }
    serde_json::from_slice(bytes).map_err(|e| Error::malformed(what, e))
}

fn check_schema_version(version: u32, what: &str) -> Result<()> {
    if version == 2 {
        Ok(())
    } else {
        Err(Error::malformed(what, "schemaVersion is not 2"))
    }
}

impl ImageManifest {
    /// Parses manifest bytes (refusing anything over 4 MiB).
    pub fn from_slice(bytes: &[u8]) -> Result<ImageManifest> {
        let m: ImageManifest = parse_document(bytes, "image manifest")?;
        check_schema_version(m.schema_version, "image manifest")?;
        Ok(m)
    }

    /// The artifact type as the referrers API reports it: `artifactType`, else the config media type.
    pub fn effective_artifact_type(&self) -> String {
        self.artifact_type
            .clone()
            .unwrap_or_else(|| self.config.media_type.clone())
    }

    /// Whether two manifests carry the same content: same artifact type,
    /// config, subject and layers (digest, media type, annotations). Manifest
    /// annotations (creation time, run id, commit) are metadata and ignored, so
    /// re-publishing the same files is a no-op rather than a conflict.
    pub fn same_content(&self, other: &ImageManifest) -> bool {
        self.effective_artifact_type() == other.effective_artifact_type()
            && self.config.digest == other.config.digest
            && self.subject.as_ref().map(|s| s.digest) == other.subject.as_ref().map(|s| s.digest)
            && self.layers.len() == other.layers.len()
            && self.layers.iter().zip(&other.layers).all(|(a, b)| {
                a.digest == b.digest
                    && a.media_type == b.media_type
                    && a.annotations == b.annotations
            })
    }
}

/// An OCI image index (`index.json` of a layout, referrers lists, multi-platform images).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    /// Always 2.
    pub schema_version: u32,
    /// `application/vnd.oci.image.index.v1+json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The index's artifact type, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The manifests listed.
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    /// Subject, if the index is itself a referrer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Anything else, kept verbatim.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl ImageIndex {
    /// An empty OCI index.
    pub fn new() -> ImageIndex {
        ImageIndex {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_INDEX.to_string()),
            artifact_type: None,
            manifests: Vec::new(),
            subject: None,
            annotations: BTreeMap::new(),
            extra: BTreeMap::new(),
        }
    }

    /// Parses index bytes (refusing anything over 4 MiB).
    pub fn from_slice(bytes: &[u8]) -> Result<ImageIndex> {
        let i: ImageIndex = parse_document(bytes, "image index")?;
        check_schema_version(i.schema_version, "image index")?;
        Ok(i)
    }

    /// Serializes the index (these exact bytes are what gets hashed and stored).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

impl Default for ImageIndex {
    fn default() -> Self {
        ImageIndex::new()
    }
}

/// Where a blob's bytes are.
#[derive(Debug, Clone)]
pub enum BlobSource {
    /// In memory.
    Bytes(Vec<u8>),
    /// In a file, hashed when the artifact was built (and re-checked on push).
    File(PathBuf),
}

/// A blob of an artifact: its descriptor and its bytes.
#[derive(Debug, Clone)]
pub struct Blob {
    /// The descriptor as it appears in the manifest.
    pub descriptor: Descriptor,
    /// The content.
    pub source: BlobSource,
}

impl Blob {
    /// Reads the blob's bytes, checking they still hash to its digest.
    pub fn read(&self) -> Result<Vec<u8>> {
        let bytes = match &self.source {
            BlobSource::Bytes(b) => return Ok(b.clone()),
            BlobSource::File(p) => std::fs::read(p).map_err(|e| Error::io(p, e))?,
        };
        let actual = Digest::of(&bytes);
        if actual != self.descriptor.digest {
            return Err(Error::DigestMismatch {
                what: format!("file {} (changed while publishing?)", self.source_name()),
                expected: self.descriptor.digest.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(bytes)
    }

    fn source_name(&self) -> String {
        match &self.source {
            BlobSource::Bytes(_) => "<memory>".to_string(),
            BlobSource::File(p) => p.display().to_string(),
        }
    }
}

/// A built artifact: the manifest, serialized once, and its blobs.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// The parsed manifest.
    pub manifest: ImageManifest,
    /// The exact bytes that are pushed and hashed.
    pub manifest_bytes: Vec<u8>,
    /// Config and layer blobs (the config first).
    pub blobs: Vec<Blob>,
}

impl Artifact {
    /// The manifest's digest.
    pub fn digest(&self) -> Digest {
        Digest::of(&self.manifest_bytes)
    }

    /// The manifest's descriptor (media type, digest, size, artifactType and
    /// annotations), as a subject or a referrers-list entry uses it.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor {
            artifact_type: Some(self.manifest.effective_artifact_type()),
            annotations: self.manifest.annotations.clone(),
            ..Descriptor::of(MEDIA_TYPE_MANIFEST, &self.manifest_bytes)
        }
    }
}

/// Builds an [`Artifact`] from files and annotations.
///
/// ```
/// # fn main() -> flow_oci::Result<()> {
/// use flow_oci::manifest::{ArtifactBuilder, ANNOTATION_REVISION};
/// let artifact = ArtifactBuilder::new()
///     .annotation(ANNOTATION_REVISION, "0123abcd")
///     .created("2026-01-01T00:00:00Z")
///     .bytes("hello.txt", "text/plain", b"hello".to_vec())?
///     .build()?;
/// assert_eq!(artifact.manifest.layers.len(), 1);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ArtifactBuilder {
    artifact_type: String,
    annotations: BTreeMap<String, String>,
    created: Option<String>,
    subject: Option<Descriptor>,
    layers: Vec<Blob>,
}

impl Default for ArtifactBuilder {
    fn default() -> Self {
        ArtifactBuilder::new()
    }
}

impl ArtifactBuilder {
    /// An artifact of type `application/vnd.flow.artifact.v1`, with no files yet.
    pub fn new() -> ArtifactBuilder {
        ArtifactBuilder {
            artifact_type: ARTIFACT_TYPE_FLOW.to_string(),
            annotations: BTreeMap::new(),
            created: None,
            subject: None,
            layers: Vec::new(),
        }
    }

    /// Sets the `artifactType`.
    pub fn artifact_type(mut self, artifact_type: impl Into<String>) -> Self {
        self.artifact_type = artifact_type.into();
        self
    }

    /// Adds a manifest annotation (e.g. [`ANNOTATION_REVISION`], [`ANNOTATION_SOURCE`], [`ANNOTATION_FLOW_RUN`]).
    pub fn annotation(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.annotations.insert(key.into(), value.into());
        self
    }

    /// Sets `org.opencontainers.image.created` (RFC 3339). Without it the
    /// current time is used, unless an annotation already set it.
    pub fn created(mut self, rfc3339: impl Into<String>) -> Self {
        self.created = Some(rfc3339.into());
        self
    }

    /// Makes this artifact a referrer of `subject` (a manifest descriptor).
    pub fn subject(mut self, subject: Descriptor) -> Self {
        self.subject = Some(subject);
        self
    }

    /// Adds a file as a layer of media type `application/octet-stream`,
    /// titled with its file name.
    pub fn file(self, path: impl AsRef<Path>) -> Result<Self> {
        self.file_with(path, None, MEDIA_TYPE_OCTET_STREAM)
    }

    /// Adds a file as a layer with the given title (default: the file name)
    /// and media type. The file is hashed now and re-read when pushed.
    pub fn file_with(
        self,
        path: impl AsRef<Path>,
        title: Option<&str>,
        media_type: &str,
    ) -> Result<Self> {
        let path = path.as_ref();
        let title = match title {
            Some(t) => t.to_string(),
            None => path
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| {
                    Error::InvalidArtifact(format!("{} has no UTF-8 file name", path.display()))
                })?
                .to_string(),
        };
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        if file.metadata().map_err(|e| Error::io(path, e))?.is_dir() {
            return Err(Error::InvalidArtifact(format!(
                "{} is a directory; publish files (archive a directory first)",
                path.display()
            )));
        }
        let (digest, size) = Digest::of_reader(file).map_err(|e| Error::io(path, e))?;
        let descriptor = Descriptor {
            digest,
            size,
            ..Descriptor::of(media_type, b"")
        };
        self.push_layer(title, descriptor, BlobSource::File(path.to_path_buf()))
    }

    /// Adds in-memory bytes as a layer.
    pub fn bytes(self, title: &str, media_type: &str, data: Vec<u8>) -> Result<Self> {
        let descriptor = Descriptor::of(media_type, &data);
        self.push_layer(title.to_string(), descriptor, BlobSource::Bytes(data))
    }

    fn push_layer(
        mut self,
        title: String,
        mut descriptor: Descriptor,
        source: BlobSource,
    ) -> Result<Self> {
        if title.is_empty() {
            return Err(Error::InvalidArtifact("empty file title".into()));
        }
        if descriptor.media_type.is_empty() || !descriptor.media_type.contains('/') {
            return Err(Error::InvalidArtifact(format!(
                "media type `{}` of {title} is not TYPE/SUBTYPE",
                descriptor.media_type
            )));
        }
        if self
            .layers
            .iter()
            .any(|l| l.descriptor.title() == Some(title.as_str()))
        {
            return Err(Error::InvalidArtifact(format!(
                "two files are titled `{title}`"
            )));
        }
        descriptor
            .annotations
            .insert(ANNOTATION_TITLE.to_string(), title);
        self.layers.push(Blob { descriptor, source });
        Ok(self)
    }

    /// Serializes the manifest (once) and returns the artifact.
    pub fn build(self) -> Result<Artifact> {
        if self.layers.is_empty() {
            return Err(Error::InvalidArtifact("no files to publish".into()));
        }
        if !self.artifact_type.contains('/') {
            return Err(Error::InvalidArtifact(format!(
                "artifactType `{}` is not TYPE/SUBTYPE",
                self.artifact_type
            )));
        }
        let mut annotations = self.annotations;
        match self.created {
            Some(c) => {
                annotations.insert(ANNOTATION_CREATED.to_string(), c);
            }
            None => {
                annotations
                    .entry(ANNOTATION_CREATED.to_string())
                    .or_insert_with(now_rfc3339);
            }
        }
        let config = Descriptor::empty_config();
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_MANIFEST.to_string()),
            artifact_type: Some(self.artifact_type),
            config: config.clone(),
            layers: self.layers.iter().map(|l| l.descriptor.clone()).collect(),
            subject: self.subject,
            annotations,
        };
        let manifest_bytes =
            serde_json::to_vec(&manifest).map_err(|e| Error::InvalidArtifact(e.to_string()))?;
        if manifest_bytes.len() > MAX_MANIFEST_SIZE {
            return Err(Error::InvalidArtifact("manifest larger than 4 MiB".into()));
        }
        let mut blobs = vec![Blob {
            descriptor: config,
            source: BlobSource::Bytes(EMPTY_JSON.to_vec()),
        }];
        let mut seen = BTreeSet::new();
        seen.insert(Digest::of(EMPTY_JSON));
        for l in self.layers {
            if seen.insert(l.descriptor.digest) {
                blobs.push(l);
            }
        }
        Ok(Artifact {
            manifest,
            manifest_bytes,
            blobs,
        })
    }
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    rfc3339_from_unix(secs)
}

/// Formats Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (UTC).
pub fn rfc3339_from_unix(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339_from_unix(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_from_unix(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_from_unix(1_767_225_599), "2025-12-31T23:59:59Z");
    }

    #[test]
    fn artifact_manifest_shape() {
        let a = ArtifactBuilder::new()
            .annotation(ANNOTATION_FLOW_RUN, "run-1")
            .created("2026-01-01T00:00:00Z")
            .bytes("a.txt", "text/plain", b"a".to_vec())
            .unwrap()
            .bytes("b.bin", MEDIA_TYPE_OCTET_STREAM, b"a".to_vec())
            .unwrap()
            .build()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&a.manifest_bytes).unwrap();
        assert_eq!(v["schemaVersion"], 2);
        assert_eq!(v["mediaType"], MEDIA_TYPE_MANIFEST);
        assert_eq!(v["artifactType"], ARTIFACT_TYPE_FLOW);
        assert_eq!(v["config"]["mediaType"], MEDIA_TYPE_EMPTY);
        assert_eq!(
            v["config"]["digest"],
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(v["config"]["size"], 2);
        assert_eq!(v["config"]["data"], "e30=");
        assert_eq!(v["layers"][0]["annotations"][ANNOTATION_TITLE], "a.txt");
        assert_eq!(v["layers"][1]["mediaType"], MEDIA_TYPE_OCTET_STREAM);
        assert_eq!(v["annotations"][ANNOTATION_CREATED], "2026-01-01T00:00:00Z");
        assert_eq!(v["annotations"][ANNOTATION_FLOW_RUN], "run-1");
        assert!(v.get("subject").is_none());
        // config + one blob for the two identical layers
        assert_eq!(a.blobs.len(), 2);
        assert_eq!(a.digest(), Digest::of(&a.manifest_bytes));
        let back = ImageManifest::from_slice(&a.manifest_bytes).unwrap();
        assert_eq!(back, a.manifest);
        let other = ArtifactBuilder::new()
            .bytes("a.txt", "text/plain", b"a".to_vec())
            .unwrap()
            .bytes("b.bin", MEDIA_TYPE_OCTET_STREAM, b"a".to_vec())
            .unwrap()
            .build()
            .unwrap();
        assert!(a.manifest.same_content(&other.manifest));
        assert_ne!(a.digest(), other.digest());
    }

    #[test]
    fn refusals() {
        assert!(ArtifactBuilder::new().build().is_err());
        let b = ArtifactBuilder::new()
            .bytes("x", "text/plain", vec![])
            .unwrap();
        assert!(b.clone().bytes("x", "text/plain", vec![1]).is_err());
        assert!(b.clone().bytes("y", "bogus", vec![1]).is_err());
        assert!(b.artifact_type("nope").build().is_err());
        assert!(ArtifactBuilder::new().file("/nonexistent/file").is_err());
    }
}
