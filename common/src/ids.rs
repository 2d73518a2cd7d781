//! Identifiers as newtypes: a value of one of these types is always well formed.
//!
//! Package, relay and computer ids are chosen by central and travel in URLs, so
//! they share one URL-safe grammar (`[a-z0-9][a-z0-9._-]{0,63}`). Site names are
//! chosen by admins and allow upper case too.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad {kind} '{value}': {reason}")]
pub struct IdError {
    pub kind: &'static str,
    pub value: String,
    pub reason: &'static str,
}

fn check(kind: &'static str, value: &str, allow_upper: bool) -> Result<(), IdError> {
    let err = |reason| IdError {
        kind,
        value: value.to_owned(),
        reason,
    };
    let mut chars = value.chars();
    let first = chars.next().ok_or_else(|| err("must not be empty"))?;
    if value.len() > 64 {
        return Err(err("must be at most 64 characters"));
    }
    let alnum = |c: char| {
        c.is_ascii_digit() || c.is_ascii_lowercase() || (allow_upper && c.is_ascii_uppercase())
    };
    if !alnum(first) {
        return Err(err("must start with a letter or a digit"));
    }
    if !chars.all(|c| alnum(c) || matches!(c, '.' | '_' | '-')) {
        return Err(if allow_upper {
            err("may only contain letters, digits, '.', '_' and '-'")
        } else {
            err("may only contain lower-case letters, digits, '.', '_' and '-'")
        });
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $upper:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                check($kind, s, $upper)?;
                Ok(Self(s.to_owned()))
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                check($kind, &s, $upper)?;
                Ok(Self(s))
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// A package, chosen by central when the package is created; never reused.
    PackageId, "package id", false
);
id_type!(
    /// A relay, chosen by central when an admin adds it.
    RelayId, "relay id", false
);
id_type!(
    /// A managed computer, chosen by central when its agent enrolls.
    ComputerId, "computer id", false
);
id_type!(
    /// A job container, chosen by central when an admin creates it.
    ContainerId, "container id", false
);
id_type!(
    /// A site (branch office, plant, shop), named by an admin.
    SiteName, "site name", true
);
id_type!(
    /// A computer group or a package group, named by an admin.
    GroupName, "group name", true
);

/// Turns free text (a package name, a version) into the id alphabet, so ids stay readable.
pub fn slug(text: &str, max: usize) -> String {
    let mut out = String::new();
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_') {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
        if out.len() >= max {
            break;
        }
    }
    out.trim_matches(|c| c == '-' || c == '.' || c == '_')
        .to_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn package_ids() {
        assert!("firefox-128.0-3fa9".parse::<PackageId>().is_ok());
        assert_eq!(
            "Firefox".parse::<PackageId>().unwrap_err().to_string(),
            "bad package id 'Firefox': must start with a letter or a digit"
        );
        assert!("a/b".parse::<PackageId>().is_err());
        assert!("".parse::<PackageId>().is_err());
        assert!("-a".parse::<PackageId>().is_err());
        assert!("a".repeat(65).parse::<PackageId>().is_err());
        assert!("a".repeat(64).parse::<PackageId>().is_ok());
    }

    #[test]
    fn site_names_allow_upper_case() {
        assert!("Paris-1".parse::<SiteName>().is_ok());
        assert!("Paris 1".parse::<SiteName>().is_err());
    }

    #[test]
    fn serde_validates() {
        let r: Result<PackageId, _> = serde_json::from_str("\"../etc\"");
        assert!(r.is_err());
        let ok: PackageId = serde_json::from_str("\"abc\"").unwrap();
        assert_eq!(serde_json::to_string(&ok).unwrap(), "\"abc\"");
    }

    #[test]
    fn slugs() {
        assert_eq!(slug("Mozilla Firefox ESR", 40), "mozilla-firefox-esr");
        assert_eq!(slug("  7-Zip!! ", 40), "7-zip");
        assert_eq!(slug("ÄÖ", 40), "");
    }
}
