//! Fixtures for screenshare's tests. Each one starts a real program (Xvfb, the `screenshare`
//! binary, chromedriver + Chromium, a headless GNOME session) and stops it when dropped, so tests
//! run in parallel without sharing a screen or a port.

mod browser;
mod gnome;
mod proxy;
pub mod pushed;
pub mod raw;
mod served;
mod session;
pub mod sound;
mod xvfb;

pub use browser::Browser;
pub use gnome::{CastStarted, DialogAnswer, GnomeSession, Painter, PortalCast, PortalStream};
pub use proxy::Relay;
pub use served::Served;
pub use sound::SoundSession;
pub use xvfb::{MotionPainter, Running, XObserver, Xvfb, photo_like, shared_display};

use std::time::{Duration, Instant};

/// Polls `check` every 50 ms until it returns `Some`, or fails after `timeout` naming `what`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if Instant::now() > deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Parses `#rrggbb`.
pub fn rgb(hex: &str) -> anyhow::Result<[u8; 3]> {
    let hex = hex.trim_start_matches('#');
    anyhow::ensure!(hex.len() == 6, "colour {hex:?} is not #rrggbb");
    let channel = |at: usize| u8::from_str_radix(&hex[at..at + 2], 16);
    Ok([channel(0)?, channel(2)?, channel(4)?])
}

/// Whether two colours are within `tolerance` on every channel (JPEG and scaling blur a little).
pub fn close_to(got: [u8; 3], want: [u8; 3], tolerance: u8) -> bool {
    got.iter()
        .zip(want)
        .all(|(got, want)| got.abs_diff(want) <= tolerance)
}
