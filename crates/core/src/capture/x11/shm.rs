//! The MIT-SHM segment the X server writes grabs into, and the reads of pixels through it.
//!
//! The shared segment is a `memfd` handed to the server (MIT-SHM 1.2); after each `ShmGetImage`
//! the bytes are read back with `pread`, which costs the same copy a mapping would and needs no
//! `unsafe`. Where SHM cannot work (a remote display, an old server, `SCREENSHARE_NO_SHM=1`) the
//! same source reads with plain `GetImage`, and the status says so.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;

use x11rb::connection::{Connection, RequestConnection};
use x11rb::protocol::shm::{self, ConnectionExt as _};
use x11rb::protocol::xproto::{self, ConnectionExt as _, ImageFormat};
use x11rb::rust_connection::RustConnection;

use super::error::failed;
use crate::capture::CaptureError;
use crate::pixels::{Picture, Rect};

/// A shared memory segment the X server writes grabs into.
pub(crate) struct SharedSegment {
    id: shm::Seg,
    file: File,
    size: usize,
}

impl SharedSegment {
    /// Hands the segment back to the server's keeping no more (the memory goes with `self`).
    pub(crate) fn detach(self, conn: &RustConnection) -> Result<(), CaptureError> {
        conn.shm_detach(self.id).map_err(failed)?;
        Ok(())
    }

    pub(crate) fn size(&self) -> usize {
        self.size
    }
}

pub(crate) fn attach_segment(
    conn: &RustConnection,
    root: xproto::Window,
    size: usize,
) -> Result<SharedSegment, String> {
    let present = conn
        .extension_information(shm::X11_EXTENSION_NAME)
        .map_err(|error| error.to_string())?;
    if present.is_none() {
        return Err("the X server has no MIT-SHM extension".to_owned());
    }
    let version = conn
        .shm_query_version()
        .map_err(|error| error.to_string())?
        .reply()
        .map_err(|error| error.to_string())?;
    if (version.major_version, version.minor_version) < (1, 2) {
        return Err(format!(
            "MIT-SHM {}.{} cannot take a file descriptor (1.2 can)",
            version.major_version, version.minor_version
        ));
    }
    let fd = rustix::fs::memfd_create("screenshare-capture", rustix::fs::MemfdFlags::CLOEXEC)
        .map_err(|error| format!("memfd_create: {error}"))?;
    let file = File::from(fd);
    file.set_len(size as u64)
        .map_err(|error| format!("cannot size the segment: {error}"))?;
    let for_server = OwnedFd::from(
        file.try_clone()
            .map_err(|error| format!("cannot share the segment: {error}"))?,
    );
    let id = conn.generate_id().map_err(|error| error.to_string())?;
    conn.shm_attach_fd(id, for_server, false)
        .map_err(|error| error.to_string())?
        .check()
        .map_err(|error| format!("the X server refused the segment: {error}"))?;
    // A remote server accepts the request but cannot reach the memory: prove it works.
    conn.shm_get_image(root, 0, 0, 1, 1, !0, ImageFormat::Z_PIXMAP.into(), id, 0)
        .map_err(|error| error.to_string())?
        .reply()
        .map_err(|error| format!("ShmGetImage failed: {error}"))?;
    Ok(SharedSegment { id, file, size })
}

/// Reads `rect` of `picture` from `drawable`, where the picture's origin is at `origin` of the
/// drawable: through `shm` when it is big enough, else with GetImage.
pub(crate) fn read_pixels(
    conn: &RustConnection,
    shm: Option<&SharedSegment>,
    drawable: xproto::Drawable,
    origin: (i32, i32),
    rect: Rect,
    picture: &mut Picture,
    scratch: &mut Vec<u8>,
) -> Result<(), CaptureError> {
    let (x, y, width, height) = (
        i16::try_from(origin.0 + rect.x as i32).map_err(failed)?,
        i16::try_from(origin.1 + rect.y as i32).map_err(failed)?,
        u16::try_from(rect.width).map_err(failed)?,
        u16::try_from(rect.height).map_err(failed)?,
    );
    let bytes = rect.area() as usize * 4;
    match shm {
        Some(segment) if bytes <= segment.size => {
            let written = conn
                .shm_get_image(
                    drawable,
                    x,
                    y,
                    width,
                    height,
                    !0,
                    ImageFormat::Z_PIXMAP.into(),
                    segment.id,
                    0,
                )
                .map_err(failed)?
                .reply()
                .map_err(failed)?
                .size;
            if (written as usize) < bytes {
                // Another depth than the screen's (a window's own visual): not B, G, R, X.
                return Err(failed(format!(
                    "the X server wrote {written} bytes where {bytes} were asked for"
                )));
            }
            if rect.x == 0 && rect.width == picture.width() {
                // Whole rows are contiguous in the picture too: read straight into it.
                let rows = picture.rows_mut(rect.y, rect.height);
                segment.file.read_exact_at(rows, 0).map_err(failed)?;
            } else {
                scratch.resize(bytes, 0);
                segment.file.read_exact_at(scratch, 0).map_err(failed)?;
                picture.write_rect(rect, scratch);
            }
        }
        _ => {
            let reply = conn
                .get_image(ImageFormat::Z_PIXMAP, drawable, x, y, width, height, !0)
                .map_err(failed)?
                .reply()
                .map_err(failed)?;
            if reply.data.len() < bytes {
                return Err(failed("the X server sent fewer pixels than asked for"));
            }
            picture.write_rect(rect, &reply.data);
        }
    }
    Ok(())
}
