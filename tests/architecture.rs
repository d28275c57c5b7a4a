//! The shape of `src/`, read from its own imports: every module sits in a layer, imports run
//! only to the same layer or lower ones, there is no cycle between modules, and no file is
//! over 800 lines of code, blank lines, comments and tests aside. README.md, section Architecture, draws it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The layers, lowest first. A module may import from its own layer and the ones below.
const LAYERS: &[&[&str]] = &[
    // system helpers and errors
    &["error", "net", "timing", "resolve", "privilege", "junk"],
    // packets on the wire, ICMP, the probe layer
    &["packet", "icmp", "probe"],
    // numbers, the one event schema, trace's logic
    &["stats", "event", "trace"],
    // what a run becomes: sinks, pictures, metrics; the server; man pages; the live view
    &["output", "report", "metrics", "server", "manual", "tui"],
    // the command line
    &["cli"],
    // what each command does
    &["cmd"],
];

/// Lines of code (not blank, not comments) a file of `src/` may hold, tests aside.
const MAX_LINES: usize = 800;

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The file's code, tests aside: a file named tests.rs (or *_tests.rs) is all tests; in
/// others, everything from a `#[cfg(test)]` that opens a module on.
fn code_of(path: &Path, text: &str) -> Option<String> {
    let name = path.file_name().unwrap().to_string_lossy();
    if name == "tests.rs" || name.ends_with("_tests.rs") {
        return None;
    }
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let t = line.trim();
        if t == "#[cfg(test)]" {
            if let Some(next) = lines.peek() {
                let n = next.trim();
                if n.starts_with("mod ")
                    || n.starts_with("pub mod ")
                    || n.starts_with("pub(crate) mod ")
                {
                    break;
                }
            }
        }
        if t.is_empty() || t.starts_with("//") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    Some(out)
}

/// The top-level module a file of src/ belongs to (`src/probe/syn/mod.rs` → `probe`).
fn module_of(src: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()?
        .as_os_str()
        .to_string_lossy()
        .to_string();
    let m = first.strip_suffix(".rs").unwrap_or(&first).to_string();
    (!matches!(m.as_str(), "lib" | "main" | "bin")).then_some(m)
}

/// The modules named by `crate::NAME` in the code.
fn imports(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().last();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue; // some_crate::, $crate::
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
    // `use crate::{a, b::c}`: the first name of each item inside the braces
    for (i, _) in code.match_indices("crate::{") {
        let inner = &code[i + "crate::{".len()..];
        let mut depth = 1;
        let mut item = String::new();
        let mut items = Vec::new();
        for c in inner.chars() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 1 => items.push(std::mem::take(&mut item)),
                _ => {}
            }
            if depth == 0 {
                items.push(std::mem::take(&mut item));
                break;
            }
            item.push(c);
        }
        for it in items {
            let name: String = it
                .trim_start_matches([',', ' ', '\n', '\t'])
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && name != "self" {
                out.insert(name);
            }
        }
    }
    out
}

struct Tree {
    /// module → modules it imports (itself left out)
    edges: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
    /// files over MAX_LINES lines of code
    long: Vec<(String, usize)>,
}

fn read_tree() -> Tree {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut edges: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    let mut long = Vec::new();
    for path in files {
        let text = fs::read_to_string(&path).unwrap();
        let Some(code) = code_of(&path, &text) else {
            continue;
        };
        let shown = path.strip_prefix(&src).unwrap().display().to_string();
        let n = code.lines().count();
        if n > MAX_LINES {
            long.push((shown.clone(), n));
        }
        let Some(module) = module_of(&src, &path) else {
            continue;
        };
        let entry = edges.entry(module.clone()).or_default();
        for m in imports(&code) {
            if m != module && m != "VERSION" {
                entry.entry(m).or_default().insert(shown.clone());
            }
        }
    }
    Tree { edges, long }
}

#[test]
fn every_module_has_a_layer() {
    let tree = read_tree();
    let missing: Vec<_> = tree
        .edges
        .keys()
        .filter(|m| layer_of(m).is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "modules of src/ in no layer of tests/architecture.rs: {missing:?}"
    );
}

#[test]
fn imports_run_only_down_or_across() {
    let tree = read_tree();
    let mut up = Vec::new();
    for (from, tos) in &tree.edges {
        let Some(lf) = layer_of(from) else { continue };
        for (to, files) in tos {
            match layer_of(to) {
                Some(lt) if lt > lf => up.push(format!("{from} → {to} ({files:?})")),
                _ => {}
            }
        }
    }
    assert!(
        up.is_empty(),
        "imports running up a layer:\n{}",
        up.join("\n")
    );
}

#[test]
fn no_cycle_between_modules() {
    let tree = read_tree();
    // depth-first search over the module graph
    fn visit<'a>(
        m: &'a str,
        edges: &'a BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
        state: &mut BTreeMap<&'a str, u8>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        match state.get(m) {
            Some(2) => return None,
            Some(1) => {
                let start = path.iter().position(|p| *p == m).unwrap();
                let mut cycle: Vec<String> = path[start..].iter().map(|s| s.to_string()).collect();
                cycle.push(m.to_string());
                return Some(cycle);
            }
            _ => {}
        }
        state.insert(m, 1);
        path.push(m);
        if let Some(tos) = edges.get(m) {
            for to in tos.keys() {
                if edges.contains_key(to.as_str()) {
                    if let Some(c) = visit(to, edges, state, path) {
                        return Some(c);
                    }
                }
            }
        }
        path.pop();
        state.insert(m, 2);
        None
    }
    let mut state = BTreeMap::new();
    for m in tree.edges.keys() {
        let mut path = Vec::new();
        if let Some(cycle) = visit(m, &tree.edges, &mut state, &mut path) {
            panic!("a cycle of imports: {}", cycle.join(" → "));
        }
    }
}

#[test]
fn no_file_is_over_800_lines_of_code() {
    let tree = read_tree();
    assert!(
        tree.long.is_empty(),
        "files of src/ over {MAX_LINES} lines of code (tests aside): {:?}",
        tree.long
    );
}

#[test]
fn the_reader_sees_imports_in_every_form() {
    let code = "use crate::net::{self, Waker};\nuse crate::{icmp::Phase, probe};\n\
                let x = crate::stats::Series::new();\nmacro_rules! m { () => { $crate::x } }\n";
    let got = imports(code);
    let want: BTreeSet<String> = ["net", "icmp", "probe", "stats"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(got, want);
}
