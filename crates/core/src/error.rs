//! The engine's errors, told apart by what the caller can do about them.

use std::net::SocketAddr;

use crate::capture::CaptureError;
use crate::settings::SettingsError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error(
        "{addr} is already in use (another share?); pick another port with --port, or --port 0 for any free one"
    )]
    AddrInUse { addr: SocketAddr },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the display server does not answer (is it hung?); try again when it does")]
    DisplayNotAnswering,
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// Whether the error comes from what the user asked for (a setting, a monitor, a port, the
    /// display), as opposed to something breaking at run time. Command-line front ends exit with
    /// a usage status for these.
    pub fn is_bad_request(&self) -> bool {
        !matches!(self, Error::Internal(_) | Error::DisplayNotAnswering)
    }
}
