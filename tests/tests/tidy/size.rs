//! No non-test source file over 800 lines: past that a file splits by sub-concern.

use std::collections::BTreeSet;

use crate::allowlist;
use crate::source::Tree;

const MAX_LINES: usize = 800;

/// Non-test files over [`MAX_LINES`] today. May only shrink.
const TOO_LONG: &[&str] = &["central/src/store/jobs.rs"];

/// Non-test Rust files with more than `max` lines.
pub fn too_long(tree: &Tree, max: usize) -> BTreeSet<String> {
    tree.non_test()
        .filter(|f| f.text.lines().count() > max)
        .map(|f| f.path.clone())
        .collect()
}

#[test]
fn no_source_file_over_800_lines() {
    let found = too_long(&Tree::workspace(), MAX_LINES);
    allowlist::assert_none(&allowlist::check(
        &format!("over {MAX_LINES} lines"),
        &found,
        TOO_LONG,
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_source_file_is_reported_and_tests_are_not() {
        let long = "fn f() {}\n".repeat(4);
        let tree = Tree::of(&[
            ("central/src/store/jobs.rs", &long),
            ("central/src/store/mod.rs", "fn f() {}\n"),
            ("central/src/store/jobs/tests.rs", &long),
            ("central/tests/api.rs", &long),
            ("tests/src/lib.rs", &long),
        ]);
        assert_eq!(
            too_long(&tree, 3).into_iter().collect::<Vec<_>>(),
            ["central/src/store/jobs.rs"]
        );
    }
}
