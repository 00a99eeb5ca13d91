//! The layers' arrows point one way: no cycle among a crate's top-level modules (a module and
//! its submodules count as one), read from the `crate::` paths in the sources, unit tests
//! left out.
//! Also: views import nothing from command code, and every module opens with a `//!` line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a source file belongs to (`kinds/file.rs` -> `kinds`); none for the
/// crate root.
fn top_module(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    let name = first.trim_end_matches(".rs").to_string();
    (!matches!(name.as_str(), "lib" | "main")).then_some(name)
}

/// Which top-level modules each top-level module uses.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: BTreeSet<String> = files.iter().filter_map(|f| top_module(src, f)).collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let Some(from) = top_module(src, file) else {
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        // Unit tests at the end of a file may reach anywhere.
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        let used = edges.entry(from.clone()).or_default();
        for (i, _) in text.match_indices("crate::") {
            let rest = &text[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if modules.contains(&name) && name != from {
                used.insert(name);
            }
        }
    }
    edges
}

/// A cycle through `start`, if there is one.
fn cycle_from(
    edges: &BTreeMap<String, BTreeSet<String>>,
    start: &str,
    path: &mut Vec<String>,
) -> Option<Vec<String>> {
    let last = path.last().cloned().unwrap_or_else(|| start.to_string());
    for next in edges.get(&last).into_iter().flatten() {
        if next == start {
            let mut c = path.clone();
            c.insert(0, start.to_string());
            c.push(start.to_string());
            return Some(c);
        }
        if !path.contains(next) && path.len() < edges.len() {
            path.push(next.clone());
            if let Some(c) = cycle_from(edges, start, path) {
                return Some(c);
            }
            path.pop();
        }
    }
    None
}

#[test]
fn no_module_cycles_in_any_crate() {
    let mut found = Vec::new();
    for src in ["src", "crates/core/src", "crates/aws/src"] {
        let edges = graph(&repo().join(src));
        for module in edges.keys() {
            if let Some(c) = cycle_from(&edges, module, &mut Vec::new()) {
                found.push(format!("{src}: {}", c.join(" -> ")));
            }
        }
    }
    assert!(found.is_empty(), "module cycles:\n{}", found.join("\n"));
}

#[test]
fn views_import_nothing_from_command_code() {
    let edges = graph(&repo().join("src"));
    let view = edges.get("view").cloned().unwrap_or_default();
    let commands: Vec<&String> = view
        .iter()
        .filter(|m| matches!(m.as_str(), "commands" | "run" | "engine" | "main"))
        .collect();
    assert!(commands.is_empty(), "src/view.rs uses {commands:?}");
}

#[test]
fn every_module_opens_with_a_doc_line() {
    let mut files = Vec::new();
    for src in ["src", "crates/core/src", "crates/aws/src"] {
        rust_files(&repo().join(src), &mut files);
    }
    let missing: Vec<String> = files
        .iter()
        .filter(|f| !std::fs::read_to_string(f).unwrap().starts_with("//!"))
        .map(|f| f.display().to_string())
        .collect();
    assert!(missing.is_empty(), "no //! line: {missing:?}");
}
