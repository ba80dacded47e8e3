//! How large the video is encoded. The presenter shares the screen of the machine they are
//! working on, often while it plays the very clip being shown: the encoder keeps to a quarter
//! of a core (shrinking and conversion included), so that with the grab and the rest the share
//! stays within half a core, and where it cannot at the screen's own size it encodes a smaller
//! picture, which the page scales back up. The frame rate is never what gives: motion is why
//! the share is in video. A fast machine keeps the full size; a slow one (or one busy with
//! other work) gets 2/3 or half of it, and the exact tiles return when motion stops.

use std::time::{Duration, Instant};

use super::shrink;

/// The encoder's share of a core, averaged over a second. Grabbing and watching for the end of
/// the motion take about 0.15 of a core at 1080p30 besides.
pub const ENCODER_BUDGET: f64 = 0.25;
/// The sizes tried, as a share of the screen's width and height, largest first (shrunk by fixed
/// blocks: see `shrink`).
const STEPS: [f64; 3] = [1.0, 2.0 / 3.0, 0.5];
/// A larger size is tried again only when it is expected to cost at most this much of the
/// budget, and after this long at the smaller one: a size that did not fit is not retried at
/// every lighter moment of a clip.
const GROW_BELOW: f64 = 0.8;
const GROW_AFTER: Duration = Duration::from_secs(5);
/// How quickly the measured cost follows the latest pictures (about a second at 30 fps).
const SMOOTHING: f64 = 1.0 / 30.0;

/// The time encoding takes, and the size it affords.
#[derive(Debug, Default)]
pub struct EncodeBudget {
    step: usize,
    /// Seconds of work per picture, smoothed; `None` until a picture was measured at this step.
    per_picture: Option<f64>,
    /// Pictures measured at this step, and since when.
    measured: u32,
    since: Option<Instant>,
}

impl EncodeBudget {
    /// The size to encode a `width` x `height` screen at (even, at least 2x2).
    pub fn size_for(&self, width: u32, height: u32) -> (u32, u32) {
        let (width, height) = match self.step {
            0 => (width & !1, height & !1),
            1 => shrink::two_thirds(width, height),
            _ => shrink::half(width, height),
        };
        (width.max(2), height.max(2))
    }

    /// The share of the screen's width encoded now (1 is full size).
    #[cfg(test)]
    pub fn scale(&self) -> f64 {
        STEPS[self.step]
    }

    /// Counts one picture that took `took` to scale, convert and encode, at `fps`; says whether
    /// the size to encode at changed.
    pub fn spent(&mut self, took: Duration, fps: u32, now: Instant) -> bool {
        let took = took.as_secs_f64();
        let per_picture = match self.per_picture {
            Some(average) => average + (took - average) * SMOOTHING,
            None => took,
        };
        self.per_picture = Some(per_picture);
        self.measured += 1;
        let since = *self.since.get_or_insert(now);
        let cost = per_picture * f64::from(fps.max(1));
        // A second of pictures before judging: the first ones (a keyframe) cost more.
        if self.measured < fps.max(1) {
            return false;
        }
        if cost > ENCODER_BUDGET && self.step + 1 < STEPS.len() {
            self.go_to(self.step + 1);
            return true;
        }
        if self.step > 0 && now.saturating_duration_since(since) >= GROW_AFTER {
            let growth = (STEPS[self.step - 1] / STEPS[self.step]).powi(2);
            if cost * growth <= ENCODER_BUDGET * GROW_BELOW {
                self.go_to(self.step - 1);
                return true;
            }
        }
        false
    }

    fn go_to(&mut self, step: usize) {
        self.step = step;
        self.per_picture = None;
        self.measured = 0;
        self.since = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(budget: &mut EncodeBudget, start: Instant, from: u32, pictures: u32, ms: f64) -> u32 {
        let mut changes = 0;
        for index in from..from + pictures {
            let at = start + Duration::from_millis(33 * u64::from(index));
            if budget.spent(Duration::from_secs_f64(ms / 1000.0), 30, at) {
                changes += 1;
            }
        }
        changes
    }

    #[test]
    fn a_fast_encoder_keeps_the_full_size() {
        let mut budget = EncodeBudget::default();
        assert_eq!(feed(&mut budget, Instant::now(), 0, 300, 6.0), 0);
        assert_eq!(budget.size_for(1920, 1080), (1920, 1080));
        assert_eq!(budget.size_for(1919, 1081), (1918, 1080), "even");
    }

    #[test]
    fn a_slow_one_shrinks_the_picture_after_a_second_and_grows_back_when_it_can() {
        let mut budget = EncodeBudget::default();
        let start = Instant::now();
        // 14 ms a picture at 30 fps is 0.42 of a core.
        assert_eq!(
            feed(&mut budget, start, 0, 29, 14.0),
            0,
            "judged after a second"
        );
        assert_eq!(feed(&mut budget, start, 29, 1, 14.0), 1);
        assert_eq!(budget.size_for(1920, 1080), (1280, 720));
        // 7 ms (0.21 of a core) at 2/3 would be 15.75 ms at full size: stays smaller.
        assert_eq!(feed(&mut budget, start, 30, 600, 7.0), 0);
        assert_eq!(budget.scale(), 2.0 / 3.0);
        // The screen got lighter (2.5 ms): after five seconds, the full size again.
        let changes = feed(&mut budget, start, 630, 200, 2.5);
        assert_eq!(changes, 1);
        assert_eq!(budget.size_for(1920, 1080), (1920, 1080));
    }

    #[test]
    fn the_smallest_size_is_the_floor() {
        let mut budget = EncodeBudget::default();
        feed(&mut budget, Instant::now(), 0, 600, 40.0);
        assert_eq!(budget.size_for(1920, 1080), (960, 540));
        assert_eq!(budget.size_for(3, 3), (2, 2));
    }
}
