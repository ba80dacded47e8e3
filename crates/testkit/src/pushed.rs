//! A client of the pushed `stream`: its chunked body read record by record (a 4-byte
//! little-endian length, then that many bytes; length 0 is a heartbeat), with every byte on the
//! wire counted. Blocking, so that the benchmark's hundreds of viewers are plain threads.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The first byte of a status record (`crates/core/src/server/push.rs`).
const STATUS: u8 = 0xA3;
/// The first bytes of sound records, a start and a fragment (`crates/core/src/audio/record.rs`).
const SOUND_START: u8 = 0xA1;
const SOUND_FRAGMENT: u8 = 0xA2;

/// An open `stream` response: records read off its chunked body as they come.
#[derive(Debug)]
pub struct PushedStream {
    socket: TcpStream,
    /// Bytes read and not yet decoded from the chunked encoding.
    raw: Vec<u8>,
    /// The body decoded so far and not yet taken as records.
    body: Vec<u8>,
    wire_bytes: u64,
}

impl PushedStream {
    /// GET `url` (a path) from `address` with `extra` header lines, and reads the answer's head:
    /// an error unless it is a 200 with a chunked body.
    pub fn open(address: &str, url: &str, extra: &str) -> anyhow::Result<Self> {
        Self::over(TcpStream::connect(address)?, address, url, extra)
    }

    /// As [`PushedStream::open`], on a connection the caller made (from an address of its
    /// choice, with buffers of its choice).
    pub fn over(
        mut socket: TcpStream,
        address: &str,
        url: &str,
        extra: &str,
    ) -> anyhow::Result<Self> {
        socket.set_nodelay(true)?;
        write!(
            socket,
            "GET {url} HTTP/1.1\r\nHost: {address}\r\n{extra}\r\n"
        )?;
        let mut stream = Self {
            socket,
            raw: Vec::new(),
            body: Vec::new(),
            wire_bytes: 0,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let headers_end = loop {
            if let Some(at) = stream.raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            if !stream.read_more(deadline)? {
                bail!("no answer to {url}");
            }
        };
        let headers = String::from_utf8_lossy(&stream.raw[..headers_end]).into_owned();
        stream.raw.drain(..headers_end);
        let status = headers.split_whitespace().nth(1).unwrap_or_default();
        if status != "200" {
            bail!("{url}: HTTP {status}");
        }
        if !headers
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            bail!("{url}: not a chunked stream");
        }
        Ok(stream)
    }

    /// Every byte read off the socket so far, the head included.
    pub fn wire_bytes(&self) -> u64 {
        self.wire_bytes
    }

    /// Reads what the socket has (waiting until `deadline`); false when it timed out.
    fn read_more(&mut self, deadline: Instant) -> anyhow::Result<bool> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        self.socket.set_read_timeout(Some(left))?;
        let mut buffer = [0u8; 64 * 1024];
        match self.socket.read(&mut buffer) {
            Ok(0) => bail!("the stream ended"),
            Ok(read) => {
                self.wire_bytes += read as u64;
                self.raw.extend_from_slice(&buffer[..read]);
                Ok(true)
            }
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Ok(false)
            }
            // A signal arrived mid-read (the benchmark's CPU sampling): nothing was lost.
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => Ok(true),
            Err(error) => Err(error.into()),
        }
    }

    /// Moves whole chunks from `raw` to `body`.
    fn decode_chunks(&mut self) -> anyhow::Result<()> {
        loop {
            let Some(line_end) = self.raw.windows(2).position(|w| w == b"\r\n") else {
                return Ok(());
            };
            let size_text = std::str::from_utf8(&self.raw[..line_end])?;
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .with_context(|| format!("bad chunk size {size_text:?}"))?;
            if size == 0 {
                bail!("the stream ended");
            }
            let chunk_end = line_end + 2 + size + 2;
            if self.raw.len() < chunk_end {
                return Ok(());
            }
            self.body
                .extend_from_slice(&self.raw[line_end + 2..line_end + 2 + size]);
            self.raw.drain(..chunk_end);
        }
    }

    /// The next update (heartbeats, status and sound records skipped), or None when none came
    /// before `deadline`.
    pub fn next_update(&mut self, deadline: Instant) -> anyhow::Result<Option<Vec<u8>>> {
        loop {
            match self.next_record(deadline)? {
                Some(record)
                    if matches!(
                        record.first(),
                        Some(&(STATUS | SOUND_START | SOUND_FRAGMENT))
                    ) => {}
                other => return Ok(other),
            }
        }
    }

    /// What the stream next says the page is told (the status JSON), skipping updates and
    /// sound; None when it said nothing before `deadline`.
    pub fn next_status(&mut self, deadline: Instant) -> anyhow::Result<Option<serde_json::Value>> {
        while let Some(record) = self.next_record(deadline)? {
            if let Some((&STATUS, json)) = record.split_first() {
                return Ok(Some(
                    serde_json::from_slice(json).context("a status record")?,
                ));
            }
        }
        Ok(None)
    }

    /// The next record of any kind (heartbeats skipped), or None when none came before
    /// `deadline`.
    pub fn next_record(&mut self, deadline: Instant) -> anyhow::Result<Option<Vec<u8>>> {
        loop {
            self.decode_chunks()?;
            if let Some(prefix) = self.body.first_chunk::<4>() {
                let length = u32::from_le_bytes(*prefix) as usize;
                if self.body.len() >= 4 + length {
                    // Copied whole, not byte by byte: the benchmark runs this unoptimised for
                    // hundreds of viewers, and updates of megabytes.
                    let record = self.body[4..4 + length].to_vec();
                    self.body.drain(..4 + length);
                    if length > 0 {
                        return Ok(Some(record));
                    }
                    continue;
                }
            }
            if !self.read_more(deadline)? {
                return Ok(None);
            }
        }
    }
}
