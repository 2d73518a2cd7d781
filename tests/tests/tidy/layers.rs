//! Layer order and import cycles between a crate's top-level modules, read from
//! `use crate::` / `use super::` and inline `crate::x::y` paths.

use std::collections::{BTreeMap, BTreeSet};

use crate::allowlist;
use crate::source::{Module, Tree};

/// Central's layers, lowest first: a module may import only modules of its own
/// or a lower layer.
const CENTRAL: &[&[&str]] = &[
    &["error"],
    &["config"],
    &["clock"],
    &["tokens"],
    &["keys"],
    &["jitter"],
    &["init"],
    &["store"],
    &["packaging"],
    &["delta"],
    &["links"],
    &["state"],
    &["domain"],
    &["api", "quic", "server"],
    &["serve"],
    &["bin"],
];

/// The pure core's layers: parsing and ids; values built on them; the info
/// document, its signing and the key set that says which keys may sign; the domain rules; the wire types (serde DTOs that
/// carry domain values); what is computed into wire types (reports, the relay
/// protocol).
const COMMON: &[&[&str]] = &[
    &[
        "grammar",
        "ids",
        "status",
        "fragment",
        "delta",
        "layout",
        "http_range",
    ],
    &["errors"],
    &["units", "constraint", "subnet"],
    &["info"],
    &["signing"],
    &["keyset"],
    &["jobs", "groups", "power", "replication", "deployment"],
    &["eviction", "activation"],
    &["wire"],
    &["protocol", "coverage", "stats"],
];

/// Today's imports that close a cycle or go against the layer order (crate,
/// from, to). May only shrink; empty now.
const KNOWN_BACK_EDGES: &[(&str, &str, &str)] = &[];

/// The crates whose cycles are checked (layers only where declared above; the
/// `tests` crate is all test code).
const CYCLE_CRATES: &[&str] = &["common", "io", "central", "relay", "agent", "cli"];

/// An import from one top-level module to another, with the file and path that make it.
#[derive(Debug, Clone)]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub file: String,
    pub path: String,
}

/// The edges between a crate's top-level modules (not tests, not the crate
/// root; paths to root items such as re-exports are not module edges).
pub fn edges(modules: &[Module<'_>], krate: &str) -> Vec<Edge> {
    let mine: Vec<&Module<'_>> = modules.iter().filter(|m| m.krate == krate).collect();
    let tops: BTreeSet<&str> = mine.iter().filter_map(|m| m.top()).collect();
    let mut out = Vec::new();
    for m in &mine {
        let Some(from) = m.top() else { continue };
        for path in m.imports() {
            let Some(to) = path.first() else { continue };
            if to == from || !tops.contains(to.as_str()) {
                continue;
            }
            out.push(Edge {
                from: from.to_owned(),
                to: to.clone(),
                file: m.file.path.clone(),
                path: format!("crate::{}", path.join("::")),
            });
        }
    }
    out
}

fn is_known(krate: &str, e: &Edge, known: &[(&str, &str, &str)]) -> bool {
    known
        .iter()
        .any(|(k, f, t)| *k == krate && *f == e.from && *t == e.to)
}

/// Imports that go up the layer order, and modules missing from it.
pub fn layer_violations(
    modules: &[Module<'_>],
    krate: &str,
    layers: &[&[&str]],
    known: &[(&str, &str, &str)],
) -> Vec<String> {
    let layer_of = |m: &str| layers.iter().position(|l| l.contains(&m));
    let mut problems = BTreeSet::new();
    for m in modules.iter().filter(|m| m.krate == krate) {
        if let Some(top) = m.top() {
            if layer_of(top).is_none() {
                problems.insert(format!(
                    "{krate}: module `{top}` ({}) is in no layer: add it to the layer table",
                    m.file.path
                ));
            }
        }
    }
    for e in edges(modules, krate) {
        if is_known(krate, &e, known) {
            continue;
        }
        if let (Some(from), Some(to)) = (layer_of(&e.from), layer_of(&e.to)) {
            if to > from {
                problems.insert(format!(
                    "{krate}: `{}` imports the higher layer `{}` ({}: {})",
                    e.from, e.to, e.file, e.path
                ));
            }
        }
    }
    problems.into_iter().collect()
}

/// Each cycle among a crate's top-level modules, with the imports that make it.
pub fn cycles(modules: &[Module<'_>], krate: &str, known: &[(&str, &str, &str)]) -> Vec<String> {
    let mut graph: BTreeMap<String, BTreeMap<String, Edge>> = BTreeMap::new();
    for e in edges(modules, krate) {
        if !is_known(krate, &e, known) {
            graph
                .entry(e.from.clone())
                .or_default()
                .entry(e.to.clone())
                .or_insert(e);
        }
    }
    let mut reported: BTreeSet<BTreeSet<String>> = BTreeSet::new();
    let mut problems = Vec::new();
    for start in graph.keys() {
        let Some(cycle) = shortest_cycle(&graph, start) else {
            continue;
        };
        let members: BTreeSet<String> = cycle.iter().cloned().collect();
        if !reported.insert(members) {
            continue;
        }
        let steps: Vec<String> = cycle
            .iter()
            .zip(cycle.iter().skip(1).chain(std::iter::once(&cycle[0])))
            .map(|(a, b)| {
                let e = &graph[a][b];
                format!("{a} -> {b} ({}: {})", e.file, e.path)
            })
            .collect();
        problems.push(format!("{krate}: import cycle: {}", steps.join("; ")));
    }
    problems
}

/// The shortest path from `start` back to itself, as its nodes in order.
fn shortest_cycle(
    graph: &BTreeMap<String, BTreeMap<String, Edge>>,
    start: &str,
) -> Option<Vec<String>> {
    let mut parent: BTreeMap<String, String> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start.to_owned()]);
    while let Some(node) = queue.pop_front() {
        for next in graph.get(&node).into_iter().flat_map(|n| n.keys()) {
            if next == start {
                let mut path = vec![node.clone()];
                let mut at = node.clone();
                while let Some(p) = parent.get(&at) {
                    path.push(p.clone());
                    at = p.clone();
                }
                path.reverse();
                return Some(path);
            }
            if !parent.contains_key(next) && next != start {
                parent.insert(next.clone(), node.clone());
                queue.push_back(next.clone());
            }
        }
    }
    None
}

/// Known back edges that no longer exist (their entries must go).
pub fn stale_known(modules: &[Module<'_>], known: &[(&str, &str, &str)]) -> Vec<String> {
    known
        .iter()
        .filter(|(k, f, t)| !edges(modules, k).iter().any(|e| e.from == *f && e.to == *t))
        .map(|(k, f, t)| {
            format!("{k}: {f} -> {t} is a known back edge but no longer exists: remove it")
        })
        .collect()
}

#[test]
fn central_and_common_keep_their_layers() {
    let tree = Tree::workspace();
    let modules = tree.modules();
    let mut problems = layer_violations(&modules, "central", CENTRAL, KNOWN_BACK_EDGES);
    problems.extend(layer_violations(
        &modules,
        "common",
        COMMON,
        KNOWN_BACK_EDGES,
    ));
    problems.extend(stale_known(&modules, KNOWN_BACK_EDGES));
    assert!(
        edges(&modules, "central").len() > 20,
        "the import parser found almost no edges in central"
    );
    allowlist::assert_none(&problems);
}

#[test]
fn no_crate_has_an_import_cycle() {
    let tree = Tree::workspace();
    let modules = tree.modules();
    let problems: Vec<String> = CYCLE_CRATES
        .iter()
        .flat_map(|k| cycles(&modules, k, KNOWN_BACK_EDGES))
        .collect();
    allowlist::assert_none(&problems);
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAYERS: &[&[&str]] = &[&["error"], &["store"], &["domain"], &["api"]];

    fn tree() -> Tree {
        Tree::of(&[
            ("central/src/lib.rs", "pub mod api; pub mod domain;\npub use domain::Thing;"),
            ("central/src/error.rs", "pub enum CentralError {}"),
            ("central/src/store/mod.rs", "use crate::error::CentralError;\npub mod jobs;"),
            (
                "central/src/store/jobs.rs",
                "use super::{encode, Result};\nfn f() { crate::error::x(); }",
            ),
            (
                "central/src/domain/rules/edit.rs",
                // A multi-line group, a nested group, an inline path and a test module.
                "use crate::{\n    error::CentralError,\n    store::{jobs::{self, latest}, Store},\n};\n\
                 fn f() { let _ = crate::store::jobs::latest(&[]); }\n\
                 #[cfg(test)]\nmod tests {\n    use crate::api::app;\n}\n",
            ),
            ("central/src/api/mod.rs", "use crate::domain::rules;\nuse crate::Central;"),
            ("central/src/api/tests.rs", "use crate::serve::run;"),
        ])
    }

    #[test]
    fn imports_are_read_from_groups_super_and_inline_paths() {
        let tree = tree();
        let modules = tree.modules();
        let edit = modules
            .iter()
            .find(|m| m.file.path.ends_with("edit.rs"))
            .unwrap();
        assert_eq!(edit.path, ["domain", "rules", "edit"]);
        let imports: Vec<String> = edit.imports().iter().map(|p| p.join("::")).collect();
        assert_eq!(
            imports,
            [
                "error::CentralError",
                "store::jobs",
                "store::jobs::latest",
                "store::Store",
                "store::jobs::latest"
            ]
        );
        let jobs = modules
            .iter()
            .find(|m| m.file.path.ends_with("jobs.rs"))
            .unwrap();
        let imports: Vec<String> = jobs.imports().iter().map(|p| p.join("::")).collect();
        assert_eq!(imports, ["store::encode", "store::Result", "error::x"]);
    }

    #[test]
    fn a_clean_tree_keeps_its_layers() {
        let tree = tree();
        assert_eq!(
            layer_violations(&tree.modules(), "central", LAYERS, &[]),
            Vec::<String>::new()
        );
        assert!(cycles(&tree.modules(), "central", &[]).is_empty());
    }

    #[test]
    fn an_import_up_the_layers_is_reported() {
        let mut tree = tree();
        tree.rust.push(crate::source::SourceFile {
            path: "central/src/store/power.rs".into(),
            text: "fn f() { crate::domain::rules::edit::go(); }".into(),
        });
        let problems = layer_violations(&tree.modules(), "central", LAYERS, &[]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("`store` imports the higher layer `domain`"));
        assert!(problems[0].contains("central/src/store/power.rs"));
        // Allowlisting the edge silences it.
        let known = [("central", "store", "domain")];
        assert!(layer_violations(&tree.modules(), "central", LAYERS, &known).is_empty());
    }

    #[test]
    fn a_module_in_no_layer_is_reported() {
        let mut tree = tree();
        tree.rust.push(crate::source::SourceFile {
            path: "central/src/misc.rs".into(),
            text: String::new(),
        });
        let problems = layer_violations(&tree.modules(), "central", LAYERS, &[]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("`misc`"));
    }

    #[test]
    fn an_import_cycle_is_reported_with_its_imports() {
        let tree = Tree::of(&[
            ("relay/src/a.rs", "use crate::b::B;"),
            ("relay/src/b.rs", "use crate::{c::C};"),
            ("relay/src/c.rs", "fn f() { crate::a::go() }"),
            ("relay/src/d.rs", "use crate::a;"),
        ]);
        let problems = cycles(&tree.modules(), "relay", &[]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("a -> b (relay/src/a.rs: crate::b::B)"));
        assert!(problems[0].contains("c -> a (relay/src/c.rs: crate::a::go)"));
        assert!(!problems[0].contains("d ->"));
        assert!(cycles(&tree.modules(), "relay", &[("relay", "c", "a")]).is_empty());
    }

    #[test]
    fn a_known_edge_that_is_gone_is_reported() {
        let tree = tree();
        let problems = stale_known(&tree.modules(), &[("central", "store", "domain")]);
        assert_eq!(problems.len(), 1);
    }
}
