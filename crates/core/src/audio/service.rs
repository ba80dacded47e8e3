//! Starts and stops the sound as the presenter turns it on and off: captured while sound is on
//! and the share is not paused (pause pauses sound too), stopped otherwise. A lost device or
//! sound server is said in the status and tried again every few seconds; the picture never
//! waits for sound.

use std::sync::Arc;
use std::time::Duration;

use super::AudioError;
use crate::state::ShareState;

/// How long after a failure sound is tried again.
const RETRY: Duration = Duration::from_secs(2);

/// Runs until the share stops.
pub(crate) async fn run(state: Arc<ShareState>) {
    let mut settings = state.settings.subscribe();
    let (ended_sender, mut ended) = tokio::sync::mpsc::unbounded_channel::<(u64, AudioError)>();
    let mut captures = 0u64;
    let track = state.audio.clone();
    #[cfg(target_os = "linux")]
    let mut running: Option<super::capture::Capture> = None;
    let mut retry_at: Option<tokio::time::Instant> = None;
    loop {
        let (on, paused) = {
            let settings = settings.borrow_and_update();
            (settings.audio, settings.paused)
        };
        let want = on && !paused;
        #[cfg(target_os = "linux")]
        let is_running = running.is_some();
        #[cfg(not(target_os = "linux"))]
        let is_running = false;
        if want && !is_running && retry_at.is_none_or(|at| at <= tokio::time::Instant::now()) {
            retry_at = None;
            captures += 1;
            match start(&state, &ended_sender, captures).await {
                Ok(capture) => {
                    #[cfg(target_os = "linux")]
                    {
                        running = Some(capture);
                    }
                    #[cfg(not(target_os = "linux"))]
                    let () = capture;
                    track.set_status(|status| {
                        status.live = true;
                        status.error = None;
                    });
                    tracing::info!("sound on");
                }
                Err(error) => {
                    tracing::warn!(%error, "no sound");
                    track.set_status(|status| status.error = Some(error.to_string()));
                    if error != AudioError::Unsupported {
                        retry_at = Some(tokio::time::Instant::now() + RETRY);
                    }
                }
            }
        }
        if !want {
            #[cfg(target_os = "linux")]
            if running.take().is_some() {
                tracing::info!(paused, "sound off");
            }
            track.end();
            retry_at = None;
            track.set_status(|status| status.error = None);
        }
        track.set_status(|status| status.on = on);
        let retry = async {
            match retry_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = settings.changed() => if changed.is_err() { break },
            Some((capture, error)) = ended.recv() => {
                // What a capture already stopped says is old news.
                #[cfg(target_os = "linux")]
                let was_running = capture == captures && running.take().is_some();
                #[cfg(not(target_os = "linux"))]
                let was_running = capture == captures && false;
                if was_running {
                    tracing::warn!(%error, "sound stopped");
                    track.end();
                    track.set_status(|status| status.error = Some(error.to_string()));
                    retry_at = Some(tokio::time::Instant::now() + RETRY);
                }
            }
            () = retry => {}
            () = state.cancel.cancelled() => break,
        }
    }
    track.end();
}

#[cfg(target_os = "linux")]
async fn start(
    state: &Arc<ShareState>,
    ended: &tokio::sync::mpsc::UnboundedSender<(u64, AudioError)>,
    capture: u64,
) -> Result<super::capture::Capture, AudioError> {
    let track = state.audio.clone();
    let ended = super::capture::Ended {
        capture,
        sender: ended.clone(),
    };
    // Connecting waits on PipeWire's thread: not on the server's.
    tokio::task::spawn_blocking(move || super::capture::start(track, ended))
        .await
        .map_err(|error| AudioError::Server(error.to_string()))?
}

#[cfg(not(target_os = "linux"))]
async fn start(
    _state: &Arc<ShareState>,
    _ended: &tokio::sync::mpsc::UnboundedSender<(u64, AudioError)>,
    _capture: u64,
) -> Result<(), AudioError> {
    Err(AudioError::Unsupported)
}
