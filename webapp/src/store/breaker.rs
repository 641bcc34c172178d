//! The store's circuit breaker, as a plain state machine: after [`FAILURES_TO_OPEN`]
//! consecutive failures to reach PostgreSQL it opens, and the store then refuses at once
//! instead of letting every request wait out the acquire timeout. It closes on the first
//! success, which the store's background probe (or a request already under way) reports.

use std::sync::Mutex;

/// One failure can be a blip (a connection dropped by a restarting proxy); a few in a row,
/// each having waited its full timeout, mean the database is down.
pub const FAILURES_TO_OPEN: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed { failures: u32 },
    Open,
}

/// Shared by every request of one app; each call holds the lock only to read or flip the state.
#[derive(Debug)]
pub struct Breaker {
    state: Mutex<State>,
}

impl Default for Breaker {
    fn default() -> Self {
        Self {
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }
}

impl Breaker {
    pub fn is_open(&self) -> bool {
        *self.lock() == State::Open
    }

    /// PostgreSQL answered. `true` when this closed the breaker.
    pub fn record_success(&self) -> bool {
        let mut state = self.lock();
        let was_open = *state == State::Open;
        *state = State::Closed { failures: 0 };
        was_open
    }

    /// PostgreSQL could not be reached. `true` when this opened the breaker, so that exactly
    /// one caller starts probing.
    pub fn record_failure(&self) -> bool {
        let mut state = self.lock();
        match *state {
            State::Open => false,
            State::Closed { failures } if failures + 1 >= FAILURES_TO_OPEN => {
                *state = State::Open;
                true
            }
            State::Closed { failures } => {
                *state = State::Closed {
                    failures: failures + 1,
                };
                false
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is one word, whole even if a holder panicked.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_failures_only() {
        let breaker = Breaker::default();
        for _ in 1..FAILURES_TO_OPEN {
            assert!(!breaker.record_failure());
        }
        assert!(
            !breaker.record_success(),
            "closed breaker reports no change"
        );
        for _ in 1..FAILURES_TO_OPEN {
            assert!(!breaker.record_failure());
            assert!(!breaker.is_open());
        }
        assert!(breaker.record_failure(), "the last failure opens it");
        assert!(breaker.is_open());
        assert!(!breaker.record_failure(), "opened once, by one caller");
    }

    #[test]
    fn one_success_closes_it_and_the_count_starts_again() {
        let breaker = Breaker::default();
        for _ in 0..FAILURES_TO_OPEN {
            breaker.record_failure();
        }
        assert!(breaker.is_open());
        assert!(breaker.record_success());
        assert!(!breaker.is_open());
        assert!(!breaker.record_failure());
        assert!(!breaker.is_open());
    }
}
