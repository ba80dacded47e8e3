//! DAMAGE: which parts of a drawable changed since the last grab, so a grab reads only those.

use x11rb::connection::{Connection, RequestConnection};
use x11rb::protocol::damage::{self, ConnectionExt as _};
use x11rb::protocol::xfixes::{self, ConnectionExt as _};
use x11rb::protocol::xproto;
use x11rb::rust_connection::RustConnection;

use super::error::failed;
use crate::capture::{CaptureError, Damage};
use crate::pixels::Rect;

/// Above this many damaged rectangles one read of their bounding box is cheaper than many.
const MAX_READS_PER_GRAB: usize = 16;
/// How often a grab also checks the monitor's geometry and reads everything: DAMAGE is a hint
/// (drawing it misses, like some GL page flips, must still reach viewers), and a monitor that
/// grows or moves must be followed.
pub(crate) const RECHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// A DAMAGE object on one drawable, and a region to fetch its rectangles through.
pub(crate) struct DamageTracker {
    damage: damage::Damage,
    region: xfixes::Region,
}

impl DamageTracker {
    /// Takes what changed since the last call, in the drawable's coordinates, clamped to its
    /// origin (a region may start off screen). Subtracted before any pixels are read: a change
    /// landing in between is read now and reported again next time, never lost.
    pub(crate) fn take(&self, conn: &RustConnection) -> Result<Vec<Rect>, CaptureError> {
        conn.damage_subtract(self.damage, x11rb::NONE, self.region)
            .map_err(failed)?;
        let reply = conn
            .xfixes_fetch_region(self.region)
            .map_err(failed)?
            .reply()
            .map_err(failed)?;
        Ok(reply
            .rectangles
            .iter()
            .filter_map(|rectangle| {
                let (x, y) = (i32::from(rectangle.x), i32::from(rectangle.y));
                let right = x + i32::from(rectangle.width);
                let bottom = y + i32::from(rectangle.height);
                let (x, y) = (x.max(0), y.max(0));
                Some(Rect::new(
                    u32::try_from(x).ok()?,
                    u32::try_from(y).ok()?,
                    u32::try_from(right - x).ok().filter(|width| *width > 0)?,
                    u32::try_from(bottom - y)
                        .ok()
                        .filter(|height| *height > 0)?,
                ))
            })
            .collect())
    }

    /// Forgets everything reported so far (the next read is a whole one anyway).
    pub(crate) fn clear(&self, conn: &RustConnection) -> Result<(), CaptureError> {
        conn.damage_subtract(self.damage, x11rb::NONE, x11rb::NONE)
            .map_err(failed)?;
        Ok(())
    }

    /// Frees the server's objects (a drawable already gone took its DAMAGE with it: the server
    /// answers with an error event, drained with the others).
    pub(crate) fn destroy(self, conn: &RustConnection) -> Result<(), CaptureError> {
        conn.damage_destroy(self.damage).map_err(failed)?;
        self.forget(conn)
    }

    /// Frees what is left when the drawable, and with it the DAMAGE object, is gone.
    pub(crate) fn forget(self, conn: &RustConnection) -> Result<(), CaptureError> {
        conn.xfixes_destroy_region(self.region).map_err(failed)?;
        Ok(())
    }
}

/// A DAMAGE object on `drawable` (the root for a monitor, a window's frame for a window).
pub(crate) fn track_damage(
    conn: &RustConnection,
    drawable: xproto::Drawable,
) -> Result<DamageTracker, String> {
    let present = conn
        .extension_information(damage::X11_EXTENSION_NAME)
        .map_err(|error| error.to_string())?;
    if present.is_none() {
        return Err("the X server has no DAMAGE extension".to_owned());
    }
    conn.damage_query_version(1, 1)
        .map_err(|error| error.to_string())?
        .reply()
        .map_err(|error| error.to_string())?;
    let damage = conn.generate_id().map_err(|error| error.to_string())?;
    conn.damage_create(damage, drawable, damage::ReportLevel::NON_EMPTY)
        .map_err(|error| error.to_string())?
        .check()
        .map_err(|error| error.to_string())?;
    let region = conn.generate_id().map_err(|error| error.to_string())?;
    let created = conn
        .xfixes_create_region(region, &[])
        .map_err(|error| error.to_string())?
        .check();
    if let Err(error) = created {
        let _ = conn.damage_destroy(damage);
        return Err(error.to_string());
    }
    Ok(DamageTracker { damage, region })
}

/// Rectangles to read for `damage`: each one, or their bounding box when there are so many
/// that one read is cheaper.
pub(crate) fn reads_for(damage: &Damage, bounds: Rect) -> Vec<Rect> {
    match damage {
        Damage::Unknown => vec![bounds],
        Damage::Rects(rects) => crate::pixels::at_most(rects.clone(), MAX_READS_PER_GRAB),
    }
}
