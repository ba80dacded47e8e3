//! A log line at most every so often: a flood of refused requests must not become a flood of log
//! lines (which would fill the presenter's disk and hide everything else).

use std::sync::Mutex;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub(crate) struct QuietLog {
    every: Duration,
    last: Mutex<Option<Instant>>,
    /// Events not logged since the last line.
    suppressed: AtomicU64,
    /// How many the last line stood for besides itself.
    reported: AtomicU64,
}

impl QuietLog {
    pub(crate) fn new(every: Duration) -> Self {
        Self {
            every,
            last: Mutex::new(None),
            suppressed: AtomicU64::new(0),
            reported: AtomicU64::new(0),
        }
    }

    /// Whether this event gets a line; if not, it is counted for the next line.
    pub(crate) fn should_log(&self) -> bool {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|at| now.saturating_duration_since(at) < self.every) {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        *last = Some(now);
        self.reported.store(
            self.suppressed.swap(0, Ordering::Relaxed),
            Ordering::Relaxed,
        );
        true
    }

    /// Events left out since the previous line, to put in the line being logged.
    pub(crate) fn suppressed(&self) -> u64 {
        self.reported.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_period_counting_the_rest() {
        let log = QuietLog::new(Duration::from_secs(3600));
        assert!(log.should_log());
        assert_eq!(log.suppressed(), 0);
        for _ in 0..99 {
            assert!(!log.should_log());
        }
        *log.last.lock().expect("lock") = Some(Instant::now() - Duration::from_secs(7200));
        assert!(log.should_log());
        assert_eq!(log.suppressed(), 99);
    }
}
