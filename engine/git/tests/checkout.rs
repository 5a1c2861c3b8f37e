//! Checkouts of repositories built with the git CLI, compared with `git checkout`.

mod common;

use std::path::Path;

use common::*;
use flow_git::{ObjectId, ObjectKind, Repository};

/// Pack entry types found at the offsets `git verify-pack -v` lists (6 = OFS_DELTA, 7 = REF_DELTA).
fn pack_entry_types(git_dir: &Path) -> Vec<u8> {
    let mut types = Vec::new();
    for e in std::fs::read_dir(git_dir.join("objects/pack"))
        .unwrap()
        .flatten()
    {
        let p = e.path();
        if p.extension().is_none_or(|x| x != "idx") {
            continue;
        }
        let pack = std::fs::read(p.with_extension("pack")).unwrap();
        let listing = git(git_dir, &["verify-pack", "-v", p.to_str().unwrap()]);
        for line in listing.lines() {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() >= 5 && cols[0].len() == 40 {
                let off: usize = cols[4].parse().unwrap();
                types.push((pack[off] >> 4) & 7);
            }
        }
    }
    types
}

/// A repository exercising every feature the checkout supports, with history and deltas.
fn build_feature_repo(root: &Path) -> std::path::PathBuf {
    let sub = root.join("sub");
    init(&sub);
    write(&sub, "lib.txt", "submodule content\n");
    commit_all(&sub, "sub");

    let repo = root.join("repo");
    init(&repo);
    let big: Vec<u8> = (0..1_300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let text: String = (0..2000)
        .map(|i| format!("line {i} of a longish text file\n"))
        .collect();
    write(&repo, "README.md", "# test\n");
    write(&repo, "empty", "");
    write(&repo, "big.bin", &big);
    write(&repo, "text.txt", &text);
    write(&repo, "bin/run.sh", "#!/bin/sh\necho hi\n");
    write(&repo, "a/b/c/d/deep.txt", "deep\n");
    write(&repo, "unicode/héllo wörld ✓.txt", "unicode\n");
    write(&repo, "binary.dat", [0u8, 1, 2, 255, 0, 10, 13, 0]);
    write(
        &repo,
        "model.bin",
        "version https://git-lfs.github.com/spec/v1\noid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 12345\n",
    );
    std::os::unix::fs::symlink("a/b", repo.join("link-to-dir")).unwrap();
    std::os::unix::fs::symlink("does/not/exist", repo.join("dangling")).unwrap();
    std::os::unix::fs::symlink("../README.md", repo.join("a/up-link")).unwrap();
    let mut perms = std::fs::metadata(repo.join("bin/run.sh"))
        .unwrap()
        .permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(repo.join("bin/run.sh"), perms).unwrap();
    commit_all(&repo, "one");
    git(&repo, &["tag", "v1-light"]);
    git(&repo, &["tag", "-a", "-m", "annotated", "v1"]);

    // History with small modifications, so the pack gets deltas.
    for round in 0..5 {
        let mut t = text.clone();
        t.insert_str(round * 500, &format!("inserted in round {round}\n"));
        write(&repo, "text.txt", t);
        let mut b = big.clone();
        b[round * 1000] ^= 0xff;
        write(&repo, "big.bin", &b);
        write(
            &repo,
            &format!("added/{round}.txt"),
            format!("round {round}\n"),
        );
        commit_all(&repo, &format!("round {round}"));
    }
    git(
        &repo,
        &[
            "-c",
            "protocol.file.allow=always",
            "submodule",
            "add",
            "-q",
            sub.to_str().unwrap(),
            "vendor/sub",
        ],
    );
    commit_all(&repo, "submodule");
    git(
        &repo,
        &["tag", "-a", "-m", "tag of a tag", "v1-outer", "v1"],
    );
    git(&repo, &["checkout", "-q", "-b", "feature"]);
    git(&repo, &["gc", "-q"]);
    // Loose objects on top of the pack.
    write(&repo, "text.txt", format!("{text}after gc\n"));
    write(&repo, "new/loose.txt", "loose\n");
    commit_all(&repo, "after gc");
    git(&repo, &["checkout", "-q", "main"]);
    repo
}

#[test]
fn feature_repo_matches_git() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = build_feature_repo(tmp.path());
    let git_dir = repo.join(".git");
    assert!(
        pack_entry_types(&git_dir).contains(&6),
        "expected OFS_DELTA entries"
    );
    assert!(git_dir.join("packed-refs").is_file());

    let report = check_against_git(&repo, &git_dir, "main");
    assert_eq!(report.executables, 1);
    assert_eq!(report.symlinks, 3);
    assert_eq!(report.lfs_pointers, vec!["model.bin".to_owned()]);
    assert_eq!(report.submodules.len(), 1);
    let sub = &report.submodules[0];
    assert_eq!(sub.path, "vendor/sub");
    assert_eq!(
        sub.commit.to_hex(),
        git(&repo, &["rev-parse", "HEAD:vendor/sub"])
    );
    assert_eq!(
        sub.url.as_deref(),
        Some(tmp.path().join("sub").to_str().unwrap())
    );
    assert!(report.bytes > 1_300_000);

    // Branch with loose objects on top of the pack, and older commits through tags.
    check_against_git(&repo, &git_dir, "feature");
    check_against_git(&repo, &git_dir, "v1");
    check_against_git(&repo, &git_dir, "v1-outer");
    check_against_git(&repo, &git_dir, "HEAD~3");

    // Every object git knows reads back with the right id and type.
    let r = Repository::open(&repo).unwrap();
    let all = git(&repo, &["cat-file", "--batch-all-objects", "--batch-check"]);
    for line in all.lines() {
        let mut cols = line.split(' ');
        let id = ObjectId::from_hex(cols.next().unwrap()).unwrap();
        let kind = cols.next().unwrap();
        let obj = r.read_object(&id).unwrap();
        assert_eq!(obj.kind.as_str(), kind);
        assert_eq!(ObjectId::hash_object(obj.kind, &obj.data), id);
    }
}

#[test]
fn ref_deltas_in_pack_and_against_loose_base() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    init(&repo);
    let text: String = (0..3000).map(|i| format!("row {i}\n")).collect();
    for round in 0..4 {
        let mut t = text.clone();
        t.insert_str(round * 1000, "changed\n");
        write(&repo, "t.txt", t);
        commit_all(&repo, &format!("r{round}"));
    }
    // Without delta-base-offset, pack-objects writes REF_DELTA entries.
    git(
        &repo,
        &[
            "-c",
            "repack.useDeltaBaseOffset=false",
            "repack",
            "-q",
            "-a",
            "-d",
            "-f",
        ],
    );
    let types = pack_entry_types(&repo.join(".git"));
    assert!(
        types.contains(&7),
        "expected REF_DELTA entries, got {types:?}"
    );
    assert!(!types.contains(&6));
    check_against_git(&repo, &repo.join(".git"), "HEAD");
    check_against_git(&repo, &repo.join(".git"), "HEAD~2");

    // A hand-made pack whose only entry is a REF_DELTA against a loose object.
    let base = b"hello world, this is the base object\n";
    let base_id = git_stdin(&repo, &["hash-object", "-w", "--stdin"], base);
    let result = b"hello there, this is the base object\n";
    let result_id = ObjectId::hash_object(ObjectKind::Blob, result);
    let mut delta = vec![base.len() as u8, result.len() as u8];
    delta.extend_from_slice(&[0x90, 6]); // copy "hello "
    delta.push(5);
    delta.extend_from_slice(b"there");
    delta.extend_from_slice(&[0x91, 11, 26]); // copy the rest
    let base = ObjectId::from_hex(&base_id).unwrap();
    let entry = pack_entry(7, delta.len() as u64, base.as_bytes(), &delta);
    let pack = write_pack(&repo.join(".git/objects/pack"), &[(result_id, entry)]);
    assert!(pack.is_file());
    // (git itself resolves REF_DELTA bases only within the same pack, so it reports this pack as
    // corrupt; flow-git looks the base up anywhere, as thin packs need.)
    let r = Repository::open(&repo).unwrap();
    assert_eq!(r.read_object(&result_id).unwrap().data, result);
}

#[test]
fn bare_repo_and_linked_worktree() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = build_feature_repo(tmp.path());
    let bare = tmp.path().join("bare.git");
    git(
        tmp.path(),
        &[
            "clone",
            "-q",
            "--bare",
            repo.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );
    let r = Repository::open(&bare).unwrap();
    assert!(r.is_bare());
    check_against_git(&bare, &bare, "feature");

    let wt = tmp.path().join("wt");
    git(
        &repo,
        &["worktree", "add", "-q", wt.to_str().unwrap(), "v1"],
    );
    assert!(wt.join(".git").is_file());
    let r = Repository::open(&wt).unwrap();
    assert!(!r.is_bare());
    let head = r.resolve(None).unwrap();
    assert_eq!(head.commit.to_hex(), git(&wt, &["rev-parse", "HEAD"]));
    assert_eq!(head.ref_name, None, "detached HEAD");
    // Refs are shared with the main repository.
    assert_eq!(
        r.resolve(Some("main")).unwrap().commit.to_hex(),
        git(&repo, &["rev-parse", "main"])
    );
}

#[test]
fn alternates() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = build_feature_repo(tmp.path());
    let clone = tmp.path().join("shared");
    git(
        tmp.path(),
        &[
            "clone",
            "-q",
            "--shared",
            repo.to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
    );
    assert!(clone.join(".git/objects/info/alternates").is_file());
    check_against_git(&clone, &clone.join(".git"), "HEAD");
}
