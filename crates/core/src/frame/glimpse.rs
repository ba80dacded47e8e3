//! How much of the screen changed, from a sample of its rows: while the share is in video and no
//! viewer takes tiles, comparing and keeping every tile of every grab is work nobody uses (a
//! tenth of a core at 1080p30); the motion detector only needs to know whether the screen still
//! moves, and a row in eight tells it.

use crate::capture::Damage;
use crate::pixels::Picture;

/// One row in this many is kept and compared.
const ROW_STEP: u32 = 8;
/// Rows are compared in pieces this many pixels wide: the share is the pieces that changed.
const PIECE_WIDTH: u32 = 64;

/// Every eighth row of the last grab looked at.
#[derive(Debug, Default)]
pub(crate) struct Glimpse {
    size: (u32, u32),
    rows: Vec<u8>,
}

impl Glimpse {
    /// The share of `picture` (0 to 1) that differs from the last picture looked at, then keeps
    /// `picture`'s rows for the next. A first look, or another size, counts as all changed.
    pub fn changed_share(&mut self, picture: &Picture, damage: &Damage) -> f64 {
        let size = (picture.width(), picture.height());
        let row_bytes = size.0 as usize * 4;
        let sampled = size.1.div_ceil(ROW_STEP) as usize;
        if size != self.size || self.rows.len() != sampled * row_bytes {
            self.size = size;
            self.rows.clear();
            for y in (0..size.1).step_by(ROW_STEP as usize) {
                self.rows.extend_from_slice(picture.row(y));
            }
            return 1.0;
        }
        if matches!(damage, Damage::Rects(rects) if rects.is_empty()) {
            return 0.0;
        }
        let piece_bytes = PIECE_WIDTH as usize * 4;
        let (mut changed, mut pieces) = (0usize, 0usize);
        for (kept, y) in self
            .rows
            .chunks_exact_mut(row_bytes)
            .zip((0..size.1).step_by(ROW_STEP as usize))
        {
            let now = picture.row(y);
            for (kept, now) in kept.chunks_mut(piece_bytes).zip(now.chunks(piece_bytes)) {
                pieces += 1;
                if kept != now {
                    changed += 1;
                    kept.copy_from_slice(now);
                }
            }
        }
        changed as f64 / pieces.max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pixels::Rect;

    fn picture(width: u32, height: u32, paint: Option<(Rect, u8)>) -> Picture {
        let mut picture = Picture::new(width, height);
        if let Some((rect, value)) = paint {
            let row = vec![value; rect.width as usize * 4];
            let packed: Vec<u8> = (0..rect.height).flat_map(|_| row.clone()).collect();
            picture.write_rect(rect, &packed);
        }
        picture
    }

    #[test]
    fn a_first_look_counts_as_all_changed_and_the_same_picture_as_none() {
        let mut glimpse = Glimpse::default();
        let still = picture(640, 480, None);
        assert_eq!(glimpse.changed_share(&still, &Damage::Unknown), 1.0);
        assert_eq!(glimpse.changed_share(&still, &Damage::Unknown), 0.0);
        assert_eq!(
            glimpse.changed_share(&picture(320, 240, None), &Damage::Unknown),
            1.0,
            "another size"
        );
    }

    #[test]
    fn the_share_follows_the_area_that_moved() {
        let mut glimpse = Glimpse::default();
        glimpse.changed_share(&picture(640, 480, None), &Damage::Unknown);
        let half = Rect {
            x: 0,
            y: 0,
            width: 320,
            height: 480,
        };
        let share = glimpse.changed_share(&picture(640, 480, Some((half, 9))), &Damage::Unknown);
        assert!((share - 0.5).abs() < 0.01, "{share}");
        // The rows kept are the new picture's: the same again is still.
        let share = glimpse.changed_share(&picture(640, 480, Some((half, 9))), &Damage::Unknown);
        assert_eq!(share, 0.0);
    }

    #[test]
    fn damage_that_says_nothing_changed_is_believed() {
        let mut glimpse = Glimpse::default();
        glimpse.changed_share(&picture(64, 64, None), &Damage::Unknown);
        let all = Rect {
            x: 0,
            y: 0,
            width: 64,
            height: 64,
        };
        let moved = picture(64, 64, Some((all, 200)));
        assert_eq!(
            glimpse.changed_share(&moved, &Damage::Rects(Vec::new())),
            0.0
        );
        assert_eq!(
            glimpse.changed_share(&moved, &Damage::Rects(vec![all])),
            1.0
        );
    }
}
