//! `stream?after=N`: updates pushed on one response as the capture publishes them, so a viewer's
//! frame rate no longer depends on its round trip (a long poll gets one update per round trip).
//!
//! Each record is a 4-byte little-endian length and that many bytes: the same update
//! `updates?after=N` would answer (encoded once, shared by every viewer), or, with length 0, a
//! heartbeat after a long poll without change. Nothing queues: hyper asks the body for its next
//! record only once the socket took nearly all it held (it holds at most 64 KiB beyond the
//! kernel's buffer, see listen.rs), and that record is then built from what this viewer last got
//! to the newest frame, so a slow viewer skips frames and a fast one gets all.
//!
//! A page that plays the share's video asks with `video=1`: while the screen is in motion its
//! records carry video pieces (the start and the pictures since the last keyframe when it has
//! none of this run, then each new picture; never a picture skipped, which would break the
//! pictures after it), and when the motion ends, the tiles that changed since its canvas was
//! last drawn, lossless. Its `after` names that canvas: a page that reconnects mid-motion gets
//! the run's start again and keeps its canvas.
//!
//! The stream opens with what the page would read from `status` (a status record: the byte
//! `0xA3`, then that JSON) and carries it again whenever it changes, so a page that reads the
//! stream need not ask for `status` (half of what a typing presenter cost a page was its
//! status polls), and learns of a pause, or of sound turned on, at once.
//!
//! A page that plays the share's sound asks with `audio=1`: between the updates come sound
//! records (`crate::audio::record`), the start and then each fragment as it is made, at most a
//! few behind (a page plays sound at the live edge). A muted page does not ask, and costs no
//! sound bytes.

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
use std::sync::Arc;

use crate::admission::Gate;
use crate::frame::{Delivery, Frame};
use crate::viewers::Visit;

/// The stream's query: where the viewer stands, its picture mode, and its own frame-rate cap.
#[derive(Debug, Default, Deserialize)]
pub struct StreamQuery {
    after: Option<String>,
    mode: Option<String>,
    /// At most this many updates a second for this viewer (1 to 60); the share's rate otherwise.
    fps: Option<String>,
    /// `1` when the page plays the share's H.264 video (adaptive mode only); `0` or absent: tiles.
    video: Option<String>,
    /// `1` when the page plays the share's sound; `0` or absent: no sound.
    audio: Option<String>,
}

/// What a stream sends next.
enum Next {
    /// A frame newer than the page's, or `None` after a long poll without one.
    Frame(Option<Arc<Frame>>),
    /// A sound record, framed.
    Sound(Bytes),
    /// What the page is told changed: a status record, framed.
    Status(Bytes),
}

/// The first byte of a status record (sound records start with `0xA1` and `0xA2`, updates with
/// their version).
pub const STATUS_RECORD: u8 = 0xA3;

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
    let delivery = Delivery::of(mode, parse_switch("video", query.video.as_deref())?);
    let sound = parse_switch("audio", query.audio.as_deref())?;
    // Counted as watching for as long as the stream is open.
    let visit = admit_viewer(&state, gate.as_deref(), peer, mode)?;
    let listener = sound.then(|| state.share.audio.listen());
    let mut told = state.share.told_viewers.subscribe();
    // The page hears where the share stands first.
    told.mark_changed();
    let pusher = Pusher {
        told,
        state,
        machine: peer.0.map(crate::net::machine_of),
        holding: None,
        visit,
        after,
        canvas: after,
        run_seen: None,
        delivery,
        gap: cap.map(|fps| Duration::from_secs(1) / fps),
        next_at: None,
        pending: None,
        sound: listener,
        sound_records: std::collections::VecDeque::new(),
        waiting: None,
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

/// A query switch: `1` on, `0` or absent off.
fn parse_switch(name: &str, value: Option<&str>) -> Result<bool, ServerError> {
    match value {
        None | Some("0") => Ok(false),
        Some("1") => Ok(true),
        Some(_) => Err(ServerError::BadRequest(format!("`{name}` must be 0 or 1"))),
    }
}

/// One viewer's stream: what it has, and when it may have the next update.
struct Pusher {
    state: AppState,
    /// What viewers are told; a change goes out as a status record.
    told: tokio::sync::watch::Receiver<Arc<crate::state::Told>>,
    visit: Visit,
    /// The last frame this stream carried, as tiles or video.
    after: u64,
    /// The last frame whose tiles the page drew: under video its canvas stays there.
    canvas: u64,
    /// The run of video (its first frame) this stream is carrying, while it carries one.
    run_seen: Option<u64>,
    delivery: Delivery,
    /// The viewer's own cap, as the time between two updates.
    gap: Option<Duration>,
    next_at: Option<tokio::time::Instant>,
    /// An update whose length went out already: the shared bytes themselves, never copied.
    pending: Option<Bytes>,
    /// The machine the stream goes to, and the bytes of the update it is sending when that
    /// update was made for it alone (a catch-up from an old frame: up to a whole 4K screen).
    machine: Option<std::net::IpAddr>,
    holding: Option<super::in_flight::HeldBytes>,
    /// Where the stream stands in the share's sound, when the page asked for it.
    sound: Option<crate::audio::track::Listener>,
    /// Sound records taken from the track and not sent yet (a few hundred bytes each, framed).
    sound_records: std::collections::VecDeque<Bytes>,
    /// The wait for the next frame, kept while sound comes meanwhile: starting it again for
    /// every sound record would cost each stream its share of the capture's bookkeeping
    /// 17 times a second.
    waiting: Option<FrameWait>,
}

/// A stream's wait for its next frame (`None` after a long poll without one).
type FrameWait = std::pin::Pin<Box<dyn std::future::Future<Output = Option<Arc<Frame>>> + Send>>;

impl Pusher {
    /// The next piece of the stream: an update's length, then the update (the bytes every
    /// viewer shares), or a heartbeat when nothing changed within the long poll.
    async fn next_record(&mut self) -> Result<Bytes, ServerError> {
        if let Some(update) = self.pending.take() {
            return Ok(update);
        }
        // Asked for the next record: the last update went out.
        self.holding = None;
        let frame = match self.next_frame_or_sound().await {
            Next::Frame(Some(frame)) => frame,
            Next::Frame(None) => return Ok(Bytes::from_static(&[0; PREFIX])),
            Next::Sound(record) | Next::Status(record) => return Ok(record),
        };
        let update = self.update_for(&frame).await?;
        // Counted like any frame answer's bytes: a stream that stops reading would hold it
        // until the stall guard drops it. (Buffers the frame keeps for everyone cost nothing
        // more.)
        if !frame.shares(&update) {
            self.holding = Some(
                self.state
                    .in_flight_frames
                    .hold(self.machine, update.len())?,
            );
        }
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

impl Pusher {
    /// Waits for the next frame (`None` after a long poll without one), or sound that comes
    /// meanwhile.
    async fn next_frame_or_sound(&mut self) -> Next {
        loop {
            if self.told.has_changed().unwrap_or(false) {
                return Next::Status(self.status_record());
            }
            if let Some(record) = self.next_sound_record() {
                return Next::Sound(record);
            }
            let (state, after, delivery, next_at) =
                (&self.state, self.after, self.delivery, self.next_at);
            let waiting = self.waiting.get_or_insert_with(|| {
                let state = state.clone();
                Box::pin(async move {
                    if let Some(at) = next_at {
                        tokio::time::sleep_until(at).await;
                    }
                    state.share.demand.note_delivery(delivery);
                    state.share.frame_for_viewer(Some(after)).await
                })
            });
            let sound = async {
                match self.sound.as_mut() {
                    Some(listener) => crate::audio::track::AudioTrack::changed(listener).await,
                    None => std::future::pending().await,
                }
            };
            let told = self.told.changed();
            tokio::select! {
                frame = waiting => {
                    self.waiting = None;
                    self.next_at = None;
                    return Next::Frame(frame);
                }
                () = sound => {}
                // The share's end closes the watch: the frame wait says so.
                Ok(()) = told => return Next::Status(self.status_record()),
            }
        }
    }

    /// What the page is told now, framed (once for every stream).
    fn status_record(&mut self) -> Bytes {
        let told = self.told.borrow_and_update().clone();
        let framed = told
            .record
            .get_or_init(|| {
                let mut bytes = vec![STATUS_RECORD];
                // A struct of plain fields always serialises; an empty object would do no harm.
                if serde_json::to_writer(&mut bytes, &told.status).is_err() {
                    bytes.extend_from_slice(b"{}");
                }
                record(&bytes)
            })
            .clone();
        self.visit.served_bytes(framed.len().saturating_sub(PREFIX));
        framed
    }

    /// A sound record waiting, framed by its length.
    fn next_sound_record(&mut self) -> Option<Bytes> {
        if self.sound_records.is_empty()
            && let Some(listener) = self.sound.as_mut()
        {
            self.sound_records
                .extend(self.state.share.audio.records_for(listener));
        }
        let sound = self.sound_records.pop_front()?;
        self.visit.served_bytes(sound.len());
        Some(sound)
    }

    /// What brings this page to `frame`: video, tiles, or the repaint from video back to tiles.
    async fn update_for(&mut self, frame: &Arc<Frame>) -> Result<Bytes, ServerError> {
        if self.delivery == Delivery::Video
            && let Some(update) = frame.video_update(self.after, self.run_seen)
        {
            self.run_seen = frame.video().map(|video| video.run.first);
            return Ok(update);
        }
        let coming_back = self.run_seen.take().is_some();
        let (after, mode) = (self.after, self.delivery.mode());
        let canvas = self.canvas;
        self.canvas = frame.seq();
        if coming_back {
            let frame = frame.clone();
            return on_blocking_thread(&self.state, move || frame.repaint_since(canvas))
                .await?
                .map_err(|error| ServerError::Internal(error.to_string()));
        }
        if let Some(bytes) = frame.update_ready(after, mode) {
            return Ok(bytes);
        }
        let frame = frame.clone();
        on_blocking_thread(&self.state, move || frame.update_since(after, mode))
            .await?
            .map_err(|error| ServerError::Internal(error.to_string()))
    }
}

/// Updates up to this size go out with their length in one piece (one chunk of the chunked
/// encoding, whose framing costs bytes per chunk): a pointer move or a typed letter. Larger ones
/// are sent as they are, shared with every viewer, never copied.
const JOINED_UP_TO: usize = 4096;

/// A small update (or sound record) with its length before it, in one piece.
pub(crate) fn record(update: &[u8]) -> Bytes {
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
    fn video_and_sound_are_asked_for_with_one_or_left_out() {
        assert_eq!(parse_switch("video", None).ok(), Some(false));
        assert_eq!(parse_switch("video", Some("0")).ok(), Some(false));
        assert_eq!(parse_switch("audio", Some("1")).ok(), Some(true));
        assert!(parse_switch("audio", Some("yes")).is_err());
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
