//! The share's video track, kept by the capture thread: the encoder, the init segment pages start
//! from, and the pictures since the last keyframe, which a page that joins mid-motion (or fell
//! behind a keyframe) is sent before the newest picture.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::budget::EncodeBudget;
use super::fmp4::{self, TIMESCALE};
use super::{EncodedPicture, VideoError};
use crate::pixels::Picture;

/// What a page needs before the first picture: the `codecs` string for its SourceBuffer and the
/// init segment. A new one comes with every new encoder (another size, another frame rate).
#[derive(Debug)]
pub struct VideoStart {
    pub codec: String,
    pub init: Bytes,
    pub width: u32,
    pub height: u32,
}

/// One encoded picture as a media segment, with the frame it belongs to.
#[derive(Clone, Debug)]
pub struct VideoPicture {
    pub seq: u64,
    pub keyframe: bool,
    pub segment: Bytes,
}

/// The longest a picture is said to last: a stall longer than this is not played as slow motion.
const LONGEST_PICTURE: Duration = Duration::from_millis(200);

#[cfg(target_os = "linux")]
type Encoder = super::H264Encoder;

/// Elsewhere the share stays on tiles: OpenH264 is built on Linux only for now.
#[cfg(not(target_os = "linux"))]
#[derive(Debug)]
struct Encoder;

#[cfg(not(target_os = "linux"))]
impl Encoder {
    fn with_bitrate(_: u32, _: u32, _: u32, _: u32) -> Result<Self, VideoError> {
        Err(VideoError::Encoder(
            "video is not built for this platform yet".to_owned(),
        ))
    }
    fn size(&self) -> (u32, u32) {
        (0, 0)
    }
    fn ask_keyframe(&mut self) {}
    fn encode(&mut self, _: &Picture, _: u64) -> Result<Option<EncodedPicture>, VideoError> {
        Err(VideoError::Encoder(
            "video is not built for this platform yet".to_owned(),
        ))
    }
}

#[derive(Debug, Default)]
pub struct VideoTrack {
    encoder: Option<(Encoder, u32)>,
    start: Option<Arc<VideoStart>>,
    /// Pictures from the last keyframe on, the keyframe first.
    gop: Vec<VideoPicture>,
    /// The group of pictures before that keyframe, when the same encoder made it: a page
    /// still in it goes on from where it is, without starting again.
    earlier: Arc<[VideoPicture]>,
    /// The `moof` sequence number of the next picture.
    fragment: u32,
    decode_time: u64,
    last_at: Option<Instant>,
    began: Option<Instant>,
    /// A size the encoder refused, and why: not tried again until the size changes.
    refused: Option<((u32, u32), String)>,
    /// How large the picture is encoded, for the encoder to keep to its share of the CPU.
    budget: EncodeBudget,
    /// The share's clock: a run of video starts at its time on it, so that a page plays the
    /// sound (stamped on the same clock) in step.
    epoch: Option<Instant>,
}

impl VideoTrack {
    /// A track whose runs start at their time since `epoch`.
    pub fn on_clock(epoch: Instant) -> Self {
        Self {
            epoch: Some(epoch),
            ..Self::default()
        }
    }

    /// Encodes `picture` as frame `seq`, taken at `now`; `fresh` when it starts a run of video
    /// (a keyframe, so that every page can start from it). `Ok(false)` when the encoder skipped
    /// it.
    pub fn encode(
        &mut self,
        picture: &Picture,
        seq: u64,
        fps: u32,
        now: Instant,
        fresh: bool,
    ) -> Result<bool, VideoError> {
        let size = self.budget.size_for(picture.width(), picture.height());
        if let Some((refused, why)) = &self.refused
            && *refused == size
        {
            return Err(VideoError::Encoder(why.clone()));
        }
        let fits = self
            .encoder
            .as_ref()
            .is_some_and(|(encoder, rate)| encoder.size() == size && *rate == fps);
        if !fits {
            self.encoder = None;
            self.start = None;
            self.gop.clear();
            self.earlier = Arc::new([]);
            let bps = super::bitrate_shrunk((picture.width(), picture.height()), size, fps);
            match Encoder::with_bitrate(size.0, size.1, fps, bps) {
                Ok(encoder) => self.encoder = Some((encoder, fps)),
                Err(error) => {
                    self.refused = Some((size, error.to_string()));
                    return Err(error);
                }
            }
        }
        self.refused = None;
        let Some((encoder, _)) = self.encoder.as_mut() else {
            return Ok(false);
        };
        if fresh {
            encoder.ask_keyframe();
        }
        let began = *self.began.get_or_insert(now);
        let at_ms = now.saturating_duration_since(began).as_millis() as u64;
        let work = Instant::now();
        let result = encoder.encode(picture, at_ms);
        if self.budget.spent(work.elapsed(), fps, now) {
            let (width, height) = self.budget.size_for(picture.width(), picture.height());
            tracing::info!(
                width,
                height,
                "the video is encoded at this size from now on, to keep within its share of the CPU"
            );
        }
        let encoded = match result {
            Ok(Some(encoded)) => encoded,
            Ok(None) => return Ok(false),
            Err(error) => {
                // The encoder's state is unknown now: start again with a new one next time.
                self.encoder = None;
                self.start = None;
                self.gop.clear();
                self.earlier = Arc::new([]);
                return Err(error);
            }
        };
        self.add(encoded, seq, fps, now);
        Ok(true)
    }

    fn add(&mut self, encoded: EncodedPicture, seq: u64, fps: u32, now: Instant) {
        let sample = fmp4::sample_of(&encoded.annex_b);
        if encoded.keyframe {
            self.earlier = std::mem::take(&mut self.gop).into();
            if let Some(sets) = &sample.parameter_sets
                && self.start.as_ref().is_none_or(|start| {
                    start.codec != sets.codec()
                        || (start.width, start.height) != (encoded.width, encoded.height)
                })
            {
                self.earlier = Arc::new([]);
                self.start = Some(Arc::new(VideoStart {
                    codec: sets.codec(),
                    init: fmp4::init_segment(sets, encoded.width, encoded.height),
                    width: encoded.width,
                    height: encoded.height,
                }));
            }
            self.gop.clear();
        }
        if self.last_at.is_none()
            && let Some(epoch) = self.epoch
        {
            // A run starts at its time on the share's clock (never earlier than the last run
            // ended: times only go forward in a page's buffer). Within a run each picture
            // follows the one before, or a page's browser would drop pictures until a keyframe.
            let since = now.saturating_duration_since(epoch).as_secs_f64();
            self.decode_time = self
                .decode_time
                .max((since * f64::from(TIMESCALE)).round() as u64);
        }
        // Each picture lasts as long as the gap before it: the best guess of the gap after it.
        let nominal = Duration::from_secs(1) / fps.max(1);
        let lasted = self
            .last_at
            .map_or(nominal, |last| now.saturating_duration_since(last))
            .clamp(Duration::from_millis(5), LONGEST_PICTURE);
        self.last_at = Some(now);
        let duration = (lasted.as_secs_f64() * f64::from(TIMESCALE)).round() as u32;
        self.fragment = self.fragment.wrapping_add(1).max(1);
        let segment = fmp4::media_segment(
            self.fragment,
            self.decode_time,
            duration,
            encoded.keyframe,
            &sample.avcc,
        );
        self.decode_time += u64::from(duration);
        if self.start.is_none() || (self.gop.is_empty() && !encoded.keyframe) {
            // No keyframe to start from (cannot happen with OpenH264, whose first picture is
            // one): nothing a page could decode.
            return;
        }
        self.gop.push(VideoPicture {
            seq,
            keyframe: encoded.keyframe,
            segment,
        });
    }

    /// The start pages need, once a keyframe made one.
    pub fn start(&self) -> Option<Arc<VideoStart>> {
        self.start.clone()
    }

    /// The pictures since the last keyframe, the keyframe first.
    pub fn gop(&self) -> Arc<[VideoPicture]> {
        self.gop.iter().cloned().collect()
    }

    /// The group of pictures before the keyframe, when a page in it can go on from there.
    pub fn earlier(&self) -> Arc<[VideoPicture]> {
        self.earlier.clone()
    }

    /// The end of a run of video: the pictures are of no use to anyone now. The encoder stays
    /// for the next run, which starts with a keyframe.
    pub fn stop(&mut self) {
        self.gop.clear();
        self.earlier = Arc::new([]);
        self.last_at = None;
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn picture(step: u32) -> Picture {
        let mut picture = Picture::filled(320, 240, [30, 30, 30]);
        picture.paste(&Picture::filled(40, 40, [200, 20, 20]), step * 5, 100);
        picture
    }

    #[test]
    fn a_run_starts_with_a_keyframe_and_keeps_its_group_of_pictures() {
        let mut track = VideoTrack::default();
        let start = Instant::now();
        for step in 0..10u32 {
            let at = start + Duration::from_millis(33 * u64::from(step));
            track
                .encode(&picture(step), 100 + u64::from(step), 30, at, step == 0)
                .expect("encodes");
        }
        let gop = track.gop();
        assert_eq!(gop.len(), 10);
        assert!(gop[0].keyframe && gop[1..].iter().all(|picture| !picture.keyframe));
        assert_eq!(gop.last().map(|picture| picture.seq), Some(109));
        assert!(track.earlier().is_empty(), "the run's first keyframe");
        let begin = track.start().expect("a start");
        assert!(begin.codec.starts_with("avc1."), "{}", begin.codec);
        assert_eq!((begin.width, begin.height), (320, 240));

        // The next keyframe follows on from the last picture.
        track
            .encode(
                &picture(10),
                110,
                30,
                start + Duration::from_millis(340),
                true,
            )
            .expect("encodes");
        assert_eq!(track.earlier().len(), 10, "the group before it");
        assert_eq!(track.gop().len(), 1);

        track.stop();
        assert!(track.gop().is_empty());
        track
            .encode(&picture(11), 200, 30, start + Duration::from_secs(2), true)
            .expect("encodes");
        let gop = track.gop();
        assert!(gop.len() == 1 && gop[0].keyframe, "a new run, a keyframe");
    }

    #[test]
    fn the_encoders_own_keyframes_keep_the_start_and_follow_on() {
        let mut track = VideoTrack::default();
        let start = Instant::now();
        let mut first_start = None;
        let mut keyframes = Vec::new();
        for step in 0..70u32 {
            let at = start + Duration::from_millis(33 * u64::from(step));
            track
                .encode(&picture(step % 50), u64::from(step), 30, at, step == 0)
                .expect("encodes");
            let gop = track.gop();
            if gop.len() == 1 {
                keyframes.push((step, track.earlier().last().map(|picture| picture.seq)));
            }
            let now = track.start().expect("a start");
            let first = first_start.get_or_insert_with(|| now.clone());
            assert!(Arc::ptr_eq(first, &now), "the same start at picture {step}");
        }
        assert_eq!(keyframes, vec![(0, None), (60, Some(59))]);
    }

    #[test]
    fn a_budget_that_shrinks_the_picture_starts_a_smaller_video_at_a_keyframe() {
        let mut track = VideoTrack::default();
        let start = Instant::now();
        let at = |step: u32| start + Duration::from_millis(33 * u64::from(step));
        for step in 0..5u32 {
            track
                .encode(&picture(step), u64::from(step), 30, at(step), step == 0)
                .expect("encodes");
        }
        let full = track.start().expect("a start");
        assert_eq!((full.width, full.height), (320, 240));
        // A second of pictures that took 40 ms each: far beyond the encoder's budget.
        for step in 0..30u32 {
            track
                .budget
                .spent(Duration::from_millis(40), 30, at(5 + step));
        }
        track
            .encode(&picture(5), 5, 30, at(40), false)
            .expect("encodes");
        let smaller = track.start().expect("a new start");
        assert_eq!((smaller.width, smaller.height), (212, 160));
        let gop = track.gop();
        assert!(
            gop.len() == 1 && gop[0].keyframe,
            "the smaller video starts at a keyframe"
        );
        assert!(
            track.earlier().is_empty(),
            "nothing of the larger one goes on"
        );
    }

    #[test]
    fn a_size_the_encoder_refuses_is_said_and_not_retried() {
        let mut track = VideoTrack::default();
        let huge = Picture::new(4000, 2000);
        let error = track
            .encode(&huge, 1, 30, Instant::now(), true)
            .expect_err("refused");
        assert!(error.to_string().contains("4000x2000"), "{error}");
        assert!(track.encode(&huge, 2, 30, Instant::now(), true).is_err());
        assert!(
            track
                .encode(&picture(0), 3, 30, Instant::now(), true)
                .expect("another size works"),
        );
    }
}
