//! The OCI image-layout writer/reader, checked with skopeo.

mod common;

use common::{files, skopeo, skopeo_status, tools};
use flow_oci::manifest::{ANNOTATION_REF_NAME, ARTIFACT_TYPE_ATTESTATIONS, ARTIFACT_TYPE_IN_TOTO};
use flow_oci::{
    ArtifactBuilder, Digest, Error, ImageIndex, ImageManifest, Layout, LayoutRef, Outcome, Target,
};

fn artifact(dir: &std::path::Path, content: &[u8], created: &str) -> flow_oci::Artifact {
    let paths = files(dir, &[("app.bin", content), ("notes.txt", b"notes")]);
    ArtifactBuilder::new()
        .created(created)
        .file(&paths[0])
        .unwrap()
        .file_with(&paths[1], Some("docs/notes.txt"), "text/plain")
        .unwrap()
        .build()
        .unwrap()
}

fn no_temp_files(dir: &std::path::Path) {
    for entry in walk(dir) {
        let name = entry.file_name().unwrap().to_string_lossy().to_string();
        assert!(!name.ends_with(".tmp"), "leftover {}", entry.display());
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn layout_without_tools() {
    // The layout works (and is checked) without any external tool.
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("out");
    let a = artifact(work.path(), b"one", "2026-01-01T00:00:00Z");
    let to = Target::parse(&format!("oci:{}:1.0.0", dir.display())).unwrap();
    let c = common::client(&[]);
    let p = flow_oci::publish(&c, &to, &a, false).unwrap();
    assert_eq!(p.outcome, Outcome::Created);
    assert_eq!(p.reference, format!("oci:{}:1.0.0", dir.display()));

    assert_eq!(
        std::fs::read_to_string(dir.join("oci-layout")).unwrap(),
        r#"{"imageLayoutVersion":"1.0.0"}"#
    );
    let index: ImageIndex =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    assert_eq!(index.manifests.len(), 1);
    assert_eq!(index.manifests[0].digest, a.digest());
    assert_eq!(index.manifests[0].annotations[ANNOTATION_REF_NAME], "1.0.0");
    for blob in walk(&dir.join("blobs/sha256")) {
        let bytes = std::fs::read(&blob).unwrap();
        assert_eq!(
            Digest::of(&bytes).hex(),
            blob.file_name().unwrap().to_string_lossy()
        );
    }
    assert_eq!(
        std::fs::read(dir.join("blobs/sha256").join(a.digest().hex())).unwrap(),
        a.manifest_bytes
    );
    no_temp_files(&dir);

    let layout = Layout::open(&dir).unwrap();
    let pulled = layout
        .pull(&LayoutRef::parse(&format!("oci:{}:1.0.0", dir.display())).unwrap())
        .unwrap();
    assert_eq!(pulled.manifest, a.manifest);
    assert_eq!(pulled.files[0].1, b"one");
    assert_eq!(pulled.files[1].0.title(), Some("docs/notes.txt"));

    // Same content: no-op. Different: refused. Overwrite: replaced.
    let again = artifact(work.path(), b"one", "2027-01-01T00:00:00Z");
    let p = flow_oci::publish(&c, &to, &again, false).unwrap();
    assert_eq!(p.outcome, Outcome::Unchanged);
    assert_eq!(p.digest(), a.digest());
    let b = artifact(work.path(), b"two", "2026-01-01T00:00:00Z");
    let err = flow_oci::publish(&c, &to, &b, false).unwrap_err();
    assert!(matches!(err, Error::TagExists { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(":1.0.0")
            && msg.contains(&a.digest().to_string())
            && msg.contains(&b.digest().to_string()),
        "{msg}"
    );
    assert_eq!(layout.resolve("1.0.0").unwrap().unwrap().digest, a.digest());
    let p = flow_oci::publish(&c, &to, &b, true).unwrap();
    assert_eq!(
        p.outcome,
        Outcome::Replaced {
            previous: a.digest()
        }
    );
    assert_eq!(layout.resolve("1.0.0").unwrap().unwrap().digest, b.digest());
    assert_eq!(layout.index().unwrap().manifests.len(), 1);

    // Another tag is another entry.
    layout.push("1.0.1", &a, false).unwrap();
    assert_eq!(layout.index().unwrap().manifests.len(), 2);

    // Referrers.
    let att = ArtifactBuilder::new()
        .artifact_type(ARTIFACT_TYPE_ATTESTATIONS)
        .subject(p.descriptor.clone())
        .bytes("att.json", "application/json", b"{}".to_vec())
        .unwrap()
        .build()
        .unwrap();
    flow_oci::attach(&c, &to, &att).unwrap();
    flow_oci::attach(&c, &to, &att).unwrap();
    let refs = layout.referrers(&b.digest(), None).unwrap();
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0].digest, att.digest());
    assert!(
        layout
            .referrers(&b.digest(), Some(ARTIFACT_TYPE_IN_TOTO))
            .unwrap()
            .is_empty()
    );
    let pulled = layout
        .pull_referrers(&b.digest(), Some(ARTIFACT_TYPE_ATTESTATIONS))
        .unwrap();
    assert_eq!(pulled[0].files[0].1, b"{}");
    let index = layout.index().unwrap();
    // 2 tags + untagged referrer + referrers tag index
    assert_eq!(index.manifests.len(), 4);
    let tag = b.digest().referrers_tag();
    let entry = layout.resolve(&tag).unwrap().unwrap();
    let ri = ImageIndex::from_slice(&layout.read_blob(&entry.digest).unwrap()).unwrap();
    assert_eq!(ri.manifests.len(), 1);
    no_temp_files(&dir);

    // A damaged blob is detected.
    let layer = &a.manifest.layers[0];
    std::fs::write(layout.blob_path(&layer.digest), b"tampered").unwrap();
    assert!(matches!(
        layout.read_blob(&layer.digest),
        Err(Error::DigestMismatch { .. })
    ));

    // Not a layout.
    assert!(Layout::open(work.path()).is_err());
    std::fs::write(
        work.path().join("oci-layout"),
        r#"{"imageLayoutVersion":"2.0.0"}"#,
    )
    .unwrap();
    assert!(matches!(
        Layout::create(work.path()),
        Err(Error::Layout { .. })
    ));
}

#[test]
fn skopeo_reads_our_layout() {
    if !tools("skopeo_reads_our_layout", &["skopeo"]) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("ours");
    let layout = Layout::create(&dir).unwrap();
    let a = artifact(work.path(), b"skopeo", "2026-01-01T00:00:00Z");
    layout.push("v1", &a, false).unwrap();
    let b = artifact(work.path(), b"skopeo too", "2026-01-01T00:00:00Z");
    layout.push("v2", &b, false).unwrap();
    let att = ArtifactBuilder::new()
        .artifact_type(ARTIFACT_TYPE_ATTESTATIONS)
        .subject(a.descriptor())
        .bytes("att.json", "application/json", b"{\"a\":1}".to_vec())
        .unwrap()
        .build()
        .unwrap();
    layout.attach(&att).unwrap();

    let src = format!("oci:{}:v1", dir.display());
    assert_eq!(skopeo(&["inspect", "--raw", &src]), a.manifest_bytes);
    assert_eq!(
        skopeo(&["inspect", "--raw", &format!("oci:{}:v2", dir.display())]),
        b.manifest_bytes
    );

    let other = work.path().join("theirs");
    let (ok, err) = skopeo_status(&["copy", &src, &format!("oci:{}:v1", other.display())]);
    assert!(ok, "skopeo copy failed: {err}");
    let theirs = Layout::open(&other).unwrap();
    let d = theirs.resolve("v1").unwrap().unwrap();
    assert_eq!(d.digest, a.digest());
    for layer in &a.manifest.layers {
        assert!(theirs.has_blob(&layer.digest));
        theirs.read_blob(&layer.digest).unwrap();
    }

    // The referrers tag index and the attestation can be copied too.
    let tag = a.digest().referrers_tag();
    let raw = skopeo(&["inspect", "--raw", &format!("oci:{}:{tag}", dir.display())]);
    let ri = ImageIndex::from_slice(&raw).unwrap();
    assert_eq!(ri.manifests[0].digest, att.digest());
    let att_src = format!("oci:{}@{}", dir.display(), att.digest());
    let (ok, err) = skopeo_status(&["inspect", "--raw", &att_src]);
    // skopeo 1.9 cannot address layouts by digest; the tag index is enough then.
    if ok {
        let m: ImageManifest =
            serde_json::from_slice(&skopeo(&["inspect", "--raw", &att_src])).unwrap();
        assert_eq!(m.subject.unwrap().digest, a.digest());
    } else {
        eprintln!("note: skopeo cannot read oci:DIR@digest: {err}");
    }
}

#[test]
fn layout_of_skopeo_is_readable() {
    if !tools("layout_of_skopeo_is_readable", &["skopeo"]) {
        return;
    }
    // skopeo writes a layout (from ours); we open it and add to it.
    let work = tempfile::tempdir().unwrap();
    let ours = work.path().join("ours");
    let a = artifact(work.path(), b"roundtrip", "2026-01-01T00:00:00Z");
    Layout::create(&ours).unwrap().push("t", &a, false).unwrap();
    let theirs = work.path().join("theirs");
    skopeo(&[
        "copy",
        &format!("oci:{}:t", ours.display()),
        &format!("oci:{}:t", theirs.display()),
    ]);
    let l = Layout::open(&theirs).unwrap();
    assert_eq!(l.push("t", &a, false).unwrap().outcome, Outcome::Unchanged);
    let b = artifact(work.path(), b"other", "2026-01-01T00:00:00Z");
    assert!(matches!(
        l.push("t", &b, false),
        Err(Error::TagExists { .. })
    ));
    l.push("u", &b, false).unwrap();
    assert_eq!(
        skopeo(&["inspect", "--raw", &format!("oci:{}:u", theirs.display())]),
        b.manifest_bytes
    );
}
