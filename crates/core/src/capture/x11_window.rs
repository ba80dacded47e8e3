//! One window of an X server, shared on its own: the slides, not the chat beside them.
//!
//! The windows are the window manager's client list (`_NET_CLIENT_LIST`), named by
//! `_NET_WM_NAME` and their class. With the Composite extension, every top-level window is
//! redirected (automatically: the server still draws the screen as before), so a window's own
//! pixels stay readable from its pixmap even where another window covers it; without Composite,
//! what is on screen where the window is gets read instead. The window is looked up again on every
//! grab, so the picture follows it as it moves and resizes; a closed or minimised window is a lost
//! source, reported in words.

use std::sync::Arc;

use x11rb::connection::{Connection, RequestConnection};
use x11rb::protocol::composite::{self, ConnectionExt as _};
use x11rb::protocol::xfixes::ConnectionExt as _;
use x11rb::protocol::xproto::{self, AtomEnum, ConnectionExt as _, ImageFormat, MapState};
use x11rb::rust_connection::RustConnection;

use super::x11::{Placement, failed};
use super::{
    CaptureError, Damage, Grab, MonitorInfo, PointerShape, PointerState, Source, WindowGone,
    WindowInfo,
};
use crate::pixels::{Picture, Rect};

/// The windows the window manager lists, with their titles, classes and places on the screen.
pub(crate) fn windows(
    conn: &RustConnection,
    root: xproto::Window,
) -> Result<Vec<WindowInfo>, CaptureError> {
    let atoms = Atoms::new(conn)?;
    let clients = conn
        .get_property(false, root, atoms.client_list, AtomEnum::WINDOW, 0, 4096)
        .map_err(failed)?
        .reply()
        .map_err(failed)?;
    let ids: Vec<u32> = clients.value32().map(Iterator::collect).unwrap_or_default();
    let mut windows = Vec::new();
    for id in ids {
        // A window may close while the list is read: leave it out.
        if let Ok(Some(info)) = describe(conn, root, &atoms, id) {
            windows.push(info);
        }
    }
    Ok(windows)
}

/// The atoms this module asks about.
struct Atoms {
    client_list: xproto::Atom,
    name: xproto::Atom,
    utf8: xproto::Atom,
    state: xproto::Atom,
    hidden: xproto::Atom,
    pid: xproto::Atom,
}

impl Atoms {
    fn new(conn: &RustConnection) -> Result<Self, CaptureError> {
        let atom = |name: &str| -> Result<xproto::Atom, CaptureError> {
            Ok(conn
                .intern_atom(false, name.as_bytes())
                .map_err(failed)?
                .reply()
                .map_err(failed)?
                .atom)
        };
        Ok(Self {
            client_list: atom("_NET_CLIENT_LIST")?,
            name: atom("_NET_WM_NAME")?,
            utf8: atom("UTF8_STRING")?,
            state: atom("_NET_WM_STATE")?,
            hidden: atom("_NET_WM_STATE_HIDDEN")?,
            pid: atom("_NET_WM_PID")?,
        })
    }
}

/// Title, class and root-relative place of window `id`; `None` for one not shown at all.
fn describe(
    conn: &RustConnection,
    root: xproto::Window,
    atoms: &Atoms,
    id: xproto::Window,
) -> Result<Option<WindowInfo>, CaptureError> {
    let Some(area) = placement(conn, root, id)? else {
        return Ok(None);
    };
    let title = text_property(conn, id, atoms.name, atoms.utf8)?
        .filter(|title| !title.is_empty())
        .or(text_property(
            conn,
            id,
            AtomEnum::WM_NAME.into(),
            AtomEnum::STRING.into(),
        )?)
        .unwrap_or_default();
    // WM_CLASS is "instance\0Class\0": the class names the application.
    let app = text_property(conn, id, AtomEnum::WM_CLASS.into(), AtomEnum::STRING.into())?
        .and_then(|class| class.split('\0').nth(1).map(str::to_owned))
        .unwrap_or_default();
    let pid = conn
        .get_property(false, id, atoms.pid, AtomEnum::CARDINAL, 0, 1)
        .map_err(failed)?
        .reply()
        .ok()
        .and_then(|reply| reply.value32().and_then(|mut values| values.next()));
    Ok(Some(WindowInfo {
        id,
        title,
        app,
        pid,
        width: area.width,
        height: area.height,
        x: area.x,
        y: area.y,
    }))
}

fn text_property(
    conn: &RustConnection,
    window: xproto::Window,
    property: xproto::Atom,
    kind: xproto::Atom,
) -> Result<Option<String>, CaptureError> {
    let reply = conn
        .get_property(false, window, property, kind, 0, 1024)
        .map_err(failed)?
        .reply()
        .map_err(failed)?;
    if reply.value.is_empty() {
        return Ok(None);
    }
    Ok(Some(String::from_utf8_lossy(&reply.value).into_owned()))
}

/// Where `window` is in root coordinates, whole (it may reach past the screen's edges); `None`
/// when it does not exist any more.
pub(crate) fn placement(
    conn: &RustConnection,
    root: xproto::Window,
    window: xproto::Window,
) -> Result<Option<Placement>, CaptureError> {
    let Ok(geometry) = conn.get_geometry(window).map_err(failed)?.reply() else {
        return Ok(None);
    };
    let Ok(origin) = conn
        .translate_coordinates(window, root, 0, 0)
        .map_err(failed)?
        .reply()
    else {
        return Ok(None);
    };
    Ok(Some(Placement {
        x: i32::from(origin.dst_x),
        y: i32::from(origin.dst_y),
        width: u32::from(geometry.width),
        height: u32::from(geometry.height),
    }))
}

/// The part of `placement` on a screen `screen_width` x `screen_height`, as a rectangle there.
pub(crate) fn on_screen(
    placement: Placement,
    screen_width: u32,
    screen_height: u32,
) -> Option<Rect> {
    let left = placement.x.max(0);
    let top = placement.y.max(0);
    let right = (placement.x + placement.width as i32).min(screen_width as i32);
    let bottom = (placement.y + placement.height as i32).min(screen_height as i32);
    (right > left && bottom > top).then(|| {
        Rect::new(
            left as u32,
            top as u32,
            (right - left) as u32,
            (bottom - top) as u32,
        )
    })
}

/// A picture of what the screen shows where window `id` is: for the presenter's picker, every
/// few seconds for every window, so it asks the server for as little as it can (no list, no
/// redirection; covered parts show what covers them).
pub(crate) fn screen_under_window(
    conn: &RustConnection,
    root: xproto::Window,
    id: xproto::Window,
) -> Result<Picture, CaptureError> {
    let whole = placement(conn, root, id)?.ok_or(CaptureError::WindowGone(WindowGone::Closed))?;
    let (data, visible) = screen_part(conn, root, whole)?;
    let mut picture = Picture::new(visible.width, visible.height);
    picture.write_rect(picture.bounds(), &data);
    Ok(picture)
}

/// The pixels of the screen where `whole` is (cut to the screen, whose size is read now: RandR
/// may have changed it), and the rectangle they cover.
fn screen_part(
    conn: &RustConnection,
    root: xproto::Window,
    whole: Placement,
) -> Result<(Vec<u8>, Rect), CaptureError> {
    let screen = conn
        .get_geometry(root)
        .map_err(failed)?
        .reply()
        .map_err(failed)?;
    let visible = on_screen(whole, u32::from(screen.width), u32::from(screen.height))
        .ok_or(CaptureError::WindowGone(WindowGone::Minimised))?;
    let data = conn
        .get_image(
            ImageFormat::Z_PIXMAP,
            root,
            i16::try_from(visible.x).map_err(failed)?,
            i16::try_from(visible.y).map_err(failed)?,
            u16::try_from(visible.width).map_err(failed)?,
            u16::try_from(visible.height).map_err(failed)?,
            !0,
        )
        .map_err(failed)?
        .reply()
        .map_err(failed)?
        .data;
    if data.len() < visible.area() as usize * 4 {
        return Err(failed("the X server sent fewer pixels than asked for"));
    }
    Ok((data, visible))
}

/// The child of the root that holds `window` (its frame, with a reparenting window manager).
fn top_level(
    conn: &RustConnection,
    root: xproto::Window,
    window: xproto::Window,
) -> Result<xproto::Window, CaptureError> {
    let mut current = window;
    loop {
        let tree = conn
            .query_tree(current)
            .map_err(failed)?
            .reply()
            .map_err(|_| CaptureError::WindowGone(WindowGone::Closed))?;
        if tree.parent == root || tree.parent == x11rb::NONE {
            return Ok(current);
        }
        current = tree.parent;
    }
}

pub(crate) struct X11WindowSource {
    conn: RustConnection,
    root: xproto::Window,
    window: xproto::Window,
    atoms: Atoms,
    info: MonitorInfo,
    picture: Picture,
    /// Composite is there: read the window's own pixels, covered or not.
    composited: bool,
    /// The id each grab names the window's pixmap with, and frees again: one id, reused, so a
    /// long share never runs the connection out of ids.
    pixmap: xproto::Pixmap,
    sees_pointer: bool,
    shape: Option<Arc<PointerShape>>,
}

impl X11WindowSource {
    pub(crate) fn new(
        conn: RustConnection,
        root: xproto::Window,
        window: WindowInfo,
    ) -> Result<Self, CaptureError> {
        let atoms = Atoms::new(&conn)?;
        let composited = conn
            .extension_information(composite::X11_EXTENSION_NAME)
            .map_err(failed)?
            .is_some()
            && conn
                .composite_query_version(0, 4)
                .map_err(failed)?
                .reply()
                .is_ok()
            && conn
                .composite_redirect_subwindows(root, composite::Redirect::AUTOMATIC)
                .map_err(failed)?
                .check()
                .is_ok();
        if !composited {
            tracing::info!(
                "no Composite extension: covered parts of the window show what covers them"
            );
        }
        let sees_pointer = conn
            .xfixes_query_version(2, 0)
            .ok()
            .and_then(|cookie| cookie.reply().ok())
            .is_some_and(|version| version.major_version >= 2);
        let info = MonitorInfo {
            index: 0,
            id: window.id,
            name: window.title.clone(),
            width: window.width,
            height: window.height,
            x: window.x,
            y: window.y,
            scale_factor: 1.0,
            is_primary: false,
        };
        let pixmap = conn.generate_id().map_err(failed)?;
        Ok(Self {
            pixmap,
            conn,
            root,
            window: window.id,
            atoms,
            picture: Picture::new(window.width.max(1), window.height.max(1)),
            info,
            composited,
            sees_pointer,
            shape: None,
        })
    }

    /// Why the window cannot be read now, if it cannot.
    fn gone(&self) -> Result<Option<WindowGone>, CaptureError> {
        let Ok(attributes) = self
            .conn
            .get_window_attributes(self.window)
            .map_err(failed)?
            .reply()
        else {
            return Ok(Some(WindowGone::Closed));
        };
        let hidden = self
            .conn
            .get_property(false, self.window, self.atoms.state, AtomEnum::ATOM, 0, 64)
            .map_err(failed)?
            .reply()
            .ok()
            .and_then(|reply| {
                reply
                    .value32()
                    .map(|mut atoms| atoms.any(|atom| atom == self.atoms.hidden))
            })
            .unwrap_or(false);
        if hidden || attributes.map_state != MapState::VIEWABLE {
            return Ok(Some(WindowGone::Minimised));
        }
        Ok(None)
    }

    /// The window's pixels: all of them from its pixmap where Composite allows, else the part of
    /// the screen it is on. Returns what the picture now holds, in root coordinates.
    fn read(&mut self, whole: Placement) -> Result<Placement, CaptureError> {
        let own = if self.composited {
            self.read_own_pixels(
                u16::try_from(whole.width).map_err(failed)?,
                u16::try_from(whole.height).map_err(failed)?,
            )?
        } else {
            None
        };
        let (data, held) = match own {
            Some(data) => (data, whole),
            None => {
                let (data, visible) = screen_part(&self.conn, self.root, whole)?;
                (data, Placement::from(visible))
            }
        };
        if data.len() < held.width as usize * held.height as usize * 4 {
            return Err(failed("the X server sent fewer pixels than asked for"));
        }
        if self.picture.width() != held.width || self.picture.height() != held.height {
            self.picture = Picture::new(held.width, held.height);
        }
        self.picture.write_rect(self.picture.bounds(), &data);
        Ok(held)
    }

    /// The window's own pixels from its top-level's composite pixmap (covered parts included);
    /// `None` when the server will not name one.
    fn read_own_pixels(&self, width: u16, height: u16) -> Result<Option<Vec<u8>>, CaptureError> {
        let frame = top_level(&self.conn, self.root, self.window)?;
        // Where the window sits inside its frame (a window manager adds a title bar). The
        // pixmap also holds the frame's border, which the coordinates inside it do not count.
        let Ok(inside) = self
            .conn
            .translate_coordinates(self.window, frame, 0, 0)
            .map_err(failed)?
            .reply()
        else {
            return Ok(None);
        };
        let Ok(frame_geometry) = self.conn.get_geometry(frame).map_err(failed)?.reply() else {
            return Ok(None);
        };
        let border = i16::try_from(frame_geometry.border_width).map_err(failed)?;
        let pixmap = self.pixmap;
        if self
            .conn
            .composite_name_window_pixmap(frame, pixmap)
            .map_err(failed)?
            .check()
            .is_err()
        {
            return Ok(None);
        }
        let image = self
            .conn
            .get_image(
                ImageFormat::Z_PIXMAP,
                pixmap,
                inside.dst_x.saturating_add(border),
                inside.dst_y.saturating_add(border),
                width,
                height,
                !0,
            )
            .map_err(failed)?
            .reply();
        self.conn.free_pixmap(pixmap).map_err(failed)?;
        Ok(image.ok().map(|image| image.data))
    }

    fn pointer(&mut self, area: Placement) -> Result<Option<PointerState>, CaptureError> {
        if !self.sees_pointer {
            return Ok(None);
        }
        super::x11::read_pointer(&self.conn, &mut self.shape, area).map(Some)
    }
}

impl Source for X11WindowSource {
    fn info(&self) -> &MonitorInfo {
        &self.info
    }

    fn grab(&mut self) -> Result<Grab<'_>, CaptureError> {
        // Drain events (none are asked for, but errors arrive as events).
        while self.conn.poll_for_event().map_err(failed)?.is_some() {}
        if let Some(gone) = self.gone()? {
            return Err(CaptureError::WindowGone(gone));
        }
        let whole = placement(&self.conn, self.root, self.window)?
            .ok_or(CaptureError::WindowGone(WindowGone::Closed))?;
        if whole.width == 0 || whole.height == 0 {
            return Err(CaptureError::WindowGone(WindowGone::Minimised));
        }
        let area = self.read(whole)?;
        self.info.x = area.x;
        self.info.y = area.y;
        self.info.width = area.width;
        self.info.height = area.height;
        let pointer = self.pointer(area)?;
        // Whole window each grab: the tiles' comparison finds what really changed.
        Ok(Grab {
            picture: &self.picture,
            damage: Damage::Unknown,
            pointer,
        })
    }

    fn method(&self) -> &'static str {
        if self.composited {
            "x11-window-composite"
        } else {
            "x11-window"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_part_on_screen_of_a_window_past_its_edges() {
        let past_left = Placement {
            x: -100,
            y: 50,
            width: 300,
            height: 200,
        };
        assert_eq!(
            on_screen(past_left, 1280, 800),
            Some(Rect::new(0, 50, 200, 200))
        );
        let past_bottom_right = Placement {
            x: 1200,
            y: 700,
            width: 300,
            height: 200,
        };
        assert_eq!(
            on_screen(past_bottom_right, 1280, 800),
            Some(Rect::new(1200, 700, 80, 100))
        );
        let off = Placement {
            x: 2000,
            y: 0,
            width: 100,
            height: 100,
        };
        assert_eq!(on_screen(off, 1280, 800), None);
    }
}
