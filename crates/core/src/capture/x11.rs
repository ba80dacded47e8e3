//! Monitors of an X server, read the way x11vnc reads them: one connection kept open for the whole
//! share, MIT-SHM for the pixels, DAMAGE to learn which parts changed (so a grab reads only those),
//! XFIXES for the pointer, and RandR 1.5 for the list of monitors.
//!
//! The shared segment is a `memfd` handed to the server (MIT-SHM 1.2); after each `ShmGetImage`
//! the bytes are read back with `pread`, which costs the same copy a mapping would and needs no
//! `unsafe`. Where SHM cannot work (a remote display, an old server, `SCREENSHARE_NO_SHM=1`) the
//! same source reads with plain `GetImage`, and the status says so.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use x11rb::connection::{Connection, RequestConnection};
use x11rb::protocol::damage::{self, ConnectionExt as _};
use x11rb::protocol::randr::{self, ConnectionExt as _};
use x11rb::protocol::shm::{self, ConnectionExt as _};
use x11rb::protocol::xfixes::{self, ConnectionExt as _};
use x11rb::protocol::xproto::{self, ConnectionExt as _, ImageFormat, ImageOrder};
use x11rb::rust_connection::RustConnection;

use super::{
    CaptureError, Damage, Grab, MonitorInfo, PointerShape, PointerState, Screens, Source,
    WindowInfo, resolve, resolve_window,
};
use crate::pixels::{Picture, Rect, unpremultiplied};
use crate::settings::{MonitorChoice, WindowChoice};

/// Above this many damaged rectangles one read of their bounding box is cheaper than many.
const MAX_READS_PER_GRAB: usize = 16;
/// How often a grab also checks the monitor's geometry and reads everything: DAMAGE is a hint
/// (drawing it misses, like some GL page flips, must still reach viewers), and a monitor that
/// grows or moves must be followed.
pub(crate) const RECHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Whether `DISPLAY` names an X server and no Wayland session is set.
pub fn is_x11_session() -> bool {
    let set = |name| std::env::var_os(name).is_some_and(|value| !value.is_empty());
    set("DISPLAY") && !set("WAYLAND_DISPLAY")
}

/// The monitors of one X server.
#[derive(Debug, Clone)]
pub struct X11Screens {
    /// `None`: the `DISPLAY` of the environment.
    display: Option<String>,
    use_shm: bool,
}

impl X11Screens {
    /// The X server of `DISPLAY`; MIT-SHM unless `SCREENSHARE_NO_SHM` is set (to anything but `0`).
    pub fn from_env() -> Self {
        let no_shm = std::env::var("SCREENSHARE_NO_SHM").is_ok_and(|value| value != "0");
        Self {
            display: None,
            use_shm: !no_shm,
        }
    }

    /// A named display (`:7`), with or without MIT-SHM.
    pub fn with_display(display: &str, use_shm: bool) -> Self {
        Self {
            display: Some(display.to_owned()),
            use_shm,
        }
    }

    fn connect(&self) -> Result<(RustConnection, xproto::Window), CaptureError> {
        let (conn, screen) = x11rb::connect(self.display.as_deref()).map_err(|error| {
            let display = self
                .display
                .clone()
                .or_else(|| std::env::var("DISPLAY").ok())
                .unwrap_or_default();
            CaptureError::NoDisplay(format!(
                "cannot connect to the X server at DISPLAY={display:?} ({error}); is it running?"
            ))
        })?;
        let root = conn
            .setup()
            .roots
            .get(screen)
            .map(|screen| screen.root)
            .ok_or(CaptureError::NoMonitors)?;
        Ok((conn, root))
    }
}

impl Screens for X11Screens {
    fn list(&self) -> Result<Vec<MonitorInfo>, CaptureError> {
        let (conn, root) = self.connect()?;
        monitors(&conn, root)
    }

    fn open(&self, choice: Option<&MonitorChoice>) -> Result<Box<dyn Source>, CaptureError> {
        let (conn, root) = self.connect()?;
        check_pixel_format(&conn, root)?;
        let info = resolve(&monitors(&conn, root)?, choice)?;
        let area = monitor_area(&info)?;
        X11Source::new(conn, root, info, area, self.use_shm).map(|source| Box::new(source) as _)
    }

    fn windows(&self) -> Result<Vec<WindowInfo>, CaptureError> {
        let (conn, root) = self.connect()?;
        super::x11_window::windows(&conn, root)
    }

    fn window_thumbnail(
        &self,
        choice: &WindowChoice,
        width: u32,
    ) -> Result<Vec<u8>, super::ThumbnailError> {
        let (conn, root) = self.connect()?;
        check_pixel_format(&conn, root)?;
        let id = match choice {
            WindowChoice::Id(id) => *id,
            WindowChoice::Title(_) => {
                resolve_window(&super::x11_window::windows(&conn, root)?, choice)?.id
            }
        };
        let picture = super::x11_window::screen_under_window(&conn, root, id)?;
        Ok(crate::encode::thumbnail_jpeg(&picture, width, 70)?)
    }

    fn open_window(&self, choice: &WindowChoice) -> Result<Box<dyn Source>, CaptureError> {
        let (conn, root) = self.connect()?;
        check_pixel_format(&conn, root)?;
        let window = resolve_window(&super::x11_window::windows(&conn, root)?, choice)?;
        super::x11_window::X11WindowSource::new(conn, root, window, self.use_shm)
            .map(|source| Box::new(source) as _)
    }
}

/// RandR 1.5 monitors (what desktops with several screens set up), or the whole root window.
fn monitors(conn: &RustConnection, root: xproto::Window) -> Result<Vec<MonitorInfo>, CaptureError> {
    if conn
        .extension_information(randr::X11_EXTENSION_NAME)
        .map_err(failed)?
        .is_some()
    {
        let version = conn
            .randr_query_version(1, 5)
            .map_err(failed)?
            .reply()
            .map_err(failed)?;
        if (version.major_version, version.minor_version) >= (1, 5) {
            let reply = conn
                .randr_get_monitors(root, true)
                .map_err(failed)?
                .reply()
                .map_err(failed)?;
            let mut list = Vec::with_capacity(reply.monitors.len());
            for (index, monitor) in reply.monitors.iter().enumerate() {
                let name = conn
                    .get_atom_name(monitor.name)
                    .map_err(failed)?
                    .reply()
                    .map(|reply| String::from_utf8_lossy(&reply.name).into_owned())
                    .unwrap_or_else(|_| format!("monitor-{index}"));
                list.push(MonitorInfo {
                    index,
                    id: monitor.name,
                    name,
                    width: u32::from(monitor.width),
                    height: u32::from(monitor.height),
                    x: i32::from(monitor.x),
                    y: i32::from(monitor.y),
                    scale_factor: 1.0,
                    is_primary: monitor.primary,
                });
            }
            if !list.is_empty() {
                return Ok(list);
            }
        }
    }
    let geometry = conn
        .get_geometry(root)
        .map_err(failed)?
        .reply()
        .map_err(failed)?;
    Ok(vec![MonitorInfo {
        index: 0,
        id: root,
        name: "screen".to_owned(),
        width: u32::from(geometry.width),
        height: u32::from(geometry.height),
        x: 0,
        y: 0,
        scale_factor: 1.0,
        is_primary: true,
    }])
}

fn monitor_area(info: &MonitorInfo) -> Result<Rect, CaptureError> {
    let x = u32::try_from(info.x);
    let y = u32::try_from(info.y);
    match (x, y) {
        (Ok(x), Ok(y)) if info.width > 0 && info.height > 0 => {
            Ok(Rect::new(x, y, info.width, info.height))
        }
        _ => Err(CaptureError::Failed {
            reason: format!(
                "monitor \"{}\" has an unusable geometry {}x{}{:+}{:+}",
                info.name, info.width, info.height, info.x, info.y
            ),
        }),
    }
}

/// The pipeline speaks B, G, R, X bytes: the layout of a 24- or 32-bit little-endian screen.
fn check_pixel_format(conn: &RustConnection, root: xproto::Window) -> Result<(), CaptureError> {
    let setup = conn.setup();
    let screen = setup.roots.iter().find(|screen| screen.root == root);
    let depth = screen.map_or(0, |screen| screen.root_depth);
    let bits = setup
        .pixmap_formats
        .iter()
        .find(|format| format.depth == depth)
        .map_or(0, |format| format.bits_per_pixel);
    let visual = screen.and_then(|screen| {
        screen
            .allowed_depths
            .iter()
            .flat_map(|depth| &depth.visuals)
            .find(|visual| visual.visual_id == screen.root_visual)
    });
    let masks_ok = visual.is_some_and(|visual| {
        (visual.red_mask, visual.green_mask, visual.blue_mask) == (0xff0000, 0x00ff00, 0x0000ff)
    });
    if (depth == 24 || depth == 32)
        && bits == 32
        && setup.image_byte_order == ImageOrder::LSB_FIRST
        && masks_ok
    {
        Ok(())
    } else {
        Err(CaptureError::Failed {
            reason: format!(
                "the X screen's pixel format (depth {depth}, {bits} bits per pixel) is not one \
                 screenshare reads; run the X server at depth 24"
            ),
        })
    }
}

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

/// Rectangles to read for `damage`: each one, or their bounding box when there are so many
/// that one read is cheaper.
pub(crate) fn reads_for(damage: &Damage, bounds: Rect) -> Vec<Rect> {
    match damage {
        Damage::Unknown => vec![bounds],
        Damage::Rects(rects) if rects.len() > MAX_READS_PER_GRAB => {
            vec![rects.iter().fold(rects[0], |all, rect| all.union(rect))]
        }
        Damage::Rects(rects) => rects.clone(),
    }
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

struct X11Source {
    conn: RustConnection,
    root: xproto::Window,
    info: MonitorInfo,
    /// The monitor, in root-window coordinates.
    area: Rect,
    picture: Picture,
    shm: Option<SharedSegment>,
    damage: Option<DamageTracker>,
    /// XFIXES 2 or later: the pointer can be read.
    sees_pointer: bool,
    shape: Option<Arc<PointerShape>>,
    /// The first grab reads the whole monitor; later ones only what DAMAGE reports.
    primed: bool,
    checked_at: std::time::Instant,
    scratch: Vec<u8>,
}

impl X11Source {
    fn new(
        conn: RustConnection,
        root: xproto::Window,
        info: MonitorInfo,
        area: Rect,
        use_shm: bool,
    ) -> Result<Self, CaptureError> {
        let size = area.area() as usize * 4;
        let shm = if use_shm {
            match attach_segment(&conn, root, size) {
                Ok(segment) => Some(segment),
                Err(reason) => {
                    tracing::info!(%reason, "MIT-SHM unavailable; reading with GetImage");
                    None
                }
            }
        } else {
            tracing::info!("MIT-SHM turned off (SCREENSHARE_NO_SHM); reading with GetImage");
            None
        };
        let xfixes_version = xfixes_version(&conn);
        let damage = if xfixes_version.is_some() {
            match track_damage(&conn, root) {
                Ok(tracker) => Some(tracker),
                Err(reason) => {
                    tracing::info!(%reason, "DAMAGE unavailable; comparing whole frames");
                    None
                }
            }
        } else {
            None
        };
        Ok(Self {
            conn,
            root,
            picture: Picture::new(area.width, area.height),
            info,
            area,
            shm,
            damage,
            sees_pointer: xfixes_version.is_some_and(|major| major >= 2),
            shape: None,
            primed: false,
            checked_at: std::time::Instant::now(),
            scratch: Vec::new(),
        })
    }

    /// What changed since the last grab, from DAMAGE, in monitor coordinates.
    fn take_damage(&mut self) -> Result<Damage, CaptureError> {
        // DamageNotify events only say "something changed"; the region below says what.
        while self.conn.poll_for_event().map_err(failed)?.is_some() {}
        let Some(tracker) = &self.damage else {
            return Ok(Damage::Unknown);
        };
        if !self.primed {
            tracker.clear(&self.conn)?;
            return Ok(Damage::Unknown);
        }
        let rects = tracker
            .take(&self.conn)?
            .into_iter()
            .filter_map(|rect| {
                let on_monitor = rect.intersect(&self.area)?;
                Some(Rect::new(
                    on_monitor.x - self.area.x,
                    on_monitor.y - self.area.y,
                    on_monitor.width,
                    on_monitor.height,
                ))
            })
            .collect();
        Ok(Damage::Rects(rects))
    }

    /// Reads `rect` (monitor coordinates) from the server into the picture.
    fn read(&mut self, rect: Rect) -> Result<(), CaptureError> {
        read_pixels(
            &self.conn,
            self.shm.as_ref(),
            self.root,
            (self.area.x as i32, self.area.y as i32),
            rect,
            &mut self.picture,
            &mut self.scratch,
        )
    }

    fn pointer(&mut self) -> Result<Option<PointerState>, CaptureError> {
        if !self.sees_pointer {
            return Ok(None);
        }
        read_pointer(&self.conn, &mut self.shape, self.area.into())
    }
}

impl Source for X11Source {
    fn info(&self) -> &MonitorInfo {
        &self.info
    }

    fn grab(&mut self) -> Result<Grab<'_>, CaptureError> {
        if self.checked_at.elapsed() >= RECHECK_EVERY {
            self.checked_at = std::time::Instant::now();
            let now = monitors(&self.conn, self.root)?
                .into_iter()
                .find(|monitor| monitor.name == self.info.name);
            let same = now
                .as_ref()
                .and_then(|monitor| monitor_area(monitor).ok())
                .is_some_and(|area| area == self.area);
            if !same {
                return Err(CaptureError::Failed {
                    reason: format!(
                        "monitor \"{}\" changed size or position, or went away",
                        self.info.name
                    ),
                });
            }
            self.primed = false;
        }
        let damage = self.take_damage()?;
        for rect in reads_for(&damage, self.picture.bounds()) {
            self.read(rect)?;
        }
        self.primed = true;
        let pointer = self.pointer()?;
        Ok(Grab {
            picture: &self.picture,
            damage,
            pointer,
        })
    }

    fn method(&self) -> &'static str {
        if self.shm.is_some() {
            "x11-shm"
        } else {
            "x11-getimage"
        }
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

/// XFIXES' major version, once announced (the server answers nothing before that).
pub(crate) fn xfixes_version(conn: &RustConnection) -> Option<u32> {
    conn.extension_information(xfixes::X11_EXTENSION_NAME)
        .ok()
        .flatten()?;
    let reply = conn.xfixes_query_version(5, 0).ok()?.reply().ok()?;
    Some(reply.major_version)
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

pub(crate) fn failed(error: impl std::fmt::Display) -> CaptureError {
    CaptureError::Failed {
        reason: format!("X11: {error}"),
    }
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
