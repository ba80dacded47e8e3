//! Viewers that behave like the viewer page: one keep-alive connection each, asking for the next
//! update once the last one has arrived, no faster than the share's frame rate. Bytes are counted
//! as they arrive on the wire, headers included.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use screenshare_testkit::pushed::PushedStream;

/// Which transport the viewers use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// `stream?after=N&mode=adaptive`: what changed, pushed on one response (a page that cannot
    /// play the share's video).
    Stream,
    /// `stream?after=N&mode=adaptive&video=1`: the same, and H.264 while the screen is in
    /// motion (this version's page).
    Video,
    /// `stream?…&video=1&audio=1`: the page with sound on (sound records between the updates).
    Sound,
    /// `updates?after=N&mode=adaptive`: what changed, asked for one update at a time (a long
    /// poll: the page before the stream, and its fallback).
    Updates,
    /// `screen.jpg?after=N`: the whole frame each time (the page before that).
    WholeFrames,
}

impl Path {
    pub fn name(self) -> &'static str {
        match self {
            Path::Stream => "stream (changed regions, pushed)",
            Path::Video => "stream with video (the page)",
            Path::Sound => "stream with video and sound",
            Path::Updates => "updates (changed regions, long poll)",
            Path::WholeFrames => "whole JPEG frames (before)",
        }
    }
}

/// What one viewer got inside the measured window.
#[derive(Debug, Default, Clone)]
pub struct Received {
    pub updates: u64,
    pub bytes: u64,
    pub errors: u64,
    /// How long each counted update took to arrive after it was asked for, in ms.
    pub answer_ms: Vec<f64>,
}

impl Received {
    pub fn add(&mut self, other: Received) {
        self.updates += other.updates;
        self.bytes += other.bytes;
        self.errors += other.errors;
        self.answer_ms.extend(other.answer_ms);
    }
}

/// A minimal HTTP/1.1 client on one kept-alive connection.
struct Connection {
    reader: BufReader<TcpStream>,
    address: String,
}

struct Answer {
    status: u16,
    seq_header: Option<u64>,
    body: Vec<u8>,
    wire_bytes: u64,
}

impl Connection {
    fn open(address: &str) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(address)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            reader: BufReader::new(stream),
            address: address.to_owned(),
        })
    }

    fn get(&mut self, path: &str, viewer: &str) -> anyhow::Result<Answer> {
        write!(
            self.reader.get_mut(),
            "GET {path} HTTP/1.1\r\nHost: {}\r\nx-viewer: {viewer}\r\n\r\n",
            self.address
        )?;
        let mut wire_bytes = 0u64;
        let mut line = String::new();
        wire_bytes += self.reader.read_line(&mut line)? as u64;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .with_context(|| format!("no status line: {line:?}"))?;
        let (mut length, mut seq_header) = (0usize, None);
        loop {
            line.clear();
            let read = self.reader.read_line(&mut line)?;
            if read == 0 {
                bail!("connection closed in the headers");
            }
            wire_bytes += read as u64;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                match name.trim().to_ascii_lowercase().as_str() {
                    "content-length" => length = value.trim().parse().unwrap_or(0),
                    "x-frame-seq" => seq_header = value.trim().parse().ok(),
                    _ => {}
                }
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body)?;
        wire_bytes += length as u64;
        Ok(Answer {
            status,
            seq_header,
            body,
            wire_bytes,
        })
    }
}

/// One viewer from now until `end`, counting what arrives between `from` and `end`.
pub fn watch(
    address: &str,
    prefix: &str,
    path: Path,
    id: &str,
    fps: u32,
    from: Instant,
    end: Instant,
) -> Received {
    if matches!(path, Path::Stream | Path::Video | Path::Sound) {
        return watch_stream(address, prefix, id, path, from, end);
    }
    let mut received = Received::default();
    let mut connection: Option<Connection> = None;
    let mut after = 0u64;
    let interval = Duration::from_secs(1) / fps.max(1);
    while Instant::now() < end {
        let started = Instant::now();
        let url = match path {
            Path::Stream | Path::Video | Path::Sound | Path::Updates => {
                format!("{prefix}updates?after={after}&mode=adaptive")
            }
            Path::WholeFrames => format!("{prefix}screen.jpg?after={after}&v={id}"),
        };
        let answer = match connection.as_mut() {
            Some(open) => open.get(&url, id),
            None => match Connection::open(address) {
                Ok(open) => connection.insert(open).get(&url, id),
                Err(error) => Err(error),
            },
        };
        let counted = Instant::now() >= from;
        match answer {
            Ok(answer) if answer.status == 200 => {
                let seq = match path {
                    Path::Stream | Path::Video | Path::Sound | Path::Updates => {
                        seq_of(&answer.body)
                    }
                    Path::WholeFrames => answer.seq_header,
                };
                after = seq.unwrap_or(after);
                if counted {
                    received.updates += 1;
                    received.bytes += answer.wire_bytes;
                    received
                        .answer_ms
                        .push(started.elapsed().as_secs_f64() * 1000.0);
                }
            }
            Ok(answer) if answer.status == 204 => {
                if counted {
                    received.bytes += answer.wire_bytes;
                }
            }
            Ok(_) | Err(_) => {
                if counted {
                    received.errors += 1;
                }
                connection = None;
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let spent = started.elapsed();
        if spent < interval {
            std::thread::sleep(interval - spent);
        }
    }
    received
}

/// Bytes of the updates a viewer gets when only the pointer moves (`moves` moves, each waited
/// for), on the pushed stream: (mean update bytes, mean bytes on the wire: the record's length
/// and the chunked encoding's framing included).
pub fn pointer_move_bytes(
    address: &str,
    prefix: &str,
    mut move_pointer: impl FnMut(u32) -> anyhow::Result<u16>,
    moves: u32,
) -> anyhow::Result<(f64, f64)> {
    let mut stream = PushedStream::open(
        address,
        &format!("{prefix}stream?after=0&mode=adaptive"),
        "x-viewer: pointer\r\n",
    )?;
    let patience = Duration::from_secs(10);
    stream
        .next_update(Instant::now() + patience)?
        .context("no first update")?;
    let (mut body, mut wire, mut updates) = (0u64, 0u64, 0u64);
    for step in 0..moves {
        let x = move_pointer(step)?;
        let deadline = Instant::now() + patience;
        // Counted until the update that puts the pointer where it was moved to.
        loop {
            let before = stream.wire_bytes();
            let update = stream
                .next_update(deadline)?
                .with_context(|| format!("no update within {patience:?} of a pointer move"))?;
            body += update.len() as u64;
            wire += stream.wire_bytes() - before;
            updates += 1;
            if pointer_x(&update) == Some(x) {
                break;
            }
        }
    }
    Ok((
        body as f64 / updates.max(1) as f64,
        wire as f64 / updates.max(1) as f64,
    ))
}

/// One viewer on the pushed stream from now until `end`, counting what arrives between `from`
/// and `end`; a stream that breaks is opened again from the last update, as the page does.
fn watch_stream(
    address: &str,
    prefix: &str,
    id: &str,
    path: Path,
    from: Instant,
    end: Instant,
) -> Received {
    let mut received = Received::default();
    let mut after = 0u64;
    let asks = match path {
        Path::Video => "&video=1",
        Path::Sound => "&video=1&audio=1",
        _ => "",
    };
    while Instant::now() < end {
        let url = format!("{prefix}stream?after={after}&mode=adaptive{asks}");
        let mut stream = match PushedStream::open(address, &url, &format!("x-viewer: {id}\r\n")) {
            Ok(stream) => stream,
            Err(error) => {
                if Instant::now() >= from {
                    eprintln!("xtask: viewer {id}: the stream did not open: {error:#}");
                    received.errors += 1;
                }
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let mut counted_bytes = stream.wire_bytes();
        loop {
            let waited = Instant::now();
            // Every record, not only updates: bytes are counted as they come (sound comes on a
            // still screen with no update for the whole run).
            let next = stream.next_record(end);
            // Bytes count from `from`: those of the headers and the first update before it do not.
            if Instant::now() >= from {
                received.bytes += stream.wire_bytes() - counted_bytes;
            }
            counted_bytes = stream.wire_bytes();
            match next {
                Ok(Some(update)) => {
                    // Sound and status records are not updates.
                    if update.first() != Some(&WIRE_VERSION) {
                        continue;
                    }
                    // As the page does: `after` names the tiles drawn, not the video played.
                    if !is_video(&update) {
                        after = seq_of(&update).unwrap_or(after);
                    }
                    if Instant::now() >= from {
                        received.updates += 1;
                        received
                            .answer_ms
                            .push(waited.elapsed().as_secs_f64() * 1000.0);
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    if Instant::now() >= from && Instant::now() < end {
                        eprintln!("xtask: viewer {id}: the stream broke: {error:#}");
                        received.errors += 1;
                    }
                    break;
                }
            }
        }
    }
    received
}

/// The first byte of an update (`crates/core/src/frame/wire.rs`; xtask does not link the engine).
const WIRE_VERSION: u8 = 2;

/// Where an update puts the pointer, across (`None` when it leaves the pointer as it was).
fn pointer_x(update: &[u8]) -> Option<u16> {
    // The 12-byte header, the size when flag bit 3 says so, the pointer when bit 2 does (its
    // shape id, then x); see `crates/core/src/frame/wire.rs`.
    let flags = *update.get(1)?;
    if flags & 4 == 0 {
        return None;
    }
    let at = 12 + if flags & 8 != 0 { 4 } else { 0 } + 4;
    let mut word = [0u8; 2];
    word.copy_from_slice(update.get(at..at + 2)?);
    Some(u16::from_le_bytes(word))
}

/// Whether an update shows the screen as video (flag bit 1).
fn is_video(update: &[u8]) -> bool {
    update.get(1).is_some_and(|flags| flags & 2 != 0)
}

fn seq_of(body: &[u8]) -> Option<u64> {
    let mut word = [0u8; 8];
    word.copy_from_slice(body.get(4..12)?);
    Some(u64::from_le_bytes(word))
}
