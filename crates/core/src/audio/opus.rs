//! PCM in, 20 ms Opus packets out: libopus (built from its source by the `opus` crate), 48 kHz
//! stereo, variable bit rate around [`BITRATE`]. Silence comes out as packets of a few bytes.

use std::time::{Duration, Instant};

use super::{AudioError, BITRATE, CHANNELS, PACKET_SAMPLES, Packet, RATE};

/// How hard the encoder works (0 to 10): see [`OpusPackets::new`].
const COMPLEXITY: i32 = 3;

/// The largest packet libopus writes for one frame (its documented ceiling is 1275 bytes).
const MAX_PACKET: usize = 1500;

pub struct OpusPackets {
    encoder: opus::Encoder,
    /// Interleaved samples not yet in a packet.
    pending: Vec<f32>,
    /// When the first of them was played.
    pending_at: Option<Instant>,
    out: Vec<u8>,
}

impl std::fmt::Debug for OpusPackets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusPackets")
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

fn failed(error: opus::Error) -> AudioError {
    AudioError::Encoder(error.to_string())
}

impl OpusPackets {
    pub fn new() -> Result<Self, AudioError> {
        let mut encoder =
            opus::Encoder::new(RATE, opus::Channels::Stereo, opus::Application::Audio)
                .map_err(failed)?;
        encoder
            .set_bitrate(opus::Bitrate::Bits(BITRATE))
            .map_err(failed)?;
        // Half the work of the default (10), and nothing to hear at 96 kbit/s: the extra
        // analysis of the higher settings pays at low bit rates.
        encoder.set_complexity(COMPLEXITY).map_err(failed)?;
        Ok(Self {
            encoder,
            pending: Vec::with_capacity(PACKET_SAMPLES * CHANNELS * 4),
            pending_at: None,
            out: vec![0; MAX_PACKET],
        })
    }

    /// The samples the decoder drops at the start (the encoder's look-ahead), for `dOps`.
    pub fn pre_skip(&mut self) -> u16 {
        self.encoder
            .get_lookahead()
            .ok()
            .and_then(|samples| u16::try_from(samples).ok())
            .unwrap_or(312)
    }

    /// Takes `samples` (interleaved stereo) whose first was played at `at`, and encodes every
    /// whole packet they complete.
    pub fn push(&mut self, samples: &[f32], at: Instant) -> Result<Vec<Packet>, AudioError> {
        // Where the pending samples began, by the newest buffer's clock: a capture that skipped
        // samples (an overrun) moves the packets to where they really were.
        let pending_for = duration_of(self.pending.len());
        self.pending_at = Some(at.checked_sub(pending_for).unwrap_or(at));
        self.pending.extend_from_slice(samples);
        let mut packets = Vec::new();
        let whole = PACKET_SAMPLES * CHANNELS;
        let mut used = 0;
        while self.pending.len() - used >= whole {
            let pcm = &self.pending[used..used + whole];
            let length = self
                .encoder
                .encode_float(pcm, &mut self.out)
                .map_err(failed)?;
            let peak = pcm
                .iter()
                .fold(0.0f32, |peak, sample| peak.max(sample.abs()));
            let start = self.pending_at.unwrap_or(at);
            packets.push(Packet {
                opus: self.out[..length].to_vec(),
                at: start + duration_of(used),
                peak,
            });
            used += whole;
        }
        if used > 0 {
            self.pending.drain(..used);
            self.pending_at = self.pending_at.map(|start| start + duration_of(used));
        }
        Ok(packets)
    }
}

/// How long `count` interleaved samples play.
fn duration_of(count: usize) -> Duration {
    Duration::from_secs_f64((count / CHANNELS) as f64 / f64::from(RATE))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(frequency: f32, samples: usize) -> Vec<f32> {
        (0..samples)
            .flat_map(|at| {
                let value =
                    (at as f32 * frequency * std::f32::consts::TAU / RATE as f32).sin() * 0.5;
                [value, value]
            })
            .collect()
    }

    #[test]
    fn packets_come_every_twenty_milliseconds_of_samples() {
        let mut packets = OpusPackets::new().expect("encoder");
        let start = Instant::now();
        // 1.5 packets, then the rest of a second packet and a bit.
        let first = packets.push(&tone(440.0, 1440), start).expect("encodes");
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].at, start);
        assert!(first[0].peak > 0.45 && !first[0].silent());
        let later = start + Duration::from_millis(30);
        let second = packets.push(&tone(440.0, 600), later).expect("encodes");
        assert_eq!(second.len(), 1);
        let gap = second[0].at.duration_since(start);
        assert!(
            gap.abs_diff(Duration::from_millis(20)) < Duration::from_micros(10),
            "{gap:?}"
        );
    }

    #[test]
    fn silence_costs_a_few_bytes_and_a_tone_a_few_hundred() {
        let mut packets = OpusPackets::new().expect("encoder");
        let now = Instant::now();
        let silent = packets
            .push(&vec![0.0; PACKET_SAMPLES * CHANNELS * 10], now)
            .expect("encodes");
        assert_eq!(silent.len(), 10);
        assert!(silent.iter().all(|packet| packet.silent()));
        assert!(silent[5..].iter().all(|packet| packet.opus.len() <= 8));
        let loud = packets.push(&tone(440.0, 960 * 10), now).expect("encodes");
        let bytes: usize = loud[5..].iter().map(|packet| packet.opus.len()).sum();
        // About 96 kbit/s: 240 bytes a packet.
        assert!((600..=2400).contains(&bytes), "{bytes} bytes in 5 packets");
        assert!((250..=400).contains(&packets.pre_skip()));
    }
}
