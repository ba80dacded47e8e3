//! The share's video on the push stream, in process on a synthetic screen: a page that asks for
//! video gets tiles while the screen is still, a valid fragmented MP4 stream while it moves (an
//! init segment and a keyframe first, then one picture per frame, decodable by OpenH264 to the
//! picture shown), and when the motion stops the tiles that changed, lossless, so that its canvas
//! equals the screen again.
#![cfg(target_os = "linux")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use mp4_atom::{Decode, Ftyp, Mdat, Moof, Moov};
use screenshare_core::capture::synthetic::SyntheticScreens;
use screenshare_core::frame::wire::{self, PieceBody, Update};
use screenshare_core::pixels::Picture;
use screenshare_core::server::STATUS_RECORD;
use screenshare_core::{Settings, Share, ShareOptions};
use tower::ServiceExt;

const WIDTH: u32 = 320;
const HEIGHT: u32 = 240;
const SQUARE: [u8; 3] = [40, 200, 60];

/// A photo-like picture (grain and gradients) shifted by `step`, with a green square at its
/// centre: what a clip looks like to the tiles, costly, so the share goes to video.
fn moving(step: u32) -> Picture {
    let mut bytes = Vec::with_capacity((WIDTH * HEIGHT * 4) as usize);
    let mut grain = 0x9e37_79b9_u32 ^ step;
    for y in 0..HEIGHT {
        for x in 0..WIDTH {
            grain ^= grain << 13;
            grain ^= grain >> 17;
            grain ^= grain << 5;
            let inside = (120..200).contains(&x) && (80..160).contains(&y);
            let [r, g, b] = if inside {
                SQUARE
            } else {
                let v = ((x + step * 9) * 3 + y * 2) as u8;
                [v, v.wrapping_add(60), 255 - v].map(|c| c.wrapping_add((grain % 16) as u8))
            };
            bytes.extend_from_slice(&[b, g, r, 0]);
        }
    }
    Picture::from_bgrx(WIDTH, HEIGHT, bytes).expect("a picture")
}

/// Records off a streamed body: each a 4-byte little-endian length and an update.
struct Records {
    body: Body,
    held: Vec<u8>,
}

impl Records {
    async fn next(&mut self, deadline: Instant) -> Option<Update> {
        loop {
            if self.held.len() >= 4 {
                let length =
                    u32::from_le_bytes([self.held[0], self.held[1], self.held[2], self.held[3]])
                        as usize;
                if self.held.len() >= 4 + length {
                    let record: Vec<u8> = self.held.drain(..4 + length).skip(4).collect();
                    // Heartbeats and status records.
                    if length == 0 || record[0] == STATUS_RECORD {
                        continue;
                    }
                    return Some(wire::parse(&record).expect("an update"));
                }
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            let frame = tokio::time::timeout(left, self.body.frame()).await.ok()??;
            if let Ok(data) = frame.expect("a body frame").into_data() {
                self.held.extend_from_slice(&data);
            }
        }
    }
}

/// Draws a tiles update on `canvas`, as the page does.
fn draw(canvas: &mut Picture, update: &Update) {
    if update.header.full {
        let (width, height) = update.header.size.expect("a full update says its size");
        *canvas = Picture::new(u32::from(width), u32::from(height));
    }
    for piece in &update.pieces {
        piece
            .paint_on(canvas)
            .unwrap_or_else(|error| panic!("a tiles update carried {piece:?}: {error}"));
    }
}

/// An AVCC sample (4-byte lengths) as Annex B (start codes), for OpenH264's decoder.
fn annex_b(avcc: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(avcc.len() + 16);
    let mut at = 0;
    while at + 4 <= avcc.len() {
        let length =
            u32::from_be_bytes([avcc[at], avcc[at + 1], avcc[at + 2], avcc[at + 3]]) as usize;
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(&avcc[at + 4..at + 4 + length]);
        at += 4 + length;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_video_page_gets_tiles_then_valid_video_then_an_exact_repaint() {
    let screens = SyntheticScreens::new(&[(WIDTH, HEIGHT)]);
    screens.paint(0, [90, 90, 90]);
    let share = Share::without_socket(
        ShareOptions {
            settings: Settings {
                fps: 30,
                ..Settings::default()
            },
            bind: "127.0.0.1:0".parse().expect("address"),
            open: true,
            ..ShareOptions::default()
        },
        Arc::new(screens.clone()),
    )
    .await
    .expect("share starts");
    let router = common::as_from_this_machine(share.router(), share.local_addr());
    let request = Request::builder()
        .uri("/stream?after=0&mode=adaptive&video=1")
        .body(Body::empty())
        .expect("request");
    let response = router.oneshot(request).await.expect("an answer");
    assert_eq!(response.status(), 200);
    let mut records = Records {
        body: response.into_body(),
        held: Vec::new(),
    };
    let patience = || Instant::now() + Duration::from_secs(20);

    // Still: the whole screen as tiles.
    let first = records.next(patience()).await.expect("the first update");
    assert!(first.header.full && !first.header.video);
    let mut canvas = Picture::new(1, 1);
    draw(&mut canvas, &first);

    // Moving: video comes, starting with the codec, the init segment and a keyframe.
    let painting = Arc::new(AtomicBool::new(true));
    let painter = {
        let (screens, painting) = (screens.clone(), painting.clone());
        std::thread::spawn(move || {
            let mut step = 0;
            while painting.load(Ordering::SeqCst) {
                screens.paint_picture(0, &moving(step));
                step += 1;
                std::thread::sleep(Duration::from_millis(33));
            }
        })
    };
    let deadline = patience();
    let start = loop {
        let update = records
            .next(deadline)
            .await
            .expect("video before the deadline");
        if update.header.video {
            break update;
        }
        draw(&mut canvas, &update);
    };
    let (codec, init) = match &start.pieces[0].body {
        PieceBody::VideoStart { codec, init } => (codec.clone(), init.clone()),
        other => panic!("video starts with its start, not {other:?}"),
    };
    assert!(codec.starts_with("avc1."), "{codec}");
    let cursor = &mut std::io::Cursor::new(&init[..]);
    Ftyp::decode(cursor).expect("ftyp");
    let moov = Moov::decode(cursor).expect("moov");
    let mp4_atom::Codec::Avc1(avc1) = &moov.trak[0].mdia.minf.stbl.stsd.codecs[0] else {
        panic!("an avc1 track");
    };
    assert_eq!(
        (avc1.visual.width, avc1.visual.height),
        (WIDTH as u16, HEIGHT as u16)
    );
    let mut decoder = openh264::decoder::Decoder::new().expect("a decoder");
    let mut parameter_sets = Vec::new();
    for set in avc1
        .avcc
        .sequence_parameter_sets
        .iter()
        .chain(&avc1.avcc.picture_parameter_sets)
    {
        parameter_sets.extend_from_slice(&[0, 0, 0, 1]);
        parameter_sets.extend_from_slice(set);
    }
    decoder.decode(&parameter_sets).expect("parameter sets");

    // Every picture parses as moof + mdat, numbered in order, the first a keyframe, and decodes.
    let mut pictures = 0;
    let mut last_sequence = None;
    let mut centre = None;
    let mut update = start;
    while pictures < 20 {
        assert!(update.header.video, "still in video");
        for piece in &update.pieces {
            let PieceBody::VideoPicture(segment) = &piece.body else {
                continue;
            };
            let cursor = &mut std::io::Cursor::new(&segment[..]);
            let moof = Moof::decode(cursor).expect("moof");
            let mdat = Mdat::decode(cursor).expect("mdat");
            let sequence = moof.mfhd.sequence_number;
            if let Some(last) = last_sequence {
                assert_eq!(sequence, last + 1, "pictures in order, none skipped");
            }
            last_sequence = Some(sequence);
            let flags = moof.traf[0].trun[0].entries[0].flags.expect("sample flags");
            if pictures == 0 {
                assert_eq!(flags & 0x0001_0000, 0, "the first picture is a keyframe");
            }
            if let Some(decoded) = decoder.decode(&annex_b(&mdat.data)).expect("decodes") {
                use openh264::formats::YUVSource;
                let (width, height) = decoded.dimensions();
                let mut rgb = vec![0; width * height * 3];
                decoded.write_rgb8(&mut rgb);
                let at = (120 * width + 160) * 3;
                centre = Some([rgb[at], rgb[at + 1], rgb[at + 2]]);
            }
            pictures += 1;
        }
        update = records.next(patience()).await.expect("more video");
    }
    let centre = centre.expect("pictures decoded");
    assert!(
        centre
            .iter()
            .zip(SQUARE)
            .all(|(got, want)| got.abs_diff(want) <= 30),
        "the square is green in the video: {centre:?}"
    );

    // Still again: within the calm second and a little, tiles that make the canvas exact.
    painting.store(false, Ordering::SeqCst);
    painter.join().expect("painter");
    let still = moving(999);
    screens.paint_picture(0, &still);
    let deadline = patience();
    loop {
        let update = records
            .next(deadline)
            .await
            .expect("tiles again before the deadline");
        if !update.header.video {
            for piece in &update.pieces {
                assert!(
                    !matches!(piece.body, PieceBody::Jpeg(_)),
                    "the repaint is lossless"
                );
            }
            draw(&mut canvas, &update);
            break;
        }
    }
    assert!(
        canvas.to_rgba() == still.to_rgba(),
        "the canvas equals the screen"
    );
    let status = share.status();
    assert_eq!(status.showing, "tiles");
    assert!(status.video_error.is_none());
}
