//! The live state both paths meet in: settings flowing to the capture thread, frames and capture
//! status flowing from it, and who is watching.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::admission::{Admission, Rules};
use crate::capture::{MonitorInfo, Screens, WindowGone};
use crate::demand::Demand;
use crate::encode::Format;
use crate::frame::{EncodeCounters, EncodeCounts, Frame};
use crate::settings::{Settings, SettingsPatch};
use crate::viewers::{ViewerInfo, Viewers};

/// How long a request for a frame with none captured yet (or capture idle) waits for a grab.
const FIRST_FRAME_WAIT: Duration = Duration::from_secs(3);

/// What the capture loop is doing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Not yet grabbed anything.
    #[default]
    Starting,
    /// Grabbing at the set frame rate.
    Live,
    /// Nobody watching: no grabs until someone asks.
    Idle,
    /// The presenter paused: viewers keep the last frame.
    Paused,
    /// The monitor cannot be captured; retrying.
    SourceLost,
}

/// The capture thread's report, updated after every grab.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CaptureStatus {
    pub phase: Phase,
    pub monitor: Option<MonitorInfo>,
    /// How pixels are read: `x11-shm`, `x11-getimage` (no MIT-SHM), `xcap`.
    pub method: Option<String>,
    /// The last capture error while the source is lost, in words for the presenter.
    pub error: Option<String>,
    /// Attempts at the source that failed in a row (0 while it works); retries back off.
    pub failed_attempts: u32,
    /// While a shared window cannot be read: closed, minimised or on another desktop.
    pub window_gone: Option<WindowGone>,
    /// Grabs so far, whether or not the pixels changed.
    pub grabs: u64,
    /// Grabs per second over the last few seconds.
    pub achieved_fps: f64,
    /// Time one grab takes, smoothed, in milliseconds.
    pub grab_ms: f64,
    /// Motion goes out as video now (to the pages that play it).
    pub video: bool,
    /// Why motion cannot go out as video, while it cannot: the share stays on tiles.
    pub video_error: Option<String>,
    /// The size the video is encoded at, while in video.
    pub video_size: Option<(u32, u32)>,
}

/// Everything a viewer's page or the presenter wants to show about the share.
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    pub state: Phase,
    pub paused: bool,
    pub source_lost: bool,
    pub error: Option<String>,
    /// Attempts at the source that failed in a row while it is lost; retries back off.
    pub failed_attempts: u32,
    /// The shared window, when a window is shared.
    pub window: Option<crate::settings::WindowChoice>,
    /// While the shared window cannot be read: closed, minimised or on another desktop.
    pub window_gone: Option<WindowGone>,
    pub monitor: Option<MonitorInfo>,
    /// How pixels are read: `x11-shm`, `x11-getimage` (the X server offers no MIT-SHM), `xcap`.
    pub capture: Option<String>,
    /// Size of the frames served (after any downscale).
    pub width: u32,
    pub height: u32,
    /// Number of the latest frame.
    pub frame: u64,
    pub fps: u32,
    pub quality: u32,
    pub max_width: Option<u32>,
    pub show_pointer: bool,
    pub viewers: usize,
    /// Frame bytes served so far to all viewers.
    pub bytes_served: u64,
    /// Grabs so far, changed or not: what the frame rate is measured on.
    pub grabs: u64,
    pub achieved_fps: f64,
    pub grab_ms: f64,
    pub encodes: EncodeCounts,
    /// Wrong PINs tried so far.
    pub wrong_pins: u64,
    /// Wrong PINs came from many addresses faster than the share allows, within the last minute.
    pub pin_under_attack: bool,
    /// Bytes of the newest frame encoded in each format (what a viewer of it receives).
    pub png_bytes: Option<usize>,
    pub jpeg_bytes: Option<usize>,
    /// When motion goes out as video: `auto`, `tiles` or `video`.
    pub motion: crate::settings::Motion,
    /// What pages that play video are shown now: `tiles` or `video`.
    pub showing: &'static str,
    /// Why motion cannot go out as video, while it cannot (the share stays on tiles).
    pub video_error: Option<String>,
    /// The size the video is encoded at, while in video: smaller than the screen when the
    /// presenter's CPU cannot encode the full size within its budget.
    pub video_size: Option<[u32; 2]>,
    /// Sound: on, live, its level, and why not when it is on but not live.
    pub audio: crate::audio::track::AudioStatus,
}

/// What a viewer's page needs to know, and nothing more: monitor names, capture errors and
/// figures stay behind the control secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ViewerStatus {
    pub state: Phase,
    pub paused: bool,
    pub source_lost: bool,
    /// When the shared window is why the source is lost: `closed`, `minimised` or `other_desktop`.
    pub window_gone: Option<WindowGone>,
    /// The share's frame rate, which caps the page's own.
    pub fps: u32,
    /// The presenter's sound is on and being sent: a page offers its Sound button.
    pub audio: bool,
    /// The page may keep what it was shown, to look back at, and save snapshots.
    pub history: bool,
}

impl ViewerStatus {
    fn of(settings: &Settings, capture: &CaptureStatus, audio_live: bool) -> Self {
        ViewerStatus {
            state: capture.phase,
            paused: settings.paused,
            source_lost: capture.phase == Phase::SourceLost,
            window_gone: capture.window_gone,
            fps: settings.fps,
            audio: settings.audio && audio_live,
            history: settings.history,
        }
    }
}

/// What viewers are told now, shared by every open stream: the first to send it frames the
/// status record, the others send the same bytes.
#[derive(Debug)]
pub(crate) struct Told {
    pub(crate) status: ViewerStatus,
    pub(crate) record: std::sync::OnceLock<bytes::Bytes>,
}

impl Told {
    fn new(status: ViewerStatus) -> Arc<Self> {
        Arc::new(Told {
            status,
            record: std::sync::OnceLock::new(),
        })
    }
}

/// The share's shared state. Handlers and the `Share` handle hold it in an `Arc`.
pub struct ShareState {
    pub(crate) settings: watch::Sender<Settings>,
    /// What viewers are told, changed only when it changes (pushed on each viewer's stream).
    pub(crate) told_viewers: watch::Sender<Arc<Told>>,
    pub(crate) frames: watch::Sender<Option<Arc<Frame>>>,
    pub(crate) capture: watch::Sender<CaptureStatus>,
    pub(crate) demand: Arc<Demand>,
    pub(crate) counters: Arc<EncodeCounters>,
    pub(crate) viewers: Arc<Viewers>,
    pub(crate) admission: Arc<Admission>,
    pub(crate) screens: Arc<dyn Screens>,
    pub(crate) cancel: CancellationToken,
    /// The share's clock: the video's runs and the sound are stamped with their time since.
    pub(crate) epoch: std::time::Instant,
    /// The share's sound.
    pub(crate) audio: Arc<crate::audio::track::AudioTrack>,
    /// How long a viewer waits for a frame after the one it has ([`crate::server::Limits`]).
    long_poll: Duration,
    /// One settings change at a time, so concurrent changes (control URL, desktop) never drop one.
    updating: tokio::sync::Mutex<()>,
    /// Counts the presenter's picks: of a window, the same one again included (a pick is consent
    /// to share what the id names now, even where an earlier window of that id was closed), and
    /// on Wayland of "choose again" in the desktop's dialog. Each opens the source afresh.
    pub(crate) picks: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for ShareState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShareState")
            .field("settings", &*self.settings.borrow())
            .field("capture", &*self.capture.borrow())
            .finish_non_exhaustive()
    }
}

impl ShareState {
    pub(crate) fn new(settings: Settings, screens: Arc<dyn Screens>, long_poll: Duration) -> Self {
        let epoch = std::time::Instant::now();
        let told_viewers = watch::Sender::new(Told::new(ViewerStatus::of(
            &settings,
            &CaptureStatus::default(),
            false,
        )));
        Self {
            settings: watch::Sender::new(settings),
            told_viewers,
            frames: watch::Sender::new(None),
            capture: watch::Sender::new(CaptureStatus::default()),
            demand: Arc::new(Demand::default()),
            counters: Arc::new(EncodeCounters::default()),
            viewers: Arc::new(Viewers::default()),
            admission: Arc::new(Admission::default()),
            screens,
            cancel: CancellationToken::new(),
            epoch,
            audio: Arc::new(crate::audio::track::AudioTrack::new(epoch)),
            long_poll,
            updating: tokio::sync::Mutex::new(()),
            picks: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub fn settings(&self) -> Settings {
        self.settings.borrow().clone()
    }

    /// Validates and applies a change; the capture loop picks it up within one frame interval.
    pub async fn update_settings(&self, patch: &SettingsPatch) -> Result<Settings, Error> {
        let _one_at_a_time = self.updating.lock().await;
        let mut next = self.settings().patched(patch)?;
        if patch.changes_monitor() {
            // Refuse an unknown monitor here, where the presenter sees the error, rather than
            // letting the capture loop fail on it.
            let screens = self.screens.clone();
            let choice = next.monitor.clone();
            crate::capture::ask_display(move || screens.find(choice.as_ref())).await?;
        }
        if let Some(window) = patch.new_window() {
            let (screens, window) = (self.screens.clone(), window.clone());
            let found = crate::capture::ask_display(move || screens.find_window(&window)).await?;
            // The window found now, by id: a title matched again later could name another.
            next.window = Some(crate::settings::WindowChoice::Id(found.id));
            self.picks.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        let before = self.settings.send_replace(next.clone());
        if before.window != next.window || before.monitor != next.monitor {
            // What the last target's window did no longer describes the new target.
            self.capture.send_modify(|status| status.window_gone = None);
        }
        let tighter = (next.pin.is_some() && next.pin != before.pin)
            || (next.require_approval && !before.require_approval);
        if tighter {
            self.admission.tighten(&self.viewers.page_ids());
        }
        if before.require_approval && !next.require_approval {
            // Those waiting got their pass under the rules left (the PIN, if any): they're in.
            self.admission.admit_everyone_waiting();
        }
        self.demand.ring();
        Ok(next)
    }

    /// Where the desktop's dialog picks (Wayland): forgets its remembered pick and opens the
    /// source again, so the dialog asks now while viewers keep the last picture.
    pub fn pick_again(&self) {
        self.screens.pick_again();
        self.picks.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.demand.ring();
    }

    /// The rules for getting in, as the settings say now.
    pub(crate) fn rules(&self) -> Rules {
        let settings = self.settings.borrow();
        Rules {
            pin: settings.pin.clone(),
            require_approval: settings.require_approval,
        }
    }

    /// Who is watching, then who waits to be let in.
    pub fn viewer_list(&self) -> Vec<ViewerInfo> {
        let mut list = self.viewers.list();
        for viewer in &mut list {
            if let Some(browser) = viewer
                .id
                .strip_prefix("id:")
                .and_then(|handle| self.admission.browser_of(handle))
            {
                viewer.browser = browser;
            }
        }
        list.extend(self.admission.waiting().into_iter().map(|pass| ViewerInfo {
            id: format!("id:{}", pass.id),
            address: pass.address,
            browser: pass.browser,
            access: pass.access,
            since_unix_ms: pass.since_unix_ms,
            frames: 0,
            bytes: 0,
        }));
        list
    }

    /// Lets the waiting viewer `id` in. Whether there was one.
    pub fn admit(&self, id: &str) -> bool {
        id.strip_prefix("id:")
            .is_some_and(|handle| self.admission.admit(handle))
    }

    /// Removes viewer `id` (and everyone at its address) until the share ends. Whether there
    /// was one.
    pub fn remove(&self, id: &str) -> bool {
        let address = self.viewers.address_of(id).or_else(|| {
            id.strip_prefix("ip:")
                .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
        });
        let handle = id.strip_prefix("id:");
        let removed = self.admission.remove(handle, address);
        if removed {
            self.viewers.forget_address(address);
        }
        removed
    }

    /// The newest frame, if any was captured.
    pub fn latest_frame(&self) -> Option<Arc<Frame>> {
        self.frames.borrow().clone()
    }

    /// A frame for a viewer: with `after`, the first frame other than number `after` (`None` when
    /// none comes within the long poll); without, the current frame, grabbing one first if capture
    /// was idle.
    pub async fn frame_for_viewer(&self, after: Option<u64>) -> Option<Arc<Frame>> {
        let _watching = self.demand.watch();
        if let Some(after) = after {
            return self.frame_other_than(after).await;
        }
        let mut frames = self.frames.subscribe();
        let mut capture = self.capture.subscribe();
        let (entry_phase, entry_grabs) = {
            let status = capture.borrow_and_update();
            (status.phase, status.grabs)
        };
        let deadline = Instant::now() + FIRST_FRAME_WAIT;
        loop {
            let latest = frames.borrow_and_update().clone();
            let (grabbed_since, now_phase) = {
                let status = capture.borrow_and_update();
                (status.grabs > entry_grabs, status.phase)
            };
            // Live, paused or lost: the latest frame is what there is to see.
            let ready = grabbed_since
                || matches!(entry_phase, Phase::Live | Phase::Paused | Phase::SourceLost)
                || matches!(now_phase, Phase::Paused | Phase::SourceLost);
            if latest.is_some() && ready {
                return latest;
            }
            tokio::select! {
                changed = frames.changed() => if changed.is_err() { return None },
                changed = capture.changed() => if changed.is_err() { return None },
                () = tokio::time::sleep_until(deadline) => return latest,
                () = self.cancel.cancelled() => return None,
            }
        }
    }

    /// The first frame numbered other than `after` (newer, or a restarted share counting from 1
    /// again), or `None` when none comes within the long poll. Only a new frame wakes the wait:
    /// a grab that found nothing changed costs a waiting viewer nothing.
    async fn frame_other_than(&self, after: u64) -> Option<Arc<Frame>> {
        let mut frames = self.frames.subscribe();
        let deadline = Instant::now() + self.long_poll;
        loop {
            let latest = frames.borrow_and_update().clone();
            if latest.as_ref().is_some_and(|frame| frame.seq() != after) {
                return latest;
            }
            tokio::select! {
                changed = frames.changed() => if changed.is_err() { return None },
                () = tokio::time::sleep_until(deadline) => return None,
                () = self.cancel.cancelled() => return None,
            }
        }
    }

    pub fn viewer_status(&self) -> ViewerStatus {
        let audio_live = self.audio.live();
        ViewerStatus::of(&self.settings.borrow(), &self.capture.borrow(), audio_live)
    }

    /// Tells viewers' streams when what they are told changed.
    fn refresh_viewer_status(&self) {
        let now = self.viewer_status();
        self.told_viewers.send_if_modified(|told| {
            let changed = told.status != now;
            if changed {
                *told = Told::new(now);
            }
            changed
        });
    }

    /// Keeps [`ShareState::told_viewers`] current for the share's life: one task for every
    /// viewer (the capture's status changes at every grab; streams wake only when what they
    /// show changes).
    pub(crate) async fn keep_viewers_told(self: Arc<Self>) {
        let mut settings = self.settings.subscribe();
        let mut capture = self.capture.subscribe();
        let mut audio = self.audio.watch_live();
        loop {
            self.refresh_viewer_status();
            tokio::select! {
                changed = settings.changed() => if changed.is_err() { return },
                changed = capture.changed() => if changed.is_err() { return },
                changed = audio.changed() => if changed.is_err() { return },
                () = self.cancel.cancelled() => return,
            }
        }
    }

    pub fn status(&self) -> Status {
        let settings = self.settings();
        let capture = self.capture.borrow().clone();
        let frame = self.latest_frame();
        Status {
            state: capture.phase,
            paused: settings.paused,
            source_lost: capture.phase == Phase::SourceLost,
            error: capture.error.clone(),
            failed_attempts: capture.failed_attempts,
            window: settings.window.clone(),
            window_gone: capture.window_gone,
            monitor: capture.monitor.clone(),
            capture: capture.method.clone(),
            width: frame.as_ref().map_or(0, |frame| frame.width()),
            height: frame.as_ref().map_or(0, |frame| frame.height()),
            frame: frame.as_ref().map_or(0, |frame| frame.seq()),
            fps: settings.fps,
            quality: settings.quality,
            max_width: settings.max_width,
            show_pointer: settings.show_pointer,
            viewers: self.viewers.count(),
            bytes_served: self.viewers.bytes_served(),
            grabs: capture.grabs,
            achieved_fps: capture.achieved_fps,
            grab_ms: capture.grab_ms,
            encodes: self.counters.snapshot(),
            wrong_pins: self.admission.wrong_pins(),
            pin_under_attack: self.admission.pin_under_attack(),
            png_bytes: self.counters.last_size(Format::Png),
            jpeg_bytes: self.counters.last_size(Format::Jpeg),
            motion: settings.motion,
            showing: if capture.video { "video" } else { "tiles" },
            video_error: capture.video_error.clone(),
            video_size: capture.video_size.map(|(width, height)| [width, height]),
            audio: self.audio.status(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::synthetic::SyntheticScreens;

    fn share() -> ShareState {
        ShareState::new(
            Settings::default(),
            Arc::new(SyntheticScreens::new(&[(64, 48)])),
            Duration::from_secs(1),
        )
    }

    #[test]
    fn streams_are_woken_only_when_what_viewers_are_told_changes() {
        let state = share();
        let mut told = state.told_viewers.subscribe();
        let before = told.borrow_and_update().clone();

        // Every grab changes the capture's status; viewers are told none of it.
        state.capture.send_modify(|capture| {
            capture.grabs += 1;
            capture.grab_ms = 4.2;
        });
        state.refresh_viewer_status();
        assert!(!told.has_changed().unwrap_or(true), "a grab is not news");
        assert!(Arc::ptr_eq(&before, &told.borrow()), "nor framed again");

        // A pause is.
        state
            .settings
            .send_modify(|settings| settings.paused = true);
        state.refresh_viewer_status();
        assert!(told.has_changed().unwrap_or(false), "a pause is news");
        let now = told.borrow_and_update().clone();
        assert!(now.status.paused);
        assert_eq!(now.status, state.viewer_status(), "what `status` answers");
        assert!(
            now.record.get().is_none(),
            "framed by the first stream to send it"
        );
    }
}
