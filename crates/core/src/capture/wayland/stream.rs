//! The PipeWire stream of a screen cast, on a thread of its own: connects to the portal's
//! PipeWire remote, asks for shared-memory buffers in a 32-bit RGB format with cursor, damage and
//! crop metadata (as OBS's linux-pipewire and gnome-remote-desktop do), and hands every frame to
//! the [`Mailbox`].
//!
//! PipeWire's objects are not `Send`: the loop, the stream and their callbacks all live and die
//! on this thread. The owner stops it through a PipeWire channel and never waits for it.

use std::io::Cursor;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use pipewire::context::ContextRc;
use pipewire::main_loop::MainLoopRc;
use pipewire::spa::buffer::meta::{MetaCursor, MetaVideoCrop, MetaVideoDamage};
use pipewire::spa::param::ParamType;
use pipewire::spa::param::format::{FormatProperties, MediaSubtype, MediaType};
use pipewire::spa::param::format_utils;
use pipewire::spa::param::video::{VideoFormat, VideoInfoRaw};
use pipewire::spa::pod::serialize::PodSerializer;
use pipewire::spa::pod::{self, ChoiceValue, Object, Pod, Property, Value};
use pipewire::spa::sys as spa_sys;
use pipewire::spa::utils::{
    Choice, ChoiceEnum, ChoiceFlags, Direction, Fraction, Id, Rectangle, SpaTypes,
};
use pipewire::stream::{StreamFlags, StreamRc, StreamState};

use super::buffer::{self, ChannelOrder, Layout};
use super::failed;
use super::mailbox::{Mailbox, add_up, pointer_shape};
use crate::capture::{CaptureError, Damage, PointerState};

/// How long setting up the stream may take before the share hears it failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest cursor bitmap room is offered for: mutter 43 insists on room for 384x384 (a
/// fixed size, not a range), so a smaller limit leaves the stream without cursor metadata.
const MAX_CURSOR: u32 = 1024;

/// A running stream; dropping it stops the stream (without waiting for its thread).
pub struct Stream {
    stop: pipewire::channel::Sender<()>,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream").finish_non_exhaustive()
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        // The thread may have ended already (the stream failed): nothing to stop then.
        let _ = self.stop.send(());
    }
}

/// Connects to node `node` on the PipeWire remote `fd` and starts filling `mailbox`.
pub fn start(fd: OwnedFd, node: u32, mailbox: Arc<Mailbox>) -> Result<Stream, CaptureError> {
    let (stop, stop_receiver) = pipewire::channel::channel::<()>();
    let (ready, ready_receiver) = std::sync::mpsc::sync_channel::<Result<(), String>>(1);
    std::thread::Builder::new()
        .name("screenshare-pipewire".to_owned())
        .spawn(move || {
            let result = run(fd, node, mailbox.clone(), stop_receiver, &ready);
            if let Err(error) = result {
                mailbox.end(format!("the PipeWire stream failed: {error}"));
                let _ = ready.send(Err(error));
            }
        })
        .map_err(|error| failed(format!("cannot start the PipeWire thread: {error}")))?;
    match ready_receiver.recv_timeout(CONNECT_TIMEOUT) {
        Ok(Ok(())) => Ok(Stream { stop }),
        Ok(Err(error)) => Err(failed(format!("the PipeWire stream failed: {error}"))),
        Err(_) => {
            let _ = stop.send(());
            Err(failed(format!(
                "PipeWire did not set the stream up within {CONNECT_TIMEOUT:?}"
            )))
        }
    }
}

/// What the stream knows between callbacks.
#[derive(Default)]
struct Negotiated {
    /// The pixel format and size, once PipeWire has settled them.
    format: Option<(ChannelOrder, u32, u32)>,
    /// The last cursor bitmap's serial.
    cursor_serial: u64,
    /// Where the picture starts in the buffer (its crop), for the pointer's position.
    origin: (i32, i32),
    streaming: bool,
}

fn run(
    fd: OwnedFd,
    node: u32,
    mailbox: Arc<Mailbox>,
    stop: pipewire::channel::Receiver<()>,
    ready: &std::sync::mpsc::SyncSender<Result<(), String>>,
) -> Result<(), String> {
    pipewire::init();
    let main_loop = MainLoopRc::new(None).map_err(|error| format!("main loop: {error}"))?;
    let context = ContextRc::new(&main_loop, None).map_err(|error| format!("context: {error}"))?;
    let core = context
        .connect_fd_rc(fd, None)
        .map_err(|error| format!("cannot connect to the portal's PipeWire: {error}"))?;
    let core_mailbox = mailbox.clone();
    let _core_listener = core
        .add_listener_local()
        .error(move |_id, _seq, _res, message| {
            // The remote closing (PipeWire or the compositor gone) is the one we see in practice.
            core_mailbox.end(format!("PipeWire went away ({message})"));
        })
        .register();

    // The compositor's node going away is the one sure sign the cast is over: the stream itself
    // only pauses (seen with mutter 43 when its portal backend dies).
    let registry = core
        .get_registry_rc()
        .map_err(|error| format!("registry: {error}"))?;
    let registry_mailbox = mailbox.clone();
    let _registry_listener = registry
        .add_listener_local()
        .global_remove(move |id| {
            if id == node {
                registry_mailbox.end("the desktop ended the screen cast");
            }
        })
        .register();

    let stream = StreamRc::new(
        core.clone(),
        "screenshare",
        pipewire::properties::properties! {
            *pipewire::keys::MEDIA_TYPE => "Video",
            *pipewire::keys::MEDIA_CATEGORY => "Capture",
            *pipewire::keys::MEDIA_ROLE => "Screen",
        },
    )
    .map_err(|error| format!("stream: {error}"))?;

    let state_mailbox = mailbox.clone();
    let frame_mailbox = mailbox.clone();
    let _listener = stream
        .add_local_listener_with_user_data(Negotiated::default())
        .state_changed(move |_, negotiated, old, new| {
            tracing::debug!(?old, ?new, "PipeWire stream state");
            match new {
                StreamState::Error(message) => {
                    state_mailbox.end(format!("the screen cast failed ({message})"));
                }
                StreamState::Streaming => negotiated.streaming = true,
                StreamState::Unconnected if negotiated.streaming => {
                    state_mailbox.end("the screen cast was stopped");
                }
                _ => {}
            }
        })
        .param_changed(|stream, negotiated, id, param| {
            if id != ParamType::Format.as_raw() {
                return;
            }
            let Some(param) = param else {
                negotiated.format = None;
                return;
            };
            match read_format(param) {
                Ok(format) => {
                    negotiated.format = Some(format);
                    // Only now may buffers and metadata be asked for (PipeWire's rule).
                    match buffer_params() {
                        Ok(params) => {
                            let mut pods: Vec<&Pod> = params
                                .iter()
                                .filter_map(|bytes| Pod::from_bytes(bytes))
                                .collect();
                            if let Err(error) = stream.update_params(&mut pods) {
                                tracing::warn!(%error, "PipeWire refused the buffer parameters");
                            }
                        }
                        Err(error) => tracing::warn!(%error, "buffer parameters"),
                    }
                }
                Err(error) => tracing::warn!(%error, "unusable screen-cast format"),
            }
        })
        .process(move |stream, negotiated| drain(stream, negotiated, &frame_mailbox))
        .register()
        .map_err(|error| format!("listener: {error}"))?;

    let format = format_param().map_err(|error| format!("format: {error}"))?;
    let mut params = [Pod::from_bytes(&format).ok_or("format: not a pod")?];
    stream
        .connect(
            Direction::Input,
            Some(node),
            StreamFlags::AUTOCONNECT | StreamFlags::MAP_BUFFERS,
            &mut params,
        )
        .map_err(|error| format!("cannot connect to node {node}: {error}"))?;

    let quit = main_loop.clone();
    let _stop = stop.attach(main_loop.loop_(), move |()| quit.quit());
    let _ = ready.send(Ok(()));
    main_loop.run();
    let _ = stream.disconnect();
    tracing::debug!("PipeWire stream stopped");
    Ok(())
}

/// Dequeues every buffer waiting: the pointer from each (pointer-only buffers included), the
/// damage of all of them added up, the pixels of the newest.
fn drain(stream: &pipewire::stream::Stream, negotiated: &mut Negotiated, mailbox: &Mailbox) {
    let Some((order, width, height)) = negotiated.format else {
        // No format yet: give the buffers back.
        while stream.dequeue_buffer().is_some() {}
        return;
    };
    let mut newest = None;
    let mut damage: Option<Damage> = None;
    while let Some(mut buffer) = stream.dequeue_buffer() {
        if let Some(crop) = crop_of(&buffer) {
            let area = buffer::visible_area(width, height, Some(crop));
            negotiated.origin = (area.x as i32, area.y as i32);
        }
        if let Some(cursor) = buffer.find_meta::<MetaCursor>() {
            read_pointer(cursor, negotiated, mailbox);
        }
        let has_pixels = buffer.datas_mut().first().is_some_and(|data| {
            let chunk = data.chunk();
            chunk.size() > 0
                && !chunk
                    .flags()
                    .contains(pipewire::spa::buffer::ChunkFlags::CORRUPTED)
        });
        if !has_pixels {
            continue;
        }
        let area = buffer::visible_area(width, height, crop_of(&buffer));
        let this = match buffer.find_meta::<MetaVideoDamage>() {
            Some(meta) => buffer::damage_rects(
                meta.iter().map(|region| {
                    let (position, size) = (region.position(), region.size());
                    (position.x, position.y, size.width, size.height)
                }),
                area,
            )
            .map_or(Damage::Unknown, Damage::Rects),
            None => Damage::Unknown,
        };
        damage = Some(match damage {
            None => this,
            Some(before) => add_up(before, this),
        });
        // Dropping the older buffer gives it back to the compositor.
        newest = Some((buffer, area));
    }
    let (Some((mut buffer, area)), Some(damage)) = (newest, damage) else {
        return;
    };
    let Some(data) = buffer.datas_mut().first_mut() else {
        return;
    };
    let chunk = data.chunk();
    let layout = Layout {
        order,
        width,
        height,
        stride: usize::try_from(chunk.stride()).unwrap_or(0),
        offset: chunk.offset() as usize,
    };
    let Some(bytes) = data.data() else {
        // A DMA-BUF we did not ask for, or memory PipeWire could not map.
        mailbox.end("the compositor sends frames this version cannot read (not shared memory)");
        return;
    };
    let written = mailbox.put_frame(area.width, area.height, damage, |picture, rects| {
        buffer::copy_pixels(picture, bytes, &layout, area, rects)
    });
    if let Err(error) = written {
        tracing::debug!(%error, "screen-cast frame skipped");
    }
}

/// The crop region of a buffer, where the compositor gives one.
fn crop_of(buffer: &pipewire::buffer::Buffer<'_>) -> Option<(i32, i32, u32, u32)> {
    let crop = buffer.find_meta::<MetaVideoCrop>()?.meta_region();
    if !crop.is_valid() {
        return None;
    }
    let (position, size) = (crop.position(), crop.size());
    Some((position.x, position.y, size.width, size.height))
}

/// Where the pointer is (every buffer says), and its look when it changed. A cursor without an
/// id is one outside what is cast (mutter's way of saying so): hidden, as OBS takes it.
fn read_pointer(cursor: &MetaCursor, negotiated: &mut Negotiated, mailbox: &Mailbox) {
    if !cursor.is_valid() {
        mailbox.put_pointer(|pointer| {
            if let Some(pointer) = pointer {
                pointer.visible = false;
            }
        });
        return;
    }
    let position = cursor.position();
    // Positions are in the buffer; the picture is its crop.
    let (x, y) = (
        position.x.saturating_sub(negotiated.origin.0),
        position.y.saturating_sub(negotiated.origin.1),
    );
    let hotspot = cursor.hotspot();

    let new_shape = cursor.bitmap().and_then(|bitmap| {
        let size = bitmap.size();
        let order = match bitmap.format() {
            VideoFormat::RGBA | VideoFormat::RGBx => ChannelOrder::Rgb,
            VideoFormat::BGRA | VideoFormat::BGRx => ChannelOrder::Bgr,
            _ => return None,
        };
        if size.width == 0 || size.height == 0 {
            // An empty bitmap: the pointer is hidden (a video playing, a game).
            return Some(None);
        }
        let stride = usize::try_from(bitmap.stride()).ok()?;
        let rgba = buffer::cursor_rgba(
            order,
            size.width,
            size.height,
            stride,
            bitmap.bitmap_data()?,
        )?;
        negotiated.cursor_serial += 1;
        Some(Some(pointer_shape(
            negotiated.cursor_serial,
            size.width,
            size.height,
            (hotspot.x, hotspot.y),
            rgba,
        )))
    });
    mailbox.put_pointer(|pointer| {
        let (visible, shape) = match (new_shape, pointer.as_ref()) {
            (Some(Some(shape)), _) => (true, shape),
            (Some(None), Some(before)) => (false, before.shape.clone()),
            (Some(None), None) => (false, pointer_shape(0, 0, 0, (0, 0), Vec::new())),
            (None, Some(before)) => (before.visible, before.shape.clone()),
            // A position before any bitmap: nothing to draw yet.
            (None, None) => (false, pointer_shape(0, 0, 0, (0, 0), Vec::new())),
        };
        *pointer = Some(PointerState {
            x,
            y,
            visible,
            shape,
        });
    });
}

/// The negotiated format as our layout: the channel order and the size.
fn read_format(param: &Pod) -> Result<(ChannelOrder, u32, u32), String> {
    let (media_type, media_subtype) =
        format_utils::parse_format(param).map_err(|error| error.to_string())?;
    if media_type != MediaType::Video || media_subtype != MediaSubtype::Raw {
        return Err("not raw video".to_owned());
    }
    let mut info = VideoInfoRaw::new();
    info.parse(param).map_err(|error| error.to_string())?;
    let order = match info.format() {
        VideoFormat::BGRx | VideoFormat::BGRA => ChannelOrder::Bgr,
        VideoFormat::RGBx | VideoFormat::RGBA => ChannelOrder::Rgb,
        other => return Err(format!("pixel format {other:?}")),
    };
    let Rectangle { width, height } = info.size();
    Ok((order, width, height))
}

/// What we can read: raw video in a 32-bit RGB layout, any size, up to 60 frames a second (the
/// share paces itself; more would be copies nobody looks at).
fn format_param() -> Result<Vec<u8>, String> {
    let object = pod::object!(
        SpaTypes::ObjectParamFormat,
        ParamType::EnumFormat,
        pod::property!(FormatProperties::MediaType, Id, MediaType::Video),
        pod::property!(FormatProperties::MediaSubtype, Id, MediaSubtype::Raw),
        pod::property!(
            FormatProperties::VideoFormat,
            Choice,
            Enum,
            Id,
            VideoFormat::BGRx,
            VideoFormat::BGRx,
            VideoFormat::BGRA,
            VideoFormat::RGBx,
            VideoFormat::RGBA
        ),
        pod::property!(
            FormatProperties::VideoSize,
            Choice,
            Range,
            Rectangle,
            Rectangle {
                width: 1920,
                height: 1080
            },
            Rectangle {
                width: 1,
                height: 1
            },
            Rectangle {
                width: 16384,
                height: 16384
            }
        ),
        pod::property!(
            FormatProperties::VideoFramerate,
            Choice,
            Range,
            Fraction,
            Fraction { num: 60, denom: 1 },
            Fraction { num: 0, denom: 1 },
            Fraction { num: 60, denom: 1 }
        ),
    );
    serialize(Value::Object(object))
}

/// Shared-memory buffers (no DMA-BUF: we offered no modifiers and read with the CPU), and the
/// metadata we use: cursor (position and bitmap), damage, crop.
fn buffer_params() -> Result<Vec<Vec<u8>>, String> {
    let data_types = (1 << spa_sys::SPA_DATA_MemFd) | (1 << spa_sys::SPA_DATA_MemPtr);
    let buffers = Object {
        type_: SpaTypes::ObjectParamBuffers.as_raw(),
        id: ParamType::Buffers.as_raw(),
        properties: vec![Property::new(
            spa_sys::SPA_PARAM_BUFFERS_dataType,
            Value::Choice(ChoiceValue::Int(Choice(
                ChoiceFlags::empty(),
                ChoiceEnum::Flags {
                    default: data_types,
                    flags: Vec::new(),
                },
            ))),
        )],
    };
    let region = std::mem::size_of::<spa_sys::spa_meta_region>() as i32;
    let cursor_size = |side: u32| {
        (std::mem::size_of::<spa_sys::spa_meta_cursor>()
            + std::mem::size_of::<spa_sys::spa_meta_bitmap>()
            + (side * side * 4) as usize) as i32
    };
    let range = |default: i32, min: i32, max: i32| {
        Value::Choice(ChoiceValue::Int(Choice(
            ChoiceFlags::empty(),
            ChoiceEnum::Range { default, min, max },
        )))
    };
    let meta = |kind: u32, size: Value| Object {
        type_: SpaTypes::ObjectParamMeta.as_raw(),
        id: ParamType::Meta.as_raw(),
        properties: vec![
            Property::new(spa_sys::SPA_PARAM_META_type, Value::Id(Id(kind))),
            Property::new(spa_sys::SPA_PARAM_META_size, size),
        ],
    };
    let damage_regions = buffer::MAX_DAMAGE_RECTS as i32;
    [
        buffers,
        meta(
            spa_sys::SPA_META_Cursor,
            range(cursor_size(64), cursor_size(1), cursor_size(MAX_CURSOR)),
        ),
        meta(
            spa_sys::SPA_META_VideoDamage,
            range(region * damage_regions, region, region * damage_regions),
        ),
        meta(spa_sys::SPA_META_VideoCrop, Value::Int(region)),
    ]
    .into_iter()
    .map(|object| serialize(Value::Object(object)))
    .collect()
}

fn serialize(value: Value) -> Result<Vec<u8>, String> {
    PodSerializer::serialize(Cursor::new(Vec::new()), &value)
        .map(|(cursor, _)| cursor.into_inner())
        .map_err(|error| format!("{error:?}"))
}
