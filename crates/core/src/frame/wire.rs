//! The bytes of one screen update, as `updates?after=N` sends them and the viewer page reads them.
//!
//! Little-endian throughout. A 32-byte header, then one piece per changed rectangle:
//!
//! ```text
//!  0 u8  version (1)            1 u8  flags (bit 0: full, the canvas is redrawn at this size)
//!  2 u16 width                  4 u16 height             6 u16 number of pieces
//!  8 u32 frame number, low     12 u32 frame number, high
//! 16 u32 pointer shape id (0: no pointer shown)
//! 20 i16 pointer x             22 i16 pointer y         (hotspot, in frame pixels)
//! 24 u16 hotspot x             26 u16 hotspot y         (in the shape's own pixels)
//! 28 u16 pointer scale, per mille (frame width / monitor width)      30 u16 reserved (0)
//! piece: u16 x, u16 y, u16 width, u16 height, u8 kind, then
//!        kind 0 (solid): 3 bytes R, G, B;  kind 1 (PNG) or 2 (JPEG): u32 length, the image
//! ```
//!
//! Every byte is derived from the frame and the request alone, so the same request gets the same
//! bytes (an HTTP cache in front can serve many viewers from one answer).

use bytes::{BufMut, Bytes, BytesMut};

use crate::pixels::Rect;

pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 32;
const FLAG_FULL: u8 = 1;

/// How one rectangle is sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PieceBody {
    /// One colour, R, G, B: flat areas cost 12 bytes whatever their size.
    Solid([u8; 3]),
    Png(Bytes),
    Jpeg(Bytes),
}

impl PieceBody {
    fn kind(&self) -> u8 {
        match self {
            PieceBody::Solid(_) => 0,
            PieceBody::Png(_) => 1,
            PieceBody::Jpeg(_) => 2,
        }
    }

    fn wire_len(&self) -> usize {
        match self {
            PieceBody::Solid(_) => 3,
            PieceBody::Png(bytes) | PieceBody::Jpeg(bytes) => 4 + bytes.len(),
        }
    }
}

/// One changed rectangle and its pixels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Piece {
    pub rect: Rect,
    pub body: PieceBody,
}

/// The pointer as one update shows it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PointerHeader {
    /// 0: no pointer on this frame (hidden, off screen, or turned off by the presenter).
    pub shape: u32,
    pub x: i16,
    pub y: i16,
    pub hot_x: u16,
    pub hot_y: u16,
    pub scale_per_mille: u16,
}

/// Everything in an update but its pieces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpdateHeader {
    /// The pieces cover the whole screen: the page resizes its canvas and redraws.
    pub full: bool,
    pub width: u16,
    pub height: u16,
    pub seq: u64,
    pub pointer: PointerHeader,
}

/// Serialises an update.
pub fn write(header: &UpdateHeader, pieces: &[&Piece]) -> Bytes {
    let len = HEADER_LEN
        + pieces
            .iter()
            .map(|piece| 9 + piece.body.wire_len())
            .sum::<usize>();
    let mut out = BytesMut::with_capacity(len);
    out.put_u8(VERSION);
    out.put_u8(if header.full { FLAG_FULL } else { 0 });
    out.put_u16_le(header.width);
    out.put_u16_le(header.height);
    out.put_u16_le(u16::try_from(pieces.len()).unwrap_or(u16::MAX));
    out.put_u32_le(header.seq as u32);
    out.put_u32_le((header.seq >> 32) as u32);
    let pointer = header.pointer;
    out.put_u32_le(pointer.shape);
    out.put_i16_le(pointer.x);
    out.put_i16_le(pointer.y);
    out.put_u16_le(pointer.hot_x);
    out.put_u16_le(pointer.hot_y);
    out.put_u16_le(pointer.scale_per_mille);
    out.put_u16_le(0);
    for piece in pieces.iter().take(usize::from(u16::MAX)) {
        let rect = piece.rect;
        for side in [rect.x, rect.y, rect.width, rect.height] {
            out.put_u16_le(u16::try_from(side).unwrap_or(u16::MAX));
        }
        out.put_u8(piece.body.kind());
        match &piece.body {
            PieceBody::Solid(rgb) => out.put_slice(rgb),
            PieceBody::Png(bytes) | PieceBody::Jpeg(bytes) => {
                out.put_u32_le(u32::try_from(bytes.len()).unwrap_or(u32::MAX));
                out.put_slice(bytes);
            }
        }
    }
    out.freeze()
}

/// An update read back (tests, tools).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Update {
    pub header: UpdateHeader,
    pub pieces: Vec<Piece>,
}

/// Why bytes are not an update.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("the update ends early, at byte {0}")]
    Truncated(usize),
    #[error("update version {0} is not one this reader knows")]
    Version(u8),
    #[error("piece kind {0} is unknown")]
    Kind(u8),
}

/// Parses an update.
pub fn parse(bytes: &[u8]) -> Result<Update, WireError> {
    let mut reader = Reader { bytes, at: 0 };
    let version = reader.u8()?;
    if version != VERSION {
        return Err(WireError::Version(version));
    }
    let flags = reader.u8()?;
    let width = reader.u16()?;
    let height = reader.u16()?;
    let count = reader.u16()?;
    let seq = u64::from(reader.u32()?) | (u64::from(reader.u32()?) << 32);
    let pointer = PointerHeader {
        shape: reader.u32()?,
        x: reader.u16()? as i16,
        y: reader.u16()? as i16,
        hot_x: reader.u16()?,
        hot_y: reader.u16()?,
        scale_per_mille: reader.u16()?,
    };
    reader.u16()?;
    let mut pieces = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let rect = Rect::new(
            u32::from(reader.u16()?),
            u32::from(reader.u16()?),
            u32::from(reader.u16()?),
            u32::from(reader.u16()?),
        );
        let body = match reader.u8()? {
            0 => PieceBody::Solid([reader.u8()?, reader.u8()?, reader.u8()?]),
            kind @ (1 | 2) => {
                let len = reader.u32()? as usize;
                let image = Bytes::copy_from_slice(reader.take(len)?);
                if kind == 1 {
                    PieceBody::Png(image)
                } else {
                    PieceBody::Jpeg(image)
                }
            }
            other => return Err(WireError::Kind(other)),
        };
        pieces.push(Piece { rect, body });
    }
    Ok(Update {
        header: UpdateHeader {
            full: flags & FLAG_FULL != 0,
            width,
            height,
            seq,
            pointer,
        },
        pieces,
    })
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], WireError> {
        let end = self
            .at
            .checked_add(len)
            .filter(|end| *end <= self.bytes.len())
            .ok_or(WireError::Truncated(self.at))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, WireError> {
        let bytes = self.take(2)?;
        Ok(u16::from_le_bytes([bytes[0], bytes[1]]))
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        let bytes = self.take(4)?;
        Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_round_trip() {
        let header = UpdateHeader {
            full: true,
            width: 1920,
            height: 1080,
            seq: (7 << 32) | 9,
            pointer: PointerHeader {
                shape: 3,
                x: -4,
                y: 100,
                hot_x: 1,
                hot_y: 2,
                scale_per_mille: 1000,
            },
        };
        let solid = Piece {
            rect: Rect::new(0, 0, 64, 64),
            body: PieceBody::Solid([1, 2, 3]),
        };
        let png = Piece {
            rect: Rect::new(64, 0, 8, 16),
            body: PieceBody::Png(Bytes::from_static(b"not really a png")),
        };
        let bytes = write(&header, &[&solid, &png]);
        assert_eq!(bytes.len(), HEADER_LEN + 12 + 9 + 4 + 16);
        let update = parse(&bytes).expect("parses");
        assert_eq!(update.header, header);
        assert_eq!(update.pieces, vec![solid, png]);
    }

    #[test]
    fn short_or_foreign_bytes_are_refused() {
        assert_eq!(parse(&[]), Err(WireError::Truncated(0)));
        assert_eq!(parse(&[2; 40]), Err(WireError::Version(2)));
        let mut bytes = write(
            &UpdateHeader {
                full: false,
                width: 1,
                height: 1,
                seq: 1,
                pointer: PointerHeader::default(),
            },
            &[],
        )
        .to_vec();
        bytes[6] = 1;
        assert_eq!(parse(&bytes), Err(WireError::Truncated(HEADER_LEN)));
    }
}
