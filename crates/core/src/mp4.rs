//! Fragmented MP4 for Media Source Extensions, whatever the track: an init segment (`ftyp` +
//! `moov`) describing one track, then media segments (`moof` + `mdat`) a page appends as they
//! come. The video (H.264) and the sound (Opus) differ only in their sample entry and handler.
//!
//! The init segment carries no duration (zero in `mvhd`, `tkhd` and `mdhd`, and no `mehd`):
//! Chromium then treats the stream as live and plays it with low delay.

use bytes::Bytes;

/// Writes a box of `kind` whose body `body` writes, its size filled in after.
pub(crate) fn put_box(out: &mut Vec<u8>, kind: &[u8; 4], body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(kind);
    body(out);
    let size = (out.len() - start) as u32;
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

/// A "full box": a version and 24 bits of flags before the body.
pub(crate) fn put_full_box(
    out: &mut Vec<u8>,
    kind: &[u8; 4],
    version: u8,
    flags: u32,
    body: impl FnOnce(&mut Vec<u8>),
) {
    put_box(out, kind, |out| {
        out.extend_from_slice(&(u32::from(version) << 24 | (flags & 0x00ff_ffff)).to_be_bytes());
        body(out);
    });
}

pub(crate) fn u16_be(out: &mut Vec<u8>, value: u16) {
    out.extend_from_slice(&value.to_be_bytes());
}

pub(crate) fn u32_be(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_be_bytes());
}

/// The identity transformation, as `mvhd` and `tkhd` spell it.
fn unity_matrix(out: &mut Vec<u8>) {
    for value in [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000] {
        u32_be(out, value);
    }
}

/// The one track's id.
const TRACK: u32 = 1;

/// What kind of track an init segment describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Handler {
    /// Pictures of this size.
    Video {
        width: u16,
        height: u16,
    },
    Sound,
}

/// The init segment of one live track counting time in `timescale` units a second, whose
/// sample entry `sample_entry` writes (into `stsd`).
pub(crate) fn init_segment(
    handler: Handler,
    timescale: u32,
    brands: &[&[u8; 4]],
    sample_entry: impl FnOnce(&mut Vec<u8>),
) -> Bytes {
    let mut out = Vec::with_capacity(1024);
    put_box(&mut out, b"ftyp", |out| {
        out.extend_from_slice(b"isom");
        u32_be(out, 0x200);
        for brand in brands {
            out.extend_from_slice(*brand);
        }
    });
    put_box(&mut out, b"moov", |out| {
        put_full_box(out, b"mvhd", 0, 0, |out| {
            // Created, modified, timescale, duration (none: live).
            for value in [0, 0, 1000, 0] {
                u32_be(out, value);
            }
            u32_be(out, 0x0001_0000); // rate 1.0
            u16_be(out, 0x0100); // volume 1.0
            out.extend_from_slice(&[0; 10]);
            unity_matrix(out);
            out.extend_from_slice(&[0; 24]);
            u32_be(out, TRACK + 1); // next track id
        });
        put_box(out, b"trak", |out| {
            // Enabled, in the movie.
            put_full_box(out, b"tkhd", 0, 0x3, |out| {
                for value in [0, 0, TRACK, 0, 0] {
                    u32_be(out, value);
                }
                out.extend_from_slice(&[0; 8]);
                // Layer, group, volume (full for sound), reserved.
                out.extend_from_slice(&[0; 4]);
                u16_be(out, if handler == Handler::Sound { 0x0100 } else { 0 });
                out.extend_from_slice(&[0; 2]);
                unity_matrix(out);
                let (width, height) = match handler {
                    Handler::Video { width, height } => (width, height),
                    Handler::Sound => (0, 0),
                };
                u32_be(out, u32::from(width) << 16);
                u32_be(out, u32::from(height) << 16);
            });
            put_box(out, b"mdia", |out| {
                put_full_box(out, b"mdhd", 0, 0, |out| {
                    for value in [0, 0, timescale, 0] {
                        u32_be(out, value);
                    }
                    u16_be(out, 0x55c4); // language "und"
                    u16_be(out, 0);
                });
                put_full_box(out, b"hdlr", 0, 0, |out| {
                    u32_be(out, 0);
                    out.extend_from_slice(match handler {
                        Handler::Video { .. } => b"vide",
                        Handler::Sound => b"soun",
                    });
                    out.extend_from_slice(&[0; 12]);
                    out.extend_from_slice(b"screenshare\0");
                });
                put_box(out, b"minf", |out| {
                    match handler {
                        Handler::Video { .. } => {
                            put_full_box(out, b"vmhd", 0, 1, |out| out.extend_from_slice(&[0; 8]));
                        }
                        // Balance in the middle, reserved.
                        Handler::Sound => {
                            put_full_box(out, b"smhd", 0, 0, |out| out.extend_from_slice(&[0; 4]));
                        }
                    }
                    put_box(out, b"dinf", |out| {
                        put_full_box(out, b"dref", 0, 0, |out| {
                            u32_be(out, 1);
                            // The data is in this file.
                            put_full_box(out, b"url ", 0, 1, |_| {});
                        });
                    });
                    put_box(out, b"stbl", |out| {
                        put_full_box(out, b"stsd", 0, 0, |out| {
                            u32_be(out, 1);
                            sample_entry(out);
                        });
                        // No samples here: they come in the fragments.
                        put_full_box(out, b"stts", 0, 0, |out| u32_be(out, 0));
                        put_full_box(out, b"stsc", 0, 0, |out| u32_be(out, 0));
                        put_full_box(out, b"stsz", 0, 0, |out| out.extend_from_slice(&[0; 8]));
                        put_full_box(out, b"stco", 0, 0, |out| u32_be(out, 0));
                    });
                });
            });
        });
        put_box(out, b"mvex", |out| {
            put_full_box(out, b"trex", 0, 0, |out| {
                // Track, sample description 1, no defaults.
                for value in [TRACK, 1, 0, 0, 0] {
                    u32_be(out, value);
                }
            });
        });
    });
    Bytes::from(out)
}

/// One sample of a media segment: how long it lasts (in the track's units), its size in the
/// `mdat`, its flags (sync or not).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SampleInfo {
    pub duration: u32,
    pub size: u32,
    pub flags: u32,
}

/// A media segment: fragment `sequence` (from 1), its first sample decoded at `decode_time`
/// (in the track's units), holding `samples` whose bytes follow one another in `data`.
pub(crate) fn media_segment(
    sequence: u32,
    decode_time: u64,
    samples: &[SampleInfo],
    data: &[u8],
) -> Bytes {
    let mut out = Vec::with_capacity(data.len() + 96 + 12 * samples.len());
    let mut offset_at = 0;
    put_box(&mut out, b"moof", |out| {
        put_full_box(out, b"mfhd", 0, 0, |out| u32_be(out, sequence));
        put_box(out, b"traf", |out| {
            // Offsets count from this moof.
            put_full_box(out, b"tfhd", 0, 0x02_0000, |out| u32_be(out, TRACK));
            put_full_box(out, b"tfdt", 1, 0, |out| {
                out.extend_from_slice(&decode_time.to_be_bytes());
            });
            // Data offset, and each sample's duration, size and flags.
            put_full_box(out, b"trun", 0, 0x0701, |out| {
                u32_be(out, samples.len() as u32);
                offset_at = out.len();
                u32_be(out, 0);
                for sample in samples {
                    u32_be(out, sample.duration);
                    u32_be(out, sample.size);
                    u32_be(out, sample.flags);
                }
            });
        });
    });
    // The samples start right after the moof and the mdat's 8-byte header.
    let data_offset = (out.len() + 8) as u32;
    out[offset_at..offset_at + 4].copy_from_slice(&data_offset.to_be_bytes());
    put_box(&mut out, b"mdat", |out| out.extend_from_slice(data));
    Bytes::from(out)
}
