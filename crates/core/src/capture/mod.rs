//! Where pixels come from: the [`Screens`] a share can pick from, the [`Source`] it captures, and the
//! capture thread that turns grabs into published frames.

mod pacing;
pub mod synthetic;
mod thread;
#[cfg(target_os = "linux")]
pub mod wayland;
#[cfg(target_os = "linux")]
pub mod x11;
pub mod xcap;

use std::sync::Arc;

use serde::Serialize;

use crate::pixels::{Picture, Rect};

use crate::settings::{MonitorChoice, WindowChoice};

pub use pacing::{Backoff, Pacer};
pub(crate) use thread::{CaptureContext, spawn_capture_thread};

/// One monitor as `screenshare list` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MonitorInfo {
    /// Position in the list; what `--monitor N` names.
    pub index: usize,
    /// The platform's own id, stable while the monitor stays plugged in.
    pub id: u32,
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub x: i32,
    pub y: i32,
    pub scale_factor: f32,
    pub is_primary: bool,
}

/// One window that can be shared, as `screenshare list --windows` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WindowInfo {
    /// The platform's id (an X window id); what `--window 0x…` names.
    pub id: u32,
    pub title: String,
    /// The application it belongs to (its class, like `XTerm` or `firefox`).
    pub app: String,
    pub width: u32,
    pub height: u32,
    pub x: i32,
    pub y: i32,
    /// The process that owns it, where the window says (`_NET_WM_PID`).
    pub pid: Option<u32>,
}

impl WindowInfo {
    /// Whether `other` is this window still, not another one that took its id after it closed
    /// (X reuses the ids of clients gone): the same id, owned by the same process of the same
    /// application. Titles change while a window lives (a browser's tab), so they do not count.
    pub fn is_same_window(&self, other: &WindowInfo) -> bool {
        self.id == other.id && self.pid == other.pid && self.app == other.app
    }
}

/// The window `choice` names among `windows`: by id, by whole title, or by a part of the title
/// that only one window has.
pub fn resolve_window(
    windows: &[WindowInfo],
    choice: &WindowChoice,
) -> Result<WindowInfo, CaptureError> {
    let found = match choice {
        WindowChoice::Id(id) => windows.iter().find(|window| window.id == *id),
        WindowChoice::Title(title) => {
            // One window only, exact or partial: of two that match, sharing either would be a
            // guess, and the wrong one may be private.
            let exact: Vec<&WindowInfo> = windows
                .iter()
                .filter(|window| window.title == *title)
                .collect();
            let wanted = title.to_lowercase();
            let candidates: Vec<&WindowInfo> = if exact.is_empty() {
                windows
                    .iter()
                    .filter(|window| window.title.to_lowercase().contains(&wanted))
                    .collect()
            } else {
                exact
            };
            match candidates.as_slice() {
                [only] => Some(*only),
                _ => None,
            }
        }
    };
    found.cloned().ok_or_else(|| CaptureError::UnknownWindow {
        wanted: choice.to_string(),
        available: if windows.is_empty() {
            "none".to_owned()
        } else {
            windows
                .iter()
                .map(|window| format!("0x{:x} \"{}\"", window.id, window.title))
                .collect::<Vec<_>>()
                .join(", ")
        },
    })
}

/// The monitors of a machine (or a stand-in for tests).
///
/// Both calls block: they run on the capture thread or under `spawn_blocking`.
///
/// This is what a shell (the CLI, the desktop app) holds: it lists, checks and previews monitors
/// through it and hands it to [`crate::Share::start_with`]. Tests give it a synthetic screen.
pub trait Screens: Send + Sync + 'static {
    /// Every monitor, in a stable order.
    fn list(&self) -> Result<Vec<MonitorInfo>, CaptureError>;
    /// Opens the chosen monitor (`None`: the primary one) for capture.
    fn open(&self, choice: Option<&MonitorChoice>) -> Result<Box<dyn Source>, CaptureError>;

    /// The windows that can be shared, front to back where the platform knows. Blocks.
    fn windows(&self) -> Result<Vec<WindowInfo>, CaptureError> {
        Ok(Vec::new())
    }

    /// Opens one window for capture.
    fn open_window(&self, choice: &WindowChoice) -> Result<Box<dyn Source>, CaptureError> {
        Err(CaptureError::UnknownWindow {
            wanted: choice.to_string(),
            available: "none (sharing one window is not supported here)".to_owned(),
        })
    }

    /// The window `choice` names, or why there is none. Blocks.
    fn find_window(&self, choice: &WindowChoice) -> Result<WindowInfo, CaptureError> {
        resolve_window(&self.windows()?, choice)
    }

    /// Opens what the settings say to share: their window, or else their monitor.
    fn open_target(
        &self,
        monitor: Option<&MonitorChoice>,
        window: Option<&WindowChoice>,
    ) -> Result<Box<dyn Source>, CaptureError> {
        match window {
            Some(window) => self.open_window(window),
            None => self.open(monitor),
        }
    }

    /// How long opening a source may take: a question to the display server, or on Wayland
    /// the desktop's dialog waiting for the presenter to pick.
    fn open_timeout(&self) -> std::time::Duration {
        DISPLAY_TIMEOUT
    }

    /// Whether the desktop's own dialog picks what to share (Wayland), so that shells show that
    /// instead of a list of monitors and windows to choose from.
    fn picked_on_desktop(&self) -> bool {
        false
    }

    /// Forgets the desktop's remembered pick, so that the next source opened asks again.
    fn pick_again(&self) {}

    /// The share stopped: a dialog of the desktop's still waiting for a pick goes away.
    fn stop_asking(&self) {}

    /// A new share starts: whatever held the last one back (its dialog closed without a pick,
    /// a stop from the desktop) no longer applies, since pressing Share is asking again.
    fn new_share(&self) {}

    /// The monitor `choice` names (`None`: the primary one), or why there is none. Every check of
    /// a monitor choice goes through here. Blocks.
    fn find(&self, choice: Option<&MonitorChoice>) -> Result<MonitorInfo, CaptureError> {
        resolve(&self.list()?, choice)
    }

    /// One grab of monitor `choice` as a small JPEG `width` wide, outside any share: the
    /// presenter's picker. Blocks; the monitor is opened and dropped on the calling thread.
    fn thumbnail(
        &self,
        choice: Option<&MonitorChoice>,
        width: u32,
    ) -> Result<Vec<u8>, ThumbnailError> {
        let mut source = self.open(choice)?;
        let grab = source.grab()?;
        Ok(crate::encode::thumbnail_jpeg(grab.picture, width, 70)?)
    }

    /// One grab of window `choice` as a small JPEG `width` wide, for the picker. Blocks.
    fn window_thumbnail(
        &self,
        choice: &WindowChoice,
        width: u32,
    ) -> Result<Vec<u8>, ThumbnailError> {
        let mut source = self.open_window(choice)?;
        let grab = source.grab()?;
        Ok(crate::encode::thumbnail_jpeg(grab.picture, width, 70)?)
    }
}

/// An opened monitor. It never leaves the capture thread, so it need not be `Send`.
pub trait Source {
    fn info(&self) -> &MonitorInfo;
    /// Brings the monitor's picture up to date and says what may have changed since the last grab.
    fn grab(&mut self) -> Result<Grab<'_>, CaptureError>;
    /// How this source reads pixels, for the status (`x11-shm`, `x11-getimage`, `xcap`, …).
    fn method(&self) -> &'static str;
    /// The window this source reads, as it was when opened; `None` for a monitor.
    fn window(&self) -> Option<&WindowInfo> {
        None
    }
}

/// One grab: the whole current picture, what may differ from the previous grab, and the pointer.
#[derive(Debug)]
pub struct Grab<'a> {
    pub picture: &'a Picture,
    pub damage: Damage,
    /// `None` where the source cannot see the pointer.
    pub pointer: Option<PointerState>,
}

/// What may have changed since the previous grab.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Damage {
    /// The source cannot tell: compare everything.
    Unknown,
    /// Only these rectangles (in the picture's coordinates) may differ; none: nothing changed.
    Rects(Vec<Rect>),
}

/// Where the pointer is, relative to the monitor, and what it looks like.
#[derive(Clone, Debug, PartialEq)]
pub struct PointerState {
    /// The hotspot's position; it may lie outside the monitor.
    pub x: i32,
    pub y: i32,
    pub visible: bool,
    pub shape: Arc<PointerShape>,
}

/// A pointer image, straight-alpha RGBA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PointerShape {
    /// Changes whenever the image does (the X server's cursor serial).
    pub serial: u64,
    pub width: u32,
    pub height: u32,
    pub hot_x: u32,
    pub hot_y: u32,
    pub rgba: Vec<u8>,
}

/// The machine's monitors through the best path it has: on a Wayland session the ScreenCast
/// portal and PipeWire (never XWayland, which sees only X clients); X11 directly (MIT-SHM,
/// DAMAGE and the pointer through XFIXES) when `DISPLAY` names an X server; xcap elsewhere
/// (macOS, Windows).
pub fn system_screens() -> Arc<dyn Screens> {
    #[cfg(target_os = "linux")]
    {
        if wayland::is_wayland_session() {
            return Arc::new(wayland::WaylandScreens::for_user());
        }
        if x11::is_x11_session() {
            return Arc::new(x11::X11Screens::from_env());
        }
    }
    Arc::new(xcap::XcapScreens)
}

/// Picks the chosen monitor out of a list, with an error that lists what there is.
pub fn resolve(
    monitors: &[MonitorInfo],
    choice: Option<&MonitorChoice>,
) -> Result<MonitorInfo, CaptureError> {
    if monitors.is_empty() {
        return Err(CaptureError::NoMonitors);
    }
    let found = match choice {
        None => monitors
            .iter()
            .find(|monitor| monitor.is_primary)
            .or_else(|| monitors.first()),
        Some(MonitorChoice::Index(index)) => monitors.iter().find(|m| m.index == *index),
        Some(MonitorChoice::Name(name)) => monitors
            .iter()
            .find(|m| m.name == *name)
            .or_else(|| monitors.iter().find(|m| m.name.eq_ignore_ascii_case(name))),
    };
    found.cloned().ok_or_else(|| CaptureError::UnknownMonitor {
        wanted: choice.map(ToString::to_string).unwrap_or_default(),
        available: monitors
            .iter()
            .map(|m| format!("#{} \"{}\"", m.index, m.name))
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// How long a question to the display server (list, open, check a monitor) may take before the
/// caller hears it does not answer: a hung X server must not hang Stop, a settings change or the
/// presenter's window with it.
pub const DISPLAY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Runs `work`, which talks to the display server, on a blocking thread, giving up after
/// [`DISPLAY_TIMEOUT`] (the thread is left to finish or hang on its own).
pub async fn ask_display<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, CaptureError> + Send + 'static,
) -> Result<T, crate::Error> {
    ask_display_within(DISPLAY_TIMEOUT, work).await
}

/// [`ask_display`] with a deadline of its own (the desktop's dialog waits for a person).
pub async fn ask_display_within<T: Send + 'static>(
    timeout: std::time::Duration,
    work: impl FnOnce() -> Result<T, CaptureError> + Send + 'static,
) -> Result<T, crate::Error> {
    match tokio::time::timeout(timeout, tokio::task::spawn_blocking(work)).await {
        Ok(Ok(result)) => result.map_err(crate::Error::from),
        Ok(Err(error)) => Err(crate::Error::Internal(error.to_string())),
        Err(_) => Err(crate::Error::DisplayNotAnswering),
    }
}

/// A thumbnail could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThumbnailError {
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error(transparent)]
    Encode(#[from] crate::encode::EncodeError),
}

/// Why a monitor could not be listed, opened or captured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaptureError {
    #[error("no display to capture: {0}")]
    NoDisplay(String),
    #[error("no monitor {wanted}; the monitors are: {available} (see `screenshare list`)")]
    UnknownMonitor { wanted: String, available: String },
    #[error("the display reports no monitors")]
    NoMonitors,
    #[error("no window {wanted}; the windows are: {available} (see `screenshare list --windows`)")]
    UnknownWindow { wanted: String, available: String },
    /// The shared window went away or out of sight: viewers keep its last picture.
    #[error("the shared window {0}")]
    WindowGone(WindowGone),
    /// On Wayland the desktop's dialog picks; a choice made here (named in the message) cannot.
    #[error(
        "on Wayland your desktop's own dialog picks the screen or window to share, so {0} does not apply here"
    )]
    PickedOnDesktop(String),
    /// The presenter ended the screen cast from the desktop (its sharing indicator): it stays
    /// ended until they pick again.
    #[error(
        "sharing was stopped from the desktop; choose again in the window, or start again with --pick-again"
    )]
    StoppedOnDesktop,
    /// The desktop's dialog ended with nothing picked (closed, or nobody answered): it is not
    /// shown again until the presenter asks for it.
    #[error("{0}; choose again in the window, or start again with --pick-again")]
    NotPicked(String),
    #[error("screen capture failed: {reason}{}", platform_hint())]
    Failed { reason: String },
}

/// Why a shared window cannot be captured now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowGone {
    Closed,
    Minimised,
    /// On a virtual desktop other than the one shown: the window manager unmapped it.
    OtherDesktop,
}

impl std::fmt::Display for WindowGone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WindowGone::Closed => "was closed",
            WindowGone::Minimised => "is minimised",
            WindowGone::OtherDesktop => "is on another desktop",
        })
    }
}

#[cfg(target_os = "linux")]
fn wayland_session() -> bool {
    wayland::is_wayland_session()
}

#[cfg(not(target_os = "linux"))]
fn wayland_session() -> bool {
    false
}

/// What to do about a failed capture on this platform, for the error message.
fn platform_hint() -> &'static str {
    if cfg!(target_os = "macos") {
        " (on macOS, allow screenshare under System Settings > Privacy & Security > Screen Recording, then restart it)"
    } else if cfg!(target_os = "linux") && wayland_session() {
        " (on Wayland, capture goes through the desktop portal: accept its prompt, and check that xdg-desktop-portal and PipeWire are running)"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn monitor(index: usize, name: &str, is_primary: bool) -> MonitorInfo {
        MonitorInfo {
            index,
            id: 100 + index as u32,
            name: name.to_owned(),
            width: 640,
            height: 480,
            x: 0,
            y: 0,
            scale_factor: 1.0,
            is_primary,
        }
    }

    #[test]
    fn resolve_prefers_primary_by_default() {
        let monitors = [monitor(0, "left", false), monitor(1, "main", true)];
        let chosen = resolve(&monitors, None).expect("a monitor");
        assert_eq!(chosen.name, "main");
    }

    #[test]
    fn resolve_falls_back_to_first_without_primary() {
        let monitors = [monitor(0, "left", false), monitor(1, "right", false)];
        assert_eq!(resolve(&monitors, None).expect("a monitor").index, 0);
    }

    #[test]
    fn resolve_by_index_and_name() {
        let monitors = [monitor(0, "DP-1", true), monitor(1, "HDMI-1", false)];
        let by_index = resolve(&monitors, Some(&MonitorChoice::Index(1))).expect("index 1");
        assert_eq!(by_index.name, "HDMI-1");
        let by_name = resolve(&monitors, Some(&MonitorChoice::Name("hdmi-1".into())))
            .expect("name, any case");
        assert_eq!(by_name.index, 1);
    }

    #[test]
    fn unknown_monitor_lists_the_real_ones() {
        let monitors = [monitor(0, "DP-1", true)];
        let error = resolve(&monitors, Some(&MonitorChoice::Index(3))).expect_err("no #3");
        let message = error.to_string();
        assert!(message.contains("#3"), "{message}");
        assert!(message.contains("DP-1"), "{message}");
    }

    #[test]
    fn thumbnail_is_a_small_picture_of_the_chosen_monitor() {
        let screens = synthetic::SyntheticScreens::new(&[(640, 480), (800, 600)]);
        screens.paint(1, [0, 128, 255]);
        let jpeg = screens
            .thumbnail(Some(&MonitorChoice::Index(1)), 200)
            .expect("thumbnail");
        let image = image::load_from_memory(&jpeg).expect("JPEG").to_rgb8();
        assert_eq!(image.dimensions(), (200, 150));
        let [r, g, b] = image.get_pixel(100, 75).0;
        assert!(r < 20 && (118..=138).contains(&g) && b > 235, "{r},{g},{b}");
    }

    #[test]
    fn a_window_title_must_name_one_window() {
        let window = |id, title: &str| WindowInfo {
            id,
            title: title.to_owned(),
            app: "XTerm".to_owned(),
            width: 10,
            height: 10,
            x: 0,
            y: 0,
            pid: None,
        };
        let windows = [
            window(1, "xterm"),
            window(2, "xterm"),
            window(3, "Slides - deck"),
        ];
        let title = |text: &str| WindowChoice::Title(text.to_owned());
        assert!(
            resolve_window(&windows, &title("xterm")).is_err(),
            "two called xterm"
        );
        assert_eq!(
            resolve_window(&windows, &title("slides")).map(|w| w.id),
            Ok(3)
        );
        assert_eq!(
            resolve_window(&windows, &WindowChoice::Id(2)).map(|w| w.id),
            Ok(2)
        );
        let error = resolve_window(&windows, &title("mail")).expect_err("none");
        assert!(
            error.to_string().contains("0x3 \"Slides - deck\""),
            "{error}"
        );
    }

    #[test]
    fn a_window_that_took_a_closed_ones_id_is_another_window() {
        let slides = WindowInfo {
            id: 0x1c0_000e,
            title: "Slides".to_owned(),
            app: "Impress".to_owned(),
            width: 800,
            height: 600,
            x: 0,
            y: 0,
            pid: Some(4242),
        };
        let renamed_and_moved = WindowInfo {
            title: "Slides - page 2".to_owned(),
            x: 100,
            width: 900,
            ..slides.clone()
        };
        assert!(slides.is_same_window(&renamed_and_moved));
        let same_id_new_process = WindowInfo {
            pid: Some(5151),
            ..slides.clone()
        };
        assert!(!slides.is_same_window(&same_id_new_process));
        let same_id_other_app = WindowInfo {
            app: "XTerm".to_owned(),
            pid: None,
            ..slides.clone()
        };
        assert!(!slides.is_same_window(&same_id_other_app));
    }

    #[test]
    fn no_monitors_is_its_own_error() {
        assert_eq!(resolve(&[], None), Err(CaptureError::NoMonitors));
    }
}
