//! Pictures in the X server's own byte order, and the rectangles the pixel path speaks in.
//!
//! X11 hands out 32-bit pixels as B, G, R and an unused byte; JPEG takes them as they are, PNG and
//! the classic routes convert only the region they encode. So the whole pipeline keeps that order
//! and never runs a per-pixel pass over a frame that nobody asked for.

use image::RgbaImage;
use serde::Serialize;

/// A colour channel of a premultiplied pixel (X11 cursors, compositors' cursor bitmaps) as a
/// straight-alpha one, which PNG and the page expect.
pub fn unpremultiplied(channel: u8, alpha: u8) -> u8 {
    match alpha {
        0 => 0,
        255 => channel,
        _ => ((u16::from(channel) * 255 + u16::from(alpha) / 2) / u16::from(alpha)).min(255) as u8,
    }
}

/// `rects` as they are, or their bounding box when there are more than `most`: past some
/// number, one larger rectangle costs less to read or compare than many small ones.
pub fn at_most(rects: Vec<Rect>, most: usize) -> Vec<Rect> {
    match rects.split_first() {
        Some((first, rest)) if rects.len() > most => {
            vec![rest.iter().fold(*first, |all, rect| all.union(rect))]
        }
        _ => rects,
    }
}

/// An axis-aligned rectangle in pixels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl Rect {
    pub const fn new(x: u32, y: u32, width: u32, height: u32) -> Self {
        Self {
            x,
            y,
            width,
            height,
        }
    }

    pub fn right(&self) -> u32 {
        self.x + self.width
    }

    pub fn bottom(&self) -> u32 {
        self.y + self.height
    }

    pub fn area(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }

    pub fn is_empty(&self) -> bool {
        self.width == 0 || self.height == 0
    }

    /// The part both rectangles cover, if any.
    pub fn intersect(&self, other: &Rect) -> Option<Rect> {
        let x = self.x.max(other.x);
        let y = self.y.max(other.y);
        let right = self.right().min(other.right());
        let bottom = self.bottom().min(other.bottom());
        (right > x && bottom > y).then(|| Rect::new(x, y, right - x, bottom - y))
    }

    /// The smallest rectangle holding both.
    pub fn union(&self, other: &Rect) -> Rect {
        let x = self.x.min(other.x);
        let y = self.y.min(other.y);
        let right = self.right().max(other.right());
        let bottom = self.bottom().max(other.bottom());
        Rect::new(x, y, right - x, bottom - y)
    }
}

/// A picture of `width` x `height` pixels, 4 bytes each in B, G, R, X order, rows packed.
#[derive(Clone, PartialEq, Eq)]
pub struct Picture {
    width: u32,
    height: u32,
    data: Vec<u8>,
}

impl std::fmt::Debug for Picture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Picture")
            .field("width", &self.width)
            .field("height", &self.height)
            .finish_non_exhaustive()
    }
}

impl Picture {
    /// A black picture.
    pub fn new(width: u32, height: u32) -> Self {
        Self::filled(width, height, [0, 0, 0])
    }

    /// A picture in one colour, given as R, G, B.
    pub fn filled(width: u32, height: u32, rgb: [u8; 3]) -> Self {
        let pixel = [rgb[2], rgb[1], rgb[0], 255];
        let data = pixel.repeat(width as usize * height as usize);
        Self {
            width,
            height,
            data,
        }
    }

    /// Wraps packed B, G, R, X bytes; `None` when the length does not match the size.
    pub fn from_bgrx(width: u32, height: u32, data: Vec<u8>) -> Option<Self> {
        (data.len() == width as usize * height as usize * 4).then_some(Self {
            width,
            height,
            data,
        })
    }

    /// From an RGBA image (xcap, tests), swapping red and blue.
    pub fn from_rgba(image: RgbaImage) -> Self {
        let (width, height) = image.dimensions();
        let mut data = image.into_raw();
        for pixel in data.chunks_exact_mut(4) {
            pixel.swap(0, 2);
        }
        Self {
            width,
            height,
            data,
        }
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    pub fn bounds(&self) -> Rect {
        Rect::new(0, 0, self.width, self.height)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    fn stride(&self) -> usize {
        self.width as usize * 4
    }

    /// The bytes of row `y` (empty below the picture).
    pub fn row(&self, y: u32) -> &[u8] {
        if y >= self.height {
            return &[];
        }
        self.span(0, y, self.width)
    }

    /// Bytes of row `y` from column `x`, `width` pixels long. The caller keeps within bounds.
    fn span(&self, x: u32, y: u32, width: u32) -> &[u8] {
        let start = y as usize * self.stride() + x as usize * 4;
        &self.data[start..start + width as usize * 4]
    }

    fn span_mut(&mut self, x: u32, y: u32, width: u32) -> &mut [u8] {
        let start = y as usize * self.stride() + x as usize * 4;
        let stride = width as usize * 4;
        &mut self.data[start..start + stride]
    }

    /// The bytes of `rows` whole rows from row `y` (clipped to the picture): where a full-width
    /// read can land without a copy.
    pub fn rows_mut(&mut self, y: u32, rows: u32) -> &mut [u8] {
        let start = (y.min(self.height) as usize) * self.stride();
        let end = ((y.saturating_add(rows)).min(self.height) as usize) * self.stride();
        &mut self.data[start..end]
    }

    /// Copies packed B, G, R, X rows (`rect.width` pixels each) into `rect` of this picture.
    /// Rows beyond what `packed` holds, or parts of `rect` outside the picture, are left alone.
    pub fn write_rect(&mut self, rect: Rect, packed: &[u8]) {
        let Some(clipped) = rect.intersect(&self.bounds()) else {
            return;
        };
        let row_bytes = rect.width as usize * 4;
        for (row, source) in packed
            .chunks_exact(row_bytes)
            .enumerate()
            .take(clipped.height as usize)
        {
            let y = rect.y + row as u32;
            if y < clipped.y {
                continue;
            }
            let skip = (clipped.x - rect.x) as usize * 4;
            let take = clipped.width as usize * 4;
            self.span_mut(clipped.x, y, clipped.width)
                .copy_from_slice(&source[skip..skip + take]);
        }
    }

    /// Copies `rect` of `other`, a picture of the same size, into the same place of this one
    /// (clipped to both).
    pub fn copy_rect_from(&mut self, other: &Picture, rect: Rect) {
        let Some(rect) = rect
            .intersect(&self.bounds())
            .and_then(|rect| rect.intersect(&other.bounds()))
        else {
            return;
        };
        for y in rect.y..rect.bottom() {
            self.span_mut(rect.x, y, rect.width)
                .copy_from_slice(other.span(rect.x, y, rect.width));
        }
    }

    /// The bytes of row `y` from column `x`, `width` pixels long, to write into; `None` where
    /// that span is not all inside the picture.
    pub fn row_span_mut(&mut self, x: u32, y: u32, width: u32) -> Option<&mut [u8]> {
        let inside = x
            .checked_add(width)
            .is_some_and(|right| right <= self.width)
            && y < self.height;
        inside.then(|| self.span_mut(x, y, width))
    }

    /// `rect` of this picture as a picture of its own (clipped to the picture).
    pub fn crop(&self, rect: Rect) -> Picture {
        let rect = rect.intersect(&self.bounds()).unwrap_or_default();
        let mut data = Vec::with_capacity(rect.area() as usize * 4);
        for y in rect.y..rect.bottom() {
            data.extend_from_slice(self.span(rect.x, y, rect.width));
        }
        Picture {
            width: rect.width,
            height: rect.height,
            data,
        }
    }

    /// Pastes `part` with its top-left corner at (`x`, `y`), clipped to this picture.
    pub fn paste(&mut self, part: &Picture, x: u32, y: u32) {
        let rect = Rect::new(x, y, part.width, part.height);
        self.write_rect(rect, &part.data);
    }

    /// The one colour (R, G, B) of `rect`, if every pixel in it has it.
    pub fn solid_colour(&self, rect: Rect) -> Option<[u8; 3]> {
        let rect = rect.intersect(&self.bounds())?;
        let first: [u8; 3] = self.span(rect.x, rect.y, 1)[..3].try_into().ok()?;
        for y in rect.y..rect.bottom() {
            let same = self
                .span(rect.x, y, rect.width)
                .chunks_exact(4)
                .all(|pixel| pixel[..3] == first);
            if !same {
                return None;
            }
        }
        Some([first[2], first[1], first[0]])
    }

    /// The bounding box of the pixels in `rect` that differ from `old`, a picture of `rect`'s
    /// size holding what was there before. `None` when nothing changed.
    pub fn changed_within(&self, rect: Rect, old: &Picture) -> Option<Rect> {
        if old.width != rect.width || old.height != rect.height {
            return Some(rect);
        }
        let (mut top, mut bottom) = (None, 0);
        let (mut left, mut right) = (rect.width, 0);
        for row in 0..rect.height {
            let now = self.span(rect.x, rect.y + row, rect.width);
            let before = old.span(0, row, rect.width);
            if now == before {
                continue;
            }
            top.get_or_insert(row);
            bottom = row + 1;
            let differs = |(a, b): (&[u8], &[u8])| a[..3] != b[..3];
            let mut pairs = now.chunks_exact(4).zip(before.chunks_exact(4));
            if let Some(first) = pairs.position(differs) {
                left = left.min(first as u32);
            }
            let last = now
                .chunks_exact(4)
                .zip(before.chunks_exact(4))
                .rposition(differs);
            if let Some(last) = last {
                right = right.max(last as u32 + 1);
            }
        }
        let top = top?;
        if right <= left {
            // Only the unused fourth byte differed: nothing a viewer could see.
            return None;
        }
        Some(Rect::new(
            rect.x + left,
            rect.y + top,
            right - left,
            bottom - top,
        ))
    }

    /// `rect` as packed R, G, B bytes, for PNG.
    pub fn rgb_of(&self, rect: Rect) -> Vec<u8> {
        let rect = rect.intersect(&self.bounds()).unwrap_or_default();
        let mut rgb = Vec::with_capacity(rect.area() as usize * 3);
        for y in rect.y..rect.bottom() {
            for pixel in self.span(rect.x, y, rect.width).chunks_exact(4) {
                rgb.extend_from_slice(&[pixel[2], pixel[1], pixel[0]]);
            }
        }
        rgb
    }

    /// The whole picture as an opaque RGBA image.
    pub fn to_rgba(&self) -> RgbaImage {
        let mut data = Vec::with_capacity(self.data.len());
        for pixel in self.data.chunks_exact(4) {
            data.extend_from_slice(&[pixel[2], pixel[1], pixel[0], 255]);
        }
        RgbaImage::from_raw(self.width, self.height, data)
            .unwrap_or_else(|| RgbaImage::new(self.width, self.height))
    }

    /// Draws straight-alpha RGBA pixels (a pointer) with their top-left corner at (`x`, `y`).
    pub fn blend_rgba(&mut self, x: i64, y: i64, width: u32, height: u32, rgba: &[u8]) {
        for row in 0..height {
            let target_y = y + i64::from(row);
            if target_y < 0 || target_y >= i64::from(self.height) {
                continue;
            }
            for column in 0..width {
                let target_x = x + i64::from(column);
                if target_x < 0 || target_x >= i64::from(self.width) {
                    continue;
                }
                let from = (row as usize * width as usize + column as usize) * 4;
                let Some(&[r, g, b, a]) = rgba
                    .get(from..from + 4)
                    .and_then(|s| <&[u8; 4]>::try_from(s).ok())
                else {
                    return;
                };
                if a == 0 {
                    continue;
                }
                let at = target_y as usize * self.stride() + target_x as usize * 4;
                let alpha = u16::from(a);
                for (channel, value) in [b, g, r].into_iter().enumerate() {
                    let below = u16::from(self.data[at + channel]);
                    self.data[at + channel] =
                        ((u16::from(value) * alpha + below * (255 - alpha) + 127) / 255) as u8;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rect_intersect_and_union() {
        let a = Rect::new(0, 0, 10, 10);
        let b = Rect::new(5, 5, 10, 10);
        assert_eq!(a.intersect(&b), Some(Rect::new(5, 5, 5, 5)));
        assert_eq!(a.union(&b), Rect::new(0, 0, 15, 15));
        assert_eq!(
            a.intersect(&Rect::new(10, 0, 5, 5)),
            None,
            "edges touch only"
        );
    }

    #[test]
    fn changed_within_finds_the_tight_box() {
        let old = Picture::filled(64, 64, [10, 20, 30]);
        let mut now = Picture::filled(128, 64, [10, 20, 30]);
        now.write_rect(Rect::new(70, 5, 2, 3), &[0u8; 2 * 3 * 4]);
        let tile = Rect::new(64, 0, 64, 64);
        assert_eq!(now.changed_within(tile, &old), Some(Rect::new(70, 5, 2, 3)));
        assert_eq!(now.changed_within(Rect::new(0, 0, 64, 64), &old), None);
    }

    #[test]
    fn crop_paste_and_solid() {
        let mut picture = Picture::filled(8, 8, [1, 2, 3]);
        assert_eq!(picture.solid_colour(picture.bounds()), Some([1, 2, 3]));
        picture.paste(&Picture::filled(2, 2, [9, 9, 9]), 7, 7);
        assert_eq!(picture.solid_colour(Rect::new(0, 0, 7, 7)), Some([1, 2, 3]));
        assert_eq!(picture.solid_colour(picture.bounds()), None);
        let corner = picture.crop(Rect::new(6, 6, 4, 4));
        assert_eq!((corner.width(), corner.height()), (2, 2));
        assert_eq!(corner.rgb_of(Rect::new(1, 1, 1, 1)), vec![9, 9, 9]);
        assert_eq!(corner.rgb_of(Rect::new(0, 0, 1, 1)), vec![1, 2, 3]);
    }

    #[test]
    fn rgba_round_trip_and_blend() {
        let image = RgbaImage::from_pixel(3, 2, image::Rgba([200, 100, 50, 255]));
        let mut picture = Picture::from_rgba(image.clone());
        assert_eq!(picture.to_rgba(), image);
        picture.blend_rgba(-1, 1, 2, 1, &[0, 0, 0, 255, 255, 255, 255, 128]);
        let after = picture.to_rgba();
        assert_eq!(
            after.get_pixel(0, 1).0,
            [228, 178, 153, 255],
            "half white over"
        );
        assert_eq!(after.get_pixel(0, 0).0, [200, 100, 50, 255]);
    }
}
