//! `cargo xtask bench`: figures for docs/BENCHMARKS.md, measured on a 1920x1080 Xvfb showing
//! changing text (a terminal running `top`), so PNG and JPEG see a screen, not a flat colour.
//!
//! 1. The frame pipeline (grab, scale, PNG, JPEG), through the engine's own bench target.
//! 2. Serving: the release binary under `wrk` on 127.0.0.1 with 1 and then 10 connections, with
//!    the server's CPU time read from /proc and its encode counters read from the control URL.
//!    Machines here are shared and noisy, so the report leans on ratios within one run.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::virtual_screen::VirtualScreen;
use crate::{cargo, cargo_command, packages, workspace_root};

const WRK_SECONDS: u32 = 10;

pub fn bench(_args: &[String]) -> anyhow::Result<()> {
    packages::ensure(packages::BENCH)?;
    cargo(&["build", "--release", "--package", "screenshare-cli"])?;
    // `top` redraws five times a second: a screen that keeps changing, like a demo would.
    let screen = VirtualScreen::start_sized(1920, 1080, "0.2")?;
    std::thread::sleep(Duration::from_secs(1));

    eprintln!("xtask: measuring the frame pipeline…");
    let pipeline = pipeline(&screen)?;
    eprintln!("xtask: measuring serving with wrk…");
    let one = serve_under_load(&screen, 1)?;
    let ten = serve_under_load(&screen, 10)?;
    eprintln!("xtask: measuring paced viewers…");
    let paced_one = paced_viewers(&screen, 1)?;
    let paced_ten = paced_viewers(&screen, 10)?;

    let report = report(&pipeline, &one, &ten, &paced_one, &paced_ten);
    let path = workspace_root().join("docs/BENCHMARKS.md");
    std::fs::create_dir_all(path.parent().context("docs folder")?)?;
    std::fs::write(&path, &report)?;
    println!("{report}");
    eprintln!("xtask: wrote {}", path.display());
    Ok(())
}

/// The engine's bench target prints `name mean_ms` lines.
fn pipeline(screen: &VirtualScreen) -> anyhow::Result<Vec<(String, f64)>> {
    let mut command = cargo_command(&[
        "bench",
        "--package",
        "screenshare-core",
        "--bench",
        "pipeline",
    ]);
    command
        .env("DISPLAY", screen.display())
        .env_remove("WAYLAND_DISPLAY")
        .stdout(Stdio::piped());
    let output = command.output().context("cannot run the pipeline bench")?;
    if !output.status.success() {
        bail!("the pipeline bench failed: {}", output.status);
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let (name, value) = line.split_once('\t')?;
            Some((name.to_owned(), value.trim().parse().ok()?))
        })
        .collect())
}

struct Load {
    connections: u32,
    requests_per_second: f64,
    megabytes_per_second: f64,
    cpu_percent: f64,
    jpeg_encodes: u64,
    requests: u64,
    achieved_fps: f64,
}

/// The release binary sharing `screen` at 30 fps on 127.0.0.1, with its viewer and status URLs.
struct Server {
    child: ChildGuard,
    viewer: String,
    status: String,
}

fn start_server(screen: &VirtualScreen) -> anyhow::Result<Server> {
    let binary = workspace_root().join("target/release/screenshare");
    let mut child = ChildGuard(
        Command::new(&binary)
            .args(["serve", "--bind", "127.0.0.1", "--port", "0", "--fps", "30"])
            .env("DISPLAY", screen.display())
            .env_remove("WAYLAND_DISPLAY")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start screenshare")?,
    );
    let stdout = child.0.stdout.take().context("server stdout")?;
    let mut viewer = String::new();
    let mut status = String::new();
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        if let Some(url) = line.strip_prefix("viewer ") {
            viewer = url.trim().to_owned();
        } else if let Some(url) = line.strip_prefix("control ") {
            status = url.trim().replace("/settings", "/status");
            break;
        }
    }
    if viewer.is_empty() || status.is_empty() {
        bail!("screenshare printed no URLs");
    }
    Ok(Server {
        child,
        viewer,
        status,
    })
}

fn serve_under_load(screen: &VirtualScreen, connections: u32) -> anyhow::Result<Load> {
    let server = start_server(screen)?;
    let (viewer, control) = (server.viewer.clone(), server.status.clone());
    let frame_url = format!("{viewer}screen.jpg");
    // Warm up: the first request starts capture.
    run_wrk(&frame_url, connections, 2)?;
    let before_status = fetch_json(&control)?;
    let before_cpu = cpu_seconds(server.child.0.id())?;
    let started = Instant::now();
    let wrk = run_wrk(&frame_url, connections, WRK_SECONDS)?;
    let elapsed = started.elapsed().as_secs_f64();
    let after_cpu = cpu_seconds(server.child.0.id())?;
    let after_status = fetch_json(&control)?;
    Ok(Load {
        connections,
        requests_per_second: wrk.requests as f64 / elapsed,
        megabytes_per_second: wrk.bytes as f64 / elapsed / 1e6,
        cpu_percent: (after_cpu - before_cpu) / elapsed * 100.0,
        jpeg_encodes: after_status.jpeg_encodes - before_status.jpeg_encodes,
        requests: wrk.requests,
        achieved_fps: after_status.achieved_fps,
    })
}

/// What paced viewers got: each asks for the frame after the one it has (`?after=N`), as the
/// viewer page does, so each receives every new frame once and nothing more.
struct Paced {
    viewers: u32,
    frames_per_viewer_per_second: f64,
    cpu_percent: f64,
    megabytes_per_second: f64,
    frames_captured: u64,
    jpeg_encodes: u64,
}

fn paced_viewers(screen: &VirtualScreen, viewers: u32) -> anyhow::Result<Paced> {
    let server = start_server(screen)?;
    let address = server
        .viewer
        .trim_start_matches("http://")
        .split('/')
        .next()
        .context("viewer URL host")?
        .to_owned();
    let path = format!(
        "/{}screen.jpg",
        server
            .viewer
            .trim_start_matches("http://")
            .split_once('/')
            .map_or("", |(_, path)| path)
    );
    let before_status = fetch_json(&server.status)?;
    let before_cpu = cpu_seconds(server.child.0.id())?;
    let deadline = Instant::now() + Duration::from_secs(u64::from(WRK_SECONDS));
    let started = Instant::now();
    let handles: Vec<_> = (0..viewers)
        .map(|viewer| {
            let (address, path) = (address.clone(), path.clone());
            std::thread::spawn(move || -> anyhow::Result<(u64, u64)> {
                let (mut frames, mut bytes, mut after) = (0u64, 0u64, 0u64);
                while Instant::now() < deadline {
                    let (seq, length) =
                        long_poll(&address, &format!("{path}?v=bench-{viewer}&after={after}"))?;
                    if let Some(seq) = seq {
                        after = seq;
                        frames += 1;
                        bytes += length;
                    }
                }
                Ok((frames, bytes))
            })
        })
        .collect();
    let mut frames = 0;
    let mut bytes = 0;
    for handle in handles {
        let (viewer_frames, viewer_bytes) = handle
            .join()
            .map_err(|_| anyhow::anyhow!("viewer thread panicked"))??;
        frames += viewer_frames;
        bytes += viewer_bytes;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let after_cpu = cpu_seconds(server.child.0.id())?;
    let after_status = fetch_json(&server.status)?;
    Ok(Paced {
        viewers,
        frames_per_viewer_per_second: frames as f64 / f64::from(viewers) / elapsed,
        cpu_percent: (after_cpu - before_cpu) / elapsed * 100.0,
        megabytes_per_second: bytes as f64 / elapsed / 1e6,
        frames_captured: after_status.frame - before_status.frame,
        jpeg_encodes: after_status.jpeg_encodes - before_status.jpeg_encodes,
    })
}

/// One HTTP/1.1 request on a fresh connection; the frame number and body length of a 200.
fn long_poll(address: &str, path: &str) -> anyhow::Result<(Option<u64>, u64)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let split = response
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .context("no end of headers")?;
    let head = String::from_utf8_lossy(&response[..split]).to_lowercase();
    if !head.starts_with("http/1.1 200") {
        return Ok((None, 0));
    }
    let seq = head
        .lines()
        .find_map(|line| line.strip_prefix("x-frame-seq:"))
        .and_then(|value| value.trim().parse().ok());
    Ok((seq, (response.len() - split - 4) as u64))
}

struct WrkResult {
    requests: u64,
    bytes: u64,
}

fn run_wrk(url: &str, connections: u32, seconds: u32) -> anyhow::Result<WrkResult> {
    let output = Command::new("wrk")
        .args([
            "-t",
            &connections.min(2).to_string(),
            "-c",
            &connections.to_string(),
            "-d",
            &format!("{seconds}s"),
            url,
        ])
        .output()
        .context("cannot run wrk")?;
    let text = String::from_utf8_lossy(&output.stdout);
    // "  1234 requests in 10.00s, 56.78MB read"
    let line = text
        .lines()
        .find(|line| line.contains(" requests in "))
        .with_context(|| format!("unexpected wrk output:\n{text}"))?;
    let mut words = line.split_whitespace();
    let requests = words.next().and_then(|n| n.parse().ok()).unwrap_or(0);
    let read = line
        .rsplit(", ")
        .next()
        .unwrap_or("")
        .trim_end_matches(" read");
    Ok(WrkResult {
        requests,
        bytes: parse_size(read),
    })
}

fn parse_size(text: &str) -> u64 {
    let (number, unit) = text.split_at(
        text.find(|c: char| c.is_ascii_alphabetic())
            .unwrap_or(text.len()),
    );
    let number: f64 = number.parse().unwrap_or(0.0);
    let scale = match unit {
        "KB" => 1024.0,
        "MB" => 1024.0 * 1024.0,
        "GB" => 1024.0 * 1024.0 * 1024.0,
        _ => 1.0,
    };
    (number * scale) as u64
}

/// User plus system CPU time of a process, from /proc/PID/stat, in seconds.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after_name = stat.rsplit(')').next().context("stat format")?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime) are 12 and 13 after the name.
    let ticks: f64 = fields
        .get(11..13)
        .context("stat fields")?
        .iter()
        .map(|field| field.parse::<f64>().unwrap_or(0.0))
        .sum();
    let per_second = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| {
            String::from_utf8_lossy(&output.stdout)
                .trim()
                .parse::<f64>()
                .ok()
        })
        .unwrap_or(100.0);
    Ok(ticks / per_second)
}

/// What the bench reads off the share's status JSON.
struct StatusFigures {
    jpeg_encodes: u64,
    frame: u64,
    achieved_fps: f64,
}

fn fetch_json(url: &str) -> anyhow::Result<StatusFigures> {
    let output = Command::new("curl")
        .args(["-sf", url])
        .output()
        .context("cannot run curl")?;
    let status: serde_json::Value = serde_json::from_slice(&output.stdout)
        .with_context(|| format!("no status JSON from {url}"))?;
    Ok(StatusFigures {
        jpeg_encodes: status["encodes"]["jpeg"]
            .as_u64()
            .with_context(|| format!("no encode counts in {status}"))?,
        frame: status["frame"].as_u64().unwrap_or(0),
        achieved_fps: status["achieved_fps"].as_f64().unwrap_or(0.0),
    })
}

struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split(':').nth(1))
                .map(|name| name.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            let kb: f64 = info
                .lines()
                .next()?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some(format!("{:.0} GiB", kb / 1024.0 / 1024.0))
        })
        .unwrap_or_default();
    format!("{cpu}, {cores} cores, {memory}")
}

fn today() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn report(
    pipeline: &[(String, f64)],
    one: &Load,
    ten: &Load,
    paced_one: &Paced,
    paced_ten: &Paced,
) -> String {
    let mut out = String::new();
    out.push_str("# Benchmarks\n\n");
    out.push_str(&format!(
        "Measured by `cargo xtask bench` on {} ({}).\n\
         Screen: a 1920x1080 Xvfb showing a terminal running `top` and a clock.\n\
         These machines are shared and noisy: read the ratios, not the last digit.\n\n",
        today(),
        machine()
    ));
    out.push_str("## One frame, 1920x1080 (mean of the runs)\n\n| step | result |\n|---|---:|\n");
    for (name, value) in pipeline {
        if name.contains("bytes") {
            out.push_str(&format!("| {name} | {:.0} KB |\n", value / 1024.0));
        } else {
            out.push_str(&format!("| {name} | {value:.1} ms |\n"));
        }
    }
    out.push_str(&format!(
        "\n## Paced viewers: each asks for the next frame (`?after=N`), like the viewer page\n\n\
         {WRK_SECONDS} s each, share at 30 fps, the screen changing about five times a second.\n\n\
         | viewers | frames per viewer per s | server CPU | MB/s out | frames captured | JPEG encodes |\n\
         |---:|---:|---:|---:|---:|---:|\n"
    ));
    for paced in [paced_one, paced_ten] {
        out.push_str(&format!(
            "| {} | {:.1} | {:.0}% | {:.1} | {} | {} |\n",
            paced.viewers,
            paced.frames_per_viewer_per_second,
            paced.cpu_percent,
            paced.megabytes_per_second,
            paced.frames_captured,
            paced.jpeg_encodes,
        ));
    }
    out.push_str(&format!(
        "\nTen viewers cost {:.2}x the CPU of one: frames are captured and encoded once, \
         whatever the number of viewers.\n",
        paced_ten.cpu_percent / paced_one.cpu_percent.max(1e-9)
    ));
    out.push_str(&format!(
        "\n## Serving `screen.jpg` under `wrk` on 127.0.0.1 ({WRK_SECONDS} s, share at 30 fps)\n\n\
         Every connection asks again as soon as it has an answer: this is the server's capacity,\n\
         far above what paced viewers ask for.\n\n\
         | connections | frames served/s | MB/s | server CPU | JPEG encodes | encodes per request | capture fps |\n\
         |---:|---:|---:|---:|---:|---:|---:|\n"
    ));
    for load in [one, ten] {
        out.push_str(&format!(
            "| {} | {:.0} | {:.1} | {:.0}% | {} | {:.4} | {:.1} |\n",
            load.connections,
            load.requests_per_second,
            load.megabytes_per_second,
            load.cpu_percent,
            load.jpeg_encodes,
            load.jpeg_encodes as f64 / load.requests.max(1) as f64,
            load.achieved_fps,
        ));
    }
    let cpu_per_request = |load: &Load| load.cpu_percent / load.requests_per_second.max(1e-9);
    out.push_str(&format!(
        "\nRatios within this run: 10 connections get {:.1}x the frames per second of 1, \
         at {:.2}x the CPU per frame served; encodes stay bounded by captured frames, not requests.\n",
        ten.requests_per_second / one.requests_per_second.max(1e-9),
        cpu_per_request(ten) / cpu_per_request(one).max(1e-9),
    ));
    out
}
