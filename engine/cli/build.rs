//! Tells the CLI's tests where the engine's build put the test plugins
//! (`FLOW_TEST_PLUGIN_DIR`), as the engine's build script reports it.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_FLOW_PLUGINS_DIR");
    if let Ok(dir) = std::env::var("DEP_FLOW_PLUGINS_DIR") {
        println!("cargo:rustc-env=FLOW_TEST_PLUGIN_DIR={dir}");
    }
}
