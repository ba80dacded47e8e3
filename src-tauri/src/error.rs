//! What a command tells the window when it fails: one plain sentence.

use serde::{Serialize, Serializer};

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Engine(#[from] screenshare_core::Error),
    #[error(transparent)]
    Capture(#[from] screenshare_core::CaptureError),
    #[error(transparent)]
    Thumbnail(#[from] screenshare_core::capture::ThumbnailError),
    #[error("not sharing: press Share first")]
    NotSharing,
    #[error("that viewer has already left")]
    NoSuchViewer,
    #[error("could not make the QR code: {0}")]
    Qr(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// The window receives the message, which is what it shows.
impl Serialize for CommandError {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}
