//! The pointer through XFIXES: where it is relative to what is captured, and its shape.

use std::sync::Arc;

use x11rb::connection::RequestConnection;
use x11rb::protocol::xfixes::{self, ConnectionExt as _};
use x11rb::rust_connection::RustConnection;

use super::error::failed;
use crate::capture::{CaptureError, PointerShape, PointerState};
use crate::pixels::{Rect, unpremultiplied};

/// XFIXES' major version, once announced (the server answers nothing before that).
pub(crate) fn xfixes_version(conn: &RustConnection) -> Option<u32> {
    conn.extension_information(xfixes::X11_EXTENSION_NAME)
        .ok()
        .flatten()?;
    let reply = conn.xfixes_query_version(5, 0).ok()?.reply().ok()?;
    Some(reply.major_version)
}

/// Where the pointer is relative to `area` (root coordinates), and its shape, reusing the shape
/// kept in `shape` while the server's serial says it is the same. `None` when the server will
/// not show the pointer this time (it answers some clients' cursors with an error): a frame
/// without a pointer beats a lost source. A broken connection is still an error.
pub(crate) fn read_pointer(
    conn: &RustConnection,
    shape: &mut Option<Arc<PointerShape>>,
    area: Placement,
) -> Result<Option<PointerState>, CaptureError> {
    let reply = match conn.xfixes_get_cursor_image().map_err(failed)?.reply() {
        Ok(reply) => reply,
        Err(x11rb::errors::ReplyError::X11Error(error)) => {
            tracing::debug!(?error, "the X server did not show the pointer");
            return Ok(None);
        }
        Err(error) => return Err(failed(error)),
    };
    let serial = u64::from(reply.cursor_serial);
    let current = match shape {
        Some(kept) if kept.serial == serial => kept.clone(),
        _ => {
            let fresh = Arc::new(PointerShape {
                serial,
                width: u32::from(reply.width),
                height: u32::from(reply.height),
                hot_x: u32::from(reply.xhot),
                hot_y: u32::from(reply.yhot),
                rgba: straight_rgba(&reply.cursor_image),
            });
            *shape = Some(fresh.clone());
            fresh
        }
    };
    let x = i32::from(reply.x) - area.x;
    let y = i32::from(reply.y) - area.y;
    let visible = x >= 0 && y >= 0 && (x as u32) < area.width && (y as u32) < area.height;
    Ok(Some(PointerState {
        x,
        y,
        visible,
        shape: current,
    }))
}

/// What is captured, in root coordinates: it may start off screen (a window dragged past the
/// left edge), unlike a [`Rect`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Placement {
    pub x: i32,
    pub y: i32,
    pub width: u32,
    pub height: u32,
}

impl From<Rect> for Placement {
    fn from(rect: Rect) -> Self {
        Self {
            x: rect.x as i32,
            y: rect.y as i32,
            width: rect.width,
            height: rect.height,
        }
    }
}

/// XFIXES gives premultiplied ARGB words; PNG and the page want straight RGBA bytes.
fn straight_rgba(argb: &[u32]) -> Vec<u8> {
    let mut rgba = Vec::with_capacity(argb.len() * 4);
    for &pixel in argb {
        let alpha = (pixel >> 24) as u8;
        let unpremultiply = |channel: u32| unpremultiplied((channel & 0xff) as u8, alpha);
        rgba.extend_from_slice(&[
            unpremultiply(pixel >> 16),
            unpremultiply(pixel >> 8),
            unpremultiply(pixel),
            alpha,
        ]);
    }
    rgba
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_pixels_are_unpremultiplied() {
        let rgba = straight_rgba(&[0xff_10_20_30, 0x80_40_00_80, 0x00_00_00_00]);
        assert_eq!(&rgba[..4], &[0x10, 0x20, 0x30, 0xff]);
        assert_eq!(&rgba[4..8], &[0x80, 0x00, 0xff, 0x80]);
        assert_eq!(&rgba[8..], &[0, 0, 0, 0]);
    }
}
