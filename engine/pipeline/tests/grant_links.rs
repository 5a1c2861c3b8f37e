//! F2: a grant never passes through a symbolic link. A step that could write `out` in an
//! earlier run may have made `out/cache` a link to any directory; a later step granted
//! `out/cache` would then write there, and `flow check` would show neither the link nor
//! where it leads. These build real directories and links in a temporary directory.
#![cfg(unix)]

mod common;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use flow_pipeline::{Diagnostics, DirIdentity, Plan};

/// A temporary directory holding `pipe/` (the pipeline's directory) with `pipe/out/` in it,
/// and `victim/` with `victim/sub/` beside it; `pipe/out/cache` links to `victim`.
struct Tree {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Tree {
    fn new() -> Tree {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let root = std::fs::canonicalize(dir.path()).expect("a canonical path");
        std::fs::create_dir_all(root.join("pipe/out")).expect("pipe/out");
        std::fs::create_dir_all(root.join("victim/sub")).expect("victim/sub");
        symlink(root.join("victim"), root.join("pipe/out/cache")).expect("a link");
        Tree { _dir: dir, root }
    }

    fn pipe(&self) -> PathBuf {
        self.root.join("pipe")
    }

    /// Parses and checks a pipeline whose one step (`echo`) has the grants `grants` (YAML
    /// lines under `grants:`, indented by six spaces), with `base` as its directory.
    fn check(&self, base: &Path, grants: &str) -> Result<Plan, Diagnostics> {
        let text = format!(
            "version: 1\nname: links\nsteps:\n  step:\n    uses: echo\n    grants:\n{grants}"
        );
        let pipeline = flow_pipeline::parse(&text, "flow.yaml", base).expect("parses");
        flow_pipeline::check(&pipeline, &common::TestResolver)
    }
}

fn identity(path: &Path) -> DirIdentity {
    DirIdentity::of(&std::fs::symlink_metadata(path).expect("metadata"))
}

#[test]
fn a_grant_through_a_link_is_refused_at_its_line() {
    let tree = Tree::new();
    let problems = tree
        .check(
            &tree.pipe(),
            "      fs:\n        - { path: out/cache, access: write }\n",
        )
        .expect_err("refused");
    let victim = tree.root.join("victim");
    let victim = victim.display();
    assert_eq!(
        problems.render(),
        format!(
            "flow.yaml:8:19: error: granted directory `out/cache` passes through a symbolic link: `out/cache` -> `{victim}`
    |
  8 |         - {{ path: out/cache, access: write }}
    |                   ^^^^^^^^^
    = help: grant the real directory (`{victim}`) if that is what you mean; a step that can write `out` could otherwise redirect this grant
"
        )
    );
}

#[test]
fn a_link_in_the_middle_of_a_grant_is_refused() {
    let tree = Tree::new();
    let problems = tree
        .check(
            &tree.pipe(),
            "      fs:\n        - { path: ./out/cache/sub, access: read }\n        - { path: out, access: write }\n",
        )
        .expect_err("refused");
    assert_eq!(problems.len(), 1);
    let problem = &problems.0[0];
    assert_eq!(
        problem.message,
        format!(
            "granted directory `./out/cache/sub` passes through a symbolic link: `./out/cache` -> `{}`",
            tree.root.join("victim").display()
        )
    );
    assert_eq!(
        problem.help.as_deref(),
        Some(
            format!(
                "grant the real directory (`{}`) if that is what you mean; a step that can write `./out` could otherwise redirect this grant",
                tree.root.join("victim/sub").display()
            )
            .as_str()
        )
    );
}

#[test]
fn a_link_in_an_absolute_grant_is_refused() {
    let tree = Tree::new();
    let written = tree.root.join("pipe/out/cache/sub");
    let problems = tree
        .check(
            &tree.pipe(),
            &format!(
                "      fs:\n        - {{ path: {}, access: read }}\n",
                written.display()
            ),
        )
        .expect_err("refused");
    assert_eq!(problems.len(), 1);
    let problem = &problems.0[0];
    let start = problem.primary.as_ref().expect("a place").span.start;
    assert_eq!((start.line, start.column), (8, 19));
    assert_eq!(
        problem.message,
        format!(
            "granted directory `{}` passes through a symbolic link: `{}` -> `{}`",
            written.display(),
            tree.root.join("pipe/out/cache").display(),
            tree.root.join("victim").display()
        )
    );
    assert!(
        problem
            .help
            .as_deref()
            .is_some_and(|h| h.ends_with(&format!(
                "a step that can write `{}` could otherwise redirect this grant",
                tree.root.join("pipe/out").display()
            ))),
        "{:?}",
        problem.help
    );
}

#[test]
fn a_dangling_link_is_refused_the_same_way() {
    let tree = Tree::new();
    symlink(tree.root.join("nowhere"), tree.root.join("pipe/out/gone")).expect("a link");
    let problems = tree
        .check(
            &tree.pipe(),
            "      fs:\n        - { path: out/gone, access: write }\n",
        )
        .expect_err("refused");
    let nowhere = tree.root.join("nowhere");
    assert_eq!(
        problems.render(),
        format!(
            "flow.yaml:8:19: error: granted directory `out/gone` passes through a symbolic link: `out/gone` -> `{}`
    |
  8 |         - {{ path: out/gone, access: write }}
    |                   ^^^^^^^^
    = help: the link leads to no directory: grant a real one; a step that can write `out` could otherwise redirect this grant
",
            nowhere.display()
        )
    );
}

#[test]
fn a_link_above_the_pipeline_directory_is_trusted() {
    let tree = Tree::new();
    symlink(tree.pipe(), tree.root.join("alias")).expect("a link");
    let plan = tree
        .check(
            &tree.root.join("alias"),
            "      fs:\n        - { path: ./out, access: write }\n        - { path: ., access: read }\n",
        )
        .expect("checks");
    let grants = &plan.steps[0].fs_grants;
    assert_eq!(grants[0].path, tree.pipe().join("out"));
    assert_eq!(grants[0].written, "./out");
    assert_eq!(grants[0].identity, identity(&tree.pipe().join("out")));
    assert_eq!(grants[1].path, tree.pipe());
    assert_eq!(grants[1].identity, identity(&tree.pipe()));
}

#[test]
fn grants_going_up_with_dot_dot_work() {
    let tree = Tree::new();
    let base = tree.pipe().join("a/b/c");
    std::fs::create_dir_all(&base).expect("a/b/c");
    let plan = tree
        .check(
            &base,
            "      fs:\n        - { path: ../../.., access: read }\n        - { path: ../../../out, access: write }\n        - { path: ../../../../victim, access: read }\n        - { path: ../c/../../b/./c, access: read }\n",
        )
        .expect("checks");
    let paths: Vec<&Path> = plan.steps[0]
        .fs_grants
        .iter()
        .map(|g| g.path.as_path())
        .collect();
    assert_eq!(
        paths,
        [
            tree.pipe().as_path(),
            &tree.pipe().join("out"),
            &tree.root.join("victim"),
            &base
        ]
    );
    assert_eq!(
        plan.steps[0].fs_grants[2].identity,
        identity(&tree.root.join("victim"))
    );
}

#[test]
fn dot_dot_after_a_link_does_not_hide_it() {
    let tree = Tree::new();
    let problems = tree
        .check(
            &tree.pipe(),
            "      fs:\n        - { path: out/cache/.., access: read }\n",
        )
        .expect_err("refused");
    assert!(
        problems.0[0].message.starts_with(
            "granted directory `out/cache/..` passes through a symbolic link: `out/cache` -> "
        ),
        "{}",
        problems.0[0].message
    );
}

#[test]
fn exec_reads_through_a_link_are_refused() {
    let tree = Tree::new();
    let absolute = tree.root.join("pipe/out/cache");
    let problems = tree
        .check(
            &tree.pipe(),
            &format!(
                "      exec:\n        - {{ command: cargo, reads: [out/cache, \"${{FLOW_TEST_SURELY_UNSET_VARIABLE:-{}}}/sub\", out] }}\n",
                absolute.display()
            ),
        )
        .expect_err("refused");
    let messages: Vec<&str> = problems.iter().map(|d| d.message.as_str()).collect();
    let victim = tree.root.join("victim");
    assert_eq!(
        messages,
        [
            format!(
                "granted directory `out/cache` passes through a symbolic link: `out/cache` -> `{}`",
                victim.display()
            ),
            format!(
                "granted directory `${{FLOW_TEST_SURELY_UNSET_VARIABLE:-{}}}/sub` passes through a symbolic link: `{}` -> `{}`",
                absolute.display(),
                absolute.display(),
                victim.display()
            ),
        ]
    );
}

#[test]
fn exec_reads_record_what_they_grant() {
    let tree = Tree::new();
    let plan = tree
        .check(
            &tree.pipe(),
            &format!(
                "      exec:\n        - {{ command: cargo, reads: [out, \"${{FLOW_TEST_SURELY_UNSET_VARIABLE:-{}}}/sub\"] }}\n      fs:\n        - {{ path: out, access: write }}\n",
                tree.root.join("victim").display()
            ),
        )
        .expect("checks");
    let grant = &plan.steps[0].exec_grants[0];
    assert_eq!(
        grant.reads,
        [tree.pipe().join("out"), tree.root.join("victim/sub")]
    );
    assert_eq!(
        grant.reads_identity,
        [
            identity(&tree.pipe().join("out")),
            identity(&tree.root.join("victim/sub"))
        ]
    );
}
