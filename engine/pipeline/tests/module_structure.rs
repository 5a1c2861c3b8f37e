//! The crate's modules import each other one way only (see
//! `tests/support/module_graph.rs` at the workspace root for what counts as an import),
//! and no source file grows past 1,000 lines, its tests aside.

#[path = "../../../tests/support/module_graph.rs"]
mod module_graph;

#[test]
fn no_import_cycles_between_modules() {
    module_graph::assert_one_way(
        env!("CARGO_MANIFEST_DIR"),
        &[
            ("src/check/mod.rs", "src/plan.rs"),
            ("src/check/checker.rs", "src/diag.rs"),
        ],
    );
}

#[test]
fn no_source_file_over_1000_lines_tests_aside() {
    module_graph::assert_files_short(env!("CARGO_MANIFEST_DIR"));
}
