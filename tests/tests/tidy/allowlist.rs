//! Allowlists that may only shrink: a rule's known offenders today are listed,
//! a new offender fails, and so does a listed one that no longer offends (its
//! entry must go), so each list stays exactly the debt that is left.

use std::collections::BTreeSet;

/// What is wrong with `found` (today's offenders) against `allowed`.
pub fn check(rule: &str, found: &BTreeSet<String>, allowed: &[&str]) -> Vec<String> {
    let allowed: BTreeSet<String> = allowed.iter().map(|s| (*s).to_owned()).collect();
    let mut problems: Vec<String> = found
        .difference(&allowed)
        .map(|f| format!("{rule}: {f}"))
        .collect();
    problems.extend(allowed.difference(found).map(|a| {
        format!("{rule}: {a} is allowlisted but no longer offends: remove it from the allowlist")
    }));
    problems
}

/// Fails with every problem, one a line.
#[track_caller]
pub fn assert_none(problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{} tidy problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_new_offender_is_reported() {
        let problems = check("rule", &set(&["a.rs", "b.rs"]), &["a.rs"]);
        assert_eq!(problems, ["rule: b.rs"]);
    }

    #[test]
    fn an_allowlisted_file_that_no_longer_offends_is_reported() {
        let problems = check("rule", &set(&[]), &["a.rs"]);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("a.rs is allowlisted but no longer offends"));
    }

    #[test]
    fn listed_offenders_pass() {
        assert!(check("rule", &set(&["a.rs"]), &["a.rs"]).is_empty());
    }
}
