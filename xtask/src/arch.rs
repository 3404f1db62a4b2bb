//! `cargo xtask arch`: the shape of the server crate in numbers — lines per module, the
//! dependency graph between its top-level modules (and any cycles in it), string literals
//! that spell a domain value instead of naming an enum variant, and the longest functions.
//!
//! It reads the sources as text (rustfmt-formatted code: a function ends at the first `}`
//! back at its own indentation), so it also works on an old checkout (`--root`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Wire names of domain values (task and step statuses, event kinds, transaction types,
/// provider kinds) that code should reach through their enums, not spell.
const DOMAIN_WORDS: &[&str] = &[
    "pending",
    "queued",
    "running",
    "completed",
    "failed",
    "cancelled",
    "skipped",
    "step_started",
    "step_completed",
    "progress",
    "queue_position",
    "purchase",
    "spend",
    "refund",
    "bonus",
    "admin_adjust",
    "reserve",
    "release",
    "local",
    "openai",
    "fal",
    "tripo",
];

/// One source file of the crate: its top-level module and its non-test text.
struct Source {
    path: PathBuf,
    module: String,
    text: String,
}

/// What the report found; `cycles` is what `--check` fails on.
pub struct Report {
    pub text: String,
    pub cycles: Vec<Vec<String>>,
}

pub fn report(root: &Path) -> Result<Report> {
    let src = root.join("api/src");
    let mut files = Vec::new();
    collect(&src, &mut files)?;
    files.sort();
    let mut sources = Vec::new();
    for path in files {
        let rel = path.strip_prefix(&src).expect("under src").to_path_buf();
        let first = rel.components().next().expect("a file").as_os_str().to_string_lossy().into_owned();
        let module = first.trim_end_matches(".rs").to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        let full = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        sources.push(Source { path: rel, module, text: strip_tests(&full) });
    }

    let mut out = String::new();
    // Lines per top-level module (non-test code).
    let mut lines: BTreeMap<&str, usize> = BTreeMap::new();
    for s in &sources {
        *lines.entry(&s.module).or_default() += s.text.lines().count();
    }
    let total: usize = lines.values().sum();
    writeln!(out, "lines per module (api/src, without test modules): {total} in all")?;
    let mut by_size: Vec<_> = lines.iter().collect();
    by_size.sort_by_key(|m| std::cmp::Reverse(*m.1));
    for (m, n) in &by_size {
        writeln!(out, "  {n:>6}  {m}")?;
    }

    // The module graph.
    let modules: BTreeSet<String> = sources.iter().map(|s| s.module.clone()).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = modules.iter().map(|m| (m.clone(), BTreeSet::new())).collect();
    for s in &sources {
        for target in references(&s.text, &modules) {
            if target != s.module {
                graph.get_mut(&s.module).expect("known").insert(target);
            }
        }
    }
    writeln!(out, "\nmodule dependencies (top-level modules of api/src):")?;
    for (m, deps) in &graph {
        writeln!(out, "  {m} -> {}", deps.iter().cloned().collect::<Vec<_>>().join(", "))?;
    }
    let cycles = strongly_connected(&graph).into_iter().filter(|c| c.len() > 1).collect::<Vec<_>>();
    if cycles.is_empty() {
        writeln!(out, "\ncycles: none")?;
    } else {
        writeln!(out, "\ncycles: {} (strongly connected groups of modules)", cycles.len())?;
        for c in &cycles {
            writeln!(out, "  {}", c.join(" <-> "))?;
        }
    }

    // Domain values spelled as strings.
    let mut spelled: BTreeMap<String, usize> = BTreeMap::new();
    let mut spelled_total = 0;
    for s in &sources {
        let n = DOMAIN_WORDS.iter().map(|w| s.text.matches(&format!("\"{w}\"")).count()).sum::<usize>();
        if n > 0 {
            spelled.insert(s.path.display().to_string(), n);
            spelled_total += n;
        }
    }
    writeln!(out, "\ndomain values written as string literals (\"queued\", \"local\", …): {spelled_total}")?;
    let mut spelled: Vec<_> = spelled.into_iter().collect();
    spelled.sort_by_key(|s| std::cmp::Reverse(s.1));
    for (file, n) in spelled.iter().take(12) {
        writeln!(out, "  {n:>4}  {file}")?;
    }
    let codes = sources.iter().map(|s| error_code_literals(&s.text)).sum::<usize>();
    writeln!(out, "error codes written as string literals where errors are made (\"NOT_FOUND\", …): {codes}")?;

    // Longest functions.
    let mut fns = Vec::new();
    for s in &sources {
        functions(&s.text, &s.path, &mut fns);
    }
    fns.sort_by_key(|f| std::cmp::Reverse(f.0));
    writeln!(out, "\nlongest functions (lines):")?;
    for (n, name) in fns.iter().take(12) {
        writeln!(out, "  {n:>4}  {name}")?;
    }
    let over_80 = fns.iter().filter(|(n, _)| *n > 80).count();
    writeln!(out, "functions over 80 lines: {over_80} of {}", fns.len())?;
    Ok(Report { text: out, cycles })
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, files)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    Ok(())
}

/// The file without its `#[cfg(test)] mod … { … }` blocks (they end at a `}` in column 0).
fn strip_tests(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim() == "#[cfg(test)]" && lines.peek().is_some_and(|next| next.starts_with("mod ")) {
            for inner in lines.by_ref() {
                if inner == "}" {
                    break;
                }
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The top-level modules a file names through `crate::` (also `$crate::` and grouped
/// `use crate::{a, b::c}`), without comments.
fn references(text: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            if let Some(group) = after.strip_prefix('{') {
                // A grouped import may span lines; the first line names enough for most, and
                // the lines that follow start with the module names themselves.
                for part in group.split(',') {
                    let name: String = part.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                    if modules.contains(&name) {
                        found.insert(name);
                    }
                }
            } else {
                let name: String = after.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if modules.contains(&name) {
                    found.insert(name);
                }
            }
            rest = after;
        }
    }
    // Continuation lines of multi-line `use crate::{` groups.
    let mut in_group = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("use crate::{")
            || t.starts_with("pub use crate::{")
            || t.starts_with("pub(crate) use crate::{")
        {
            in_group = !t.ends_with("};");
            continue;
        }
        if in_group {
            for part in t.split(',') {
                let name: String = part.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if modules.contains(&name) {
                    found.insert(name);
                }
            }
            if t.ends_with("};") {
                in_group = false;
            }
        }
    }
    found
}

/// String literals that look like error codes (`"UPPER_CASE"`) where an error is made or
/// its code compared (the line or the one before mentions `AppError`, `code` or `refuse`),
/// so environment variable names and Redis commands do not count.
fn error_code_literals(text: &str) -> usize {
    let lines: Vec<&str> = text.lines().collect();
    let mut n = 0;
    for (i, line) in lines.iter().enumerate() {
        let context = |l: &str| l.contains("AppError") || l.contains("code") || l.contains("refuse(");
        if !(context(line) || i > 0 && context(lines[i - 1])) {
            continue;
        }
        for piece in line.split('"').skip(1).step_by(2) {
            let is_code = piece.len() >= 4
                && piece.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                && piece.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            if is_code {
                n += 1;
            }
        }
    }
    n
}

/// Every `fn` with a body: (lines, "path:name").
fn functions(text: &str, path: &Path, out: &mut Vec<(usize, String)>) {
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        let indent = line.len() - t.len();
        let Some(at) = t.find("fn ") else { continue };
        let head = &t[..at];
        let is_fn = head.split_whitespace().all(|w| {
            matches!(w, "pub" | "async" | "const" | "unsafe" | "extern" | "pub(crate)" | "pub(super)")
                || w.starts_with("pub(")
        });
        if !is_fn || t.starts_with("//") {
            continue;
        }
        let name: String = t[at + 3..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        if name.is_empty() {
            continue;
        }
        // A declaration without a body ends with `;` before any `{`.
        let mut end = None;
        let mut opened = false;
        for (j, l) in lines.iter().enumerate().skip(i) {
            if !opened {
                if l.trim_end().ends_with(';') && !l.contains('{') {
                    break;
                }
                if l.contains('{') {
                    opened = true;
                    if l.trim_end().ends_with('}') && j == i && !l.trim_end().ends_with("{}") {
                        end = Some(j);
                        break;
                    }
                }
            }
            if opened && j > i {
                let lt = l.trim_start();
                if l.len() - lt.len() == indent && lt.starts_with('}') {
                    end = Some(j);
                    break;
                }
            }
        }
        if let Some(end) = end {
            out.push((end - i + 1, format!("{}:{name}", path.display())));
        }
    }
}

/// Tarjan's strongly connected components, each sorted, in name order.
fn strongly_connected(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        let graph = s.graph;
        for w in &graph[v] {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut group = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                group.push(w.to_string());
                if w == v {
                    break;
                }
            }
            group.sort();
            s.out.push(group);
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out.sort();
    s.out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_cycle_and_its_members() {
        let g: BTreeMap<String, BTreeSet<String>> =
            [("a", vec!["b"]), ("b", vec!["c"]), ("c", vec!["a", "d"]), ("d", vec![])]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
                .collect();
        let sccs = strongly_connected(&g);
        assert!(sccs.contains(&vec!["a".to_string(), "b".to_string(), "c".to_string()]));
        assert!(sccs.contains(&vec!["d".to_string()]));
    }

    #[test]
    fn reads_references_and_function_lengths() {
        let modules: BTreeSet<String> = ["store", "events", "tasks"].into_iter().map(String::from).collect();
        let text = "use crate::{store::Store, events};\nuse crate::{\n    tasks::run,\n};\n// crate::nothing\n";
        let refs = references(text, &modules);
        assert_eq!(refs, modules);
        let code = "pub async fn a() {\n    x();\n}\n\nfn b();\n";
        let mut fns = Vec::new();
        functions(code, Path::new("f.rs"), &mut fns);
        assert_eq!(fns, vec![(3, "f.rs:a".to_string())]);
    }

    /// The server crate's top-level modules form no dependency cycle.
    #[test]
    fn the_server_modules_have_no_cycles() {
        let report = report(&crate::workspace_root()).expect("report");
        assert!(report.cycles.is_empty(), "module cycles:\n{}", report.text);
    }
}
