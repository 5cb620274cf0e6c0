//! The files of the Rollout planner (`src/rollout/plan.rs` and
//! `src/rollout/plan/**`) import each other in one direction only: no cycle
//! between files, and every import goes to the same or a lower layer of the
//! table in `plan.rs`'s module doc (mirrored in [`LAYERS`] below).
//!
//! How: each file's code (comments and literals removed) is read for paths
//! into the planner — every `use` tree, expanded, and every `super::…`,
//! `self::…`, `crate::rollout::plan::…` or `child_module::…` path in the
//! code — and each path is resolved to the file of the longest module prefix
//! it names (`super::Action` in `plan/fleets.rs` is an import of `plan.rs`;
//! `super::canary::gate` one of `plan/canary/gate.rs`). The resulting file
//! graph must be acyclic (a cycle is reported with its files) and agree with
//! the layers. Paths through `crate::rollout::` other than
//! `crate::rollout::plan::` are refused: the re-exports in `rollout/mod.rs`
//! would hide an import of `plan.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first. A file may import files of its own layer (the
/// graph being acyclic) and of the layers below. Keep in step with the table
/// in `src/rollout/plan.rs`.
const LAYERS: &[(&str, &[&str])] = &[
    // Declaration-only module files: they import nothing.
    (
        "declarations",
        &["canary/mod.rs", "post_promotion/mod.rs", "gates/mod.rs"],
    ),
    (
        "vocabulary",
        &[
            "observed.rs",
            "action.rs",
            "builder.rs",
            "records.rs",
            "analysis_spec.rs",
            "windows.rs",
        ],
    ),
    ("names", &["names.rs"]),
    ("world", &["world.rs"]),
    ("input", &["ctx.rs"]),
    (
        "decide",
        &[
            "operations.rs",
            "state.rs",
            "deadline.rs",
            "auto_promotion.rs",
            "gates/render.rs",
            "gates/http.rs",
            "gates/verdict.rs",
            "gates/pre_promotion.rs",
            "gates/after_switch.rs",
            "canary/gate.rs",
            "post_promotion/verdict.rs",
            "decide.rs",
        ],
    ),
    (
        "act",
        &[
            "traffic.rs",
            "restart.rs",
            "fleets.rs",
            "pod_metadata.rs",
            "workload.rs",
            "canary/fleets.rs",
            "post_promotion/analysis.rs",
            "gates/job.rs",
            "analysis_history.rs",
        ],
    ),
    (
        "status",
        &[
            "status.rs",
            "status/canary.rs",
            "status/gates.rs",
            "status/counters.rs",
            "status/history.rs",
            "status/paused.rs",
            "status/phase.rs",
            "status/refused.rs",
        ],
    ),
    ("pipeline", &["plan.rs"]),
];

#[test]
fn the_planner_files_import_each_other_in_one_direction() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/rollout");
    let files = planner_files(&root);
    assert!(
        files.len() > 10,
        "found only {:?} under {}",
        files.keys(),
        root.display()
    );
    let graph = match imports(&files) {
        Ok(graph) => graph,
        Err(problems) => panic!("{}", problems.join("\n")),
    };
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import cycle between planner files: {}", cycle.join(" -> "));
    }
    let problems = layer_problems(&graph);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The checker itself finds a cycle, and one through the root file.
#[test]
fn the_check_sees_a_back_import() {
    let files = BTreeMap::from([
        (
            "plan.rs".to_owned(),
            "mod a;\nmod b;\nuse b::thing;\n".to_owned(),
        ),
        ("a.rs".to_owned(), "use super::b::{self, X};\n".to_owned()),
        ("b.rs".to_owned(), "fn f() { super::a::g(); }\n".to_owned()),
    ]);
    let graph = imports(&files).expect("resolvable");
    let cycle = find_cycle(&graph).expect("a <-> b is a cycle");
    assert!(cycle.contains(&"a.rs".to_owned()) && cycle.contains(&"b.rs".to_owned()));

    let files = BTreeMap::from([
        ("plan.rs".to_owned(), "mod a;\nuse a::A;\n".to_owned()),
        (
            "a.rs".to_owned(),
            "// use super::Builder; is only a comment\nuse super::{Builder};\n".to_owned(),
        ),
    ]);
    let graph = imports(&files).expect("resolvable");
    assert!(find_cycle(&graph).is_some(), "a child importing plan.rs");

    let files = BTreeMap::from([
        ("plan.rs".to_owned(), "mod a;\n".to_owned()),
        (
            "a.rs".to_owned(),
            "use crate::rollout::Observed;\n".to_owned(),
        ),
    ]);
    assert!(imports(&files).is_err(), "the crate::rollout back door");
}

/// `src/rollout/plan.rs` and every `.rs` under `src/rollout/plan/`, keyed by
/// their path relative to `plan/` (`plan.rs` for the root).
fn planner_files(root: &Path) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{e}"));
    files.insert("plan.rs".to_owned(), read(&root.join("plan.rs")));
    let mut stack: Vec<PathBuf> = vec![root.join("plan")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{e}")) {
            let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path.strip_prefix(root.join("plan")).unwrap_or(&path);
                let key = relative.to_string_lossy().replace('\\', "/");
                files.insert(key, read(&path));
            }
        }
    }
    files
}

/// The module path (below `plan`) a file holds.
fn module_of(file: &str) -> Vec<String> {
    if file == "plan.rs" {
        return Vec::new();
    }
    let stem = file
        .strip_suffix("/mod.rs")
        .or_else(|| file.strip_suffix(".rs"))
        .unwrap_or(file);
    stem.split('/').map(str::to_owned).collect()
}

/// file -> the planner files it imports (itself excluded).
fn imports(
    files: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, BTreeSet<String>>, Vec<String>> {
    let modules: BTreeMap<Vec<String>, String> =
        files.keys().map(|f| (module_of(f), f.clone())).collect();
    let mut graph = BTreeMap::new();
    let mut problems = Vec::new();
    for (file, text) in files {
        let here = module_of(file);
        let code = strip_comments_and_literals(text);
        let children: BTreeSet<String> = modules
            .keys()
            .filter(|m| m.len() == here.len() + 1 && m.starts_with(&here))
            .filter_map(|m| m.last().cloned())
            .collect();
        let mut targets = BTreeSet::new();
        for path in paths(&code) {
            let Some(absolute) = resolve(&here, &children, &path) else {
                if path.first().map(String::as_str) == Some("crate")
                    && path.get(1).map(String::as_str) == Some("rollout")
                {
                    problems.push(format!(
                        "{file}: `{}` reaches the planner through crate::rollout; import from the planner file itself",
                        path.join("::")
                    ));
                }
                continue;
            };
            let target = (0..=absolute.len())
                .rev()
                .find_map(|n| modules.get(&absolute[..n]))
                .cloned();
            match target {
                Some(target) if target != *file => {
                    targets.insert(target);
                }
                Some(_) => {}
                None => problems.push(format!("{file}: `{}` names no file", path.join("::"))),
            }
        }
        graph.insert(file.clone(), targets);
    }
    if problems.is_empty() {
        Ok(graph)
    } else {
        Err(problems)
    }
}

/// A path as written in `here`, as a path below `plan`; None when it leads
/// outside the planner (std, other crates, other modules of the crate).
fn resolve(here: &[String], children: &BTreeSet<String>, path: &[String]) -> Option<Vec<String>> {
    let first = path.first()?.as_str();
    match first {
        "crate" => {
            let rest =
                path.strip_prefix(&["crate".to_owned(), "rollout".to_owned(), "plan".to_owned()])?;
            Some(rest.to_vec())
        }
        "super" | "self" => {
            let mut module = here.to_vec();
            let mut rest = path;
            while let Some((head, tail)) = rest.split_first() {
                match head.as_str() {
                    // `super` above `plan` leaves the planner.
                    "super" => {
                        module.pop()?;
                    }
                    "self" => {}
                    _ => break,
                }
                rest = tail;
            }
            module.extend(rest.iter().cloned());
            Some(module)
        }
        // Relative to the current module: only its own child modules count.
        name if children.contains(name) => {
            let mut module = here.to_vec();
            module.extend(path.iter().cloned());
            Some(module)
        }
        _ => None,
    }
}

/// Every path in the code: each `use` tree expanded, plus every `a::b` path
/// elsewhere (`super::x::f()`, `status::build(..)` in a module's parent).
fn paths(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = code;
    let mut outside_use = String::new();
    while let Some(at) = find_use(rest) {
        outside_use.push_str(&rest[..at]);
        let after = &rest[at + 3..];
        let end = after.find(';').unwrap_or(after.len());
        expand(&after[..end], &mut Vec::new(), &mut out);
        rest = after.get(end + 1..).unwrap_or("");
    }
    outside_use.push_str(rest);
    for token in outside_use.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')) {
        let segments: Vec<String> = token
            .split("::")
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        // `resolve` keeps those that lead into the planner.
        if segments.len() > 1 {
            out.push(segments);
        }
    }
    out
}

/// The byte offset of the next `use` keyword (a whole word).
fn find_use(code: &str) -> Option<usize> {
    let bytes = code.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut from = 0;
    while let Some(i) = code[from..].find("use") {
        let at = from + i;
        let before_ok = at == 0 || !is_ident(bytes[at - 1]);
        let after_ok = bytes.get(at + 3).is_none_or(|b| b.is_ascii_whitespace());
        if before_ok && after_ok {
            return Some(at);
        }
        from = at + 3;
    }
    None
}

/// Expands a use tree (`a::{b, c::{d, self}}`) into full paths under `prefix`.
fn expand(tree: &str, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let tree = tree.trim();
    if tree.is_empty() {
        return;
    }
    for part in split_top_level(tree) {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let depth = prefix.len();
        match part.find('{') {
            Some(open) => {
                let head = part[..open].trim().trim_end_matches("::");
                push_segments(head, prefix);
                let inner = part[open + 1..].trim_end().trim_end_matches('}');
                expand(inner, prefix, out);
            }
            None => {
                let name = part.split(" as ").next().unwrap_or(part).trim();
                push_segments(name, prefix);
                if prefix.last().is_some_and(|s| s == "self") {
                    prefix.pop();
                }
                if prefix.last().is_some_and(|s| s == "*") {
                    prefix.pop();
                }
                out.push(prefix.clone());
            }
        }
        prefix.truncate(depth);
    }
}

fn push_segments(path: &str, prefix: &mut Vec<String>) {
    prefix.extend(
        path.split("::")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
    );
}

/// Splits at commas outside braces.
fn split_top_level(tree: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in tree.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&tree[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&tree[start..]);
    parts
}

/// The code without comments, string and char literals (so a path in a doc
/// comment or a message is not an import). Lifetimes are kept.
fn strip_comments_and_literals(text: &str) -> String {
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
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !prev_is_ident(&chars, i)
        {
            // Raw string: r"…" or r#"…"#.
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
            while j < chars.len() {
                if chars[j] == '"' && (0..hashes).all(|k| chars.get(j + 1 + k) == Some(&'#')) {
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
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            if next == Some('\\') {
                let mut j = i + 2;
                while j < chars.len() && chars[j] != '\'' {
                    j += 1;
                }
                i = j + 1;
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

fn prev_is_ident(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
}

/// A cycle in the graph, as the files along it (first = last), if any.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        marks: &mut BTreeMap<String, Mark>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        marks.insert(node.to_owned(), Mark::Open);
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            match marks.get(next).copied().unwrap_or(Mark::New) {
                Mark::Open => {
                    let from = stack.iter().position(|n| n == next).unwrap_or(0);
                    let mut cycle = stack[from..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(cycle) = visit(next, graph, marks, stack) {
                        return Some(cycle);
                    }
                }
                Mark::Done => {}
            }
        }
        stack.pop();
        marks.insert(node.to_owned(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in graph.keys() {
        if marks.get(node).copied().unwrap_or(Mark::New) == Mark::New {
            let mut stack = Vec::new();
            if let Some(cycle) = visit(node, graph, &mut marks, &mut stack) {
                return Some(cycle);
            }
        }
    }
    None
}

/// Files missing from [`LAYERS`] (or listed but gone), and imports of a
/// higher layer.
fn layer_problems(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let layer: BTreeMap<&str, (usize, &str)> = LAYERS
        .iter()
        .enumerate()
        .flat_map(|(n, (name, files))| files.iter().map(move |f| (*f, (n, *name))))
        .collect();
    let mut problems = Vec::new();
    for file in graph.keys() {
        if !layer.contains_key(file.as_str()) {
            problems.push(format!(
                "{file} is in no layer: add it to LAYERS here and to the table in src/rollout/plan.rs"
            ));
        }
    }
    for file in layer.keys() {
        if !graph.contains_key(*file) {
            problems.push(format!("LAYERS names {file}, which does not exist"));
        }
    }
    for (file, targets) in graph {
        let Some(&(from, from_name)) = layer.get(file.as_str()) else {
            continue;
        };
        for target in targets {
            if let Some(&(to, to_name)) = layer.get(target.as_str())
                && to > from
            {
                problems.push(format!(
                    "{file} ({from_name}) imports {target} ({to_name}), a higher layer"
                ));
            }
        }
    }
    problems
}
