//! The agent's wall time, read in one place: what it records (history,
//! back-off, power marks) and when it decides (retries, the cycle's wall
//! deadline) come from here.

use jiff::Timestamp;

/// Now, on the computer's clock.
#[allow(clippy::disallowed_methods)] // The one place the agent reads wall time.
pub fn now() -> Timestamp {
    Timestamp::now()
}
