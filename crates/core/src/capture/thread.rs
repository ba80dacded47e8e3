//! The capture thread: the only place that grabs, scales and publishes frames.
//!
//! It reads the settings each tick, grabs on the [`Pacer`]'s deadlines while someone watches,
//! publishes a frame only when the pixels (or the settings that shape them) changed, and when the
//! monitor fails it keeps the last frame up, reports the loss, and retries with a [`Backoff`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fast_image_resize::Resizer;
use image::RgbaImage;

use super::{Backoff, Pacer, Source};
use crate::encode::scale_to_width;
use crate::frame::Frame;
use crate::settings::{MonitorChoice, Settings};
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

/// What the last published frame was made from, to tell whether a grab brings anything new.
struct Published {
    raw: Arc<RgbaImage>,
    quality: u32,
    max_width: Option<u32>,
}

struct CaptureLoop {
    state: Arc<ShareState>,
    source: Option<(Option<MonitorChoice>, Box<dyn Source>)>,
    pacer: Pacer,
    backoff: Backoff,
    resizer: Resizer,
    published: Option<Published>,
    seq: u64,
    recent_grabs: VecDeque<Instant>,
    last_interval: Duration,
    /// While the source is lost: no new attempt at the monitor that failed before this.
    retry_at: Option<(Option<MonitorChoice>, Instant)>,
}

impl CaptureLoop {
    fn new(state: Arc<ShareState>) -> Self {
        Self {
            state,
            source: None,
            pacer: Pacer::new(),
            backoff: Backoff::new(Duration::from_millis(250), Duration::from_secs(5)),
            resizer: Resizer::new(),
            published: None,
            seq: 0,
            recent_grabs: VecDeque::new(),
            last_interval: Duration::ZERO,
            retry_at: None,
        }
    }

    fn run(mut self) {
        tracing::debug!("capture thread started");
        while !self.state.cancel.is_cancelled() {
            let settings = self.state.settings();
            self.step(&settings);
        }
        tracing::debug!("capture thread stopped");
    }

    /// One turn of the loop: at most one grab, or one wait.
    fn step(&mut self, settings: &Settings) {
        let demand = self.state.demand.clone();
        if settings.paused {
            self.set_phase(Phase::Paused);
            self.pacer.reset();
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
            .is_none_or(|(opened_for, _)| *opened_for != settings.monitor)
        {
            self.source = None;
            match &self.retry_at {
                // Another monitor was chosen: try it at once, with a fresh backoff.
                Some((failed, _)) if *failed != settings.monitor => {
                    self.retry_at = None;
                    self.backoff.reset();
                }
                Some((_, retry_at)) => {
                    let left = retry_at.saturating_duration_since(Instant::now());
                    if !left.is_zero() {
                        demand.sleep(left);
                        return;
                    }
                }
                None => {}
            }
            if let Err(error) = self.open(settings) {
                self.lost(&error.to_string(), settings);
                return;
            }
        }
        self.grab(settings, interval);
    }

    fn open(&mut self, settings: &Settings) -> Result<(), super::CaptureError> {
        let source = self.state.screens.open(settings.monitor.as_ref())?;
        tracing::info!(
            monitor = %source.info().name,
            width = source.info().width,
            height = source.info().height,
            "capturing monitor"
        );
        let info = source.info().clone();
        self.state
            .capture
            .send_modify(|status| status.monitor = Some(info));
        self.source = Some((settings.monitor.clone(), source));
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
            Ok(raw) => {
                self.backoff.reset();
                self.retry_at = None;
                if let Err(error) = self.publish_if_new(raw, settings) {
                    tracing::warn!(%error, "frame dropped");
                }
                self.record_grab(started, grab_time);
            }
            Err(error) => {
                self.source = None;
                self.lost(&error.to_string(), settings);
            }
        }
    }

    fn publish_if_new(
        &mut self,
        raw: RgbaImage,
        settings: &Settings,
    ) -> Result<(), crate::encode::EncodeError> {
        let unchanged = self.published.as_ref().is_some_and(|published| {
            published.quality == settings.quality
                && published.max_width == settings.max_width
                && *published.raw == raw
        });
        if unchanged {
            return Ok(());
        }
        let scaled = match settings.max_width {
            Some(max_width) => scale_to_width(&raw, max_width, &mut self.resizer)?,
            None => None,
        };
        let raw = Arc::new(raw);
        let pixels = scaled.map_or_else(|| raw.clone(), Arc::new);
        self.seq += 1;
        let quality = u8::try_from(settings.quality).unwrap_or(100);
        let frame = Frame::new(self.seq, pixels, quality, self.state.counters.clone());
        self.state.frames.send_replace(Some(Arc::new(frame)));
        self.published = Some(Published {
            raw,
            quality: settings.quality,
            max_width: settings.max_width,
        });
        Ok(())
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
            status.grabs += 1;
            status.achieved_fps = achieved_fps;
            status.grab_ms = if status.grab_ms == 0.0 {
                took_ms
            } else {
                status.grab_ms * 0.8 + took_ms * 0.2
            };
        });
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
            status.achieved_fps = 0.0;
        });
        self.recent_grabs.clear();
        self.pacer.reset();
        self.retry_at = Some((settings.monitor.clone(), Instant::now() + delay));
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
