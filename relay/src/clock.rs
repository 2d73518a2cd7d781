//! The relay's time: a monotonic instant for rates and timers, and the local wall
//! time for replication windows — read in one place so tests can move the wall
//! clock (to a Saturday night, say) without waiting for it. The monotonic part
//! is tokio's, so tests with a paused tokio clock drive the planner's timers.

use sitecast_common::replication::Now;
use tokio::time::Instant;

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Now;
}

#[allow(clippy::disallowed_methods)] // The one place the relay reads wall time.
fn local_wall() -> jiff::civil::DateTime {
    jiff::Zoned::now().datetime()
}

/// The wall clock as an instant, for what the relay records (when a package
/// was last needed, when the cache was scrubbed).
#[allow(clippy::disallowed_methods)] // The one place the relay reads wall time.
pub fn timestamp() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

/// The system's clocks, the wall time in the system's time zone.
#[derive(Debug)]
pub struct SystemClock {
    start: Instant,
}

impl Default for SystemClock {
    fn default() -> Self {
        Self {
            start: Instant::now(),
        }
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Now {
        Now {
            mono: self.start.elapsed(),
            wall: local_wall(),
        }
    }
}

/// Real time, with the wall clock shifted by an offset tests set (the
/// `test-util` feature: not in release binaries).
#[cfg(feature = "test-util")]
#[derive(Debug)]
pub struct ShiftedClock {
    start: Instant,
    shift: std::sync::Mutex<jiff::SignedDuration>,
}

#[cfg(feature = "test-util")]
impl Default for ShiftedClock {
    fn default() -> Self {
        Self {
            start: Instant::now(),
            shift: std::sync::Mutex::new(jiff::SignedDuration::ZERO),
        }
    }
}

#[cfg(feature = "test-util")]
impl ShiftedClock {
    /// Makes the wall clock read `at` now (and run on from there).
    pub fn set_wall(&self, at: jiff::civil::DateTime) {
        let shift = at.duration_since(local_wall());
        *self.shift.lock().unwrap_or_else(|e| e.into_inner()) = shift;
    }
}

#[cfg(feature = "test-util")]
impl Clock for ShiftedClock {
    fn now(&self) -> Now {
        let shift = *self.shift.lock().unwrap_or_else(|e| e.into_inner());
        Now {
            mono: self.start.elapsed(),
            wall: local_wall().saturating_add(shift),
        }
    }
}
