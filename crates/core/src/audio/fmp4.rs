//! The Opus track in fragmented MP4 ([`crate::mp4`]), as "Encapsulation of Opus in ISO Base
//! Media File Format" lays it out: an `Opus` sample entry with its `dOps` box, then fragments of
//! a few packets each, every packet a sample lasting 20 ms.

use bytes::Bytes;

use super::{CHANNELS, PACKET_SAMPLES, RATE};
use crate::mp4::{self, Handler, SampleInfo, put_box, u16_be, u32_be};

/// Media time units a second: the sample rate, so that a packet lasts exactly 960.
pub const TIMESCALE: u32 = RATE;

/// What a page gives `MediaSource.isTypeSupported` and `addSourceBuffer`.
pub const CODEC: &str = "opus";

/// The init segment of the share's Opus track; `pre_skip` is the encoder's look-ahead, which
/// the decoder drops from the start.
pub fn init_segment(pre_skip: u16) -> Bytes {
    mp4::init_segment(
        Handler::Sound,
        TIMESCALE,
        &[b"isom", b"iso6", b"mp41"],
        |out| {
            put_box(out, b"Opus", |out| {
                out.extend_from_slice(&[0; 6]);
                u16_be(out, 1); // data reference index
                out.extend_from_slice(&[0; 8]);
                u16_be(out, CHANNELS as u16);
                u16_be(out, 16); // sample size
                u16_be(out, 0);
                u16_be(out, 0);
                u32_be(out, RATE << 16);
                put_box(out, b"dOps", |out| {
                    out.push(0); // version
                    out.push(CHANNELS as u8);
                    u16_be(out, pre_skip);
                    u32_be(out, RATE); // the input's rate
                    u16_be(out, 0); // output gain
                    out.push(0); // mapping family 0: mono or stereo
                });
            });
        },
    )
}

/// Every Opus packet can be decoded on its own.
const SYNC_FLAGS: u32 = 0x0200_0000;

/// A fragment of `packets`, the first decoded at `decode_time` ([`TIMESCALE`] units).
pub fn fragment(sequence: u32, decode_time: u64, packets: &[&[u8]]) -> Bytes {
    let samples: Vec<SampleInfo> = packets
        .iter()
        .map(|packet| SampleInfo {
            duration: PACKET_SAMPLES as u32,
            size: packet.len() as u32,
            flags: SYNC_FLAGS,
        })
        .collect();
    mp4::media_segment(sequence, decode_time, &samples, &packets.concat())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mp4_atom::{Decode, Ftyp, Mdat, Moof, Moov};

    #[test]
    fn the_init_segment_reads_back_as_a_live_stereo_opus_track() {
        let bytes = init_segment(312);
        let buf = &mut std::io::Cursor::new(&bytes[..]);
        Ftyp::decode(buf).expect("ftyp");
        let moov = Moov::decode(buf).expect("moov");
        assert_eq!(moov.mvhd.duration, 0, "live: no duration");
        let trak = &moov.trak[0];
        assert_eq!(trak.mdia.mdhd.timescale, 48_000);
        assert_eq!(trak.mdia.hdlr.handler, b"soun".into());
        let mp4_atom::Codec::Opus(opus) = &trak.mdia.minf.stbl.stsd.codecs[0] else {
            panic!("an Opus sample entry");
        };
        assert_eq!(opus.audio.channel_count, 2);
        assert_eq!(opus.dops.pre_skip, 312);
        assert_eq!(opus.dops.input_sample_rate, 48_000);
        assert_eq!(buf.position() as usize, bytes.len());
    }

    #[test]
    fn a_fragment_holds_its_packets_one_after_another() {
        let packets: [&[u8]; 3] = [b"abc", b"de", b"f"];
        let bytes = fragment(4, 48_000 * 7, &packets);
        let buf = &mut std::io::Cursor::new(&bytes[..]);
        let moof = Moof::decode(buf).expect("moof");
        let moof_size = buf.position() as i32;
        let mdat = Mdat::decode(buf).expect("mdat");
        assert_eq!(mdat.data, b"abcdef");
        let traf = &moof.traf[0];
        assert_eq!(
            traf.tfdt.as_ref().map(|tfdt| tfdt.base_media_decode_time),
            Some(48_000 * 7)
        );
        let trun = &traf.trun[0];
        assert_eq!(trun.data_offset, Some(moof_size + 8));
        let sizes: Vec<_> = trun.entries.iter().map(|entry| entry.size).collect();
        assert_eq!(sizes, vec![Some(3), Some(2), Some(1)]);
        assert!(trun.entries.iter().all(|entry| entry.duration == Some(960)));
    }
}
