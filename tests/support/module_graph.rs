//! The import graph between the module files of one crate, for the library crates'
//! `module_structure` tests (each includes this file with `#[path]`).
//!
//! A node is a file under `src/` (`src/lib.rs` is the crate root, `src/a.rs` or
//! `src/a/mod.rs` the module `a`, `src/a/b.rs` the module `a::b`). An edge `A -> B` is a
//! path in `A`'s code, tests included, that names `B` or something in it: every path of a
//! `use` declaration (`pub use` re-exports too) and every path written in the code that
//! starts with `crate`, `super`, `self` or the name of a child module. Comments, doc
//! comments and literals are ignored. A path through the crate root to an item the root
//! re-exports (`crate::Name`, where `lib.rs` says `pub use a::Name`) is an edge to the
//! module it comes from; a path to an item the root defines is an edge to the root.
//! Declaring a module (`mod a;`) is no edge: a parent may own children that use it.
//!
//! What it cannot see: method calls and names brought in by a glob (`use a::*` is an edge
//! to `a`, but not to whatever `a` re-exports).
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

/// One `A -> B` import, where it is written.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Edge {
    /// The importing file, relative to the crate (`src/a.rs`).
    pub from: String,
    /// The imported file.
    pub to: String,
    /// The line of `from` the path is on (1-based).
    pub line: usize,
    /// The path as written, segments joined with `::`.
    pub path: String,
}

impl fmt::Display for Edge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{} -> {} ({})",
            self.from, self.line, self.to, self.path
        )
    }
}

/// Asserts that the crate at `crate_dir` has no import cycles between its module files,
/// after checking that the imports `seen` (`(from, to)` file pairs) are found at all
/// (a graph without edges has no cycle either).
pub fn assert_one_way(crate_dir: &str, seen: &[(&str, &str)]) {
    let graph =
        ModuleGraph::of_crate(Path::new(crate_dir)).expect("the crate's sources are readable");
    for (from, to) in seen {
        assert!(
            graph.imports(from, to),
            "{from} -> {to} not seen: {:#?}",
            graph.edges()
        );
    }
    assert!(graph.cycles().is_empty(), "{}", graph.describe_cycles());
}

/// Asserts that no source file of the crate at `crate_dir` is over 1,000 lines, its
/// tests aside.
pub fn assert_files_short(crate_dir: &str) {
    let graph =
        ModuleGraph::of_crate(Path::new(crate_dir)).expect("the crate's sources are readable");
    let long: Vec<_> = graph
        .lines_without_tests()
        .into_iter()
        .filter(|(_, lines)| *lines > 1000)
        .collect();
    assert!(long.is_empty(), "split along their seams: {long:?}");
}

/// A file's name, module path and code (comments and literals blanked out).
struct ModuleFile {
    name: String,
    module: Vec<String>,
    code: String,
}

/// The module files of a crate and the imports between them.
pub struct ModuleGraph {
    files: Vec<ModuleFile>,
    edges: Vec<Edge>,
}

impl ModuleGraph {
    /// Reads every `.rs` file under `crate_dir/src`.
    pub fn of_crate(crate_dir: &Path) -> Result<Self, String> {
        let src = crate_dir.join("src");
        let mut paths = Vec::new();
        collect_rust_files(&src, &mut paths)?;
        let mut sources = Vec::new();
        for path in paths {
            let relative = path.strip_prefix(crate_dir).unwrap_or(&path);
            let name = relative.to_string_lossy().replace('\\', "/");
            let text =
                std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            sources.push((name, text));
        }
        Ok(Self::from_sources(&sources))
    }

    /// The graph of files given as (`src/...` name, text).
    pub fn from_sources(sources: &[(String, String)]) -> Self {
        let files: Vec<ModuleFile> = sources
            .iter()
            .filter_map(|(name, text)| {
                Some(ModuleFile {
                    name: name.clone(),
                    module: module_path(name)?,
                    code: blank_comments_and_literals(text),
                })
            })
            .collect();
        let modules: BTreeMap<Vec<String>, usize> = files
            .iter()
            .enumerate()
            .map(|(i, f)| (f.module.clone(), i))
            .collect();
        let root_reexports = files
            .iter()
            .find(|f| f.module.is_empty())
            .map(|f| reexports(&f.code))
            .unwrap_or_default();
        let resolver = Resolver {
            modules: &modules,
            root_reexports: &root_reexports,
        };
        let mut edges = BTreeSet::new();
        for (index, file) in files.iter().enumerate() {
            for written in written_paths(&file.code, &file.module) {
                let Some(target) = resolver.file_of(&written.scope, &written.segments, 0) else {
                    continue;
                };
                if target != index {
                    edges.insert(Edge {
                        from: file.name.clone(),
                        to: files[target].name.clone(),
                        line: written.line,
                        path: written.segments.join("::"),
                    });
                }
            }
        }
        Self {
            files,
            edges: edges.into_iter().collect(),
        }
    }

    /// Every import found, sorted by importing file and line.
    pub fn edges(&self) -> &[Edge] {
        &self.edges
    }

    /// Whether some path in `from` names `to` (both as `src/...`).
    pub fn imports(&self, from: &str, to: &str) -> bool {
        self.edges.iter().any(|e| e.from == from && e.to == to)
    }

    /// The groups of files that import each other, directly or not (strongly connected
    /// components of more than one file), each with the imports inside it.
    pub fn cycles(&self) -> Vec<Vec<Edge>> {
        let names: Vec<&str> = self.files.iter().map(|f| f.name.as_str()).collect();
        let index: BTreeMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
        let mut successors = vec![BTreeSet::new(); names.len()];
        for edge in &self.edges {
            successors[index[edge.from.as_str()]].insert(index[edge.to.as_str()]);
        }
        strongly_connected(&successors)
            .into_iter()
            .filter(|component| component.len() > 1)
            .map(|component| {
                let members: BTreeSet<&str> = component.iter().map(|&i| names[i]).collect();
                self.edges
                    .iter()
                    .filter(|e| {
                        members.contains(e.from.as_str()) && members.contains(e.to.as_str())
                    })
                    .cloned()
                    .collect()
            })
            .collect()
    }

    /// Each file's number of lines, not counting its `#[cfg(test)]` modules.
    pub fn lines_without_tests(&self) -> Vec<(String, usize)> {
        self.files
            .iter()
            .map(|f| {
                (
                    f.name.clone(),
                    f.code.lines().count() - test_module_lines(&f.code),
                )
            })
            .collect()
    }

    /// A readable account of the cycles, one import per line.
    pub fn describe_cycles(&self) -> String {
        let mut out = String::new();
        for (n, cycle) in self.cycles().iter().enumerate() {
            let files: BTreeSet<&str> = cycle.iter().map(|e| e.from.as_str()).collect();
            out.push_str(&format!(
                "cycle {} between {}:\n",
                n + 1,
                files.into_iter().collect::<Vec<_>>().join(", ")
            ));
            for edge in cycle {
                out.push_str(&format!("  {edge}\n"));
            }
        }
        out
    }
}

fn collect_rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut paths: Vec<PathBuf> = entries
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    paths.sort();
    for path in paths {
        if path.is_dir() {
            collect_rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// `src/lib.rs` -> `[]`, `src/a.rs` and `src/a/mod.rs` -> `[a]`, `src/a/b.rs` -> `[a, b]`.
fn module_path(name: &str) -> Option<Vec<String>> {
    let inside = name.strip_prefix("src/")?.strip_suffix(".rs")?;
    let mut segments: Vec<String> = inside.split('/').map(str::to_owned).collect();
    match segments.as_slice() {
        [only] if only == "lib" || only == "main" => return Some(Vec::new()),
        [.., last] if last == "mod" => {
            segments.pop();
        }
        _ => {}
    }
    Some(segments)
}

/// The text with comments, string, byte-string and character literals replaced by spaces
/// (line breaks kept, so line numbers still hold).
fn blank_comments_and_literals(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |out: &mut String, c: char| out.push(if c == '\n' { '\n' } else { ' ' });
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                blank(&mut out, chars[i]);
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
            }
        } else if let Some(hashes) = raw_string_start(&chars, i) {
            // r"…", r#"…"#, br#"…"#: up to the quote followed by as many hashes.
            let open = chars[i..].iter().position(|&c| c == '"').unwrap_or(0) + 1;
            for _ in 0..open {
                out.push(' ');
            }
            i += open;
            while i < chars.len() {
                if chars[i] == '"' && (1..=hashes).all(|h| chars.get(i + h) == Some(&'#')) {
                    for _ in 0..=hashes {
                        out.push(' ');
                    }
                    i += hashes + 1;
                    break;
                }
                blank(&mut out, chars[i]);
                i += 1;
            }
        } else if c == '"' || (c == 'b' && next == Some('"') && !ident_before(&chars, i)) {
            if c == 'b' {
                out.push(' ');
                i += 1;
            }
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
                if let Some(&escaped) = chars.get(i) {
                    blank(&mut out, escaped);
                }
                i += 1;
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' {
            // A character literal ('x', '\n', '\u{1F600}'), or a lifetime ('a) left alone.
            let literal_end = if next == Some('\\') {
                chars
                    .get(i + 3..)
                    .and_then(|rest| rest.iter().position(|&c| c == '\''))
                    .map(|p| i + 3 + p)
            } else if chars.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            match literal_end {
                Some(end) => {
                    for &c in &chars[i..=end] {
                        blank(&mut out, c);
                    }
                    i = end + 1;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// The number of `#` of a raw (byte) string starting at `i`, if one does.
fn raw_string_start(chars: &[char], i: usize) -> Option<usize> {
    if ident_before(chars, i) {
        return None;
    }
    let mut j = i;
    if chars.get(j) == Some(&'b') {
        j += 1;
    }
    if chars.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let hashes = chars[j..].iter().take_while(|&&c| c == '#').count();
    (chars.get(j + hashes) == Some(&'"')).then_some(hashes)
}

fn ident_before(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    PathSep,
    Punct(char),
}

/// The identifiers, `::` and other punctuation of blanked code, with their lines.
fn tokens(code: &str) -> Vec<(Token, usize)> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            // `r#type`: the raw identifier `type`.
            if word == "r" && chars.get(i) == Some(&'#') {
                i += 1;
                continue;
            }
            out.push((Token::Ident(word), line));
        } else if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            out.push((Token::PathSep, line));
            i += 2;
        } else {
            out.push((Token::Punct(c), line));
            i += 1;
        }
    }
    out
}

/// A path as written: the module whose scope it is written in, its segments, its line.
struct WrittenPath {
    scope: Vec<String>,
    segments: Vec<String>,
    line: usize,
}

/// Every path of `use` declarations and every multi-segment path in the code of the file
/// whose module is `module` (inline modules, such as `mod tests { … }`, included).
fn written_paths(code: &str, module: &[String]) -> Vec<WrittenPath> {
    let tokens = tokens(code);
    let mut out = Vec::new();
    // Inline modules: (name, brace depth at which their body opened).
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    let scope = |inline: &[(String, usize)]| -> Vec<String> {
        module
            .iter()
            .cloned()
            .chain(inline.iter().map(|(n, _)| n.clone()))
            .collect()
    };
    while i < tokens.len() {
        match &tokens[i].0 {
            Token::Punct('{') => {
                depth += 1;
                i += 1;
            }
            Token::Punct('}') => {
                depth = depth.saturating_sub(1);
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                i += 1;
            }
            Token::Ident(word) if word == "mod" => {
                if let (Some((Token::Ident(name), _)), Some((Token::Punct('{'), _))) =
                    (tokens.get(i + 1), tokens.get(i + 2))
                {
                    inline.push((name.clone(), depth));
                    depth += 1;
                    i += 3;
                } else {
                    i += 1;
                }
            }
            Token::Ident(word) if word == "use" => {
                let line = tokens[i].1;
                let end = tokens[i..]
                    .iter()
                    .position(|(t, _)| *t == Token::Punct(';'))
                    .map_or(tokens.len(), |p| i + p);
                let mut paths = Vec::new();
                use_tree(&tokens[i + 1..end], Vec::new(), &mut paths);
                let here = scope(&inline);
                for segments in paths {
                    out.push(WrittenPath {
                        scope: here.clone(),
                        segments,
                        line,
                    });
                }
                i = end + 1;
            }
            Token::Ident(first)
                if tokens.get(i + 1).is_some_and(|(t, _)| *t == Token::PathSep)
                    && (i == 0 || tokens[i - 1].0 != Token::PathSep) =>
            {
                let line = tokens[i].1;
                let mut segments = vec![first.clone()];
                let mut j = i + 1;
                while let (Some((Token::PathSep, _)), Some((Token::Ident(next), _))) =
                    (tokens.get(j), tokens.get(j + 1))
                {
                    segments.push(next.clone());
                    j += 2;
                }
                out.push(WrittenPath {
                    scope: scope(&inline),
                    segments,
                    line,
                });
                i = j;
            }
            _ => i += 1,
        }
    }
    out
}

/// Expands a `use` tree (`a::{b, c::d as e, f::*}`) into full paths; `self` in a group
/// is its prefix, and globs and renames end the path where they stand.
fn use_tree(tokens: &[(Token, usize)], prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let mut path = prefix;
    let mut i = 0;
    // A leading `::` names an external crate.
    if tokens.first().is_some_and(|(t, _)| *t == Token::PathSep) && path.is_empty() {
        return;
    }
    while i < tokens.len() {
        match &tokens[i].0 {
            Token::Ident(word) if word == "self" && !path.is_empty() => i += 1,
            Token::Ident(word) if word == "as" => break,
            Token::Ident(word) => {
                path.push(word.clone());
                i += 1;
            }
            Token::PathSep | Token::Punct('*') => i += 1,
            Token::Punct('{') => {
                let close = matching_brace(tokens, i);
                for item in split_top_level(&tokens[i + 1..close]) {
                    use_tree(item, path.clone(), out);
                }
                return;
            }
            _ => i += 1,
        }
    }
    if !path.is_empty() {
        out.push(path);
    }
}

fn matching_brace(tokens: &[(Token, usize)], open: usize) -> usize {
    let mut depth = 0;
    for (i, (token, _)) in tokens.iter().enumerate().skip(open) {
        match token {
            Token::Punct('{') => depth += 1,
            Token::Punct('}') => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    tokens.len()
}

fn split_top_level(tokens: &[(Token, usize)]) -> Vec<&[(Token, usize)]> {
    let mut items = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, (token, _)) in tokens.iter().enumerate() {
        match token {
            Token::Punct('{') => depth += 1,
            Token::Punct('}') => depth -= 1,
            Token::Punct(',') if depth == 0 => {
                items.push(&tokens[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&tokens[start..]);
    items.into_iter().filter(|item| !item.is_empty()).collect()
}

/// What the crate root's `pub use` declarations make available at the root: name ->
/// the path it comes from.
fn reexports(code: &str) -> BTreeMap<String, Vec<String>> {
    let tokens = tokens(code);
    let mut out = BTreeMap::new();
    let mut depth = 0usize;
    for (i, (token, _)) in tokens.iter().enumerate() {
        match token {
            Token::Punct('{') => depth += 1,
            Token::Punct('}') => depth = depth.saturating_sub(1),
            Token::Ident(word) if word == "use" && depth == 0 => {
                let is_pub = i > 0
                    && (tokens[i - 1].0 == Token::Ident("pub".into())
                        || tokens[i - 1].0 == Token::Punct(')'));
                if !is_pub {
                    continue;
                }
                let end = tokens[i..]
                    .iter()
                    .position(|(t, _)| *t == Token::Punct(';'))
                    .map_or(tokens.len(), |p| i + p);
                let mut renamed = Vec::new();
                collect_renames(&tokens[i + 1..end], &mut renamed);
                let mut paths = Vec::new();
                use_tree(&tokens[i + 1..end], Vec::new(), &mut paths);
                for path in paths {
                    let name = renamed
                        .iter()
                        .find(|(p, _)| *p == path)
                        .map(|(_, alias)| alias.clone())
                        .or_else(|| path.last().cloned());
                    if let Some(name) = name {
                        out.insert(name, path);
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// `a::b as c` inside a `use` tree: the path `a::b` and its new name `c`.
fn collect_renames(tokens: &[(Token, usize)], out: &mut Vec<(Vec<String>, String)>) {
    fn walk(tokens: &[(Token, usize)], prefix: Vec<String>, out: &mut Vec<(Vec<String>, String)>) {
        let mut path = prefix;
        let mut i = 0;
        while i < tokens.len() {
            match &tokens[i].0 {
                Token::Ident(word) if word == "as" => {
                    if let Some((Token::Ident(alias), _)) = tokens.get(i + 1) {
                        out.push((path.clone(), alias.clone()));
                    }
                    return;
                }
                Token::Ident(word) if word == "self" && !path.is_empty() => i += 1,
                Token::Ident(word) => {
                    path.push(word.clone());
                    i += 1;
                }
                Token::Punct('{') => {
                    let close = matching_brace(tokens, i);
                    for item in split_top_level(&tokens[i + 1..close]) {
                        walk(item, path.clone(), out);
                    }
                    return;
                }
                _ => i += 1,
            }
        }
    }
    walk(tokens, Vec::new(), out);
}

/// Finds the file a path leads to.
struct Resolver<'a> {
    modules: &'a BTreeMap<Vec<String>, usize>,
    root_reexports: &'a BTreeMap<String, Vec<String>>,
}

impl Resolver<'_> {
    /// The file that `segments`, written in the module `scope`, leads into; `None` for a
    /// path outside the crate (another crate, a local item, a variable).
    fn file_of(&self, scope: &[String], segments: &[String], hops: usize) -> Option<usize> {
        let (mut base, rest): (Vec<String>, &[String]) = match segments.first()?.as_str() {
            "crate" => (Vec::new(), &segments[1..]),
            "self" => (scope.to_vec(), &segments[1..]),
            "super" => {
                let ups = segments.iter().take_while(|s| *s == "super").count();
                let keep = scope.len().checked_sub(ups)?;
                (scope[..keep].to_vec(), &segments[ups..])
            }
            first => {
                let mut child = scope.to_vec();
                child.push(first.to_owned());
                if !self.modules.contains_key(&child) {
                    return None;
                }
                (scope.to_vec(), segments)
            }
        };
        let mut consumed = 0;
        for segment in rest {
            let mut deeper = base.clone();
            deeper.push(segment.clone());
            if !self.modules.contains_key(&deeper) {
                break;
            }
            base = deeper;
            consumed += 1;
        }
        // An item the root re-exports is its source module's.
        if base.is_empty()
            && hops < 8
            && let Some(name) = rest.get(consumed)
            && let Some(source) = self.root_reexports.get(name)
            && let Some(file) = self.file_of(&[], source, hops + 1)
        {
            return Some(file);
        }
        // Inline modules (`mod tests`) are part of their file.
        while !self.modules.contains_key(&base) {
            base.pop()?;
        }
        self.modules.get(&base).copied()
    }
}

/// The number of lines of the `#[cfg(test)]` (or `#[cfg(all(test, …))]`) modules of
/// blanked code, attributes included.
fn test_module_lines(code: &str) -> usize {
    let tokens = tokens(code);
    let mut lines = 0;
    let mut i = 0;
    while i < tokens.len() {
        let is_cfg_test = tokens[i].0 == Token::Punct('#')
            && tokens
                .get(i + 1)
                .is_some_and(|(t, _)| *t == Token::Punct('['))
            && tokens
                .get(i + 2)
                .is_some_and(|(t, _)| *t == Token::Ident("cfg".into()));
        if !is_cfg_test {
            i += 1;
            continue;
        }
        let attribute_end = tokens[i..]
            .iter()
            .position(|(t, _)| *t == Token::Punct(']'))
            .map_or(tokens.len(), |p| i + p);
        let mentions_test = tokens[i..attribute_end]
            .iter()
            .any(|(t, _)| *t == Token::Ident("test".into()));
        // `mod name {`, perhaps after a visibility (`pub`, `pub(crate)`).
        let mut at = attribute_end + 1;
        if tokens
            .get(at)
            .is_some_and(|(t, _)| *t == Token::Ident("pub".into()))
        {
            at += 1;
            if tokens.get(at).is_some_and(|(t, _)| *t == Token::Punct('(')) {
                at = tokens[at..]
                    .iter()
                    .position(|(t, _)| *t == Token::Punct(')'))
                    .map_or(tokens.len(), |p| at + p + 1);
            }
        }
        let opens_module = match (tokens.get(at), tokens.get(at + 1), tokens.get(at + 2)) {
            (
                Some((Token::Ident(m), _)),
                Some((Token::Ident(_), _)),
                Some((Token::Punct('{'), _)),
            ) => m == "mod",
            _ => false,
        };
        if mentions_test && opens_module {
            let close = matching_brace(&tokens, at + 2);
            let last = tokens
                .get(close)
                .map_or(tokens[tokens.len() - 1].1, |(_, l)| *l);
            lines += last - tokens[i].1 + 1;
            i = close + 1;
        } else {
            i = attribute_end + 1;
        }
    }
    lines
}

/// Tarjan's algorithm, iteratively: the strongly connected components of a graph given as
/// each node's successors.
fn strongly_connected(successors: &[BTreeSet<usize>]) -> Vec<Vec<usize>> {
    const UNVISITED: usize = usize::MAX;
    let n = successors.len();
    let mut index = vec![UNVISITED; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut components = Vec::new();
    let mut next_index = 0;
    for start in 0..n {
        if index[start] != UNVISITED {
            continue;
        }
        // (node, its successors not yet looked at)
        let mut work: Vec<(usize, Vec<usize>)> = Vec::new();
        index[start] = next_index;
        low[start] = next_index;
        next_index += 1;
        stack.push(start);
        on_stack[start] = true;
        work.push((start, successors[start].iter().rev().copied().collect()));
        while let Some((node, pending)) = work.last_mut() {
            let node = *node;
            if let Some(next) = pending.pop() {
                if index[next] == UNVISITED {
                    index[next] = next_index;
                    low[next] = next_index;
                    next_index += 1;
                    stack.push(next);
                    on_stack[next] = true;
                    work.push((next, successors[next].iter().rev().copied().collect()));
                } else if on_stack[next] {
                    low[node] = low[node].min(index[next]);
                }
                continue;
            }
            work.pop();
            if let Some((parent, _)) = work.last() {
                low[*parent] = low[*parent].min(low[node]);
            }
            if low[node] == index[node] {
                let mut component = Vec::new();
                while let Some(member) = stack.pop() {
                    on_stack[member] = false;
                    component.push(member);
                    if member == node {
                        break;
                    }
                }
                component.sort_unstable();
                components.push(component);
            }
        }
    }
    components
}
