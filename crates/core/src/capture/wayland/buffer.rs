//! What a PipeWire screen-cast buffer holds, in our own types: its pixels (any of the four 32-bit
//! RGB layouts, with stride, offset and crop) copied into a [`Picture`], its damage regions as
//! rectangles of that picture, and its cursor bitmap as a straight-alpha pointer image.
//!
//! Nothing here touches PipeWire: the stream hands plain numbers and bytes in, so every rule is
//! tested without a compositor.

use crate::pixels::{Picture, Rect, at_most, unpremultiplied};

/// Above this many damaged rectangles per frame their bounding box is compared instead: a
/// compositor that reports hundreds of tiny regions costs more to walk than to compare.
pub const MAX_DAMAGE_RECTS: usize = 32;

/// The order of the colour bytes in a 32-bit pixel; the fourth byte is padding or alpha.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelOrder {
    /// BGRx or BGRA: our own order, copied as it is.
    Bgr,
    /// RGBx or RGBA: red and blue swapped on the way in.
    Rgb,
}

/// How a buffer's pixels are laid out, from the negotiated format and the buffer's chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub order: ChannelOrder,
    pub width: u32,
    pub height: u32,
    /// Bytes from one row to the next.
    pub stride: usize,
    /// Bytes before the first pixel.
    pub offset: usize,
}

/// Why a buffer could not be read; the frame is skipped, the stream goes on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BufferError {
    #[error("the buffer's rows ({stride} bytes) are shorter than {width} pixels")]
    StrideTooShort { stride: usize, width: u32 },
    #[error("the picture's area {area:?} lies outside the buffer")]
    AreaOutside { area: Rect },
    #[error("the buffer holds {len} bytes, its layout needs {needed}")]
    TooSmall { len: usize, needed: usize },
}

/// The part of a `width` x `height` buffer that is the picture: the crop region the compositor
/// gives (a window inside a larger buffer), clipped to the buffer; the whole buffer without one.
pub fn visible_area(width: u32, height: u32, crop: Option<(i32, i32, u32, u32)>) -> Rect {
    let whole = Rect::new(0, 0, width, height);
    let Some((x, y, crop_width, crop_height)) = crop else {
        return whole;
    };
    if crop_width == 0 || crop_height == 0 || x < 0 || y < 0 {
        return whole;
    }
    Rect::new(x as u32, y as u32, crop_width, crop_height)
        .intersect(&whole)
        .unwrap_or(whole)
}

/// Copies `rects` (in the picture's coordinates, so relative to `area`) of the buffer `data`
/// into `picture`, which is `area`'s size. Checks every byte it reads lies inside `data`.
pub fn copy_pixels(
    picture: &mut Picture,
    data: &[u8],
    layout: &Layout,
    area: Rect,
    rects: &[Rect],
) -> Result<(), BufferError> {
    let row_bytes = layout.width as usize * 4;
    if layout.stride < row_bytes {
        return Err(BufferError::StrideTooShort {
            stride: layout.stride,
            width: layout.width,
        });
    }
    let needed = (layout.height as usize)
        .checked_sub(1)
        .map_or(Some(0), |rows| {
            rows.checked_mul(layout.stride)?.checked_add(row_bytes)
        })
        .and_then(|bytes| bytes.checked_add(layout.offset))
        .unwrap_or(usize::MAX);
    if data.len() < needed {
        return Err(BufferError::TooSmall {
            len: data.len(),
            needed,
        });
    }
    if area.right() > layout.width || area.bottom() > layout.height {
        return Err(BufferError::AreaOutside { area });
    }
    let bounds = Rect::new(0, 0, area.width, area.height);
    for rect in rects {
        let Some(rect) = rect.intersect(&bounds) else {
            continue;
        };
        for y in rect.y..rect.bottom() {
            let source_y = (area.y + y) as usize;
            let start = layout.offset + source_y * layout.stride + (area.x + rect.x) as usize * 4;
            let source = &data[start..start + rect.width as usize * 4];
            let Some(target) = picture.row_span_mut(rect.x, y, rect.width) else {
                continue;
            };
            match layout.order {
                ChannelOrder::Bgr => target.copy_from_slice(source),
                ChannelOrder::Rgb => {
                    for (to, from) in target.chunks_exact_mut(4).zip(source.chunks_exact(4)) {
                        to.copy_from_slice(&[from[2], from[1], from[0], from[3]]);
                    }
                }
            }
        }
    }
    Ok(())
}

/// What changed in a frame, as the compositor's damage regions (buffer coordinates) become
/// rectangles of the picture: moved by the crop, clipped to it. `None`: the frame says nothing
/// usable, so everything may have changed.
pub fn damage_rects(
    regions: impl IntoIterator<Item = (i32, i32, u32, u32)>,
    area: Rect,
) -> Option<Vec<Rect>> {
    let mut rects = Vec::new();
    for (x, y, width, height) in regions {
        if width == 0 || height == 0 {
            continue;
        }
        let left = i64::from(x).max(i64::from(area.x));
        let top = i64::from(y).max(i64::from(area.y));
        let right = (i64::from(x) + i64::from(width)).min(i64::from(area.right()));
        let bottom = (i64::from(y) + i64::from(height)).min(i64::from(area.bottom()));
        if right <= left || bottom <= top {
            continue;
        }
        rects.push(Rect::new(
            (left - i64::from(area.x)) as u32,
            (top - i64::from(area.y)) as u32,
            (right - left) as u32,
            (bottom - top) as u32,
        ));
    }
    if rects.is_empty() {
        // A damage list with no region in it: mutter sends that for a whole-frame change.
        return None;
    }
    Some(at_most(rects, MAX_DAMAGE_RECTS))
}

/// A cursor bitmap (premultiplied, as mutter and KWin send it) as straight-alpha RGBA rows packed
/// without padding. `None` when the bytes are fewer than the size says.
pub fn cursor_rgba(
    order: ChannelOrder,
    width: u32,
    height: u32,
    stride: usize,
    bytes: &[u8],
) -> Option<Vec<u8>> {
    let row_bytes = width as usize * 4;
    if stride < row_bytes {
        return None;
    }
    let needed = if height == 0 {
        0
    } else {
        (height as usize - 1) * stride + row_bytes
    };
    if bytes.len() < needed {
        return None;
    }
    let mut rgba = Vec::with_capacity(row_bytes * height as usize);
    for row in 0..height as usize {
        for pixel in bytes[row * stride..row * stride + row_bytes].chunks_exact(4) {
            let (red, blue) = match order {
                ChannelOrder::Rgb => (pixel[0], pixel[2]),
                ChannelOrder::Bgr => (pixel[2], pixel[0]),
            };
            let alpha = pixel[3];
            rgba.extend_from_slice(&[
                unpremultiplied(red, alpha),
                unpremultiplied(pixel[1], alpha),
                unpremultiplied(blue, alpha),
                alpha,
            ]);
        }
    }
    Some(rgba)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 4x3 buffer with a 20-byte stride (4 bytes of padding) after 8 bytes of offset, each
    /// pixel's bytes telling its place: (x, y, 0x33, 0xff).
    fn buffer() -> (Vec<u8>, Layout) {
        let layout = Layout {
            order: ChannelOrder::Bgr,
            width: 4,
            height: 3,
            stride: 20,
            offset: 8,
        };
        let mut data = vec![0xee; 8 + 3 * 20];
        for y in 0..3 {
            for x in 0..4 {
                let at = 8 + y * 20 + x * 4;
                data[at..at + 4].copy_from_slice(&[x as u8, y as u8, 0x33, 0xff]);
            }
        }
        (data, layout)
    }

    fn bytes_at(picture: &Picture, x: u32, y: u32) -> [u8; 4] {
        let at = (y * picture.width() + x) as usize * 4;
        picture.as_bytes()[at..at + 4].try_into().expect("4 bytes")
    }

    #[test]
    fn stride_and_offset_are_honoured() {
        let (data, layout) = buffer();
        let mut picture = Picture::new(4, 3);
        copy_pixels(
            &mut picture,
            &data,
            &layout,
            Rect::new(0, 0, 4, 3),
            &[Rect::new(0, 0, 4, 3)],
        )
        .expect("copied");
        assert_eq!(bytes_at(&picture, 3, 2), [3, 2, 0x33, 0xff]);
        assert_eq!(bytes_at(&picture, 0, 1), [0, 1, 0x33, 0xff]);
    }

    #[test]
    fn rgb_buffers_become_bgr() {
        let (data, mut layout) = buffer();
        layout.order = ChannelOrder::Rgb;
        let mut picture = Picture::new(4, 3);
        copy_pixels(
            &mut picture,
            &data,
            &layout,
            Rect::new(0, 0, 4, 3),
            &[Rect::new(2, 1, 1, 1)],
        )
        .expect("copied");
        assert_eq!(bytes_at(&picture, 2, 1), [0x33, 1, 2, 0xff]);
        assert_eq!(
            bytes_at(&picture, 1, 1),
            [0, 0, 0, 255],
            "outside the rectangle"
        );
    }

    #[test]
    fn a_crop_is_the_picture() {
        let (data, layout) = buffer();
        let area = visible_area(4, 3, Some((1, 1, 2, 2)));
        assert_eq!(area, Rect::new(1, 1, 2, 2));
        let mut picture = Picture::new(2, 2);
        copy_pixels(&mut picture, &data, &layout, area, &[Rect::new(0, 0, 2, 2)]).expect("copied");
        assert_eq!(bytes_at(&picture, 0, 0), [1, 1, 0x33, 0xff]);
        assert_eq!(bytes_at(&picture, 1, 1), [2, 2, 0x33, 0xff]);
    }

    #[test]
    fn crops_outside_the_buffer_are_clipped_or_ignored() {
        assert_eq!(
            visible_area(4, 3, Some((2, 1, 10, 10))),
            Rect::new(2, 1, 2, 2)
        );
        assert_eq!(
            visible_area(4, 3, Some((9, 9, 1, 1))),
            Rect::new(0, 0, 4, 3)
        );
        assert_eq!(
            visible_area(4, 3, Some((-1, 0, 2, 2))),
            Rect::new(0, 0, 4, 3)
        );
        assert_eq!(
            visible_area(4, 3, Some((0, 0, 0, 2))),
            Rect::new(0, 0, 4, 3)
        );
    }

    #[test]
    fn a_short_buffer_is_an_error_not_a_panic() {
        let (data, layout) = buffer();
        let mut picture = Picture::new(4, 3);
        let area = Rect::new(0, 0, 4, 3);
        let whole = [area];
        assert!(matches!(
            copy_pixels(&mut picture, &data[..data.len() - 5], &layout, area, &whole),
            Err(BufferError::TooSmall { .. })
        ));
        let narrow = Layout {
            stride: 12,
            ..layout
        };
        assert!(matches!(
            copy_pixels(&mut picture, &data, &narrow, area, &whole),
            Err(BufferError::StrideTooShort { .. })
        ));
        let huge_offset = Layout {
            offset: usize::MAX / 2,
            ..layout
        };
        assert!(copy_pixels(&mut picture, &data, &huge_offset, area, &whole).is_err());
    }

    #[test]
    fn damage_moves_with_the_crop_and_stays_inside_it() {
        let area = Rect::new(100, 50, 200, 100);
        let rects = damage_rects(
            [(90, 40, 20, 20), (250, 140, 100, 100), (0, 0, 10, 10)],
            area,
        )
        .expect("damage");
        assert_eq!(
            rects,
            vec![Rect::new(0, 0, 10, 10), Rect::new(150, 90, 50, 10)]
        );
    }

    #[test]
    fn no_region_or_too_many_regions() {
        let area = Rect::new(0, 0, 1000, 1000);
        assert_eq!(damage_rects([], area), None);
        assert_eq!(damage_rects([(5, 5, 0, 3)], area), None);
        let many = (0..=MAX_DAMAGE_RECTS as i32).map(|i| (i * 10, i, 2, 2));
        assert_eq!(
            damage_rects(many, area),
            Some(vec![Rect::new(
                0,
                0,
                MAX_DAMAGE_RECTS as u32 * 10 + 2,
                MAX_DAMAGE_RECTS as u32 + 2
            )])
        );
    }

    #[test]
    fn cursor_bitmaps_are_unpremultiplied_and_unpadded() {
        // Two pixels a row, one row of padding bytes after each.
        let bytes = [
            0x80, 0x40, 0x00, 0x80, /**/ 0xff, 0x00, 0x00, 0xff, /**/ 9, 9, 9, 9, //
            0x00, 0x00, 0x00, 0x00, /**/ 0x10, 0x20, 0x30, 0xff, /**/ 9, 9, 9, 9,
        ];
        let rgba = cursor_rgba(ChannelOrder::Rgb, 2, 2, 12, &bytes).expect("rgba");
        assert_eq!(
            rgba,
            vec![
                0xff, 0x80, 0x00, 0x80, 0xff, 0x00, 0x00, 0xff, 0, 0, 0, 0, 0x10, 0x20, 0x30, 0xff
            ]
        );
        let bgr = cursor_rgba(ChannelOrder::Bgr, 2, 2, 12, &bytes).expect("rgba");
        assert_eq!(&bgr[4..8], &[0x00, 0x00, 0xff, 0xff]);
        assert_eq!(cursor_rgba(ChannelOrder::Rgb, 2, 2, 12, &bytes[..19]), None);
        assert_eq!(cursor_rgba(ChannelOrder::Rgb, 4, 2, 12, &bytes), None);
    }
}
