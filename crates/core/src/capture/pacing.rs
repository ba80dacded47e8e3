//! When to grab next: a deadline schedule that does not drift, and a backoff for retrying a lost source.

use std::time::{Duration, Instant};

/// Deadlines at `start + k * interval`. A late grab skips the ticks it missed rather than
/// bursting to catch up, so a slow machine gets fewer frames, never a backlog.
#[derive(Debug, Default)]
pub struct Pacer {
    next: Option<Instant>,
}

impl Pacer {
    pub fn new() -> Self {
        Self::default()
    }

    /// How long to wait before the next grab is due (zero: grab now).
    pub fn wait(&self, now: Instant) -> Duration {
        self.next
            .map_or(Duration::ZERO, |next| next.saturating_duration_since(now))
    }

    /// Records a grab at `now` and sets the next deadline.
    pub fn tick(&mut self, now: Instant, interval: Duration) {
        let next = match self.next {
            // Far behind (after an idle spell or a long stall): start a fresh schedule from now.
            Some(due) if now.saturating_duration_since(due) < interval * 4 => {
                let mut next = due + interval;
                if next <= now {
                    let behind = now.duration_since(next).as_nanos();
                    let missed = behind / interval.as_nanos().max(1) + 1;
                    next += interval * u32::try_from(missed).unwrap_or(u32::MAX);
                }
                next
            }
            _ => now + interval,
        };
        self.next = Some(next);
    }

    /// A new frame rate takes effect at once: the next deadline is pulled in if it now lies
    /// further away than one new interval.
    pub fn retime(&mut self, now: Instant, interval: Duration) {
        if let Some(next) = self.next
            && next > now + interval
        {
            self.next = Some(now + interval);
        }
    }

    /// Forgets the schedule: the next grab is due at once (after an idle or paused spell).
    pub fn reset(&mut self) {
        self.next = None;
    }
}

/// Doubling delays between retries, capped, reset by a success.
#[derive(Debug)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Self {
        Self {
            first,
            max,
            current: first,
        }
    }

    /// The delay before the next retry; each call doubles the following one.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.current;
        self.current = (self.current * 2).min(self.max);
        delay
    }

    pub fn reset(&mut self) {
        self.current = self.first;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn first_grab_is_immediate() {
        let pacer = Pacer::new();
        assert_eq!(pacer.wait(Instant::now()), Duration::ZERO);
    }

    #[test]
    fn deadlines_do_not_drift_with_grab_time() {
        let start = Instant::now();
        let interval = 100 * MS;
        let mut pacer = Pacer::new();
        pacer.tick(start, interval);
        // Each grab is reported 30 ms late; the schedule stays on 100 ms multiples.
        for k in 1..=10u32 {
            let due = start + interval * k;
            assert_eq!(pacer.wait(due - 10 * MS), 10 * MS, "tick {k}");
            pacer.tick(due + 30 * MS, interval);
        }
        assert_eq!(pacer.wait(start), interval * 11);
    }

    #[test]
    fn missed_ticks_are_skipped_not_burst() {
        let start = Instant::now();
        let interval = 100 * MS;
        let mut pacer = Pacer::new();
        pacer.tick(start, interval);
        // The grab for tick 1 ends at 250 ms: ticks at 200 ms is missed, 300 ms is next.
        pacer.tick(start + 250 * MS, interval);
        assert_eq!(pacer.wait(start + 250 * MS), 50 * MS);
    }

    #[test]
    fn long_stall_restarts_schedule() {
        let start = Instant::now();
        let interval = 100 * MS;
        let mut pacer = Pacer::new();
        pacer.tick(start, interval);
        let late = start + Duration::from_secs(5);
        pacer.tick(late, interval);
        assert_eq!(pacer.wait(late), interval);
    }

    #[test]
    fn faster_rate_pulls_next_deadline_in() {
        let start = Instant::now();
        let mut pacer = Pacer::new();
        pacer.tick(start, Duration::from_secs(1));
        pacer.retime(start, 50 * MS);
        assert_eq!(pacer.wait(start), 50 * MS);
        // A slower rate does not push an earlier deadline away.
        pacer.retime(start, Duration::from_secs(2));
        assert_eq!(pacer.wait(start), 50 * MS);
    }

    #[test]
    fn backoff_doubles_to_cap_and_resets() {
        let mut backoff = Backoff::new(250 * MS, 1000 * MS);
        let delays: Vec<_> = (0..4).map(|_| backoff.next_delay()).collect();
        assert_eq!(delays, [250 * MS, 500 * MS, 1000 * MS, 1000 * MS]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), 250 * MS);
    }
}
