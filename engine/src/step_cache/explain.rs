//! Why a step's key missed: its manifest against the one the same step of the same
//! pipeline had last, one line per cause, in plain words.

use std::collections::{BTreeMap, BTreeSet};

use std::sync::Arc;

use flow_store::Changes;
use serde_json::Value;

use super::manifest::Manifest;

/// A step this one needs (directly or through others) whose changes its view holds.
#[derive(Debug, Clone)]
pub(crate) struct Producer {
    /// Its id.
    pub step: String,
    /// Whether it ran in this run (rather than being taken from the cache).
    pub ran: bool,
    /// What it wrote or removed.
    pub changes: Arc<Changes>,
}

/// How many paths a line names before it counts the rest.
const NAMED: usize = 3;
/// The longest value a line shows.
const SHOWN: usize = 60;

/// The causes of a miss: `now` against `before` (the last key of the step, from run
/// `before_run`), with the steps whose files its view holds (plan order).
pub(crate) fn causes(
    before: &Manifest,
    before_run: &str,
    now: &Manifest,
    producers: &[Producer],
) -> Vec<String> {
    let mut out = Vec::new();
    if before.engine != now.engine {
        out.push(format!("flow changed ({} → {})", before.engine, now.engine));
    }
    if before.plugin != now.plugin {
        out.push(format!(
            "the plugin changed (`{}` → `{}`)",
            before.plugin, now.plugin
        ));
    } else if before.plugin_sha256 != now.plugin_sha256 {
        out.push(format!(
            "the plugin `{}` changed (another build of it)",
            now.plugin
        ));
    }
    for name in union(before.params.keys(), now.params.keys()) {
        match (before.params.get(name), now.params.get(name)) {
            (Some(a), Some(b)) if a != b => out.push(format!(
                "param `{name}` changed: {} → {}",
                shown(a),
                shown(b)
            )),
            (None, Some(b)) => out.push(format!("param `{name}` was added: {}", shown(b))),
            (Some(a), None) => out.push(format!("param `{name}` was removed (was {})", shown(a))),
            _ => {}
        }
    }
    let kinds = |v: &Value| -> BTreeMap<String, Value> {
        v.as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    };
    let (grants_before, grants_now) = (kinds(&before.grants), kinds(&now.grants));
    for kind in union(grants_before.keys(), grants_now.keys()) {
        // A command's new digest shows in its grant too: its own line says it.
        let said_by_commands = kind == "exec" && before.commands != now.commands;
        if grants_before.get(kind) != grants_now.get(kind) && !said_by_commands {
            out.push(format!("its grants changed (`grants.{kind}`)"));
        }
    }
    named_changes(
        &mut out,
        "host command",
        &before.commands,
        &now.commands,
        "changed (its file's digest)",
    );
    named_changes(&mut out, "variable", &before.env, &now.env, "changed");
    named_changes(&mut out, "secret", &before.secrets, &now.secrets, "changed");
    inputs(&mut out, before, now, producers);
    let granted = changed_paths(&before.granted, &now.granted);
    if !granted.is_empty() {
        out.push(format!(
            "{} in its granted directories: {}",
            count(granted.len(), "file changed", "files changed"),
            list(&granted)
        ));
    }
    if out.is_empty() {
        out.push(format!(
            "its key differs from run {before_run}'s, though nothing flow lists changed"
        ));
    }
    out
}

fn inputs(out: &mut Vec<String>, before: &Manifest, now: &Manifest, producers: &[Producer]) {
    let changed = changed_paths(&before.inputs, &now.inputs);
    if changed.is_empty() {
        return;
    }
    // Each changed path to the last step (plan order) that wrote it, if any did.
    let mut by_producer: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let mut from_workspace = Vec::new();
    for path in changed {
        match producers
            .iter()
            .rposition(|p| p.changes.contains_key(&path))
        {
            Some(i) => by_producer.entry(i).or_default().push(path),
            None => from_workspace.push(path),
        }
    }
    for (i, paths) in by_producer {
        let producer = &producers[i];
        let how = if producer.ran {
            "ran (not taken from the cache)"
        } else {
            "was taken from the cache"
        };
        out.push(format!(
            "`{}` {how} and changed {} of its inputs: {}",
            producer.step,
            paths.len(),
            list(&paths)
        ));
    }
    if !from_workspace.is_empty() {
        out.push(format!(
            "{} from the workspace: {}",
            count(from_workspace.len(), "input changed", "inputs changed"),
            list(&from_workspace)
        ));
    }
}

/// Paths whose value differs, is new or is gone, in path order.
fn changed_paths(before: &BTreeMap<String, String>, now: &BTreeMap<String, String>) -> Vec<String> {
    union(before.keys(), now.keys())
        .into_iter()
        .filter(|p| before.get(*p) != now.get(*p))
        // A directory that appears or goes is said by its files.
        .filter(|p| {
            let dir_or_none = |v: Option<&String>| v.is_none_or(|v| v == "/");
            !(dir_or_none(before.get(*p)) && dir_or_none(now.get(*p)))
        })
        .cloned()
        .collect()
}

fn named_changes(
    out: &mut Vec<String>,
    what: &str,
    before: &BTreeMap<String, String>,
    now: &BTreeMap<String, String>,
    changed: &str,
) {
    for name in union(before.keys(), now.keys()) {
        match (before.get(name), now.get(name)) {
            (Some(a), Some(b)) if a != b => out.push(format!("{what} `{name}` {changed}")),
            (None, Some(_)) => out.push(format!("{what} `{name}` is new")),
            (Some(_), None) => out.push(format!("{what} `{name}` is gone")),
            _ => {}
        }
    }
}

fn union<'a>(
    a: impl Iterator<Item = &'a String>,
    b: impl Iterator<Item = &'a String>,
) -> BTreeSet<&'a String> {
    a.chain(b).collect()
}

fn shown(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() <= SHOWN {
        return text;
    }
    let cut: String = text.chars().take(SHOWN).collect();
    format!("{cut}…")
}

fn list(paths: &[String]) -> String {
    let named: Vec<String> = paths.iter().take(NAMED).map(|p| format!("`{p}`")).collect();
    match paths.len().checked_sub(NAMED) {
        Some(rest) if rest > 0 => format!("{} and {rest} more", named.join(", ")),
        _ => named.join(", "),
    }
}

fn count(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        let mut m = Manifest {
            engine: "flow 1".into(),
            plugin: "build".into(),
            plugin_sha256: "aa".into(),
            grants: serde_json::json!({"exec": ["cargo"]}),
            ..Manifest::default()
        };
        m.params
            .insert("command".into(), serde_json::json!(["cargo", "build"]));
        m.inputs.insert("src".into(), "/".into());
        m.inputs.insert("src/main.rs".into(), "11".into());
        m.inputs.insert("target/app".into(), "22".into());
        m.commands.insert("cargo".into(), "c1".into());
        m
    }

    #[test]
    fn each_kind_of_change_is_one_line() {
        let before = manifest();
        let mut now = manifest();
        now.plugin_sha256 = "bb".into();
        now.params.insert(
            "command".into(),
            serde_json::json!(["cargo", "build", "--release"]),
        );
        now.commands.insert("cargo".into(), "c2".into());
        now.secrets.insert("token".into(), "k".into());
        now.inputs.insert("src/main.rs".into(), "12".into());
        now.inputs.insert("target/app".into(), "23".into());
        let producers = [Producer {
            step: "compile".into(),
            ran: true,
            changes: Arc::new([("target/app".to_string(), flow_store::Change::Removed)].into()),
        }];
        let causes = causes(&before, "r1", &now, &producers);
        assert_eq!(
            causes,
            vec![
                "the plugin `build` changed (another build of it)",
                r#"param `command` changed: ["cargo","build"] → ["cargo","build","--release"]"#,
                "host command `cargo` changed (its file's digest)",
                "secret `token` is new",
                "`compile` ran (not taken from the cache) and changed 1 of its inputs: `target/app`",
                "1 input changed from the workspace: `src/main.rs`",
            ]
        );
    }

    #[test]
    fn many_paths_are_counted_and_nothing_listed_still_says_something() {
        let before = manifest();
        let mut now = manifest();
        for i in 0..5 {
            now.inputs.insert(format!("new/{i}"), "33".into());
        }
        now.inputs.insert("new".into(), "/".into());
        let causes = causes(&before, "r1", &now, &[]);
        assert_eq!(
            causes,
            vec!["5 inputs changed from the workspace: `new/0`, `new/1`, `new/2` and 2 more"]
        );
        assert_eq!(
            super::causes(&before, "r1", &before, &[]),
            vec!["its key differs from run r1's, though nothing flow lists changed"]
        );
    }
}
