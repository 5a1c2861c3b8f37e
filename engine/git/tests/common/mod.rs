//! Helpers for the integration tests: running the git CLI, building repositories, comparing a
//! checkout with git's.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A `git` command with a hermetic environment.
pub fn git_cmd(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Flow Test")
        .env("GIT_AUTHOR_EMAIL", "flow@example.com")
        .env("GIT_COMMITTER_NAME", "Flow Test")
        .env("GIT_COMMITTER_EMAIL", "flow@example.com")
        .env("GIT_AUTHOR_DATE", "2024-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2024-01-01T00:00:00Z")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .args(["-c", "init.defaultBranch=main", "-c", "core.autocrlf=false"]);
    cmd
}

/// Runs git in `dir`, panicking with its stderr on failure; returns trimmed stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    run(git_cmd(dir).args(args))
}

/// Runs a command, panicking with its stderr on failure; returns trimmed stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn git");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Runs git with stdin.
pub fn git_stdin(dir: &Path, args: &[&str], input: &[u8]) -> String {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = git_cmd(dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `git init` a work tree at `dir`.
pub fn init(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    git(dir, &["init", "-q"]);
}

/// Stages everything and commits; returns the commit id.
pub fn commit_all(dir: &Path, msg: &str) -> String {
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "--allow-empty", "-m", msg]);
    git(dir, &["rev-parse", "HEAD"])
}

pub fn write(dir: &Path, rel: &str, data: impl AsRef<[u8]>) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

/// The git tree id of the directory `out`, computed by the git CLI (ignore rules off).
pub fn tree_of_dir(out: &Path) -> String {
    let scratch = tempfile::tempdir().unwrap();
    let gd = scratch.path().join("scratch.git");
    git(
        scratch.path(),
        &["init", "-q", "--bare", gd.to_str().unwrap()],
    );
    let with_env = |args: &[&str]| {
        let mut c = git_cmd(scratch.path());
        c.env("GIT_DIR", &gd).env("GIT_WORK_TREE", out).args(args);
        run(&mut c)
    };
    with_env(&["add", "-A", "-f", "."]);
    with_env(&["write-tree"])
}

/// `git ls-tree -r` of a tree-ish in `repo` (git dir or work tree), without gitlinks.
pub fn ls_tree_no_gitlinks(repo: &Path, treeish: &str) -> Vec<String> {
    git(repo, &["ls-tree", "-r", treeish])
        .lines()
        .filter(|l| !l.starts_with("160000"))
        .map(str::to_owned)
        .collect()
}

/// Checks out `rev` of `git_dir` with the git CLI into the new directory `out` (using a
/// throwaway index, so the repository is not touched).
pub fn git_checkout(git_dir: &Path, rev: &str, out: &Path) {
    std::fs::create_dir_all(out).unwrap();
    let index = out.with_extension("index");
    let mut c = git_cmd(out);
    c.env("GIT_INDEX_FILE", &index).args([
        "--git-dir",
        git_dir.to_str().unwrap(),
        "--work-tree",
        out.to_str().unwrap(),
        "checkout",
        "-q",
        "-f",
        rev,
        "--",
        ".",
    ]);
    run(&mut c);
    let _ = std::fs::remove_file(index);
}

/// What a path in a checkout is.
#[derive(Debug, PartialEq, Eq)]
pub enum Node {
    Dir,
    File { data: Vec<u8>, exec: bool },
    Symlink(PathBuf),
}

/// Everything under `root`, by relative path.
pub fn walk(root: &Path) -> BTreeMap<String, Node> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_str().unwrap().to_owned();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            let node = if meta.file_type().is_symlink() {
                Node::Symlink(std::fs::read_link(&p).unwrap())
            } else if meta.is_dir() {
                stack.push(p.clone());
                Node::Dir
            } else {
                Node::File {
                    data: std::fs::read(&p).unwrap(),
                    exec: meta.permissions().mode() & 0o100 != 0,
                }
            };
            out.insert(rel, node);
        }
    }
    out
}

/// Checks out `rev` with flow-git and with the git CLI, and compares: tree hash of the written
/// directory (gitlinks excluded), and every path's type, content, exec bit and symlink target.
/// Returns the report.
pub fn check_against_git(repo_path: &Path, git_dir: &Path, rev: &str) -> flow_git::CheckoutReport {
    let repo = flow_git::Repository::open(repo_path).unwrap();
    let resolved = repo.resolve(Some(rev)).unwrap();
    let expected_commit = git(git_dir, &["rev-parse", &format!("{rev}^{{commit}}")]);
    assert_eq!(resolved.commit.to_hex(), expected_commit);
    let expected_tree = git(git_dir, &["rev-parse", &format!("{rev}^{{tree}}")]);
    assert_eq!(resolved.tree.to_hex(), expected_tree);

    let tmp = tempfile::tempdir().unwrap();
    let ours = tmp.path().join("ours");
    let report = repo
        .checkout(resolved.tree, &mut flow_git::FsSink::new(&ours))
        .unwrap();
    let written = tree_of_dir(&ours);
    if report.submodules.is_empty() {
        assert_eq!(written, expected_tree, "tree hash of the checkout");
    } else {
        let scratch = tempfile::tempdir().unwrap();
        let gd = scratch.path().join("scratch.git");
        // The written tree lives in a scratch repo; compare listings.
        git(
            scratch.path(),
            &["init", "-q", "--bare", gd.to_str().unwrap()],
        );
        let mut c = git_cmd(scratch.path());
        c.env("GIT_DIR", &gd)
            .env("GIT_WORK_TREE", &ours)
            .args(["add", "-A", "-f", "."]);
        run(&mut c);
        let mut c = git_cmd(scratch.path());
        c.env("GIT_DIR", &gd).args(["write-tree"]);
        let t = run(&mut c);
        let mut c = git_cmd(scratch.path());
        c.env("GIT_DIR", &gd).args(["ls-tree", "-r", &t]);
        let ours_list: Vec<String> = run(&mut c).lines().map(str::to_owned).collect();
        assert_eq!(ours_list, ls_tree_no_gitlinks(git_dir, &expected_tree));
    }

    let theirs = tmp.path().join("theirs");
    git_checkout(git_dir, &expected_commit, &theirs);
    let (a, mut b) = (walk(&ours), walk(&theirs));
    for sub in &report.submodules {
        assert_eq!(
            a.get(&sub.path),
            Some(&Node::Dir),
            "submodule dir {}",
            sub.path
        );
        b.entry(sub.path.clone()).or_insert(Node::Dir);
    }
    assert_eq!(a.len(), b.len(), "number of paths");
    for (path, node) in &a {
        assert_eq!(Some(node), b.get(path), "{path}");
    }
    report
}

/// Copies regular files and directories from `src` to `dst` (symlinks and others skipped);
/// returns the number of files copied.
pub fn copy_tree(src: &Path, dst: &Path) -> usize {
    let mut n = 0;
    std::fs::create_dir_all(dst).unwrap();
    let mut entries: Vec<_> = std::fs::read_dir(src).unwrap().flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        if name == ".git" {
            continue;
        }
        let t = e.file_type().unwrap();
        if t.is_dir() {
            n += copy_tree(&e.path(), &dst.join(&name));
        } else if t.is_file() {
            std::fs::copy(e.path(), dst.join(&name)).unwrap();
            n += 1;
        }
    }
    n
}

/// Crate source directories in the cargo registry, sorted.
pub fn registry_crates() -> Vec<PathBuf> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
        .unwrap_or_default();
    let mut out = Vec::new();
    let Ok(indexes) = std::fs::read_dir(home.join("registry/src")) else {
        return out;
    };
    for idx in indexes.flatten() {
        if let Ok(crates) = std::fs::read_dir(idx.path()) {
            out.extend(crates.flatten().map(|c| c.path()).filter(|p| p.is_dir()));
        }
    }
    out.sort();
    out
}

/// The bytes of a pack entry: type/size header, `extra` (delta base id or offset bytes), then
/// `payload` zlib-compressed.
pub fn pack_entry(kind: u8, size: u64, extra: &[u8], payload: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut out = Vec::new();
    let mut c = (kind << 4) | (size & 15) as u8;
    let mut rest = size >> 4;
    while rest != 0 {
        out.push(c | 0x80);
        c = (rest & 0x7f) as u8;
        rest >>= 7;
    }
    out.push(c);
    out.extend_from_slice(extra);
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(payload).unwrap();
    out.extend_from_slice(&z.finish().unwrap());
    out
}

/// Writes `pack-<sum>.pack` and its v2 `.idx` into `dir` with the given (id, entry bytes);
/// returns the pack path.
pub fn write_pack(dir: &Path, entries: &[(flow_git::ObjectId, Vec<u8>)]) -> PathBuf {
    use sha1::{Digest, Sha1};
    let mut pack = b"PACK\0\0\0\x02".to_vec();
    pack.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    let mut index = Vec::new();
    for (id, entry) in entries {
        index.push((*id, pack.len() as u32, crc32(entry)));
        pack.extend_from_slice(entry);
    }
    let sum: [u8; 20] = Sha1::digest(&pack).into();
    pack.extend_from_slice(&sum);
    index.sort_by_key(|e| e.0);

    let mut idx = vec![0xff, b't', b'O', b'c', 0, 0, 0, 2];
    for b in 0..=255u8 {
        let n = index.iter().filter(|e| e.0.as_bytes()[0] <= b).count() as u32;
        idx.extend_from_slice(&n.to_be_bytes());
    }
    for e in &index {
        idx.extend_from_slice(e.0.as_bytes());
    }
    for e in &index {
        idx.extend_from_slice(&e.2.to_be_bytes());
    }
    for e in &index {
        idx.extend_from_slice(&e.1.to_be_bytes());
    }
    idx.extend_from_slice(&sum);
    let isum: [u8; 20] = Sha1::digest(&idx).into();
    idx.extend_from_slice(&isum);

    let name: String = sum.iter().map(|b| format!("{b:02x}")).collect();
    let pack_path = dir.join(format!("pack-{name}.pack"));
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(&pack_path, pack).unwrap();
    std::fs::write(dir.join(format!("pack-{name}.idx")), idx).unwrap();
    pack_path
}

pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// All `.rs` files under `dir` (outside `.git`), sorted.
pub fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        if e.file_name() == ".git" {
            continue;
        }
        if e.file_type().unwrap().is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Builds a repository with history from crate sources in the cargo registry: about
/// `max_files` files over four commits (crates added, files edited, crates deleted), repacked
/// with long delta chains. Returns `false` if the registry has too few crates.
pub fn generate_registry_repo(dir: &Path, max_files: usize) -> bool {
    let crates = registry_crates();
    if crates.len() < 10 {
        return false;
    }
    init(dir);
    let mut files = 0;
    let mut next = 0;
    let mut added = Vec::new();
    let mut add_until = |limit: usize, files: &mut usize, next: &mut usize| {
        while *files < limit && *next < crates.len() {
            let src = &crates[*next];
            let name = src.file_name().unwrap().to_owned();
            *files += copy_tree(src, &dir.join("crates").join(&name));
            added.push(name);
            *next += 1;
        }
    };
    add_until(max_files * 6 / 10, &mut files, &mut next);
    commit_all(dir, "add crates");
    let edit = |round: usize| {
        let mut rs = Vec::new();
        rust_files(dir, &mut rs);
        for (i, p) in rs.iter().enumerate() {
            if i % 5 == round % 5 {
                let mut data = std::fs::read(p).unwrap();
                data.splice(0..0, format!("// edited in round {round}\n").into_bytes());
                let mid = data.len() / 2;
                data.splice(mid..mid, format!("\n// middle edit {round}\n").into_bytes());
                std::fs::write(p, data).unwrap();
            }
        }
    };
    edit(1);
    commit_all(dir, "edit");
    add_until(max_files, &mut files, &mut next);
    for name in added.iter().take(2) {
        std::fs::remove_dir_all(dir.join("crates").join(name)).unwrap();
    }
    commit_all(dir, "add more, delete two");
    edit(2);
    commit_all(dir, "edit again");
    git(
        dir,
        &[
            "repack",
            "-q",
            "-a",
            "-d",
            "-f",
            "--depth=50",
            "--window=20",
        ],
    );
    true
}
