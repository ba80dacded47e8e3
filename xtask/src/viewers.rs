//! Viewers that behave like the viewer page: one keep-alive connection each, asking for the next
//! update once the last one has arrived, no faster than the share's frame rate. Bytes are counted
//! as they arrive on the wire, headers included.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Which transport the viewers use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// `updates?after=N&mode=adaptive`: only what changed (this version's page).
    Updates,
    /// `screen.jpg?after=N`: the whole frame each time (the page before it).
    WholeFrames,
}

impl Path {
    pub fn name(self) -> &'static str {
        match self {
            Path::Updates => "updates (changed regions)",
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
    let mut received = Received::default();
    let mut connection: Option<Connection> = None;
    let mut after = 0u64;
    let interval = Duration::from_secs(1) / fps.max(1);
    while Instant::now() < end {
        let started = Instant::now();
        let url = match path {
            Path::Updates => format!("{prefix}updates?after={after}&mode=adaptive"),
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
                    Path::Updates => seq_of(&answer.body),
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
/// for): (mean body bytes, mean bytes on the wire).
pub fn pointer_move_bytes(
    address: &str,
    prefix: &str,
    mut move_pointer: impl FnMut(u32) -> anyhow::Result<()>,
    moves: u32,
) -> anyhow::Result<(f64, f64)> {
    let mut connection = Connection::open(address)?;
    let url = |after: u64| format!("{prefix}updates?after={after}&mode=adaptive");
    let first = connection.get(&url(0), "pointer")?;
    let mut after = seq_of(&first.body).context("a first update")?;
    let (mut body, mut wire) = (0u64, 0u64);
    for step in 0..moves {
        move_pointer(step)?;
        let answer = connection.get(&url(after), "pointer")?;
        if answer.status != 200 {
            bail!("no update after a pointer move (HTTP {})", answer.status);
        }
        after = seq_of(&answer.body).context("an update")?;
        body += answer.body.len() as u64;
        wire += answer.wire_bytes;
    }
    Ok((
        body as f64 / f64::from(moves),
        wire as f64 / f64::from(moves),
    ))
}

fn seq_of(body: &[u8]) -> Option<u64> {
    let mut word = [0u8; 8];
    word.copy_from_slice(body.get(8..16)?);
    Some(u64::from_le_bytes(word))
}
