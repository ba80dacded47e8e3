//! `stream?after=N`: updates pushed on one response as the capture publishes them, so a viewer's
//! frame rate no longer depends on its round trip (a long poll gets one update per round trip).
//!
//! Each record is a 4-byte little-endian length and that many bytes: the same update
//! `updates?after=N` would answer (encoded once, shared by every viewer), or, with length 0, a
//! heartbeat after a long poll without change. Nothing queues: hyper asks the body for its next
//! record only once the socket took nearly all it held (it holds at most 64 KiB beyond the
//! kernel's buffer, see listen.rs), and that record is then built from what this viewer last got
//! to the newest frame, so a slow viewer skips frames and a fast one gets all.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Query, State};
use axum::response::Response;
use serde::Deserialize;

use super::AppState;
use super::error::ServerError;
use super::viewer::{
    PeerAddr, admit_viewer, on_blocking_thread, parse_after, parse_mode, query_or_400,
    updates_response,
};
use crate::admission::Gate;
use crate::frame::Mode;
use crate::viewers::Visit;

/// The stream's query: where the viewer stands, its picture mode, and its own frame-rate cap.
#[derive(Debug, Default, Deserialize)]
pub struct StreamQuery {
    after: Option<String>,
    mode: Option<String>,
    /// At most this many updates a second for this viewer (1 to 60); the share's rate otherwise.
    fps: Option<String>,
}

/// A record's length prefix.
const PREFIX: usize = 4;

pub async fn stream(
    State(state): State<AppState>,
    peer: PeerAddr,
    gate: Option<Extension<Gate>>,
    query: Result<Query<StreamQuery>, QueryRejection>,
) -> Result<Response, ServerError> {
    let query = query_or_400(query)?;
    let after = parse_after(query.after.as_deref())?.unwrap_or(0);
    let mode = parse_mode(query.mode.as_deref())?;
    let cap = parse_fps(query.fps.as_deref())?;
    // Counted as watching for as long as the stream is open.
    let visit = admit_viewer(&state, gate.as_deref(), peer, mode)?;
    let pusher = Pusher {
        state,
        visit,
        after,
        mode,
        gap: cap.map(|fps| Duration::from_secs(1) / fps),
        next_at: None,
        pending: None,
    };
    let records = futures_util::stream::unfold(pusher, |mut pusher| async move {
        let record = pusher.next_record().await;
        Some((record, pusher))
    });
    Ok(updates_response(Body::from_stream(records)))
}

fn parse_fps(fps: Option<&str>) -> Result<Option<u32>, ServerError> {
    fps.map(|fps| {
        fps.parse::<u32>()
            .ok()
            .filter(|fps| (1..=60).contains(fps))
            .ok_or_else(|| ServerError::BadRequest("`fps` must be from 1 to 60".to_owned()))
    })
    .transpose()
}

/// One viewer's stream: what it has, and when it may have the next update.
struct Pusher {
    state: AppState,
    visit: Visit,
    after: u64,
    mode: Mode,
    /// The viewer's own cap, as the time between two updates.
    gap: Option<Duration>,
    next_at: Option<tokio::time::Instant>,
    /// An update whose length went out already: the shared bytes themselves, never copied.
    pending: Option<Bytes>,
}

impl Pusher {
    /// The next piece of the stream: an update's length, then the update (the bytes every
    /// viewer shares), or a heartbeat when nothing changed within the long poll.
    async fn next_record(&mut self) -> Result<Bytes, ServerError> {
        if let Some(update) = self.pending.take() {
            return Ok(update);
        }
        if let Some(at) = self.next_at.take() {
            tokio::time::sleep_until(at).await;
        }
        self.state.share.demand.note_mode(self.mode);
        let Some(frame) = self.state.share.frame_for_viewer(Some(self.after)).await else {
            return Ok(Bytes::from_static(&[0; PREFIX]));
        };
        let (after, mode) = (self.after, self.mode);
        let update = match frame.update_ready(after, mode) {
            Some(bytes) => bytes,
            None => {
                let frame = frame.clone();
                on_blocking_thread(&self.state, move || frame.update_since(after, mode))
                    .await?
                    .map_err(|error| ServerError::Internal(error.to_string()))?
            }
        };
        self.after = frame.seq();
        self.visit.served(update.len());
        if let Some(gap) = self.gap {
            self.next_at = Some(tokio::time::Instant::now() + gap);
        }
        if update.len() <= JOINED_UP_TO {
            return Ok(record(&update));
        }
        let length = length_prefix(update.len());
        self.pending = Some(update);
        Ok(length)
    }
}

/// Updates up to this size go out with their length in one piece (one chunk of the chunked
/// encoding, whose framing costs bytes per chunk): a pointer move or a typed letter. Larger ones
/// are sent as they are, shared with every viewer, never copied.
const JOINED_UP_TO: usize = 4096;

/// A small update with its length before it, in one piece.
fn record(update: &[u8]) -> Bytes {
    let mut joined = Vec::with_capacity(PREFIX + update.len());
    joined.extend_from_slice(&length_prefix(update.len()));
    joined.extend_from_slice(update);
    Bytes::from(joined)
}

/// The 4-byte little-endian length before an update.
fn length_prefix(length: usize) -> Bytes {
    Bytes::copy_from_slice(&u32::try_from(length).unwrap_or(u32::MAX).to_le_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_length_is_four_bytes_little_endian() {
        assert_eq!(&length_prefix(3)[..], &[3, 0, 0, 0]);
        assert_eq!(&length_prefix(0x0102_0304)[..], &[4, 3, 2, 1]);
    }

    #[test]
    fn a_small_update_goes_out_with_its_length() {
        assert_eq!(&record(b"abc")[..], &[3, 0, 0, 0, b'a', b'b', b'c']);
    }

    #[test]
    fn the_cap_is_a_frame_rate() {
        assert_eq!(parse_fps(None).ok(), Some(None));
        assert_eq!(parse_fps(Some("30")).ok(), Some(Some(30)));
        for bad in ["0", "61", "-1", "x", ""] {
            assert!(parse_fps(Some(bad)).is_err(), "{bad}");
        }
    }
}
