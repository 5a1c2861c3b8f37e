//! Corrupt and malicious input: always an error, never a panic.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use flow_git::{Error, FsSink, ObjectId, ObjectKind, Repository};

/// A small packed repository; returns (work tree, pack path, idx path).
fn packed_repo(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    init(dir);
    let text: String = (0..500).map(|i| format!("line {i}\n")).collect();
    for round in 0..3 {
        write(dir, "t.txt", format!("{text}{round}\n"));
        write(dir, &format!("d/{round}.txt"), "x\n");
        commit_all(dir, &format!("r{round}"));
    }
    git(dir, &["gc", "-q"]);
    let pack_dir = dir.join(".git/objects/pack");
    let pack = std::fs::read_dir(&pack_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "pack"))
        .unwrap();
    let idx = pack.with_extension("idx");
    (dir.to_owned(), pack, idx)
}

/// Opens the repository and reads everything; returns the first error.
fn read_everything(dir: &Path, ids: &[ObjectId]) -> Result<(), Error> {
    let repo = Repository::open(dir)?;
    for id in ids {
        repo.read_object(id)?;
    }
    let out = tempfile::tempdir().unwrap();
    let head = repo.resolve(None)?;
    repo.checkout(head.tree, &mut FsSink::new(out.path()))?;
    Ok(())
}

fn all_ids(dir: &Path) -> Vec<ObjectId> {
    git(
        dir,
        &[
            "cat-file",
            "--batch-all-objects",
            "--batch-check=%(objectname)",
        ],
    )
    .lines()
    .map(|l| ObjectId::from_hex(l).unwrap())
    .collect()
}

#[test]
fn damaged_packs_and_indexes() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, pack, idx) = packed_repo(&tmp.path().join("r"));
    let ids = all_ids(&dir);
    read_everything(&dir, &ids).unwrap();
    let pack_bytes = std::fs::read(&pack).unwrap();
    let idx_bytes = std::fs::read(&idx).unwrap();

    let expect_err = |what: &str, needle: &str| {
        let err = read_everything(&dir, &ids).expect_err(what).to_string();
        assert!(err.contains(needle), "{what}: {err}");
    };

    std::fs::write(&pack, &pack_bytes[..pack_bytes.len() / 2]).unwrap();
    expect_err("truncated pack", "checksum");
    std::fs::write(&pack, &pack_bytes[..10]).unwrap();
    expect_err("tiny pack", "too short");
    let mut p = pack_bytes.clone();
    *p.last_mut().unwrap() ^= 1;
    std::fs::write(&pack, &p).unwrap();
    expect_err("wrong pack checksum", "checksum does not match");
    std::fs::write(&pack, &pack_bytes).unwrap();

    let mut i = idx_bytes.clone();
    let at = 2000.min(i.len() - 30);
    i[at] ^= 0x40;
    std::fs::write(&idx, &i).unwrap();
    expect_err("idx byte flipped", "checksum");
    std::fs::write(&idx, &idx_bytes[..idx_bytes.len() - 7]).unwrap();
    expect_err("truncated idx", "size");
    let mut i = idx_bytes.clone();
    i[7] = 1;
    std::fs::write(&idx, &i).unwrap();
    expect_err("idx version", "version");
    std::fs::write(&idx, &idx_bytes).unwrap();

    // zlib garbage inside an entry (the trailing checksum is not verified on read, like git).
    let listing = git(&dir, &["verify-pack", "-v", idx.to_str().unwrap()]);
    let offsets: Vec<usize> = listing
        .lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols.len() >= 5 && cols[0].len() == 40).then(|| cols[4].parse().unwrap())
        })
        .collect();
    let mut p = pack_bytes.clone();
    for &off in &offsets {
        for b in &mut p[off + 3..(off + 9).min(pack_bytes.len() - 20)] {
            *b = 0xa5;
        }
    }
    std::fs::write(&pack, &p).unwrap();
    assert!(read_everything(&dir, &ids).is_err());

    // Flip bytes all over the pack data: errors or (for bytes zlib/adler32 do not cover) success,
    // but never a panic.
    let step = (pack_bytes.len() / 300).max(1);
    for pos in (12..pack_bytes.len() - 20).step_by(step) {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut p = pack_bytes.clone();
            p[pos] ^= mask;
            std::fs::write(&pack, &p).unwrap();
            let _ = read_everything(&dir, &ids);
        }
    }
    std::fs::write(&pack, &pack_bytes).unwrap();
    read_everything(&dir, &ids).unwrap();
}

#[test]
fn bad_deltas_and_sizes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("r");
    init(&dir);
    let base = b"0123456789abcdef\n";
    let base_hex = git_stdin(&dir, &["hash-object", "-w", "--stdin"], base);
    let base_id = ObjectId::from_hex(&base_hex).unwrap();
    let pack_dir = dir.join(".git/objects/pack");
    let fake = |n: u8| ObjectId::from_bytes([n; 20]);

    // REF_DELTA copying beyond its base.
    let delta = [base.len() as u8, 10, 0x91, 12, 10];
    // OFS_DELTA whose base offset points before the pack start.
    let mut entries = vec![
        (
            fake(1),
            pack_entry(7, delta.len() as u64, base_id.as_bytes(), &delta),
        ),
        (fake(2), pack_entry(6, 3, &[0x7f], b"abc")),
        // A blob declaring 1 TiB.
        (fake(3), pack_entry(3, 1 << 40, &[], b"small")),
        // A blob declaring more than it holds, and less.
        (fake(4), pack_entry(3, 100, &[], b"small")),
        (fake(5), pack_entry(3, 2, &[], b"small")),
        // Invalid type 5.
        (fake(6), pack_entry(5, 5, &[], b"small")),
        // REF_DELTA whose base does not exist.
        (
            fake(7),
            pack_entry(7, delta.len() as u64, &[0x77; 20], &delta),
        ),
        // Delta whose declared base size is wrong.
        (
            fake(8),
            pack_entry(7, 5, base_id.as_bytes(), &[3, 1, 0x90, 1, 0]),
        ),
    ];
    // A REF_DELTA cycle: 9 -> 10 -> 9.
    let d = [5u8, 5, 0x90, 5];
    entries.push((
        fake(9),
        pack_entry(7, d.len() as u64, fake(10).as_bytes(), &d),
    ));
    entries.push((
        fake(10),
        pack_entry(7, d.len() as u64, fake(9).as_bytes(), &d),
    ));
    write_pack(&pack_dir, &entries);

    // A loose object declaring a huge size.
    let huge_id = fake(0x42);
    let loose = loose_bytes(b"blob 99999999999999\0tiny");
    let path = dir.join(".git/objects/42").join(&huge_id.to_hex()[2..]);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, loose).unwrap();
    // And one that is not zlib at all.
    let garbage_id = fake(0x43);
    let path = dir.join(".git/objects/43").join(&garbage_id.to_hex()[2..]);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"this is not zlib").unwrap();

    let repo = Repository::open(&dir).unwrap();
    assert_eq!(repo.read_object(&base_id).unwrap().data, base);
    for (id, needle) in [
        (fake(1), "outside"),
        (fake(2), "outside the pack"),
        (fake(3), "exceeds the limit"),
        (fake(4), "declared size is 100"),
        (fake(5), "more than its declared size"),
        (fake(6), "invalid object type"),
        (fake(7), "not found"),
        (fake(8), "base"),
        (fake(9), "too"),
        (huge_id, "exceeds the limit"),
        (garbage_id, "zlib"),
    ] {
        let err = repo.read_object(&id).expect_err(needle).to_string();
        assert!(err.contains(needle), "{id}: {err}");
    }
}

fn loose_bytes(raw: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(raw).unwrap();
    z.finish().unwrap()
}

#[test]
fn unsafe_tree_entries_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("r");
    init(&dir);
    let blob = git_stdin(&dir, &["hash-object", "-w", "--stdin"], b"evil\n");
    let blob = ObjectId::from_hex(&blob).unwrap();
    for name in [&b".."[..], b".", b".git", b".GIT", b"Git~1", b"a/b", b""] {
        let mut tree = b"100644 ok.txt\0".to_vec();
        tree.extend_from_slice(blob.as_bytes());
        let mut sub = b"100644 ".to_vec();
        sub.extend_from_slice(name);
        sub.push(0);
        sub.extend_from_slice(blob.as_bytes());
        // Put the bad name in a subdirectory.
        let sub_id = git_stdin(
            &dir,
            &["hash-object", "-t", "tree", "--literally", "-w", "--stdin"],
            &sub,
        );
        tree.extend_from_slice(b"40000 sub\0");
        tree.extend_from_slice(ObjectId::from_hex(&sub_id).unwrap().as_bytes());
        let tree_id = git_stdin(
            &dir,
            &["hash-object", "-t", "tree", "--literally", "-w", "--stdin"],
            &tree,
        );
        let repo = Repository::open(&dir).unwrap();
        let out = tmp.path().join(format!(
            "out-{}",
            String::from_utf8_lossy(name).replace('/', "_")
        ));
        let err = repo
            .checkout(
                ObjectId::from_hex(&tree_id).unwrap(),
                &mut FsSink::new(&out),
            )
            .unwrap_err();
        assert!(matches!(err, Error::UnsafePath { .. }), "{name:?}: {err}");
        assert!(err.to_string().contains("sub/"), "{err}");
        // Nothing was written: names are validated before writing.
        assert!(!out.exists());
    }
    // Wrong types: a tree entry pointing to a commit-less id, a blob given as the tree.
    let repo = Repository::open(&dir).unwrap();
    let out = tmp.path().join("o");
    let err = repo.checkout(blob, &mut FsSink::new(&out)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::WrongType {
                actual: ObjectKind::Blob,
                ..
            }
        ),
        "{err}"
    );
    let missing = ObjectId::from_bytes([0x11; 20]);
    assert!(matches!(
        repo.checkout(missing, &mut FsSink::new(&out)),
        Err(Error::ObjectNotFound(_))
    ));
}
