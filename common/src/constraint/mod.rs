//! When and to whom a job container applies: OCO's IP-range and time-frame conditions
//! (SPEC "Grammars", seed 000), parsed from the admin's text and evaluated purely.
//!
//! Both are comma-separated lists whose entries may be negated with `!`. They share one
//! admission rule: a matching negated entry rejects; otherwise any matching positive
//! entry admits; a list with no positive entry admits whatever it does not reject (so
//! `!SAT 0:00-23:59` alone means "not on Saturdays"), and the empty list admits all.
//!
//! Evaluation takes the address and the wall time as arguments: which address and which
//! time zone count is the caller's business (central uses the agent's address as it sees
//! it and its own clock).

use std::fmt::{self, Display};

mod ip;
mod time;

pub use ip::{IpRange, IpRanges};
pub use time::{DaySpan, TimeFrame, TimeFrames, TimeOfDay, Weekday};

/// The admission rule shared by both lists, over entries given as `(negated, matches)`.
fn admits(entries: impl IntoIterator<Item = (bool, bool)>) -> bool {
    let mut has_positive = false;
    let mut positive_match = false;
    for (negated, matches) in entries {
        if negated {
            if matches {
                return false;
            }
        } else {
            has_positive = true;
            positive_match |= matches;
        }
    }
    positive_match || !has_positive
}

fn write_list<T: Display>(f: &mut fmt::Formatter<'_>, entries: &[T]) -> fmt::Result {
    for (i, entry) in entries.iter().enumerate() {
        if i > 0 {
            f.write_str(",")?;
        }
        write!(f, "{entry}")?;
    }
    Ok(())
}

fn write_negation(f: &mut fmt::Formatter<'_>, negated: bool) -> fmt::Result {
    if negated {
        f.write_str("!")?;
    }
    Ok(())
}
