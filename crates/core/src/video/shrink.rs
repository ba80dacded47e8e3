//! Shrinks a picture to 2/3 or 1/2 of its size for the encoder, averaging the pixels each one
//! covers. A general resampler (a convolution per row and per column) cost more than the
//! encoder it was saving time for: 3.2 ms a 1080p picture, a fifth of the share's CPU. These two
//! ratios are fixed weights over blocks of 3x3 or 2x2 pixels, a few additions a byte.
// The encoder that shrinks pictures is Linux-only for now; the sizes serve every platform.
#![cfg_attr(not(target_os = "linux"), allow(dead_code))]

use crate::pixels::Picture;

/// The sizes this module shrinks to: 2/3 and 1/2 of each side, cut to even.
pub fn two_thirds(width: u32, height: u32) -> (u32, u32) {
    ((width / 3 * 2) & !1, (height / 3 * 2) & !1)
}

pub fn half(width: u32, height: u32) -> (u32, u32) {
    ((width / 2) & !1, (height / 2) & !1)
}

/// `picture` shrunk into `out` (B, G, R, X rows, packed) when `size` is its 2/3 or its half;
/// `false` for any other size.
pub fn shrink(picture: &Picture, size: (u32, u32), out: &mut Vec<u8>) -> bool {
    let (width, height) = (picture.width(), picture.height());
    if size.0 < 2 || size.1 < 2 {
        return false;
    }
    // Half first: on a tiny picture both can name the same size, and the half covers it all.
    if size == half(width, height) {
        shrink_half(picture, size, out);
        true
    } else if size == two_thirds(width, height) {
        shrink_two_thirds(picture, size, out);
        true
    } else {
        false
    }
}

/// Every 3x3 block becomes 2x2: each output pixel weighs the block's pixels by the area of them
/// it covers (2/3 and 1/3 along each side).
fn shrink_two_thirds(picture: &Picture, size: (u32, u32), out: &mut Vec<u8>) {
    let (width, height) = (size.0 as usize, size.1 as usize);
    let groups = width / 2;
    out.clear();
    out.resize(width * height * 4, 0);
    // Three input rows weighed 2:1 and 1:2 into two, before they are weighed across.
    let mut upper = vec![0u16; groups * 12];
    let mut lower = vec![0u16; groups * 12];
    for (block, rows) in out.chunks_exact_mut(width * 8).enumerate() {
        let y = block as u32 * 3;
        let [a, b, c] = [y, y + 1, y + 2].map(|y| &picture.row(y)[..groups * 12]);
        for (((upper, lower), a), (b, c)) in upper
            .iter_mut()
            .zip(lower.iter_mut())
            .zip(a)
            .zip(b.iter().zip(c))
        {
            let (a, b, c) = (u16::from(*a), u16::from(*b), u16::from(*c));
            *upper = 2 * a + b;
            *lower = b + 2 * c;
        }
        let (top, bottom) = rows.split_at_mut(width * 4);
        across_two_thirds(top, &upper);
        across_two_thirds(bottom, &lower);
    }
}

/// One output row from a row of sums: every three pixels (12 sums) become two (8 bytes).
fn across_two_thirds(row: &mut [u8], sums: &[u16]) {
    for (pixels, sums) in row
        .as_chunks_mut::<8>()
        .0
        .iter_mut()
        .zip(sums.as_chunks::<12>().0)
    {
        let mut first = [0u32; 4];
        let mut second = [0u32; 4];
        for channel in 0..4 {
            let (a, b, c) = (
                u32::from(sums[channel]),
                u32::from(sums[4 + channel]),
                u32::from(sums[8 + channel]),
            );
            first[channel] = 2 * a + b;
            second[channel] = b + 2 * c;
        }
        for channel in 0..4 {
            pixels[channel] = ninth(first[channel]);
            pixels[4 + channel] = ninth(second[channel]);
        }
    }
}

/// `sum / 9`, rounded, for sums of nine weighed bytes (at most 9 x 255).
fn ninth(sum: u32) -> u8 {
    ((sum * 7282 + 32768) >> 16) as u8
}

/// Every 2x2 block becomes one pixel, their average.
fn shrink_half(picture: &Picture, size: (u32, u32), out: &mut Vec<u8>) {
    let (width, height) = (size.0 as usize, size.1 as usize);
    out.clear();
    out.resize(width * height * 4, 0);
    let mut sums = vec![0u16; width * 8];
    for (y, row) in out.chunks_exact_mut(width * 4).enumerate() {
        let y = y as u32 * 2;
        let (a, b) = (
            &picture.row(y)[..width * 8],
            &picture.row(y + 1)[..width * 8],
        );
        for ((sum, a), b) in sums.iter_mut().zip(a).zip(b) {
            *sum = u16::from(*a) + u16::from(*b);
        }
        for (pixel, sums) in row
            .as_chunks_mut::<4>()
            .0
            .iter_mut()
            .zip(sums.as_chunks::<8>().0)
        {
            for channel in 0..4 {
                pixel[channel] = ((sums[channel] + sums[4 + channel] + 2) / 4) as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A picture whose pixel (x, y) is `colour(x, y)` (B, G, R).
    fn painted(width: u32, height: u32, colour: impl Fn(u32, u32) -> [u8; 3]) -> Picture {
        let mut bytes = Vec::new();
        for y in 0..height {
            for x in 0..width {
                let [b, g, r] = colour(x, y);
                bytes.extend_from_slice(&[b, g, r, 0]);
            }
        }
        Picture::from_bgrx(width, height, bytes).expect("a picture")
    }

    fn pixel(bytes: &[u8], width: u32, x: u32, y: u32) -> [u8; 3] {
        let at = ((y * width + x) * 4) as usize;
        [bytes[at], bytes[at + 1], bytes[at + 2]]
    }

    #[test]
    fn sizes_are_two_thirds_and_half_cut_to_even() {
        assert_eq!(two_thirds(1920, 1080), (1280, 720));
        assert_eq!(two_thirds(1366, 768), (910, 512));
        assert_eq!(half(1920, 1080), (960, 540));
        assert_eq!(half(1366, 770), (682, 384));
    }

    #[test]
    fn flat_colours_stay_exact_and_edges_average() {
        // Left third blue, the rest red: 3x3 blocks, each block one colour but the middle.
        let picture = painted(9, 6, |x, _| if x < 3 { [200, 0, 0] } else { [0, 0, 200] });
        let mut out = Vec::new();
        assert!(shrink(&picture, (6, 4), &mut out));
        assert_eq!(out.len(), 6 * 4 * 4);
        for y in 0..4 {
            assert_eq!(pixel(&out, 6, 0, y), [200, 0, 0]);
            assert_eq!(pixel(&out, 6, 1, y), [200, 0, 0]);
            assert_eq!(pixel(&out, 6, 2, y), [0, 0, 200]);
        }
        // A vertical edge inside a block: the output pixel over it mixes 2:1.
        let picture = painted(3, 3, |x, _| if x == 0 { [90, 90, 90] } else { [0, 0, 0] });
        assert!(shrink(&picture, (2, 2), &mut out));
        assert_eq!(pixel(&out, 2, 0, 0), [60, 60, 60]);
        assert_eq!(pixel(&out, 2, 1, 0), [0, 0, 0]);
    }

    #[test]
    fn half_averages_each_block_of_four() {
        let picture = painted(4, 4, |x, y| [(x * 40) as u8, (y * 40) as u8, 7]);
        let mut out = Vec::new();
        assert!(shrink(&picture, (2, 2), &mut out));
        assert_eq!(pixel(&out, 2, 0, 0), [20, 20, 7]);
        assert_eq!(pixel(&out, 2, 1, 1), [100, 100, 7]);
    }

    #[test]
    fn other_sizes_are_left_to_the_general_resampler() {
        let picture = painted(30, 30, |_, _| [1, 2, 3]);
        let mut out = Vec::new();
        assert!(!shrink(&picture, (25, 25), &mut out));
        assert!(!shrink(&picture, (30, 30), &mut out));
    }
}
