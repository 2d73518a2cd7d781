//! The error shared by every small textual grammar of Sitecast (sizes, rates, durations,
//! IP ranges, time frames), and the comma-list splitting they have in common.
//!
//! Admins type these strings on the command line and in config files, so an error must
//! point at the exact piece of their input that is wrong: [`GrammarError::token`] is always
//! a verbatim (trimmed) substring of what was parsed.

/// A string that does not follow one of the grammars in SPEC "Grammars".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad {grammar} '{token}': {reason}")]
pub struct GrammarError {
    /// Which grammar refused the input, e.g. `"rate"` or `"time frame"`.
    pub grammar: &'static str,
    /// The offending token exactly as written (for a list, the whole offending entry).
    pub token: String,
    /// Why it was refused, naming the precise sub-token when the entry is longer.
    pub reason: String,
}

impl GrammarError {
    pub fn new(grammar: &'static str, token: impl Into<String>, reason: impl Into<String>) -> Self {
        GrammarError {
            grammar,
            token: token.into(),
            reason: reason.into(),
        }
    }
}

/// Splits a comma-separated list into trimmed entries.
///
/// A blank input is the empty list (an unset constraint), but an empty entry inside a
/// non-blank list (`"a,,b"`, a trailing comma) is refused: it is almost always a typo that
/// would otherwise silently widen or narrow the constraint.
pub(crate) fn split_list<'a>(
    grammar: &'static str,
    input: &'a str,
) -> Result<Vec<&'a str>, GrammarError> {
    if input.trim().is_empty() {
        return Ok(Vec::new());
    }
    let entries: Vec<&str> = input.split(',').map(str::trim).collect();
    let count = entries.len();
    if let Some(position) = entries.iter().position(|entry| entry.is_empty()) {
        return Err(GrammarError::new(
            grammar,
            "",
            format!("entry {} of {count} is empty", position + 1),
        ));
    }
    Ok(entries)
}

/// Strips a leading `!` (and any blanks after it) from a list entry.
pub(crate) fn split_negation(entry: &str) -> (bool, &str) {
    match entry.strip_prefix('!') {
        Some(rest) => (true, rest.trim_start()),
        None => (false, entry),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn message_names_grammar_token_and_reason() {
        let err = GrammarError::new("rate", "20XB/s", "unknown unit 'XB/s'");
        assert_eq!(err.to_string(), "bad rate '20XB/s': unknown unit 'XB/s'");
    }

    #[test]
    fn blank_list_is_empty() {
        assert_eq!(split_list("x", "").unwrap(), Vec::<&str>::new());
        assert_eq!(split_list("x", "  \t ").unwrap(), Vec::<&str>::new());
    }

    #[test]
    fn entries_are_trimmed() {
        assert_eq!(split_list("x", " a , b,c ").unwrap(), vec!["a", "b", "c"]);
    }

    #[test]
    fn empty_entries_are_refused_with_their_position() {
        let err = split_list("x", "a,,b").unwrap_err();
        assert_eq!(err, GrammarError::new("x", "", "entry 2 of 3 is empty"));
        assert_eq!(err.to_string(), "bad x '': entry 2 of 3 is empty");
        let err = split_list("x", "a,").unwrap_err();
        assert_eq!(err.reason, "entry 2 of 2 is empty");
        let err = split_list("x", ",").unwrap_err();
        assert_eq!(err.reason, "entry 1 of 2 is empty");
    }

    #[test]
    fn negation_is_split_off() {
        assert_eq!(split_negation("!a"), (true, "a"));
        assert_eq!(split_negation("! a"), (true, "a"));
        assert_eq!(split_negation("a"), (false, "a"));
        assert_eq!(split_negation("!!a"), (true, "!a"));
    }
}
