//! A captured frame and its encodings, each made at most once, the first time a viewer asks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use image::RgbaImage;
use serde::Serialize;

use crate::encode::{self, EncodeError, Format};

/// One published frame. Shared as `Arc<Frame>`: every viewer of this frame gets the same bytes.
#[derive(Debug)]
pub struct Frame {
    seq: u64,
    jpeg_quality: u8,
    pixels: Arc<RgbaImage>,
    png: OnceLock<Result<Bytes, EncodeError>>,
    jpeg: OnceLock<Result<Bytes, EncodeError>>,
    counters: Arc<EncodeCounters>,
}

impl Frame {
    pub fn new(
        seq: u64,
        pixels: Arc<RgbaImage>,
        jpeg_quality: u8,
        counters: Arc<EncodeCounters>,
    ) -> Self {
        Self {
            seq,
            jpeg_quality,
            pixels,
            png: OnceLock::new(),
            jpeg: OnceLock::new(),
            counters,
        }
    }

    /// Frame number: grows by one for every frame that differs from the one before.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    pub fn width(&self) -> u32 {
        self.pixels.width()
    }

    pub fn height(&self) -> u32 {
        self.pixels.height()
    }

    pub fn pixels(&self) -> &RgbaImage {
        &self.pixels
    }

    /// The frame in `format`, encoding it if nobody has yet. Blocks while encoding: call it from
    /// the capture thread or `spawn_blocking`. Concurrent callers wait for the one encode.
    pub fn encoded(&self, format: Format) -> Result<Bytes, EncodeError> {
        self.cell(format)
            .get_or_init(|| {
                self.counters.count(format);
                let bytes = match format {
                    Format::Png => encode::encode_png(&self.pixels),
                    Format::Jpeg => encode::encode_jpeg(&self.pixels, self.jpeg_quality),
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

/// How many encodes the share has made, per format: the proof that viewers do not multiply work.
#[derive(Debug, Default)]
pub struct EncodeCounters {
    png: AtomicU64,
    jpeg: AtomicU64,
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

    fn record_size(&self, format: Format, bytes: usize) {
        let last = match format {
            Format::Png => &self.last_png_bytes,
            Format::Jpeg => &self.last_jpeg_bytes,
        };
        last.store(bytes as u64, Ordering::Relaxed);
    }

    /// Size of the newest frame encoded in `format`, if any was.
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
        }
    }
}

/// Encodes made so far, per format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EncodeCounts {
    pub png: u64,
    pub jpeg: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgba;

    #[test]
    fn each_format_is_encoded_once_however_often_asked() {
        let counters = Arc::new(EncodeCounters::default());
        let frame = Arc::new(Frame::new(
            1,
            Arc::new(RgbaImage::from_pixel(32, 32, Rgba([1, 2, 3, 255]))),
            80,
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
        assert_eq!(counters.snapshot(), EncodeCounts { png: 1, jpeg: 1 });
        let png_len = frame.encoded(Format::Png).expect("png").len();
        assert_eq!(counters.last_size(Format::Png), Some(png_len));
        assert!(frame.encoded_if_ready(Format::Png).is_some());
    }
}
