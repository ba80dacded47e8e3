//! What the desktop plays, read through PipeWire: a capture stream on the monitor of the default
//! output (`stream.capture.sink`, as `pw-record -P '{ stream.capture.sink=true }'` does), 48 kHz
//! stereo float, converted by PipeWire from whatever the device runs at. PulseAudio desktops run
//! pipewire-pulse (Debian 12, Ubuntu 22.10 and later, Fedora), so this reaches them too.
//!
//! PipeWire's objects are not `Send`: the loop and the stream live on a thread of their own, and
//! the stream's process callback runs on PipeWire's data thread (`RT_PROCESS`: no hop to the
//! loop), which also encodes (a packet costs about 0.1 ms) and fills the track. The owner stops
//! it through a PipeWire channel and never waits for it.

use std::io::Cursor;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pipewire::context::ContextRc;
use pipewire::main_loop::MainLoopRc;
use pipewire::spa::param::ParamType;
use pipewire::spa::param::audio::{AudioFormat, AudioInfoRaw};
use pipewire::spa::pod::serialize::PodSerializer;
use pipewire::spa::pod::{Object, Pod, Value};
use pipewire::spa::utils::{Direction, SpaTypes};
use pipewire::stream::{StreamFlags, StreamRc, StreamState};

use super::opus::OpusPackets;
use super::track::AudioTrack;
use super::{AudioError, CHANNELS, Ended, RATE};

/// How long setting up the stream may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A running capture; dropping it stops it (without waiting for its thread).
pub struct Capture {
    stop: pipewire::channel::Sender<()>,
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture").finish_non_exhaustive()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.stop.send(());
    }
}

/// Starts capturing into `track`.
pub fn start(track: Arc<AudioTrack>, ended: Ended) -> Result<Capture, AudioError> {
    let (stop, stop_receiver) = pipewire::channel::channel::<()>();
    let (ready, ready_receiver) = std::sync::mpsc::sync_channel::<Result<(), AudioError>>(1);
    std::thread::Builder::new()
        .name("screenshare-sound".to_owned())
        .spawn(move || {
            let result = run(&track, &ended, stop_receiver, &ready);
            if let Err(error) = result {
                ended.send(error.clone());
                let _ = ready.send(Err(error));
            }
        })
        .map_err(|error| AudioError::Server(format!("cannot start its thread: {error}")))?;
    match ready_receiver.recv_timeout(CONNECT_TIMEOUT) {
        Ok(Ok(())) => Ok(Capture { stop }),
        Ok(Err(error)) => Err(error),
        Err(_) => {
            let _ = stop.send(());
            Err(AudioError::Server(format!(
                "no answer within {CONNECT_TIMEOUT:?}"
            )))
        }
    }
}

/// What the callbacks share.
struct Capturing {
    packets: OpusPackets,
    track: Arc<AudioTrack>,
    ended: Ended,
    streaming: bool,
    samples: Vec<f32>,
}

fn run(
    track: &Arc<AudioTrack>,
    ended: &Ended,
    stop: pipewire::channel::Receiver<()>,
    ready: &std::sync::mpsc::SyncSender<Result<(), AudioError>>,
) -> Result<(), AudioError> {
    let server = |what: &str| {
        let what = what.to_owned();
        move |error: pipewire::Error| AudioError::Server(format!("{what}: {error}"))
    };
    pipewire::init();
    let main_loop = MainLoopRc::new(None).map_err(server("main loop"))?;
    let context = ContextRc::new(&main_loop, None).map_err(server("context"))?;
    let core = context.connect_rc(None).map_err(server("connect"))?;
    let core_ended = ended.clone();
    let _core_listener = core
        .add_listener_local()
        .error(move |_id, _seq, _res, message| {
            core_ended.send(AudioError::Server(format!("it went away ({message})")));
        })
        .register();

    let stream = StreamRc::new(
        core.clone(),
        "screenshare",
        pipewire::properties::properties! {
            *pipewire::keys::MEDIA_TYPE => "Audio",
            *pipewire::keys::MEDIA_CATEGORY => "Capture",
            *pipewire::keys::MEDIA_ROLE => "Screen",
            *pipewire::keys::APP_NAME => "screenshare",
            // The default output's monitor: what the presenter hears.
            "stream.capture.sink" => "true",
            // Quanta of up to 43 ms (PipeWire's usual ceiling): half the wake-ups, and half the
            // CPU, of 20 ms ones, for a fragment that gathers 60 ms anyway. A desktop where
            // another program asks for shorter quanta gets those.
            *pipewire::keys::NODE_LATENCY => "2048/48000",
        },
    )
    .map_err(server("stream"))?;

    let mut packets = OpusPackets::new()?;
    track.begin(packets.pre_skip());
    let capturing = Capturing {
        packets,
        track: track.clone(),
        ended: ended.clone(),
        streaming: false,
        samples: Vec::new(),
    };
    let _listener = stream
        .add_local_listener_with_user_data(capturing)
        .state_changed(|_, capturing, old, new| {
            tracing::debug!(?old, ?new, "PipeWire sound stream state");
            match new {
                StreamState::Error(message) => {
                    capturing.ended.send(AudioError::Lost(message));
                }
                StreamState::Streaming => {
                    capturing.streaming = true;
                    capturing.track.set_status(|status| {
                        status.live = true;
                        status.error = None;
                    });
                }
                // The output it was linked to went away (unplugged, removed): the session
                // manager links the stream again when there is one.
                StreamState::Paused if capturing.streaming => {
                    tracing::warn!("the sound output went away");
                    capturing.track.set_status(|status| {
                        status.live = false;
                        status.level_db = -90.0;
                        status.error =
                            Some("the sound output went away; waiting for another one".to_owned());
                    });
                }
                StreamState::Unconnected if capturing.streaming => {
                    capturing
                        .ended
                        .send(AudioError::Lost("the stream was disconnected".to_owned()));
                }
                _ => {}
            }
        })
        .process(take_buffers)
        .register()
        .map_err(server("listener"))?;

    let format = format_param()?;
    let mut params = [Pod::from_bytes(&format)
        .ok_or_else(|| AudioError::Server("the format is not a pod".to_owned()))?];
    stream
        .connect(
            Direction::Input,
            None,
            StreamFlags::AUTOCONNECT | StreamFlags::MAP_BUFFERS | StreamFlags::RT_PROCESS,
            &mut params,
        )
        .map_err(server("cannot connect to the default output"))?;

    let quit = main_loop.clone();
    let _stop = stop.attach(main_loop.loop_(), move |()| quit.quit());
    let _ = ready.send(Ok(()));
    main_loop.run();
    let _ = stream.disconnect();
    tracing::debug!("PipeWire sound stream stopped");
    Ok(())
}

/// Encodes every buffer waiting; the time of a buffer's last sample is now.
fn take_buffers(stream: &pipewire::stream::Stream, capturing: &mut Capturing) {
    while let Some(mut buffer) = stream.dequeue_buffer() {
        let Some(data) = buffer.datas_mut().first_mut() else {
            continue;
        };
        let size = data.chunk().size() as usize;
        let offset = data.chunk().offset() as usize;
        let Some(bytes) = data.data() else {
            continue;
        };
        let Some(bytes) = bytes.get(offset..offset.saturating_add(size)) else {
            continue;
        };
        capturing.samples.clear();
        capturing.samples.extend(
            bytes
                .chunks_exact(4)
                .map(|sample| f32::from_le_bytes([sample[0], sample[1], sample[2], sample[3]])),
        );
        let frames = capturing.samples.len() / CHANNELS;
        let played = Duration::from_secs_f64(frames as f64 / f64::from(RATE));
        let now = Instant::now();
        let at = now.checked_sub(played).unwrap_or(now);
        match capturing.packets.push(&capturing.samples, at) {
            Ok(packets) => capturing.track.add(packets),
            Err(error) => capturing.ended.send(error),
        }
    }
}

/// 48 kHz stereo 32-bit float, interleaved: PipeWire converts whatever the device plays.
fn format_param() -> Result<Vec<u8>, AudioError> {
    let mut info = AudioInfoRaw::new();
    info.set_format(AudioFormat::F32LE);
    info.set_rate(RATE);
    info.set_channels(CHANNELS as u32);
    let object = Object {
        type_: SpaTypes::ObjectParamFormat.as_raw(),
        id: ParamType::EnumFormat.as_raw(),
        properties: info.into(),
    };
    PodSerializer::serialize(Cursor::new(Vec::new()), &Value::Object(object))
        .map(|(cursor, _)| cursor.into_inner())
        .map_err(|error| AudioError::Server(format!("the format: {error:?}")))
}
