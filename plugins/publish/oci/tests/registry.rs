//! Against a real registry (Debian's docker-registry, distribution 2.8.2,
//! which has no referrers API), read back with skopeo.

mod common;

use common::{Registry, client, files, skopeo, skopeo_status, tools};
use flow_oci::manifest::{
    ANNOTATION_FLOW_RUN, ANNOTATION_REVISION, ANNOTATION_SOURCE, ARTIFACT_TYPE_ATTESTATIONS,
    ARTIFACT_TYPE_IN_TOTO,
};
use flow_oci::{
    ArtifactBuilder, Credentials, Digest, Error, ImageIndex, ImageManifest, Outcome,
    PromoteOptions, RegistryRef, Target,
};

const TOOLS: &[&str] = &["docker-registry", "skopeo"];

fn artifact(dir: &std::path::Path, content: &[u8], created: &str) -> flow_oci::Artifact {
    let paths = files(dir, &[("app.tar.gz", content), ("README.md", b"# app\n")]);
    ArtifactBuilder::new()
        .annotation(
            ANNOTATION_REVISION,
            "0123456789abcdef0123456789abcdef01234567",
        )
        .annotation(ANNOTATION_SOURCE, "https://git.example/team/app")
        .annotation(ANNOTATION_FLOW_RUN, "run-1")
        .created(created)
        .file(&paths[0])
        .unwrap()
        .file_with(&paths[1], None, "text/markdown")
        .unwrap()
        .build()
        .unwrap()
}

fn attestation(
    subject: &flow_oci::Descriptor,
    artifact_type: &str,
    body: &[u8],
) -> flow_oci::Artifact {
    ArtifactBuilder::new()
        .artifact_type(artifact_type)
        .subject(subject.clone())
        .bytes(
            "provenance.intoto.jsonl",
            "application/vnd.in-toto+json",
            body.to_vec(),
        )
        .unwrap()
        .build()
        .unwrap()
}

#[test]
fn publish_is_read_back_by_skopeo() {
    if !tools("publish_is_read_back_by_skopeo", TOOLS) {
        return;
    }
    let reg = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let c = client(&[&reg.host]);
    c.ping(&reg.host).unwrap();
    let a = artifact(work.path(), b"binary bytes", "2026-01-01T00:00:00Z");
    let to = Target::parse(&format!("{}/team/app:1.0.0", reg.host)).unwrap();
    let p = flow_oci::publish(&c, &to, &a, false).unwrap_or_else(|e| panic!("{e}\n{}", reg.log()));
    assert_eq!(p.outcome, Outcome::Created);
    assert_eq!(p.digest(), a.digest());
    assert_eq!(p.reference, format!("{}/team/app:1.0.0", reg.host));

    // skopeo sees exactly our manifest bytes.
    let url = format!("docker://{}/team/app:1.0.0", reg.host);
    let raw = skopeo(&["inspect", "--tls-verify=false", "--raw", &url]);
    assert_eq!(raw, a.manifest_bytes);
    assert_eq!(Digest::of(&raw), a.digest());

    // skopeo copies it into a layout of its own: same manifest, same blobs.
    let out = work.path().join("skopeo-layout");
    let dest = format!("oci:{}:1.0.0", out.display());
    let (ok, err) = skopeo_status(&["copy", "--src-tls-verify=false", &url, &dest]);
    assert!(ok, "skopeo copy failed: {err}");
    let index: ImageIndex =
        serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
    assert_eq!(index.manifests[0].digest, a.digest());
    for layer in &a.manifest.layers {
        let blob = std::fs::read(out.join("blobs/sha256").join(layer.digest.hex())).unwrap();
        assert_eq!(Digest::of(&blob), layer.digest);
    }

    // And we read it back ourselves, digests verified.
    let pulled = c
        .pull(&RegistryRef::parse(&format!("{}/team/app:1.0.0", reg.host)).unwrap())
        .unwrap();
    assert_eq!(pulled.manifest, a.manifest);
    let names: Vec<_> = pulled
        .files
        .iter()
        .map(|(d, _)| d.title().unwrap().to_string())
        .collect();
    assert_eq!(names, ["app.tar.gz", "README.md"]);
    assert_eq!(pulled.files[0].1, b"binary bytes");
}

#[test]
fn chunked_uploads() {
    if !tools("chunked_uploads", TOOLS) {
        return;
    }
    let reg = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let c = flow_oci::Client::new(common::Recording::default())
        .with_plain_http(&reg.host)
        .with_chunk_size(1000);
    let big: Vec<u8> = (0..4500u32).map(|i| (i % 251) as u8).collect();
    let a = artifact(work.path(), &big, "2026-01-01T00:00:00Z");
    let to = RegistryRef::parse(&format!("{}/chunky:1", reg.host)).unwrap();
    c.push(&to, &a, false)
        .unwrap_or_else(|e| panic!("{e}\n{}", reg.log()));
    let patches = c
        .transport()
        .log
        .borrow()
        .iter()
        .filter(|l| l.starts_with("PATCH"))
        .count();
    assert_eq!(patches, 5);
    let url = format!("docker://{}/chunky:1", reg.host);
    assert_eq!(
        skopeo(&["inspect", "--tls-verify=false", "--raw", &url]),
        a.manifest_bytes
    );
    assert_eq!(client(&[&reg.host]).pull(&to).unwrap().files[0].1, big);
}

#[test]
fn one_artifact_per_version() {
    if !tools("one_artifact_per_version", TOOLS) {
        return;
    }
    let reg = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let c = client(&[&reg.host]);
    let to = RegistryRef::parse(&format!("{}/app:2.0.0", reg.host)).unwrap();
    let first = artifact(work.path(), b"v2", "2026-01-01T00:00:00Z");
    assert_eq!(
        c.push(&to, &first, false).unwrap().outcome,
        Outcome::Created
    );

    // Identical content again (even with another creation time): no-op, existing manifest returned.
    let again = artifact(work.path(), b"v2", "2026-02-02T00:00:00Z");
    assert_ne!(again.digest(), first.digest());
    let p = c.push(&to, &again, false).unwrap();
    assert_eq!(p.outcome, Outcome::Unchanged);
    assert_eq!(p.digest(), first.digest());
    let p = c.push(&to, &first, false).unwrap();
    assert_eq!(p.outcome, Outcome::Unchanged);

    // Different content: refused, naming the tag and both digests.
    let other = artifact(work.path(), b"v2 but different", "2026-01-01T00:00:00Z");
    let err = c.push(&to, &other, false).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::TagExists { .. }), "{msg}");
    assert!(msg.contains(&to.to_string()), "{msg}");
    assert!(msg.contains(&first.digest().to_string()), "{msg}");
    assert!(msg.contains(&other.digest().to_string()), "{msg}");
    let url = format!("docker://{}/app:2.0.0", reg.host);
    assert_eq!(
        skopeo(&["inspect", "--tls-verify=false", "--raw", &url]),
        first.manifest_bytes
    );

    // ... unless overwrite.
    let p = c.push(&to, &other, true).unwrap();
    assert_eq!(
        p.outcome,
        Outcome::Replaced {
            previous: first.digest()
        }
    );
    assert_eq!(
        skopeo(&["inspect", "--tls-verify=false", "--raw", &url]),
        other.manifest_bytes
    );

    // Digest-only references: the digest must be the artifact's.
    let by_digest = to.with_digest(first.digest());
    assert!(matches!(
        c.push(&by_digest, &other, false),
        Err(Error::DigestMismatch { .. })
    ));
    // publish() needs a tag.
    assert!(matches!(
        flow_oci::publish(&c, &Target::Registry(by_digest), &other, false),
        Err(Error::InvalidReference { .. })
    ));
}

#[test]
fn attestations_use_the_referrers_tag_schema() {
    if !tools("attestations_use_the_referrers_tag_schema", TOOLS) {
        return;
    }
    let reg = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let c = client(&[&reg.host]);
    let to = Target::parse(&format!("{}/team/app:1.0.0", reg.host)).unwrap();
    let a = artifact(work.path(), b"payload", "2026-01-01T00:00:00Z");
    let p = flow_oci::publish(&c, &to, &a, false).unwrap();

    let att1 = attestation(
        &p.descriptor,
        ARTIFACT_TYPE_ATTESTATIONS,
        b"{\"_type\":\"statement-1\"}\n",
    );
    let r1 = flow_oci::attach(&c, &to, &att1).unwrap_or_else(|e| panic!("{e}\n{}", reg.log()));
    assert_eq!(r1.digest(), att1.digest());
    let att2 = attestation(
        &p.descriptor,
        ARTIFACT_TYPE_IN_TOTO,
        b"{\"_type\":\"statement-2\"}\n",
    );
    flow_oci::attach(&c, &to, &att2).unwrap();
    flow_oci::attach(&c, &to, &att1).unwrap(); // idempotent

    // The tag schema index, read by skopeo.
    let tag_url = format!(
        "docker://{}/team/app:{}",
        reg.host,
        a.digest().referrers_tag()
    );
    let raw = skopeo(&["inspect", "--tls-verify=false", "--raw", &tag_url]);
    let index = ImageIndex::from_slice(&raw).unwrap();
    let listed: Vec<_> = index.manifests.iter().map(|d| d.digest).collect();
    assert_eq!(listed, [att1.digest(), att2.digest()]);
    assert_eq!(
        index.manifests[0].artifact_type.as_deref(),
        Some(ARTIFACT_TYPE_ATTESTATIONS)
    );
    assert_eq!(
        index.manifests[1].artifact_type.as_deref(),
        Some(ARTIFACT_TYPE_IN_TOTO)
    );

    // The referrer manifest as skopeo sees it has our subject.
    let att_url = format!("docker://{}/team/app@{}", reg.host, att1.digest());
    let raw = skopeo(&["inspect", "--tls-verify=false", "--raw", &att_url]);
    assert_eq!(raw, att1.manifest_bytes);
    let m = ImageManifest::from_slice(&raw).unwrap();
    assert_eq!(m.subject.unwrap().digest, a.digest());

    // Listing and fetching them, with and without a filter.
    let repo = RegistryRef::parse(&format!("{}/team/app:1.0.0", reg.host)).unwrap();
    assert_eq!(c.referrers(&repo, &a.digest(), None).unwrap().len(), 2);
    let only = c
        .referrers(&repo, &a.digest(), Some(ARTIFACT_TYPE_IN_TOTO))
        .unwrap();
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].digest, att2.digest());
    let pulled = c
        .pull_referrers(&repo, &a.digest(), Some(ARTIFACT_TYPE_ATTESTATIONS))
        .unwrap();
    assert_eq!(pulled.len(), 1);
    assert_eq!(pulled[0].files[0].1, b"{\"_type\":\"statement-1\"}\n");
    assert!(c.referrers(&repo, &att1.digest(), None).unwrap().is_empty());

    // A referrer without a subject is refused.
    assert!(matches!(
        flow_oci::attach(&c, &to, &a),
        Err(Error::InvalidArtifact(_))
    ));
}

#[test]
fn promotion_copies_artifact_and_referrers() {
    if !tools("promotion_copies_artifact_and_referrers", TOOLS) {
        return;
    }
    let reg = Registry::start();
    let other = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let c = client(&[&reg.host, &other.host]);
    let dev = RegistryRef::parse(&format!("{}/dev/app:1.0.0", reg.host)).unwrap();
    let a = artifact(work.path(), b"promote me", "2026-01-01T00:00:00Z");
    let p = c.push(&dev, &a, false).unwrap();
    let att = attestation(&p.descriptor, ARTIFACT_TYPE_ATTESTATIONS, b"{}\n");
    c.attach(&dev, &att).unwrap();

    // The caller verifies the attestations first: it can fetch them.
    let atts = c.pull_referrers(&dev, &p.digest(), None).unwrap();
    assert_eq!(atts.len(), 1);

    // dev -> prod in the same registry (cross-repository mounts).
    let from = dev.with_digest(p.digest());
    let prod = RegistryRef::parse(&format!("{}/prod/app:1.0.0", reg.host)).unwrap();
    let recorder = flow_oci::Client::new(common::Recording::default()).with_plain_http(&reg.host);
    let done = recorder
        .promote(&from, &prod, &PromoteOptions::default())
        .unwrap_or_else(|e| panic!("{e}\n{}", reg.log()));
    let log = recorder.transport().log.borrow().clone();
    let mounts = log
        .iter()
        .filter(|l| l.contains("mount=") && l.ends_with("-> 201"))
        .count();
    // config + 2 layers of the artifact, + 1 layer of the attestation (config already there)
    assert_eq!(mounts, 4, "{log:#?}");
    assert!(
        !log.iter()
            .any(|l| l.starts_with("PUT") && l.contains("/blobs/uploads/")),
        "{log:#?}"
    );
    assert_eq!(done.published.outcome, Outcome::Created);
    assert_eq!(done.published.digest(), a.digest());
    assert_eq!(done.referrers, [att.digest()]);
    let raw = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{}/prod/app:1.0.0", reg.host),
    ]);
    assert_eq!(raw, a.manifest_bytes);
    let tag_url = format!(
        "docker://{}/prod/app:{}",
        reg.host,
        a.digest().referrers_tag()
    );
    let index = ImageIndex::from_slice(&skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &tag_url,
    ]))
    .unwrap();
    assert_eq!(index.manifests.len(), 1);
    assert_eq!(index.manifests[0].digest, att.digest());
    let pulled = c.pull(&prod).unwrap();
    assert_eq!(pulled.files[0].1, b"promote me");

    // Again: a no-op.
    let again = c.promote(&from, &prod, &PromoteOptions::default()).unwrap();
    assert_eq!(again.published.outcome, Outcome::Unchanged);
    let index = ImageIndex::from_slice(&skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &tag_url,
    ]))
    .unwrap();
    assert_eq!(index.manifests.len(), 1);

    // To another registry (no mount possible: pull + push), by tag.
    let far = RegistryRef::parse(&format!("{}/prod/app:1.0.0", other.host)).unwrap();
    let done = c.promote(&dev, &far, &PromoteOptions::default()).unwrap();
    assert_eq!(done.published.digest(), a.digest());
    let raw = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{}/prod/app:1.0.0", other.host),
    ]);
    assert_eq!(raw, a.manifest_bytes);
    assert_eq!(c.referrers(&far, &a.digest(), None).unwrap().len(), 1);

    // Without referrers, to a digest-only destination.
    let bare = RegistryRef::parse_repository(&format!("{}/bare/app", reg.host)).unwrap();
    let opts = PromoteOptions {
        skip_referrers: true,
        ..Default::default()
    };
    let done = c.promote(&from, &bare, &opts).unwrap();
    assert!(done.referrers.is_empty());
    assert!(c.referrers(&bare, &a.digest(), None).unwrap().is_empty());
    assert_eq!(
        c.pull(&bare.with_digest(a.digest())).unwrap().manifest,
        a.manifest
    );

    // A destination tag that names something else is refused.
    let b = artifact(work.path(), b"something else", "2026-01-01T00:00:00Z");
    let taken = RegistryRef::parse(&format!("{}/prod/app:2.0.0", reg.host)).unwrap();
    c.push(&taken, &b, false).unwrap();
    assert!(matches!(
        c.promote(&from, &taken, &PromoteOptions::default()),
        Err(Error::TagExists { .. })
    ));

    // A digest that does not exist.
    let missing = dev.with_digest(Digest::of(b"nothing"));
    let err = c
        .promote(&missing, &prod, &PromoteOptions::default())
        .unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err}");
}

#[test]
fn basic_auth() {
    if !tools("basic_auth", &["docker-registry", "skopeo", "htpasswd"]) {
        return;
    }
    let reg = Registry::start_with_basic_auth("ci", "s3cret-pw");
    let work = tempfile::tempdir().unwrap();
    let to = RegistryRef::parse(&format!("{}/team/app:1.0.0", reg.host)).unwrap();
    let a = artifact(work.path(), b"auth", "2026-01-01T00:00:00Z");

    let anonymous = client(&[&reg.host]);
    let err = anonymous.push(&to, &a, false).unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains("none were given"), "{err}");

    let wrong = client(&[&reg.host]).with_credentials(&reg.host, Credentials::basic("ci", "nope"));
    let err = wrong.push(&to, &a, false).unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
    assert!(!err.to_string().contains("nope"));

    let good =
        client(&[&reg.host]).with_credentials(&reg.host, Credentials::basic("ci", "s3cret-pw"));
    good.ping(&reg.host).unwrap();
    assert_eq!(good.push(&to, &a, false).unwrap().outcome, Outcome::Created);
    let att = attestation(&a.descriptor(), ARTIFACT_TYPE_ATTESTATIONS, b"{}\n");
    good.attach(&to, &att).unwrap();
    assert_eq!(good.referrers(&to, &a.digest(), None).unwrap().len(), 1);
    let raw = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--creds",
        "ci:s3cret-pw",
        "--raw",
        &format!("docker://{}/team/app:1.0.0", reg.host),
    ]);
    assert_eq!(raw, a.manifest_bytes);
    let (ok, _) = skopeo_status(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{}/team/app:1.0.0", reg.host),
    ]);
    assert!(!ok, "anonymous skopeo must be refused");
}

#[test]
fn bearer_token_auth() {
    if !tools("bearer_token_auth", TOOLS) {
        return;
    }
    let reg = Registry::start();
    let front = common::front(&reg.host, common::FrontMode::Bearer);
    let work = tempfile::tempdir().unwrap();
    let to = RegistryRef::parse(&format!("{}/team/app:1.0.0", front.host)).unwrap();
    let a = artifact(work.path(), b"bearer", "2026-01-01T00:00:00Z");

    let err = client(&[&front.host]).push(&to, &a, false).unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
    let err = client(&[&front.host])
        .with_credentials(&front.host, Credentials::basic(common::FRONT_USER, "wrong"))
        .push(&to, &a, false)
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");

    let c = client(&[&front.host]).with_credentials(
        &front.host,
        Credentials::basic(common::FRONT_USER, common::FRONT_PASS),
    );
    assert_eq!(c.push(&to, &a, false).unwrap().outcome, Outcome::Created);
    let att = attestation(&a.descriptor(), ARTIFACT_TYPE_ATTESTATIONS, b"{}\n");
    c.attach(&to, &att).unwrap();
    // What landed in the real registry behind the front:
    let raw = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{}/team/app:1.0.0", reg.host),
    ]);
    assert_eq!(raw, a.manifest_bytes);

    // A ready token is used as is.
    let t = client(&[&front.host])
        .with_credentials(&front.host, Credentials::Bearer("tok-3f9a".into()));
    assert_eq!(t.push(&to, &a, false).unwrap().outcome, Outcome::Unchanged);
    let bad =
        client(&[&front.host]).with_credentials(&front.host, Credentials::Bearer("stale".into()));
    assert!(matches!(
        bad.push(&to, &a, false),
        Err(Error::Unauthorized { .. })
    ));
}

#[test]
fn wrong_docker_content_digest_is_refused() {
    if !tools("wrong_docker_content_digest_is_refused", TOOLS) {
        return;
    }
    let reg = Registry::start();
    let front = common::front(&reg.host, common::FrontMode::LyingDigest);
    let work = tempfile::tempdir().unwrap();
    let to = RegistryRef::parse(&format!("{}/team/app:1.0.0", front.host)).unwrap();
    let a = artifact(work.path(), b"lies", "2026-01-01T00:00:00Z");
    let err = client(&[&front.host]).push(&to, &a, false).unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains("Docker-Content-Digest"), "{err}");
}

#[test]
fn unreachable_registry_is_a_transport_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let host = format!("127.0.0.1:{port}");
    let err = client(&[&host]).ping(&host).unwrap_err();
    assert!(matches!(err, Error::Transport(_)), "{err}");
}
