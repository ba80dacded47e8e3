//! A share under siege: 1,000 idle connections from 64 addresses and 100 that trickle a header
//! byte every 5 s, held open (reopened when the server closes them) while ten paced viewers
//! watch the typing scene, compared with the same viewers and no siege, in one run; and 128
//! requests for frames of a changing 4K screen from 4 addresses that never read their answers,
//! with what they cost the presenter in memory and socket buffers.

use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::bench::{cpu_seconds, peak_memory_kb, start_server};
use crate::viewers::{Path, Received};
use crate::workload::Stage;

const IDLE: usize = 1_000;
const SLOW: usize = 100;
const VIEWERS: u32 = 10;
const WARM_UP: Duration = Duration::from_secs(3);
const MEASURED: Duration = Duration::from_secs(15);
const FPS: u32 = 30;

/// What ten paced viewers got, with or without the siege.
#[derive(Debug)]
pub struct SiegeRun {
    pub attacked: bool,
    pub updates_per_viewer_per_second: f64,
    pub median_answer_ms: f64,
    pub p95_answer_ms: f64,
    pub errors: u64,
    pub cpu_percent: f64,
    pub peak_megabytes: f64,
    /// Connections the server held at the height of the siege, besides the viewers'.
    pub held_connections: usize,
    /// The update rate of the viewer that got the fewest.
    pub slowest_viewer_updates_per_second: f64,
}

/// The run without the siege, then the run with it.
pub fn siege(stage: &Stage) -> anyhow::Result<(SiegeRun, SiegeRun)> {
    raise_open_file_limit();
    Ok((run(stage, false)?, run(stage, true)?))
}

fn run(stage: &Stage, attacked: bool) -> anyhow::Result<SiegeRun> {
    let server = start_server(stage)?;
    let pid = server.child.0.id();
    let target: SocketAddr = server.authority()?.parse()?;
    let files_before = open_files(pid)?;
    let stop = Arc::new(AtomicBool::new(false));
    let attackers = if attacked {
        vec![
            std::thread::spawn({
                let stop = stop.clone();
                move || hold_idle(target, &stop)
            }),
            std::thread::spawn({
                let stop = stop.clone();
                move || trickle(target, &stop)
            }),
        ]
    } else {
        Vec::new()
    };
    let from = Instant::now() + WARM_UP;
    let end = from + MEASURED;
    let watchers = server.viewers(Path::Updates, VIEWERS, "siege", FPS, from, end)?;
    std::thread::sleep(from.saturating_duration_since(Instant::now()));
    let cpu_before = cpu_seconds(pid)?;
    let started = Instant::now();
    let mut held = 0;
    while Instant::now() < end {
        held = held.max(open_files(pid)?.saturating_sub(files_before + VIEWERS as usize));
        std::thread::sleep(Duration::from_millis(500));
    }
    let cpu_percent = (cpu_seconds(pid)? - cpu_before) / started.elapsed().as_secs_f64() * 100.0;
    let mut total = Received::default();
    let mut fewest = u64::MAX;
    for watcher in watchers {
        let received = watcher
            .join()
            .map_err(|_| anyhow::anyhow!("viewer thread panicked"))?;
        fewest = fewest.min(received.updates);
        total.add(received);
    }
    stop.store(true, Ordering::Relaxed);
    for attacker in attackers {
        let _ = attacker.join();
    }
    let peak_megabytes = peak_memory_kb(pid)? / 1024.0;
    total.answer_ms.sort_by(f64::total_cmp);
    Ok(SiegeRun {
        attacked,
        updates_per_viewer_per_second: total.updates as f64
            / f64::from(VIEWERS)
            / MEASURED.as_secs_f64(),
        median_answer_ms: crate::bench::percentile(&total.answer_ms, 0.5),
        p95_answer_ms: crate::bench::percentile(&total.answer_ms, 0.95),
        errors: total.errors,
        cpu_percent,
        peak_megabytes,
        held_connections: held,
        slowest_viewer_updates_per_second: fewest as f64 / MEASURED.as_secs_f64(),
    })
}

/// Source addresses for attackers: 64 of them, 16 connections each for the idle thousand, under
/// the per-address cap of 32, so the server really holds every one.
fn source(block: u8, n: usize) -> IpAddr {
    IpAddr::from([127, 0, block, (n % 64 + 1) as u8])
}

fn connect_from(source: IpAddr, target: SocketAddr) -> Option<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
    socket.bind(&SocketAddr::new(source, 0).into()).ok()?;
    socket.connect(&target.into()).ok()?;
    Some(socket.into())
}

/// Whether the server has closed `stream` (a peek finds the end of the stream).
fn closed(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    if stream.set_nonblocking(true).is_err() {
        return true;
    }
    let result = stream.peek(&mut byte);
    let _ = stream.set_nonblocking(false);
    !matches!(result, Err(ref error) if error.kind() == std::io::ErrorKind::WouldBlock)
}

/// Keeps `IDLE` connections open that never send a byte.
fn hold_idle(target: SocketAddr, stop: &AtomicBool) {
    let mut held: Vec<Option<TcpStream>> = (0..IDLE).map(|_| None).collect();
    while !stop.load(Ordering::Relaxed) {
        for (n, slot) in held.iter_mut().enumerate() {
            if slot.as_ref().is_none_or(closed) {
                *slot = connect_from(source(4, n), target);
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Keeps `SLOW` connections sending one byte of a request head every 5 s.
fn trickle(target: SocketAddr, stop: &AtomicBool) {
    const HEAD: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: 1\r\n";
    let mut held: Vec<(Option<TcpStream>, usize)> = (0..SLOW).map(|_| (None, 0)).collect();
    let mut next_byte = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let due = Instant::now() >= next_byte;
        for (n, (slot, at)) in held.iter_mut().enumerate() {
            if slot.as_ref().is_none_or(closed) {
                *slot = connect_from(source(5, n), target);
                *at = 0;
            }
            if due && let Some(stream) = slot.as_mut() {
                let byte = HEAD[*at % HEAD.len()];
                if stream.write_all(&[byte]).is_ok() {
                    *at += 1;
                }
            }
        }
        if due {
            next_byte = Instant::now() + Duration::from_secs(5);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn open_files(pid: u32) -> anyhow::Result<usize> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

/// A thousand sockets need more than the usual 1,024 descriptors.
fn raise_open_file_limit() {
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

/// The report's section.
pub fn section(runs: &Result<(SiegeRun, SiegeRun), String>) -> String {
    let mut out = format!(
        "\n## Under siege: {IDLE} idle + {SLOW} slow connections, {VIEWERS} paced viewers\n\n\
         The typing scene at {FPS} fps, ten viewers behaving like the page, {} s after a {} s\n\
         warm-up; the same run without the siege first. Idle connections never send a byte, slow\n\
         ones send a header byte every 5 s; both are reopened as soon as the server closes them,\n\
         from addresses under the per-address cap, so the server really holds them. The answer\n\
         time is from asking for the next update to having it (a long poll: it includes waiting\n\
         for the screen to change).\n\n",
        MEASURED.as_secs(),
        WARM_UP.as_secs()
    );
    let (calm, siege) = match runs {
        Ok(runs) => runs,
        Err(error) => return out + &format!("Not measured: {error}\n"),
    };
    out.push_str(
        "| run | updates/s per viewer | the slowest viewer | answer median | answer p95 | errors | presenter CPU | peak memory | attackers held |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for run in [calm, siege] {
        out.push_str(&format!(
            "| {} | {:.1} | {:.1} | {:.0} ms | {:.0} ms | {} | {:.1}% | {:.0} MB | {} |\n",
            if run.attacked { "siege" } else { "calm" },
            run.updates_per_viewer_per_second,
            run.slowest_viewer_updates_per_second,
            run.median_answer_ms,
            run.p95_answer_ms,
            run.errors,
            run.cpu_percent,
            run.peak_megabytes,
            run.held_connections,
        ));
    }
    out.push_str(&format!(
        "\nUnder siege the viewers got {:.2}x the updates of the calm run (the slowest of them \
         {:.2}x), with a median answer {:.2}x as long; the presenter used {:.2}x the memory.\n",
        siege.updates_per_viewer_per_second / calm.updates_per_viewer_per_second.max(1e-9),
        siege.slowest_viewer_updates_per_second / calm.updates_per_viewer_per_second.max(1e-9),
        siege.median_answer_ms / calm.median_answer_ms.max(1e-9),
        siege.peak_megabytes / calm.peak_megabytes.max(1e-9),
    ));
    out
}

/// Frame requests nobody reads: this many, from this many addresses, held this long.
const UNREAD: usize = 128;
const UNREAD_ADDRESSES: usize = 4;
const UNREAD_FOR: Duration = Duration::from_secs(10);
const HOARD_SIZE: (u16, u16) = (3840, 2160);

/// What frame requests that are never read cost the presenter.
#[derive(Debug)]
pub struct Hoard {
    pub answered: usize,
    pub refused: usize,
    /// The presenter's resident memory before the requests, and at its peak.
    pub memory_before_mb: f64,
    pub peak_memory_mb: f64,
    /// The machine's TCP buffers at their peak during the requests, less before them.
    pub peak_socket_mb: f64,
}

/// [`UNREAD`] requests for `screen.png` of a changing 4K screen of noise, from
/// [`UNREAD_ADDRESSES`] addresses, each through a 4 KiB receive buffer, never read past the head
/// of the answer, with the server's own caps.
pub fn hoard() -> anyhow::Result<Hoard> {
    use anyhow::Context;
    let (xvfb, display) =
        crate::workload::start_xvfb(u32::from(HOARD_SIZE.0), u32::from(HOARD_SIZE.1))?;
    let _xvfb = crate::bench::ChildGuard(xvfb);
    let running = Arc::new(AtomicBool::new(true));
    let (painted, first_painted) = std::sync::mpsc::channel();
    let painter = std::thread::spawn({
        let (display, running) = (display.clone(), running.clone());
        move || {
            if let Err(error) = paint_noise(&display, &running, &painted) {
                eprintln!("xtask: the 4K noise painter stopped: {error:#}");
            }
        }
    });
    let measured = (|| -> anyhow::Result<Hoard> {
        first_painted
            .recv_timeout(Duration::from_secs(120))
            .context("the 4K noise was never painted")?;
        let mut command =
            std::process::Command::new(crate::target_dir()?.join("release/screenshare"));
        command
            .env("DISPLAY", &display)
            .env_remove("WAYLAND_DISPLAY")
            .arg("serve");
        let server = crate::bench::launch_serving(command)?;
        let pid = server.child.0.id();
        let authority = server.authority()?;
        let target: SocketAddr = authority.parse()?;
        let path = format!(
            "/{}screen.png",
            server
                .viewer
                .trim_start_matches("http://")
                .split_once('/')
                .map_or("", |(_, path)| path)
        );
        // A first frame, whole (asking starts the capture), before anything is counted.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let fetched = std::process::Command::new("curl")
                .args([
                    "-sf",
                    "-o",
                    "/dev/null",
                    &format!("{}screen.png", server.viewer),
                ])
                .status()
                .context("cannot run curl")?;
            if fetched.success() {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "no first frame within 60 s");
            std::thread::sleep(Duration::from_millis(200));
        }
        let memory_before = crate::bench::memory_kb(pid, "VmRSS")?;
        let sockets_before = tcp_buffer_bytes()?;
        let (mut answered, mut refused, mut held) = (0, 0, Vec::new());
        for n in 0..UNREAD {
            let source = IpAddr::from([127, 0, 6, (n % UNREAD_ADDRESSES + 1) as u8]);
            let (client, status) = unread_request(source, target, &authority, &path)
                .with_context(|| format!("request {n}"))?;
            match status {
                200 => answered += 1,
                429 | 503 => refused += 1,
                other => anyhow::bail!("request {n} was answered {other}"),
            }
            held.push(client);
        }
        let until = Instant::now() + UNREAD_FOR;
        let (mut peak_memory, mut peak_sockets) = (memory_before, sockets_before);
        while Instant::now() < until {
            peak_memory = peak_memory.max(crate::bench::memory_kb(pid, "VmRSS")?);
            peak_sockets = peak_sockets.max(tcp_buffer_bytes()?);
            std::thread::sleep(Duration::from_millis(200));
        }
        drop(held);
        Ok(Hoard {
            answered,
            refused,
            memory_before_mb: memory_before / 1024.0,
            peak_memory_mb: peak_memory / 1024.0,
            peak_socket_mb: peak_sockets.saturating_sub(sockets_before) as f64 / 1024.0 / 1024.0,
        })
    })();
    running.store(false, Ordering::Relaxed);
    let _ = painter.join();
    measured
}

/// One request from `source` whose answer is read only as far as its status.
fn unread_request(
    source: IpAddr,
    target: SocketAddr,
    authority: &str,
    path: &str,
) -> anyhow::Result<(TcpStream, u16)> {
    use std::io::Read;
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.set_recv_buffer_size(4096)?;
    socket.bind(&SocketAddr::new(source, 0).into())?;
    socket.connect(&target.into())?;
    let mut client: TcpStream = socket.into();
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    client.write_all(format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\n\r\n").as_bytes())?;
    let mut head = [0u8; 256];
    let got = client.read(&mut head)?;
    let status = String::from_utf8_lossy(&head[..got])
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    Ok((client, status))
}

/// A screen of noise sliding down a row five times a second, until `running` clears; says on
/// `painted` when the first one is on the screen.
fn paint_noise(
    display: &str,
    running: &AtomicBool,
    painted: &std::sync::mpsc::Sender<()>,
) -> anyhow::Result<()> {
    use x11rb::connection::Connection;
    use x11rb::protocol::xproto::ConnectionExt;
    const SLIDE: usize = 64;
    let (conn, screen) = x11rb::connect(Some(display))?;
    let root = conn.setup().roots[screen].root;
    let row = usize::from(HOARD_SIZE.0) * 4;
    let mut noise = vec![0u8; row * (usize::from(HOARD_SIZE.1) + SLIDE)];
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    for chunk in noise.chunks_exact_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunk.copy_from_slice(&state.to_le_bytes());
    }
    let screen_bytes = row * usize::from(HOARD_SIZE.1);
    for step in 0.. {
        if !running.load(Ordering::Relaxed) {
            break;
        }
        let from = (step % SLIDE) * row;
        crate::workload::put_picture_of_width(
            &conn,
            root,
            HOARD_SIZE.0,
            &noise[from..from + screen_bytes],
        )?;
        // A round trip: the picture is on the screen before anyone is told.
        conn.get_input_focus()?.reply()?;
        if step == 0 {
            let _ = painted.send(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// Bytes in the machine's TCP buffers (`/proc/net/sockstat`, in pages).
fn tcp_buffer_bytes() -> anyhow::Result<u64> {
    use anyhow::Context;
    let sockstat = std::fs::read_to_string("/proc/net/sockstat")?;
    let pages: u64 = sockstat
        .lines()
        .find_map(|line| line.strip_prefix("TCP:"))
        .and_then(|fields| {
            let mut words = fields.split_whitespace();
            while let Some(word) = words.next() {
                if word == "mem" {
                    return words.next()?.parse().ok();
                }
            }
            None
        })
        .context("no TCP memory in /proc/net/sockstat")?;
    Ok(pages * 4096)
}

/// The report's section for the unread frames.
pub fn hoard_section(hoard: &Result<Hoard, String>) -> String {
    let mut out = format!(
        "\n## Frames nobody reads: {UNREAD} requests from {UNREAD_ADDRESSES} addresses on a changing 4K screen\n\n\
         A {}x{} screen of noise changing five times a second (the largest frames there are);\n\
         {UNREAD} requests for `screen.png`, spread over {UNREAD_ADDRESSES} addresses, each client\n\
         with a 4 KiB receive buffer, reading the status line and nothing more, held {} s. The\n\
         server runs with its own caps. Socket buffers are the machine's TCP memory\n\
         (`/proc/net/sockstat`) at its peak, less before.\n\n",
        HOARD_SIZE.0,
        HOARD_SIZE.1,
        UNREAD_FOR.as_secs()
    );
    let hoard = match hoard {
        Ok(hoard) => hoard,
        Err(error) => return out + &format!("Not measured: {error}\n"),
    };
    out.push_str(&format!(
        "| answered | refused (429, 503) | presenter memory before | at its peak | socket buffers at their peak | peak memory + sockets |\n\
         |---:|---:|---:|---:|---:|---:|\n\
         | {} | {} | {:.0} MB | {:.0} MB | {:.0} MB | {:.0} MB |\n",
        hoard.answered,
        hoard.refused,
        hoard.memory_before_mb,
        hoard.peak_memory_mb,
        hoard.peak_socket_mb,
        hoard.peak_memory_mb + hoard.peak_socket_mb,
    ));
    out
}
