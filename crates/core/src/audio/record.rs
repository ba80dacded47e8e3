//! Sound on the push stream: records of their own between the updates.
//!
//! An update's first byte is its version (`frame::wire::VERSION`); a sound record's first byte
//! is its tag:
//!
//! ```text
//! 0xA1 sound start:    u8 codec length, the `codecs` string (ASCII), the MP4 init segment
//! 0xA2 sound fragment: one MP4 media segment (moof + mdat) of a few 20 ms Opus packets
//! ```
//!
//! (`0xA3` starts the stream's status records, `server::push`.)
//!
//! A page that gets a start (again) appends it before the fragments after it; fragments carry
//! their time on the share's clock, the one the video's pictures are stamped with, so a page
//! plays both in step.

use bytes::{BufMut, Bytes, BytesMut};

pub const START: u8 = 0xA1;
pub const FRAGMENT: u8 = 0xA2;

/// A sound start record.
pub fn start(codec: &str, init: &[u8]) -> Bytes {
    let codec = &codec.as_bytes()[..codec.len().min(255)];
    let mut out = BytesMut::with_capacity(2 + codec.len() + init.len());
    out.put_u8(START);
    out.put_u8(codec.len() as u8);
    out.put_slice(codec);
    out.put_slice(init);
    out.freeze()
}

/// A sound fragment record.
pub fn fragment(segment: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(1 + segment.len());
    out.put_u8(FRAGMENT);
    out.put_slice(segment);
    out.freeze()
}

/// A record read back (tests, tools).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SoundRecord {
    Start { codec: String, init: Bytes },
    Fragment(Bytes),
}

/// Reads a sound record; `None` for anything else (an update, or a start cut short).
pub fn parse(bytes: &[u8]) -> Option<SoundRecord> {
    match bytes.split_first()? {
        (&START, rest) => {
            let (&length, rest) = rest.split_first()?;
            let length = usize::from(length);
            let codec = std::str::from_utf8(rest.get(..length)?).ok()?;
            Some(SoundRecord::Start {
                codec: codec.to_owned(),
                init: Bytes::copy_from_slice(&rest[length..]),
            })
        }
        (&FRAGMENT, rest) => Some(SoundRecord::Fragment(Bytes::copy_from_slice(rest))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_updates_are_not_records() {
        assert_eq!(
            parse(&start("opus", b"init")),
            Some(SoundRecord::Start {
                codec: "opus".to_owned(),
                init: Bytes::from_static(b"init")
            })
        );
        assert_eq!(
            parse(&fragment(b"moof")),
            Some(SoundRecord::Fragment(Bytes::from_static(b"moof")))
        );
        assert_eq!(parse(&[1, 0, 0]), None, "an update");
        assert_eq!(parse(&[START, 9, b'o']), None, "cut short");
        assert_eq!(parse(&[]), None);
    }
}
