//! Sound with real parts: a private PipeWire whose default output is a null sink, a tone played
//! into it with `pw-play`, the real binary capturing its monitor, and the page in Chromium
//! analysing what it plays with Web Audio.

use std::time::{Duration, Instant};

use fantoccini::Locator;
use screenshare_core::audio::record::{self, SoundRecord};
use screenshare_core::frame::wire;
use screenshare_testkit::pushed::PushedStream;
use screenshare_testkit::{Browser, Served, SoundSession, Xvfb, eventually};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_screenshare");
const PATIENCE: Duration = Duration::from_secs(20);

struct Setup {
    // Dropped in this order: the share, then the screen and the sound session.
    served: Served,
    xvfb: Xvfb,
    sound: SoundSession,
}

fn share(args: &[&str]) -> Setup {
    let sound = SoundSession::start().expect("a private PipeWire (cargo xtask test installs it)");
    let xvfb = Xvfb::start().expect("Xvfb");
    xvfb.paint("#204060").expect("paint");
    let mut command = xvfb.command(BIN);
    sound.apply(&mut command);
    let served = Served::spawn(command, args).expect("serve");
    Setup {
        served,
        xvfb,
        sound,
    }
}

fn control(served: &Served, what: &str) -> String {
    served.control_url.replace("/settings", &format!("/{what}"))
}

async fn status(served: &Served) -> Value {
    reqwest::get(control(served, "status"))
        .await
        .expect("status")
        .json()
        .await
        .expect("JSON")
}

async fn patch(served: &Served, body: Value) {
    let response = reqwest::Client::new()
        .patch(&served.control_url)
        .json(&body)
        .send()
        .await
        .expect("patch");
    assert_eq!(response.status(), 200, "{body}");
}

/// Waits until the presenter's status says sound is `live` (or not).
async fn sound_live(served: &Served, live: bool) -> Value {
    eventually(PATIENCE, &format!("sound live: {live}"), || async {
        let status = status(served).await;
        (status["audio"]["live"] == live).then_some(status)
    })
    .await
    .unwrap_or_else(|error| panic!("{error}; stderr:\n{}", served.stderr()))
}

/// The sound records (and how many updates) a stream asking with `query` gets within `window`,
/// or until it has `enough` fragments.
fn sound_on_stream(
    served: &Served,
    query: &str,
    window: Duration,
    enough: usize,
) -> (Vec<SoundRecord>, usize) {
    let address = served.address().expect("address").to_string();
    let url = served.viewer(&format!("stream?after=0&{query}")).replacen(
        &format!("http://{address}"),
        "",
        1,
    );
    let mut stream = PushedStream::open(&address, &url, "").expect("stream");
    let deadline = Instant::now() + window;
    let (mut sound, mut updates) = (Vec::new(), 0);
    while let Some(bytes) = stream.next_record(deadline).expect("records") {
        match record::parse(&bytes) {
            Some(record) => sound.push(record),
            None if wire::parse(&bytes).is_ok() => updates += 1,
            // Status records.
            None => {}
        }
        let fragments = sound
            .iter()
            .filter(|record| matches!(record, SoundRecord::Fragment(_)))
            .count();
        if fragments >= enough {
            break;
        }
    }
    (sound, updates)
}

#[tokio::test(flavor = "multi_thread")]
async fn sound_goes_only_to_pages_that_ask_and_only_while_the_presenter_has_it_on() {
    let setup = share(&[]);
    let served = &setup.served;
    let _tone = setup.sound.play_tone(440.0).expect("tone");
    let off = status(served).await;
    assert_eq!(off["audio"]["on"], false, "sound is off by default: {off}");

    // Off: a page asking for sound gets the picture and no sound at all.
    let (sound, updates) = sound_on_stream(served, "audio=1", Duration::from_secs(2), 1);
    assert!(updates >= 1, "the picture came");
    assert!(sound.is_empty(), "no sound while it is off: {sound:?}");

    patch(served, json!({ "audio": true })).await;
    let live = sound_live(served, true).await;
    assert_eq!(live["audio"]["on"], true);
    let (sound, _) = sound_on_stream(served, "audio=1", PATIENCE, 10);
    let Some(SoundRecord::Start { codec, init }) = sound.first() else {
        panic!("the stream starts with the sound's start: {sound:?}");
    };
    assert_eq!(codec, "opus");
    assert_eq!(&init[4..8], b"ftyp");
    let fragments: Vec<_> = sound
        .iter()
        .filter_map(|record| match record {
            SoundRecord::Fragment(bytes) => Some(bytes),
            SoundRecord::Start { .. } => None,
        })
        .collect();
    assert!(fragments.len() >= 10, "{} fragments", fragments.len());
    assert!(fragments.iter().all(|fragment| &fragment[4..8] == b"moof"));
    // The tone plays at -9 dBFS: the meter says so.
    let level = status(served).await["audio"]["level_db"]
        .as_f64()
        .unwrap_or(-90.0);
    assert!((-14.0..=-5.0).contains(&level), "level {level} dBFS");
    // A page that did not ask (muted) gets none, while another gets it.
    let (sound, updates) = sound_on_stream(served, "audio=0", Duration::from_secs(1), 1);
    assert!(
        sound.is_empty() && updates >= 1,
        "a muted page gets no sound"
    );

    // Pause pauses sound too; off is off.
    patch(served, json!({ "paused": true })).await;
    sound_live(served, false).await;
    patch(served, json!({ "paused": false })).await;
    sound_live(served, true).await;
    patch(served, json!({ "audio": false })).await;
    let off = sound_live(served, false).await;
    assert_eq!(off["audio"]["on"], false);
    let (sound, _) = sound_on_stream(served, "audio=1", Duration::from_secs(1), 1);
    assert!(sound.is_empty(), "no sound once it is off again: {sound:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_output_is_said_in_words_and_the_picture_goes_on() {
    let setup = share(&["--audio"]);
    let served = &setup.served;
    sound_live(served, true).await;
    setup.sound.remove_sink().expect("remove the sink");
    let lost = sound_live(served, false).await;
    let error = lost["audio"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("went away"), "said in words: {lost}");
    // The picture goes on: a new colour reaches screen.png.
    setup.xvfb.paint("#c03010").expect("paint");
    eventually(PATIENCE, "the new colour in screen.png", || async {
        let bytes = reqwest::get(served.viewer("screen.png"))
            .await
            .ok()?
            .bytes()
            .await
            .ok()?;
        let picture = image::load_from_memory(&bytes).ok()?.to_rgb8();
        (picture.get_pixel(10, 10).0 == [0xc0, 0x30, 0x10]).then_some(())
    })
    .await
    .expect("the picture goes on without sound");
    assert!(served.stderr().contains("sound output went away"));
}

/// Installs a Web Audio analyser on the page's sound, and a function that says the loudest
/// frequency it hears (Hz) and how loud (dB), or null.
const ANALYSE: &str = r#"
const sound = document.getElementById('sound');
const context = new AudioContext();
const analyser = context.createAnalyser();
analyser.fftSize = 2048;
context.createMediaElementSource(sound).connect(analyser);
analyser.connect(context.destination);
window.loudest = () => {
  const bins = new Float32Array(analyser.frequencyBinCount);
  analyser.getFloatFrequencyData(bins);
  let best = 1;
  for (let i = 2; i < bins.length; i++) if (bins[i] > bins[best]) best = i;
  return [best * context.sampleRate / analyser.fftSize, bins[best], context.state];
};
return context.state;
"#;

/// Waits until the page hears a tone of about `frequency` Hz; how long that took.
async fn hears(browser: &Browser, frequency: f64) -> Duration {
    let start = Instant::now();
    let heard = eventually(
        PATIENCE,
        &format!("the page to play {frequency} Hz"),
        || async {
            let answer = browser
                .client()
                .execute("return window.loudest()", vec![])
                .await
                .ok()?;
            let (hz, db) = (answer[0].as_f64()?, answer[1].as_f64()?);
            // Bins are 23 Hz wide.
            ((hz - frequency).abs() <= 30.0 && db > -60.0).then_some(())
        },
    )
    .await;
    if let Err(error) = heard {
        let last = browser
            .client()
            .execute(
                "return [window.loudest(), document.getElementById('sound').dataset.appended, \
                 document.getElementById('sound').currentTime]",
                vec![],
            )
            .await;
        panic!("{error}; the page hears {last:?}");
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_plays_the_desktops_sound_once_the_viewer_turns_it_on() {
    let setup = share(&["--audio"]);
    let served = &setup.served;
    let mut tone = setup.sound.play_tone(440.0).expect("tone");
    let browser = Browser::start().await.expect("chromium");
    browser
        .client()
        .goto(served.viewer_url())
        .await
        .expect("open the page");
    // The page starts muted, and offers sound once the presenter's status says it is on.
    let toggle = eventually(PATIENCE, "the Sound button", || async {
        let toggle = browser
            .client()
            .find(Locator::Id("sound-toggle"))
            .await
            .ok()?;
        toggle.is_displayed().await.ok()?.then_some(toggle)
    })
    .await
    .expect("a Sound button");
    assert_eq!(
        toggle.attr("aria-pressed").await.expect("attr").as_deref(),
        Some("false"),
        "muted at first"
    );
    let state = browser
        .client()
        .execute(ANALYSE, vec![])
        .await
        .expect("an analyser");
    toggle.click().await.expect("turn sound on");
    assert_eq!(
        toggle.attr("aria-pressed").await.expect("attr").as_deref(),
        Some("true")
    );
    let first = hears(&browser, 440.0).await;
    // Another tone: the page follows it.
    let switched = Instant::now();
    drop(std::mem::replace(
        &mut tone,
        setup.sound.play_tone(880.0).expect("second tone"),
    ));
    hears(&browser, 880.0).await;
    eprintln!(
        "the page heard the first tone {first:?} after the click (analyser {state}), the \
         second {:?} after the switch",
        switched.elapsed()
    );
    // Sound off again: the page stops asking for it.
    toggle.click().await.expect("turn sound off");
    eventually(PATIENCE, "the page to let go of the sound", || async {
        let src = browser
            .client()
            .execute(
                "const s = document.getElementById('sound'); return !s.src && !s.srcObject",
                vec![],
            )
            .await
            .ok()?;
        (src == json!(true)).then_some(())
    })
    .await
    .expect("sound off");
    browser.close().await.expect("close");
}
