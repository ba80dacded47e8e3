//! The capture thread: the only place that grabs, scales and publishes frames.
//!
//! It reads the settings each tick, grabs on the [`Pacer`]'s deadlines while someone watches,
//! publishes a frame only when the pixels (or the settings that shape them) changed, and when the
//! monitor fails it keeps the last frame up, reports the loss, and retries with a [`Backoff`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use fast_image_resize::Resizer;

use super::{Backoff, Damage, Pacer, Source, WindowGone, WindowInfo};
use crate::encode::scale_picture;
use crate::frame::Delivery;
use crate::frame::publish::{Capture, Publisher};
use crate::pixels::Picture;
use crate::settings::{MonitorChoice, Settings, WindowChoice};
use crate::state::{Phase, ShareState};

/// How often an idle or paused loop looks at the settings even when nobody rings.
const IDLE_CHECK: Duration = Duration::from_millis(500);
/// Achieved frame rate is measured over this window.
const RATE_WINDOW: Duration = Duration::from_secs(2);

pub(crate) struct CaptureContext {
    pub state: Arc<ShareState>,
}

pub(crate) fn spawn_capture_thread(
    context: CaptureContext,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("screenshare-capture".to_owned())
        .spawn(move || CaptureLoop::new(context.state).run())
}

/// What a source was opened for: a window, or else a monitor.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Target {
    monitor: Option<MonitorChoice>,
    window: Option<WindowChoice>,
    /// A window picked again (the same id), or a new pick in the desktop's dialog, is a new
    /// target: opened at once, checked afresh.
    pick: u64,
}

impl Target {
    fn of(settings: &Settings, state: &ShareState) -> Self {
        Self {
            monitor: settings.monitor.clone(),
            window: settings.window.clone(),
            pick: state.picks.load(Ordering::SeqCst),
        }
    }
}

/// The last downscaled picture, kept while the screen is still.
struct Scaled {
    picture: Picture,
    max_width: u32,
}

struct CaptureLoop {
    state: Arc<ShareState>,
    source: Option<(Target, Box<dyn Source>)>,
    pacer: Pacer,
    backoff: Backoff,
    resizer: Resizer,
    publisher: Publisher,
    scaled: Option<Scaled>,
    recent_grabs: VecDeque<Instant>,
    last_interval: Duration,
    /// While the source is lost: no new attempt at the monitor that failed before this.
    retry_at: Option<(Target, Instant)>,
    /// The window first opened for the presenter's latest pick: a later open of it (after a
    /// loss, or idle) must find that window, not another that took its X id.
    window_opened: Option<OpenedWindow>,
}

/// The window a pick of the presenter's opened, and whether it has closed since.
struct OpenedWindow {
    choice: WindowChoice,
    /// [`ShareState::picks`] when it was opened.
    pick: u64,
    info: WindowInfo,
    /// A closed X window never comes back, and its id soon names another's: nothing is opened
    /// for this pick again.
    closed: bool,
}

impl OpenedWindow {
    fn is_for(&self, choice: &WindowChoice, pick: u64) -> bool {
        self.choice == *choice && self.pick == pick
    }
}

impl CaptureLoop {
    fn new(state: Arc<ShareState>) -> Self {
        Self {
            state: state.clone(),
            source: None,
            pacer: Pacer::new(),
            backoff: Backoff::new(Duration::from_millis(250), Duration::from_secs(5)),
            resizer: Resizer::new(),
            publisher: Publisher::on_clock(state.counters.clone(), state.epoch),
            scaled: None,
            recent_grabs: VecDeque::new(),
            last_interval: Duration::ZERO,
            retry_at: None,
            window_opened: None,
        }
    }

    fn run(mut self) {
        tracing::debug!("capture thread started");
        while !self.state.cancel.is_cancelled() {
            let settings = self.state.settings();
            // A bug in a source or an encoder must not freeze the share on its last frame with
            // a "live" status: it counts as a lost source, reported and retried like one.
            let turn = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.step(&settings);
            }));
            if let Err(panic) = turn {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|what| (*what).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown cause".to_owned());
                tracing::error!(%what, "capture failed unexpectedly; retrying");
                self.source = None;
                self.scaled = None;
                self.lost(&format!("capture failed unexpectedly ({what})"), &settings);
            }
        }
        tracing::debug!("capture thread stopped");
    }

    /// One turn of the loop: at most one grab, or one wait.
    fn step(&mut self, settings: &Settings) {
        let demand = self.state.demand.clone();
        if settings.paused {
            if self.publisher.tiles_behind() && self.source.is_some() {
                // The last grabs of a run of video were only glimpsed: one more, compared
                // whole, leaves paused pages with the exact picture.
                self.publisher.compare_next_grab();
                self.grab(settings, settings.frame_interval());
            }
            self.set_phase(Phase::Paused);
            self.pacer.reset();
            self.settle_without_grab();
            demand.sleep(IDLE_CHECK);
            return;
        }
        if !demand.is_wanted(Instant::now()) {
            self.set_phase(Phase::Idle);
            self.pacer.reset();
            // Release the monitor while idle: it may be unplugged or reconfigured meanwhile.
            self.source = None;
            demand.sleep_idle(IDLE_CHECK);
            return;
        }
        let interval = settings.frame_interval();
        if interval != self.last_interval {
            self.pacer.retime(Instant::now(), interval);
            self.last_interval = interval;
        }
        let wait = self.pacer.wait(Instant::now());
        if !wait.is_zero() {
            // Woken early (a request, a settings change): the next turn re-reads the settings.
            demand.sleep(wait);
            return;
        }
        if self
            .source
            .as_ref()
            .is_none_or(|(opened_for, _)| *opened_for != Target::of(settings, &self.state))
        {
            self.source = None;
            match &self.retry_at {
                // Another monitor was chosen: try it at once, with a fresh backoff.
                Some((failed, _)) if *failed != Target::of(settings, &self.state) => {
                    self.retry_at = None;
                    self.backoff.reset();
                }
                Some((_, retry_at)) => {
                    let left = retry_at.saturating_duration_since(Instant::now());
                    if !left.is_zero() {
                        self.settle_without_grab();
                        demand.sleep(left.min(IDLE_CHECK));
                        return;
                    }
                }
                None => {}
            }
            if let Err(error) = self.open(settings) {
                self.lost_to(&error, settings);
                return;
            }
        }
        self.grab(settings, interval);
    }

    /// Paused or lost, nothing is grabbed; what went out lossy is still repainted exact.
    fn settle_without_grab(&mut self) {
        let deliveries = Delivery::ALL
            .map(|delivery| self.state.demand.wants_delivery(delivery, Instant::now()));
        match self
            .publisher
            .settle_without_grab(Instant::now(), deliveries)
        {
            Ok(Some(frame)) => {
                self.state.frames.send_replace(Some(Arc::new(frame)));
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "exact repaint dropped"),
        }
        self.report_video();
    }

    fn open(&mut self, settings: &Settings) -> Result<(), super::CaptureError> {
        let target = Target::of(settings, &self.state);
        let pick = target.pick;
        if let (Some(choice), Some(opened)) = (settings.window.as_ref(), &self.window_opened)
            && opened.is_for(choice, pick)
            && opened.closed
        {
            return Err(super::CaptureError::WindowGone(WindowGone::Closed));
        }
        let source = self
            .state
            .screens
            .open_target(settings.monitor.as_ref(), settings.window.as_ref())?;
        if let (Some(choice), Some(found)) = (settings.window.as_ref(), source.window()) {
            match &mut self.window_opened {
                Some(opened) if opened.is_for(choice, pick) => {
                    if !opened.info.is_same_window(found) {
                        // Closed while nobody watched (or the X server restarted), and its id
                        // now another's: that one was never chosen.
                        tracing::info!(
                            id = found.id,
                            "the shared window's id now names another window; not sharing it"
                        );
                        opened.closed = true;
                        return Err(super::CaptureError::WindowGone(WindowGone::Closed));
                    }
                }
                _ => {
                    self.window_opened = Some(OpenedWindow {
                        choice: choice.clone(),
                        pick,
                        info: found.clone(),
                        closed: false,
                    });
                }
            }
        }
        tracing::info!(
            monitor = %source.info().name,
            width = source.info().width,
            height = source.info().height,
            "capturing monitor"
        );
        let info = source.info().clone();
        let method = source.method();
        self.state.capture.send_modify(|status| {
            status.monitor = Some(info);
            status.method = Some(method.to_owned());
        });
        // A new source's first grab compares every tile (it cannot know what changed while it
        // was closed), so viewers get what changed, not the whole screen again.
        self.scaled = None;
        self.source = Some((target, source));
        Ok(())
    }

    fn grab(&mut self, settings: &Settings, interval: Duration) {
        let Some((_, source)) = self.source.as_mut() else {
            return;
        };
        let started = Instant::now();
        let grabbed = source.grab();
        let grab_time = started.elapsed();
        self.pacer.tick(Instant::now(), interval);
        match grabbed {
            Ok(grab) => {
                self.backoff.reset();
                self.retry_at = None;
                let monitor_width = grab.picture.width();
                let (picture, damage) = match settings.max_width {
                    Some(max_width) if max_width < monitor_width => {
                        match scaled(
                            &mut self.scaled,
                            &mut self.resizer,
                            grab.picture,
                            &grab.damage,
                            max_width,
                        ) {
                            Ok(scaled) => scaled,
                            Err(error) => {
                                // The damage is spent: compare everything next time.
                                self.scaled = None;
                                tracing::warn!(%error, "frame dropped");
                                return;
                            }
                        }
                    }
                    _ => (grab.picture, grab.damage),
                };
                let demand = &self.state.demand;
                let capture = Capture {
                    picture,
                    damage,
                    pointer: grab.pointer,
                    monitor_width,
                    quality: u8::try_from(settings.quality).unwrap_or(100),
                    show_pointer: settings.show_pointer,
                    deliveries: Delivery::ALL
                        .map(|delivery| demand.wants_delivery(delivery, started)),
                    fps: settings.fps,
                    motion: settings.motion,
                };
                match self.publisher.publish(capture, Instant::now()) {
                    Ok(Some(frame)) => {
                        self.state.frames.send_replace(Some(Arc::new(frame)));
                    }
                    Ok(None) => {}
                    Err(error) => tracing::warn!(%error, "frame dropped"),
                }
                self.report_video();
                self.record_grab(started, grab_time);
            }
            Err(error) => {
                self.source = None;
                self.lost_to(&error, settings);
            }
        }
    }

    /// Tells the presenter whether motion goes out as video, and why not when it cannot.
    fn report_video(&self) {
        let video = self.publisher.in_video();
        let error = self.publisher.video_error();
        let size = self.publisher.video_size();
        let status = self.state.capture.borrow();
        if status.video == video
            && status.video_error.as_deref() == error
            && status.video_size == size
        {
            return;
        }
        drop(status);
        let error = error.map(str::to_owned);
        self.state.capture.send_modify(|status| {
            status.video = video;
            status.video_error = error;
            status.video_size = size;
        });
    }

    fn record_grab(&mut self, at: Instant, took: Duration) {
        self.recent_grabs.push_back(at);
        while self
            .recent_grabs
            .front()
            .is_some_and(|first| at.saturating_duration_since(*first) > RATE_WINDOW)
        {
            self.recent_grabs.pop_front();
        }
        let span = self
            .recent_grabs
            .front()
            .map_or(Duration::ZERO, |first| at.saturating_duration_since(*first));
        let achieved_fps = if span.is_zero() {
            0.0
        } else {
            (self.recent_grabs.len() - 1) as f64 / span.as_secs_f64()
        };
        let took_ms = took.as_secs_f64() * 1000.0;
        let was_lost = self.state.capture.borrow().phase == Phase::SourceLost;
        if was_lost {
            tracing::info!("capture is back");
        }
        self.state.capture.send_modify(|status| {
            status.phase = Phase::Live;
            status.error = None;
            status.window_gone = None;
            status.failed_attempts = 0;
            status.grabs += 1;
            status.achieved_fps = achieved_fps;
            status.grab_ms = if status.grab_ms == 0.0 {
                took_ms
            } else {
                status.grab_ms * 0.8 + took_ms * 0.2
            };
        });
    }

    /// The source failed with `error`: as [`Self::lost`], and a shared window's fate is noted for
    /// viewers (closed or minimised: words they may see, unlike the error itself).
    fn lost_to(&mut self, error: &super::CaptureError, settings: &Settings) {
        self.lost(&error.to_string(), settings);
        let gone = match error {
            super::CaptureError::WindowGone(gone) => Some(*gone),
            // Retrying a window that is not there any more: it was closed.
            super::CaptureError::UnknownWindow { .. } => Some(super::WindowGone::Closed),
            _ => None,
        };
        if gone == Some(WindowGone::Closed)
            && let (Some(choice), Some(opened)) =
                (settings.window.as_ref(), self.window_opened.as_mut())
            && opened.choice == *choice
        {
            opened.closed = true;
        }
        self.state
            .capture
            .send_modify(|status| status.window_gone = gone);
    }

    /// The source failed: keep the last frame up, say why, retry later.
    fn lost(&mut self, error: &str, settings: &Settings) {
        let delay = self.backoff.next_delay();
        let first = self.state.capture.borrow().phase != Phase::SourceLost;
        if first {
            tracing::warn!(%error, "capture lost; retrying");
        } else {
            tracing::debug!(%error, retry_in_ms = delay.as_millis() as u64, "capture still lost");
        }
        let error = error.to_owned();
        self.state.capture.send_modify(|status| {
            status.phase = Phase::SourceLost;
            status.error = Some(error);
            status.failed_attempts += 1;
            status.achieved_fps = 0.0;
        });
        self.recent_grabs.clear();
        self.pacer.reset();
        self.retry_at = Some((Target::of(settings, &self.state), Instant::now() + delay));
    }

    fn set_phase(&mut self, phase: Phase) {
        if self.state.capture.borrow().phase != phase {
            self.recent_grabs.clear();
            self.state.capture.send_modify(|status| {
                status.phase = phase;
                status.achieved_fps = 0.0;
            });
        }
    }
}

/// The grab scaled down to `max_width`, and what changed in it. Scaling spreads a change over its
/// neighbours, so a changed screen is scaled whole and compared whole; a still one is not
/// scaled at all.
fn scaled<'a>(
    kept: &'a mut Option<Scaled>,
    resizer: &mut Resizer,
    picture: &Picture,
    damage: &Damage,
    max_width: u32,
) -> Result<(&'a Picture, Damage), crate::encode::EncodeError> {
    let still = matches!(damage, Damage::Rects(rects) if rects.is_empty());
    let reusable = kept
        .as_ref()
        .is_some_and(|kept| kept.max_width == max_width);
    if !(still && reusable) {
        let picture =
            scale_picture(picture, max_width, resizer)?.unwrap_or_else(|| picture.clone());
        *kept = Some(Scaled { picture, max_width });
    }
    let damage = if still && reusable {
        Damage::Rects(Vec::new())
    } else {
        Damage::Unknown
    };
    match kept {
        Some(kept) => Ok((&kept.picture, damage)),
        None => Err(crate::encode::EncodeError::Scale(
            "no scaled picture".to_owned(),
        )),
    }
}
