//! The keys the agent verifies infos with ([`Trust`]): the key set central's root
//! signed, kept in `DIR/keyset.dsse.json`, under the root pinned in `agent.toml`
//! at enrollment.
//!
//! Each poll says which version the agent holds and central answers a newer one;
//! the agent takes it only if the pinned root signed it, it is not older, and it
//! has not expired ([`sitecast_common::keyset::accept`]). A held set that expires
//! verifies nothing any more: every install is then refused `ERR_BAD_SIGNATURE`
//! saying so, until central renews it (a freeze is seen, not suffered). An agent
//! enrolled before key sets existed has no root and trusts its pinned keys.

use std::path::PathBuf;

use ed25519_dalek::VerifyingKey;
use jiff::Timestamp;
use sitecast_common::keyset::{self, KeySet, KeySetError};
use sitecast_common::signing;

use crate::config::{AgentConfig, Layout};
use crate::error::AgentError;

/// What the agent trusts to sign infos.
#[derive(Debug)]
pub struct Trust {
    /// The root pinned at enrollment (none: an agent from before key sets).
    root: Option<VerifyingKey>,
    set: Option<KeySet>,
    /// agent.toml's `signing_keys`: trusted while no key set is held.
    pinned: Vec<VerifyingKey>,
    path: PathBuf,
}

impl Trust {
    pub fn load(layout: &Layout, config: &AgentConfig) -> Result<Self, AgentError> {
        let path = layout.keyset();
        let bad = |reason: String| AgentError::Config {
            path: layout.config(),
            reason,
        };
        let root = config
            .root_key
            .as_deref()
            .map(|pem| {
                signing::verifying_key_from_pem(pem).map_err(|e| bad(format!("root_key: {e}")))
            })
            .transpose()?;
        let set = match (&root, std::fs::read(&path)) {
            (Some(root), Ok(bytes)) => {
                Some(
                    keyset::verify(&bytes, root).map_err(|e| AgentError::Config {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?,
                )
            }
            (_, Err(e)) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(AgentError::io(&path)(e))
            }
            _ => None,
        };
        Ok(Self {
            root,
            set,
            pinned: config.keys()?,
            path,
        })
    }

    /// The version to tell central in a poll: none without a root (central then
    /// sends no key set), 0 with a root and no set yet.
    pub fn version(&self) -> Option<u64> {
        self.root
            .map(|_| self.set.as_ref().map_or(0, KeySet::version))
    }

    /// The keys that may sign an info now.
    pub fn keys(&self, now: Timestamp) -> Result<&[VerifyingKey], KeySetError> {
        match &self.set {
            Some(set) => set.trusted(now),
            None => Ok(&self.pinned),
        }
    }

    /// Takes a key set central sent, written down before it is used; an error
    /// says why it was refused (the held set stays).
    pub fn offer(&mut self, envelope: &str, now: Timestamp) -> Result<(), AgentError> {
        let Some(root) = &self.root else {
            return Ok(());
        };
        let refused = |e: KeySetError| AgentError::Config {
            path: self.path.clone(),
            reason: format!("refused central's key set: {e}"),
        };
        let set =
            keyset::accept(envelope.as_bytes(), root, self.set.as_ref(), now).map_err(refused)?;
        if self.set.as_ref().map(KeySet::version) == Some(set.version()) {
            return Ok(());
        }
        sitecast_io::write_atomically(&self.path, envelope.as_bytes())?;
        tracing::info!(version = set.version(), expires = %set.expires(), "took central's key set");
        self.set = Some(set);
        Ok(())
    }
}
