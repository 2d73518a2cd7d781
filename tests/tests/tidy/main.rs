//! Tidy checks over the source tree (as rust-analyzer's): the shape the code
//! keeps, each rule a pure function over file paths and texts, unit-tested on a
//! small violating tree in memory and then run on the real one. Where today's
//! code still breaks a rule, an allowlist that may only shrink names it.

#![allow(clippy::unwrap_used)]

mod allowlist;
mod architecture;
mod boundaries;
mod layers;
mod serde_derives;
mod size;
mod source;

use source::Tree;

#[test]
fn every_rust_file_has_a_module_doc() {
    let tree = Tree::workspace();
    assert!(
        tree.rust.len() > 20,
        "found only {} Rust files",
        tree.rust.len()
    );
    let missing: Vec<&str> = tree
        .rust
        .iter()
        .filter(|f| !f.text.lines().next().is_some_and(|l| l.starts_with("//!")))
        .map(|f| f.path.as_str())
        .collect();
    assert!(missing.is_empty(), "files without a //! line: {missing:#?}");
}
