//! OCI image-layout directories (`oci:DIR:TAG`), the embedded default when no
//! registry is configured: `oci-layout`, `index.json` (one entry per tag,
//! named by `org.opencontainers.image.ref.name`) and `blobs/sha256/<hex>`.
//! skopeo and other spec readers can copy from it.
//!
//! Every file is written atomically (temporary file in the same directory,
//! then rename), so a reader never sees a half-written blob or index. The
//! layout assumes one writer at a time.
//!
//! Referrers are recorded two ways, both spec-compatible: the referrer
//! manifest gets its own untagged entry in `index.json` (what ORAS-style
//! readers scan for `subject`), and the referrers tag schema index
//! `sha256-<subject hex>` lists them (so `skopeo copy oci:DIR:sha256-<hex>`
//! can carry them).

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::manifest::{
    ANNOTATION_REF_NAME, Artifact, Blob, BlobSource, Descriptor, ImageIndex, ImageManifest,
    MAX_MANIFEST_SIZE, MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST,
};
use crate::published::{Outcome, Published, PulledArtifact};
use crate::reference::{LayoutRef, validate_tag};
use crate::registry::{Decision, FetchedManifest, decide};

const LAYOUT_FILE: &str = "oci-layout";
const LAYOUT_CONTENT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
const INDEX_FILE: &str = "index.json";

/// An OCI image-layout directory.
#[derive(Debug, Clone)]
pub struct Layout {
    dir: PathBuf,
}

impl Layout {
    /// Opens the layout at `dir`, creating the directory, `oci-layout` and an
    /// empty `index.json` if they do not exist.
    pub fn create(dir: impl Into<PathBuf>) -> Result<Layout> {
        let dir = dir.into();
        fs::create_dir_all(dir.join("blobs").join("sha256")).map_err(|e| Error::io(&dir, e))?;
        let layout = Layout { dir };
        if !layout.dir.join(LAYOUT_FILE).exists() {
            write_atomic(&layout.dir.join(LAYOUT_FILE), LAYOUT_CONTENT)?;
        }
        if !layout.dir.join(INDEX_FILE).exists() {
            layout.write_index(&ImageIndex::new())?;
        }
        layout.check_version()?;
        Ok(layout)
    }

    /// Opens an existing layout (it must have `oci-layout` and `index.json`).
    pub fn open(dir: impl Into<PathBuf>) -> Result<Layout> {
        let layout = Layout { dir: dir.into() };
        layout.check_version()?;
        layout.index()?;
        Ok(layout)
    }

    fn check_version(&self) -> Result<()> {
        let path = self.dir.join(LAYOUT_FILE);
        let bytes = fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let v: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| self.bad(format!("oci-layout is not JSON: {e}")))?;
        match v.get("imageLayoutVersion").and_then(|v| v.as_str()) {
            Some("1.0.0") => Ok(()),
            other => Err(self.bad(format!("unsupported imageLayoutVersion {other:?}"))),
        }
    }

    fn bad(&self, reason: impl Into<String>) -> Error {
        Error::Layout {
            dir: self.dir.clone(),
            reason: reason.into(),
        }
    }

    /// The layout directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads `index.json`.
    pub fn index(&self) -> Result<ImageIndex> {
        let path = self.dir.join(INDEX_FILE);
        let bytes = fs::read(&path).map_err(|e| Error::io(&path, e))?;
        ImageIndex::from_slice(&bytes).map_err(|e| self.bad(format!("index.json: {e}")))
    }

    fn write_index(&self, index: &ImageIndex) -> Result<()> {
        write_atomic(&self.dir.join(INDEX_FILE), &index.to_bytes())
    }

    /// Where the blob `digest` lives.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join("blobs").join("sha256").join(digest.hex())
    }

    /// Whether the layout has the blob.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Reads a blob, checking its digest.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let path = self.blob_path(digest);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound(format!(
                    "blob {digest} in {}",
                    self.dir.display()
                )));
            }
            Err(e) => return Err(Error::io(&path, e)),
        };
        let actual = Digest::of(&bytes);
        if actual != *digest {
            return Err(Error::DigestMismatch {
                what: format!("blob {}", path.display()),
                expected: digest.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(bytes)
    }

    /// Stores bytes as a blob (no-op if present) and returns their digest.
    pub fn write_blob(&self, bytes: &[u8]) -> Result<Digest> {
        let digest = Digest::of(bytes);
        let path = self.blob_path(&digest);
        if !blob_present(&path, bytes.len() as u64) {
            write_atomic(&path, bytes)?;
        }
        Ok(digest)
    }

    /// Stores an artifact blob, streaming files and checking their digest.
    fn store(&self, blob: &Blob) -> Result<()> {
        let path = self.blob_path(&blob.descriptor.digest);
        if blob_present(&path, blob.descriptor.size) {
            return Ok(());
        }
        match &blob.source {
            BlobSource::Bytes(b) => {
                self.write_blob(b)?;
            }
            BlobSource::File(src) => {
                let mut input = File::open(src).map_err(|e| Error::io(src, e))?;
                let (tmp, mut out) = temp_file(&path)?;
                let result = (|| {
                    let mut hasher = HashingWriter::new(&mut out);
                    std::io::copy(&mut input, &mut hasher).map_err(|e| Error::io(src, e))?;
                    let (digest, size) = hasher.finish();
                    if digest != blob.descriptor.digest || size != blob.descriptor.size {
                        return Err(Error::DigestMismatch {
                            what: format!("file {} (changed while publishing?)", src.display()),
                            expected: blob.descriptor.digest.to_string(),
                            actual: digest.to_string(),
                        });
                    }
                    out.sync_all()
                        .or_else(ignore_unsupported)
                        .map_err(|e| Error::io(&tmp, e))?;
                    drop(out);
                    fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))
                })();
                if result.is_err() {
                    let _ = fs::remove_file(&tmp);
                }
                result?;
            }
        }
        Ok(())
    }

    /// The descriptor the tag names, if any.
    pub fn resolve(&self, tag: &str) -> Result<Option<Descriptor>> {
        Ok(self
            .index()?
            .manifests
            .into_iter()
            .find(|d| d.annotations.get(ANNOTATION_REF_NAME).map(String::as_str) == Some(tag)))
    }

    fn fetch(&self, descriptor: &Descriptor) -> Result<FetchedManifest> {
        if descriptor.size > MAX_MANIFEST_SIZE as u64 {
            return Err(self.bad(format!("manifest {} larger than 4 MiB", descriptor.digest)));
        }
        let bytes = self.read_blob(&descriptor.digest)?;
        Ok(FetchedManifest {
            media_type: descriptor.media_type.clone(),
            digest: descriptor.digest,
            bytes,
        })
    }

    /// Writes `artifact` and tags it `tag`, under the one-artifact-per-version
    /// rule: a tag naming different content is refused with
    /// [`Error::TagExists`] unless `overwrite`; the same content is a no-op.
    pub fn push(&self, tag: &str, artifact: &Artifact, overwrite: bool) -> Result<Published> {
        self.push_observed(tag, artifact, overwrite, &|_, _| {})
    }

    /// [`Layout::push`], telling `progress` the bytes written of the blobs' total.
    pub fn push_observed(
        &self,
        tag: &str,
        artifact: &Artifact,
        overwrite: bool,
        progress: &dyn Fn(u64, u64),
    ) -> Result<Published> {
        validate_tag(tag).map_err(|reason| Error::InvalidReference {
            input: tag.to_string(),
            reason,
        })?;
        let reference = self.reference(tag);
        let existing = match self.resolve(tag)? {
            Some(d) => Some(self.fetch(&d)?),
            None => None,
        };
        let outcome = match decide(
            &reference,
            existing.as_ref(),
            artifact.digest(),
            Some(&artifact.manifest),
            overwrite,
        )? {
            Decision::Unchanged(d) => {
                return Ok(Published {
                    reference,
                    descriptor: d,
                    outcome: Outcome::Unchanged,
                });
            }
            Decision::Write(o) => o,
        };
        let total: u64 = artifact.blobs.iter().map(|b| b.descriptor.size).sum();
        let mut done = 0;
        progress(done, total);
        for blob in &artifact.blobs {
            self.store(blob)?;
            done += blob.descriptor.size;
            progress(done, total);
        }
        self.write_blob(&artifact.manifest_bytes)?;
        let descriptor = artifact.descriptor();
        let mut entry = Descriptor::of(MEDIA_TYPE_MANIFEST, &artifact.manifest_bytes);
        entry.artifact_type = descriptor.artifact_type.clone();
        self.set_tag(tag, entry)?;
        Ok(Published {
            reference,
            descriptor,
            outcome,
        })
    }

    fn reference(&self, tag: &str) -> String {
        format!("oci:{}:{tag}", self.dir.display())
    }

    /// Points `tag` at `entry` in index.json (replacing any previous entry for it).
    fn set_tag(&self, tag: &str, mut entry: Descriptor) -> Result<()> {
        entry
            .annotations
            .insert(ANNOTATION_REF_NAME.to_string(), tag.to_string());
        let mut index = self.index()?;
        index
            .manifests
            .retain(|d| d.annotations.get(ANNOTATION_REF_NAME).map(String::as_str) != Some(tag));
        index.manifests.push(entry);
        self.write_index(&index)
    }

    /// Writes a referrer `artifact` (it must have a `subject`): its blobs and
    /// manifest, an untagged index.json entry, and an entry in the referrers
    /// tag schema index `sha256-<subject hex>`.
    pub fn attach(&self, artifact: &Artifact) -> Result<Published> {
        let subject = artifact.manifest.subject.as_ref().ok_or_else(|| {
            Error::InvalidArtifact("a referrer needs a subject (ArtifactBuilder::subject)".into())
        })?;
        for blob in &artifact.blobs {
            self.store(blob)?;
        }
        let digest = self.write_blob(&artifact.manifest_bytes)?;
        let mut descriptor = artifact.descriptor();
        descriptor.annotations.remove(ANNOTATION_REF_NAME);

        let mut index = self.index()?;
        let untagged = |d: &Descriptor| !d.annotations.contains_key(ANNOTATION_REF_NAME);
        if !index
            .manifests
            .iter()
            .any(|d| d.digest == digest && untagged(d))
        {
            index.manifests.push(descriptor.clone());
            self.write_index(&index)?;
        }

        let tag = subject.digest.referrers_tag();
        let mut referrers = match self.resolve(&tag)? {
            Some(d) => ImageIndex::from_slice(&self.fetch(&d)?.bytes)?,
            None => ImageIndex::new(),
        };
        if !referrers.manifests.iter().any(|d| d.digest == digest) {
            referrers.manifests.push(descriptor.clone());
            let bytes = referrers.to_bytes();
            self.write_blob(&bytes)?;
            self.set_tag(&tag, Descriptor::of(MEDIA_TYPE_INDEX, &bytes))?;
        }
        Ok(Published {
            reference: format!("oci:{}@{digest}", self.dir.display()),
            descriptor,
            outcome: Outcome::Created,
        })
    }

    /// The referrers of `subject` (from the tag schema index and from
    /// index.json entries whose manifest has that subject), optionally only
    /// those of `artifact_type`.
    pub fn referrers(
        &self,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>> {
        let mut found: Vec<Descriptor> = Vec::new();
        if let Some(d) = self.resolve(&subject.referrers_tag())? {
            found.extend(ImageIndex::from_slice(&self.fetch(&d)?.bytes)?.manifests);
        }
        for entry in self.index()?.manifests {
            if entry.media_type != MEDIA_TYPE_MANIFEST
                || found.iter().any(|f| f.digest == entry.digest)
            {
                continue;
            }
            let Ok(m) = self.fetch(&entry) else { continue };
            let Ok(m) = ImageManifest::from_slice(&m.bytes) else {
                continue;
            };
            if m.subject.as_ref().map(|s| s.digest) == Some(*subject) {
                let mut d = entry.clone();
                d.artifact_type = Some(m.effective_artifact_type());
                d.annotations = m.annotations;
                found.push(d);
            }
        }
        Ok(found
            .into_iter()
            .filter(|d| artifact_type.is_none_or(|t| d.artifact_type.as_deref() == Some(t)))
            .collect())
    }

    /// Reads the artifact `r` names (its `dir` is ignored; this layout is used):
    /// manifest and layers, digests verified.
    pub fn pull(&self, r: &LayoutRef) -> Result<PulledArtifact> {
        let descriptor = match (&r.digest, &r.tag) {
            (Some(d), _) => {
                let bytes = self.read_blob(d)?;
                Descriptor::of(MEDIA_TYPE_MANIFEST, &bytes)
            }
            (None, Some(t)) => self
                .resolve(t)?
                .ok_or_else(|| Error::NotFound(format!("tag {t} in {}", self.dir.display())))?,
            (None, None) => return Err(self.bad("a tag or a digest is needed")),
        };
        self.pull_descriptor(&descriptor)
    }

    fn pull_descriptor(&self, descriptor: &Descriptor) -> Result<PulledArtifact> {
        let fetched = self.fetch(descriptor)?;
        let manifest = ImageManifest::from_slice(&fetched.bytes)?;
        let mut files = Vec::new();
        for layer in &manifest.layers {
            files.push((layer.clone(), self.read_blob(&layer.digest)?));
        }
        let mut d = Descriptor::of(MEDIA_TYPE_MANIFEST, &fetched.bytes);
        d.artifact_type = Some(manifest.effective_artifact_type());
        d.annotations = manifest.annotations.clone();
        Ok(PulledArtifact {
            descriptor: d,
            manifest,
            files,
        })
    }

    /// Reads every referrer of `subject` (optionally only of `artifact_type`) with its layers.
    pub fn pull_referrers(
        &self,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<PulledArtifact>> {
        self.referrers(subject, artifact_type)?
            .iter()
            .filter(|d| d.media_type == MEDIA_TYPE_MANIFEST)
            .map(|d| self.pull_descriptor(d))
            .collect()
    }
}

fn blob_present(path: &Path, size: u64) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == size)
}

fn ignore_unsupported(e: std::io::Error) -> std::io::Result<()> {
    if e.kind() == std::io::ErrorKind::Unsupported {
        Ok(())
    } else {
        Err(e)
    }
}

/// A new, exclusively created temporary file next to `target`.
fn temp_file(target: &Path) -> Result<(PathBuf, File)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = target.parent().unwrap_or(Path::new("."));
    let name = target
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("file");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.{nanos:x}.{n}.tmp"));
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1_000_000 => continue,
            Err(e) => return Err(Error::io(&tmp, e)),
        }
    }
}

/// Writes `bytes` to `path` atomically (temporary file, then rename).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let (tmp, mut f) = temp_file(path)?;
    let result = f
        .write_all(bytes)
        .and_then(|()| f.sync_all().or_else(ignore_unsupported))
        .map_err(|e| Error::io(&tmp, e))
        .and_then(|()| {
            drop(f);
            fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
        });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Writes through to `inner` while hashing.
struct HashingWriter<W> {
    inner: W,
    hasher: sha2::Sha256,
    size: u64,
}

impl<W: Write> HashingWriter<W> {
    fn new(inner: W) -> Self {
        use sha2::Digest as _;
        HashingWriter {
            inner,
            hasher: sha2::Sha256::new(),
            size: 0,
        }
    }
    fn finish(self) -> (Digest, u64) {
        use sha2::Digest as _;
        (Digest::from_raw(self.hasher.finalize().into()), self.size)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        use sha2::Digest as _;
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
