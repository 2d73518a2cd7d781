//! Where things are in a central's DIR: pure path joins, no I/O.
//!
//! Both `sitecast-central` (which writes and serves the DIR) and the `sitecast`
//! admin CLI (which reads its URL, admin token and CA with `--central-dir`)
//! name the files through this one table, so the two never disagree.

use std::path::PathBuf;

/// The files of a central's DIR.
#[derive(Debug, Clone)]
pub struct CentralLayout {
    pub dir: PathBuf,
}

impl CentralLayout {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }
    pub fn config(&self) -> PathBuf {
        self.dir.join("central.toml")
    }
    pub fn signing_key(&self) -> PathBuf {
        self.dir.join("keys/signing.key")
    }
    pub fn signing_pub(&self) -> PathBuf {
        self.dir.join("keys/signing.pub")
    }
    /// The root key that signs the key set: it may be moved offline, and the
    /// `sitecast-central key` commands then take its path.
    pub fn root_key(&self) -> PathBuf {
        self.dir.join("keys/root.key")
    }
    /// The root's public key, which agents and relays pin.
    pub fn root_pub(&self) -> PathBuf {
        self.dir.join("keys/root.pub")
    }
    /// The root-signed key set (a DSSE envelope).
    pub fn keyset(&self) -> PathBuf {
        self.dir.join("keys/keyset.dsse.json")
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("tls/ca.pem")
    }
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("tls/ca.key")
    }
    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("tls/server.pem")
    }
    pub fn server_key(&self) -> PathBuf {
        self.dir.join("tls/server.key")
    }
    pub fn admin_token(&self) -> PathBuf {
        self.dir.join("admin.token")
    }
    pub fn enroll_token(&self) -> PathBuf {
        self.dir.join("enroll.token")
    }
    pub fn db(&self) -> PathBuf {
        self.dir.join("db")
    }
    pub fn packages(&self) -> PathBuf {
        self.dir.join("packages")
    }
    /// Deltas between package versions, computed once and cached.
    pub fn deltas(&self) -> PathBuf {
        self.dir.join("deltas")
    }
}

/// The token a token file holds: its text without surrounding whitespace (an
/// editor's final newline is not part of it), or `None` if nothing is left.
pub fn token(text: &str) -> Option<&str> {
    Some(text.trim()).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_inside_the_dir() {
        let l = CentralLayout::new("/srv/central");
        assert_eq!(l.config(), PathBuf::from("/srv/central/central.toml"));
        assert_eq!(l.admin_token(), PathBuf::from("/srv/central/admin.token"));
        assert_eq!(l.ca_cert(), PathBuf::from("/srv/central/tls/ca.pem"));
    }

    #[test]
    fn a_token_is_the_trimmed_text_and_never_empty() {
        assert_eq!(token("  abc\n"), Some("abc"));
        assert_eq!(token("a b"), Some("a b"));
        assert_eq!(token(" \n\t"), None);
        assert_eq!(token(""), None);
    }
}
