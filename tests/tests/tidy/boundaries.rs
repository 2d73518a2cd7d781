//! Who may name what: HTTP crates only in central's HTTP modules, sled only in
//! central's store, no wire types in the store, and no handler module importing
//! another.

use std::collections::BTreeSet;

use crate::allowlist;
use crate::source::{code, names_crate, names_module, without_tests, Module, Tree};

/// The HTTP stack's crates.
const HTTP_CRATES: &[&str] = &["axum", "hyper", "hyper_util", "tower", "http_body_util"];

/// Central's HTTP modules, the only ones that may name [`HTTP_CRATES`].
fn is_central_http(path: &str) -> bool {
    path.starts_with("central/src/api/")
        || path == "central/src/server.rs"
        || path == "central/src/serve.rs"
}

fn is_central_store(path: &str) -> bool {
    path.starts_with("central/src/store/")
}

/// Outside the store and naming sled today: `CentralError::Store` wraps
/// `sled::Error`. May only shrink.
const SLED_OUTSIDE_STORE: &[&str] = &["central/src/error.rs"];

/// Store files that name wire types today: none, the store keeps its own
/// records (`store/records.rs`) and the domain converts. May only shrink.
const STORE_NAMES_WIRE: &[&str] = &[];

/// Handler modules importing another handler module today. May only shrink.
const HANDLER_IMPORTS: &[&str] = &[];

/// The api modules every handler may import.
const API_SHARED: &[&str] = &["error", "extract"];

/// Non-test files of `tree` that are in `scope`, not `allowed`, and name one of `crates`.
pub fn naming(
    tree: &Tree,
    crates: &[&str],
    scope: impl Fn(&str) -> bool,
    allowed: impl Fn(&str) -> bool,
) -> BTreeSet<String> {
    tree.non_test()
        .filter(|f| scope(&f.path) && !allowed(&f.path))
        .filter(|f| {
            let code = without_tests(&code(&f.text));
            crates.iter().any(|c| names_crate(&code, c))
        })
        .map(|f| f.path.clone())
        .collect()
}

/// Non-test central HTTP offenders.
pub fn http_outside_api(tree: &Tree) -> BTreeSet<String> {
    naming(
        tree,
        HTTP_CRATES,
        |p| p.starts_with("central/src/"),
        is_central_http,
    )
}

/// Non-test files anywhere that name sled outside central's store.
pub fn sled_outside_store(tree: &Tree) -> BTreeSet<String> {
    naming(tree, &["sled"], |_| true, is_central_store)
}

/// Store files that name `wire::` (`sitecast_common::wire::X`, `wire::X`).
pub fn store_naming_wire(tree: &Tree) -> BTreeSet<String> {
    tree.non_test()
        .filter(|f| is_central_store(&f.path))
        .filter(|f| names_module(&without_tests(&code(&f.text)), "wire"))
        .map(|f| f.path.clone())
        .collect()
}

/// `file imports api::other` for each api handler module that imports another
/// api module than [`API_SHARED`] (items of `api/mod.rs`, such as `Shared`, are fine).
pub fn handler_imports(modules: &[Module<'_>]) -> BTreeSet<String> {
    let api_modules: BTreeSet<&str> = modules
        .iter()
        .filter(|m| m.krate == "central" && m.top() == Some("api"))
        .filter_map(|m| m.path.get(1).map(String::as_str))
        .collect();
    let mut out = BTreeSet::new();
    for m in modules.iter().filter(|m| m.krate == "central") {
        let [api, me, ..] = m.path.as_slice() else {
            continue;
        };
        if api != "api" || API_SHARED.contains(&me.as_str()) {
            continue;
        }
        for path in m.imports() {
            let [first, other, ..] = path.as_slice() else {
                continue;
            };
            if first == "api"
                && other != me
                && api_modules.contains(other.as_str())
                && !API_SHARED.contains(&other.as_str())
            {
                out.insert(format!("{} imports api::{other}", m.file.path));
            }
        }
    }
    out
}

#[test]
fn http_crates_only_in_centrals_http_modules() {
    let found = http_outside_api(&Tree::workspace());
    allowlist::assert_none(&allowlist::check(
        "names an HTTP crate outside central's api/, server.rs, serve.rs",
        &found,
        &[],
    ));
}

#[test]
fn sled_only_in_the_store() {
    let found = sled_outside_store(&Tree::workspace());
    allowlist::assert_none(&allowlist::check(
        "names sled outside central/src/store/",
        &found,
        SLED_OUTSIDE_STORE,
    ));
}

#[test]
fn the_store_names_no_wire_types() {
    let found = store_naming_wire(&Tree::workspace());
    allowlist::assert_none(&allowlist::check(
        "the store names wire types",
        &found,
        STORE_NAMES_WIRE,
    ));
}

#[test]
fn no_handler_module_imports_another() {
    let tree = Tree::workspace();
    let found = handler_imports(&tree.modules());
    allowlist::assert_none(&allowlist::check(
        "a handler module imports another",
        &found,
        HANDLER_IMPORTS,
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn http_crates_outside_the_http_modules_are_reported() {
        let tree = Tree::of(&[
            ("central/src/api/mod.rs", "use axum::Router;"),
            ("central/src/server.rs", "use hyper_util::rt::TokioIo;"),
            (
                "central/src/domain/packages.rs",
                "fn f() -> axum::http::StatusCode { todo() }",
            ),
            ("central/src/quic.rs", "use tower::ServiceExt;"),
            // Comments, strings, tests and other paths ending in the name do not count.
            (
                "central/src/store/mod.rs",
                "// axum::Router\nconst X: &str = \"hyper::\";\nuse crate::myaxum::x;\n\
                 #[cfg(test)]\nmod tests { use axum::Router; }",
            ),
            ("central/tests/api.rs", "use axum::Router;"),
        ]);
        assert_eq!(
            http_outside_api(&tree),
            set(&["central/src/domain/packages.rs", "central/src/quic.rs"])
        );
    }

    #[test]
    fn sled_outside_the_store_is_reported() {
        let tree = Tree::of(&[
            ("central/src/store/mod.rs", "use sled::Db;"),
            ("central/src/error.rs", "Store(#[from] sled::Error),"),
            ("relay/src/cache.rs", "fn f(db: &sled::Db) {}"),
            ("central/tests/api.rs", "fn f(db: &sled::Db) {}"),
        ]);
        assert_eq!(
            sled_outside_store(&tree),
            set(&["central/src/error.rs", "relay/src/cache.rs"])
        );
    }

    #[test]
    fn wire_types_in_the_store_are_reported() {
        let tree = Tree::of(&[
            (
                "central/src/store/mod.rs",
                "use sitecast_common::wire::{Package, Relay};",
            ),
            (
                "central/src/store/groups.rs",
                "use sitecast_common::ids::GroupName;",
            ),
            (
                "central/src/store/jobs.rs",
                "fn f(p: sitecast_common::wire::Package) {}",
            ),
            (
                "central/src/domain/jobs.rs",
                "use sitecast_common::wire::Package;",
            ),
        ]);
        assert_eq!(
            store_naming_wire(&tree),
            set(&["central/src/store/jobs.rs", "central/src/store/mod.rs"])
        );
    }

    #[test]
    fn a_handler_importing_another_is_reported() {
        let tree = Tree::of(&[
            (
                "central/src/api/mod.rs",
                "mod agent; mod packages; type Shared = ();",
            ),
            ("central/src/api/error.rs", ""),
            ("central/src/api/extract.rs", "use super::error::ApiError;"),
            (
                "central/src/api/agent.rs",
                "use super::Shared;\nuse super::error::ApiError;\nuse super::extract::Agent;\n\
                 use crate::domain::packages;\nuse super::packages::envelope_response;",
            ),
            (
                "central/src/api/packages.rs",
                "use super::{Shared, extract::Admin};",
            ),
            (
                "central/src/api/rules.rs",
                "fn f() { crate::api::agent::poll(); }",
            ),
        ]);
        assert_eq!(
            handler_imports(&tree.modules()),
            set(&[
                "central/src/api/agent.rs imports api::packages",
                "central/src/api/rules.rs imports api::agent",
            ])
        );
    }
}
