//! The share's sound track: packets gathered into fragments, the last few kept for the pages'
//! streams, and what the presenter's window shows (on, live, level, why not).
//!
//! A fragment holds three packets (60 ms): each fragment costs about 120 bytes of framing, so
//! fewer would cost more than the 96 kbit/s of sound, and more would add delay. With more than
//! [`MANY_LISTENERS`] streams listening it holds five (100 ms): each fragment is a wake-up and a
//! write for every listener, and at 100 listeners that cost the presenter more CPU than the
//! 40 ms it saves is worth (docs/BENCHMARKS.md). While all is silent a fragment holds up to 25
//! (half a second), so a quiet share costs about 8 kbit/s; the first audible packet sends the
//! silence before it at once.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::watch;

use super::{Packet, RATE, fmp4, record};
use crate::server::push::record as framed;

const PACKETS_PER_FRAGMENT: usize = 3;
/// Above this many listening streams, fragments hold [`PACKETS_PER_FRAGMENT_FOR_MANY`].
pub const MANY_LISTENERS: usize = 16;
const PACKETS_PER_FRAGMENT_FOR_MANY: usize = 5;
const QUIET_PACKETS_PER_FRAGMENT: usize = 25;
/// Fragments kept for streams that are a little behind: about three seconds of sound.
const KEPT: usize = 50;
/// A stream further behind than this many fragments gets only the newest few: a page plays
/// at the live edge, and older sound would be skipped there anyway.
const CATCH_UP: usize = 4;
const CATCH_UP_WITH: usize = 2;
/// How far the sound's own clock may drift from the share's before its time is set again.
const DRIFT: Duration = Duration::from_millis(40);
/// The meter falls about 20 dB a second after a peak.
const METER_DECAY_PER_PACKET: f32 = 0.955;

/// What the presenter sees of sound.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct AudioStatus {
    /// The presenter turned sound on.
    pub on: bool,
    /// Sound is being captured and sent now.
    pub live: bool,
    /// The loudest sound lately, in dBFS (-90 when silent).
    pub level_db: f32,
    /// Why sound is not live although it is on.
    pub error: Option<String>,
    /// What is captured.
    pub source: String,
}

/// The share's sound, shared by the capture thread that fills it and every stream reading it.
#[derive(Debug)]
pub struct AudioTrack {
    /// The clock's zero, shared with the video: times on the wire count from it.
    epoch: Instant,
    kept: Mutex<Kept>,
    /// The newest fragment's number, for streams to wait on.
    newest: watch::Sender<u64>,
    /// Whether sound is being sent, for what viewers are told (changes with starts and ends
    /// only, where `newest` changes with every fragment).
    live: watch::Sender<bool>,
    status: Mutex<AudioStatus>,
}

#[derive(Debug, Default)]
struct Kept {
    /// Counts the starts: a stream that saw another start needs this one.
    generation: u64,
    start: Option<Bytes>,
    fragments: VecDeque<(u64, Bytes)>,
    next_number: u64,
    gathering: Vec<Packet>,
    /// The next packet's time, in samples since the epoch.
    decode_time: Option<u64>,
    sequence: u32,
    level: f32,
}

/// Where one stream stands in the track.
#[derive(Debug)]
pub struct Listener {
    generation: u64,
    seen: u64,
    changes: watch::Receiver<u64>,
}

impl AudioTrack {
    pub fn new(epoch: Instant) -> Self {
        Self {
            epoch,
            kept: Mutex::new(Kept::default()),
            newest: watch::Sender::new(0),
            live: watch::Sender::new(false),
            status: Mutex::new(AudioStatus {
                level_db: -90.0,
                source: "the default output".to_owned(),
                ..AudioStatus::default()
            }),
        }
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new start: a capture began, with an encoder that drops `pre_skip` samples first.
    pub fn begin(&self, pre_skip: u16) {
        let mut kept = self.kept();
        kept.generation += 1;
        kept.start = Some(framed(&record::start(
            fmp4::CODEC,
            &fmp4::init_segment(pre_skip),
        )));
        kept.fragments.clear();
        kept.gathering.clear();
        kept.decode_time = None;
        drop(kept);
        self.newest.send_modify(|_| {});
        self.live
            .send_if_modified(|live| !std::mem::replace(live, true));
    }

    /// The capture ended: nothing more to send until the next start.
    pub fn end(&self) {
        let mut kept = self.kept();
        kept.start = None;
        kept.fragments.clear();
        kept.gathering.clear();
        kept.level = 0.0;
        drop(kept);
        self.live
            .send_if_modified(|live| std::mem::replace(live, false));
        self.set_status(|status| {
            status.live = false;
            status.level_db = -90.0;
        });
    }

    /// Adds packets just encoded; the fragments they complete go out to the streams.
    pub fn add(&self, packets: Vec<Packet>) {
        let mut kept = self.kept();
        if kept.start.is_none() {
            return;
        }
        let mut completed = false;
        for packet in packets {
            kept.level = packet.peak.max(kept.level * METER_DECAY_PER_PACKET);
            let quiet_so_far = kept.gathering.iter().all(Packet::silent);
            if !packet.silent() && quiet_so_far && !kept.gathering.is_empty() {
                // Sound after silence: the silence goes now, so the sound is not held back.
                completed |= self.complete(&mut kept);
            }
            kept.gathering.push(packet);
            let quiet = kept.gathering.iter().all(Packet::silent);
            let full = if quiet {
                QUIET_PACKETS_PER_FRAGMENT
            } else if self.newest.receiver_count() > MANY_LISTENERS {
                PACKETS_PER_FRAGMENT_FOR_MANY
            } else {
                PACKETS_PER_FRAGMENT
            };
            if kept.gathering.len() >= full {
                completed |= self.complete(&mut kept);
            }
        }
        let level = kept.level;
        drop(kept);
        self.set_status(|status| status.level_db = super::dbfs(level));
        if completed {
            self.newest.send_modify(|newest| *newest += 1);
        }
    }

    /// Turns the packets gathered into a fragment, stamped on the share's clock.
    fn complete(&self, kept: &mut Kept) -> bool {
        let packets = std::mem::take(&mut kept.gathering);
        let Some(first) = packets.first() else {
            return false;
        };
        let by_clock = self.samples_since_epoch(first.at);
        let drift = Duration::from_secs_f64(
            kept.decode_time.unwrap_or(0).abs_diff(by_clock) as f64 / f64::from(RATE),
        );
        let decode_time = match kept.decode_time {
            Some(time) if drift <= DRIFT => time,
            _ => by_clock,
        };
        kept.sequence = kept.sequence.wrapping_add(1).max(1);
        let opus: Vec<&[u8]> = packets.iter().map(|packet| &packet.opus[..]).collect();
        let segment = fmp4::fragment(kept.sequence, decode_time, &opus);
        kept.decode_time = Some(decode_time + (packets.len() * super::PACKET_SAMPLES) as u64);
        kept.next_number += 1;
        let number = kept.next_number;
        kept.fragments
            .push_back((number, framed(&record::fragment(&segment))));
        while kept.fragments.len() > KEPT {
            kept.fragments.pop_front();
        }
        true
    }

    fn samples_since_epoch(&self, at: Instant) -> u64 {
        (at.saturating_duration_since(self.epoch).as_secs_f64() * f64::from(RATE)).round() as u64
    }

    /// A stream starting to listen: it gets the start, then the newest sound.
    pub fn listen(&self) -> Listener {
        Listener {
            generation: 0,
            seen: 0,
            changes: self.newest.subscribe(),
        }
    }

    /// The records `listener` has not had, framed as the push stream sends them (their length
    /// first: made once, shared by every stream): the start when it has not seen this one, then
    /// the fragments after the last it got (only the newest few when it is far behind).
    pub fn records_for(&self, listener: &mut Listener) -> Vec<Bytes> {
        listener.changes.borrow_and_update();
        let kept = self.kept();
        let Some(start) = &kept.start else {
            return Vec::new();
        };
        let mut records = Vec::new();
        if listener.generation != kept.generation {
            listener.generation = kept.generation;
            records.push(start.clone());
            // A page starting now begins at the live edge.
            listener.seen = kept.next_number.saturating_sub(1);
        }
        let behind = kept
            .fragments
            .iter()
            .filter(|(number, _)| *number > listener.seen)
            .count();
        let skip = if behind > CATCH_UP {
            behind - CATCH_UP_WITH
        } else {
            0
        };
        records.extend(
            kept.fragments
                .iter()
                .filter(|(number, _)| *number > listener.seen)
                .skip(skip)
                .map(|(_, record)| record.clone()),
        );
        listener.seen = kept.next_number;
        records
    }

    /// Waits until a fragment or a start comes after what `listener` last took.
    pub async fn changed(listener: &mut Listener) {
        if listener.changes.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    pub fn status(&self) -> AudioStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_status(&self, change: impl FnOnce(&mut AudioStatus)) {
        change(&mut self.status.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// Whether sound is being sent now.
    pub fn live(&self) -> bool {
        self.kept().start.is_some()
    }

    /// Changes when sound starts or ends being sent.
    pub fn watch_live(&self) -> watch::Receiver<bool> {
        self.live.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(at: Instant, loud: bool) -> Packet {
        Packet {
            opus: vec![if loud { 0x55 } else { 0 }; if loud { 200 } else { 3 }],
            at,
            peak: if loud { 0.5 } else { 0.0 },
        }
    }

    fn packets(start: Instant, from: usize, count: usize, loud: bool) -> Vec<Packet> {
        (from..from + count)
            .map(|index| packet(start + Duration::from_millis(20 * index as u64), loud))
            .collect()
    }

    fn fragments(records: &[Bytes]) -> usize {
        records
            .iter()
            .filter(|record| record[4] == record::FRAGMENT)
            .count()
    }

    #[test]
    fn a_listener_gets_the_start_then_each_fragment_once() {
        let epoch = Instant::now();
        let track = AudioTrack::new(epoch);
        let mut listener = track.listen();
        assert!(track.records_for(&mut listener).is_empty(), "sound is off");
        track.begin(312);
        track.add(packets(epoch, 0, 6, true));
        let first = track.records_for(&mut listener);
        assert_eq!(first[0][4], record::START);
        assert_eq!(
            fragments(&first),
            1,
            "the newest fragment only: the live edge"
        );
        track.add(packets(epoch, 6, 3, true));
        assert_eq!(fragments(&track.records_for(&mut listener)), 1);
        assert!(track.records_for(&mut listener).is_empty());
        // Far behind: only the newest.
        track.add(packets(epoch, 9, 30, true));
        assert_eq!(fragments(&track.records_for(&mut listener)), CATCH_UP_WITH);
        // A new start (sound off and on) is sent again.
        track.end();
        assert!(track.records_for(&mut listener).is_empty());
        track.begin(312);
        track.add(packets(epoch, 40, 3, true));
        let again = track.records_for(&mut listener);
        assert_eq!(again[0][4], record::START);
    }

    #[test]
    fn silence_gathers_longer_and_sound_after_it_is_not_held_back() {
        let epoch = Instant::now();
        let track = AudioTrack::new(epoch);
        track.begin(312);
        let mut listener = track.listen();
        track.records_for(&mut listener);
        track.add(packets(epoch, 0, 24, false));
        assert!(
            track.records_for(&mut listener).is_empty(),
            "still gathering"
        );
        track.add(packets(epoch, 24, 1, true));
        assert_eq!(
            fragments(&track.records_for(&mut listener)),
            1,
            "the silence went"
        );
        track.add(packets(epoch, 25, 2, true));
        assert_eq!(fragments(&track.records_for(&mut listener)), 1);
        assert!(track.status().level_db > -7.0);
    }

    #[test]
    fn many_listeners_get_longer_fragments() {
        let epoch = Instant::now();
        let track = AudioTrack::new(epoch);
        track.begin(312);
        let mut listeners: Vec<Listener> = (0..=MANY_LISTENERS).map(|_| track.listen()).collect();
        for listener in &mut listeners {
            track.records_for(listener);
        }
        track.add(packets(epoch, 0, 4, true));
        assert!(
            track.records_for(&mut listeners[0]).is_empty(),
            "four packets are not a fragment yet"
        );
        track.add(packets(epoch, 4, 1, true));
        assert_eq!(fragments(&track.records_for(&mut listeners[0])), 1);
        // Most of them gone: three packets again.
        listeners.truncate(2);
        track.add(packets(epoch, 5, 3, true));
        assert_eq!(fragments(&track.records_for(&mut listeners[0])), 1);
    }

    #[test]
    fn fragments_are_stamped_on_the_shares_clock_and_follow_on() {
        use mp4_atom::{Decode, Moof};
        let epoch = Instant::now();
        let track = AudioTrack::new(epoch);
        track.begin(312);
        let mut listener = track.listen();
        let start = epoch + Duration::from_secs(2);
        track.add(packets(start, 0, 3, true));
        track.records_for(&mut listener);
        // The next packets come 5 ms late by the clock: within the drift, they follow on.
        track.add(packets(start + Duration::from_millis(5), 3, 3, true));
        // Then the clock says 100 ms later: the time is set again.
        track.add(packets(start + Duration::from_millis(100), 6, 3, true));
        let times: Vec<u64> = [&track.records_for(&mut listener)[..]]
            .concat()
            .iter()
            .map(|record| {
                let moof = Moof::decode(&mut std::io::Cursor::new(&record[5..])).expect("moof");
                moof.traf[0]
                    .tfdt
                    .as_ref()
                    .map_or(0, |tfdt| tfdt.base_media_decode_time)
            })
            .collect();
        assert_eq!(times, vec![96_000 + 2880, 96_000 + 10_560]);
    }
}
