//! Enroll tokens an admin creates beside the shared one: each with a number of uses,
//! an expiry, and the tags every computer it enrolls gets. Kept in the
//! `enroll_tokens` tree by id; the token itself only as its SHA-256, in the
//! `enroll_digests` tree (digest → id), so a stolen database enrolls nobody.
//!
//! A use is taken by compare and swap on the record and flushed before the
//! enrollment goes on, so concurrent enrollments never take more uses than there
//! are, and a crash never gives one back.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sitecast_common::groups::Tag;

use super::{decode, encode, Result, SledStore};

/// One enroll token (without its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollTokenRecord {
    pub id: String,
    pub created_at: Timestamp,
    /// Enrollments it allows in all; `None`: any number.
    pub uses: Option<u32>,
    /// Enrollments made with it so far.
    pub used: u32,
    /// No enrollment from this instant on; `None`: never expires.
    pub expires_at: Option<Timestamp>,
    /// Tags every computer it enrolls gets (set by the admin, not by the agent).
    #[serde(default)]
    pub tags: Vec<Tag>,
}

/// Why an enroll token did not enroll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spent {
    Unknown,
    Expired(Timestamp),
    UsedUp(u32),
}

/// What central asks of its enroll tokens.
pub trait EnrollStore {
    fn add_enroll_token(&self, token: &EnrollTokenRecord, digest: [u8; 32]) -> Result<()>;
    fn enroll_tokens(&self) -> Result<Vec<EnrollTokenRecord>>;
    /// Removes a token; false if there was none.
    fn delete_enroll_token(&self, id: &str) -> Result<bool>;
    /// Takes one use of the token whose digest this is, durably, if it has one left
    /// and has not expired at `now`; the token as it is after the use.
    fn use_enroll_token(
        &self,
        digest: [u8; 32],
        now: Timestamp,
    ) -> Result<std::result::Result<EnrollTokenRecord, Spent>>;
}

impl EnrollStore for SledStore {
    fn add_enroll_token(&self, token: &EnrollTokenRecord, digest: [u8; 32]) -> Result<()> {
        self.enroll_tokens
            .insert(token.id.as_str(), encode(token)?)?;
        self.enroll_digests
            .insert(&digest[..], token.id.as_bytes())?;
        self.flush()
    }

    fn enroll_tokens(&self) -> Result<Vec<EnrollTokenRecord>> {
        Self::all(&self.enroll_tokens)
    }

    fn delete_enroll_token(&self, id: &str) -> Result<bool> {
        let existed = self.enroll_tokens.remove(id)?.is_some();
        for kv in self.enroll_digests.iter() {
            let (k, v) = kv?;
            if v.as_ref() == id.as_bytes() {
                self.enroll_digests.remove(k)?;
            }
        }
        self.flush()?;
        Ok(existed)
    }

    fn use_enroll_token(
        &self,
        digest: [u8; 32],
        now: Timestamp,
    ) -> Result<std::result::Result<EnrollTokenRecord, Spent>> {
        let Some(id) = self.enroll_digests.get(&digest[..])? else {
            return Ok(Err(Spent::Unknown));
        };
        let id = String::from_utf8_lossy(&id).into_owned();
        loop {
            let Some(old) = self.enroll_tokens.get(id.as_str())? else {
                return Ok(Err(Spent::Unknown));
            };
            let mut token: EnrollTokenRecord = decode(id.as_bytes(), &old)?;
            if let Some(at) = token.expires_at.filter(|at| *at <= now) {
                return Ok(Err(Spent::Expired(at)));
            }
            if token.uses.is_some_and(|uses| token.used >= uses) {
                return Ok(Err(Spent::UsedUp(token.used)));
            }
            token.used = token.used.saturating_add(1);
            if self
                .enroll_tokens
                .compare_and_swap(id.as_str(), Some(&old), Some(encode(&token)?))?
                .is_ok()
            {
                self.flush()?;
                return Ok(Ok(token));
            }
        }
    }
}
