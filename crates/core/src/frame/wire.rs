//! The bytes of one screen update, as `updates?after=N` sends them and the viewer page reads them.
//!
//! Little-endian throughout. A 12-byte header, the frame's size and the pointer when they are
//! needed, then one piece per changed rectangle:
//!
//! ```text
//!  0 u8  version (2)            1 u8  flags (bit 0: full, the canvas is redrawn at this size;
//!                                           bit 1: video, the screen shows as video on this frame;
//!                                           bit 2: the pointer follows; bit 3: the size follows)
//!  2 u16 number of pieces       4 u32 frame number, low      8 u32 frame number, high
//! size, when flag bit 3 is set (always with bit 0 or 1):
//!    u16 width, u16 height
//! pointer, when flag bit 2 is set:
//!    u32 pointer shape id (0: no pointer shown)
//!    i16 pointer x, i16 pointer y     (hotspot, in frame pixels)
//!    u16 hotspot x, u16 hotspot y     (in the shape's own pixels)
//!    u16 pointer scale, per mille (frame width / monitor width), u16 reserved (0)
//! piece: u16 x, u16 y, u16 width, u16 height, u8 kind, then
//!        kind 0 (solid): 3 bytes R, G, B;  kind 1 (PNG) or 2 (JPEG): u32 length, the image;
//!        kind 3 (video start): u32 length, then u8 codec length, the `codecs` string (ASCII)
//!          and the fragmented MP4 init segment;
//!        kind 4 (video picture): u32 length, one fragmented MP4 media segment (moof + mdat)
//!        kind 5 (few colours): u8 bits a pixel (1, 2 or 4), u8 colours (1 to 16), R, G, B for
//!          each colour, and each row's palette indices packed high bits first, each row
//!          starting on a byte (no length: the rectangle, the bits and the colours give it)
//! ```
//!
//! Without the pointer, the update leaves it as the frame before showed it: only an update
//! from exactly the frame before (`after` = frame number − 1) may leave it out, so a page always
//! knows the pointer of the frame it has. Without the size, the screen keeps the size of the
//! page's canvas (a new size is always a full update). A typed character costs 12 bytes of
//! header, where the first format repeated 32.
//!
//! Video pieces cover the whole frame and go only to pages that asked for video (`video=1`).
//!
//! Every byte is derived from the frame and the request alone, so the same request gets the same
//! bytes (an HTTP cache in front can serve many viewers from one answer).

use bytes::{BufMut, Bytes, BytesMut};

use crate::pixels::Rect;

pub const VERSION: u8 = 2;
/// The header without the size and the pointer.
pub const HEADER_LEN: usize = 12;
/// The size, when the update carries it.
pub const SIZE_LEN: usize = 4;
/// The pointer, when the update carries it.
pub const POINTER_LEN: usize = 16;
const FLAG_FULL: u8 = 1;
const FLAG_VIDEO: u8 = 2;
const FLAG_POINTER: u8 = 4;
const FLAG_SIZE: u8 = 8;

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
            } => 2 + palette.len() + packed.len(),
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
    /// Width and height; `None`: the size of the page's canvas (never with `full` or `video`).
    pub size: Option<(u16, u16)>,
    pub seq: u64,
    /// `None`: as the frame before showed it (see the module's notes).
    pub pointer: Option<PointerHeader>,
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
        + header.size.map_or(0, |_| SIZE_LEN)
        + header.pointer.map_or(0, |_| POINTER_LEN)
        + pieces
            .iter()
            .map(|piece| 9 + piece.body.wire_len())
            .sum::<usize>();
    let mut out = BytesMut::with_capacity(len);
    let flag = |on: bool, bit: u8| if on { bit } else { 0 };
    out.put_u8(VERSION);
    out.put_u8(
        flag(header.full, FLAG_FULL)
            | flag(header.video, FLAG_VIDEO)
            | flag(header.pointer.is_some(), FLAG_POINTER)
            | flag(header.size.is_some(), FLAG_SIZE),
    );
    out.put_u16_le(u16::try_from(pieces.len()).unwrap_or(u16::MAX));
    out.put_u32_le(header.seq as u32);
    out.put_u32_le((header.seq >> 32) as u32);
    if let Some((width, height)) = header.size {
        out.put_u16_le(width);
        out.put_u16_le(height);
    }
    if let Some(pointer) = header.pointer {
        out.put_u32_le(pointer.shape);
        out.put_i16_le(pointer.x);
        out.put_i16_le(pointer.y);
        out.put_u16_le(pointer.hot_x);
        out.put_u16_le(pointer.hot_y);
        out.put_u16_le(pointer.scale_per_mille);
        out.put_u16_le(0);
    }
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
    #[error("{0} bytes follow the last piece")]
    Trailing(usize),
    #[error("a whole-screen or video update does not say the screen's size")]
    SizeMissing,
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

/// A few-colour piece's body: `rest` is its palette and packed rows, as long as they must be.
fn indexed_body(bits: u8, colours: u8, rest: &[u8]) -> PieceBody {
    let palette_len = usize::from(colours) * 3;
    PieceBody::Indexed {
        bits,
        palette: Bytes::copy_from_slice(&rest[..palette_len]),
        packed: Bytes::copy_from_slice(&rest[palette_len..]),
    }
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
    let count = reader.u16()?;
    let seq = u64::from(reader.u32()?) | (u64::from(reader.u32()?) << 32);
    let size = if flags & FLAG_SIZE != 0 {
        Some((reader.u16()?, reader.u16()?))
    } else if flags & (FLAG_FULL | FLAG_VIDEO) != 0 {
        return Err(WireError::SizeMissing);
    } else {
        None
    };
    let pointer = if flags & FLAG_POINTER != 0 {
        let pointer = PointerHeader {
            shape: reader.u32()?,
            x: reader.u16()? as i16,
            y: reader.u16()? as i16,
            hot_x: reader.u16()?,
            hot_y: reader.u16()?,
            scale_per_mille: reader.u16()?,
        };
        reader.u16()?;
        Some(pointer)
    } else {
        None
    };
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
                let bits = reader.u8()?;
                let colours = reader.u8()?;
                if !matches!(bits, 1 | 2 | 4) || !(1..=16).contains(&colours) {
                    return Err(WireError::Indexed);
                }
                let row_bytes = (u64::from(rect.width) * u64::from(bits)).div_ceil(8);
                let len = usize::from(colours) * 3 + (row_bytes * u64::from(rect.height)) as usize;
                let rest = reader.take(len)?;
                indexed_body(bits, colours, rest)
            }
            other => return Err(WireError::Kind(other)),
        };
        pieces.push(Piece { rect, body });
    }
    if reader.at != bytes.len() {
        return Err(WireError::Trailing(bytes.len() - reader.at));
    }
    Ok(Update {
        header: UpdateHeader {
            full: flags & FLAG_FULL != 0,
            video: flags & FLAG_VIDEO != 0,
            size,
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
            size: Some((1920, 1080)),
            seq: (7 << 32) | 9,
            pointer: Some(PointerHeader {
                shape: 3,
                x: -4,
                y: 100,
                hot_x: 1,
                hot_y: 2,
                scale_per_mille: 1000,
            }),
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
        assert_eq!(
            bytes.len(),
            HEADER_LEN + SIZE_LEN + POINTER_LEN + 12 + 9 + 4 + 16
        );
        let update = parse(&bytes).expect("parses");
        assert_eq!(update.header, header);
        assert_eq!(update.pieces, vec![solid, png]);
    }

    #[test]
    fn an_update_that_leaves_size_and_pointer_as_they_were_has_no_bytes_for_them() {
        let header = UpdateHeader {
            full: false,
            video: false,
            size: None,
            seq: 5,
            pointer: None,
        };
        let solid = Piece {
            rect: Rect::new(8, 8, 6, 13),
            body: PieceBody::Solid([9, 9, 9]),
        };
        let bytes = write(&header, &[&solid]);
        assert_eq!(bytes.len(), HEADER_LEN + 12);
        assert_eq!(bytes[1] & (FLAG_POINTER | FLAG_SIZE), 0);
        let update = parse(&bytes).expect("parses");
        assert_eq!(update.header, header);
        assert_eq!(update.pieces, vec![solid]);
    }

    #[test]
    fn video_pieces_round_trip() {
        let header = UpdateHeader {
            full: false,
            video: true,
            size: Some((640, 480)),
            seq: 12,
            pointer: Some(PointerHeader::default()),
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
        assert_eq!(bytes[1], FLAG_VIDEO | FLAG_POINTER | FLAG_SIZE);
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
            size: None,
            seq: 2,
            pointer: None,
        };
        let bytes = write(&header, &[&piece]);
        // Bits and colours, two colours, a byte a row: nothing else.
        assert_eq!(bytes.len(), HEADER_LEN + 9 + 2 + 6 + 13);
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
        // A 6x13 piece of kind 5 with `bits`, `colours`, and `packed` bytes of rows.
        let update = |bits: u8, colours: u8, packed: usize| {
            let header = UpdateHeader {
                full: false,
                video: false,
                size: None,
                seq: 3,
                pointer: None,
            };
            let mut bytes = write(&header, &[]).to_vec();
            bytes[2] = 1; // one piece
            for side in [0u16, 0, 6, 13] {
                bytes.extend_from_slice(&side.to_le_bytes());
            }
            bytes.extend_from_slice(&[5, bits, colours]);
            bytes.extend(std::iter::repeat_n(7, usize::from(colours) * 3 + packed));
            parse(&bytes)
        };
        assert!(
            update(1, 2, 13).is_ok(),
            "6 pixels a row at 1 bit: a byte a row"
        );
        assert!(
            matches!(update(1, 2, 12), Err(WireError::Truncated(_))),
            "a row short"
        );
        assert!(update(4, 16, 39).is_ok());
        assert_eq!(update(3, 2, 13), Err(WireError::Indexed), "3 bits a pixel");
        assert_eq!(update(1, 0, 13), Err(WireError::Indexed), "no colours");
        assert_eq!(update(4, 17, 39), Err(WireError::Indexed), "17 colours");
        // More bytes than the piece needs are not part of it: the update ends with bytes left.
        assert!(update(1, 2, 14).is_err(), "a row too many");
    }

    #[test]
    fn a_codec_string_is_printable_ascii_only() {
        assert_eq!(codec_bytes("avc1.42c01f"), b"avc1.42c01f");
        assert_eq!(codec_bytes("avc1\n\u{1b}x"), b"avc1");
    }

    #[test]
    fn short_or_foreign_bytes_are_refused() {
        assert_eq!(parse(&[]), Err(WireError::Truncated(0)));
        assert_eq!(
            parse(&[1; 40]),
            Err(WireError::Version(1)),
            "the old header"
        );
        // Full (flag bit 0) without the size.
        assert_eq!(
            parse(&[VERSION, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]),
            Err(WireError::SizeMissing)
        );
        let mut bytes = write(
            &UpdateHeader {
                full: false,
                video: false,
                size: None,
                seq: 1,
                pointer: None,
            },
            &[],
        )
        .to_vec();
        bytes[2] = 1; // one piece
        assert_eq!(parse(&bytes), Err(WireError::Truncated(HEADER_LEN)));
    }
}
