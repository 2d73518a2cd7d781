//! Serde derives in `common` only on wire types (`wire.rs`, `wire/`) and the
//! signed documents.

use std::collections::BTreeSet;

use crate::allowlist;
use crate::source::{code, without_tests, words, Tree};

/// The signed documents, whose JSON shape is part of what is signed.
const SIGNED_DOCUMENTS: &[&str] = &[
    "common/src/info.rs",
    "common/src/keyset.rs",
    "common/src/signing.rs",
];

/// Files of `common` deriving serde outside `wire` today. May only shrink.
const SERDE_OUTSIDE_WIRE: &[&str] = &[
    "common/src/constraint/ip.rs",
    "common/src/constraint/time.rs",
    "common/src/deployment.rs",
    "common/src/groups.rs",
    "common/src/ids.rs",
    "common/src/jobs.rs",
    "common/src/power.rs",
    "common/src/protocol.rs",
    "common/src/status.rs",
    "common/src/units.rs",
];

fn is_wire(path: &str) -> bool {
    path == "common/src/wire.rs" || path.starts_with("common/src/wire/")
}

/// Whether the code has a `#[derive(...)]` naming `Serialize` or `Deserialize`.
pub fn derives_serde(code: &str) -> bool {
    code.match_indices("derive(").any(|(at, _)| {
        let list = &code[at + "derive(".len()..];
        let list = &list[..list.find(')').unwrap_or(list.len())];
        words(list).any(|w| w == "Serialize" || w == "Deserialize")
    })
}

/// Non-test files of `common` outside wire and the signed documents that derive serde.
pub fn serde_outside_wire(tree: &Tree) -> BTreeSet<String> {
    tree.non_test()
        .filter(|f| f.path.starts_with("common/src/"))
        .filter(|f| !is_wire(&f.path) && !SIGNED_DOCUMENTS.contains(&f.path.as_str()))
        .filter(|f| derives_serde(&without_tests(&code(&f.text))))
        .map(|f| f.path.clone())
        .collect()
}

#[test]
fn serde_derives_in_common_only_on_wire_types_and_signed_documents() {
    let found = serde_outside_wire(&Tree::workspace());
    allowlist::assert_none(&allowlist::check(
        "derives serde outside common's wire and signed documents",
        &found,
        SERDE_OUTSIDE_WIRE,
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_serde_derive_outside_wire_is_reported() {
        let tree = Tree::of(&[
            (
                "common/src/wire.rs",
                "#[derive(Debug, Serialize)]\npub struct A;",
            ),
            (
                "common/src/wire/v2.rs",
                "#[derive(Deserialize)]\npub struct B;",
            ),
            (
                "common/src/info.rs",
                "#[derive(Serialize, Deserialize)]\npub struct InfoDoc;",
            ),
            (
                "common/src/jobs.rs",
                "#[derive(\n    Debug,\n    serde::Deserialize,\n)]\npub struct Sequence;",
            ),
            (
                "common/src/units.rs",
                "#[derive(Debug, Clone)]\npub struct Rate;\n// #[derive(Serialize)]",
            ),
            (
                "common/src/status.rs",
                "#[cfg(test)]\nmod tests {\n    #[derive(Serialize)]\n    struct T;\n}",
            ),
            (
                "central/src/store/mod.rs",
                "#[derive(Serialize)]\npub struct R;",
            ),
        ]);
        let found = serde_outside_wire(&tree);
        assert_eq!(
            found.into_iter().collect::<Vec<_>>(),
            ["common/src/jobs.rs"]
        );
    }
}
