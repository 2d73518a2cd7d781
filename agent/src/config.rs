//! `agent.toml` and the agent's directory: identity, pinned keys, and where
//! downloads, work directories and the history live.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use sitecast_common::ids::ComputerId;
use sitecast_common::signing;
use sitecast_common::units::Size;

use crate::error::AgentError;

/// An enrolled agent's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Central's API URL.
    pub central: String,
    pub computer_id: ComputerId,
    pub token: String,
    /// Source address of every connection, and this computer's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<IpAddr>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Central's info-signing public keys (PEM), pinned at enrollment.
    pub signing_keys: Vec<String>,
    /// Most bytes one package may unpack to (zip and gzip bombs stop here).
    #[serde(default = "default_max_unpack")]
    pub max_unpack: Size,
}

fn default_max_unpack() -> Size {
    Size::from_bytes(64 << 30)
}

/// The files of an agent's DIR.
#[derive(Debug, Clone)]
pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
        }
    }
    pub fn config(&self) -> PathBuf {
        self.dir.join("agent.toml")
    }
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    pub fn history(&self) -> PathBuf {
        self.dir.join("history.json")
    }
    pub fn downloads(&self) -> PathBuf {
        self.dir.join("downloads")
    }
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }
}

impl AgentConfig {
    pub fn load(layout: &Layout) -> Result<Self, AgentError> {
        let path = layout.config();
        let text = std::fs::read_to_string(&path).map_err(AgentError::io(&path))?;
        toml::from_str(&text).map_err(|e| AgentError::Config {
            path,
            reason: e.to_string(),
        })
    }

    pub fn save(&self, layout: &Layout) -> Result<(), AgentError> {
        let path = layout.config();
        let body = toml::to_string(self).map_err(|e| AgentError::Config {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        crate::fsutil::write_atomically(&path, body.as_bytes())
    }

    /// The pinned keys, parsed.
    pub fn keys(&self) -> Result<Vec<VerifyingKey>, AgentError> {
        self.signing_keys
            .iter()
            .map(|pem| {
                signing::verifying_key_from_pem(pem).map_err(|e| AgentError::Invalid(e.to_string()))
            })
            .collect()
    }
}
