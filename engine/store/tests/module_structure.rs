//! The crate's modules import each other one way only (see
//! `tests/support/module_graph.rs` at the workspace root for what counts as an import),
//! and no source file grows past 1,000 lines, its tests aside. The checker itself is
//! tested here (and only here) on small made-up crates.

#[path = "../../../tests/support/module_graph.rs"]
mod module_graph;

use module_graph::ModuleGraph;

#[test]
fn no_import_cycles_between_modules() {
    module_graph::assert_one_way(
        env!("CARGO_MANIFEST_DIR"),
        &[
            ("src/store.rs", "src/records.rs"),
            ("src/records.rs", "src/run_id.rs"),
        ],
    );
}

#[test]
fn no_source_file_over_1000_lines_tests_aside() {
    module_graph::assert_files_short(env!("CARGO_MANIFEST_DIR"));
}

fn crate_of(files: &[(&str, &str)]) -> ModuleGraph {
    let sources: Vec<(String, String)> = files
        .iter()
        .map(|(name, text)| (name.to_string(), text.to_string()))
        .collect();
    ModuleGraph::from_sources(&sources)
}

#[test]
fn the_checker_sees_use_trees_paths_and_root_reexports() {
    let graph = crate_of(&[
        (
            "src/lib.rs",
            "mod a;\nmod b;\nmod c;\nmod d;\n\
             pub use a::{self as alpha, Thing};\npub struct Root;\n",
        ),
        ("src/a.rs", "pub struct Thing;\n"),
        (
            "src/b.rs",
            r#"use crate::{a::{self, Thing as T}};
// crate::d::in_a_comment, and "crate::d::in_a_string" are no imports
fn f() -> char { let _ = crate::Thing; let _ = r"crate::d"; '"' }
#[cfg(test)]
mod tests {
    use super::super::c::Helper;
}
"#,
        ),
        (
            "src/c.rs",
            "pub struct Helper;\nfn g() { let _ = crate::Root; }\n",
        ),
        ("src/d.rs", ""),
    ]);
    let edges: Vec<(&str, &str)> = graph
        .edges()
        .iter()
        .map(|e| (e.from.as_str(), e.to.as_str()))
        .collect();
    assert!(edges.contains(&("src/b.rs", "src/a.rs")), "{edges:?}");
    // From the test module, past the character literal.
    assert!(edges.contains(&("src/b.rs", "src/c.rs")), "{edges:?}");
    assert!(edges.contains(&("src/c.rs", "src/lib.rs")), "{edges:?}");
    assert!(!edges.contains(&("src/b.rs", "src/d.rs")), "{edges:?}");
    // `crate::Thing` is a's, through the root's re-export: no edge to the root.
    assert!(!edges.contains(&("src/b.rs", "src/lib.rs")), "{edges:?}");
    // c imports the root, but the root does not import c: no cycle.
    assert!(graph.cycles().is_empty(), "{}", graph.describe_cycles());
}

#[test]
fn the_checker_names_a_cycle_through_a_test_module_and_the_root() {
    let graph = crate_of(&[
        (
            "src/lib.rs",
            "mod x;\nmod y;\npub use x::X;\npub struct Shared;\n",
        ),
        ("src/x.rs", "use crate::Shared;\npub struct X;\n"),
        (
            "src/y.rs",
            "pub struct Y;\n#[cfg(all(test, unix))]\n\
             pub(crate) mod tests {\n    use crate::x::X;\n}\n",
        ),
    ]);
    let cycles = graph.cycles();
    assert_eq!(cycles.len(), 1, "{}", graph.describe_cycles());
    let files: std::collections::BTreeSet<&str> =
        cycles[0].iter().map(|e| e.from.as_str()).collect();
    assert_eq!(
        files.into_iter().collect::<Vec<_>>(),
        ["src/lib.rs", "src/x.rs"]
    );
    assert!(graph.imports("src/y.rs", "src/x.rs"));
    let lines: std::collections::BTreeMap<String, usize> =
        graph.lines_without_tests().into_iter().collect();
    assert_eq!(lines["src/y.rs"], 1);
}
