//! A published frame: the screen as tiles, the update from the frame before (encoded once, by the
//! capture thread, for the modes viewers use), the pointer, and the classic whole-frame encodings,
//! each made at most once, the first time a viewer asks.

mod glimpse;
pub(crate) mod publish;
pub mod tiles;
pub mod video;
pub mod wire;

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde::Serialize;

use crate::capture::PointerShape;
use crate::encode::{self, EncodeError, Format};
use crate::pixels::Picture;
use tiles::Tile;
use video::{FrameVideo, VideoRun};
use wire::{Piece, PieceBody, PointerHeader, UpdateHeader};

/// How a viewer wants its updates: every pixel exact, or lighter where the screen keeps moving.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// PNG and solid fills only: pixel-exact, always.
    Lossless,
    /// JPEG (at the share's quality) for regions that keep changing, repainted lossless once
    /// they have been still for a second; exact everywhere else.
    Adaptive,
}

impl Mode {
    pub const ALL: [Mode; 2] = [Mode::Lossless, Mode::Adaptive];

    pub(crate) fn index(self) -> usize {
        match self {
            Mode::Lossless => 0,
            Mode::Adaptive => 1,
        }
    }
}

/// How one viewer takes the screen: its mode, and for adaptive viewers whether their page plays
/// the share's video when the screen is in motion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Delivery {
    Lossless,
    /// Adaptive tiles only: a page that cannot play the video, or the long poll.
    Adaptive,
    /// Adaptive tiles, and video while the screen is in motion.
    Video,
}

impl Delivery {
    pub const ALL: [Delivery; 3] = [Delivery::Lossless, Delivery::Adaptive, Delivery::Video];

    /// A viewer in `mode` whose page does (or does not) play video.
    pub fn of(mode: Mode, plays_video: bool) -> Self {
        match (mode, plays_video) {
            (Mode::Lossless, _) => Delivery::Lossless,
            (Mode::Adaptive, false) => Delivery::Adaptive,
            (Mode::Adaptive, true) => Delivery::Video,
        }
    }

    /// The mode its tiles are sent in.
    pub fn mode(self) -> Mode {
        match self {
            Delivery::Lossless => Mode::Lossless,
            Delivery::Adaptive | Delivery::Video => Mode::Adaptive,
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Delivery::Lossless => 0,
            Delivery::Adaptive => 1,
            Delivery::Video => 2,
        }
    }
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "lossless" => Ok(Mode::Lossless),
            "adaptive" => Ok(Mode::Adaptive),
            other => Err(format!(
                "mode must be `lossless` or `adaptive`, not {:?}",
                other.chars().take(32).collect::<String>()
            )),
        }
    }
}

/// A pointer shape with the id viewers know it by, and its PNG made once.
#[derive(Debug)]
pub struct SharedShape {
    pub id: u32,
    pub shape: Arc<PointerShape>,
    png: OnceLock<Result<Bytes, EncodeError>>,
}

impl SharedShape {
    pub fn new(id: u32, shape: Arc<PointerShape>) -> Self {
        Self {
            id,
            shape,
            png: OnceLock::new(),
        }
    }

    /// The shape as PNG (straight alpha).
    pub fn png(&self) -> Result<Bytes, EncodeError> {
        self.png
            .get_or_init(|| {
                encode::png_rgba(&self.shape.rgba, self.shape.width, self.shape.height)
                    .map(Bytes::from)
            })
            .clone()
    }
}

/// The pointer on one frame, in frame pixels.
#[derive(Clone, Debug)]
pub struct FramePointer {
    pub x: i32,
    pub y: i32,
    pub shape: Arc<SharedShape>,
    /// Frame width over monitor width, per mille (1000 unless the frame is scaled down).
    pub scale_per_mille: u16,
}

impl PointerHeader {
    /// The pointer of a frame as the wire carries it (shape 0: none shown).
    pub fn of(pointer: Option<&FramePointer>) -> Self {
        pointer.map_or(PointerHeader::default(), |pointer| {
            let clamp = |value: i32| value.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
            PointerHeader {
                shape: pointer.shape.id,
                x: clamp(pointer.x),
                y: clamp(pointer.y),
                hot_x: u16::try_from(pointer.shape.shape.hot_x).unwrap_or(0),
                hot_y: u16::try_from(pointer.shape.shape.hot_y).unwrap_or(0),
                scale_per_mille: pointer.scale_per_mille,
            }
        })
    }
}

/// One published frame. Shared as `Arc<Frame>`: every viewer of it gets the same bytes.
#[derive(Debug)]
pub struct Frame {
    seq: u64,
    reset_at: u64,
    width: u32,
    height: u32,
    jpeg_quality: u8,
    tiles: Arc<[Arc<Tile>]>,
    /// The update from frame `seq - 1`, per mode, where the capture thread prepared it.
    deltas: [OnceLock<Bytes>; 2],
    /// The whole screen, per mode, made once for every viewer that joins at this frame (a
    /// hundred viewers joining share one copy of it).
    everything: [OnceLock<Result<Bytes, EncodeError>>; 2],
    pointer: Option<FramePointer>,
    /// The pointer is as frame `seq - 1` showed it: an update from that frame leaves it out.
    pointer_as_before: bool,
    /// The last few pointer shapes, so that a page asking for one that just changed (an animated
    /// cursor) still gets it.
    shapes: Arc<[Arc<SharedShape>]>,
    png: OnceLock<Result<Bytes, EncodeError>>,
    jpeg: OnceLock<Result<Bytes, EncodeError>>,
    counters: Arc<EncodeCounters>,
    /// While the share is in video: this frame's pictures and start.
    video: Option<FrameVideo>,
    /// The video for a page one frame behind in the run, prepared by the capture thread.
    video_delta: OnceLock<Bytes>,
    /// The video for a page that has none of this run: the start and every picture since the
    /// keyframe, made once for all who join.
    video_from_keyframe: OnceLock<Bytes>,
    /// The run of video that ended just before this frame, if one did recently: its pages come
    /// back to tiles from its base, and that repaint is made once for them all.
    after_run: Option<VideoRun>,
    repaint: OnceLock<Result<Bytes, EncodeError>>,
}

impl Frame {
    pub(crate) fn new(
        seq: u64,
        grid: &tiles::TileGrid,
        size: (u32, u32),
        pointer: Option<FramePointer>,
        counters: Arc<EncodeCounters>,
    ) -> Self {
        Self {
            seq,
            reset_at: grid.reset_at(),
            width: size.0,
            height: size.1,
            jpeg_quality: grid.quality(),
            tiles: grid.snapshot(),
            deltas: [OnceLock::new(), OnceLock::new()],
            everything: [OnceLock::new(), OnceLock::new()],
            pointer,
            pointer_as_before: false,
            shapes: Arc::new([]),
            png: OnceLock::new(),
            jpeg: OnceLock::new(),
            counters,
            video: None,
            video_delta: OnceLock::new(),
            video_from_keyframe: OnceLock::new(),
            after_run: None,
            repaint: OnceLock::new(),
        }
    }

    /// Says whether the pointer is as the frame before showed it (the publisher knows).
    pub(crate) fn set_pointer_as_before(&mut self, as_before: bool) {
        self.pointer_as_before = as_before;
    }

    pub(crate) fn set_video(&mut self, video: FrameVideo) {
        self.video = Some(video);
    }

    pub(crate) fn set_after_run(&mut self, run: VideoRun) {
        self.after_run = Some(run);
    }

    /// This frame's video, while the share is in video.
    pub fn video(&self) -> Option<&FrameVideo> {
        self.video.as_ref()
    }

    /// Frame number: grows by one for every frame that differs from the one before. A share
    /// starts counting at a random number, so a page left open from another share never takes
    /// this one's updates for its own.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    pub fn pointer(&self) -> Option<&FramePointer> {
        self.pointer.as_ref()
    }

    /// A recent pointer shape by its id.
    pub fn shape(&self, id: u32) -> Option<Arc<SharedShape>> {
        self.shapes.iter().find(|shape| shape.id == id).cloned()
    }

    pub(crate) fn set_shapes(&mut self, shapes: Arc<[Arc<SharedShape>]>) {
        self.shapes = shapes;
    }

    pub fn tiles(&self) -> &[Arc<Tile>] {
        &self.tiles
    }

    /// The whole screen, without the pointer.
    pub fn picture(&self) -> Picture {
        let mut picture = Picture::new(self.width, self.height);
        for tile in self.tiles.iter() {
            picture.paste(tile.pixels(), tile.rect().x, tile.rect().y);
        }
        picture
    }

    /// The whole screen with the pointer drawn in, as the classic routes show it.
    pub fn picture_with_pointer(&self) -> Picture {
        let mut picture = self.picture();
        if let Some(pointer) = &self.pointer {
            let shape = &pointer.shape.shape;
            picture.blend_rgba(
                i64::from(pointer.x) - i64::from(shape.hot_x),
                i64::from(pointer.y) - i64::from(shape.hot_y),
                shape.width,
                shape.height,
                &shape.rgba,
            );
        }
        picture
    }

    pub(crate) fn prepare_delta(&self, mode: Mode, bytes: Bytes) {
        let _ = self.deltas[mode.index()].set(bytes);
    }

    /// The header of an update to this frame; `from_frame_before` when it goes to pages that
    /// have exactly the frame before, which know the pointer this one may repeat.
    fn header(&self, full: bool, video: bool, from_frame_before: bool) -> UpdateHeader {
        let leave_out = self.pointer_as_before && from_frame_before && !full;
        UpdateHeader {
            full,
            video,
            // The page's canvas has the size unless this update redraws it or is video (which
            // a page may join mid-motion with no canvas yet).
            size: (full || video).then(|| {
                (
                    u16::try_from(self.width).unwrap_or(u16::MAX),
                    u16::try_from(self.height).unwrap_or(u16::MAX),
                )
            }),
            seq: self.seq,
            pointer: (!leave_out).then(|| PointerHeader::of(self.pointer.as_ref())),
        }
    }

    /// Whether a viewer that has frame `after` needs the whole screen (it joined, fell behind a
    /// change of size or quality, or comes from another share).
    fn needs_everything(&self, after: u64) -> bool {
        after < self.reset_at || after >= self.seq
    }

    /// The update from frame `after` to this one, if it exists without encoding anything.
    pub fn update_ready(&self, after: u64, mode: Mode) -> Option<Bytes> {
        if let Some(delta) = self.prepared_delta(after, mode) {
            return Some(delta);
        }
        if self.needs_everything(after)
            && let Some(made) = self.everything[mode.index()].get()
        {
            return made.clone().ok();
        }
        let ready = self
            .tiles_after(after)
            .iter()
            .all(|tile| tile.is_ready(mode));
        ready.then(|| self.update_since(after, mode).ok()).flatten()
    }

    /// The update that brings a viewer from frame `after` to this one: the prepared delta when
    /// it is exactly one frame behind, otherwise every tile that changed since (the whole
    /// screen, made once per frame, for a viewer that has none of it). May encode tiles nobody
    /// asked for before: call it from `spawn_blocking`.
    pub fn update_since(&self, after: u64, mode: Mode) -> Result<Bytes, EncodeError> {
        if let Some(delta) = self.prepared_delta(after, mode) {
            return Ok(delta);
        }
        let tiles = self.tiles_after(after);
        if self.needs_everything(after) {
            return self.everything[mode.index()]
                .get_or_init(|| self.assemble(after, mode, &tiles))
                .clone();
        }
        self.assemble(after, mode, &tiles)
    }

    /// The delta the capture thread prepared, for a viewer exactly one frame behind.
    fn prepared_delta(&self, after: u64, mode: Mode) -> Option<Bytes> {
        if after.checked_add(1) != Some(self.seq) || self.needs_everything(after) {
            return None;
        }
        self.deltas[mode.index()].get().cloned()
    }

    fn tiles_after(&self, after: u64) -> Vec<&Arc<Tile>> {
        let everything = self.needs_everything(after);
        self.tiles
            .iter()
            .filter(|tile| everything || tile.changed_at() > after)
            .collect()
    }

    fn assemble(&self, after: u64, mode: Mode, tiles: &[&Arc<Tile>]) -> Result<Bytes, EncodeError> {
        let pieces: Vec<Piece> = tiles
            .iter()
            .map(|tile| tile.piece(mode, self.jpeg_quality, &self.counters))
            .collect::<Result<_, _>>()?;
        let pieces: Vec<&Piece> = pieces.iter().collect();
        let from_frame_before = after.checked_add(1) == Some(self.seq);
        let header = self.header(self.needs_everything(after), false, from_frame_before);
        Ok(wire::write(&header, &pieces))
    }

    /// The video update for a page that plays video, when this frame is video: the pictures
    /// after `after` for a page that took frame `after` of this run on the same stream
    /// (`run_seen` is the run its stream last carried), otherwise the start and every picture
    /// since the keyframe. Never encodes anything.
    pub fn video_update(&self, after: u64, run_seen: Option<u64>) -> Option<Bytes> {
        let video = self.video.as_ref()?;
        let whole = self.rect_of_video(video);
        if video.continues_from(after, run_seen) {
            if after.checked_add(1) == Some(self.seq)
                && let Some(delta) = self.video_delta.get()
            {
                return Some(delta.clone());
            }
            return Some(self.video_bytes(video, whole, false, after));
        }
        Some(
            self.video_from_keyframe
                .get_or_init(|| self.video_bytes(video, whole, true, 0))
                .clone(),
        )
    }

    /// The video pieces after frame `after`, with the start in front when `start`.
    fn video_bytes(
        &self,
        video: &FrameVideo,
        whole: crate::pixels::Rect,
        start: bool,
        after: u64,
    ) -> Bytes {
        let header = self.header(
            false,
            true,
            !start && after.checked_add(1) == Some(self.seq),
        );
        let mut pieces = Vec::with_capacity(video.pictures.len() + 1);
        if start {
            pieces.push(Piece {
                rect: whole,
                body: PieceBody::VideoStart {
                    codec: video.start.codec.clone(),
                    init: video.start.init.clone(),
                },
            });
        }
        // With the start, the whole group from the keyframe (nothing of the group before it).
        let after = if start {
            video.keyframe_seq().saturating_sub(1)
        } else {
            after
        };
        for picture in video.pictures_after(after) {
            pieces.push(Piece {
                rect: whole,
                body: PieceBody::VideoPicture(picture.segment.clone()),
            });
        }
        let refs: Vec<&Piece> = pieces.iter().collect();
        wire::write(&header, &refs)
    }

    fn rect_of_video(&self, video: &FrameVideo) -> crate::pixels::Rect {
        crate::pixels::Rect::new(0, 0, video.start.width, video.start.height)
    }

    /// Prepares the video for pages one frame behind (the capture thread, as it publishes).
    pub(crate) fn prepare_video_delta(&self) {
        let Some(video) = self.video.as_ref() else {
            return;
        };
        let whole = self.rect_of_video(video);
        let bytes = if video.run.first == self.seq {
            // The first frame of a run: everyone starts from its keyframe.
            self.video_from_keyframe
                .get_or_init(|| self.video_bytes(video, whole, true, 0))
                .clone()
        } else {
            self.video_bytes(video, whole, false, self.seq - 1)
        };
        let _ = self.video_delta.set(bytes);
    }

    /// Back to tiles after video: every tile that changed after frame `canvas` (what the page's
    /// canvas shows under its video), lossless, so that text is sharp at once. Pages that
    /// watched the whole run share one copy. May encode: call it from `spawn_blocking`.
    pub fn repaint_since(&self, canvas: u64) -> Result<Bytes, EncodeError> {
        if self.needs_everything(canvas) {
            return self.update_since(canvas, Mode::Lossless);
        }
        let tiles = self.tiles_after(canvas);
        if self.after_run.is_some_and(|run| run.base == canvas) {
            return self
                .repaint
                .get_or_init(|| self.assemble(canvas, Mode::Lossless, &tiles))
                .clone();
        }
        self.assemble(canvas, Mode::Lossless, &tiles)
    }

    /// Whether `update` is one of the buffers this frame keeps for every viewer (a prepared
    /// delta, the whole screen, the video's, the repaint), rather than one made for a single
    /// viewer: what one viewer holds is counted against what it may hold.
    pub fn shares(&self, update: &Bytes) -> bool {
        let same = |kept: Option<&Bytes>| {
            kept.is_some_and(|kept| kept.as_ptr() == update.as_ptr() && kept.len() == update.len())
        };
        let made = |kept: &OnceLock<Result<Bytes, EncodeError>>| {
            same(kept.get().and_then(|made| made.as_ref().ok()))
        };
        self.deltas.iter().any(|delta| same(delta.get()))
            || self.everything.iter().any(made)
            || made(&self.repaint)
            || same(self.video_delta.get())
            || same(self.video_from_keyframe.get())
    }

    /// The update from the frame before: this frame's header followed by `pieces` (for the
    /// capture thread's deltas).
    pub(crate) fn delta_bytes(&self, pieces: &[&Piece]) -> Bytes {
        wire::write(&self.header(false, false, true), pieces)
    }

    /// The whole frame in `format`, pointer drawn in, encoding it if nobody has yet. Blocks while
    /// encoding: call it from `spawn_blocking`. Concurrent callers wait for the one encode.
    pub fn encoded(&self, format: Format) -> Result<Bytes, EncodeError> {
        self.cell(format)
            .get_or_init(|| {
                self.counters.count(format);
                let picture = self.picture_with_pointer();
                let bytes = match format {
                    Format::Png => encode::png_of(&picture, picture.bounds()),
                    Format::Jpeg => encode::jpeg_of(&picture, picture.bounds(), self.jpeg_quality),
                };
                if let Ok(bytes) = &bytes {
                    self.counters.record_size(format, bytes.len());
                }
                bytes.map(Bytes::from)
            })
            .clone()
    }

    /// The encoded bytes if they are ready, without encoding.
    pub fn encoded_if_ready(&self, format: Format) -> Option<Result<Bytes, EncodeError>> {
        self.cell(format).get().cloned()
    }

    fn cell(&self, format: Format) -> &OnceLock<Result<Bytes, EncodeError>> {
        match format {
            Format::Png => &self.png,
            Format::Jpeg => &self.jpeg,
        }
    }
}

/// How many encodes the share has made: the proof that viewers do not multiply work.
#[derive(Debug, Default)]
pub struct EncodeCounters {
    png: AtomicU64,
    jpeg: AtomicU64,
    tiles: AtomicU64,
    rects: AtomicU64,
    last_png_bytes: AtomicU64,
    last_jpeg_bytes: AtomicU64,
}

impl EncodeCounters {
    fn count(&self, format: Format) {
        match format {
            Format::Png => self.png.fetch_add(1, Ordering::Relaxed),
            Format::Jpeg => self.jpeg.fetch_add(1, Ordering::Relaxed),
        };
    }

    pub(crate) fn count_tile(&self) {
        self.tiles.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_rect(&self) {
        self.rects.fetch_add(1, Ordering::Relaxed);
    }

    fn record_size(&self, format: Format, bytes: usize) {
        let last = match format {
            Format::Png => &self.last_png_bytes,
            Format::Jpeg => &self.last_jpeg_bytes,
        };
        last.store(bytes as u64, Ordering::Relaxed);
    }

    /// Size of the newest whole frame encoded in `format`, if any was.
    pub fn last_size(&self, format: Format) -> Option<usize> {
        let last = match format {
            Format::Png => &self.last_png_bytes,
            Format::Jpeg => &self.last_jpeg_bytes,
        };
        match last.load(Ordering::Relaxed) {
            0 => None,
            bytes => Some(bytes as usize),
        }
    }

    pub fn snapshot(&self) -> EncodeCounts {
        EncodeCounts {
            png: self.png.load(Ordering::Relaxed),
            jpeg: self.jpeg.load(Ordering::Relaxed),
            tiles: self.tiles.load(Ordering::Relaxed),
            rects: self.rects.load(Ordering::Relaxed),
        }
    }
}

/// Encodes made so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EncodeCounts {
    /// Whole frames as PNG (`screen.png`).
    pub png: u64,
    /// Whole frames as JPEG (`screen.jpg`).
    pub jpeg: u64,
    /// Tiles, for viewers catching up (each tile version at most once per kind).
    pub tiles: u64,
    /// Changed rectangles, for viewers up to date (each at most once per frame and kind).
    pub rects: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn frame_of(picture: &Picture, counters: Arc<EncodeCounters>) -> Frame {
        let grid = tiles::TileGrid::new(picture, 7, 80, Instant::now());
        Frame::new(
            7,
            &grid,
            (picture.width(), picture.height()),
            None,
            counters,
        )
    }

    #[test]
    fn each_format_is_encoded_once_however_often_asked() {
        let counters = Arc::new(EncodeCounters::default());
        let frame = Arc::new(frame_of(
            &Picture::filled(32, 32, [1, 2, 3]),
            counters.clone(),
        ));
        assert!(frame.encoded_if_ready(Format::Png).is_none());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let frame = frame.clone();
                std::thread::spawn(move || {
                    frame.encoded(Format::Png).expect("png");
                    frame.encoded(Format::Jpeg).expect("jpeg");
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("encoder thread");
        }
        let counts = counters.snapshot();
        assert_eq!((counts.png, counts.jpeg), (1, 1));
        let png_len = frame.encoded(Format::Png).expect("png").len();
        assert_eq!(counters.last_size(Format::Png), Some(png_len));
        assert!(frame.encoded_if_ready(Format::Png).is_some());
    }

    #[test]
    fn a_frame_knows_the_buffers_it_keeps_for_everyone() {
        let frame = frame_of(
            &Picture::filled(130, 70, [9, 9, 9]),
            Arc::new(EncodeCounters::default()),
        );
        let everything = frame.update_since(0, Mode::Lossless).expect("update");
        assert!(
            frame.shares(&everything),
            "the whole screen, kept for joiners"
        );
        assert!(
            !frame.shares(&Bytes::copy_from_slice(&everything)),
            "the same bytes made again are one viewer's own"
        );
        assert!(!frame.shares(&everything.slice(1..)), "part of it");
    }

    #[test]
    fn a_newcomer_gets_the_whole_screen_exactly() {
        let mut picture = Picture::filled(130, 70, [40, 50, 60]);
        picture.paste(&Picture::filled(5, 5, [250, 0, 0]), 100, 60);
        let frame = frame_of(&picture, Arc::new(EncodeCounters::default()));
        let bytes = frame.update_since(0, Mode::Lossless).expect("update");
        let update = wire::parse(&bytes).expect("parses");
        assert!(update.header.full);
        assert_eq!(update.header.size, Some((130, 70)));
        assert_eq!(update.pieces.len(), 3 * 2, "every tile");
        let mut drawn = Picture::new(130, 70);
        for piece in &update.pieces {
            assert!(piece.body.is_lossless(), "lossless mode sent {piece:?}");
            piece.paint_on(&mut drawn).expect("paints");
        }
        assert_eq!(drawn.to_rgba(), picture.to_rgba());
    }

    #[test]
    fn modes_parse_and_refuse_others() {
        assert_eq!("lossless".parse(), Ok(Mode::Lossless));
        assert_eq!("adaptive".parse(), Ok(Mode::Adaptive));
        assert!("fast".parse::<Mode>().is_err());
    }
}
