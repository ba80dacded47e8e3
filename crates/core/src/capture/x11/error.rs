//! X11 errors, as the [`CaptureError`] every part of this folder reports.

use crate::capture::CaptureError;

/// Any X11 failure (a request, a reply, a value out of range) as a capture error, in words.
pub(crate) fn failed(error: impl std::fmt::Display) -> CaptureError {
    CaptureError::Failed {
        reason: format!("X11: {error}"),
    }
}
