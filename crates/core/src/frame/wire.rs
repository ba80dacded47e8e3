//! The bytes of one screen update, as `updates?after=N` sends them and the viewer page reads them.
//!
//! Little-endian throughout. A 32-byte header, then one piece per changed rectangle:
//!
//! ```text
//!  0 u8  version (1)            1 u8  flags (bit 0: full, the canvas is redrawn at this size;
//!                                           bit 1: video, the screen shows as video on this frame)
//!  2 u16 width                  4 u16 height             6 u16 number of pieces
//!  8 u32 frame number, low     12 u32 frame number, high
//! 16 u32 pointer shape id (0: no pointer shown)
//! 20 i16 pointer x             22 i16 pointer y         (hotspot, in frame pixels)
//! 24 u16 hotspot x             26 u16 hotspot y         (in the shape's own pixels)
//! 28 u16 pointer scale, per mille (frame width / monitor width)      30 u16 reserved (0)
//! piece: u16 x, u16 y, u16 width, u16 height, u8 kind, then
//!        kind 0 (solid): 3 bytes R, G, B;  kind 1 (PNG) or 2 (JPEG): u32 length, the image;
//!        kind 3 (video start): u32 length, then u8 codec length, the `codecs` string (ASCII)
//!          and the fragmented MP4 init segment;
//!        kind 4 (video picture): u32 length, one fragmented MP4 media segment (moof + mdat)
//!        kind 5 (few colours): u32 length, then u8 bits a pixel (1, 2 or 4), u8 colours (1 to
//!          16), R, G, B for each colour, and each row's palette indices packed high bits
//!          first, each row starting on a byte
//! ```
//!
//! Video pieces cover the whole frame and go only to pages that asked for video (`video=1`).
//!
//! Every byte is derived from the frame and the request alone, so the same request gets the same
//! bytes (an HTTP cache in front can serve many viewers from one answer).

use bytes::{BufMut, Bytes, BytesMut};

use crate::pixels::Rect;

pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 32;
const FLAG_FULL: u8 = 1;
const FLAG_VIDEO: u8 = 2;

/// How one rectangle is sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PieceBody {
    /// One colour, R, G, B: flat areas cost 12 bytes whatever their size.
    Solid([u8; 3]),
    Png(Bytes),
    Jpeg(Bytes),
    /// What a page's video needs first: its `codecs` string and the init segment.
    VideoStart {
        codec: String,
        init: Bytes,
    },
    /// One picture of video, a media segment to append.
    VideoPicture(Bytes),
    /// Few colours, drawn without a decoder (see [`crate::encode::Indexed`]).
    Indexed {
        bits: u8,
        palette: Bytes,
        packed: Bytes,
    },
}

impl From<crate::encode::Lossless> for PieceBody {
    fn from(lossless: crate::encode::Lossless) -> Self {
        match lossless {
            crate::encode::Lossless::Png(png) => PieceBody::Png(Bytes::from(png)),
            crate::encode::Lossless::Indexed(indexed) => PieceBody::Indexed {
                bits: indexed.bits,
                palette: Bytes::from(indexed.palette),
                packed: Bytes::from(indexed.packed),
            },
        }
    }
}

impl PieceBody {
    /// The piece's kind on the wire (0 solid, 1 PNG, 2 JPEG, 3 video start, 4 video picture,
    /// 5 few colours).
    pub fn kind(&self) -> u8 {
        match self {
            PieceBody::Solid(_) => 0,
            PieceBody::Png(_) => 1,
            PieceBody::Jpeg(_) => 2,
            PieceBody::VideoStart { .. } => 3,
            PieceBody::VideoPicture(_) => 4,
            PieceBody::Indexed { .. } => 5,
        }
    }

    fn wire_len(&self) -> usize {
        match self {
            PieceBody::Solid(_) => 3,
            PieceBody::Png(bytes) | PieceBody::Jpeg(bytes) | PieceBody::VideoPicture(bytes) => {
                4 + bytes.len()
            }
            PieceBody::VideoStart { codec, init } => 4 + 1 + codec_bytes(codec).len() + init.len(),
            PieceBody::Indexed {
                palette, packed, ..
            } => 4 + 2 + palette.len() + packed.len(),
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
    /// The screen shows as video on this frame (a page hides its video when this is off).
    pub video: bool,
}

/// A codec string as the wire carries it: at most 255 bytes of printable ASCII.
fn codec_bytes(codec: &str) -> &[u8] {
    let bytes = codec.as_bytes();
    let printable = bytes
        .iter()
        .position(|byte| !byte.is_ascii_graphic())
        .unwrap_or(bytes.len());
    &bytes[..printable.min(255)]
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
    out.put_u8(if header.full { FLAG_FULL } else { 0 } | if header.video { FLAG_VIDEO } else { 0 });
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
            PieceBody::Png(bytes) | PieceBody::Jpeg(bytes) | PieceBody::VideoPicture(bytes) => {
                out.put_u32_le(u32::try_from(bytes.len()).unwrap_or(u32::MAX));
                out.put_slice(bytes);
            }
            PieceBody::VideoStart { codec, init } => {
                let codec = codec_bytes(codec);
                let len = 1 + codec.len() + init.len();
                out.put_u32_le(u32::try_from(len).unwrap_or(u32::MAX));
                out.put_u8(codec.len() as u8);
                out.put_slice(codec);
                out.put_slice(init);
            }
            PieceBody::Indexed {
                bits,
                palette,
                packed,
            } => {
                let len = 2 + palette.len() + packed.len();
                out.put_u32_le(u32::try_from(len).unwrap_or(u32::MAX));
                out.put_u8(*bits);
                out.put_u8((palette.len() / 3) as u8);
                out.put_slice(palette);
                out.put_slice(packed);
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
    #[error("a video start's codec string is not printable ASCII")]
    Codec,
    #[error("a few-colour piece's sizes do not add up")]
    Indexed,
    #[error("a piece's image does not decode: {0}")]
    Image(String),
    #[error("a video piece is not pixels to paint")]
    Video,
}

impl Piece {
    /// Paints the piece's pixels on `canvas` at its place, as the page draws it (tests, tools).
    pub fn paint_on(&self, canvas: &mut crate::pixels::Picture) -> Result<(), WireError> {
        use crate::pixels::Picture;
        let (x, y, width, height) = (self.rect.x, self.rect.y, self.rect.width, self.rect.height);
        let part = match &self.body {
            PieceBody::Solid(rgb) => Picture::filled(width, height, *rgb),
            PieceBody::Png(bytes) | PieceBody::Jpeg(bytes) => Picture::from_rgba(
                image::load_from_memory(bytes)
                    .map_err(|error| WireError::Image(error.to_string()))?
                    .to_rgba8(),
            ),
            body @ PieceBody::Indexed { .. } => {
                let rgb = body.indexed_rgb(width, height).ok_or(WireError::Indexed)?;
                let image =
                    image::RgbImage::from_raw(width, height, rgb).ok_or(WireError::Indexed)?;
                Picture::from_rgba(image::DynamicImage::ImageRgb8(image).to_rgba8())
            }
            PieceBody::VideoStart { .. } | PieceBody::VideoPicture(_) => {
                return Err(WireError::Video);
            }
        };
        canvas.paste(&part, x, y);
        Ok(())
    }
}

/// A few-colour piece's body, checked against its rectangle.
fn indexed_body(body: &[u8], rect: Rect) -> Option<PieceBody> {
    let (&bits, rest) = body.split_first()?;
    let (&colours, rest) = rest.split_first()?;
    if !matches!(bits, 1 | 2 | 4) || !(1..=16).contains(&colours) {
        return None;
    }
    let palette_len = usize::from(colours) * 3;
    let row_bytes = (rect.width * u32::from(bits)).div_ceil(8) as usize;
    if rest.len() != palette_len + row_bytes * rect.height as usize {
        return None;
    }
    Some(PieceBody::Indexed {
        bits,
        palette: Bytes::copy_from_slice(&rest[..palette_len]),
        packed: Bytes::copy_from_slice(&rest[palette_len..]),
    })
}

impl PieceBody {
    /// Whether the piece is exact (a solid colour, a PNG, few colours), not JPEG or video.
    pub fn is_lossless(&self) -> bool {
        matches!(
            self,
            PieceBody::Solid(_) | PieceBody::Png(_) | PieceBody::Indexed { .. }
        )
    }

    /// The pixels of a few-colour piece of `width` x `height`, as packed R, G, B (tests, tools).
    pub fn indexed_rgb(&self, width: u32, height: u32) -> Option<Vec<u8>> {
        let PieceBody::Indexed {
            bits,
            palette,
            packed,
        } = self
        else {
            return None;
        };
        let bits = u32::from(*bits);
        let row_bytes = (width * bits).div_ceil(8) as usize;
        let mut rgb = Vec::with_capacity((width * height * 3) as usize);
        for y in 0..height as usize {
            for x in 0..width {
                let bit = x * bits;
                let byte = *packed.get(y * row_bytes + (bit / 8) as usize)?;
                let index = (byte >> (8 - bits - bit % 8)) & ((1 << bits) - 1);
                let at = usize::from(index) * 3;
                rgb.extend_from_slice(palette.get(at..at + 3)?);
            }
        }
        Some(rgb)
    }
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
            kind @ (1 | 2 | 4) => {
                let len = reader.u32()? as usize;
                let bytes = Bytes::copy_from_slice(reader.take(len)?);
                match kind {
                    1 => PieceBody::Png(bytes),
                    2 => PieceBody::Jpeg(bytes),
                    _ => PieceBody::VideoPicture(bytes),
                }
            }
            3 => {
                let len = reader.u32()? as usize;
                let body = reader.take(len)?;
                let (&codec_len, rest) = body.split_first().ok_or(WireError::Codec)?;
                let codec_len = usize::from(codec_len);
                if rest.len() < codec_len || !rest[..codec_len].iter().all(u8::is_ascii_graphic) {
                    return Err(WireError::Codec);
                }
                PieceBody::VideoStart {
                    codec: String::from_utf8_lossy(&rest[..codec_len]).into_owned(),
                    init: Bytes::copy_from_slice(&rest[codec_len..]),
                }
            }
            5 => {
                let len = reader.u32()? as usize;
                let body = reader.take(len)?;
                indexed_body(body, rect).ok_or(WireError::Indexed)?
            }
            other => return Err(WireError::Kind(other)),
        };
        pieces.push(Piece { rect, body });
    }
    Ok(Update {
        header: UpdateHeader {
            full: flags & FLAG_FULL != 0,
            video: flags & FLAG_VIDEO != 0,
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
            video: false,
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
    fn video_pieces_round_trip() {
        let header = UpdateHeader {
            full: false,
            video: true,
            width: 640,
            height: 480,
            seq: 12,
            pointer: PointerHeader::default(),
        };
        let start = Piece {
            rect: Rect::new(0, 0, 640, 480),
            body: PieceBody::VideoStart {
                codec: "avc1.42c01f".to_owned(),
                init: Bytes::from_static(b"ftyp moov"),
            },
        };
        let picture = Piece {
            rect: Rect::new(0, 0, 640, 480),
            body: PieceBody::VideoPicture(Bytes::from_static(b"moof mdat")),
        };
        let bytes = write(&header, &[&start, &picture]);
        assert_eq!(bytes[1], FLAG_VIDEO);
        let update = parse(&bytes).expect("parses");
        assert_eq!(update.header, header);
        assert_eq!(update.pieces, vec![start, picture]);
    }

    /// A typed character's cell in two colours, drawn through the encoder's choice.
    fn glyph() -> crate::pixels::Picture {
        let mut cell = crate::pixels::Picture::filled(6, 13, [255, 255, 255]);
        for (x, y) in [
            (1, 3),
            (2, 4),
            (3, 5),
            (4, 6),
            (1, 7),
            (4, 3),
            (2, 6),
            (3, 4),
        ] {
            cell.paste(&crate::pixels::Picture::filled(1, 1, [20, 20, 20]), x, y);
        }
        cell
    }

    #[test]
    fn a_typed_character_goes_as_few_colours_and_comes_back_exact() {
        let cell = glyph();
        let body =
            PieceBody::from(crate::encode::lossless_of(&cell, cell.bounds()).expect("encodes"));
        let png = crate::encode::png_of(&cell, cell.bounds()).expect("png");
        assert!(
            matches!(body, PieceBody::Indexed { bits: 1, .. }),
            "{body:?}"
        );
        assert!(
            body.wire_len() * 3 < 4 + png.len(),
            "{} bytes against a PNG's {}",
            body.wire_len(),
            png.len()
        );
        let piece = Piece {
            rect: Rect::new(30, 40, 6, 13),
            body,
        };
        let header = UpdateHeader {
            full: false,
            video: false,
            width: 64,
            height: 64,
            seq: 2,
            pointer: PointerHeader::default(),
        };
        let bytes = write(&header, &[&piece]);
        let update = parse(&bytes).expect("parses");
        assert_eq!(update.pieces, vec![piece.clone()]);
        let mut canvas = crate::pixels::Picture::filled(64, 64, [0, 0, 0]);
        update.pieces[0].paint_on(&mut canvas).expect("paints");
        assert_eq!(
            canvas.crop(Rect::new(30, 40, 6, 13)).to_rgba(),
            cell.to_rgba()
        );
    }

    #[test]
    fn many_colours_or_a_large_area_stay_png() {
        let mut gradient = crate::pixels::Picture::new(40, 40);
        for y in 0..40 {
            gradient.paste(
                &crate::pixels::Picture::filled(40, 1, [y as u8 * 6, 9, 9]),
                0,
                y,
            );
        }
        let body = PieceBody::from(
            crate::encode::lossless_of(&gradient, gradient.bounds()).expect("encodes"),
        );
        assert!(matches!(body, PieceBody::Png(_)), "40 colours");
        let stripes = crate::pixels::Picture::filled(512, 512, [1, 2, 3]);
        let body = PieceBody::from(
            crate::encode::lossless_of(&stripes, stripes.bounds()).expect("encodes"),
        );
        assert!(
            matches!(body, PieceBody::Png(_)),
            "deflate wins on a large flat area"
        );
    }

    #[test]
    fn few_colour_pieces_that_do_not_add_up_are_refused() {
        let piece = |bits: u8, colours: u8, packed: usize| {
            let mut body = vec![bits, colours];
            body.extend(std::iter::repeat_n(7, usize::from(colours) * 3 + packed));
            indexed_body(&body, Rect::new(0, 0, 6, 13))
        };
        assert!(
            piece(1, 2, 13).is_some(),
            "6 pixels a row at 1 bit: a byte a row"
        );
        assert!(piece(1, 2, 12).is_none(), "a row short");
        assert!(piece(4, 16, 39).is_some());
        assert!(piece(3, 2, 13).is_none(), "3 bits a pixel");
        assert!(piece(1, 0, 13).is_none(), "no colours");
        assert!(piece(4, 17, 39).is_none(), "17 colours");
        assert!(indexed_body(&[1], Rect::new(0, 0, 1, 1)).is_none());
    }

    #[test]
    fn a_codec_string_is_printable_ascii_only() {
        assert_eq!(codec_bytes("avc1.42c01f"), b"avc1.42c01f");
        assert_eq!(codec_bytes("avc1\n\u{1b}x"), b"avc1");
    }

    #[test]
    fn short_or_foreign_bytes_are_refused() {
        assert_eq!(parse(&[]), Err(WireError::Truncated(0)));
        assert_eq!(parse(&[2; 40]), Err(WireError::Version(2)));
        let mut bytes = write(
            &UpdateHeader {
                full: false,
                video: false,
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
