//! Wall time, read in one place so tests can fix it.

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
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that only moves when told to (tests).
#[derive(Debug)]
pub struct ManualClock(Mutex<Timestamp>);

impl ManualClock {
    pub fn new(at: Timestamp) -> Self {
        Self(Mutex::new(at))
    }

    pub fn set(&self, at: Timestamp) {
        // A poisoned lock only means another test thread panicked; the value is still a timestamp.
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The system clock moved by an offset tests can change: time goes on, from
/// wherever a test put it (time frames, retries' back-off, purge ages).
#[derive(Debug, Default)]
pub struct ShiftedClock(Mutex<jiff::SignedDuration>);

impl ShiftedClock {
    /// From now on, `now()` reads `at` plus the time elapsed since this call.
    pub fn set(&self, at: Timestamp) {
        let offset = at.duration_since(Timestamp::now());
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = offset;
    }
}

impl Clock for ShiftedClock {
    fn now(&self) -> Timestamp {
        let offset = *self.0.lock().unwrap_or_else(|e| e.into_inner());
        Timestamp::now()
            .checked_add(offset)
            .unwrap_or_else(|_| Timestamp::now())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_shifted_clock_goes_on_from_where_it_was_set() {
        let clock = ShiftedClock::default();
        let real = Timestamp::now();
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
