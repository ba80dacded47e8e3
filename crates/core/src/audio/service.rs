//! Starts and stops the sound as the presenter turns it on and off: captured while sound is on
//! and the share is not paused (pause pauses sound too), stopped otherwise. A lost device or
//! sound server is said in the status and tried again every few seconds; the picture never
//! waits for sound.

use std::sync::Arc;
use std::time::Duration;

use super::{AudioError, Capture, Ended};
use crate::state::ShareState;

/// How long after a failure sound is tried again.
const RETRY: Duration = Duration::from_secs(2);

/// Runs until the share stops.
pub(crate) async fn run(state: Arc<ShareState>) {
    let mut settings = state.settings.subscribe();
    let (ended_sender, mut ended) = tokio::sync::mpsc::unbounded_channel::<(u64, AudioError)>();
    let mut captures = 0u64;
    let track = state.audio.clone();
    let mut running: Option<Capture> = None;
    let mut retry_at: Option<tokio::time::Instant> = None;
    loop {
        let (on, paused) = {
            let settings = settings.borrow_and_update();
            (settings.audio, settings.paused)
        };
        let want = on && !paused;
        if want && running.is_none() && retry_at.is_none_or(|at| at <= tokio::time::Instant::now())
        {
            retry_at = None;
            captures += 1;
            let ended = Ended {
                capture: captures,
                sender: ended_sender.clone(),
            };
            match start(&state, ended).await {
                Ok(capture) => {
                    running = Some(capture);
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
                if capture == captures && running.take().is_some() {
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
async fn start(state: &Arc<ShareState>, ended: Ended) -> Result<Capture, AudioError> {
    let track = state.audio.clone();
    // Connecting waits on PipeWire's thread: not on the server's.
    tokio::task::spawn_blocking(move || super::capture::start(track, ended))
        .await
        .map_err(|error| AudioError::Server(error.to_string()))?
}

#[cfg(not(target_os = "linux"))]
async fn start(_state: &Arc<ShareState>, _ended: Ended) -> Result<Capture, AudioError> {
    Err(AudioError::Unsupported)
}
