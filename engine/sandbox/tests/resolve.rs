//! Command resolution: lookup, symlinks, hashing, refusals, change detection.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;

use common::{SYSTEM_PATH, sha256sum, tempdir, write_exe};
use flow_sandbox::{ResolveError, resolve};

fn path_of(dirs: &[&Path]) -> std::ffi::OsString {
    std::env::join_paths(dirs).unwrap()
}

#[test]
fn bare_name_is_found_in_path() {
    let sh = resolve("sh", Some(OsStr::new(SYSTEM_PATH))).unwrap();
    assert_eq!(sh.name, "sh");
    assert_eq!(sh.argv0(), "sh");
    assert!(sh.path.ends_with("sh"));
    assert!(sh.real_path.is_absolute());
    assert_eq!(sh.real_path, fs::canonicalize(&sh.path).unwrap());
    assert_eq!(sh.size, fs::metadata(&sh.real_path).unwrap().len());
    assert_eq!(sh.identity.size, sh.size);
    assert_eq!(sh.sha256, sha256sum(&sh.real_path));
    sh.check_unchanged().unwrap();
}

#[test]
fn path_order_wins_and_unusable_candidates_are_skipped() {
    let (a, b, c) = (tempdir(), tempdir(), tempdir());
    fs::write(a.path.join("tool"), "not executable").unwrap();
    fs::create_dir(b.path.join("tool")).unwrap();
    write_exe(&c.path.join("tool"), "#!/bin/sh\necho c\n");
    let d = tempdir();
    write_exe(&d.path.join("tool"), "#!/bin/sh\necho d\n");
    let path = path_of(&[&a.path, &b.path, &c.path, &d.path]);
    let tool = resolve("tool", Some(&path)).unwrap();
    assert_eq!(tool.path, c.path.join("tool"));
}

#[test]
fn empty_and_relative_path_entries_are_ignored() {
    let dir = tempdir();
    let path = format!(":relative/bin:.:{}", dir.path.display());
    let err = resolve("nope", Some(OsStr::new(&path))).unwrap_err();
    let ResolveError::NotFound { ref searched, .. } = err else {
        panic!("{err:?}");
    };
    assert_eq!(searched, std::slice::from_ref(&dir.path));
    let msg = err.to_string();
    assert_eq!(
        msg,
        format!(
            "command `nope` not found in PATH (searched {})",
            dir.path.display()
        )
    );
}

#[test]
fn not_found_names_the_directories_and_skipped_files() {
    let (a, b) = (tempdir(), tempdir());
    fs::write(b.path.join("tool"), "").unwrap();
    let path = path_of(&[&a.path, &b.path]);
    let msg = resolve("tool", Some(&path)).unwrap_err().to_string();
    assert!(msg.starts_with("command `tool` not found in PATH"), "{msg}");
    assert!(msg.contains(&a.path.display().to_string()), "{msg}");
    assert!(msg.contains(&b.path.display().to_string()), "{msg}");
    assert!(
        msg.contains(&format!(
            "{} (not executable, mode 644)",
            b.path.join("tool").display()
        )),
        "{msg}"
    );

    let msg = resolve("tool", None).unwrap_err().to_string();
    assert!(msg.contains("PATH is unset"), "{msg}");
}

#[test]
fn absolute_path() {
    let sh = resolve("/bin/sh", None).unwrap();
    assert_eq!(sh.path, Path::new("/bin/sh"));
    assert_eq!(sh.argv0(), "sh");
    assert_eq!(sh.real_path, fs::canonicalize("/bin/sh").unwrap());
    assert_eq!(sh.sha256, sha256sum(Path::new("/bin/sh")));
}

#[test]
fn symlink_records_path_and_real_path() {
    let dir = tempdir();
    let target = dir.path.join("real-tool");
    write_exe(&target, "#!/bin/sh\necho hi\n");
    // link -> hop -> real-tool, like /usr/bin/cc -> /etc/alternatives/cc -> gcc.
    symlink(&target, dir.path.join("hop")).unwrap();
    symlink("hop", dir.path.join("tool")).unwrap();

    let tool = resolve("tool", Some(dir.path.as_os_str())).unwrap();
    assert_eq!(tool.path, dir.path.join("tool"));
    assert_eq!(tool.real_path, target);
    assert!(tool.is_symlinked());
    assert_eq!(tool.argv0(), "tool");
    assert_eq!(tool.sha256, sha256sum(&target));

    let abs = dir.path.join("tool");
    let tool = resolve(abs.to_str().unwrap(), None).unwrap();
    assert_eq!(tool.path, abs);
    assert_eq!(tool.real_path, target);
}

fn refusal(grant: &str) -> String {
    let err = resolve(grant, Some(OsStr::new(SYSTEM_PATH))).unwrap_err();
    err.to_string()
}

#[test]
fn refusals() {
    assert_eq!(refusal(""), "empty command name");
    assert_eq!(refusal("a\0b"), "command `a\\0b` contains a NUL byte");
    assert_eq!(refusal(".."), "`..` is not a command name");
    for rel in ["./x", "bin/sh", "x/"] {
        assert_eq!(
            refusal(rel),
            format!(
                "command `{rel}` is a relative path; use a bare name looked up in PATH \
                 (`cargo`) or an absolute path (`/usr/bin/cargo`)"
            )
        );
    }
    for bad in [
        "/usr/bin/../bin/sh",
        "/usr/./bin/sh",
        "/usr//bin/sh",
        "/usr/bin/sh/",
        "//bin/sh",
    ] {
        assert_eq!(
            refusal(bad),
            format!(
                "command path `{bad}` is not normalised: write it without `.`, `..`, `//` or \
                 a trailing `/`"
            )
        );
    }
    assert_eq!(
        refusal("/nonexistent/tool"),
        "command `/nonexistent/tool` does not exist"
    );
    assert_eq!(refusal("/usr/bin"), "command `/usr/bin` is a directory");
    assert_eq!(refusal("/"), "command `/` is a directory");
    assert_eq!(
        refusal("/dev/null"),
        "command `/dev/null` is not a regular file (it is a character device)"
    );
}

#[test]
fn refusals_of_files() {
    let dir = tempdir();
    let plain = dir.path.join("plain");
    fs::write(&plain, "data").unwrap();
    fs::set_permissions(&plain, fs::Permissions::from_mode(0o640)).unwrap();
    assert_eq!(
        refusal(plain.to_str().unwrap()),
        format!("command `{}` is not executable (mode 640)", plain.display())
    );

    let dangling = dir.path.join("dangling");
    symlink(dir.path.join("missing"), &dangling).unwrap();
    assert_eq!(
        refusal(dangling.to_str().unwrap()),
        format!("command `{}` is a dangling symlink", dangling.display())
    );

    let fifo = dir.path.join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    fs::set_permissions(&fifo, fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(
        refusal(fifo.to_str().unwrap()),
        format!(
            "command `{}` is not a regular file (it is a fifo)",
            fifo.display()
        )
    );

    // A symlink to a directory is a directory.
    let to_dir = dir.path.join("to-dir");
    symlink("/usr", &to_dir).unwrap();
    assert_eq!(
        refusal(to_dir.to_str().unwrap()),
        format!("command `{}` is a directory", to_dir.display())
    );
}

#[test]
fn check_unchanged_detects_modification_and_replacement() {
    let dir = tempdir();
    let file = dir.path.join("tool");
    write_exe(&file, "#!/bin/sh\necho one\n");
    let tool = resolve("tool", Some(dir.path.as_os_str())).unwrap();
    tool.check_unchanged().unwrap();

    // Modified in place.
    fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"echo two\n"))
        .unwrap();
    let msg = tool.check_unchanged().unwrap_err().to_string();
    assert!(
        msg.starts_with("`tool` changed on disk since the pipeline was checked"),
        "{msg}"
    );
    assert!(msg.contains("size"), "{msg}");

    // Replaced by another file of the same size.
    let tool = resolve("tool", Some(dir.path.as_os_str())).unwrap();
    let new = dir.path.join("new");
    write_exe(
        &new,
        &fs::read_to_string(&file).unwrap().replace("one", "eno"),
    );
    fs::rename(&new, &file).unwrap();
    let msg = tool.check_unchanged().unwrap_err().to_string();
    assert!(msg.contains("replaced"), "{msg}");

    // Gone.
    fs::remove_file(&file).unwrap();
    let msg = tool.check_unchanged().unwrap_err().to_string();
    assert!(msg.starts_with("`tool` changed on disk"), "{msg}");
}

#[test]
fn check_unchanged_detects_a_rewrite_with_restored_mtime() {
    let dir = tempdir();
    let file = dir.path.join("tool");
    write_exe(&file, "#!/bin/sh\necho one\n");
    let reference = dir.path.join("reference");
    fs::write(&reference, "").unwrap();
    let touch_r = |from: &Path, to: &Path| {
        let status = Command::new("touch")
            .arg("-r")
            .arg(from)
            .arg(to)
            .status()
            .unwrap();
        assert!(status.success());
    };
    touch_r(&file, &reference);
    let tool = resolve("tool", Some(dir.path.as_os_str())).unwrap();
    // Out of the timestamp tick the file was written in (see FileIdentity).
    std::thread::sleep(std::time::Duration::from_millis(30));
    fs::write(&file, "#!/bin/sh\necho two\n").unwrap();
    touch_r(&reference, &file);
    let now = fs::metadata(&file).unwrap();
    assert_eq!(
        (now.len(), now.modified().unwrap()),
        (
            tool.size,
            std::time::UNIX_EPOCH
                + std::time::Duration::new(
                    tool.identity.mtime_sec as u64,
                    tool.identity.mtime_nsec as u32
                )
        )
    );
    let msg = tool.check_unchanged().unwrap_err().to_string();
    assert_eq!(
        msg,
        format!(
            "`tool` changed on disk since the pipeline was checked ({}: status change time \
             (ctime) changed: its contents or metadata were modified (same size and \
             modification time, which may have been restored))",
            file.display()
        )
    );
}

#[test]
fn rehash_compares_the_digest() {
    let dir = tempdir();
    write_exe(&dir.path.join("tool"), "#!/bin/sh\necho one\n");
    let tool = resolve("tool", Some(dir.path.as_os_str())).unwrap();
    tool.rehash().unwrap();

    // A digest that does not match the file (as if the contents changed unseen).
    let mut other = tool.clone();
    other.sha256 = "0".repeat(64);
    let err = other.rehash().unwrap_err();
    assert!(matches!(err, ResolveError::Changed { .. }), "{err:?}");
    assert!(
        err.to_string().ends_with(&format!(
            "its contents differ: sha256 {}, resolved as {})",
            tool.sha256,
            "0".repeat(64)
        )),
        "{err}"
    );

    fs::remove_file(dir.path.join("tool")).unwrap();
    let err = tool.rehash().unwrap_err();
    assert!(matches!(err, ResolveError::Changed { .. }), "{err:?}");
}
