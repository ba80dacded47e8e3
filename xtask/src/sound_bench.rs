//! `cargo xtask bench --only sound`: what sound costs and how late it is, with a private PipeWire
//! whose default output plays something, the release binary capturing it, and the page in
//! Chromium.
//!
//! - Bytes and CPU: viewers asking for sound on a still screen, against the same viewers of a
//!   share with sound off (1, 10 and 100 viewers), while music-like sound plays.
//! - Latency: a tone that switches between two pitches every 700 ms; `pw-record` on the output's
//!   monitor says when each switch left the presenter's speakers, a Web Audio analyser on the
//!   page (plus the browser's own output latency) when it came out of the viewer's.
//! - In step with the video: the same while the screen is in full motion (the share in video),
//!   and a marker square that changes colour on the screen; the sound's lateness minus the
//!   picture's is how far apart lips and voice are.

use std::io::Read;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use screenshare_testkit::SoundSession;
use screenshare_testkit::sound::{music_wav, switching_wav};

use crate::bench::{Server, launch, measure, percentile};
use crate::peer::{WebDriver, browser_on};
use crate::viewers::Path;
use crate::workload::{Scene, Stage};

const LOW: f32 = 600.0;
const HIGH: f32 = 900.0;
const SWITCH_EVERY_MS: u32 = 700;
/// The engine's `audio::track::MANY_LISTENERS` (xtask builds before the engine's system
/// packages are installed, so it does not link the engine).
const MANY_LISTENERS: usize = 16;

/// What sound costs, per viewer count.
pub struct SoundRow {
    pub viewers: u32,
    /// Per viewer, on the wire, Mbit/s: with sound, and the same viewers of a share without.
    pub with_sound: f64,
    pub without: f64,
    /// The presenter's CPU, % of a core, with sound and without.
    pub cpu_with: f64,
    pub cpu_without: f64,
}

pub struct SoundBench {
    pub rows: Vec<SoundRow>,
    /// Per viewer, Mbit/s, while sound is on and nothing plays.
    pub quiet: f64,
    /// From the presenter's output to the page's, ms (p50, p95, switches timed).
    pub tiles_latency: (f64, f64, usize),
    /// The same while 100 more listen (longer fragments).
    pub many_latency: (f64, f64, usize),
    /// In video: the sound's lateness (p50), the picture's (p50), in ms.
    pub video_sound_ms: f64,
    pub video_picture_ms: f64,
}

pub fn sound() -> anyhow::Result<SoundBench> {
    let stage = Stage::start(Scene::Static)?;
    let session = SoundSession::start()?;
    let mut rows = Vec::new();
    let quiet = {
        let server = serve(&stage, &session, true)?;
        measure(server, Path::Sound, 1)?.megabits_per_viewer_per_second
    };
    let music = session.play(&music_wav(300))?;
    for viewers in [1, 10, 100] {
        let with = measure(serve(&stage, &session, true)?, Path::Sound, viewers)?;
        let without = measure(serve(&stage, &session, false)?, Path::Sound, viewers)?;
        rows.push(SoundRow {
            viewers,
            with_sound: with.megabits_per_viewer_per_second,
            without: without.megabits_per_viewer_per_second,
            cpu_with: with.cpu_percent,
            cpu_without: without.cpu_percent,
        });
    }
    drop(music);
    let tiles_latency = {
        let server = serve(&stage, &session, true)?;
        let (sound, _) = timed_sound(&session, &server, None, Duration::from_secs(20))?;
        (
            percentile(&sound, 0.5),
            percentile(&sound, 0.95),
            sound.len(),
        )
    };
    let many_latency = {
        let server = serve(&stage, &session, true)?;
        let end = Instant::now() + Duration::from_secs(45);
        let listeners = server.viewers(Path::Sound, 100, "listener", 30, Instant::now(), end)?;
        let (sound, _) = timed_sound(&session, &server, None, Duration::from_secs(20))?;
        // The listeners end on their own at `end`; the server outlives them, or each would
        // spend its remaining seconds reconnecting to nothing.
        for listener in listeners {
            let _ = listener.join();
        }
        drop(server);
        (
            percentile(&sound, 0.5),
            percentile(&sound, 0.95),
            sound.len(),
        )
    };
    drop(stage);
    let motion = Stage::start(Scene::Static)?;
    let server = serve(&motion, &session, true)?;
    let marker = Arc::new(AtomicU64::new(0x808080));
    let running = Arc::new(AtomicBool::new(true));
    let painter = {
        let (marker, running, display) =
            (marker.clone(), running.clone(), motion.display().to_owned());
        std::thread::spawn(move || crate::peer::paint_motion(&display, &marker, &running))
    };
    let in_video = timed_sound(&session, &server, Some(&marker), Duration::from_secs(20));
    running.store(false, Ordering::SeqCst);
    let painted = painter
        .join()
        .map_err(|_| anyhow::anyhow!("the painter panicked"))?;
    let (sound, picture) = match in_video? {
        (sound, Some(picture)) => (sound, picture),
        (_, None) => bail!("no picture timed"),
    };
    painted?;
    Ok(SoundBench {
        rows,
        quiet,
        tiles_latency,
        many_latency,
        video_sound_ms: percentile(&sound, 0.5),
        video_picture_ms: percentile(&picture, 0.5),
    })
}

/// The release binary sharing `stage`, in `session`'s PipeWire, with sound on or off.
fn serve(stage: &Stage, session: &SoundSession, sound: bool) -> anyhow::Result<Server> {
    let mut command = Command::new(crate::target_dir()?.join("release/screenshare"));
    command
        .env("DISPLAY", stage.display())
        .env_remove("WAYLAND_DISPLAY");
    session.apply(&mut command);
    let server = launch(command)?;
    if sound {
        server.patch_settings(r#"{"audio":true}"#)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while crate::bench::get_json(&server.status)?["audio"]["live"] != true {
            if Instant::now() > deadline {
                bail!("sound never went live");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(server)
}

/// Now, in ms since 1970 (the page's `Date.now()` is on the same clock).
fn unix_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64() * 1000.0)
}

/// Turns the page's sound on (a click, as a viewer would) and listens: every 5 ms an analyser
/// says which of the two pitches is louder, and each change is kept with its time plus the
/// browser's output latency. With `marker`, the colour of the video at the marker is watched
/// the same way.
const LISTEN: &str = r#"
const sound = document.getElementById('sound');
const context = window.__context = new AudioContext();
const analyser = context.createAnalyser();
analyser.fftSize = 1024;
analyser.smoothingTimeConstant = 0;
context.createMediaElementSource(sound).connect(analyser);
analyser.connect(context.destination);
const bins = new Float32Array(analyser.frequencyBinCount);
const bin = (hz) => Math.round(hz * analyser.fftSize / context.sampleRate);
const loudness = (hz) => Math.max(bins[bin(hz) - 1], bins[bin(hz)], bins[bin(hz) + 1]);
window.__heard = []; window.__seen = [];
let pitch = null, colour = null;
const probe = document.createElement('canvas'); probe.width = 1; probe.height = 1;
const g = probe.getContext('2d', { willReadFrequently: true });
setInterval(() => {
  analyser.getFloatFrequencyData(bins);
  const low = loudness(LOW), high = loudness(HIGH);
  window.__levels = [low, high];
  const louder = high > low + 12 ? true : low > high + 12 ? false : null;
  if (louder !== null && louder !== pitch) {
    if (pitch !== null) window.__heard.push([Date.now() + ((context.outputLatency || 0) + context.baseLatency) * 1000, louder]);
    pitch = louder;
  }
  const v = document.getElementById('motion');
  if (v && !v.hidden && v.videoWidth) {
    const s = v.videoWidth / document.getElementById('screen').width;
    g.drawImage(v, Math.floor(1016 * s), Math.floor(616 * s), 1, 1, 0, 0, 1, 1);
    const d = g.getImageData(0, 0, 1, 1).data;
    const red = d[0] > 180 && d[1] < 90 ? true : d[1] > 180 && d[0] < 90 ? false : null;
    if (red !== null && red !== colour) { if (colour !== null) window.__seen.push([Date.now(), red]); colour = red; }
  }
}, 5);
return context.state;
"#;

/// Plays the switching tone, turns the page's sound on, and times switches for `window`: how
/// late each reached the page's output (ms), and with `marker`, how late each change of the
/// marker's colour reached the page's video.
fn timed_sound(
    session: &SoundSession,
    server: &Server,
    marker: Option<&Arc<AtomicU64>>,
    window: Duration,
) -> anyhow::Result<(Vec<f64>, Option<Vec<f64>>)> {
    let mut recorder = session.record_output()?;
    let stdout = recorder.0.stdout.take().context("pw-record's output")?;
    let played: Arc<Mutex<Vec<(f64, bool)>>> = Arc::default();
    let listening = Arc::new(AtomicBool::new(true));
    let reference = {
        let (played, listening) = (played.clone(), listening.clone());
        std::thread::spawn(move || switches_played(stdout, &played, &listening))
    };
    let _tone = session.play(&switching_wav(LOW, HIGH, SWITCH_EVERY_MS, 120))?;
    let (driver, webdriver) = browser_on(&server.viewer, "sound")?;
    let measured = (|| -> anyhow::Result<(Vec<f64>, Option<Vec<f64>>)> {
        click_sound_on(&webdriver)?;
        webdriver.execute(
            &LISTEN
                .replace("LOW", &LOW.to_string())
                .replace("HIGH", &HIGH.to_string()),
        )?;
        if marker.is_some() {
            let deadline = Instant::now() + Duration::from_secs(20);
            while webdriver.execute("return document.body.dataset.picture")? != "video" {
                if Instant::now() > deadline {
                    bail!("the page never played the share's video");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let mut painted = Vec::new();
        let end = Instant::now() + window;
        let mut flip = 0u32;
        while Instant::now() < end {
            if let Some(marker) = marker {
                let red = flip.is_multiple_of(2);
                let colour: u32 = if red { 0xff2020 } else { 0x20ff20 };
                marker.store(u64::from(colour), Ordering::SeqCst);
                // The painter puts it on the screen within its 33 ms frame: its time is when
                // the frame after this store was painted, on average half a frame later.
                painted.push((unix_ms() + 16.5, red));
                flip += 1;
            }
            std::thread::sleep(Duration::from_millis(650));
        }
        let heard = timed_events(&webdriver, "__heard")?;
        let reference = played
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let sound = lateness(&reference, &heard);
        if sound.len() < 5 {
            let page = webdriver.execute(
                "const s = document.getElementById('sound'); const b = s.buffered; \
                 return { paused: s.paused, time: s.currentTime, ready: s.readyState, \
                 appended: s.dataset.appended, ranges: b.length, \
                 end: b.length ? b.end(b.length - 1) : null, \
                 context: window.__context ? window.__context.state : null, \
                 levels: window.__levels }",
            )?;
            bail!(
                "only {} sound switches were timed ({} played, {} heard); the page: {page}",
                sound.len(),
                reference.len(),
                heard.len()
            );
        }
        let picture = match marker {
            Some(_) => Some(lateness(&painted, &timed_events(&webdriver, "__seen")?)),
            None => None,
        };
        Ok((sound, picture))
    })();
    listening.store(false, Ordering::SeqCst);
    drop(recorder);
    let _ = reference.join();
    drop(webdriver);
    drop(driver);
    measured
}

/// Clicks the page's Sound button once the page offers it (an element click: the gesture a
/// browser wants before it plays sound).
fn click_sound_on(webdriver: &WebDriver) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while webdriver.execute("return document.getElementById('sound-controls').hidden")? != false {
        if Instant::now() > deadline {
            bail!("the page never offered sound");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let found = webdriver.call(
        "POST",
        "element",
        serde_json::json!({ "using": "css selector", "value": "#sound-toggle" }),
    )?;
    let id = found["value"]
        .as_object()
        .and_then(|element| element.values().next())
        .and_then(serde_json::Value::as_str)
        .with_context(|| format!("no Sound button: {found}"))?
        .to_owned();
    webdriver.call(
        "POST",
        &format!("element/{id}/click"),
        serde_json::json!({}),
    )?;
    Ok(())
}

/// The page's list of `[time, which]` events.
fn timed_events(webdriver: &WebDriver, name: &str) -> anyhow::Result<Vec<(f64, bool)>> {
    let value = webdriver.execute(&format!("return window.{name}"))?;
    Ok(value
        .as_array()
        .map(|events| {
            events
                .iter()
                .filter_map(|event| Some((event[0].as_f64()?, event[1].as_bool()?)))
                .collect()
        })
        .unwrap_or_default())
}

/// For each event seen late, how long after the last matching event at the source (within 2 s).
fn lateness(source: &[(f64, bool)], seen: &[(f64, bool)]) -> Vec<f64> {
    let mut late: Vec<f64> = seen
        .iter()
        .filter_map(|&(at, which)| {
            source
                .iter()
                .filter(|&&(from, was)| was == which && from <= at && at - from < 2000.0)
                .map(|&(from, _)| at - from)
                .reduce(f64::min)
        })
        .collect();
    late.sort_by(f64::total_cmp);
    late
}

/// Reads what the output played (mono float) and notes each switch of pitch with its time:
/// the time a piece arrived, less the time of the samples after the switch in it.
fn switches_played(
    mut stdout: std::process::ChildStdout,
    played: &Mutex<Vec<(f64, bool)>>,
    listening: &AtomicBool,
) {
    const BLOCK: usize = 480;
    let mut bytes = vec![0u8; 16384];
    let mut samples: Vec<f32> = Vec::new();
    let mut pitch: Option<bool> = None;
    while listening.load(Ordering::SeqCst) {
        let Ok(read @ 1..) = stdout.read(&mut bytes) else {
            break;
        };
        let arrived = unix_ms();
        samples.extend(
            bytes[..read]
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
        let whole = samples.len() / BLOCK * BLOCK;
        for (index, block) in samples[..whole].chunks_exact(BLOCK).enumerate() {
            let (low, high) = (goertzel(block, LOW), goertzel(block, HIGH));
            let now = if high > low * 16.0 {
                Some(true)
            } else if low > high * 16.0 {
                Some(false)
            } else {
                None
            };
            if let Some(now) = now
                && pitch != Some(now)
            {
                if pitch.is_some() {
                    let after = (samples.len() - index * BLOCK) as f64 / 48.0;
                    played
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push((arrived - after, now));
                }
                pitch = Some(now);
            }
        }
        samples.drain(..whole);
    }
}

/// The power of `frequency` in `block` (48 kHz).
fn goertzel(block: &[f32], frequency: f32) -> f32 {
    let coefficient = 2.0 * (std::f32::consts::TAU * frequency / 48_000.0).cos();
    let (mut before, mut last) = (0.0f32, 0.0f32);
    for &sample in block {
        let next = sample + coefficient * last - before;
        before = last;
        last = next;
    }
    last * last + before * before - coefficient * last * before
}

/// The report's section.
pub fn section(bench: &Result<SoundBench, String>) -> String {
    let bench = match bench {
        Ok(bench) => bench,
        Err(error) => return format!("\n## Sound\n\nNot measured: {error}\n"),
    };
    let mut out = String::from(
        "\n## Sound\n\nA private PipeWire whose default output plays music-like sound (a chord \
         over noise, as hard for Opus as music); viewers ask for the picture and the sound on the \
         push stream of a still screen, against the same viewers of a share with sound off. \
         Presenter CPU in % of one core over 8 s.\n\n\
         | viewers | Mbit/s per viewer, sound on | sound off | sound adds | CPU % sound on | sound off | sound adds |\n\
         |---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for row in &bench.rows {
        out.push_str(&format!(
            "| {} | {:.3} | {:.3} | {:.3} | {:.1} | {:.1} | {:.1} |\n",
            row.viewers,
            row.with_sound,
            row.without,
            row.with_sound - row.without,
            row.cpu_with,
            row.cpu_without,
            row.cpu_with - row.cpu_without
        ));
    }
    out.push_str(&format!(
        "\nSound on while nothing plays: {:.3} Mbit/s per viewer.\n\n\
         From the presenter's output (its monitor read by `pw-record`) to the page's (a Web \
         Audio analyser on the page's sound, plus the browser's own output latency), a tone \
         switching pitch every {SWITCH_EVERY_MS} ms, the share on tiles: p50 {:.0} ms, p95 \
         {:.0} ms over {} switches. With 100 more listeners (fragments of 100 ms instead of \
         60 above {} listeners): p50 {:.0} ms, p95 {:.0} ms over {} switches.\n\n\
         In video (the whole screen in motion): sound {:.0} ms late, picture {:.0} ms late \
         (p50 each; a marker square changing colour on the screen, timed on the page's video): \
         the sound comes {:.0} ms after the picture.\n",
        bench.quiet,
        bench.tiles_latency.0,
        bench.tiles_latency.1,
        bench.tiles_latency.2,
        MANY_LISTENERS,
        bench.many_latency.0,
        bench.many_latency.1,
        bench.many_latency.2,
        bench.video_sound_ms,
        bench.video_picture_ms,
        bench.video_sound_ms - bench.video_picture_ms,
    ));
    out
}
