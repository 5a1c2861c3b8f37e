//! Revision resolution compared with `git rev-parse`.

mod common;

use common::*;
use flow_git::{Error, ObjectId, ObjectKind, Repository};

fn small_repo(dir: &std::path::Path) {
    init(dir);
    write(dir, "a.txt", "one\n");
    commit_all(dir, "first");
    git(dir, &["tag", "light"]);
    git(dir, &["tag", "-a", "-m", "annotated", "v1.0"]);
    git(dir, &["tag", "-a", "-m", "outer", "v1.0-outer", "v1.0"]);
    write(dir, "a.txt", "two\n");
    commit_all(dir, "second");
    git(dir, &["branch", "feature"]);
    git(dir, &["branch", "fix/login-bug"]);
    git(
        dir,
        &["tag", "-a", "-m", "tree tag", "treetag", "HEAD^{tree}"],
    );
    write(dir, "a.txt", "three\n");
    commit_all(dir, "third");
}

fn rev_parse(dir: &std::path::Path, rev: &str) -> String {
    git(
        dir,
        &["rev-parse", "--verify", "-q", &format!("{rev}^{{commit}}")],
    )
}

#[test]
fn resolves_like_git() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("r");
    small_repo(&dir);
    for packed in [false, true] {
        if packed {
            git(&dir, &["pack-refs", "--all"]);
            git(&dir, &["gc", "-q"]);
            assert!(dir.join(".git/packed-refs").is_file());
        }
        let repo = Repository::open(&dir).unwrap();
        let head = repo.resolve(None).unwrap();
        assert_eq!(head.commit.to_hex(), rev_parse(&dir, "HEAD"));
        assert_eq!(head.ref_name.as_deref(), Some("refs/heads/main"));
        assert_eq!(head.tree.to_hex(), git(&dir, &["rev-parse", "HEAD^{tree}"]));
        for (rev, ref_name) in [
            ("HEAD", Some("refs/heads/main")),
            ("@", Some("refs/heads/main")),
            ("main", Some("refs/heads/main")),
            ("feature", Some("refs/heads/feature")),
            ("heads/feature", Some("refs/heads/feature")),
            ("refs/heads/feature", Some("refs/heads/feature")),
            ("fix/login-bug", Some("refs/heads/fix/login-bug")),
            ("light", Some("refs/tags/light")),
            ("v1.0", Some("refs/tags/v1.0")),
            ("v1.0-outer", Some("refs/tags/v1.0-outer")),
            ("tags/v1.0", Some("refs/tags/v1.0")),
            ("v1.0^{}", Some("refs/tags/v1.0")),
            ("HEAD~1", None),
            ("HEAD^", None),
            ("main~2", None),
            ("HEAD^^", None),
        ] {
            let r = repo
                .resolve(Some(rev))
                .unwrap_or_else(|e| panic!("{rev}: {e}"));
            assert_eq!(r.commit.to_hex(), rev_parse(&dir, rev), "{rev}");
            assert_eq!(r.ref_name.as_deref(), ref_name, "{rev}");
        }
        let full = rev_parse(&dir, "feature");
        for n in [40, 12, 7, 4] {
            let r = repo.resolve(Some(&full[..n])).unwrap();
            assert_eq!(r.commit.to_hex(), full);
            assert_eq!(r.ref_name, None);
        }
        // An annotated tag's own id resolves to the commit.
        let tag_id = git(&dir, &["rev-parse", "v1.0-outer"]);
        assert_eq!(
            repo.resolve(Some(&tag_id)).unwrap().commit.to_hex(),
            rev_parse(&dir, "v1.0")
        );

        // Errors.
        let err = repo.resolve(Some("mian")).unwrap_err();
        assert!(matches!(err, Error::RevNotFound { .. }));
        let msg = err.to_string();
        assert!(msg.contains("\"mian\"") && msg.contains("main"), "{msg}");
        let msg = repo.resolve(Some("featur")).unwrap_err().to_string();
        assert!(msg.contains("feature"), "{msg}");
        let msg = repo.resolve(Some("login")).unwrap_err().to_string();
        assert!(msg.contains("fix/login-bug"), "{msg}");
        assert!(repo.resolve(Some("no-such-thing-at-all")).is_err());
        assert!(repo.resolve(Some("../../etc/passwd")).is_err());
        assert!(repo.resolve(Some("")).is_err());
        assert!(repo.resolve(Some("HEAD~99")).is_err());
        assert!(repo.resolve(Some(&"0".repeat(40))).is_err());
        let tree_err = repo.resolve(Some("treetag")).unwrap_err().to_string();
        assert!(tree_err.contains("tree"), "{tree_err}");
        let tree = git(&dir, &["rev-parse", "HEAD^{tree}"]);
        assert!(
            repo.resolve(Some(&tree))
                .unwrap_err()
                .to_string()
                .contains("not a commit")
        );
    }

    // Detached HEAD.
    git(&dir, &["checkout", "-q", "--detach", "feature"]);
    let repo = Repository::open(&dir).unwrap();
    let head = repo.resolve(None).unwrap();
    assert_eq!(head.commit.to_hex(), rev_parse(&dir, "feature"));
    assert_eq!(head.ref_name, None);
}

#[test]
fn ambiguous_short_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("r");
    small_repo(&dir);
    // Find two blobs whose ids share their first 4 hex digits.
    let mut seen = std::collections::HashMap::new();
    let (a, b) = (0..)
        .find_map(|i| {
            let content = format!("blob number {i}\n");
            let id = ObjectId::hash_object(ObjectKind::Blob, content.as_bytes());
            let prefix = id.to_hex()[..4].to_owned();
            seen.insert(prefix, content.clone())
                .map(|other| (other, content))
        })
        .unwrap();
    let ida = git_stdin(&dir, &["hash-object", "-w", "--stdin"], a.as_bytes());
    let idb = git_stdin(&dir, &["hash-object", "-w", "--stdin"], b.as_bytes());
    assert_eq!(ida[..4], idb[..4]);
    let repo = Repository::open(&dir).unwrap();
    let err = repo.resolve(Some(&ida[..4])).unwrap_err();
    assert!(matches!(err, Error::Ambiguous { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&ida) && msg.contains(&idb), "{msg}");
    // git agrees that it is ambiguous.
    assert!(
        !git_cmd(&dir)
            .args(["rev-parse", "--verify", "-q", &ida[..4]])
            .status()
            .unwrap()
            .success()
    );
    // A longer prefix names one blob, which is not a commit.
    let err = repo.resolve(Some(&ida[..12])).unwrap_err().to_string();
    assert!(err.contains("blob"), "{err}");
}

#[test]
fn repository_discovery_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let err = Repository::open(tmp.path()).unwrap_err();
    assert!(matches!(err, Error::NotARepository(_)));
    assert_eq!(
        err.to_string(),
        format!("not a git repository: {}", tmp.path().display())
    );
    assert!(Repository::open(tmp.path().join("missing")).is_err());

    // An empty repository: HEAD points to an unborn branch.
    let empty = tmp.path().join("empty");
    init(&empty);
    let repo = Repository::open(&empty).unwrap();
    let msg = repo.resolve(None).unwrap_err().to_string();
    assert!(
        msg.contains("refs/heads/main") && msg.contains("no commits"),
        "{msg}"
    );

    // A `.git` file pointing nowhere.
    let bad = tmp.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    std::fs::write(bad.join(".git"), "gitdir: ../nowhere\n").unwrap();
    assert!(matches!(
        Repository::open(&bad).unwrap_err(),
        Error::NotARepository(_)
    ));
    std::fs::write(bad.join(".git"), "garbage\n").unwrap();
    assert!(Repository::open(&bad).is_err());
}
