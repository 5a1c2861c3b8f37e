//! Builds the plugins in `plugins/` as wasm32-wasip2 components, so that a
//! plain `cargo build` or `cargo test` produces everything.
//!
//! The built-in plugins are embedded into the `flow` binary
//! (`$OUT_DIR/builtin_plugins.rs`); the test plugins are exposed to tests
//! through the `FLOW_TEST_PLUGIN_DIR` compile-time variable.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Plugins embedded in the `flow` binary: (name, cargo package).
const BUILTIN: &[(&str, &str)] = &[
    ("echo", "flow-plugin-echo"),
    ("build", "flow-plugin-build"),
    ("checkout", "flow-plugin-checkout"),
    ("scan", "flow-plugin-scan"),
    ("sign", "flow-plugin-sign"),
    ("publish", "flow-plugin-publish"),
];
/// Plugins built for tests only.
const TESTING: &[&str] = &[
    "flow-plugin-misbehave",
    "flow-plugin-fs-probe",
    "flow-plugin-net-probe",
    "flow-plugin-hostile",
    "flow-plugin-hostile-raw",
];

const WASM_TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .parent()
        .expect("engine/ lives in the workspace root")
        .to_path_buf();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    // cargo looks at a watched directory's own entries, not below them: every
    // source file of the plugins is named, so that an edit deep in one rebuilds it.
    for watched in ["Cargo.lock", "Cargo.toml"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    for dir in ["wit", "sdk", "plugins"] {
        watch_sources(&root.join(dir));
    }

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    check_target_installed();

    // One wasm target dir shared by every host profile: the plugins are always
    // built with the `plugin` profile, so dev, test and release share them.
    let target_dir = host_target_dir(&out_dir).join("wasm-plugins");
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(&root)
        .args([
            "build",
            "--quiet",
            "--locked",
            "--profile",
            "plugin",
            "--target",
            WASM_TARGET,
        ])
        .arg("--target-dir")
        .arg(&target_dir);
    for (_, package) in BUILTIN {
        cmd.args(["-p", package]);
    }
    for package in TESTING {
        cmd.args(["-p", package]);
    }
    // The host build's flags are not the wasm build's.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_LLVM_COV",
        "CARGO_PROFILE_RELEASE_LTO",
    ] {
        cmd.env_remove(var);
    }
    // wasmtime runs wasm SIMD natively; inflate, hashing and copying in the
    // plugins use it.
    cmd.env(
        "CARGO_TARGET_WASM32_WASIP2_RUSTFLAGS",
        "-Ctarget-feature=+simd128",
    );
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build the plugins: {e}"));
    if !status.success() {
        panic!("building the plugins for {WASM_TARGET} failed (see the errors above)");
    }

    let wasm_dir = target_dir.join(WASM_TARGET).join("plugin");
    let mut builtins = String::from(
        "/// The plugins shipped inside the binary: (name, component bytes).\n\
         pub static BUILTIN_PLUGINS: &[(&str, &[u8])] = &[\n",
    );
    for (name, package) in BUILTIN {
        let file = wasm_dir.join(format!("{}.wasm", package.replace('-', "_")));
        assert!(
            file.exists(),
            "the plugin build did not produce {}",
            file.display()
        );
        builtins.push_str(&format!(
            "    ({name:?}, include_bytes!({:?})),\n",
            file.display().to_string()
        ));
    }
    builtins.push_str("];\n");
    std::fs::write(out_dir.join("builtin_plugins.rs"), builtins).expect("write builtin_plugins.rs");
    println!(
        "cargo:rustc-env=FLOW_TEST_PLUGIN_DIR={}",
        wasm_dir.display()
    );
    // For the build scripts of packages that depend on this one (`DEP_FLOW_PLUGINS_DIR`).
    println!("cargo:dir={}", wasm_dir.display());
}

/// The host target dir (`target/` or `$CARGO_TARGET_DIR`), found from OUT_DIR
/// (`<target>[/<triple>]/<profile>/build/<pkg>-<hash>/out`).
fn host_target_dir(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "build"))
        .and_then(|build| build.parent())
        .and_then(|profile| profile.parent())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| out_dir.to_path_buf())
}

fn check_target_installed() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let Ok(out) = Command::new(rustc).args(["--print", "sysroot"]).output() else {
        return;
    };
    let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !Path::new(&sysroot)
        .join("lib/rustlib")
        .join(WASM_TARGET)
        .exists()
    {
        panic!(
            "the {WASM_TARGET} target is not installed; flow's plugins need it.\n\
             Install it with: rustup target add {WASM_TARGET}"
        );
    }
}

/// Asks cargo to rerun this script when a source file (`.rs`, `.toml`, `.wit`) or
/// directory below `dir` changes; build outputs and test data are not sources.
fn watch_sources(dir: &std::path::Path) {
    println!("cargo:rerun-if-changed={}", dir.display());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            if !matches!(name.as_ref(), "target" | "data" | "node_modules")
                && !name.starts_with('.')
            {
                watch_sources(&path);
            }
        } else if [".rs", ".toml", ".wit"]
            .iter()
            .any(|ext| name.ends_with(ext))
        {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}
