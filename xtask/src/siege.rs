//! A share under siege: 1,000 idle connections and 100 that trickle a header byte every 5 s,
//! held open (reopened when the server closes them) while ten paced viewers watch the typing
//! scene. Compared with the same viewers and no siege, in one run.

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
    for watcher in watchers {
        total.add(
            watcher
                .join()
                .map_err(|_| anyhow::anyhow!("viewer thread panicked"))?,
        );
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
    })
}

/// Source addresses for attackers: 25 connections each, under the per-address cap of 32, so the
/// server really holds every one.
fn source(block: u8, n: usize) -> IpAddr {
    IpAddr::from([127, 0, block, (n / 25 + 1) as u8])
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
        "| run | updates/s per viewer | answer median | answer p95 | errors | presenter CPU | peak memory | attackers held |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for run in [calm, siege] {
        out.push_str(&format!(
            "| {} | {:.1} | {:.0} ms | {:.0} ms | {} | {:.1}% | {:.0} MB | {} |\n",
            if run.attacked { "siege" } else { "calm" },
            run.updates_per_viewer_per_second,
            run.median_answer_ms,
            run.p95_answer_ms,
            run.errors,
            run.cpu_percent,
            run.peak_megabytes,
            run.held_connections,
        ));
    }
    out.push_str(&format!(
        "\nUnder siege the viewers got {:.2}x the updates of the calm run, with a median answer \
         {:.2}x as long; the presenter used {:.2}x the memory.\n",
        siege.updates_per_viewer_per_second / calm.updates_per_viewer_per_second.max(1e-9),
        siege.median_answer_ms / calm.median_answer_ms.max(1e-9),
        siege.peak_megabytes / calm.peak_megabytes.max(1e-9),
    ));
    out
}
