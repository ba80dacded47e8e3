//! Decides, grab after grab, whether the screen is showing motion (a clip, a game, a slide
//! transition that keeps going) that video carries far more cheaply than tiles, with hysteresis:
//! into video when most recent grabs moved a lot, back to tiles after a second of calm, so that
//! typing and scrolling never flip it and a clip does not flicker between the two.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::settings::Motion;

/// In `auto`, a grab whose tiles cost this many times the video's bit rate is moving: full
/// motion (about 20 times), a photo sliding over part of the screen. Scrolling a full-screen
/// terminal changes all of it but costs about a fifth of the video's rate as tiles (text
/// compresses), and typing nothing: neither ever comes near. Below twice, video would save
/// little and blur the text.
const COSTLIER_THAN_VIDEO: f64 = 2.0;
/// In `video`, the bar is lower: a small clip counts, scrolling text still does not.
const SOME_OF_THE_VIDEO: f64 = 0.5;
/// When the tiles' cost is not known (nobody took adaptive tiles), a grab that changed this
/// share of the screen is moving, in `auto` and in `video`.
const MOVING_SHARE: f64 = 0.5;
const SOME_MOVING_SHARE: f64 = 0.02;
/// Below this share of the screen a grab is calm: video ends after [`CALM_FOR`] of those.
const CALM_SHARE: f64 = 0.02;
/// How long the screen must stay calm before tiles take over again.
pub const CALM_FOR: Duration = Duration::from_secs(1);
/// Grabs looked back at: about two thirds of a second at the share's rate, 4 to 20 grabs.
const WINDOW_SECONDS: f64 = 2.0 / 3.0;

/// One grab, as the detector sees it.
#[derive(Clone, Copy, Debug)]
pub struct Grab {
    /// Share of the screen's area that changed, 0 to 1.
    pub changed: f64,
    /// Bytes the tiles of this grab cost an adaptive viewer, when they were encoded.
    pub tile_bytes: Option<usize>,
}

/// The detector's state: the last grabs, and whether the share is in video.
#[derive(Debug, Default)]
pub struct MotionDetector {
    recent: VecDeque<bool>,
    in_video: bool,
    calm_since: Option<Instant>,
}

impl MotionDetector {
    /// Whether the share should be in video after `grab`, taken at `now`, with the share at
    /// `fps` and video costing `video_bps`.
    pub fn observe(
        &mut self,
        grab: Grab,
        now: Instant,
        choice: Motion,
        fps: u32,
        video_bps: u32,
    ) -> bool {
        let window = ((f64::from(fps) * WINDOW_SECONDS).round() as usize).clamp(4, 20);
        let (cost_bar, area_bar) = match choice {
            Motion::Tiles => (f64::INFINITY, f64::INFINITY),
            Motion::Auto => (COSTLIER_THAN_VIDEO, MOVING_SHARE),
            Motion::Video => (SOME_OF_THE_VIDEO, SOME_MOVING_SHARE),
        };
        let moving = match grab.tile_bytes {
            Some(bytes) => {
                grab.changed > 0.0
                    && bytes as f64 * 8.0 * f64::from(fps) >= cost_bar * f64::from(video_bps)
            }
            None => grab.changed >= area_bar,
        };
        self.recent.push_back(moving);
        while self.recent.len() > window {
            self.recent.pop_front();
        }
        if choice == Motion::Tiles {
            self.leave();
            return false;
        }
        if !self.in_video {
            let moved = self.recent.iter().filter(|moving| **moving).count();
            if self.recent.len() == window && moved * 2 > window {
                self.in_video = true;
                self.calm_since = None;
            }
            return self.in_video;
        }
        if grab.changed >= CALM_SHARE {
            self.calm_since = None;
        } else if let Some(since) = self.calm_since {
            if now.saturating_duration_since(since) >= CALM_FOR {
                self.leave();
            }
        } else {
            self.calm_since = Some(now);
        }
        self.in_video
    }

    /// Back to tiles, and a fresh start: the next run of video needs its own run of motion.
    pub fn leave(&mut self) {
        self.in_video = false;
        self.calm_since = None;
        self.recent.clear();
    }

    pub fn in_video(&self) -> bool {
        self.in_video
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BPS: u32 = 4_000_000;

    fn feed(
        detector: &mut MotionDetector,
        start: Instant,
        from: u32,
        grabs: &[Grab],
        choice: Motion,
    ) -> Vec<bool> {
        grabs
            .iter()
            .enumerate()
            .map(|(index, grab)| {
                let at = start + Duration::from_millis(33 * u64::from(from + index as u32));
                detector.observe(*grab, at, choice, 30, BPS)
            })
            .collect()
    }

    fn changed(share: f64) -> Grab {
        Grab {
            changed: share,
            tile_bytes: None,
        }
    }

    #[test]
    fn full_motion_switches_in_after_most_of_twenty_grabs_and_out_after_a_calm_second() {
        let mut detector = MotionDetector::default();
        let start = Instant::now();
        let states = feed(&mut detector, start, 0, &[changed(0.9); 25], Motion::Auto);
        let first = states.iter().position(|on| *on).expect("into video");
        assert_eq!(first, 19, "a full window of moving grabs first");
        assert!(states[first..].iter().all(|on| *on));
        // Calm: still video for about a second, then tiles.
        let calm = feed(&mut detector, start, 25, &[changed(0.0); 40], Motion::Auto);
        let out = calm.iter().position(|on| !on).expect("back to tiles");
        assert!((29..=32).contains(&out), "after about a second: {out}");
    }

    #[test]
    fn typing_and_scrolling_never_switch() {
        let mut detector = MotionDetector::default();
        let start = Instant::now();
        // Scrolling a full-screen terminal: all of it changes, 3 KB of tiles.
        let scrolling = Grab {
            changed: 1.0,
            tile_bytes: Some(3_000),
        };
        let typing = Grab {
            changed: 0.001,
            tile_bytes: Some(150),
        };
        let states = feed(&mut detector, start, 0, &[scrolling; 200], Motion::Auto);
        assert!(states.iter().all(|on| !on));
        let states = feed(&mut detector, start, 200, &[typing; 200], Motion::Auto);
        assert!(states.iter().all(|on| !on));
        let states = feed(&mut detector, start, 400, &[typing; 200], Motion::Video);
        assert!(states.iter().all(|on| !on), "not even when video is asked");
    }

    #[test]
    fn a_costly_region_switches_in_auto_and_a_small_clip_in_video() {
        let start = Instant::now();
        // A photo sliding over a fifth of the screen: 100 KB of JPEG tiles a grab.
        let photo = Grab {
            changed: 0.2,
            tile_bytes: Some(100_000),
        };
        let mut detector = MotionDetector::default();
        assert!(feed(&mut detector, start, 0, &[photo; 20], Motion::Auto)[19]);
        // A 320x240 clip: 12 KB of JPEG tiles a grab.
        let clip = Grab {
            changed: 0.05,
            tile_bytes: Some(12_000),
        };
        let mut detector = MotionDetector::default();
        assert!(!feed(&mut detector, start, 0, &[clip; 40], Motion::Auto)[39]);
        let mut detector = MotionDetector::default();
        assert!(feed(&mut detector, start, 0, &[clip; 20], Motion::Video)[19]);
    }

    #[test]
    fn tiles_only_never_switches_and_leaves_video_at_once() {
        let mut detector = MotionDetector::default();
        let start = Instant::now();
        assert!(feed(&mut detector, start, 0, &[changed(1.0); 20], Motion::Auto)[19]);
        assert!(!feed(&mut detector, start, 20, &[changed(1.0); 1], Motion::Tiles)[0]);
        assert!(!detector.in_video());
        let states = feed(&mut detector, start, 21, &[changed(1.0); 60], Motion::Tiles);
        assert!(states.iter().all(|on| !on));
    }

    #[test]
    fn motion_with_pauses_stays_in_video() {
        let mut detector = MotionDetector::default();
        let start = Instant::now();
        assert!(feed(&mut detector, start, 0, &[changed(1.0); 20], Motion::Auto)[19]);
        // A clip at 12 frames a second captured at 30: two of five grabs see nothing new.
        let mut grabs = Vec::new();
        for step in 0..150 {
            grabs.push(changed(if step % 5 < 3 { 1.0 } else { 0.0 }));
        }
        let states = feed(&mut detector, start, 20, &grabs, Motion::Auto);
        assert!(states.iter().all(|on| *on));
    }
}
