//! Turns grabs into frames, on the capture thread: finds what changed (tile by tile, where damage
//! says to look), joins it into few rectangles, and encodes those once for every viewer up to date.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::tiles::{TileGrid, merge};
use super::wire::{Piece, PieceBody};
use super::{EncodeCounters, Frame, FramePointer, Mode, SharedShape};
use crate::capture::{Damage, PointerState};
use crate::encode::{self, EncodeError};
use crate::pixels::{Picture, Rect};

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
    /// Which modes viewers are using: their deltas are encoded now, the others on demand.
    pub modes: [bool; 2],
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
}

impl Publisher {
    pub fn new(counters: Arc<EncodeCounters>) -> Self {
        Self {
            grid: None,
            seq: first_seq(),
            shape: None,
            shapes: Arc::new([]),
            pointer: None,
            last_pointer: None,
            counters,
        }
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
        let (reset, boxes, settled) = match &mut self.grid {
            Some(grid) if grid.fits(picture, capture.quality) => {
                let boxes = grid.apply(picture, &capture.damage, next, now);
                let settled = grid.settle(next, now);
                (false, boxes, settled)
            }
            _ => {
                self.grid = Some(TileGrid::new(picture, next, capture.quality, now));
                (true, Vec::new(), Vec::new())
            }
        };
        let pointer = self.pointer_view(&capture);
        let key = pointer.as_ref().map(|pointer| PointerKey {
            x: pointer.x,
            y: pointer.y,
            shape: pointer.shape.id,
        });
        if !reset && boxes.is_empty() && settled.is_empty() && key == self.pointer {
            return Ok(None);
        }
        let Some(grid) = self.grid.as_mut() else {
            return Ok(None);
        };
        self.seq = next;
        self.pointer = key;
        self.last_pointer = pointer.clone();
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
        if !reset {
            let mut pieces = PieceCache::default();
            for mode in Mode::ALL {
                if !capture.modes[mode.index()] {
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
                frame.prepare_delta(mode, frame.delta_bytes(&refs));
            }
        }
        for rect in lossy {
            grid.mark_lossy(rect, now);
        }
        Ok(Some(frame))
    }

    /// While nothing is grabbed (paused, the source lost), regions sent lossy still become exact
    /// once still: a frame of those tiles, lossless, from the pixels they keep. `None` when no
    /// tile needs it.
    pub fn settle_without_grab(
        &mut self,
        now: Instant,
        modes: [bool; 2],
    ) -> Result<Option<Frame>, EncodeError> {
        let Some(grid) = self.grid.as_mut() else {
            return Ok(None);
        };
        let next = self.seq + 1;
        let settled = grid.settle(next, now);
        if settled.is_empty() {
            return Ok(None);
        }
        self.seq = next;
        let size = grid.size();
        let pointer = self.last_pointer.clone();
        let mut frame = Frame::new(next, grid, size, pointer, self.counters.clone());
        frame.set_shapes(self.shapes.clone());
        let tiles: Vec<_> = frame
            .tiles()
            .iter()
            .filter(|tile| tile.changed_at() == next)
            .cloned()
            .collect();
        for mode in Mode::ALL {
            if !modes[mode.index()] {
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
                    PieceBody::Png(Bytes::from(encode::png_of(picture, rect)?))
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
    use crate::frame::wire::{self, PieceBody};

    fn capture(picture: &Picture, modes: [bool; 2]) -> Capture<'_> {
        Capture {
            picture,
            damage: Damage::Unknown,
            pointer: None,
            monitor_width: picture.width(),
            quality: 80,
            show_pointer: true,
            modes,
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
                .map(|piece| match piece.body {
                    PieceBody::Solid(_) => 0,
                    PieceBody::Png(_) => 1,
                    PieceBody::Jpeg(_) => 2,
                })
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
            adaptive
                .pieces
                .iter()
                .all(|piece| matches!(piece.body, PieceBody::Png(_))),
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
                .settle_without_grab(soon, [true, true])
                .expect("ok")
                .is_none()
        );
        let later = start + Duration::from_millis(300) + super::super::tiles::SETTLE_AFTER;
        let frame = publisher
            .settle_without_grab(later, [true, true])
            .expect("ok")
            .expect("a repaint");
        let adaptive = wire::parse(
            &frame
                .update_ready(frame.seq() - 1, Mode::Adaptive)
                .expect("prepared"),
        )
        .expect("parses");
        assert_eq!(adaptive.pieces.len(), 9, "the nine tiles under the video");
        assert!(
            adaptive
                .pieces
                .iter()
                .all(|p| matches!(p.body, PieceBody::Png(_)))
        );
        assert!(
            frame
                .tiles()
                .iter()
                .all(|tile| tile.changed_at() <= frame.seq())
        );
        assert!(
            publisher
                .settle_without_grab(later, [true, true])
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
        assert_eq!(update.header.pointer.x, 2);
        let shape = first.pointer().expect("shown").shape.id;
        assert_eq!(update.header.pointer.shape, shape, "same shape, same id");
        assert!(moved.shape(shape).is_some(), "the page can fetch it");
        let mut hidden = capture(&picture, [true, false]);
        hidden.pointer = Some(at(2));
        hidden.show_pointer = false;
        let hidden = publisher.publish(hidden, now).expect("ok").expect("frame");
        assert!(hidden.pointer().is_none());
    }

    #[test]
    fn first_numbers_are_large_and_differ() {
        let (a, b) = (first_seq(), first_seq());
        assert!((1u64 << 32..1 << 40).contains(&a));
        assert_ne!(a, b);
    }
}
