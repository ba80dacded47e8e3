//! HTTP as an attacker writes it: exact bytes on a socket, with no client library to tidy them up
//! (reqwest would refuse a 200 KB header or fix a missing `Host`).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// What the server did with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// It answered with this status.
    Status(u16),
    /// It closed the connection without an answer.
    Closed,
}

/// Sends `request` as it is and reads the status line of the answer. A failed write is not an
/// error (the server may refuse a request before reading all of it); no answer within `wait` is.
pub fn exchange(server: SocketAddr, request: &[u8], wait: Duration) -> anyhow::Result<Answer> {
    let mut stream = TcpStream::connect(server)?;
    stream.set_read_timeout(Some(wait))?;
    stream.set_write_timeout(Some(wait))?;
    let _ = stream.write_all(request);
    read_status(&mut stream)
}

/// Reads until the end of the status line, or until the server closes.
pub fn read_status(stream: &mut TcpStream) -> anyhow::Result<Answer> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match stream.read(&mut byte) {
            Ok(0) => break,
            Ok(_) => {
                head.push(byte[0]);
                if head.ends_with(b"\r\n") {
                    break;
                }
            }
            Err(error) if error.kind() == ErrorKind::ConnectionReset => break,
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                anyhow::bail!("no answer: {error}")
            }
            Err(error) => return Err(error.into()),
        }
    }
    if head.is_empty() {
        return Ok(Answer::Closed);
    }
    let line = String::from_utf8_lossy(&head);
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("not an HTTP status line: {line:?}"))?;
    Ok(Answer::Status(status))
}

/// A connection from `source` (any 127.x.y.z address, so a test can be many clients) to `server`.
pub fn connect_from(source: std::net::IpAddr, server: SocketAddr) -> anyhow::Result<TcpStream> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(server),
        socket2::Type::STREAM,
        None,
    )?;
    socket.bind(&SocketAddr::new(source, 0).into())?;
    socket.connect(&server.into())?;
    Ok(socket.into())
}

/// Sends `bytes` one at a time, `gap` apart, until the server closes the connection (or every
/// byte is sent and it still has not answered within `wait`). Returns how long the server kept
/// it open.
pub fn trickle(
    server: SocketAddr,
    bytes: &[u8],
    gap: Duration,
    wait: Duration,
) -> anyhow::Result<Duration> {
    let mut stream = TcpStream::connect(server)?;
    stream.set_read_timeout(Some(gap.max(Duration::from_millis(10))))?;
    let started = Instant::now();
    let mut probe = [0u8; 256];
    for byte in bytes {
        if stream.write_all(std::slice::from_ref(byte)).is_err() {
            return Ok(started.elapsed());
        }
        match stream.read(&mut probe) {
            Ok(0) => return Ok(started.elapsed()),
            Ok(_) => anyhow::bail!("the server answered a request it cannot have read yet"),
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return Ok(started.elapsed()),
        }
        if started.elapsed() > wait {
            anyhow::bail!("the server still holds a trickling connection after {wait:?}");
        }
    }
    stream.set_read_timeout(Some(wait))?;
    match stream.read(&mut probe) {
        Ok(0) | Err(_) => Ok(started.elapsed()),
        Ok(_) => anyhow::bail!("the server answered an unfinished request"),
    }
}

/// Raises this test process's soft limit on open files to its hard limit (a test that opens a
/// thousand sockets needs more than the usual 1024).
pub fn raise_open_file_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let _ = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        },
    );
}

/// Open file descriptors of process `pid` (sockets included), from /proc.
pub fn open_files(pid: u32) -> anyhow::Result<usize> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

/// Resident memory of process `pid`, in KiB, from /proc.
pub fn resident_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS for process {pid}"))
}
