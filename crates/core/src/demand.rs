//! Whether anyone is watching, told by the server to the capture thread, and the thread's doorbell.
//!
//! This answers one question fast, under one small lock, for the capture thread's every turn:
//! "does anyone want frames?". Who they are, and what they got, is [`crate::viewers`]'s job; both
//! are fed by the same request and share the same [`LINGER`].
//!
//! Viewers that poll (`<img>` reloads) leave no connection open, so "watching" is: a frame was asked
//! for in the last few seconds, or someone holds a [`WatchGuard`] (a request waiting for a frame,
//! the presenter's preview).

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::frame::Delivery;

/// How long someone who asked for a frame still counts as there: capture keeps going that long
/// after the last request, and the presenter's list keeps the viewer that long
/// ([`crate::viewers`] uses this same value).
pub const LINGER: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
pub struct Demand {
    inner: Mutex<Inner>,
    bell: Condvar,
}

#[derive(Debug, Default)]
struct Inner {
    watchers: usize,
    last_request: Option<Instant>,
    rung: bool,
    /// The capture thread is asleep for want of viewers: only then does a new watcher ring.
    idle: bool,
    /// When updates were last asked for in each delivery.
    delivery_asked: [Option<Instant>; 3],
}

impl Demand {
    /// Counts as a watcher until the guard is dropped.
    pub fn watch(self: &Arc<Self>) -> WatchGuard {
        let mut inner = self.lock();
        inner.watchers += 1;
        // A busy loop must not be woken by every request (ten viewers polling would keep it
        // spinning); it sees the watcher at its next turn anyway.
        if inner.idle {
            inner.rung = true;
            self.bell.notify_all();
        }
        WatchGuard {
            demand: self.clone(),
        }
    }

    /// Whether the capture loop should be grabbing at `now`.
    pub fn is_wanted(&self, now: Instant) -> bool {
        let inner = self.lock();
        inner.watchers > 0
            || inner
                .last_request
                .is_some_and(|at| now.saturating_duration_since(at) < LINGER)
    }

    /// A viewer asked for updates as `delivery`: the capture thread prepares them as it publishes.
    pub fn note_delivery(&self, delivery: Delivery) {
        self.lock().delivery_asked[delivery.index()] = Some(Instant::now());
    }

    /// Whether anyone asked for updates as `delivery` lately (as of `now`).
    pub fn wants_delivery(&self, delivery: Delivery, now: Instant) -> bool {
        self.lock().delivery_asked[delivery.index()]
            .is_some_and(|at| now.saturating_duration_since(at) < LINGER)
    }

    /// Wakes the capture thread (settings changed, shutting down).
    pub fn ring(&self) {
        self.lock().rung = true;
        self.bell.notify_all();
    }

    /// Sleeps up to `timeout`, or until rung. Returns whether it was rung.
    pub fn sleep(&self, timeout: Duration) -> bool {
        self.sleep_as(timeout, false)
    }

    /// Like [`Demand::sleep`], for a loop with nobody watching: the first watcher wakes it.
    pub fn sleep_idle(&self, timeout: Duration) -> bool {
        self.sleep_as(timeout, true)
    }

    fn sleep_as(&self, timeout: Duration, idle: bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut inner = self.lock();
        // A watcher that arrived between the caller's check and this sleep did not ring.
        if idle && inner.watchers > 0 {
            inner.rung = false;
            return true;
        }
        inner.idle = idle;
        while !inner.rung {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                inner.idle = false;
                return false;
            }
            inner = self
                .bell
                .wait_timeout(inner, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        inner.rung = false;
        inner.idle = false;
        true
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Keeps the share watched while held.
#[derive(Debug)]
pub struct WatchGuard {
    demand: Arc<Demand>,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        let mut inner = self.demand.lock();
        inner.watchers = inner.watchers.saturating_sub(1);
        inner.last_request = Some(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nobody_watching_at_first() {
        assert!(!Demand::default().is_wanted(Instant::now()));
    }

    #[test]
    fn a_request_keeps_it_wanted_for_a_while() {
        let demand = Arc::new(Demand::default());
        drop(demand.watch());
        let now = Instant::now();
        assert!(demand.is_wanted(now));
        assert!(!demand.is_wanted(now + LINGER + Duration::from_millis(1)));
    }

    #[test]
    fn a_guard_keeps_it_wanted_until_dropped() {
        let demand = Arc::new(Demand::default());
        let guard = demand.watch();
        let later = Instant::now() + LINGER * 3;
        assert!(demand.is_wanted(later));
        drop(guard);
        assert!(!demand.is_wanted(later));
    }

    #[test]
    fn ring_wakes_a_sleeper() {
        let demand = Arc::new(Demand::default());
        let sleeper = {
            let demand = demand.clone();
            std::thread::spawn(move || demand.sleep(Duration::from_secs(30)))
        };
        std::thread::sleep(Duration::from_millis(20));
        demand.ring();
        assert!(sleeper.join().expect("sleeper thread"));
    }

    #[test]
    fn a_new_watcher_wakes_an_idle_loop() {
        let demand = Arc::new(Demand::default());
        let sleeper = {
            let demand = demand.clone();
            std::thread::spawn(move || demand.sleep_idle(Duration::from_secs(30)))
        };
        std::thread::sleep(Duration::from_millis(20));
        let _viewer = demand.watch();
        assert!(sleeper.join().expect("sleeper thread"));
    }

    #[test]
    fn watchers_do_not_wake_a_busy_loop() {
        let demand = Arc::new(Demand::default());
        let _viewer = demand.watch();
        assert!(
            !demand.sleep(Duration::from_millis(20)),
            "a pacing wait runs its course"
        );
    }

    #[test]
    fn modes_are_wanted_while_asked_for() {
        let demand = Demand::default();
        assert!(!demand.wants_delivery(Delivery::Lossless, Instant::now()));
        demand.note_delivery(Delivery::Lossless);
        let now = Instant::now();
        assert!(demand.wants_delivery(Delivery::Lossless, now));
        assert!(!demand.wants_delivery(Delivery::Adaptive, now));
        assert!(!demand.wants_delivery(Delivery::Lossless, now + LINGER));
    }

    #[test]
    fn sleep_times_out_unrung() {
        let demand = Demand::default();
        assert!(!demand.sleep(Duration::from_millis(10)));
    }
}
