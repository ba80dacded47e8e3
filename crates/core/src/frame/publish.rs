//! Turns grabs into frames, on the capture thread: finds what changed (tile by tile, where damage
//! says to look), joins it into few rectangles, and encodes those once for every viewer up to date.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::glimpse::Glimpse;
use super::tiles::{TileGrid, merge};
use super::video::{FrameVideo, VideoRun};
use super::wire::{Piece, PieceBody, PointerHeader};
use super::{Delivery, EncodeCounters, Frame, FramePointer, Mode, SharedShape};
use crate::capture::{Damage, PointerState};
use crate::encode::{self, EncodeError};
use crate::pixels::{Picture, Rect};
use crate::settings::Motion;
use crate::video::bitrate_for;
use crate::video::motion::{Grab, MotionDetector};
use crate::video::track::VideoTrack;

/// Pointer shapes kept for pages that ask for one just replaced (animated cursors).
const RECENT_SHAPES: usize = 8;

/// Below this area a JPEG's own tables (about 600 bytes) outweigh what it saves over PNG.
const JPEG_MIN_AREA: u64 = 128 * 128;

/// One grab, ready to publish.
#[derive(Debug)]
pub(crate) struct Capture<'a> {
    /// The picture viewers get (already scaled down, when the share scales).
    pub picture: &'a Picture,
    pub damage: Damage,
    pub pointer: Option<PointerState>,
    /// The monitor's own width, to scale the pointer like the picture.
    pub monitor_width: u32,
    pub quality: u8,
    pub show_pointer: bool,
    /// How viewers take the screen (by [`Delivery::index`]): their deltas are encoded now, the
    /// others on demand; video only when some page plays it.
    pub deliveries: [bool; 3],
    /// The share's frame rate, which the video is encoded for.
    pub fps: u32,
    /// When motion goes out as video.
    pub motion: Motion,
}

/// What a frame shows of the pointer, to tell whether it moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PointerKey {
    x: i32,
    y: i32,
    shape: u32,
}

#[derive(Debug)]
pub(crate) struct Publisher {
    grid: Option<TileGrid>,
    seq: u64,
    shape: Option<Arc<SharedShape>>,
    /// The last few shapes, newest last, shared with every frame.
    shapes: Arc<[Arc<SharedShape>]>,
    pointer: Option<PointerKey>,
    /// The pointer as the last frame showed it, for frames made without a grab.
    last_pointer: Option<FramePointer>,
    counters: Arc<EncodeCounters>,
    motion: MotionDetector,
    video: VideoTrack,
    /// The run of video under way: its first frame and the frame before it.
    run: Option<VideoRun>,
    /// The last run that ended: pages that watched it repaint from its base.
    last_run: Option<VideoRun>,
    /// What the last frame's tiles cost an adaptive viewer, for the motion detector.
    last_tile_bytes: Option<usize>,
    /// Why video is not available, while it is not.
    video_error: Option<String>,
    /// A run ended and no frame has told the pages yet.
    run_just_ended: bool,
    /// Rows of the last grab, looked at instead of the tiles while only video pages watch.
    glimpse: Glimpse,
    /// Grabs only glimpsed since the tiles were last compared: the tiles lag the screen.
    glimpsed: u32,
}

impl Publisher {
    /// A publisher whose video runs are stamped with their time since `epoch` (the share's
    /// clock, which the sound shares).
    pub fn on_clock(counters: Arc<EncodeCounters>, epoch: std::time::Instant) -> Self {
        Self {
            video: VideoTrack::on_clock(epoch),
            ..Self::new(counters)
        }
    }

    pub fn new(counters: Arc<EncodeCounters>) -> Self {
        Self {
            grid: None,
            seq: first_seq(),
            shape: None,
            shapes: Arc::new([]),
            pointer: None,
            last_pointer: None,
            counters,
            motion: MotionDetector::default(),
            video: VideoTrack::default(),
            run: None,
            last_run: None,
            last_tile_bytes: None,
            video_error: None,
            run_just_ended: false,
            glimpse: Glimpse::default(),
            glimpsed: 0,
        }
    }

    /// Whether the share is sending motion as video now.
    pub fn in_video(&self) -> bool {
        self.run.is_some()
    }

    /// Whether the tiles lag the screen (grabs were only glimpsed since they were compared).
    pub fn tiles_behind(&self) -> bool {
        self.glimpsed > 0
    }

    /// The next grab compares the tiles whole, even in video: before a pause, so that pages are
    /// left with the exact picture.
    pub fn compare_next_grab(&mut self) {
        if self.glimpsed > 0 {
            self.glimpsed = u32::MAX;
        }
    }

    /// The size the video is encoded at, while the share is in video: smaller than the screen
    /// when the presenter's CPU cannot afford the full size.
    pub fn video_size(&self) -> Option<(u32, u32)> {
        self.run.as_ref()?;
        self.video.start().map(|start| (start.width, start.height))
    }

    /// Why the share cannot send video, while it cannot (it stays on tiles meanwhile).
    pub fn video_error(&self) -> Option<&str> {
        self.video_error.as_deref()
    }

    /// Ends the run of video under way, if one is: the next frame brings video pages back to
    /// tiles.
    fn end_run(&mut self) -> bool {
        let Some(run) = self.run.take() else {
            return false;
        };
        self.last_run = Some(run);
        self.run_just_ended = true;
        self.video.stop();
        self.motion.leave();
        true
    }

    /// Whether this grab goes out as video, encoding it if so (as frame `seq`).
    fn video_for(
        &mut self,
        capture: &Capture<'_>,
        changed: f64,
        seq: u64,
        now: Instant,
    ) -> Option<FrameVideo> {
        let picture = capture.picture;
        let grab = Grab {
            changed,
            tile_bytes: self.last_tile_bytes.take(),
        };
        let bps = bitrate_for(picture.width(), picture.height(), capture.fps);
        let moving = self
            .motion
            .observe(grab, now, capture.motion, capture.fps, bps);
        if !moving || !capture.deliveries[Delivery::Video.index()] {
            self.end_run();
            return None;
        }
        let fresh = self.run.is_none();
        let run = self.run.get_or_insert(VideoRun {
            first: seq,
            last: seq,
            base: seq - 1,
        });
        run.last = seq;
        let run = *run;
        // A grab with nothing new in it (the pointer moved) adds no picture.
        if fresh || changed > 0.0 {
            match self.video.encode(picture, seq, capture.fps, now, fresh) {
                Ok(_) => self.video_error = None,
                Err(error) => {
                    tracing::warn!(%error, "video unavailable; staying on tiles");
                    self.video_error = Some(error.to_string());
                    self.end_run();
                    return None;
                }
            }
        }
        let Some(start) = self.video.start() else {
            self.end_run();
            return None;
        };
        Some(FrameVideo {
            run,
            start,
            pictures: self.video.gop(),
            earlier: self.video.earlier(),
        })
    }

    /// The next frame, or `None` when nothing a viewer could see has changed.
    pub fn publish(
        &mut self,
        capture: Capture<'_>,
        now: Instant,
    ) -> Result<Option<Frame>, EncodeError> {
        let next = self.seq + 1;
        let picture = capture.picture;
        if picture.width() > u32::from(u16::MAX) || picture.height() > u32::from(u16::MAX) {
            return Err(EncodeError::TooLarge(picture.width(), picture.height()));
        }
        let fits = self
            .grid
            .as_ref()
            .is_some_and(|grid| grid.fits(picture, capture.quality));
        // In video with only video pages watching, the tiles are compared about once a second
        // (for `screen.png` and the previews) and when the run ends, not at every grab.
        let tiles_wanted = capture.deliveries[Delivery::Lossless.index()]
            || capture.deliveries[Delivery::Adaptive.index()];
        // Whether the screen still moves is then told by a glimpse, even when the tiles are
        // compared: tiles a second behind would say it moved when it has been still.
        let video_only = fits && self.run.is_some() && !tiles_wanted;
        let glance = video_only && self.glimpsed < capture.fps;
        let glimpsed_share =
            video_only.then(|| self.glimpse.changed_share(picture, &capture.damage));
        let (reset, mut boxes, mut settled) = if glance {
            self.glimpsed += 1;
            (false, Vec::new(), Vec::new())
        } else {
            self.compare_tiles(&capture, next, now)
        };
        let changed_share = glimpsed_share.unwrap_or_else(|| {
            let area = picture.bounds().area().max(1);
            boxes.iter().map(Rect::area).sum::<u64>() as f64 / area as f64
        });
        let video = if reset {
            // Another size or quality: tiles first, video again once motion shows again.
            self.end_run();
            self.motion.leave();
            None
        } else {
            self.video_for(&capture, changed_share, next, now)
        };
        if glance && video.is_none() {
            // The run ended at this grab: the tiles catch up now, for an exact repaint.
            (_, boxes, settled) = self.compare_tiles(&capture, next, now);
        }
        let run_ended = self.run_just_ended;
        let pointer = self.pointer_view(&capture);
        let key = pointer.as_ref().map(|pointer| PointerKey {
            x: pointer.x,
            y: pointer.y,
            shape: pointer.shape.id,
        });
        let fresh_video = video.as_ref().is_some_and(|video| {
            video
                .pictures
                .last()
                .is_some_and(|picture| picture.seq == next)
        });
        if !reset
            && boxes.is_empty()
            && settled.is_empty()
            && key == self.pointer
            && !run_ended
            && !fresh_video
        {
            return Ok(None);
        }
        let Some(grid) = self.grid.as_mut() else {
            return Ok(None);
        };
        self.seq = next;
        self.pointer = key;
        let pointer_as_before =
            PointerHeader::of(pointer.as_ref()) == PointerHeader::of(self.last_pointer.as_ref());
        self.last_pointer = pointer.clone();
        self.run_just_ended = false;
        let changed = merge(&boxes);
        let refined = merge(&settled);
        let mut lossy = Vec::new();
        let mut frame = Frame::new(
            next,
            grid,
            (picture.width(), picture.height()),
            pointer,
            self.counters.clone(),
        );
        frame.set_shapes(self.shapes.clone());
        frame.set_pointer_as_before(pointer_as_before);
        let in_video = video.is_some();
        if let Some(video) = video {
            frame.set_video(video);
            frame.prepare_video_delta();
        } else if let Some(run) = self.last_run {
            frame.set_after_run(run);
        }
        if !reset {
            let mut pieces = PieceCache::default();
            for mode in Mode::ALL {
                // Video pages take their tiles as adaptive ones, while the share is on tiles.
                let wanted = capture.deliveries[mode.index()]
                    || (mode == Mode::Adaptive
                        && !in_video
                        && capture.deliveries[Delivery::Video.index()]);
                if !wanted {
                    continue;
                }
                let mut out = Vec::with_capacity(changed.len() + refined.len());
                for rect in &changed {
                    let jpeg = mode == Mode::Adaptive
                        && rect.area() >= JPEG_MIN_AREA
                        && grid.is_hot(*rect);
                    if jpeg {
                        lossy.push(*rect);
                    }
                    out.push(pieces.get(picture, *rect, jpeg, capture.quality, &self.counters)?);
                }
                // Lossless viewers already have these pixels exactly.
                if mode == Mode::Adaptive {
                    for rect in &refined {
                        out.push(pieces.get(
                            picture,
                            *rect,
                            false,
                            capture.quality,
                            &self.counters,
                        )?);
                    }
                }
                let refs: Vec<&Piece> = out.iter().map(Arc::as_ref).collect();
                let delta = frame.delta_bytes(&refs);
                if mode == Mode::Adaptive {
                    self.last_tile_bytes = Some(delta.len());
                }
                frame.prepare_delta(mode, delta);
            }
        }
        for rect in lossy {
            grid.mark_lossy(rect, now);
        }
        Ok(Some(frame))
    }

    /// Compares the grab with the tiles, keeping those that changed (all of them when the grid
    /// is new: another size or quality). Returns whether the grid is new, the changed boxes and
    /// the tiles that settled.
    fn compare_tiles(
        &mut self,
        capture: &Capture<'_>,
        seq: u64,
        now: Instant,
    ) -> (bool, Vec<Rect>, Vec<Rect>) {
        let picture = capture.picture;
        // Damage tells what changed since the last grab; tiles only glimpsed are older.
        let damage = if self.glimpsed > 0 {
            &Damage::Unknown
        } else {
            &capture.damage
        };
        self.glimpsed = 0;
        match &mut self.grid {
            Some(grid) if grid.fits(picture, capture.quality) => {
                let boxes = grid.apply(picture, damage, seq, now);
                let settled = grid.settle(seq, now);
                (false, boxes, settled)
            }
            _ => {
                self.grid = Some(TileGrid::new(picture, seq, capture.quality, now));
                (true, Vec::new(), Vec::new())
            }
        }
    }

    /// While nothing is grabbed (paused, the source lost), regions sent lossy still become exact
    /// once still: a frame of those tiles, lossless, from the pixels they keep. `None` when no
    /// tile needs it.
    pub fn settle_without_grab(
        &mut self,
        now: Instant,
        deliveries: [bool; 3],
    ) -> Result<Option<Frame>, EncodeError> {
        // No grabs (paused, the source lost): video ends, and video pages get the exact picture.
        self.end_run();
        let run_ended = std::mem::take(&mut self.run_just_ended);
        let Some(grid) = self.grid.as_mut() else {
            return Ok(None);
        };
        let next = self.seq + 1;
        let settled = grid.settle(next, now);
        if settled.is_empty() && !run_ended {
            return Ok(None);
        }
        self.seq = next;
        let size = grid.size();
        let pointer = self.last_pointer.clone();
        let mut frame = Frame::new(next, grid, size, pointer, self.counters.clone());
        frame.set_shapes(self.shapes.clone());
        frame.set_pointer_as_before(true);
        if let Some(run) = self.last_run {
            frame.set_after_run(run);
        }
        let tiles: Vec<_> = frame
            .tiles()
            .iter()
            .filter(|tile| tile.changed_at() == next)
            .cloned()
            .collect();
        for mode in Mode::ALL {
            let wanted = deliveries[mode.index()]
                || (mode == Mode::Adaptive && deliveries[Delivery::Video.index()]);
            if !wanted {
                continue;
            }
            let mut pieces = Vec::new();
            if mode == Mode::Adaptive {
                for tile in &tiles {
                    pieces.push(tile.piece(Mode::Lossless, grid.quality(), &self.counters)?);
                }
            }
            let refs: Vec<&Piece> = pieces.iter().collect();
            frame.prepare_delta(mode, frame.delta_bytes(&refs));
        }
        Ok(Some(frame))
    }

    fn pointer_view(&mut self, capture: &Capture<'_>) -> Option<FramePointer> {
        let state = capture.pointer.as_ref()?;
        if !capture.show_pointer || !state.visible {
            return None;
        }
        let shape = match &self.shape {
            Some(shared) if shared.shape.serial == state.shape.serial => shared.clone(),
            previous => {
                // Ids start at random: `pointer.png?shape=ID` is cached for ever, and another
                // share on the same address must not hit this one's shapes.
                let id = previous
                    .as_ref()
                    .map_or_else(|| first_seq() as u32, |shared| shared.id.wrapping_add(1))
                    .max(1);
                let shared = Arc::new(SharedShape::new(id, state.shape.clone()));
                let keep = self.shapes.len().min(RECENT_SHAPES - 1);
                let recent = self.shapes[self.shapes.len() - keep..].iter().cloned();
                self.shapes = recent.chain([shared.clone()]).collect();
                self.shape = Some(shared.clone());
                shared
            }
        };
        let scale = f64::from(capture.picture.width()) / f64::from(capture.monitor_width.max(1));
        Some(FramePointer {
            x: (f64::from(state.x) * scale).round() as i32,
            y: (f64::from(state.y) * scale).round() as i32,
            shape,
            scale_per_mille: (scale * 1000.0).round().clamp(1.0, 60_000.0) as u16,
        })
    }
}

/// The pieces of one frame, so that a rectangle sent the same way in both modes (solid, PNG) is
/// encoded once.
#[derive(Default)]
struct PieceCache {
    made: Vec<(Rect, bool, Arc<Piece>)>,
}

impl PieceCache {
    fn get(
        &mut self,
        picture: &Picture,
        rect: Rect,
        jpeg: bool,
        quality: u8,
        counters: &EncodeCounters,
    ) -> Result<Arc<Piece>, EncodeError> {
        let solid = picture.solid_colour(rect);
        let jpeg = jpeg && solid.is_none();
        if let Some((_, _, piece)) = self
            .made
            .iter()
            .find(|(made, made_jpeg, _)| *made == rect && *made_jpeg == jpeg)
        {
            return Ok(piece.clone());
        }
        let body = match solid {
            Some(rgb) => PieceBody::Solid(rgb),
            None => {
                counters.count_rect();
                if jpeg {
                    PieceBody::Jpeg(Bytes::from(encode::jpeg_of(picture, rect, quality)?))
                } else {
                    PieceBody::from(encode::lossless_of(picture, rect)?)
                }
            }
        };
        let piece = Arc::new(Piece { rect, body });
        self.made.push((rect, jpeg, piece.clone()));
        Ok(piece)
    }
}

/// A random start in [2^32, 2^40): frame numbers of two shares never meet, and stay exact in
/// JavaScript's numbers (below 2^53).
fn first_seq() -> u64 {
    let mut bytes = [0u8; 8];
    let random = match getrandom::fill(&mut bytes) {
        Ok(()) => u64::from_le_bytes(bytes),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos() as u64),
    };
    (1 << 32) + random % ((1 << 40) - (1 << 32))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::wire;

    fn capture(picture: &Picture, modes: [bool; 2]) -> Capture<'_> {
        let deliveries = [modes[0], modes[1], false];
        Capture {
            picture,
            damage: Damage::Unknown,
            pointer: None,
            monitor_width: picture.width(),
            quality: 80,
            show_pointer: true,
            deliveries,
            fps: 30,
            motion: Motion::Auto,
        }
    }

    #[test]
    fn first_frame_then_deltas_of_what_changed() {
        let counters = Arc::new(EncodeCounters::default());
        let mut publisher = Publisher::new(counters.clone());
        let mut picture = Picture::filled(300, 200, [10, 10, 10]);
        let now = Instant::now();
        let first = publisher
            .publish(capture(&picture, [true, true]), now)
            .expect("publishes")
            .expect("a first frame");
        assert!(first.seq() >= 1 << 32);
        assert!(
            publisher
                .publish(capture(&picture, [true, true]), now)
                .expect("publishes")
                .is_none(),
            "nothing changed, no frame"
        );
        picture.paste(&Picture::filled(6, 12, [200, 200, 200]), 100, 100);
        picture.paste(&Picture::filled(1, 12, [0, 0, 0]), 102, 100);
        let second = publisher
            .publish(capture(&picture, [true, true]), now)
            .expect("publishes")
            .expect("a change");
        assert_eq!(second.seq(), first.seq() + 1);
        let lossless = second
            .update_ready(first.seq(), Mode::Lossless)
            .expect("prepared");
        let adaptive = second
            .update_ready(first.seq(), Mode::Adaptive)
            .expect("prepared");
        assert_eq!(lossless, adaptive, "a small change is sent the same way");
        let update = wire::parse(&lossless).expect("parses");
        assert!(!update.header.full);
        assert_eq!(update.pieces.len(), 1);
        assert_eq!(update.pieces[0].rect, Rect::new(100, 100, 6, 12));
        assert_eq!(counters.snapshot().rects, 1, "encoded once for both modes");
    }

    #[test]
    fn moving_regions_go_lossy_in_adaptive_mode_then_settle_lossless() {
        use std::time::Duration;
        let mut publisher = Publisher::new(Arc::new(EncodeCounters::default()));
        let start = Instant::now();
        let mut picture = Picture::filled(256, 256, [0, 0, 0]);
        let video = Rect::new(0, 0, 192, 192);
        let mut last = None;
        // A "video" region changing every 100 ms: by the third change its tiles are hot.
        for step in 0..4u8 {
            let mut frame = Picture::new(192, 192);
            for y in 0..192 {
                frame.paste(
                    &Picture::filled(192, 1, [step * 40, y as u8, 255 - y as u8]),
                    0,
                    y,
                );
            }
            picture.paste(&frame, 0, 0);
            let at = start + Duration::from_millis(100 * u64::from(step));
            last = publisher
                .publish(capture(&picture, [true, true]), at)
                .expect("publishes");
        }
        let frame = last.expect("a frame");
        let kinds = |mode: Mode| -> Vec<u8> {
            let bytes = frame.update_ready(frame.seq() - 1, mode).expect("prepared");
            wire::parse(&bytes)
                .expect("parses")
                .pieces
                .iter()
                .map(|piece| piece.body.kind())
                .collect()
        };
        assert_eq!(
            kinds(Mode::Adaptive),
            vec![2],
            "a moving region goes as JPEG"
        );
        assert_eq!(kinds(Mode::Lossless), vec![1], "never for sharp viewers");

        // Still for a second: adaptive viewers get it again, exact; sharp viewers get nothing.
        let settled = publisher
            .publish(
                capture(&picture, [true, true]),
                start + Duration::from_millis(300) + super::super::tiles::SETTLE_AFTER,
            )
            .expect("publishes")
            .expect("a repaint frame");
        let adaptive = wire::parse(
            &settled
                .update_ready(frame.seq(), Mode::Adaptive)
                .expect("prepared"),
        )
        .expect("parses");
        assert!(!adaptive.pieces.is_empty());
        assert!(
            adaptive.pieces.iter().all(|piece| piece.body.is_lossless()),
            "repainted lossless"
        );
        let covered: u64 = adaptive.pieces.iter().map(|piece| piece.rect.area()).sum();
        assert!(covered >= video.area(), "the whole region is repainted");
        let lossless = wire::parse(
            &settled
                .update_ready(frame.seq(), Mode::Lossless)
                .expect("prepared"),
        )
        .expect("parses");
        assert!(lossless.pieces.is_empty());
    }

    #[test]
    fn lossy_regions_are_repainted_even_without_grabs() {
        use std::time::Duration;
        let mut publisher = Publisher::new(Arc::new(EncodeCounters::default()));
        let start = Instant::now();
        let mut picture = Picture::filled(256, 256, [0, 0, 0]);
        for step in 0..4u8 {
            let mut video = Picture::new(192, 192);
            for y in 0..192 {
                video.paste(&Picture::filled(192, 1, [step * 40, y as u8, 9]), 0, y);
            }
            picture.paste(&video, 0, 0);
            let at = start + Duration::from_millis(100 * u64::from(step));
            publisher
                .publish(capture(&picture, [true, true]), at)
                .expect("publishes");
        }
        // Paused: no grabs. Too soon, nothing; a second later, the exact repaint.
        let soon = start + Duration::from_millis(500);
        assert!(
            publisher
                .settle_without_grab(soon, [true, true, false])
                .expect("ok")
                .is_none()
        );
        let later = start + Duration::from_millis(300) + super::super::tiles::SETTLE_AFTER;
        let frame = publisher
            .settle_without_grab(later, [true, true, false])
            .expect("ok")
            .expect("a repaint");
        let adaptive = wire::parse(
            &frame
                .update_ready(frame.seq() - 1, Mode::Adaptive)
                .expect("prepared"),
        )
        .expect("parses");
        assert_eq!(adaptive.pieces.len(), 9, "the nine tiles under the video");
        assert!(adaptive.pieces.iter().all(|p| p.body.is_lossless()));
        assert!(
            frame
                .tiles()
                .iter()
                .all(|tile| tile.changed_at() <= frame.seq())
        );
        assert!(
            publisher
                .settle_without_grab(later, [true, true, false])
                .expect("ok")
                .is_none()
        );
    }

    #[test]
    fn pointer_moves_are_frames_without_pixels() {
        let mut publisher = Publisher::new(Arc::new(EncodeCounters::default()));
        let picture = Picture::filled(100, 100, [0, 0, 0]);
        let shape = Arc::new(crate::capture::PointerShape {
            serial: 9,
            width: 1,
            height: 1,
            hot_x: 0,
            hot_y: 0,
            rgba: vec![255; 4],
        });
        let at = |x: i32| PointerState {
            x,
            y: 5,
            visible: true,
            shape: shape.clone(),
        };
        let now = Instant::now();
        let mut first = capture(&picture, [true, false]);
        first.pointer = Some(at(1));
        let first = publisher.publish(first, now).expect("ok").expect("frame");
        let mut moved = capture(&picture, [true, false]);
        moved.pointer = Some(at(2));
        let moved = publisher.publish(moved, now).expect("ok").expect("frame");
        let update = wire::parse(
            &moved
                .update_ready(first.seq(), Mode::Lossless)
                .expect("ready"),
        )
        .expect("parses");
        assert!(update.pieces.is_empty());
        let pointer = update.header.pointer.expect("a move carries the pointer");
        assert_eq!(pointer.x, 2);
        let shape = first.pointer().expect("shown").shape.id;
        assert_eq!(pointer.shape, shape, "same shape, same id");
        assert!(moved.shape(shape).is_some(), "the page can fetch it");

        // Pixels change under a pointer that stays: pages with the frame before get no pointer
        // bytes; a page further behind gets the pointer whole.
        let grey = Picture::filled(100, 100, [9, 9, 9]);
        let mut typed = capture(&grey, [true, false]);
        typed.pointer = Some(at(2));
        let typed = publisher.publish(typed, now).expect("ok").expect("frame");
        let delta = typed
            .update_ready(moved.seq(), Mode::Lossless)
            .expect("ready");
        let update = wire::parse(&delta).expect("parses");
        assert_eq!(update.header.pointer, None, "as the frame before");
        assert!(!update.pieces.is_empty());
        let behind = typed
            .update_since(first.seq(), Mode::Lossless)
            .expect("made");
        let behind = wire::parse(&behind).expect("parses");
        assert_eq!(behind.header.pointer.map(|pointer| pointer.x), Some(2));

        let mut hidden = capture(&picture, [true, false]);
        hidden.pointer = Some(at(2));
        hidden.show_pointer = false;
        let hidden = publisher.publish(hidden, now).expect("ok").expect("frame");
        assert!(hidden.pointer().is_none());
    }

    /// A photo-like picture (every pixel differs from its neighbours) shifted by `step`.
    #[cfg(target_os = "linux")]
    fn moving(step: u32) -> Picture {
        let (width, height) = (320u32, 192u32);
        let mut bytes = Vec::with_capacity((width * height * 4) as usize);
        for y in 0..height {
            for x in 0..width {
                let v = ((x + step * 7) * 13 + y * 29) as u8;
                bytes.extend_from_slice(&[v, v.wrapping_mul(3), v ^ 0x5a, 0]);
            }
        }
        Picture::from_bgrx(width, height, bytes).expect("a picture")
    }

    #[cfg(target_os = "linux")]
    fn video_capture(picture: &Picture) -> Capture<'_> {
        Capture {
            deliveries: [false, false, true],
            ..capture(picture, [false, false])
        }
    }

    #[cfg(target_os = "linux")]
    fn kinds(bytes: &[u8]) -> (bool, Vec<u8>) {
        let update = wire::parse(bytes).expect("parses");
        let kinds = update
            .pieces
            .iter()
            .map(|piece| piece.body.kind())
            .collect();
        (update.header.video, kinds)
    }

    /// A publisher after a second of full motion seen by a video page only, and its frames.
    #[cfg(target_os = "linux")]
    fn into_video(start: Instant) -> (Publisher, Vec<Frame>) {
        use std::time::Duration;
        let mut publisher = Publisher::new(Arc::new(EncodeCounters::default()));
        let mut frames = Vec::new();
        for step in 0..30u32 {
            let at = start + Duration::from_millis(33 * u64::from(step));
            if let Some(frame) = publisher
                .publish(video_capture(&moving(step)), at)
                .expect("publishes")
            {
                frames.push(frame);
            }
        }
        (publisher, frames)
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn motion_goes_out_as_video_joiners_start_at_the_keyframe_and_calm_repaints_exactly() {
        use std::time::Duration;
        let start = Instant::now();
        let at = |step: u32| start + Duration::from_millis(33 * u64::from(step));
        let (mut publisher, frames) = into_video(start);
        assert!(publisher.in_video(), "full motion is video");
        let first_video = frames
            .iter()
            .position(|frame| frame.video().is_some())
            .expect("video frames");
        assert!(first_video >= 15, "after most of a window of motion");
        let base = frames[first_video - 1].seq();
        let run = frames[first_video].video().expect("video").run;
        assert_eq!((run.first, run.base), (frames[first_video].seq(), base));

        // Only video pages watch: the grabs after the first of the run are glimpsed, their
        // tiles not compared (that happens about once a second, and when the run ends).
        let compared = frames[first_video + 1..]
            .iter()
            .filter(|frame| {
                frame
                    .tiles()
                    .iter()
                    .any(|tile| tile.changed_at() == frame.seq())
            })
            .count();
        assert_eq!(compared, 0, "grabs of the run whose tiles were compared");
        // A page one frame behind on its stream gets the new picture alone.
        let last = frames.last().expect("frames");
        let previous = &frames[frames.len() - 2];
        let next = last
            .video_update(previous.seq(), Some(run.first))
            .expect("video");
        assert_eq!(kinds(&next), (true, vec![4]));
        // A page that joins now gets the start and every picture since the keyframe.
        let joined = last.video_update(0, None).expect("video");
        let pictures = last.video().expect("video").pictures.len();
        assert_eq!(pictures, frames.len() - first_video, "one keyframe so far");
        let (video, kinds_joined) = kinds(&joined);
        assert!(video);
        assert_eq!(kinds_joined[0], 3);
        assert_eq!(kinds_joined.len(), 1 + pictures);
        // A page behind on the same stream gets what it misses, no start.
        let behind = last
            .video_update(frames[first_video].seq(), Some(run.first))
            .expect("video");
        assert_eq!(kinds(&behind).1.len(), pictures - 1);
        // Pages that take tiles see no video.
        let tiles = last
            .update_since(previous.seq(), Mode::Lossless)
            .expect("tiles");
        let (video, tile_kinds) = kinds(&tiles);
        assert!(!video && !tile_kinds.iter().any(|kind| *kind >= 3));

        // Calm for a second: back to tiles, and the repaint is exact.
        let still = moving(29);
        let mut repaint = None;
        for step in 30..80 {
            if let Some(frame) = publisher
                .publish(video_capture(&still), at(step))
                .expect("publishes")
                && frame.video().is_none()
            {
                repaint = Some(frame);
                break;
            }
        }
        let frame = repaint.expect("tiles again after the calm");
        assert!(!publisher.in_video());
        let bytes = frame.repaint_since(base).expect("repaint");
        let mut canvas = frames[first_video - 1].picture();
        paint_repaint(&mut canvas, &bytes);
        assert!(
            canvas.to_rgba() == still.to_rgba(),
            "the canvas equals the screen"
        );
        assert_eq!(
            frame.repaint_since(base).expect("repaint"),
            bytes,
            "made once for every page of the run"
        );
    }

    /// Paints a lossless repaint's pieces on `canvas`.
    #[cfg(target_os = "linux")]
    fn paint_repaint(canvas: &mut Picture, bytes: &[u8]) {
        let update = wire::parse(bytes).expect("parses");
        assert!(!update.header.video);
        for piece in &update.pieces {
            assert!(
                piece.body.is_lossless(),
                "a lossless repaint sent {piece:?}"
            );
            piece.paint_on(canvas).expect("paints");
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_pause_after_glimpsed_grabs_leaves_pages_the_exact_last_picture() {
        use std::time::Duration;
        let start = Instant::now();
        let at = |step: u32| start + Duration::from_millis(33 * u64::from(step));
        let (mut publisher, frames) = into_video(start);
        assert!(publisher.in_video() && publisher.tiles_behind());
        let base = frames
            .iter()
            .find_map(|frame| frame.video().map(|video| video.run.base))
            .expect("a run");
        // Paused now: one more grab, compared whole, then no more.
        let last = moving(30);
        publisher.compare_next_grab();
        publisher
            .publish(video_capture(&last), at(30))
            .expect("publishes")
            .expect("a frame");
        assert!(!publisher.tiles_behind());
        let paused = publisher
            .settle_without_grab(at(31), [false, false, true])
            .expect("settles")
            .expect("the end of the run");
        assert!(paused.video().is_none());
        let mut canvas = frames
            .iter()
            .find(|frame| frame.seq() == base)
            .expect("the canvas under the video")
            .picture();
        paint_repaint(&mut canvas, &paused.repaint_since(base).expect("repaint"));
        assert!(
            canvas.to_rgba() == last.to_rgba(),
            "the paused canvas equals the last grab"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn no_page_plays_video_no_video_and_tiles_only_never() {
        use std::time::Duration;
        let start = Instant::now();
        for (capture_of, name) in [
            (
                (|picture| capture(picture, [false, true])) as fn(&Picture) -> Capture<'_>,
                "adaptive pages only",
            ),
            (
                |picture| Capture {
                    motion: Motion::Tiles,
                    ..video_capture(picture)
                },
                "tiles only",
            ),
        ] {
            let mut publisher = Publisher::new(Arc::new(EncodeCounters::default()));
            for step in 0..40 {
                let picture = moving(step);
                let frame = publisher
                    .publish(
                        capture_of(&picture),
                        start + Duration::from_millis(33 * u64::from(step)),
                    )
                    .expect("publishes");
                assert!(frame.is_none_or(|frame| frame.video().is_none()), "{name}");
            }
            assert!(!publisher.in_video(), "{name}");
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_picture_the_encoder_refuses_stays_on_tiles_and_says_why() {
        use std::time::Duration;
        let mut publisher = Publisher::new(Arc::new(EncodeCounters::default()));
        let start = Instant::now();
        // Wider than H.264 here encodes, and grain that tiles cannot carry cheaply.
        let mut state = 0x2545_f491_u32;
        for step in 0..30u8 {
            let bytes = (0..4000 * 64 * 4)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    state as u8
                })
                .collect();
            let picture = Picture::from_bgrx(4000, 64, bytes).expect("a picture");
            let frame = publisher
                .publish(
                    video_capture(&picture),
                    start + Duration::from_millis(33 * u64::from(step)),
                )
                .expect("publishes");
            assert!(frame.is_none_or(|frame| frame.video().is_none()));
        }
        let error = publisher.video_error().expect("the reason is kept");
        assert!(error.contains("4000x64"), "{error}");
    }

    #[test]
    fn first_numbers_are_large_and_differ() {
        let (a, b) = (first_seq(), first_seq());
        assert!((1u64 << 32..1 << 40).contains(&a));
        assert_ne!(a, b);
    }
}
