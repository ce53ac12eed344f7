//! The library's modules form a tree of uses: no module of `host/src`
//! imports a module that imports it back, directly or through others.
//!
//! Read from the sources: every `use` and every `crate::`, `super::` or
//! `self::` path names a module (the longest prefix that is one; an item
//! re-exported by `pub use` counts as its defining module's). Unit-test
//! modules (`#[cfg(test)] mod tests { .. }`) and the binary are left out.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

type Module = Vec<String>;

#[test]
fn no_module_imports_a_module_that_imports_it_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let tree = Tree::read(&src);
    assert!(
        tree.modules.len() > 20,
        "read {} modules",
        tree.modules.len()
    );
    let cycles = tree.cycles();
    assert!(
        cycles.is_empty(),
        "modules that import each other (a -> b means a uses b):\n{}",
        cycles
            .iter()
            .map(|c| c.join(" -> "))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn the_reader_sees_a_cycle_when_there_is_one() {
    let mut tree = Tree::default();
    let files = [
        ("", "mod a;\nmod b;\npub use a::Thing;\n"),
        ("a", "use crate::b::Other;\npub struct Thing;\n"),
        ("b", "pub struct Other;\nfn f(_: &crate::Thing) {}\n"),
    ];
    for (name, text) in files {
        tree.add(module(name), text);
    }
    let cycles = tree.cycles();
    assert_eq!(cycles, [vec!["a", "b", "a"]], "{cycles:?}");
}

fn module(name: &str) -> Module {
    name.split("::")
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[derive(Default)]
struct Tree {
    /// Each module's source, with comments, strings and unit tests removed.
    modules: BTreeMap<Module, String>,
}

impl Tree {
    fn read(src: &Path) -> Tree {
        let mut tree = Tree::default();
        let mut dirs = vec![src.to_path_buf()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let rel = path
                    .strip_prefix(src)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                if rel == "bin" {
                    continue;
                }
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                let Some(stem) = rel.strip_suffix(".rs") else {
                    continue;
                };
                let mut name: Module = stem.split('/').map(str::to_string).collect();
                if name.last().is_some_and(|n| n == "mod" || n == "lib") {
                    name.pop();
                }
                tree.add(name, &std::fs::read_to_string(&path).unwrap());
            }
        }
        tree
    }

    fn add(&mut self, name: Module, text: &str) {
        let code = code_only(text);
        let code = match code.find("#[cfg(test)]\nmod tests {") {
            Some(at) => code[..at].to_string(),
            None => code,
        };
        self.modules.insert(name, code);
    }

    /// What each module's `pub use` makes visible: (module, name) -> path.
    fn reexports(&self) -> HashMap<(Module, String), String> {
        let mut found = HashMap::new();
        for (module, code) in &self.modules {
            for statement in statements(code, "pub use ") {
                for path in expand(&statement) {
                    let (path, alias) = match path.split_once(" as ") {
                        Some((p, a)) => (p.trim().to_string(), a.trim().to_string()),
                        None => {
                            let last = path.rsplit("::").next().unwrap().to_string();
                            (path.clone(), last)
                        }
                    };
                    found.insert((module.clone(), alias), path);
                }
            }
        }
        found
    }

    /// The module `path`, used from `from`, names (none for other crates).
    fn resolve(
        &self,
        from: &Module,
        path: &str,
        reexports: &HashMap<(Module, String), String>,
        depth: usize,
    ) -> Option<Module> {
        let mut segments: Vec<&str> = path.split("::").map(str::trim).collect();
        let mut at: Module = match segments[0] {
            "crate" => Vec::new(),
            "super" | "self" => from.clone(),
            first if self.is_module(from, first) => from.clone(),
            _ => return None,
        };
        if segments[0] == "crate" {
            segments.remove(0);
        }
        while segments.first() == Some(&"super") {
            at.pop();
            segments.remove(0);
        }
        while segments.first() == Some(&"self") {
            segments.remove(0);
        }
        while let Some(first) = segments.first() {
            if self.is_module(&at, first) {
                at.push(first.to_string());
                segments.remove(0);
            } else if let Some(target) = reexports.get(&(at.clone(), first.to_string()))
                && depth < 8
            {
                let defined = self.resolve(&at, target, reexports, depth + 1)?;
                if defined == at {
                    break;
                }
                at = defined;
                segments.remove(0);
            } else {
                break;
            }
        }
        Some(at)
    }

    fn is_module(&self, parent: &Module, name: &str) -> bool {
        let mut child = parent.clone();
        child.push(name.to_string());
        self.modules.contains_key(&child)
    }

    fn edges(&self) -> BTreeMap<Module, BTreeSet<Module>> {
        let reexports = self.reexports();
        let mut edges = BTreeMap::new();
        for (module, code) in &self.modules {
            let mut paths: Vec<String> = statements(code, "use ")
                .iter()
                .flat_map(|s| expand(s))
                .map(|p| p.split(" as ").next().unwrap().trim().to_string())
                .collect();
            paths.extend(inline_paths(code));
            let targets: BTreeSet<Module> = paths
                .iter()
                .filter_map(|p| self.resolve(module, p, &reexports, 0))
                .filter(|t| t != module)
                .collect();
            edges.insert(module.clone(), targets);
        }
        edges
    }

    /// Every cycle found by a depth-first walk, each as `a -> .. -> a`.
    fn cycles(&self) -> Vec<Vec<String>> {
        let edges = self.edges();
        let mut cycles = BTreeSet::new();
        let mut done = BTreeSet::new();
        for start in edges.keys() {
            let mut path = Vec::new();
            walk(start, &edges, &mut path, &mut done, &mut cycles);
        }
        cycles.into_iter().collect()
    }
}

fn walk(
    at: &Module,
    edges: &BTreeMap<Module, BTreeSet<Module>>,
    path: &mut Vec<Module>,
    done: &mut BTreeSet<Module>,
    cycles: &mut BTreeSet<Vec<String>>,
) {
    if let Some(pos) = path.iter().position(|m| m == at) {
        let mut cycle: Vec<String> = path[pos..].iter().map(name).collect();
        cycle.push(name(at));
        cycles.insert(cycle);
        return;
    }
    if done.contains(at) {
        return;
    }
    path.push(at.clone());
    for next in edges.get(at).into_iter().flatten() {
        walk(next, edges, path, done, cycles);
    }
    path.pop();
    done.insert(at.clone());
}

fn name(module: &Module) -> String {
    if module.is_empty() {
        "crate".into()
    } else {
        module.join("::")
    }
}

/// The source without comments, and with string and char literals emptied.
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                i += 1;
            }
            i += 2;
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !ident_before(&chars, i) {
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= chars.len() {
                    break;
                }
                if chars[j] == '"' && (0..hashes).all(|h| chars.get(j + 1 + h) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' {
            // A char literal ('x', '\n'), or a lifetime ('a), kept as is.
            if next == Some('\\') {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
                out.push_str("' '");
            } else if chars.get(i + 2) == Some(&'\'') {
                i += 3;
                out.push_str("' '");
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_before(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
}

/// The bodies of the statements that begin with `keyword` (`use `, `pub use `).
fn statements(code: &str, keyword: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    let mut offset = 0;
    while let Some(at) = rest.find(keyword) {
        let start = offset + at;
        let before = code[..start].trim_end().chars().last();
        let starts_statement = matches!(before, None | Some(';' | '{' | '}' | ')' | ']'))
            || code[..start].trim_end().ends_with("pub");
        let after = &code[start + keyword.len()..];
        let end = after.find(';').unwrap_or(after.len());
        if starts_statement && (keyword != "use " || !code[..start].trim_end().ends_with("pub")) {
            found.push(
                after[..end]
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" "),
            );
        }
        offset = start + keyword.len();
        rest = &code[offset..];
    }
    if keyword == "use " {
        // `pub use` and `pub(crate) use` are uses too.
        found.extend(statements(code, "pub use "));
    }
    found
}

/// A use tree as the paths it names: `a::{b, c::{d, e}}` is `a::b`, `a::c::d`, `a::c::e`.
fn expand(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        return vec![tree.trim_end_matches("::self").to_string()];
    };
    let prefix = tree[..open].trim_end_matches("::");
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut parts = Vec::new();
    let (mut depth, mut from) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[from..i]);
                from = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[from..]);
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .flat_map(|part| {
            if part == "self" {
                vec![prefix.to_string()]
            } else {
                expand(&format!("{prefix}::{part}"))
            }
        })
        .collect()
}

/// Paths written in code that start with `crate::`, `super::` or `self::`.
fn inline_paths(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    for root in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(at) = code[from..].find(root) {
            let start = from + at;
            from = start + root.len();
            let prior = code[..start].chars().last();
            if prior.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':' || c == '$') {
                continue;
            }
            let path: String = code[start..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let path = path.trim_end_matches(':');
            // `crate::{..}` is a use tree, read with its statement.
            if path.contains("::") {
                found.push(path.to_string());
            }
        }
    }
    found
}
