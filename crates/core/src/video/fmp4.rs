//! The H.264 track in fragmented MP4 ([`crate::mp4`]): an init segment, then one media segment
//! per picture, so that a page appends each as it comes. Samples are stored as
//! AVCC (each NAL unit after its 4-byte length); the parameter sets travel in the `avcC` box, so
//! a change of size starts a new init segment.

use bytes::Bytes;

use crate::mp4::{self, Handler, SampleInfo, put_box, u16_be, u32_be};

/// Media time units per second: H.264's usual 90 kHz.
pub const TIMESCALE: u32 = 90_000;

/// The H.264 sequence and picture parameter sets a stream is decoded with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParameterSets {
    pub sps: Vec<u8>,
    pub pps: Vec<u8>,
}

impl ParameterSets {
    /// The `codecs` parameter a page gives `MediaSource.isTypeSupported` and `addSourceBuffer`:
    /// `avc1.` and the profile, constraints and level from the SPS.
    pub fn codec(&self) -> String {
        let byte = |at: usize| self.sps.get(at).copied().unwrap_or(0);
        format!("avc1.{:02x}{:02x}{:02x}", byte(1), byte(2), byte(3))
    }
}

/// An access unit taken apart: the parameter sets it carried (a keyframe's), and the rest as
/// AVCC sample data.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sample {
    pub parameter_sets: Option<ParameterSets>,
    pub avcc: Vec<u8>,
}

const NAL_SPS: u8 = 7;
const NAL_PPS: u8 = 8;
const NAL_ACCESS_UNIT_DELIMITER: u8 = 9;

/// The NAL units of an Annex B stream, without their start codes.
pub fn nal_units(annex_b: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut at = 0;
    while at + 3 <= annex_b.len() {
        if annex_b[at..at + 3] == [0, 0, 1] {
            starts.push(at + 3);
            at += 3;
        } else {
            at += 1;
        }
    }
    starts
        .iter()
        .enumerate()
        .map(|(index, &start)| {
            let end = starts
                .get(index + 1)
                .map_or(annex_b.len(), |&next| next - 3);
            // A four-byte start code leaves its leading zero at the end of the unit before.
            let mut unit = &annex_b[start..end];
            while let [rest @ .., 0] = unit {
                unit = rest;
            }
            unit
        })
        .filter(|unit| !unit.is_empty())
        .collect()
}

/// Splits an Annex B access unit into its parameter sets and AVCC sample data.
pub fn sample_of(annex_b: &[u8]) -> Sample {
    let (mut sps, mut pps, mut avcc) = (None, None, Vec::with_capacity(annex_b.len()));
    for unit in nal_units(annex_b) {
        match unit[0] & 0x1f {
            NAL_SPS => sps = Some(unit.to_vec()),
            NAL_PPS => pps = Some(unit.to_vec()),
            NAL_ACCESS_UNIT_DELIMITER => {}
            _ => {
                avcc.extend_from_slice(&(unit.len() as u32).to_be_bytes());
                avcc.extend_from_slice(unit);
            }
        }
    }
    let parameter_sets = match (sps, pps) {
        (Some(sps), Some(pps)) => Some(ParameterSets { sps, pps }),
        _ => None,
    };
    Sample {
        parameter_sets,
        avcc,
    }
}

/// The init segment of a `width` x `height` H.264 track decoded with `sets`.
pub fn init_segment(sets: &ParameterSets, width: u32, height: u32) -> Bytes {
    let (width, height) = (width.min(0xffff) as u16, height.min(0xffff) as u16);
    mp4::init_segment(
        Handler::Video { width, height },
        TIMESCALE,
        &[b"isom", b"iso6", b"avc1", b"mp41"],
        |out| avc1(out, sets, width, height),
    )
}

/// The `avc1` sample entry with its `avcC` configuration.
fn avc1(out: &mut Vec<u8>, sets: &ParameterSets, width: u16, height: u16) {
    put_box(out, b"avc1", |out| {
        out.extend_from_slice(&[0; 6]);
        u16_be(out, 1); // data reference index
        out.extend_from_slice(&[0; 16]);
        u16_be(out, width);
        u16_be(out, height);
        u32_be(out, 0x0048_0000); // 72 dpi
        u32_be(out, 0x0048_0000);
        u32_be(out, 0);
        u16_be(out, 1); // one frame per sample
        out.extend_from_slice(&[0; 32]); // no compressor name
        u16_be(out, 0x0018); // 24-bit colour
        out.extend_from_slice(&[0xff, 0xff]);
        put_box(out, b"avcC", |out| {
            let byte = |at: usize| sets.sps.get(at).copied().unwrap_or(0);
            out.extend_from_slice(&[1, byte(1), byte(2), byte(3)]);
            out.push(0xfc | 3); // lengths of 4 bytes
            out.push(0xe0 | 1); // one SPS
            u16_be(out, sets.sps.len() as u16);
            out.extend_from_slice(&sets.sps);
            out.push(1); // one PPS
            u16_be(out, sets.pps.len() as u16);
            out.extend_from_slice(&sets.pps);
        });
    });
}

/// Sample flags: a keyframe depends on no other picture; any other is not a sync sample.
const KEYFRAME_FLAGS: u32 = 0x0200_0000;
const DELTA_FLAGS: u32 = 0x0101_0000;

/// One picture's media segment: fragment `sequence` (from 1), decoded at `decode_time` and lasting
/// `duration` (both in [`TIMESCALE`] units), holding `avcc`.
pub fn media_segment(
    sequence: u32,
    decode_time: u64,
    duration: u32,
    keyframe: bool,
    avcc: &[u8],
) -> Bytes {
    let sample = SampleInfo {
        duration,
        size: avcc.len() as u32,
        flags: if keyframe {
            KEYFRAME_FLAGS
        } else {
            DELTA_FLAGS
        },
    };
    mp4::media_segment(sequence, decode_time, &[sample], avcc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mp4_atom::{Decode, Ftyp, Mdat, Moof, Moov};

    fn sets() -> ParameterSets {
        ParameterSets {
            sps: vec![0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, 0x40],
            pps: vec![0x68, 0xce, 0x3c, 0x80],
        }
    }

    #[test]
    fn annex_b_comes_apart_into_parameter_sets_and_length_prefixed_units() {
        let annex_b = [
            &[0, 0, 0, 1][..],
            &sets().sps,
            &[0, 0, 1],
            &sets().pps,
            &[0, 0, 0, 1, 0x09, 0xf0],
            &[0, 0, 0, 1, 0x65, 0x88, 0x84, 0x80],
        ]
        .concat();
        let sample = sample_of(&annex_b);
        assert_eq!(sample.parameter_sets, Some(sets()));
        assert_eq!(sample.avcc, vec![0, 0, 0, 4, 0x65, 0x88, 0x84, 0x80]);
        assert_eq!(sets().codec(), "avc1.42c01f");
        assert!(sample_of(&[0, 0, 1]).avcc.is_empty());
        assert!(nal_units(&[]).is_empty());
    }

    #[test]
    fn the_init_segment_reads_back_as_a_live_h264_track() {
        let bytes = init_segment(&sets(), 1280, 720);
        let buf = &mut std::io::Cursor::new(&bytes[..]);
        let ftyp = Ftyp::decode(buf).expect("ftyp");
        assert_eq!(ftyp.major_brand, b"isom".into());
        let moov = Moov::decode(buf).expect("moov");
        assert_eq!(moov.mvhd.duration, 0, "live: no duration");
        assert!(moov.mvex.as_ref().is_some_and(|mvex| mvex.mehd.is_none()));
        let trak = &moov.trak[0];
        assert_eq!((trak.tkhd.track_id, trak.tkhd.duration), (1, 0));
        assert_eq!(trak.mdia.mdhd.timescale, TIMESCALE);
        assert_eq!(trak.mdia.mdhd.duration, 0);
        let mp4_atom::Codec::Avc1(avc1) = &trak.mdia.minf.stbl.stsd.codecs[0] else {
            panic!("an avc1 sample entry");
        };
        assert_eq!((avc1.visual.width, avc1.visual.height), (1280, 720));
        assert_eq!(avc1.avcc.length_size, 4);
        assert_eq!(avc1.avcc.sequence_parameter_sets, vec![sets().sps]);
        assert_eq!(avc1.avcc.picture_parameter_sets, vec![sets().pps]);
        assert_eq!(
            buf.position() as usize,
            bytes.len(),
            "nothing after the moov"
        );
    }

    #[test]
    fn a_media_segment_points_at_its_one_sample() {
        let avcc = [0, 0, 0, 3, 0x41, 0x9a, 0x02];
        let bytes = media_segment(7, 90_000 * 5, 3000, false, &avcc);
        let buf = &mut std::io::Cursor::new(&bytes[..]);
        let moof = Moof::decode(buf).expect("moof");
        let moof_size = buf.position() as i32;
        let mdat = Mdat::decode(buf).expect("mdat");
        assert_eq!(mdat.data, avcc);
        assert_eq!(moof.mfhd.sequence_number, 7);
        let traf = &moof.traf[0];
        assert_eq!(traf.tfhd.track_id, 1);
        assert_eq!(
            traf.tfdt.as_ref().map(|tfdt| tfdt.base_media_decode_time),
            Some(450_000)
        );
        let trun = &traf.trun[0];
        assert_eq!(
            trun.data_offset,
            Some(moof_size + 8),
            "the sample is the mdat's data"
        );
        assert_eq!(trun.entries.len(), 1);
        let entry = &trun.entries[0];
        assert_eq!(entry.duration, Some(3000));
        assert_eq!(entry.size, Some(avcc.len() as u32));
        assert_eq!(entry.flags, Some(DELTA_FLAGS));
        let key = media_segment(8, 0, 3000, true, &avcc);
        let moof = Moof::decode(&mut std::io::Cursor::new(&key[..])).expect("moof");
        assert_eq!(moof.traf[0].trun[0].entries[0].flags, Some(KEYFRAME_FLAGS));
    }
}
