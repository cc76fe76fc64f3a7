//! The task module's shape, checked: no import circle among its files (see the layer order
//! in the module's docs). Reads the sources; product code only (`#[cfg(test)] mod` blocks
//! are left out: test fixtures may be shared across layers).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A file's module path under `task` (`config/volume.rs` -> `["config", "volume"]`).
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap_or_default();
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" {
        parts.push(stem.to_string());
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("task sources")
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The source without comments and without `#[cfg(test)]` modules.
fn product_code(src: &str) -> String {
    let lines: Vec<&str> = src
        .lines()
        .map(|l| l.find("//").map_or(l, |at| &l[..at]))
        .collect();
    let mut out = String::new();
    let mut i = 0;
    while i < lines.len() {
        let next = lines.get(i + 1).map_or("", |l| l.trim());
        if lines[i].trim() == "#[cfg(test)]" && next.contains("mod ") {
            if next.ends_with(';') {
                i += 2;
                continue;
            }
            // Skip the block by brace depth.
            let mut depth = 0i32;
            let mut j = i + 1;
            loop {
                depth += lines[j].matches('{').count() as i32;
                depth -= lines[j].matches('}').count() as i32;
                j += 1;
                if depth <= 0 || j >= lines.len() {
                    break;
                }
            }
            i = j;
            continue;
        }
        out.push_str(lines[i]);
        out.push('\n');
        i += 1;
    }
    out
}

#[derive(Debug, PartialEq)]
enum Tok {
    Ident(String),
    Path,
    Open,
    Close,
    Comma,
    Other,
}

fn tokens(s: &str) -> Vec<Tok> {
    let c: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if ch.is_alphanumeric() || ch == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            out.push(Tok::Ident(c[start..i].iter().collect()));
            continue;
        }
        if ch == ':' && c.get(i + 1) == Some(&':') {
            out.push(Tok::Path);
            i += 2;
            continue;
        }
        if !ch.is_whitespace() {
            out.push(match ch {
                '{' => Tok::Open,
                '}' => Tok::Close,
                ',' => Tok::Comma,
                _ => Tok::Other,
            });
        }
        i += 1;
    }
    out
}

/// Parses a use tree at `at` (just after a `::`), pushing each full path.
fn tree(t: &[Tok], at: &mut usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    match t.get(*at) {
        Some(Tok::Open) => {
            *at += 1;
            loop {
                match t.get(*at) {
                    Some(Tok::Close) | None => {
                        *at += 1;
                        return;
                    }
                    Some(Tok::Comma) => *at += 1,
                    _ => tree(t, at, prefix.clone(), out),
                }
            }
        }
        Some(Tok::Ident(id)) => {
            let mut p = prefix;
            p.push(id.clone());
            *at += 1;
            if t.get(*at) == Some(&Tok::Path) {
                *at += 1;
                tree(t, at, p, out);
            } else {
                out.push(p);
            }
        }
        _ => {
            *at += 1;
            out.push(prefix);
        }
    }
}

/// The module paths (absolute under `task`) a file's product code names.
fn references(module: &[String], children: &BTreeSet<String>, code: &str) -> Vec<Vec<String>> {
    let t = tokens(code);
    let mut out = Vec::new();
    let mut i = 0;
    while i < t.len() {
        let after_path = i > 0 && t[i - 1] == Tok::Path;
        let Tok::Ident(id) = &t[i] else {
            i += 1;
            continue;
        };
        if after_path || t.get(i + 1) != Some(&Tok::Path) {
            i += 1;
            continue;
        }
        let base: Option<Vec<String>> = match id.as_str() {
            "super" => {
                let mut b = module.to_vec();
                let mut j = i;
                b.pop();
                while t.get(j + 2) == Some(&Tok::Ident("super".into()))
                    && t.get(j + 3) == Some(&Tok::Path)
                {
                    b.pop();
                    j += 2;
                }
                i = j;
                Some(b)
            }
            "self" => Some(module.to_vec()),
            "crate" if t.get(i + 2) == Some(&Tok::Ident("task".into())) => {
                i += 2;
                Some(Vec::new())
            }
            c if children.contains(c) => {
                // A child module named from its parent: `volume::X` in config.rs.
                let mut b = module.to_vec();
                b.push(c.to_string());
                out.push(b);
                i += 1;
                continue;
            }
            _ => None,
        };
        match base {
            Some(b) => {
                let mut at = i + 2;
                tree(&t, &mut at, b, &mut out);
                i = at;
            }
            None => i += 1,
        }
    }
    out
}

/// Each file's module path and the files its product code imports.
fn graph(root: &Path) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let mut files = Vec::new();
    rust_files(root, &mut files);
    let modules: BTreeMap<Vec<String>, PathBuf> = files
        .iter()
        .map(|f| {
            (
                module_of(f.strip_prefix(root).expect("under root")),
                f.clone(),
            )
        })
        .collect();
    let mut g = BTreeMap::new();
    for (m, f) in &modules {
        let children: BTreeSet<String> = modules
            .keys()
            .filter(|k| k.len() == m.len() + 1 && k.starts_with(m))
            .map(|k| k[m.len()].clone())
            .collect();
        let code = product_code(&std::fs::read_to_string(f).expect("read source"));
        let mut edges = BTreeSet::new();
        for r in references(m, &children, &code) {
            // The longest prefix that is a file of the module.
            let target = (0..=r.len())
                .rev()
                .map(|n| r[..n].to_vec())
                .find(|p| modules.contains_key(p));
            if let Some(t) = target {
                if &t != m {
                    edges.insert(t);
                }
            }
        }
        g.insert(m.clone(), edges);
    }
    g
}

/// A circle in `g`, if any, as the files along it.
fn circle(g: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Option<Vec<String>> {
    fn visit(
        g: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        n: &Vec<String>,
        state: &mut BTreeMap<Vec<String>, u8>,
        stack: &mut Vec<Vec<String>>,
    ) -> Option<Vec<String>> {
        state.insert(n.clone(), 1);
        stack.push(n.clone());
        for m in g.get(n).into_iter().flatten() {
            match state.get(m).copied().unwrap_or(0) {
                1 => {
                    let from = stack.iter().position(|s| s == m).unwrap_or(0);
                    let mut c: Vec<String> = stack[from..].iter().map(|s| name(s)).collect();
                    c.push(name(m));
                    return Some(c);
                }
                0 => {
                    if let Some(c) = visit(g, m, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.clone(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in g.keys() {
        if state.get(n).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(g, n, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

fn name(m: &[String]) -> String {
    if m.is_empty() {
        "task".into()
    } else {
        m.join("::")
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/task")
}

#[test]
fn no_import_circle_among_the_task_files() {
    let g = graph(&root());
    assert!(g.len() > 20, "read the task module's files: {:?}", g.keys());
    assert_eq!(circle(&g), None, "an import circle in executor/src/task");
}

#[test]
fn the_layers_import_downwards() {
    let g = graph(&root());
    let edge = |a: &[&str], b: &[&str]| {
        let a: Vec<String> = a.iter().map(|s| s.to_string()).collect();
        let b: Vec<String> = b.iter().map(|s| s.to_string()).collect();
        g.get(&a).is_some_and(|e| e.contains(&b))
    };
    // The lower layers know nothing of those above them.
    for low in [
        &["config"][..],
        &["config", "volume"],
        &["error"],
        &["names"],
    ] {
        for high in [
            &["plan"][..],
            &["steps"],
            &["volume"],
            &["runner"],
            &["builtin"],
        ] {
            assert!(
                !edge(low, high),
                "{} imports {}",
                name_of(low),
                name_of(high)
            );
        }
    }
    assert!(
        edge(&["runner"], &["plan"]),
        "the check sees imports: {g:?}"
    );
    assert!(
        edge(&["config"], &["config", "volume"]),
        "child imports: {g:?}"
    );
}

fn name_of(m: &[&str]) -> String {
    m.join("::")
}

#[test]
fn a_circle_is_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("mod.rs"), "pub mod a;\npub mod b;\n").expect("write");
    std::fs::write(dir.path().join("a.rs"), "use super::b::{X, Y};\n").expect("write");
    std::fs::write(
        dir.path().join("b.rs"),
        "// use super::a;\npub struct X;\n#[cfg(test)]\nmod tests {\n    use super::super::a;\n}\n",
    )
    .expect("write");
    assert_eq!(
        circle(&graph(dir.path())),
        None,
        "comments and tests are not imports"
    );
    std::fs::write(
        dir.path().join("b.rs"),
        "pub struct X;\nfn f() { crate::task::a::g() }\n",
    )
    .expect("write");
    assert_eq!(
        circle(&graph(dir.path())),
        Some(vec!["a".into(), "b".into(), "a".into()])
    );
}

#[test]
fn every_task_file_is_under_500_lines() {
    let mut files = Vec::new();
    rust_files(&root(), &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(f)
                .expect("read source")
                .lines()
                .count();
            (n >= 500).then(|| format!("{} ({n} lines)", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "split these: {long:?}");
}
