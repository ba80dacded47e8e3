//! The video path against a real player: what the H.264 encoder makes, in the fragmented MP4 the
//! page will get, appended to a Media Source in headless Chromium, plays, and shows the picture.
#![cfg(target_os = "linux")]

use std::time::Duration;

use base64::Engine;
use screenshare_core::pixels::Picture;
use screenshare_core::video::H264Encoder;
use screenshare_core::video::fmp4::{self, TIMESCALE};
use screenshare_testkit::{Browser, eventually};

const WIDTH: u32 = 320;
const HEIGHT: u32 = 240;
const FPS: u32 = 30;
const FRAMES: u32 = 60;

/// A red square crossing a grey screen, `step` of the way.
fn scene(step: u32) -> Picture {
    let mut bytes = Picture::filled(WIDTH, HEIGHT, [100, 100, 100])
        .as_bytes()
        .to_vec();
    let left = 10 + step * 3;
    for row in 80..160 {
        for column in left..left + 60 {
            let at = (row * WIDTH as usize + column as usize) * 4;
            bytes[at..at + 3].copy_from_slice(&[30, 30, 220]);
        }
    }
    Picture::from_bgrx(WIDTH, HEIGHT, bytes).expect("a picture")
}

/// The init segment and one media segment per encoded picture, and the codec they need.
fn stream() -> (String, Vec<Vec<u8>>) {
    let mut encoder = H264Encoder::new(WIDTH, HEIGHT, FPS).expect("an encoder");
    let (mut codec, mut segments, mut sequence) = (String::new(), Vec::new(), 1);
    for step in 0..FRAMES {
        let at_ms = u64::from(step) * 1000 / u64::from(FPS);
        let Some(encoded) = encoder.encode(&scene(step), at_ms).expect("encoded") else {
            continue;
        };
        let sample = fmp4::sample_of(&encoded.annex_b);
        if let Some(sets) = &sample.parameter_sets
            && segments.is_empty()
        {
            codec = sets.codec();
            segments.push(fmp4::init_segment(sets, encoded.width, encoded.height).to_vec());
        }
        let duration = TIMESCALE / FPS;
        let decode_time = u64::from(step) * u64::from(duration);
        segments.push(
            fmp4::media_segment(
                sequence,
                decode_time,
                duration,
                encoded.keyframe,
                &sample.avcc,
            )
            .to_vec(),
        );
        sequence += 1;
    }
    (codec, segments)
}

#[tokio::test]
async fn chromium_plays_the_fragments_and_shows_the_picture() -> anyhow::Result<()> {
    let (codec, segments) = stream();
    assert!(
        segments.len() > FRAMES as usize / 2,
        "most pictures were encoded"
    );
    let encoded: Vec<String> = segments
        .iter()
        .map(|segment| base64::engine::general_purpose::STANDARD.encode(segment))
        .collect();
    let page = format!(
        r#"<!doctype html><video id="v" muted autoplay playsinline></video><canvas id="c" width="{WIDTH}" height="{HEIGHT}"></canvas>
<script>
const type = 'video/mp4; codecs="{codec}"';
window.result = {{ supported: MediaSource.isTypeSupported(type), error: null, appended: 0 }};
const segments = {segments};
const video = document.getElementById('v');
const source = new MediaSource();
video.src = URL.createObjectURL(source);
video.onerror = () => {{ window.result.error = 'video: ' + (video.error && video.error.message); }};
source.addEventListener('sourceopen', () => {{
  const buffer = source.addSourceBuffer(type);
  buffer.mode = 'sequence';
  const next = () => {{
    if (window.result.appended === segments.length) {{ source.endOfStream(); return; }}
    const bytes = Uint8Array.from(atob(segments[window.result.appended]), (c) => c.charCodeAt(0));
    window.result.appended++;
    buffer.appendBuffer(bytes);
  }};
  buffer.addEventListener('updateend', next);
  buffer.addEventListener('error', () => {{ window.result.error = 'append failed'; }});
  next();
}});
</script>"#,
        segments = serde_json::to_string(&encoded)?,
    );
    let browser = Browser::start().await?;
    let url = format!(
        "data:text/html;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(page)
    );
    browser.client().goto(&url).await?;
    let result = || async {
        browser
            .client()
            .execute("return window.result", vec![])
            .await
            .ok()
    };
    // Played to the end: every frame presented, the last one on screen.
    let played = eventually(Duration::from_secs(20), "the video to play to its end", || async {
        let state = browser
            .client()
            .execute(
                "const v = document.getElementById('v'); const q = v.getVideoPlaybackQuality(); \
                 return {ended: v.ended, frames: q.totalVideoFrames, dropped: q.droppedVideoFrames, \
                 error: window.result.error}",
                vec![],
            )
            .await
            .ok()?;
        (state["ended"] == true || !state["error"].is_null()).then_some(state)
    })
    .await;
    let played = match played {
        Ok(played) => played,
        Err(error) => anyhow::bail!("{error}; the page says {:?}", result().await),
    };
    assert!(played["error"].is_null(), "{played}");
    let frames = played["frames"].as_u64().unwrap_or(0);
    assert!(
        frames as usize >= segments.len() - 1 - 2,
        "{frames} frames presented of {} sent: {played}",
        segments.len() - 1
    );
    // The last picture: the square at its last place, red; the screen beside it, grey.
    let pixel = |x: u32, y: u32| {
        format!(
            "const c = document.getElementById('c').getContext('2d'); \
             c.drawImage(document.getElementById('v'), 0, 0); \
             return Array.from(c.getImageData({x}, {y}, 1, 1).data).slice(0, 3)"
        )
    };
    let last_left = 10 + (FRAMES - 1) * 3;
    let client = browser.client().clone();
    let read = |script: String| {
        let client = client.clone();
        async move {
            let value = client.execute(&script, vec![]).await?;
            let rgb: Vec<u8> = serde_json::from_value(value)?;
            anyhow::Ok(rgb)
        }
    };
    let square = read(pixel(last_left + 30, 120)).await?;
    let beside = read(pixel(5, 5)).await?;
    let near = |got: &[u8], want: [u8; 3]| got.iter().zip(want).all(|(g, w)| g.abs_diff(w) <= 24);
    assert!(
        near(&square, [220, 30, 30]),
        "the square is red: {square:?}"
    );
    assert!(
        near(&beside, [100, 100, 100]),
        "the screen is grey: {beside:?}"
    );
    browser.close().await
}
