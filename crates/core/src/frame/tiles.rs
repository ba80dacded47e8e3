//! The screen cut into 64x64 tiles. Each tile remembers the frame in which it last changed and
//! keeps its encodings, made at most once and shared (by `Arc`) with every later frame in which it
//! has not changed: "everything that changed after frame N" is then a list of encodings that
//! already exist, whatever N is and however many viewers ask.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::wire::{Piece, PieceBody};
use super::{EncodeCounters, Mode};
use crate::capture::Damage;
use crate::encode::{self, EncodeError};
use crate::pixels::{Picture, Rect};

/// The side of a tile, as in VNC's and Guacamole's encoders.
pub const TILE: u32 = 64;
/// A tile that changed this many times within [`HOT_WINDOW`] keeps changing (video, an
/// animation): in adaptive mode it goes out as JPEG.
const HOT_CHANGES: usize = 3;
const HOT_WINDOW: Duration = Duration::from_secs(1);
/// A region sent lossy is repainted lossless once it has been still for this long.
pub const SETTLE_AFTER: Duration = Duration::from_secs(1);

/// One tile as it is from frame `changed_at` on.
#[derive(Debug)]
pub struct Tile {
    rect: Rect,
    changed_at: u64,
    hot: bool,
    pixels: Picture,
    solid: Option<[u8; 3]>,
    /// Lossless: a PNG, or raw palette indices where smaller.
    exact: OnceLock<Result<PieceBody, EncodeError>>,
    jpeg: OnceLock<Result<Bytes, EncodeError>>,
    /// Shared by every version of the tile at this position: set when any of them goes out as
    /// JPEG (even an old version, encoded for a late viewer after it was replaced), so the
    /// capture thread knows to repaint the position exactly.
    sent_lossy: Arc<AtomicBool>,
}

impl Tile {
    fn new(
        picture: &Picture,
        rect: Rect,
        changed_at: u64,
        hot: bool,
        sent_lossy: Arc<AtomicBool>,
    ) -> Self {
        Self {
            rect,
            changed_at,
            hot,
            pixels: picture.crop(rect),
            solid: picture.solid_colour(rect),
            exact: OnceLock::new(),
            jpeg: OnceLock::new(),
            sent_lossy,
        }
    }

    /// The same pixels, made again at `changed_at` as a settled (lossless) tile.
    fn settled(&self, changed_at: u64) -> Self {
        Self {
            rect: self.rect,
            changed_at,
            hot: false,
            pixels: self.pixels.clone(),
            solid: self.solid,
            exact: OnceLock::new(),
            jpeg: OnceLock::new(),
            sent_lossy: self.sent_lossy.clone(),
        }
    }

    pub fn rect(&self) -> Rect {
        self.rect
    }

    pub fn changed_at(&self) -> u64 {
        self.changed_at
    }

    pub fn pixels(&self) -> &Picture {
        &self.pixels
    }

    fn lossy_in(&self, mode: Mode) -> bool {
        mode == Mode::Adaptive && self.hot
    }

    /// Whether [`Tile::piece`] would answer without encoding.
    pub fn is_ready(&self, mode: Mode) -> bool {
        self.solid.is_some()
            || if self.lossy_in(mode) {
                self.jpeg.get().is_some()
            } else {
                self.exact.get().is_some()
            }
    }

    /// The tile as an update piece in `mode`, encoding it the first time anyone asks.
    pub fn piece(
        &self,
        mode: Mode,
        quality: u8,
        counters: &EncodeCounters,
    ) -> Result<Piece, EncodeError> {
        if let Some(rgb) = self.solid {
            return Ok(Piece {
                rect: self.rect,
                body: PieceBody::Solid(rgb),
            });
        }
        let whole = self.pixels.bounds();
        let body = if self.lossy_in(mode) {
            let bytes = self.jpeg.get_or_init(|| {
                counters.count_tile();
                encode::jpeg_of(&self.pixels, whole, quality).map(Bytes::from)
            });
            self.sent_lossy.store(true, Ordering::Release);
            PieceBody::Jpeg(bytes.clone()?)
        } else {
            let body = self.exact.get_or_init(|| {
                counters.count_tile();
                encode::lossless_of(&self.pixels, whole).map(PieceBody::from)
            });
            body.clone()?
        };
        Ok(Piece {
            rect: self.rect,
            body,
        })
    }
}

/// How a tile has been changing, kept by the capture thread only.
#[derive(Debug, Clone)]
struct Activity {
    recent: [Option<Instant>; HOT_CHANGES],
    next: usize,
    last_change: Instant,
    /// When it last went out lossy in a JPEG rectangle.
    lossy_at: Option<Instant>,
    /// Some of its pixels reached adaptive viewers as JPEG (in a rectangle, or as a whole tile to
    /// a viewer catching up) and have not been repainted exact since. A later exact change of
    /// part of the tile leaves the rest as it was, so this stays set until [`TileGrid::settle`].
    lossy: bool,
}

impl Activity {
    fn new(now: Instant) -> Self {
        Self {
            recent: [None; HOT_CHANGES],
            next: 0,
            last_change: now,
            lossy_at: None,
            lossy: false,
        }
    }

    /// Records a change; whether the tile now counts as hot.
    fn changed(&mut self, now: Instant) -> bool {
        self.recent[self.next] = Some(now);
        self.next = (self.next + 1) % HOT_CHANGES;
        self.last_change = now;
        self.recent
            .iter()
            .all(|at| at.is_some_and(|at| now.saturating_duration_since(at) <= HOT_WINDOW))
    }
}

/// The capture thread's tiles: compared against each grab, replaced where pixels changed.
#[derive(Debug)]
pub(crate) struct TileGrid {
    width: u32,
    height: u32,
    columns: u32,
    quality: u8,
    tiles: Vec<Arc<Tile>>,
    activity: Vec<Activity>,
    /// Per position: a version of the tile went out as JPEG (see [`Tile`]).
    sent_lossy: Vec<Arc<AtomicBool>>,
    /// The frame this grid was made at: an `after` older than this gets the whole screen.
    reset_at: u64,
}

impl TileGrid {
    /// Tiles of the whole of `picture`, all new at frame `seq`.
    pub fn new(picture: &Picture, seq: u64, quality: u8, now: Instant) -> Self {
        let (width, height) = (picture.width(), picture.height());
        let columns = width.div_ceil(TILE);
        let rows = height.div_ceil(TILE);
        let mut tiles = Vec::with_capacity((columns * rows) as usize);
        let mut sent_lossy = Vec::with_capacity(tiles.capacity());
        for row in 0..rows {
            for column in 0..columns {
                let rect = Rect::new(column * TILE, row * TILE, TILE, TILE)
                    .intersect(&picture.bounds())
                    .unwrap_or_default();
                let flag = Arc::new(AtomicBool::new(false));
                tiles.push(Arc::new(Tile::new(picture, rect, seq, false, flag.clone())));
                sent_lossy.push(flag);
            }
        }
        let activity = vec![Activity::new(now); tiles.len()];
        Self {
            width,
            height,
            columns,
            quality,
            tiles,
            activity,
            sent_lossy,
            reset_at: seq,
        }
    }

    /// Whether grabs of this size, encoded at this quality, continue this grid.
    pub fn fits(&self, picture: &Picture, quality: u8) -> bool {
        (self.width, self.height, self.quality) == (picture.width(), picture.height(), quality)
    }

    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    pub fn reset_at(&self) -> u64 {
        self.reset_at
    }

    pub fn quality(&self) -> u8 {
        self.quality
    }

    /// Replaces the tiles whose pixels changed in `picture` (looking only where `damage` says
    /// they may have), as of frame `seq`. Returns the exact box of changed pixels in each.
    pub fn apply(
        &mut self,
        picture: &Picture,
        damage: &Damage,
        seq: u64,
        now: Instant,
    ) -> Vec<Rect> {
        let candidates: Vec<usize> = match damage {
            Damage::Unknown => (0..self.tiles.len()).collect(),
            Damage::Rects(rects) => {
                let mut marked = vec![false; self.tiles.len()];
                for rect in rects {
                    for index in self.tiles_under(*rect) {
                        marked[index] = true;
                    }
                }
                (0..marked.len()).filter(|index| marked[*index]).collect()
            }
        };
        let mut boxes = Vec::new();
        for index in candidates {
            let tile = &self.tiles[index];
            let Some(changed) = picture.changed_within(tile.rect, &tile.pixels) else {
                continue;
            };
            let hot = self.activity[index].changed(now);
            let flag = self.sent_lossy[index].clone();
            self.tiles[index] = Arc::new(Tile::new(picture, tile.rect, seq, hot, flag));
            boxes.push(changed);
        }
        boxes
    }

    /// Tiles that went out lossy (in a JPEG rectangle, or as a JPEG tile to a viewer catching
    /// up) and have been still for [`SETTLE_AFTER`] become lossless at frame `seq`. Returns
    /// their rectangles. A tile that only ever went out exact is left alone.
    pub fn settle(&mut self, seq: u64, now: Instant) -> Vec<Rect> {
        let mut settled = Vec::new();
        for ((tile, activity), flag) in self
            .tiles
            .iter_mut()
            .zip(&mut self.activity)
            .zip(&self.sent_lossy)
        {
            let went_lossy = activity.lossy || flag.load(Ordering::Acquire);
            // Still since its last change and since it last went out lossy: a still tile that a
            // JPEG rectangle keeps covering (it lies between moving ones) waits for the motion
            // to stop instead of being repainted every frame.
            let quiet_since = activity
                .lossy_at
                .map_or(activity.last_change, |at| at.max(activity.last_change));
            if went_lossy && now.saturating_duration_since(quiet_since) >= SETTLE_AFTER {
                activity.lossy = false;
                flag.store(false, Ordering::Release);
                activity.recent = [None; HOT_CHANGES];
                *tile = Arc::new(tile.settled(seq));
                settled.push(tile.rect);
            }
        }
        settled
    }

    /// Whether most of `rect` lies on tiles that keep changing.
    pub fn is_hot(&self, rect: Rect) -> bool {
        let under: Vec<usize> = self.tiles_under(rect).collect();
        let hot = under.iter().filter(|index| self.tiles[**index].hot).count();
        !under.is_empty() && hot * 2 >= under.len()
    }

    /// The tiles under `rect` are now on viewers' screens as JPEG (as of `now`).
    pub fn mark_lossy(&mut self, rect: Rect, now: Instant) {
        let under: Vec<usize> = self.tiles_under(rect).collect();
        for index in under {
            self.activity[index].lossy = true;
            self.activity[index].lossy_at = Some(now);
        }
    }

    pub fn snapshot(&self) -> Arc<[Arc<Tile>]> {
        self.tiles.clone().into()
    }

    fn tiles_under(&self, rect: Rect) -> impl Iterator<Item = usize> + use<> {
        let rect = rect
            .intersect(&Rect::new(0, 0, self.width, self.height))
            .unwrap_or_default();
        let columns = self.columns;
        let (first_column, last_column) = (rect.x / TILE, rect.right().div_ceil(TILE));
        let (first_row, last_row) = (rect.y / TILE, rect.bottom().div_ceil(TILE));
        let empty = rect.is_empty();
        (first_row..last_row)
            .flat_map(move |row| {
                (first_column..last_column).map(move |column| (row * columns + column) as usize)
            })
            .filter(move |_| !empty)
    }
}

/// Joins the boxes of changed pixels (one per tile, in row order) into few rectangles: each
/// piece costs a header and an image's own overhead, so neighbours are joined when the join
/// adds little area.
pub fn merge(boxes: &[Rect]) -> Vec<Rect> {
    let mut runs: Vec<Rect> = Vec::new();
    for rect in boxes {
        if let Some(last) = runs.last_mut() {
            let joined = last.union(rect);
            let same_band = rect.y < last.bottom() && last.y < rect.bottom();
            let near = rect.x <= last.right() + TILE;
            if same_band && near && worth_joining(last, rect, &joined) {
                *last = joined;
                continue;
            }
        }
        runs.push(*rect);
    }
    runs.sort_by_key(|rect| (rect.x, rect.width, rect.y));
    let mut stacked: Vec<Rect> = Vec::new();
    for rect in runs {
        if let Some(last) = stacked.last_mut()
            && last.x == rect.x
            && last.width == rect.width
            && last.bottom() == rect.y
        {
            last.height += rect.height;
            continue;
        }
        stacked.push(rect);
    }
    stacked.sort_by_key(|rect| (rect.y, rect.x));
    stacked
}

fn worth_joining(a: &Rect, b: &Rect, joined: &Rect) -> bool {
    joined.area() <= 2 * (a.area() + b.area()) + 1024
}

#[cfg(test)]
mod tests {
    use super::*;

    fn screen() -> Picture {
        Picture::filled(200, 130, [30, 30, 30])
    }

    #[test]
    fn grid_covers_the_screen_with_clipped_edge_tiles() {
        let grid = TileGrid::new(&screen(), 5, 80, Instant::now());
        assert_eq!(grid.tiles.len(), 4 * 3);
        let last = grid.tiles.last().expect("tiles");
        assert_eq!(last.rect(), Rect::new(192, 128, 8, 2));
        assert!(grid.tiles.iter().all(|tile| tile.changed_at() == 5));
    }

    #[test]
    fn a_change_in_one_tile_replaces_that_tile_alone() {
        let now = Instant::now();
        let mut picture = screen();
        let mut grid = TileGrid::new(&picture, 1, 80, now);
        let before = grid.snapshot();
        picture.paste(&Picture::filled(3, 4, [255, 0, 0]), 70, 10);
        let boxes = grid.apply(&picture, &Damage::Unknown, 2, now);
        assert_eq!(boxes, vec![Rect::new(70, 10, 3, 4)]);
        let after = grid.snapshot();
        let changed: Vec<usize> = (0..after.len())
            .filter(|index| !Arc::ptr_eq(&before[*index], &after[*index]))
            .collect();
        assert_eq!(changed, vec![1]);
        assert_eq!(after[1].changed_at(), 2);
    }

    #[test]
    fn damage_limits_where_changes_are_looked_for() {
        let now = Instant::now();
        let mut picture = screen();
        let mut grid = TileGrid::new(&picture, 1, 80, now);
        picture.paste(&Picture::filled(2, 2, [255, 0, 0]), 5, 5);
        let elsewhere = Damage::Rects(vec![Rect::new(150, 100, 10, 10)]);
        assert!(grid.apply(&picture, &elsewhere, 2, now).is_empty());
        let here = Damage::Rects(vec![Rect::new(0, 0, 10, 10)]);
        assert_eq!(
            grid.apply(&picture, &here, 3, now),
            vec![Rect::new(5, 5, 2, 2)]
        );
    }

    #[test]
    fn tiles_that_keep_changing_turn_hot_then_settle() {
        let start = Instant::now();
        let mut picture = screen();
        let mut grid = TileGrid::new(&picture, 1, 80, start);
        for step in 0..3u8 {
            picture.paste(&Picture::filled(64, 64, [step, 0, 0]), 0, 0);
            let at = start + Duration::from_millis(100 * u64::from(step));
            grid.apply(&picture, &Damage::Unknown, 2 + u64::from(step), at);
        }
        assert!(grid.is_hot(Rect::new(0, 0, 64, 64)));
        assert!(!grid.is_hot(Rect::new(64, 0, 64, 64)));
        let later = start + Duration::from_millis(300) + SETTLE_AFTER;
        assert!(
            grid.settle(9, later).is_empty(),
            "hot, but it only ever went out exact: nothing to repaint"
        );
        grid.mark_lossy(Rect::new(0, 0, 64, 64), start + Duration::from_millis(200));
        let soon = start + Duration::from_millis(500);
        assert!(grid.settle(10, soon).is_empty(), "still moving");
        assert_eq!(grid.settle(11, later), vec![Rect::new(0, 0, 64, 64)]);
        assert!(!grid.is_hot(Rect::new(0, 0, 64, 64)));
        assert!(grid.settle(12, later).is_empty(), "settled once");
    }

    #[test]
    fn tiles_encode_once_and_solid_ones_never() {
        let counters = EncodeCounters::default();
        let mut picture = screen();
        picture.paste(&Picture::filled(1, 1, [255, 255, 255]), 0, 0);
        let grid = TileGrid::new(&picture, 1, 80, Instant::now());
        for _ in 0..3 {
            for tile in grid.snapshot().iter() {
                tile.piece(Mode::Lossless, 80, &counters).expect("encodes");
            }
        }
        assert_eq!(counters.snapshot().tiles, 1, "only the one non-solid tile");
    }

    #[test]
    fn merge_joins_neighbours_and_full_rows() {
        // A character straddling two tiles: one piece.
        let typed = merge(&[Rect::new(60, 20, 4, 13), Rect::new(64, 20, 3, 13)]);
        assert_eq!(typed, vec![Rect::new(60, 20, 7, 13)]);
        // Everything changed: one piece for the whole screen.
        let mut all = Vec::new();
        for row in 0..3 {
            for column in 0..4 {
                all.push(Rect::new(column * 64, row * 64, 64, 64));
            }
        }
        assert_eq!(merge(&all), vec![Rect::new(0, 0, 256, 192)]);
        // Far apart: kept apart.
        let apart = merge(&[Rect::new(0, 0, 4, 4), Rect::new(500, 0, 4, 4)]);
        assert_eq!(apart.len(), 2);
    }
}
