//! Wall time, read in one place so tests can fix it. The test clocks are
//! compiled only for tests and with the `test-util` feature, never into the
//! release binary.

#[cfg(any(test, feature = "test-util"))]
use std::sync::Mutex;

use jiff::Timestamp;

/// The source of "now" for everything central records or decides.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // The one place central reads wall time.
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that only moves when told to (tests).
#[cfg(any(test, feature = "test-util"))]
#[derive(Debug)]
pub struct ManualClock(Mutex<Timestamp>);

#[cfg(any(test, feature = "test-util"))]
impl ManualClock {
    pub fn new(at: Timestamp) -> Self {
        Self(Mutex::new(at))
    }

    pub fn set(&self, at: Timestamp) {
        // A poisoned lock only means another test thread panicked; the value is still a timestamp.
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }
}

#[cfg(any(test, feature = "test-util"))]
impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The system clock moved by an offset tests can change: time goes on, from
/// wherever a test put it (time frames, retries' back-off, purge ages).
#[cfg(any(test, feature = "test-util"))]
#[derive(Debug, Default)]
pub struct ShiftedClock(Mutex<jiff::SignedDuration>);

#[cfg(any(test, feature = "test-util"))]
impl ShiftedClock {
    /// From now on, `now()` reads `at` plus the time elapsed since this call.
    pub fn set(&self, at: Timestamp) {
        let offset = at.duration_since(SystemClock.now());
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = offset;
    }
}

#[cfg(any(test, feature = "test-util"))]
impl Clock for ShiftedClock {
    fn now(&self) -> Timestamp {
        let offset = *self.0.lock().unwrap_or_else(|e| e.into_inner());
        let real = SystemClock.now();
        real.checked_add(offset).unwrap_or(real)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_shifted_clock_goes_on_from_where_it_was_set() {
        let clock = ShiftedClock::default();
        let real = SystemClock.now();
        assert!(clock.now() >= real);
        let at: Timestamp = "2030-01-05T12:00:00Z".parse().unwrap();
        clock.set(at);
        let read = clock.now();
        assert!(
            read >= at && read < at + jiff::SignedDuration::from_secs(60),
            "{read}"
        );
    }
}
