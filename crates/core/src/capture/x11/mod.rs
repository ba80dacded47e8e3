//! Monitors and windows of an X server, read the way x11vnc reads them: one connection kept open
//! for the whole share, MIT-SHM for the pixels, DAMAGE to learn which parts changed (so a grab
//! reads only those), XFIXES for the pointer, and RandR 1.5 for the list of monitors.
//!
//! Here is [`X11Screens`], the [`Screens`] of one X server: it connects, checks the pixel format
//! and hands out the two kinds of source, each in its own module:
//!
//! - [`monitor`]: the RandR monitor list and the source that captures one monitor;
//! - [`window`]: the window manager's window list and the source that captures one window.
//!
//! Both read through the same parts, which know nothing of monitors or windows:
//!
//! - [`shm`]: the MIT-SHM segment and the pixel reads through it (or `GetImage`);
//! - [`damage`]: DAMAGE tracking, and which rectangles a grab reads;
//! - [`pointer`]: XFIXES, the pointer's place and shape;
//! - [`error`]: X11 errors in words.
//!
//! Dependencies go one way: this module uses `monitor` and `window`; they use the shared parts;
//! `window` never uses `monitor` (nor `monitor` `window`), and the shared parts use neither
//! (`shm`, `damage` and `pointer` use only `error`).

mod damage;
mod error;
mod monitor;
mod pointer;
mod shm;
mod window;

use x11rb::connection::Connection;
use x11rb::protocol::xproto::{self, ImageOrder};
use x11rb::rust_connection::RustConnection;

use super::{CaptureError, MonitorInfo, Screens, Source, WindowInfo, resolve, resolve_window};
use crate::settings::{MonitorChoice, WindowChoice};
use monitor::{X11Source, monitor_area, monitors};

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
        window::windows(&conn, root)
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
            WindowChoice::Title(_) => resolve_window(&window::windows(&conn, root)?, choice)?.id,
        };
        let picture = window::screen_under_window(&conn, root, id)?;
        Ok(crate::encode::thumbnail_jpeg(&picture, width, 70)?)
    }

    fn open_window(&self, choice: &WindowChoice) -> Result<Box<dyn Source>, CaptureError> {
        let (conn, root) = self.connect()?;
        check_pixel_format(&conn, root)?;
        let window = resolve_window(&window::windows(&conn, root)?, choice)?;
        window::X11WindowSource::new(conn, root, window, self.use_shm)
            .map(|source| Box::new(source) as _)
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
