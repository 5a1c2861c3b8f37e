//! Which toolchain binary a rustup proxy runs: with this machine's rustup, and with a fake
//! one.
//!
//! When rustup is not installed (no `cargo` proxy in `$CARGO_HOME/bin` or `~/.cargo/bin`),
//! the tests that need it print `NOT RUN: ...` and pass, unless the `CI` environment
//! variable is set: then they fail.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{sha256sum, tempdir, write_exe};
use flow_sandbox::{ResolveError, ResolvedCommand, resolve, rustup_toolchain};

fn home() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").expect("HOME"))
}

fn cargo_home() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".cargo"))
}

fn rustup_home() -> PathBuf {
    std::env::var_os("RUSTUP_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".rustup"))
}

/// rustup's `cargo` proxy, if rustup is installed. Fails when it is not and `CI` is set.
fn cargo_proxy() -> Option<ResolvedCommand> {
    let bin = cargo_home().join("bin");
    let found = resolve("cargo", Some(bin.as_os_str()))
        .ok()
        .filter(|_| bin.join("rustup").is_file());
    if found.is_none() {
        let why = format!("no rustup proxy {}", bin.join("cargo").display());
        if std::env::var_os("CI").is_some() {
            panic!("rustup is required when CI is set: {why}");
        }
        eprintln!("NOT RUN: {why}");
    }
    found
}

/// The environment a command would get: what rustup needs to find its toolchains, and no
/// `RUSTUP_TOOLCHAIN` (cargo sets it for these tests).
fn rustup_env() -> Vec<(String, String)> {
    let mut env = vec![
        ("HOME".to_owned(), home().display().to_string()),
        ("PATH".to_owned(), "/usr/bin:/bin".to_owned()),
        ("RUSTUP_AUTO_INSTALL".to_owned(), "0".to_owned()),
    ];
    for var in ["RUSTUP_HOME", "CARGO_HOME"] {
        if let Ok(value) = std::env::var(var) {
            env.push((var.to_owned(), value));
        }
    }
    env
}

fn installed_toolchains() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(rustup_home().join("toolchains"))
        .map(|dir| {
            dir.flatten()
                .filter(|e| e.path().join("bin").join("cargo").is_file())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn cargo_proxy_resolves_to_the_toolchain_binary() {
    let Some(cargo) = cargo_proxy() else { return };
    let dir = tempdir();
    let binary = rustup_toolchain(&cargo, &dir.path, &rustup_env(), &[])
        .expect("cargo is a rustup proxy")
        .unwrap();
    let toolchains = rustup_home().join("toolchains");
    assert!(binary.path.starts_with(&toolchains), "{binary:?}");
    assert!(binary.path.ends_with("bin/cargo"), "{binary:?}");
    assert_eq!(binary.real_path, fs::canonicalize(&binary.path).unwrap());
    assert_eq!(binary.sha256, sha256sum(&binary.path));
    assert_ne!(
        binary.sha256, cargo.sha256,
        "the proxy's hash is not the toolchain's"
    );
    let version = binary.version.as_deref().unwrap_or_default();
    assert!(version.starts_with("cargo "), "{binary:?}");
    let toolchain = binary.toolchain.as_deref().expect("a toolchain name");
    assert_eq!(binary.path, toolchains.join(toolchain).join("bin/cargo"));
}

/// `rust-toolchain.toml` in the working directory, and `RUSTUP_TOOLCHAIN` in the
/// environment, decide.
#[test]
fn working_directory_and_environment_choose_the_toolchain() {
    let Some(cargo) = cargo_proxy() else { return };
    let installed = installed_toolchains();
    let [first, second, ..] = installed.as_slice() else {
        eprintln!("NOT RUN: needs two installed toolchains, found {installed:?}");
        return;
    };
    let dir = tempdir();
    for chosen in [first, second] {
        fs::write(
            dir.path.join("rust-toolchain.toml"),
            format!("[toolchain]\nchannel = \"{chosen}\"\n"),
        )
        .unwrap();
        let binary = rustup_toolchain(&cargo, &dir.path, &rustup_env(), &[])
            .unwrap()
            .unwrap();
        assert_eq!(binary.toolchain.as_deref(), Some(chosen.as_str()));
    }
    let mut env = rustup_env();
    env.push(("RUSTUP_TOOLCHAIN".into(), first.clone()));
    let binary = rustup_toolchain(&cargo, &dir.path, &env, &[])
        .unwrap()
        .unwrap();
    assert_eq!(binary.toolchain.as_deref(), Some(first.as_str()));
}

#[test]
fn toolchain_that_is_not_installed_is_an_error() {
    let Some(cargo) = cargo_proxy() else { return };
    let before = installed_toolchains();
    let dir = tempdir();
    fs::write(
        dir.path.join("rust-toolchain.toml"),
        "[toolchain]\nchannel = \"1.20.0\"\n",
    )
    .unwrap();
    // Without RUSTUP_AUTO_INSTALL=0 in the given environment: it is set regardless.
    let env: Vec<_> = rustup_env()
        .into_iter()
        .filter(|(k, _)| k != "RUSTUP_AUTO_INSTALL")
        .collect();
    let started = Instant::now();
    let err = rustup_toolchain(&cargo, &dir.path, &env, &[])
        .expect("cargo is a rustup proxy")
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(err, ResolveError::Toolchain { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.starts_with(
            "cannot tell which toolchain binary `cargo` runs: `rustup which cargo` failed"
        ),
        "{msg}"
    );
    assert!(
        msg.contains("1.20.0") && msg.contains("not installed"),
        "{msg}"
    );
    assert_eq!(installed_toolchains(), before, "nothing was installed");
}

#[test]
fn other_commands_are_not_proxies() {
    let dir = tempdir();
    let sh = resolve("/bin/sh", None).unwrap();
    assert!(rustup_toolchain(&sh, &dir.path, &[], &[]).is_none());

    // rustup itself is not a proxy either.
    let bin = cargo_home().join("bin");
    if let Ok(rustup) = resolve("rustup", Some(bin.as_os_str())) {
        assert!(rustup_toolchain(&rustup, &dir.path, &rustup_env(), &[]).is_none());
    }
}

/// A fake rustup installation: `bin/rustup` answers `which`, `bin/cargo` is a hard link
/// to it, `toolchains/fake-x86_64/bin/cargo` prints a version.
struct FakeRustup {
    dir: common::TempDir,
    bin: PathBuf,
    toolchain_cargo: PathBuf,
}

fn fake_rustup(which_answer: &str) -> FakeRustup {
    let dir = tempdir();
    let bin = dir.path.join("bin");
    let toolchain_bin = dir.path.join("toolchains/fake-x86_64/bin");
    fs::create_dir_all(&bin).unwrap();
    fs::create_dir_all(&toolchain_bin).unwrap();
    let toolchain_cargo = toolchain_bin.join("cargo");
    write_exe(
        &toolchain_cargo,
        "#!/bin/sh\ntouch \"$(dirname \"$0\")/ran\"\n[ \"$1\" = --version ] && echo \"cargo 9.9.9 (fake $FAKE)\"\n",
    );
    // Refuses to answer unless run as rustup would be, with auto-install off, in the
    // expected directory.
    write_exe(
        &bin.join("rustup"),
        &format!(
            "#!/bin/sh\n\
             [ \"$RUSTUP_AUTO_INSTALL\" = 0 ] || {{ echo auto-install is on >&2; exit 3; }}\n\
             [ \"$(pwd)\" = \"$EXPECTED_CWD\" ] || {{ echo wrong cwd >&2; exit 4; }}\n\
             [ \"$1 $2\" = \"which cargo\" ] || {{ echo \"usage: $*\" >&2; exit 2; }}\n\
             echo \"{which_answer}\"\n"
        ),
    );
    fs::hard_link(bin.join("rustup"), bin.join("cargo")).unwrap();
    FakeRustup {
        dir,
        bin,
        toolchain_cargo,
    }
}

impl FakeRustup {
    fn env(&self, cwd: &Path) -> Vec<(String, String)> {
        vec![
            ("PATH".into(), "/usr/bin:/bin".into()),
            ("FAKE".into(), "toolchain".into()),
            ("EXPECTED_CWD".into(), cwd.display().to_string()),
        ]
    }
}

#[test]
fn hard_linked_proxy_is_detected() {
    let answer = "TOOLCHAIN_CARGO";
    let fake = fake_rustup(answer);
    // The answer must name the toolchain's binary: rewrite it now that its path is known.
    let script = fs::read_to_string(fake.bin.join("rustup"))
        .unwrap()
        .replace(answer, &fake.toolchain_cargo.display().to_string());
    fs::write(fake.bin.join("rustup"), script).unwrap();
    let cargo = resolve("cargo", Some(fake.bin.as_os_str())).unwrap();
    assert_eq!(cargo.real_path, fake.bin.join("cargo"));
    let cwd = tempdir();

    // A toolchain in a directory the step may write is refused, and never run.
    let untrusted = fake.dir.path.join("toolchains");
    let err = rustup_toolchain(&cargo, &cwd.path, &fake.env(&cwd.path), &[&untrusted])
        .expect("a proxy")
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("in a directory the step may write: the step could have made that toolchain"),
        "{err}"
    );
    let ran = fake.toolchain_cargo.with_file_name("ran");
    assert!(!ran.exists(), "the untrusted toolchain was run");

    let binary = rustup_toolchain(&cargo, &cwd.path, &fake.env(&cwd.path), &[])
        .expect("a hard link to rustup is a proxy")
        .unwrap();
    assert!(ran.exists(), "a trusted toolchain is asked for its version");
    assert_eq!(binary.path, fake.toolchain_cargo);
    assert_eq!(binary.real_path, fake.toolchain_cargo);
    assert_eq!(binary.sha256, sha256sum(&fake.toolchain_cargo));
    assert_eq!(
        binary.version.as_deref(),
        Some("cargo 9.9.9 (fake toolchain)")
    );
    assert_eq!(binary.toolchain.as_deref(), Some("fake-x86_64"));

    // A copy, not a link, of rustup named cargo is not recognised.
    let copy_dir = fake.dir.path.join("copy");
    fs::create_dir(&copy_dir).unwrap();
    fs::copy(fake.bin.join("rustup"), copy_dir.join("rustup")).unwrap();
    fs::copy(fake.bin.join("cargo"), copy_dir.join("cargo")).unwrap();
    let copy = resolve("cargo", Some(copy_dir.as_os_str())).unwrap();
    assert!(rustup_toolchain(&copy, &cwd.path, &fake.env(&cwd.path), &[]).is_none());
}

#[test]
fn unusable_answers_are_errors() {
    let cwd = tempdir();
    let fake = fake_rustup("relative/cargo");
    let cargo = resolve("cargo", Some(fake.bin.as_os_str())).unwrap();
    let err = rustup_toolchain(&cargo, &cwd.path, &fake.env(&cwd.path), &[])
        .unwrap()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot tell which toolchain binary `cargo` runs: `rustup which cargo` printed a \
         relative path: relative/cargo"
    );

    let fake = fake_rustup("/nonexistent/toolchains/x/bin/cargo");
    let cargo = resolve("cargo", Some(fake.bin.as_os_str())).unwrap();
    let err = rustup_toolchain(&cargo, &cwd.path, &fake.env(&cwd.path), &[])
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, ResolveError::Missing { .. }), "{err:?}");

    // rustup's own failure, with its message.
    let err = rustup_toolchain(&cargo, &fake.dir.path, &fake.env(&cwd.path), &[])
        .unwrap()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot tell which toolchain binary `cargo` runs: `rustup which cargo` failed (exit \
         status: 4): wrong cwd"
    );

    // A proxy changed since it was resolved is refused before rustup runs.
    fs::write(fake.bin.join("rustup"), "#!/bin/sh\necho changed\n").unwrap();
    let err = rustup_toolchain(&cargo, &cwd.path, &fake.env(&cwd.path), &[])
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, ResolveError::Changed { .. }), "{err:?}");
}
