//! The time the core holds an instance back: while its publishes wait for
//! room in full target queues (flow control), the function cannot go on, so
//! that time does not count against its `Timeout`. Holds may overlap (a
//! publish waiting in the router while the reader waits for room behind it);
//! the clock counts the time during which at least one is on.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

#[derive(Debug, Default)]
struct State {
    /// Holds on now.
    depth: usize,
    /// Since when at least one is on.
    since: Option<Instant>,
    /// Held time before `since`.
    total: Duration,
}

impl State {
    /// A hold begins at `now`; whether it is the first one on.
    fn begin(&mut self, now: Instant) -> bool {
        self.depth += 1;
        if self.depth == 1 {
            self.since = Some(now);
            return true;
        }
        false
    }

    /// A hold ends at `now`; whether it was the last one on.
    fn end(&mut self, now: Instant) -> bool {
        self.depth = self.depth.saturating_sub(1);
        if self.depth > 0 {
            return false;
        }
        if let Some(since) = self.since.take() {
            self.total += now.saturating_duration_since(since);
        }
        true
    }

    fn held(&self, now: Instant) -> Duration {
        self.total + self.since.map(|t| now.saturating_duration_since(t)).unwrap_or_default()
    }
}

/// Counts held time; every start and end of a hold is announced (a version
/// number on a watch channel, so that no waiter misses one).
#[derive(Debug)]
pub(crate) struct HoldClock {
    state: Mutex<State>,
    changes: watch::Sender<u64>,
}

impl Default for HoldClock {
    fn default() -> Self {
        Self { state: Mutex::new(State::default()), changes: watch::Sender::new(0) }
    }
}

/// One hold, released when dropped.
pub(crate) struct Hold<'a> {
    clock: &'a HoldClock,
}

impl HoldClock {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a hold, which lasts until the returned guard is dropped.
    pub(crate) fn hold(&self) -> Hold<'_> {
        if self.state().begin(Instant::now()) {
            self.changes.send_modify(|v| *v += 1);
        }
        Hold { clock: self }
    }

    /// Time held so far (the hold on now included).
    pub(crate) fn held(&self) -> Duration {
        self.state().held(Instant::now())
    }

    /// Whether a hold is on now.
    #[cfg(test)]
    fn holding(&self) -> bool {
        self.state().depth > 0
    }

    /// Announces each start and end of a hold.
    pub(crate) fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        if self.clock.state().end(Instant::now()) {
            self.clock.changes.send_modify(|v| *v += 1);
        }
    }
}

/// Where the deadline of an invocation is: `started + timeout`, later by
/// the time the core held the instance back since it started; `None` while
/// a hold is on (the deadline is not running).
pub(crate) fn deadline(started: Instant, timeout: Duration, clock: &HoldClock, held_at_start: Duration) -> Option<Instant> {
    let state = clock.state();
    deadline_at(started, timeout, &state, held_at_start, Instant::now())
}

fn deadline_at(started: Instant, timeout: Duration, state: &State, held_at_start: Duration, now: Instant) -> Option<Instant> {
    if state.depth > 0 {
        return None;
    }
    Some(started + timeout + state.held(now).saturating_sub(held_at_start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_time_moves_the_deadline_and_overlapping_holds_count_once() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let timeout = Duration::from_secs(1);
        let mut s = State::default();
        assert_eq!(deadline_at(t0, timeout, &s, Duration::ZERO, t0), Some(at(1000)));
        assert!(s.begin(at(300)), "the first hold starts the clock");
        assert_eq!(deadline_at(t0, timeout, &s, Duration::ZERO, at(2000)), None, "no deadline while held");
        assert!(!s.begin(at(2300)), "an overlapping hold");
        assert!(!s.end(at(3300)), "still held");
        assert!(s.end(at(4300)), "the last hold ends");
        // Held 4 s in all (300 ms to 4.3 s, the overlap counted once).
        assert_eq!(s.held(at(9000)), Duration::from_secs(4));
        assert_eq!(deadline_at(t0, timeout, &s, Duration::ZERO, at(4300)), Some(at(5000)));
        // An invocation that began after the holds is not moved by them.
        assert_eq!(deadline_at(at(6000), timeout, &s, s.held(at(6000)), at(6000)), Some(at(7000)));
        // One that began during a hold counts only what came after.
        let mut s = State::default();
        s.begin(at(0));
        let held_at_start = s.held(at(500));
        s.end(at(1500));
        assert_eq!(deadline_at(at(500), timeout, &s, held_at_start, at(1500)), Some(at(2500)));
    }

    #[test]
    fn starts_and_ends_of_holds_are_announced() {
        let clock = HoldClock::default();
        let mut changes = clock.changes();
        let outer = clock.hold();
        assert!(changes.has_changed().unwrap());
        changes.borrow_and_update();
        let inner = clock.hold();
        drop(outer);
        assert!(!changes.has_changed().unwrap(), "still held: nothing to announce");
        assert!(clock.holding());
        drop(inner);
        assert!(changes.has_changed().unwrap());
        assert!(!clock.holding());
    }
}
