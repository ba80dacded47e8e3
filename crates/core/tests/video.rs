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

/// The init segment and one media segment per encoded picture of `steps`, the screen encoded at
/// `size` (shrunk when that is smaller), and the codec they need.
fn stream(size: (u32, u32), steps: std::ops::Range<u32>) -> (String, Vec<Vec<u8>>) {
    let mut encoder = H264Encoder::new(size.0, size.1, FPS).expect("an encoder");
    let (mut codec, mut segments, mut sequence) = (String::new(), Vec::new(), 1);
    for step in steps {
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

/// Half-way through, the engine shrinks the video (its CPU budget): the second half comes at
/// half the size, with its own init segment, into the same SourceBuffer, as the page does it.
#[tokio::test]
async fn chromium_plays_the_fragments_and_shows_the_picture() -> anyhow::Result<()> {
    let half = FRAMES / 2;
    let parts = [
        stream((WIDTH, HEIGHT), 0..half),
        stream((WIDTH / 2, HEIGHT / 2), half..FRAMES),
    ];
    let pictures: usize = parts.iter().map(|(_, segments)| segments.len() - 1).sum();
    assert!(pictures > FRAMES as usize / 2, "most pictures were encoded");
    let parts: Vec<serde_json::Value> = parts
        .iter()
        .map(|(codec, segments)| {
            let segments: Vec<String> = segments
                .iter()
                .map(|segment| base64::engine::general_purpose::STANDARD.encode(segment))
                .collect();
            serde_json::json!({ "type": format!("video/mp4; codecs=\"{codec}\""), "segments": segments })
        })
        .collect();
    let page = format!(
        r#"<!doctype html><video id="v" muted autoplay playsinline></video><canvas id="c" width="{WIDTH}" height="{HEIGHT}"></canvas>
<script>
const parts = {parts};
window.result = {{ supported: MediaSource.isTypeSupported(parts[0].type), error: null, appended: 0 }};
const video = document.getElementById('v');
const source = new MediaSource();
video.src = URL.createObjectURL(source);
video.onerror = () => {{ window.result.error = 'video: ' + (video.error && video.error.message); }};
source.addEventListener('sourceopen', () => {{
  const buffer = source.addSourceBuffer(parts[0].type);
  buffer.mode = 'sequence';
  let part = 0, at = 0;
  const next = () => {{
    if (at === parts[part].segments.length) {{
      if (part + 1 === parts.length) {{ source.endOfStream(); return; }}
      part++; at = 0;
      buffer.changeType(parts[part].type);
    }}
    const bytes = Uint8Array.from(atob(parts[part].segments[at]), (c) => c.charCodeAt(0));
    at++; window.result.appended++;
    buffer.appendBuffer(bytes);
  }};
  buffer.addEventListener('updateend', next);
  buffer.addEventListener('error', () => {{ window.result.error = 'append failed'; }});
  next();
}});
</script>"#,
        parts = serde_json::to_string(&parts)?,
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
                 width: v.videoWidth, error: window.result.error}",
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
        frames as usize >= pictures - 2,
        "{frames} frames presented of {pictures} sent: {played}"
    );
    assert_eq!(played["width"], WIDTH / 2, "the last pictures, shrunk");
    // The last picture (at half the size): the square at its last place, red; the screen
    // beside it, grey.
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
    let square = read(pixel((last_left + 30) / 2, 60)).await?;
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
