//! One window of an X server, shared on its own: the slides, not the chat beside them.
//!
//! The windows are the window manager's client list (`_NET_CLIENT_LIST`), named by
//! `_NET_WM_NAME` and their class. With the Composite extension, every top-level window is
//! redirected (automatically: the server still draws the screen as before), so a window's own
//! pixels stay readable from its pixmap even where another window covers it; without Composite,
//! what is on screen where the window is gets read instead. Like a monitor, it is read through
//! MIT-SHM, and only where DAMAGE (on its frame) says it changed. The window is looked up again on
//! every grab, so the picture follows it as it moves and resizes; a closed or minimised window, or
//! one on another virtual desktop, is a lost source, reported in words.

use std::sync::Arc;

use x11rb::connection::{Connection, RequestConnection};

use x11rb::protocol::composite::{self, ConnectionExt as _};
use x11rb::protocol::damage::{self, ConnectionExt as _};
use x11rb::protocol::xproto::{
    self, AtomEnum, ChangeWindowAttributesAux, ConnectionExt as _, EventMask, ImageFormat, MapState,
};
use x11rb::protocol::{ErrorKind, Event};
use x11rb::rust_connection::RustConnection;

use super::damage::{DamageTracker, RECHECK_EVERY, reads_for, track_damage};
use super::error::failed;
use super::pointer::{Placement, read_pointer, xfixes_version};
use super::shm::{SharedSegment, attach_segment, read_pixels};
use crate::capture::{
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
    desktop: xproto::Atom,
    current_desktop: xproto::Atom,
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
            desktop: atom("_NET_WM_DESKTOP")?,
            current_desktop: atom("_NET_CURRENT_DESKTOP")?,
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

/// The part of the screen where `whole` is (cut to the screen, whose size is read now: RandR
/// may have changed it).
fn visible_part(
    conn: &RustConnection,
    root: xproto::Window,
    whole: Placement,
) -> Result<Rect, CaptureError> {
    let screen = conn
        .get_geometry(root)
        .map_err(failed)?
        .reply()
        .map_err(failed)?;
    on_screen(whole, u32::from(screen.width), u32::from(screen.height))
        .ok_or(CaptureError::WindowGone(WindowGone::Minimised))
}

/// The pixels of the screen where `whole` is, and the rectangle they cover.
fn screen_part(
    conn: &RustConnection,
    root: xproto::Window,
    whole: Placement,
) -> Result<(Vec<u8>, Rect), CaptureError> {
    let visible = visible_part(conn, root, whole)?;
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
    /// MIT-SHM: `None` when it is off or the server cannot share memory with us; the segment
    /// grows with the window.
    shm: Option<SharedSegment>,
    use_shm: bool,
    /// DAMAGE on the window's frame, which it follows (a window manager may reframe a window).
    damage: Option<(xproto::Window, DamageTracker)>,
    /// DAMAGE can be asked for (XFIXES too, for its regions).
    tracks_damage: bool,
    /// The server said the window was destroyed: it never comes back, and its id may soon name
    /// another client's window.
    destroyed: bool,
    /// The next grab reads the whole window: the first, after a resize or a new frame, after a
    /// read from the screen, and every [`RECHECK_EVERY`] (DAMAGE is a hint).
    primed: bool,
    read_all_at: std::time::Instant,
    scratch: Vec<u8>,
    sees_pointer: bool,
    shape: Option<Arc<PointerShape>>,
    /// The window as found when opened: who owns it, for the capture thread's check that a
    /// reopened id is still that window.
    opened: WindowInfo,
}

impl X11WindowSource {
    pub(crate) fn new(
        conn: RustConnection,
        root: xproto::Window,
        window: WindowInfo,
        use_shm: bool,
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
        let xfixes = xfixes_version(&conn);
        let tracks_damage = composited
            && xfixes.is_some()
            && conn
                .extension_information(damage::X11_EXTENSION_NAME)
                .map_err(failed)?
                .is_some()
            && conn
                .damage_query_version(1, 1)
                .map_err(failed)?
                .reply()
                .is_ok();
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
        let mut source = Self {
            pixmap,
            conn,
            root,
            window: window.id,
            atoms,
            picture: Picture::new(window.width.max(1), window.height.max(1)),
            info,
            composited,
            shm: None,
            use_shm,
            damage: None,
            tracks_damage,
            destroyed: false,
            primed: false,
            read_all_at: std::time::Instant::now(),
            scratch: Vec::new(),
            sees_pointer: xfixes.is_some_and(|major| major >= 2),
            shape: None,
            opened: window,
        };
        // Told when the window is destroyed, before its id can be handed to another client.
        source
            .conn
            .change_window_attributes(
                source.window,
                &ChangeWindowAttributesAux::new().event_mask(EventMask::STRUCTURE_NOTIFY),
            )
            .map_err(failed)?;
        if use_shm {
            source.fit_segment(source.opened.width, source.opened.height);
        } else {
            tracing::info!("MIT-SHM turned off (SCREENSHARE_NO_SHM); reading with GetImage");
        }
        Ok(source)
    }

    /// A shared segment that holds a `width` x `height` read, replacing a smaller one; without
    /// one, reads go through GetImage.
    fn fit_segment(&mut self, width: u32, height: u32) {
        let needed = width as usize * height as usize * 4;
        if !self.use_shm || self.shm.as_ref().is_some_and(|shm| shm.size() >= needed) {
            return;
        }
        // In steps of 4 MiB, so a window dragged larger does not get a new segment per grab.
        let needed = needed.next_multiple_of(4 << 20);
        if let Some(old) = self.shm.take()
            && let Err(error) = old.detach(&self.conn)
        {
            tracing::debug!(%error, "detaching a shared segment");
        }
        match attach_segment(&self.conn, self.root, needed) {
            Ok(segment) => self.shm = Some(segment),
            Err(reason) => {
                tracing::info!(%reason, "MIT-SHM unavailable; reading the window with GetImage");
                self.use_shm = false;
            }
        }
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
            return Ok(Some(if self.on_another_desktop()? {
                WindowGone::OtherDesktop
            } else {
                WindowGone::Minimised
            }));
        }
        Ok(None)
    }

    /// Whether the window manager put the window on a virtual desktop other than the one shown
    /// (which is why it is out of sight, not minimised). All desktops (`0xFFFFFFFF`) is none.
    fn on_another_desktop(&self) -> Result<bool, CaptureError> {
        let cardinal = |window, property| -> Result<Option<u32>, CaptureError> {
            Ok(self
                .conn
                .get_property(false, window, property, AtomEnum::CARDINAL, 0, 1)
                .map_err(failed)?
                .reply()
                .ok()
                .and_then(|reply| reply.value32().and_then(|mut values| values.next())))
        };
        let on = cardinal(self.window, self.atoms.desktop)?;
        let shown = cardinal(self.root, self.atoms.current_desktop)?;
        Ok(matches!((on, shown), (Some(on), Some(shown)) if on != shown && on != u32::MAX))
    }

    /// The window's pixels: from its pixmap where Composite allows (covered parts included,
    /// only what DAMAGE reports once primed), else the part of the screen it is on. Returns what
    /// changed and what the picture now holds, in root coordinates.
    fn read(&mut self, whole: Placement) -> Result<(Damage, Placement), CaptureError> {
        if self.picture.width() != whole.width || self.picture.height() != whole.height {
            self.picture = Picture::new(whole.width, whole.height);
            self.primed = false;
        }
        if self.read_all_at.elapsed() >= RECHECK_EVERY {
            self.primed = false;
        }
        if self.composited
            && let Some(damage) = self.read_own_pixels()?
        {
            self.primed = true;
            return Ok((damage, whole));
        }
        // From the screen: only what is visible, so the picture takes that size.
        self.primed = false;
        let visible = visible_part(&self.conn, self.root, whole)?;
        if self.picture.width() != visible.width || self.picture.height() != visible.height {
            self.picture = Picture::new(visible.width, visible.height);
        }
        self.fit_segment(visible.width, visible.height);
        let bounds = self.picture.bounds();
        read_pixels(
            &self.conn,
            self.shm.as_ref(),
            self.root,
            (visible.x as i32, visible.y as i32),
            bounds,
            &mut self.picture,
            &mut self.scratch,
        )?;
        Ok((Damage::Unknown, Placement::from(visible)))
    }

    /// The window's own pixels from its top-level's composite pixmap (covered parts included):
    /// everything when not primed, else what DAMAGE reports; `None` when the server will not
    /// name the pixmap or read from it (the window changed under us: read the screen this time).
    fn read_own_pixels(&mut self) -> Result<Option<Damage>, CaptureError> {
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
        let border = i32::from(frame_geometry.border_width);
        let (inside_x, inside_y) = (i32::from(inside.dst_x), i32::from(inside.dst_y));
        let damage = self.take_damage(frame, (inside_x, inside_y))?;
        if damage == Damage::Rects(Vec::new()) {
            // Nothing drawn: nothing to read.
            return Ok(Some(damage));
        }
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
        self.fit_segment(self.picture.width(), self.picture.height());
        let mut read = Ok(());
        for rect in reads_for(&damage, self.picture.bounds()) {
            read = read_pixels(
                &self.conn,
                self.shm.as_ref(),
                pixmap,
                (inside_x + border, inside_y + border),
                rect,
                &mut self.picture,
                &mut self.scratch,
            );
            if read.is_err() {
                break;
            }
        }
        self.conn.free_pixmap(pixmap).map_err(failed)?;
        if let Err(error) = read {
            tracing::debug!(%error, "reading the window's pixmap; reading the screen instead");
            return Ok(None);
        }
        if damage == Damage::Unknown {
            self.read_all_at = std::time::Instant::now();
        }
        Ok(Some(damage))
    }

    /// What changed in the window since the last grab, from DAMAGE on its frame (whose
    /// coordinates put the window at `inside`); `Unknown` until primed, or without DAMAGE.
    fn take_damage(
        &mut self,
        frame: xproto::Window,
        inside: (i32, i32),
    ) -> Result<Damage, CaptureError> {
        if !self.tracks_damage {
            return Ok(Damage::Unknown);
        }
        if self.damage.as_ref().is_none_or(|(on, _)| *on != frame) {
            if let Some((_, old)) = self.damage.take() {
                old.destroy(&self.conn)?;
            }
            match track_damage(&self.conn, frame) {
                Ok(tracker) => self.damage = Some((frame, tracker)),
                Err(reason) => {
                    // The frame may be going (a window manager reframing): whole this time,
                    // and asked again next grab.
                    tracing::debug!(%reason, "no DAMAGE on the window's frame; reading it whole");
                    return Ok(Damage::Unknown);
                }
            }
            // Told when the frame goes, which takes the DAMAGE object with it.
            self.conn
                .change_window_attributes(
                    frame,
                    &ChangeWindowAttributesAux::new().event_mask(EventMask::STRUCTURE_NOTIFY),
                )
                .map_err(failed)?;
            self.primed = false;
        }
        let Some((_, tracker)) = &self.damage else {
            return Ok(Damage::Unknown);
        };
        if !self.primed {
            tracker.clear(&self.conn)?;
            return Ok(Damage::Unknown);
        }
        let window = self.picture.bounds();
        let rects = tracker
            .take(&self.conn)?
            .into_iter()
            .filter_map(|rect| {
                // Frame coordinates to the window's: the title bar and borders fall away.
                let left = (rect.x as i32 - inside.0).max(0);
                let top = (rect.y as i32 - inside.1).max(0);
                let right = rect.x as i32 + rect.width as i32 - inside.0;
                let bottom = rect.y as i32 + rect.height as i32 - inside.1;
                if right <= left || bottom <= top {
                    return None;
                }
                Rect::new(
                    left as u32,
                    top as u32,
                    (right - left) as u32,
                    (bottom - top) as u32,
                )
                .intersect(&window)
            })
            .collect();
        Ok(Damage::Rects(rects))
    }

    /// Reads what the server sent: the window's or its frame's destruction, and errors (which
    /// arrive as events), of which a DAMAGE object gone with its frame matters.
    fn drain_events(&mut self) -> Result<(), CaptureError> {
        while let Some(event) = self.conn.poll_for_event().map_err(failed)? {
            let frame_gone = match event {
                Event::DestroyNotify(destroyed) if destroyed.window == self.window => {
                    self.destroyed = true;
                    false
                }
                Event::DestroyNotify(destroyed) => self
                    .damage
                    .as_ref()
                    .is_some_and(|(frame, _)| *frame == destroyed.window),
                Event::Error(error) => error.error_kind == ErrorKind::DamageBadDamage,
                _ => false,
            };
            if frame_gone && let Some((_, tracker)) = self.damage.take() {
                tracker.forget(&self.conn)?;
                self.primed = false;
            }
        }
        Ok(())
    }

    fn pointer(&mut self, area: Placement) -> Result<Option<PointerState>, CaptureError> {
        if !self.sees_pointer {
            return Ok(None);
        }
        read_pointer(&self.conn, &mut self.shape, area)
    }
}

impl Source for X11WindowSource {
    fn info(&self) -> &MonitorInfo {
        &self.info
    }

    fn grab(&mut self) -> Result<Grab<'_>, CaptureError> {
        self.drain_events()?;
        if self.destroyed {
            return Err(CaptureError::WindowGone(WindowGone::Closed));
        }
        if let Some(gone) = self.gone()? {
            // Shown again, it may have been redrawn in any way while away.
            self.primed = false;
            return Err(CaptureError::WindowGone(gone));
        }
        let whole = placement(&self.conn, self.root, self.window)?
            .ok_or(CaptureError::WindowGone(WindowGone::Closed))?;
        if whole.width == 0 || whole.height == 0 {
            return Err(CaptureError::WindowGone(WindowGone::Minimised));
        }
        let (damage, area) = self.read(whole)?;
        self.info.x = area.x;
        self.info.y = area.y;
        self.info.width = area.width;
        self.info.height = area.height;
        let pointer = self.pointer(area)?;
        Ok(Grab {
            picture: &self.picture,
            damage,
            pointer,
        })
    }

    fn method(&self) -> &'static str {
        match (self.composited, self.shm.is_some()) {
            (true, true) => "x11-window-composite-shm",
            (true, false) => "x11-window-composite",
            (false, true) => "x11-window-shm",
            (false, false) => "x11-window",
        }
    }

    fn window(&self) -> Option<&WindowInfo> {
        Some(&self.opened)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_part_on_screen_of_a_window_past_its_edges() {
        let window = |x, y, width, height| Placement {
            x,
            y,
            width,
            height,
        };
        for (placement, on_a_1280x800_screen) in [
            (window(-100, 50, 300, 200), Some(Rect::new(0, 50, 200, 200))),
            (
                window(1200, 700, 300, 200),
                Some(Rect::new(1200, 700, 80, 100)),
            ),
            (window(2000, 0, 100, 100), None),
        ] {
            assert_eq!(
                on_screen(placement, 1280, 800),
                on_a_1280x800_screen,
                "{placement:?}"
            );
        }
    }
}
