//! A private PipeWire per test, for sound: a session bus, PipeWire and WirePlumber (without a
//! session bus WirePlumber links nothing) in an `XDG_RUNTIME_DIR` of their own, with one null
//! sink as the default output. A tone played into it ([`SoundSession::play_tone`], `pw-play`)
//! is what the share under test captures from the sink's monitor.
//!
//! As with [`crate::GnomeSession`], everything runs in one process group that ends when the
//! fixture drops or the test process dies.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::Running;
use crate::session::ProcessGroup;

const START_TIMEOUT: Duration = Duration::from_secs(30);
/// The null sink's node name: the default output of the session.
pub const SINK: &str = "screenshare-test-sink";

/// Variables that would lead a child to another PipeWire or bus.
const FOREIGN: [&str; 4] = [
    "PIPEWIRE_REMOTE",
    "PIPEWIRE_RUNTIME_DIR",
    "PULSE_SERVER",
    "DBUS_STARTER_ADDRESS",
];

/// A private PipeWire with a null sink as its default output, stopped on drop.
#[derive(Debug)]
pub struct SoundSession {
    processes: ProcessGroup,
    counter: AtomicU32,
}

impl SoundSession {
    /// Starts the session and returns once the null sink is the default output.
    pub fn start() -> anyhow::Result<Self> {
        let processes = ProcessGroup::start(
            "sound",
            &["home/config", "home/state", "tones"],
            START_TIMEOUT,
        )?;
        let session = Self {
            processes,
            counter: AtomicU32::new(0),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        session
            .processes
            .start_bus(session.command("dbus-daemon"), deadline)?;
        session.launch("pipewire")?;
        let pipewire = session.processes.runtime.join("pipewire-0");
        session
            .processes
            .wait_until(deadline, "PipeWire's socket", || Ok(pipewire.exists()))?;
        session.launch("wireplumber")?;
        session
            .processes
            .wait_until(deadline, "WirePlumber on PipeWire", || {
                Ok(session.wpctl_status()?.contains("WirePlumber"))
            })?;
        let created = session
            .command("pw-cli")
            .args([
                "create-node",
                "adapter",
                &format!(
                    "{{ factory.name=support.null-audio-sink node.name={SINK} \
                     media.class=Audio/Sink object.linger=true audio.position=[FL FR] }}"
                ),
            ])
            .stdin(Stdio::null())
            .output()
            .context("cannot run pw-cli (apt-get install pipewire-bin)")?;
        if !created.status.success() {
            bail!(
                "pw-cli could not create the null sink: {}",
                String::from_utf8_lossy(&created.stderr)
            );
        }
        // WirePlumber makes the only sink the default: `*` before its name.
        session
            .processes
            .wait_until(deadline, "the null sink as the default output", || {
                Ok(session
                    .wpctl_status()?
                    .lines()
                    .any(|line| line.contains('*') && line.contains(SINK)))
            })?;
        Ok(session)
    }

    /// The variables a child needs to live in this session.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            (
                "XDG_RUNTIME_DIR".to_owned(),
                self.processes.runtime.display().to_string(),
            ),
            (
                "DBUS_SESSION_BUS_ADDRESS".to_owned(),
                self.processes.bus.clone(),
            ),
        ]
    }

    /// Puts `command` inside this session.
    pub fn apply(&self, command: &mut Command) {
        ProcessGroup::apply(command, &FOREIGN, self.env());
    }

    /// A command inside this session, in its process group.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        self.processes.command(program, &FOREIGN, self.env())
    }

    /// Plays a sine of `frequency` Hz at -9 dBFS into the default output until the result drops
    /// (a minute at most).
    pub fn play_tone(&self, frequency: f32) -> anyhow::Result<Running> {
        self.play(&tone_wav(frequency, 60))
    }

    /// Plays `wav` (a WAV file's bytes) into the default output until the result drops.
    pub fn play(&self, wav: &[u8]) -> anyhow::Result<Running> {
        let path = self.processes.base.join("tones").join(format!(
            "{}.wav",
            self.counter.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, wav).with_context(|| format!("cannot write {}", path.display()))?;
        let log = self.processes.log_file("pw-play")?;
        let child = self
            .command("pw-play")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot run pw-play (apt-get install pipewire-bin)")?;
        Ok(Running(child))
    }

    /// A recorder of what the default output plays (its monitor), independent of the code
    /// under test: `pw-record` writing 48 kHz mono 32-bit float samples to its stdout, in
    /// pieces of about 10 ms.
    pub fn record_output(&self) -> anyhow::Result<Running> {
        let child = self
            .command("pw-record")
            .args([
                "-P",
                "{ stream.capture.sink=true }",
                "--format",
                "f32",
                "--rate",
                "48000",
                "--channels",
                "1",
                "--latency",
                "10ms",
                "-",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot run pw-record (apt-get install pipewire-bin)")?;
        Ok(Running(child))
    }

    /// Removes the null sink: the output the share captures goes away.
    pub fn remove_sink(&self) -> anyhow::Result<()> {
        let output = self
            .command("pw-cli")
            .args(["destroy", SINK])
            .stdin(Stdio::null())
            .output()
            .context("cannot run pw-cli")?;
        if !output.status.success() {
            bail!(
                "pw-cli could not remove the sink: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }

    /// `wpctl status`: the session's devices, sinks and streams.
    pub fn wpctl_status(&self) -> anyhow::Result<String> {
        let output = self
            .command("wpctl")
            .arg("status")
            .stdin(Stdio::null())
            .output()
            .context("cannot run wpctl (apt-get install wireplumber)")?;
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    fn launch(&self, name: &'static str) -> anyhow::Result<()> {
        let mut command = self.command(name);
        let base = &self.processes.base;
        command
            .env("XDG_CONFIG_HOME", base.join("home/config"))
            .env("XDG_STATE_HOME", base.join("home/state"));
        self.processes
            .launch(name, command, &format!("{name} (apt-get install {name})"))
    }

    /// Where the session's processes write their output.
    pub fn log_dir(&self) -> PathBuf {
        self.processes.log_dir()
    }
}

/// Samples a second in the WAV files made here.
const RATE: u32 = 48_000;

/// A WAV file, 48 kHz 16-bit stereo, of `samples` (from -1 to 1, the same on both sides).
pub fn wav(samples: impl ExactSizeIterator<Item = f32>) -> Vec<u8> {
    let data_len = (samples.len() * 4) as u32;
    let mut wav = Vec::with_capacity(44 + data_len as usize);
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data_len).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    for value in [16u32, 1 | (2 << 16), RATE, RATE * 4, 4 | (16 << 16)] {
        wav.extend_from_slice(&value.to_le_bytes());
    }
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_len.to_le_bytes());
    for sample in samples {
        let sample = (sample.clamp(-1.0, 1.0) * 32_767.0) as i16;
        wav.extend_from_slice(&sample.to_le_bytes());
        wav.extend_from_slice(&sample.to_le_bytes());
    }
    wav
}

/// `seconds` of a sine of `frequency` Hz at -9 dBFS.
pub fn tone_wav(frequency: f32, seconds: u32) -> Vec<u8> {
    wav((0..RATE * seconds)
        .map(move |at| (at as f32 * frequency * std::f32::consts::TAU / RATE as f32).sin() * 0.355))
}

/// `seconds` of a sine that switches between `low` and `high` Hz every `every_ms`, at -9 dBFS:
/// each switch is an event a listener can time.
pub fn switching_wav(low: f32, high: f32, every_ms: u32, seconds: u32) -> Vec<u8> {
    let every = RATE * every_ms / 1000;
    let mut phase = 0.0f32;
    wav((0..RATE * seconds).map(move |at| {
        let frequency = if (at / every).is_multiple_of(2) {
            low
        } else {
            high
        };
        phase = (phase + frequency * std::f32::consts::TAU / RATE as f32) % std::f32::consts::TAU;
        phase.sin() * 0.355
    }))
}

/// `seconds` of something as hard to encode as music: a chord whose notes swell and fade, over
/// noise at -30 dBFS.
pub fn music_wav(seconds: u32) -> Vec<u8> {
    let mut noise = 0x2545_f491_u32;
    wav((0..RATE * seconds).map(move |at| {
        let time = at as f32 / RATE as f32;
        let chord: f32 = [(220.0, 0.3), (277.2, 0.5), (329.6, 0.7), (440.0, 1.1)]
            .iter()
            .map(|&(frequency, swell): &(f32, f32)| {
                (time * frequency * std::f32::consts::TAU).sin()
                    * (0.5 + 0.5 * (time * swell * std::f32::consts::TAU).sin())
            })
            .sum::<f32>()
            * 0.12;
        // xorshift: white noise.
        noise ^= noise << 13;
        noise ^= noise >> 17;
        noise ^= noise << 5;
        chord + (noise as f32 / u32::MAX as f32 - 0.5) * 0.063
    }))
}
