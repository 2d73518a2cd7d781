//! Bearer tokens: random secrets handed out once, stored only as SHA-256 digests.

use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};

/// A fresh 256-bit token, as 64 hex characters.
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// What the store keeps instead of the token itself, so a copy of the database
/// does not let anyone act as an agent or a relay.
pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A short random suffix that keeps ids unique without making them unreadable.
pub fn suffix() -> String {
    let mut bytes = [0u8; 4];
    OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}
