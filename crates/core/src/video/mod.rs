//! Motion as video: one H.264 encoder for the whole share, whatever the number of viewers.
//!
//! The tiles stay the answer for text and typing; when most of the screen moves, a video codec
//! carries it in a few megabits where the tiles would need dozens. This module turns the share's
//! pictures into H.264 access units (Annex B), rate-controlled, real-time, no B-frames, frames
//! skipped rather than queued; [`motion`] decides when the share is in video, [`budget`] how large
//! the picture is encoded to keep the presenter's CPU free, [`track`] keeps what
//! pages start from, [`fmp4`] wraps it for Media Source Extensions, and the push stream carries it
//! (`frame::wire`'s video pieces) to pages that asked for it.
//!
//! OpenH264 is compiled from Cisco's source (BSD-2) on Linux; docs/DECISIONS.md says why it was
//! chosen over libvpx and what that means for patents. Elsewhere the share stays on tiles.

pub mod budget;
pub mod fmp4;
#[cfg(target_os = "linux")]
mod h264;
pub mod motion;
mod shrink;
pub mod track;

#[cfg(target_os = "linux")]
pub use h264::H264Encoder;

use bytes::Bytes;

/// The bit rate the encoder aims at: about 4 Mbit/s for 1080p at 30 frames a second, scaled with
/// the area and the frame rate, never below 300 kbit/s nor above 16 Mbit/s.
pub fn bitrate_for(width: u32, height: u32, fps: u32) -> u32 {
    const FULL_HD: f64 = 1920.0 * 1080.0;
    let area = f64::from(width) * f64::from(height) / FULL_HD;
    let rate = f64::from(fps.max(1)) / 30.0;
    (4_000_000.0 * area * rate).clamp(300_000.0, 16_000_000.0) as u32
}

/// The bit rate for a `screen`-sized share encoded at `encoded` size: between the smaller
/// picture's own rate and the screen's, their geometric mean. Each pixel of a shrunk picture
/// stands for several of the screen's and carries more detail than a pixel of a picture that
/// size would (2.7 Mbit/s for 1080p30 encoded at 720p, 2 at 540p).
pub fn bitrate_shrunk(screen: (u32, u32), encoded: (u32, u32), fps: u32) -> u32 {
    let full = f64::from(bitrate_for(screen.0, screen.1, fps));
    let own = f64::from(bitrate_for(encoded.0, encoded.1, fps));
    (full * own).sqrt().round() as u32
}

/// One encoded picture: an H.264 access unit in Annex B form (start codes), with the parameter
/// sets in front when it is a keyframe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedPicture {
    pub keyframe: bool,
    pub annex_b: Bytes,
    /// The size encoded (even: the last column or row of an odd-sized picture is left out).
    pub width: u32,
    pub height: u32,
}

/// Why the encoder could not do its work.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    #[error("a {width}x{height} picture is outside what H.264 here encodes (2x2 to 3840x2160)")]
    Size { width: u32, height: u32 },
    #[error("the H.264 encoder failed: {0}")]
    Encoder(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bit_rate_follows_area_and_frame_rate() {
        assert_eq!(bitrate_for(1920, 1080, 30), 4_000_000);
        assert_eq!(bitrate_for(1280, 720, 30), 1_777_777);
        assert_eq!(bitrate_for(1920, 1080, 15), 2_000_000);
        assert_eq!(bitrate_for(320, 200, 5), 300_000);
        assert_eq!(bitrate_for(7680, 4320, 60), 16_000_000);
    }

    #[test]
    fn a_shrunk_picture_gets_a_rate_between_its_own_and_the_screens() {
        assert_eq!(bitrate_shrunk((1920, 1080), (1920, 1080), 30), 4_000_000);
        assert_eq!(bitrate_shrunk((1920, 1080), (1280, 720), 30), 2_666_666);
        assert_eq!(bitrate_shrunk((1920, 1080), (960, 540), 30), 2_000_000);
    }
}
