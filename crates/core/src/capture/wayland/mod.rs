//! Wayland desktops (GNOME, KDE Plasma, wlroots): the xdg-desktop-portal ScreenCast interface
//! and a PipeWire stream, as OBS, Chromium and gnome-remote-desktop capture them.
//!
//! The desktop's own dialog picks the monitor or window (Wayland lets no application look at
//! the screen on its own); its restore token ([`token`]) brings the same choice back at the next
//! share without asking again. Each opened source is one portal session ([`portal`]) and one
//! PipeWire stream ([`stream`]) filling a [`mailbox`] that grabs read at their own pace; what
//! a buffer holds becomes our pixels, damage and pointer in [`buffer`].

mod buffer;
mod mailbox;
mod portal;
mod stream;
pub mod token;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{CaptureError, Grab, MonitorInfo, Screens, Source, ThumbnailError, WindowInfo};
use crate::pixels::Picture;
use crate::settings::{MonitorChoice, WindowChoice};
use mailbox::{Mailbox, TakeError};
use portal::Picked;
use token::TokenStore;

/// How long the desktop's dialog may wait for the presenter to pick.
pub const PICK_TIMEOUT: Duration = Duration::from_secs(120);
/// How long after its stream ends the desktop may take to say it ended the session.
const CLOSED_GRACE: Duration = Duration::from_millis(500);
/// How long a new stream may take to deliver its first picture.
const FIRST_FRAME: Duration = Duration::from_secs(3);

/// Whether this is a Wayland session (`WAYLAND_DISPLAY` set): capture goes through the portal
/// then, never through XWayland, which sees only X clients.
pub fn is_wayland_session() -> bool {
    std::env::var_os("WAYLAND_DISPLAY").is_some_and(|value| !value.is_empty())
}

/// The screens of a Wayland desktop: whatever its dialog picks.
#[derive(Debug)]
pub struct WaylandScreens {
    tokens: TokenStore,
    /// Why nothing opens again, not even silently with the saved token, until the presenter
    /// picks again: they stopped sharing from the desktop (its top-bar indicator), or closed
    /// its dialog without picking.
    held: Arc<Mutex<Option<CaptureError>>>,
    /// Bumped when shares stop: a dialog still waiting for a pick is closed.
    stops: Arc<AtomicU64>,
    /// The size of the last picture cast, for the list.
    last_size: Arc<Mutex<Option<(u32, u32)>>>,
}

impl WaylandScreens {
    /// With the restore token in the user's state folder.
    pub fn for_user() -> Self {
        Self::with_tokens(TokenStore::for_user())
    }

    pub fn with_tokens(tokens: TokenStore) -> Self {
        Self {
            tokens,
            held: Arc::new(Mutex::new(None)),
            stops: Arc::new(AtomicU64::new(0)),
            last_size: Arc::new(Mutex::new(None)),
        }
    }

    /// The one entry of the list: what the desktop picks.
    fn picked_entry(&self, kind: Option<Picked>) -> MonitorInfo {
        let (width, height) = self
            .last_size
            .lock()
            .map(|size| size.unwrap_or((0, 0)))
            .unwrap_or((0, 0));
        MonitorInfo {
            index: 0,
            id: 0,
            name: match kind {
                Some(Picked::Window) => "a window picked on the desktop",
                Some(Picked::Monitor) => "a screen picked on the desktop",
                _ => "picked on the desktop",
            }
            .to_owned(),
            width,
            height,
            x: 0,
            y: 0,
            scale_factor: 1.0,
            is_primary: true,
        }
    }
}

impl Screens for WaylandScreens {
    fn list(&self) -> Result<Vec<MonitorInfo>, CaptureError> {
        Ok(vec![self.picked_entry(None)])
    }

    fn open(&self, choice: Option<&MonitorChoice>) -> Result<Box<dyn Source>, CaptureError> {
        match choice {
            None | Some(MonitorChoice::Index(0)) => {}
            Some(other) => {
                return Err(CaptureError::PickedOnDesktop(format!(
                    "the choice of monitor {other}"
                )));
            }
        }
        if let Some(held) = self.held.lock().ok().and_then(|held| held.clone()) {
            return Err(held);
        }
        let stops = self.stops.load(Ordering::SeqCst);
        let (session, started) = portal::start(&self.tokens, PICK_TIMEOUT, || {
            self.stops.load(Ordering::SeqCst) != stops
        })
        .inspect_err(|error| {
            if matches!(error, CaptureError::NotPicked(_)) {
                hold(&self.held, error.clone());
            }
        })?;
        let mailbox = Mailbox::new();
        let stream = stream::start(started.fd, started.node, mailbox.clone())?;
        let mut info = self.picked_entry(Some(started.kind));
        if let Some((width, height)) = started.size {
            info.width = width;
            info.height = height;
        }
        tracing::info!(
            node = started.node,
            kind = ?started.kind,
            pointer_as_data = started.pointer_as_data,
            "screen cast started"
        );
        Ok(Box::new(WaylandSource {
            info,
            mailbox,
            session,
            _stream: stream,
            picture: Picture::new(0, 0),
            pointer_as_data: started.pointer_as_data,
            held: self.held.clone(),
            last_size: self.last_size.clone(),
        }))
    }

    fn open_window(&self, choice: &WindowChoice) -> Result<Box<dyn Source>, CaptureError> {
        Err(CaptureError::PickedOnDesktop(format!(
            "the choice of window {choice}"
        )))
    }

    fn open_timeout(&self) -> Duration {
        PICK_TIMEOUT + Duration::from_secs(5)
    }

    fn picked_on_desktop(&self) -> bool {
        true
    }

    fn pick_again(&self) {
        self.tokens.forget();
        if let Ok(mut held) = self.held.lock() {
            *held = None;
        }
    }

    fn stop_asking(&self) {
        self.stops.fetch_add(1, Ordering::SeqCst);
    }

    fn new_share(&self) {
        if let Ok(mut held) = self.held.lock() {
            *held = None;
        }
    }

    fn thumbnail(
        &self,
        _choice: Option<&MonitorChoice>,
        _width: u32,
    ) -> Result<Vec<u8>, ThumbnailError> {
        // Opening a cast for a picture would show the desktop's dialog before Share is pressed.
        Err(CaptureError::PickedOnDesktop("a preview before sharing".to_owned()).into())
    }

    fn window_thumbnail(
        &self,
        choice: &WindowChoice,
        _width: u32,
    ) -> Result<Vec<u8>, ThumbnailError> {
        Err(CaptureError::PickedOnDesktop(format!("the choice of window {choice}")).into())
    }

    fn windows(&self) -> Result<Vec<WindowInfo>, CaptureError> {
        Ok(Vec::new())
    }
}

/// One screen cast: its portal session, its stream, and the picture grabs bring up to date.
struct WaylandSource {
    info: MonitorInfo,
    mailbox: Arc<Mailbox>,
    session: portal::Session,
    /// Kept for as long as the source: dropping it stops the stream.
    _stream: stream::Stream,
    picture: Picture,
    pointer_as_data: bool,
    held: Arc<Mutex<Option<CaptureError>>>,
    last_size: Arc<Mutex<Option<(u32, u32)>>>,
}

impl Source for WaylandSource {
    fn info(&self) -> &MonitorInfo {
        &self.info
    }

    fn grab(&mut self) -> Result<Grab<'_>, CaptureError> {
        if self.session.closed_by_desktop() {
            hold(&self.held, CaptureError::StoppedOnDesktop);
            return Err(CaptureError::StoppedOnDesktop);
        }
        let taken =
            self.mailbox
                .take(&mut self.picture, FIRST_FRAME)
                .map_err(|error| match error {
                    // The stream ends a moment before the session's Closed signal arrives.
                    TakeError::Ended(_) if self.session.closed_by_desktop_within(CLOSED_GRACE) => {
                        hold(&self.held, CaptureError::StoppedOnDesktop);
                        CaptureError::StoppedOnDesktop
                    }
                    error => CaptureError::Failed {
                        reason: error.to_string(),
                    },
                })?;
        let size = (self.picture.width(), self.picture.height());
        if (self.info.width, self.info.height) != size {
            (self.info.width, self.info.height) = size;
            if let Ok(mut last) = self.last_size.lock() {
                *last = Some(size);
            }
        }
        Ok(Grab {
            picture: &self.picture,
            damage: taken.damage,
            pointer: if self.pointer_as_data {
                taken.pointer
            } else {
                None
            },
        })
    }

    fn method(&self) -> &'static str {
        if self.pointer_as_data {
            "wayland-portal-pipewire"
        } else {
            "wayland-portal-pipewire-embedded-pointer"
        }
    }
}

/// Nothing opens again, for `why`, until the presenter picks again.
fn hold(held: &Mutex<Option<CaptureError>>, why: CaptureError) {
    if let Ok(mut held) = held.lock() {
        *held = Some(why);
    }
}

fn failed(reason: String) -> CaptureError {
    CaptureError::Failed { reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn screens() -> WaylandScreens {
        let dir =
            std::env::temp_dir().join(format!("screenshare-wayland-test-{}", std::process::id()));
        WaylandScreens::with_tokens(TokenStore::at(dir.join("token")))
    }

    #[test]
    fn choices_the_desktop_makes_are_refused_in_words() {
        let screens = screens();
        let error = screens
            .open(Some(&MonitorChoice::Index(1)))
            .err()
            .expect("refused");
        assert!(error.to_string().contains("monitor #1"), "{error}");
        assert!(error.to_string().contains("dialog"), "{error}");
        let error = screens
            .open_window(&WindowChoice::Title("Slides".to_owned()))
            .err()
            .expect("refused");
        assert!(error.to_string().contains("window"), "{error}");
        assert!(screens.thumbnail(None, 100).is_err());
    }

    #[test]
    fn the_list_is_the_desktops_pick() {
        let list = screens().list().expect("a list");
        assert_eq!(list.len(), 1);
        assert!(list[0].is_primary);
        assert!(list[0].name.contains("desktop"), "{}", list[0].name);
    }

    #[test]
    fn after_a_stop_on_the_desktop_nothing_opens_until_picked_again() {
        let screens = screens();
        hold(&screens.held, CaptureError::StoppedOnDesktop);
        assert_eq!(
            screens.open(None).err(),
            Some(CaptureError::StoppedOnDesktop)
        );
        screens.pick_again();
        assert!(screens.held.lock().is_ok_and(|held| held.is_none()));
        // A dialog closed without a pick holds the share back; a new share asks again.
        hold(
            &screens.held,
            CaptureError::NotPicked("the dialog was closed".to_owned()),
        );
        assert!(matches!(
            screens.open(None).err(),
            Some(CaptureError::NotPicked(_))
        ));
        screens.new_share();
        assert!(screens.held.lock().is_ok_and(|held| held.is_none()));
    }
}
