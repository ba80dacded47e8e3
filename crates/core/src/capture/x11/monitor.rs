//! The monitors of an X server (RandR 1.5, or the whole root window) and the [`Source`] that
//! captures one of them.

use std::sync::Arc;

use x11rb::connection::{Connection, RequestConnection};
use x11rb::protocol::randr::{self, ConnectionExt as _};
use x11rb::protocol::xproto::{self, ConnectionExt as _};
use x11rb::rust_connection::RustConnection;

use super::damage::{DamageTracker, RECHECK_EVERY, reads_for, track_damage};
use super::error::failed;
use super::pointer::{read_pointer, xfixes_version};
use super::shm::{SharedSegment, attach_segment, read_pixels};
use crate::capture::{CaptureError, Damage, Grab, MonitorInfo, PointerShape, PointerState, Source};
use crate::pixels::{Picture, Rect};

/// RandR 1.5 monitors (what desktops with several screens set up), or the whole root window.
pub(super) fn monitors(
    conn: &RustConnection,
    root: xproto::Window,
) -> Result<Vec<MonitorInfo>, CaptureError> {
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

pub(super) fn monitor_area(info: &MonitorInfo) -> Result<Rect, CaptureError> {
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

pub(super) struct X11Source {
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
    pub(super) fn new(
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
