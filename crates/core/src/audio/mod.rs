//! Sound: the presenter's audio to every viewer, captured once and encoded once.
//!
//! [`capture`] reads what the desktop plays (the monitor of its default output, through PipeWire),
//! [`opus`] encodes it into 20 ms Opus packets, [`track`] gathers them into fragmented MP4
//! ([`fmp4`]) and keeps the last few for the pages' streams, and [`service`] starts and stops all
//! of it as the presenter turns sound on and off (or pauses). The push stream carries the
//! fragments to pages that asked for sound (`audio=1`) as records of their own ([`record`]).
//!
//! Sound is captured on Linux only for now: macOS (ScreenCaptureKit) and Windows (WASAPI
//! loopback) sources may come later; turning sound on there says so.

#[cfg(target_os = "linux")]
mod capture;
pub mod fmp4;
#[cfg(target_os = "linux")]
mod opus;
pub mod record;
pub(crate) mod service;
pub mod track;

/// Samples a second per channel: Opus's own rate, and what browsers play natively.
pub const RATE: u32 = 48_000;
/// Stereo.
pub const CHANNELS: usize = 2;
/// Samples per channel in one packet: 20 ms, Opus's usual frame.
pub const PACKET_SAMPLES: usize = 960;
/// The bit rate the encoder aims at while something plays: music sounds right, speech is
/// transparent.
pub const BITRATE: i32 = 96_000;

#[cfg(target_os = "linux")]
use capture::Capture;
/// No capture elsewhere: turning sound on says it is not available.
#[cfg(not(target_os = "linux"))]
type Capture = std::convert::Infallible;

/// Where a capture says why it stopped on its own (the device or the sound server went away),
/// with the number its owner gave it: what an earlier capture says is old news.
#[derive(Clone, Debug)]
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) struct Ended {
    pub capture: u64,
    pub sender: tokio::sync::mpsc::UnboundedSender<(u64, AudioError)>,
}

#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
impl Ended {
    pub(crate) fn send(&self, error: AudioError) {
        let _ = self.sender.send((self.capture, error));
    }
}

/// Why sound stopped, in words the presenter can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AudioError {
    #[error("sound is captured on Linux only for now")]
    Unsupported,
    #[error("cannot reach the sound server (PipeWire): {0}")]
    Server(String),
    #[error("the sound device went away: {0}")]
    Lost(String),
    #[error("the Opus encoder failed: {0}")]
    Encoder(String),
}

/// One encoded packet of 20 ms, with what the level meter and the fragmenter need to know.
#[derive(Clone, Debug, PartialEq)]
pub struct Packet {
    pub opus: Vec<u8>,
    /// When its first sample was played, as the capture saw it.
    pub at: std::time::Instant,
    /// The loudest sample's magnitude, 0 to 1.
    pub peak: f32,
}

impl Packet {
    /// Nothing audible: below -80 dBFS (a dithered silence, an idle desktop).
    pub fn silent(&self) -> bool {
        self.peak < 1e-4
    }
}

/// A level in dBFS for the meter, floored at -90.
pub fn dbfs(peak: f32) -> f32 {
    if peak <= 0.0 {
        return -90.0;
    }
    (20.0 * peak.log10()).max(-90.0)
}
