//! The share's H.264 encoder: OpenH264 in its real-time camera mode. Video carries what moves
//! (clips, photos, games), which is natural pictures; the screen-content mode's rate control
//! overshoots several times on them (57 against 5.5 Mbit/s at 1080p30 on a grainy photo) and is
//! three times slower, and text stays with the tiles anyway.

use bytes::Bytes;
use fast_image_resize::images::Image;
use fast_image_resize::{PixelType, Resizer};
use openh264::OpenH264API;
use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod,
    RateControlMode, UsageType,
};
use openh264::formats::{BgraSliceU8, YUVBuffer};

use super::{EncodedPicture, VideoError, bitrate_for, shrink};
use crate::pixels::Picture;

/// Encodes the share's pictures, one after the other, for every viewer at once.
pub struct H264Encoder {
    encoder: Encoder,
    /// The picture converted to I420, reused from one picture to the next.
    yuv: YUVBuffer,
    /// Where an odd-sized picture is cut to even, or a larger one shrunk, before conversion.
    even: Vec<u8>,
    /// Where a picture larger than the encoder's size is scaled down (the budget chose a
    /// smaller size), and what scales it.
    scaled: Option<Image<'static>>,
    resizer: Resizer,
    size: (u32, u32),
    fps: u32,
    /// Whether the next picture must be a keyframe (a switch into video, a joiner).
    keyframe_asked: bool,
}

impl std::fmt::Debug for H264Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H264Encoder")
            .field("size", &self.size)
            .field("fps", &self.fps)
            .finish_non_exhaustive()
    }
}

/// The largest picture OpenH264 encodes (level 5.2).
const LARGEST: (u32, u32) = (3840, 2160);

impl H264Encoder {
    /// An encoder for `width` x `height` pictures (cut to even) at `fps`, a keyframe every two
    /// seconds, at the bit rate [`bitrate_for`] that size.
    pub fn new(width: u32, height: u32, fps: u32) -> Result<Self, VideoError> {
        Self::with_bitrate(width, height, fps, bitrate_for(width, height, fps))
    }

    /// The same at `bps` (a picture shrunk to spare the CPU: see `bitrate_shrunk`).
    pub fn with_bitrate(width: u32, height: u32, fps: u32, bps: u32) -> Result<Self, VideoError> {
        let size = (width & !1, height & !1);
        let (long, short) = (size.0.max(size.1), size.0.min(size.1));
        if short < 2 || long > LARGEST.0 || short > LARGEST.1 {
            return Err(VideoError::Size { width, height });
        }
        let fps = fps.clamp(1, 60);
        let config = EncoderConfig::new()
            .usage_type(UsageType::CameraVideoRealTime)
            .complexity(Complexity::Low)
            .rate_control_mode(RateControlMode::Bitrate)
            .bitrate(BitRate::from_bps(bps))
            .max_frame_rate(FrameRate::from_hz(fps as f32))
            // Quality gives way before the frame rate does: a skipped picture is a stutter for
            // every viewer. (Pictures the capture thread cannot encode in time are skipped before
            // they reach the encoder, never queued.)
            .skip_frames(false)
            .intra_frame_period(IntraFramePeriod::from_num_frames(fps * 2))
            // One thread: the capture thread already runs beside the server's.
            .num_threads(1);
        let encoder = Encoder::with_api_config(OpenH264API::from_source(), config)
            .map_err(|error| VideoError::Encoder(error.to_string()))?;
        Ok(Self {
            encoder,
            yuv: YUVBuffer::new(size.0 as usize, size.1 as usize),
            even: Vec::new(),
            scaled: None,
            resizer: Resizer::new(),
            size,
            fps,
            keyframe_asked: true,
        })
    }

    /// The size pictures are encoded at.
    pub fn size(&self) -> (u32, u32) {
        self.size
    }

    /// The next picture is a keyframe, whatever the interval says.
    pub fn ask_keyframe(&mut self) {
        self.keyframe_asked = true;
    }

    /// Encodes `picture` taken at `at_ms` (milliseconds since the share began), scaled to the
    /// encoder's size when it is larger. `None` when the rate control skipped it to keep to the
    /// bit rate.
    pub fn encode(
        &mut self,
        picture: &Picture,
        at_ms: u64,
    ) -> Result<Option<EncodedPicture>, VideoError> {
        let (width, height) = self.size;
        let even = (picture.width() & !1, picture.height() & !1);
        let pixels = if (picture.width(), picture.height()) == self.size {
            picture.as_bytes()
        } else if even == self.size {
            cut_to_even(picture, &mut self.even);
            &self.even
        } else if shrink::shrink(picture, self.size, &mut self.even) {
            &self.even
        } else if even.0 > width && even.1 > height {
            scale(picture, self.size, &mut self.scaled, &mut self.resizer)?
        } else {
            return Err(VideoError::Size {
                width: picture.width(),
                height: picture.height(),
            });
        };
        self.yuv
            .read_bgra8(BgraSliceU8::new(pixels, (width as usize, height as usize)));
        if std::mem::take(&mut self.keyframe_asked) {
            self.encoder.force_intra_frame();
        }
        let encoded = self
            .encoder
            .encode_at(&self.yuv, openh264::Timestamp::from_millis(at_ms))
            .map_err(|error| VideoError::Encoder(error.to_string()))?;
        let keyframe = matches!(encoded.frame_type(), FrameType::IDR | FrameType::I);
        let annex_b = encoded.to_vec();
        if annex_b.is_empty() || matches!(encoded.frame_type(), FrameType::Skip) {
            return Ok(None);
        }
        Ok(Some(EncodedPicture {
            keyframe,
            annex_b: Bytes::from(annex_b),
            width,
            height,
        }))
    }
}

/// `picture` scaled down to `size` in `scaled`, so that fine detail does not shimmer as it
/// moves (for ratios `shrink` has no blocks for).
fn scale<'a>(
    picture: &Picture,
    size: (u32, u32),
    scaled: &'a mut Option<Image<'static>>,
    resizer: &mut Resizer,
) -> Result<&'a [u8], VideoError> {
    let scaled = scaled.get_or_insert_with(|| Image::new(size.0, size.1, PixelType::U8x4));
    crate::encode::resize_into(picture, scaled, resizer)
        .map_err(|error| VideoError::Encoder(error.to_string()))?;
    Ok(scaled.buffer())
}

/// `picture` without its last column and row where they make a size odd, packed into `out`.
fn cut_to_even(picture: &Picture, out: &mut Vec<u8>) {
    let (width, height) = (picture.width() as usize, picture.height() as usize);
    let even_width = width & !1;
    out.clear();
    for row in picture.as_bytes().chunks_exact(width * 4).take(height & !1) {
        out.extend_from_slice(&row[..even_width * 4]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openh264::decoder::Decoder;
    use openh264::formats::YUVSource;

    /// A square of `colour` (R, G, B) on grey, at `x`.
    fn scene(width: u32, height: u32, x: u32, colour: [u8; 3]) -> Picture {
        let mut bytes = Picture::filled(width, height, [90, 90, 90])
            .as_bytes()
            .to_vec();
        for row in 40..120 {
            for column in x..x + 80 {
                let at = (row * width as usize + column as usize) * 4;
                bytes[at..at + 3].copy_from_slice(&[colour[2], colour[1], colour[0]]);
            }
        }
        Picture::from_bgrx(width, height, bytes).expect("a picture")
    }

    /// The decoded picture's colour at (x, y), as R, G, B.
    fn rgb_at(decoded: &openh264::decoder::DecodedYUV<'_>, x: usize, y: usize) -> [u8; 3] {
        let (width, _) = decoded.dimensions();
        let mut rgb = vec![0u8; width * decoded.dimensions().1 * 3];
        decoded.write_rgb8(&mut rgb);
        let at = (y * width + x) * 3;
        [rgb[at], rgb[at + 1], rgb[at + 2]]
    }

    #[test]
    fn what_is_encoded_decodes_to_the_same_picture() {
        let mut encoder = H264Encoder::new(321, 241, 30).expect("an encoder");
        assert_eq!(encoder.size(), (320, 240));
        let mut decoder = Decoder::new().expect("a decoder");
        let red = [220, 30, 30];
        let mut keyframes = 0;
        let mut last = None;
        for step in 0..30u32 {
            let picture = scene(321, 241, 10 + step * 4, red);
            let Some(encoded) = encoder
                .encode(&picture, u64::from(step) * 33)
                .expect("encoded")
            else {
                continue;
            };
            assert!(
                encoded.annex_b.starts_with(&[0, 0, 0, 1]),
                "Annex B start code"
            );
            keyframes += usize::from(encoded.keyframe);
            if let Some(decoded) = decoder.decode(&encoded.annex_b).expect("decodable") {
                assert_eq!(decoded.dimensions(), (320, 240));
                last = Some((step, rgb_at(&decoded, 10 + step as usize * 4 + 40, 80)));
            }
        }
        assert_eq!(keyframes, 1, "the first picture only");
        let (step, colour) = last.expect("pictures decoded");
        assert!(step >= 25, "the last pictures were decoded (last: {step})");
        for (got, want) in colour.iter().zip(red) {
            assert!(
                got.abs_diff(want) <= 24,
                "the square's colour {colour:?}, not {red:?}"
            );
        }
    }

    #[test]
    fn a_larger_picture_is_scaled_to_the_encoders_size() {
        let mut encoder = H264Encoder::new(320, 240, 30).expect("an encoder");
        let mut decoder = Decoder::new().expect("a decoder");
        let blue = [30, 40, 220];
        let encoded = encoder
            .encode(&scene(480, 360, 150, blue), 0)
            .expect("encoded")
            .expect("the first picture");
        assert_eq!((encoded.width, encoded.height), (320, 240));
        let decoded = decoder
            .decode(&encoded.annex_b)
            .expect("decodable")
            .expect("a picture");
        assert_eq!(decoded.dimensions(), (320, 240));
        // The square (150..230 x 40..120) at two thirds: 100..153 x 27..80.
        for (x, y, want) in [
            (126, 53, blue),
            (60, 53, [90, 90, 90]),
            (126, 150, [90, 90, 90]),
        ] {
            let got = rgb_at(&decoded, x, y);
            for (got, want) in got.iter().zip(want) {
                assert!(
                    got.abs_diff(want) <= 24,
                    "at ({x}, {y}): {got:?}, not {want:?}"
                );
            }
        }
    }

    #[test]
    fn a_keyframe_comes_when_asked() {
        let mut encoder = H264Encoder::new(160, 120, 10).expect("an encoder");
        let first = encoder
            .encode(&scene(160, 120, 0, [0, 200, 0]), 0)
            .expect("encoded")
            .expect("a picture");
        assert!(first.keyframe);
        let mut step = 1;
        let next = loop {
            if let Some(next) = encoder
                .encode(
                    &scene(160, 120, step * 2, [0, 200, 0]),
                    u64::from(step) * 100,
                )
                .expect("encoded")
            {
                break next;
            }
            step += 1;
        };
        assert!(!next.keyframe, "a P picture between keyframes");
        encoder.ask_keyframe();
        let asked = encoder
            .encode(&scene(160, 120, 40, [0, 200, 0]), 5_000)
            .expect("encoded")
            .expect("a keyframe is never skipped");
        assert!(asked.keyframe);
    }

    #[test]
    fn sizes_it_cannot_encode_are_refused_in_words() {
        for (width, height) in [(1, 100), (4000, 2000), (2200, 2200)] {
            let error = H264Encoder::new(width, height, 30).expect_err("refused");
            assert!(
                error.to_string().contains(&format!("{width}x{height}")),
                "{error}"
            );
        }
        let mut encoder = H264Encoder::new(64, 64, 30).expect("an encoder");
        let error = encoder
            .encode(&Picture::new(128, 64), 0)
            .expect_err("a picture of another size");
        assert!(
            matches!(error, VideoError::Size { width: 128, .. }),
            "{error}"
        );
    }
}
