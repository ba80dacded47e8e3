//! Pushes the share's state to the window once a second, as the `status` event.

use std::time::{Duration, Instant};

use screenshare_core::viewers::ViewerInfo;
use screenshare_core::{Phase, Settings};
use serde::Serialize;
use tauri::{AppHandle, Emitter, Manager};

use crate::presenter::Presenter;

const EVERY: Duration = Duration::from_secs(1);

/// The `status` event's payload.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StatusEvent {
    pub sharing: bool,
    pub state: Option<Phase>,
    pub error: Option<String>,
    pub viewers: usize,
    pub viewer_list: Vec<ViewerInfo>,
    pub achieved_fps: f64,
    pub width: u32,
    pub height: u32,
    /// What is shared, in words (a monitor's name; on Wayland what the desktop's dialog picked).
    pub source: Option<String>,
    pub frame: u64,
    pub jpeg_bytes: Option<usize>,
    pub png_bytes: Option<usize>,
    pub bandwidth_bytes_per_sec: f64,
    /// The settings in force, whoever changed them last.
    pub settings: Option<Settings>,
    /// Wrong PINs tried in this share.
    pub wrong_pins: u64,
    /// Wrong PINs from many addresses within the last minute: approval is offered.
    pub pin_under_attack: bool,
    /// What pages that play video see now: `tiles` or `video`.
    pub showing: Option<&'static str>,
    /// Why motion cannot go out as video, while it cannot.
    pub video_error: Option<String>,
    /// The size the video is encoded at, while in video.
    pub video_size: Option<[u32; 2]>,
    /// Sound: on, live, its level, and why not.
    pub audio: Option<screenshare_core::audio::track::AudioStatus>,
}

pub async fn push_status(app: AppHandle) {
    let mut ticker = tokio::time::interval(EVERY);
    let mut last: Option<(u64, Instant)> = None;
    loop {
        ticker.tick().await;
        let presenter = app.state::<Presenter>();
        let event = match presenter.snapshot().await {
            Some((status, viewer_list, settings)) => {
                let now = Instant::now();
                let bandwidth = last.map_or(0.0, |(bytes, at)| {
                    status.bytes_served.saturating_sub(bytes) as f64
                        / now.duration_since(at).as_secs_f64().max(0.001)
                });
                last = Some((status.bytes_served, now));
                StatusEvent {
                    sharing: true,
                    state: Some(status.state),
                    error: status.error,
                    viewers: status.viewers,
                    viewer_list,
                    achieved_fps: status.achieved_fps,
                    width: status.width,
                    height: status.height,
                    source: status.monitor.map(|monitor| monitor.name),
                    frame: status.frame,
                    jpeg_bytes: status.jpeg_bytes,
                    png_bytes: status.png_bytes,
                    bandwidth_bytes_per_sec: bandwidth,
                    settings: Some(settings),
                    wrong_pins: status.wrong_pins,
                    pin_under_attack: status.pin_under_attack,
                    showing: Some(status.showing),
                    video_error: status.video_error,
                    video_size: status.video_size,
                    audio: Some(status.audio),
                }
            }
            None => {
                last = None;
                StatusEvent::default()
            }
        };
        if let Err(error) = app.emit("status", &event) {
            tracing::debug!(%error, "status event not delivered");
        }
    }
}
