//! The viewer page in a real browser, against the best-known peer on the same scene: x11vnc
//! serving noVNC (through websockify) to the same headless Chromium. A relay between browser and
//! server counts the bytes that reach the browser; CPU is read off the serving processes.
//! Also glass-to-glass latency: an X change until the page's canvas shows it.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{ConnectionExt, CreateGCAux, Rectangle};

use crate::workload::Stage;

/// What one browser received, and what serving it cost.
#[derive(Debug, Clone)]
pub struct BrowserRun {
    pub megabits_per_second: f64,
    /// The server itself (screenshare, or x11vnc).
    pub cpu_percent: f64,
    /// A proxy the peer needs in front (websockify); zero for screenshare.
    pub proxy_cpu_percent: f64,
    /// Bytes a second by the path of the request they answered (query left out), most first.
    pub by_path: Vec<(String, f64)>,
}

/// Bytes sent back to the browser, by the path of the request each answered.
type BytesByPath = Arc<std::sync::Mutex<std::collections::BTreeMap<String, u64>>>;

const WARM_UP: Duration = Duration::from_secs(6);
const MEASURED: Duration = Duration::from_secs(12);

/// Forwards 127.0.0.1:<port> to `target`, counting the bytes sent back to the client, and
/// holding every byte back for a while in either direction when asked (a network far away).
struct CountingRelay {
    port: u16,
    down: Arc<AtomicU64>,
    by_path: BytesByPath,
    running: Arc<AtomicBool>,
}

impl CountingRelay {
    fn start(target: String) -> anyhow::Result<Self> {
        Self::start_delayed(target, Duration::ZERO)
    }

    /// Every byte arrives `one_way` after it was sent, with no limit on throughput.
    fn start_delayed(target: String, one_way: Duration) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let down = Arc::new(AtomicU64::new(0));
        let by_path = BytesByPath::default();
        let running = Arc::new(AtomicBool::new(true));
        let (count, keep, paths) = (down.clone(), running.clone(), by_path.clone());
        std::thread::spawn(move || {
            while keep.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let Ok(server) = TcpStream::connect(&target) else {
                            continue;
                        };
                        let _ = client.set_nonblocking(false);
                        let _ = client.set_nodelay(true);
                        let _ = server.set_nodelay(true);
                        let pipes = client
                            .try_clone()
                            .and_then(|c| Ok((c, server.try_clone()?)));
                        let Ok((client_copy, server_copy)) = pipes else {
                            continue;
                        };
                        // HTTP/1.1 answers in order: what comes back belongs to the request
                        // the browser sent last on this connection.
                        let asked = Arc::new(std::sync::Mutex::new(String::from("(none)")));
                        let down = Counted {
                            total: count.clone(),
                            by_path: paths.clone(),
                            asked: asked.clone(),
                        };
                        std::thread::spawn(move || pipe(server, client_copy, Some(down), one_way));
                        std::thread::spawn(move || {
                            pipe_noting_requests(client, server_copy, asked, one_way)
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Ok(Self {
            port,
            down,
            by_path,
            running,
        })
    }

    fn bytes_down(&self) -> u64 {
        self.down.load(Ordering::SeqCst)
    }

    fn bytes_by_path(&self) -> std::collections::BTreeMap<String, u64> {
        self.by_path
            .lock()
            .map(|counts| counts.clone())
            .unwrap_or_default()
    }
}

/// Where the bytes sent back to the browser are counted.
struct Counted {
    total: Arc<AtomicU64>,
    by_path: BytesByPath,
    /// The path of the request this connection answers now.
    asked: Arc<std::sync::Mutex<String>>,
}

impl Counted {
    fn add(&self, bytes: u64) {
        self.total.fetch_add(bytes, Ordering::SeqCst);
        let path = self
            .asked
            .lock()
            .map(|path| path.clone())
            .unwrap_or_default();
        if let Ok(mut counts) = self.by_path.lock() {
            *counts.entry(path).or_default() += bytes;
        }
    }
}

/// The path (without its query) of each HTTP request that starts in `piece`.
fn request_path(piece: &[u8]) -> Option<String> {
    let line = piece.split(|byte| *byte == b'\r').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut words = line.split(' ');
    let method = words.next()?;
    if !matches!(method, "GET" | "POST" | "PATCH" | "PUT" | "DELETE" | "HEAD") {
        return None;
    }
    let target = words.next()?;
    Some(target.split('?').next().unwrap_or(target).to_owned())
}

/// Like [`pipe`] from the browser, noting the path of each request as it passes.
fn pipe_noting_requests(
    from: TcpStream,
    to: TcpStream,
    asked: Arc<std::sync::Mutex<String>>,
    delay: Duration,
) {
    pipe_with(from, to, None, delay, move |piece| {
        if let Some(path) = request_path(piece)
            && let Ok(mut asked) = asked.lock()
        {
            *asked = path;
        }
    });
}

impl Drop for CountingRelay {
    fn drop(&mut self) {
        self.running.store(false, Ordering::SeqCst);
    }
}

/// Copies `from` to `to`, each piece `delay` after it was read (a second thread writes, so that
/// reading goes on meanwhile: the delay adds latency, not a limit on throughput).
fn pipe(from: TcpStream, to: TcpStream, count: Option<Counted>, delay: Duration) {
    pipe_with(from, to, count, delay, |_| {});
}

fn pipe_with(
    mut from: TcpStream,
    to: TcpStream,
    count: Option<Counted>,
    delay: Duration,
    mut note: impl FnMut(&[u8]),
) {
    let (send, receive) = std::sync::mpsc::channel::<(Instant, Vec<u8>)>();
    let writer = std::thread::spawn(move || {
        let mut to = to;
        for (read_at, piece) in receive {
            let due = read_at + delay;
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            if to.write_all(&piece).is_err() {
                break;
            }
            if let Some(count) = &count {
                count.add(piece.len() as u64);
            }
        }
        let _ = to.shutdown(Shutdown::Both);
    });
    let mut buffer = [0u8; 64 * 1024];
    while let Ok(read @ 1..) = from.read(&mut buffer) {
        note(&buffer[..read]);
        if send
            .send((Instant::now(), buffer[..read].to_vec()))
            .is_err()
        {
            break;
        }
    }
    drop(send);
    let _ = writer.join();
    let _ = from.shutdown(Shutdown::Both);
}

pub(crate) struct Killed(pub(crate) Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Headless Chromium on `url`, in real time, until dropped.
fn chromium(url: &str, profile: &std::path::Path) -> anyhow::Result<Killed> {
    Command::new("chromium")
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
            "--window-size=1280,800",
            &format!("--user-data-dir={}", profile.display()),
            url,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(Killed)
        .context("cannot start chromium")
}

pub(crate) fn profile_dir(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("screenshare-bench-{name}-{}", std::process::id()))
}

/// Measures a browser on `url` (already through the relay) while `servers` serve it.
fn measure(
    relay: &CountingRelay,
    url: &str,
    server: u32,
    proxy: Option<u32>,
    name: &str,
) -> anyhow::Result<BrowserRun> {
    let profile = profile_dir(name);
    let browser = chromium(url, &profile)?;
    std::thread::sleep(WARM_UP);
    // A loaded machine can take longer to start the browser and bring the first (whole) screen:
    // measure only once a second passes with little arriving.
    let settled_by = Instant::now() + Duration::from_secs(20);
    loop {
        let before = relay.bytes_down();
        std::thread::sleep(Duration::from_secs(1));
        if relay.bytes_down() - before < 100_000 || Instant::now() > settled_by {
            break;
        }
    }
    let (bytes_before, cpu_before) = (relay.bytes_down(), crate::bench::cpu_seconds(server)?);
    let paths_before = relay.bytes_by_path();
    let proxy_before = proxy.map(crate::bench::cpu_seconds).transpose()?;
    let started = Instant::now();
    std::thread::sleep(MEASURED);
    let elapsed = started.elapsed().as_secs_f64();
    let bytes = relay.bytes_down() - bytes_before;
    let mut by_path: Vec<(String, f64)> = relay
        .bytes_by_path()
        .into_iter()
        .map(|(path, after)| {
            let before = paths_before.get(&path).copied().unwrap_or(0);
            (path, (after - before) as f64 / MEASURED.as_secs_f64())
        })
        .filter(|(_, rate)| *rate > 0.0)
        .collect();
    by_path.sort_by(|a, b| b.1.total_cmp(&a.1));
    let cpu = crate::bench::cpu_seconds(server)? - cpu_before;
    let proxy_cpu = match (proxy, proxy_before) {
        (Some(pid), Some(before)) => crate::bench::cpu_seconds(pid)? - before,
        _ => 0.0,
    };
    drop(browser);
    let _ = std::fs::remove_dir_all(&profile);
    if bytes == 0 {
        bail!("{name}: the browser received nothing");
    }
    Ok(BrowserRun {
        megabits_per_second: bytes as f64 * 8.0 / 1e6 / elapsed,
        cpu_percent: cpu / elapsed * 100.0,
        proxy_cpu_percent: proxy_cpu / elapsed * 100.0,
        by_path,
    })
}

/// The viewer page of a share of `stage` at 30 fps, in Chromium.
pub fn our_page(stage: &Stage) -> anyhow::Result<BrowserRun> {
    let server = crate::bench::start_server(stage)?;
    let (address, path) = split_url(&server.viewer)?;
    let relay = CountingRelay::start(address)?;
    let url = format!("http://127.0.0.1:{}/{path}", relay.port);
    measure(&relay, &url, server.child.0.id(), None, "page")
}

/// x11vnc on `stage`, shown by noVNC in Chromium through websockify.
pub fn vnc_peer(stage: &Stage) -> anyhow::Result<BrowserRun> {
    let rfb_port = free_port()?;
    let web_port = free_port()?;
    let x11vnc = Killed(
        stage
            .command("x11vnc")
            .args([
                "-rfbport",
                &rfb_port.to_string(),
                "-localhost",
                "-nopw",
                "-shared",
                "-forever",
                "-quiet",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start x11vnc (apt-get install x11vnc)")?,
    );
    let websockify = Killed(
        Command::new("websockify")
            .args([
                "--web",
                "/usr/share/novnc",
                &format!("127.0.0.1:{web_port}"),
                &format!("127.0.0.1:{rfb_port}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start websockify (apt-get install websockify novnc)")?,
    );
    wait_for_port(rfb_port)?;
    wait_for_port(web_port)?;
    let relay = CountingRelay::start(format!("127.0.0.1:{web_port}"))?;
    let url = format!(
        "http://127.0.0.1:{port}/vnc_lite.html?host=127.0.0.1&port={port}&scale=true",
        port = relay.port
    );
    measure(
        &relay,
        &url,
        x11vnc.0.id(),
        Some(websockify.0.id()),
        "novnc",
    )
}

/// Glass to glass: a square changes colour on the X screen; the time until the page's canvas
/// shows the new colour, read through chromedriver. Returns (p50, p95) in milliseconds.
pub fn glass_to_glass(stage: &Stage, samples: usize) -> anyhow::Result<(f64, f64)> {
    let server = crate::bench::start_server(stage)?;
    let (driver, webdriver) = browser_on(&server.viewer, "glass")?;
    let figures = glass_samples(stage, &webdriver, samples);
    drop(webdriver);
    drop(driver);
    figures
}

/// Reads the colour of the page's canvas at a point of the shared screen (-1: no screen yet).
const READ_CANVAS: &str = "const c = document.getElementById('screen'); \
    if (!c || c.width < 1100) return -1; \
    const d = c.getContext('2d').getImageData(1016, 616, 1, 1).data; \
    return d[0] * 65536 + d[1] * 256 + d[2];";

fn wait_for_screen(webdriver: &WebDriver) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while webdriver.execute(READ_CANVAS)?.as_i64() == Some(-1) {
        if Instant::now() > deadline {
            bail!("the page never showed the screen");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// `samples` changes painted on `stage`, each timed until the page in `webdriver` shows it:
/// (p50, p95) in milliseconds.
fn glass_samples(
    stage: &Stage,
    webdriver: &WebDriver,
    samples: usize,
) -> anyhow::Result<(f64, f64)> {
    let (conn, screen) = x11rb::connect(Some(stage.display()))?;
    let root = conn.setup().roots[screen].root;
    let mut latencies = Vec::with_capacity(samples);
    wait_for_screen(webdriver)?;
    for sample in 0..samples {
        let colour: u32 = if sample % 2 == 0 { 0xff2040 } else { 0x20ff40 } ^ (sample as u32 & 7);
        paint(&conn, root, colour, (1000, 600, 32))?;
        let painted = Instant::now();
        loop {
            if webdriver.execute(READ_CANVAS)?.as_i64() == Some(i64::from(colour)) {
                latencies.push(painted.elapsed().as_secs_f64() * 1000.0);
                break;
            }
            if painted.elapsed() > Duration::from_secs(5) {
                bail!("the page did not show a change within 5 s");
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    latencies.sort_by(f64::total_cmp);
    let at = |share: f64| crate::bench::percentile(&latencies, share);
    Ok((at(0.5), at(0.95)))
}

/// A square of `colour` at (x, y) with side `size` on the root window, drawn before returning.
fn paint(
    conn: &impl Connection,
    root: u32,
    colour: u32,
    (x, y, size): (i16, i16, u16),
) -> anyhow::Result<()> {
    let gc = conn.generate_id()?;
    conn.create_gc(gc, root, &CreateGCAux::new().foreground(colour))?;
    conn.poly_fill_rectangle(
        root,
        gc,
        &[Rectangle {
            x,
            y,
            width: size,
            height: size,
        }],
    )?;
    conn.free_gc(gc)?;
    conn.get_input_focus()?.reply()?;
    Ok(())
}

/// The page a round trip away: updates it takes of a screen that changes every frame, and
/// glass to glass there.
#[derive(Debug, Clone, Copy)]
pub struct FarPage {
    pub round_trip_ms: u32,
    /// Updates the server sent the page, per second (the presenter's viewer list counts them).
    pub updates_per_second: f64,
    /// Frames the share published meanwhile, per second.
    pub published_per_second: f64,
    pub glass_p50_ms: f64,
    pub glass_p95_ms: f64,
}

/// The viewer page in Chromium behind a relay that delays every byte by half of `round_trip`,
/// while a square on the screen changes colour 60 times a second (so every frame the share takes
/// differs); then glass to glass through the same relay.
pub fn far_page(stage: &Stage, round_trip: Duration) -> anyhow::Result<FarPage> {
    let server = crate::bench::start_server(stage)?;
    let (address, path) = split_url(&server.viewer)?;
    let relay = CountingRelay::start_delayed(address, round_trip / 2)?;
    let url = format!("http://127.0.0.1:{}/{path}", relay.port);
    let (driver, webdriver) = browser_on(&url, "far")?;
    wait_for_screen(&webdriver)?;
    let viewers_url = server.status.replace("/status", "/viewers");
    let counts = || -> anyhow::Result<(u64, u64)> {
        let viewers = crate::bench::get_json(&viewers_url)?;
        let taken = viewers
            .as_array()
            .and_then(|list| list.iter().filter_map(|v| v["frames"].as_u64()).max())
            .with_context(|| format!("no viewer in {viewers}"))?;
        let published = crate::bench::get_json(&server.status)?["frame"]
            .as_u64()
            .context("no frame count in the status")?;
        Ok((taken, published))
    };
    let painting = Arc::new(AtomicBool::new(true));
    let painter = {
        let (painting, display) = (painting.clone(), stage.display().to_owned());
        std::thread::spawn(move || -> anyhow::Result<()> {
            let (conn, screen) = x11rb::connect(Some(&display))?;
            let root = conn.setup().roots[screen].root;
            let mut step = 0u32;
            while painting.load(Ordering::SeqCst) {
                paint(
                    &conn,
                    root,
                    0x400000 | ((step * 40) & 0xffff),
                    (1300, 700, 64),
                )?;
                step = step.wrapping_add(1);
                std::thread::sleep(Duration::from_millis(16));
            }
            Ok(())
        })
    };
    std::thread::sleep(Duration::from_secs(3));
    let (taken_before, published_before) = counts()?;
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(8));
    let (taken_after, published_after) = counts()?;
    let seconds = started.elapsed().as_secs_f64();
    painting.store(false, Ordering::SeqCst);
    painter
        .join()
        .map_err(|_| anyhow::anyhow!("the painter panicked"))??;
    let (glass_p50_ms, glass_p95_ms) = glass_samples(stage, &webdriver, 20)?;
    drop(webdriver);
    drop(driver);
    Ok(FarPage {
        round_trip_ms: round_trip.as_millis() as u32,
        updates_per_second: taken_after.saturating_sub(taken_before) as f64 / seconds,
        published_per_second: published_after.saturating_sub(published_before) as f64 / seconds,
        glass_p50_ms,
        glass_p95_ms,
    })
}

/// chromedriver on a free port, and a headless Chromium session through it showing `url`
/// (profile `name`). Dropped in this order, the session ends before chromedriver.
pub(crate) fn browser_on(url: &str, name: &str) -> anyhow::Result<(Killed, WebDriver)> {
    let port = free_port()?;
    let driver = Killed(
        Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start chromedriver")?,
    );
    wait_for_port(port)?;
    let webdriver = WebDriver::new(port, &profile_dir(name))?;
    webdriver.call("POST", "url", serde_json::json!({ "url": url }))?;
    Ok((driver, webdriver))
}

/// Just enough of the WebDriver protocol to open a page and run a script.
pub(crate) struct WebDriver {
    port: u16,
    session: String,
    profile: std::path::PathBuf,
}

impl WebDriver {
    pub(crate) fn new(port: u16, profile: &std::path::Path) -> anyhow::Result<Self> {
        let capabilities = serde_json::json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-quic", "--window-size=1280,800",
                // The sound bench's analyser runs in an AudioContext made by a script.
                "--autoplay-policy=no-user-gesture-required",
                format!("--user-data-dir={}", profile.display()),
            ]}
        }}});
        let reply = request(port, "POST", "/session", Some(&capabilities))?;
        let session = reply["value"]["sessionId"]
            .as_str()
            .with_context(|| format!("no WebDriver session: {reply}"))?
            .to_owned();
        Ok(Self {
            port,
            session,
            profile: profile.to_owned(),
        })
    }

    pub(crate) fn call(
        &self,
        method: &str,
        what: &str,
        body: serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        request(
            self.port,
            method,
            &format!("/session/{}/{what}", self.session),
            (!body.is_null()).then_some(&body),
        )
    }

    pub(crate) fn execute(&self, script: &str) -> anyhow::Result<serde_json::Value> {
        let reply = self.call(
            "POST",
            "execute/sync",
            serde_json::json!({ "script": script, "args": [] }),
        )?;
        Ok(reply["value"].clone())
    }
}

impl Drop for WebDriver {
    fn drop(&mut self) {
        let _ = request(
            self.port,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
        );
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn request(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> anyhow::Result<serde_json::Value> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let body = body.map(ToString::to_string).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    // chromedriver keeps connections open whatever the request says: read exactly one answer.
    let mut reader = std::io::BufReader::new(stream);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut reader, &mut line)? == 0 || line == "\r\n" {
            break;
        }
        head.push_str(&line.to_lowercase());
    }
    let length = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse::<usize>().ok());
    let payload = match length {
        Some(length) => {
            let mut payload = vec![0; length];
            reader.read_exact(&mut payload)?;
            payload
        }
        None if head.contains("transfer-encoding: chunked") => read_chunked(&mut reader)?,
        None => {
            let mut payload = Vec::new();
            reader.read_to_end(&mut payload)?;
            payload
        }
    };
    serde_json::from_slice(&payload).context("chromedriver answered no JSON")
}

fn read_chunked(reader: &mut impl std::io::BufRead) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size)?;
        let size = usize::from_str_radix(size.trim(), 16).context("a chunk size")?;
        let mut chunk = vec![0; size + 2];
        reader.read_exact(&mut chunk)?;
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&chunk[..size]);
    }
}

pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub(crate) fn wait_for_port(port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("nothing listens on 127.0.0.1:{port}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn split_url(url: &str) -> anyhow::Result<(String, String)> {
    let rest = url.trim_start_matches("http://");
    let (address, path) = rest.split_once('/').context("a URL with a path")?;
    Ok((address.to_owned(), path.to_owned()))
}

/// The page playing the share's video in Chromium, on a screen in full motion.
#[derive(Debug, Clone, Copy)]
pub struct VideoPage {
    /// Pictures the page presented a second, and the share of them it dropped.
    pub presented_per_second: f64,
    pub dropped_share: f64,
    /// From opening the page mid-motion until its video showed a picture.
    pub join_ms: f64,
    /// A change painted over the motion until the page's video shows it.
    pub glass_p50_ms: f64,
    pub glass_p95_ms: f64,
    /// From the motion's last picture until the page's canvas equals the screen, pixel for
    /// pixel (the share back on tiles, the repaint drawn).
    pub exact_after_ms: f64,
}

/// A hash (FNV-1a over R, G, B) of the page's canvas once it shows tiles; `null` before.
const CANVAS_HASH: &str = "if (document.body.dataset.picture !== 'tiles') return null; \
    const c = document.getElementById('screen'); \
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; \
    let h = 2166136261; \
    for (let i = 0; i < d.length; i += 4) { \
      h = Math.imul(h ^ d[i], 16777619); h = Math.imul(h ^ d[i + 1], 16777619); \
      h = Math.imul(h ^ d[i + 2], 16777619); } \
    return [h >>> 0, c.width, c.height];";

/// The same hash of the X screen, read with a plain `GetImage`.
fn screen_hash(display: &str) -> anyhow::Result<u32> {
    use x11rb::protocol::xproto::ImageFormat;
    let (conn, screen) = x11rb::connect(Some(display))?;
    let root = &conn.setup().roots[screen];
    let (width, height) = (root.width_in_pixels, root.height_in_pixels);
    let mut hash: u32 = 2_166_136_261;
    for top in (0..height).step_by(64) {
        let rows = 64.min(height - top);
        let image = conn
            .get_image(
                ImageFormat::Z_PIXMAP,
                root.root,
                0,
                top as i16,
                width,
                rows,
                !0,
            )?
            .reply()?;
        for pixel in image.data.chunks_exact(4) {
            for byte in [pixel[2], pixel[1], pixel[0]] {
                hash = (hash ^ u32::from(byte)).wrapping_mul(16_777_619);
            }
        }
    }
    Ok(hash)
}

/// The page's video: pictures presented and dropped, and the colour at the marker's centre;
/// `null` while it shows no video.
const READ_VIDEO: &str = "const v = document.getElementById('motion'); \
    if (!v || v.hidden || v.readyState < 2 || !v.videoWidth) return null; \
    const q = v.getVideoPlaybackQuality(); \
    const c = window.__probe || (window.__probe = document.createElement('canvas')); \
    c.width = 1; c.height = 1; \
    const g = c.getContext('2d', { willReadFrequently: true }); \
    const s = v.videoWidth / document.getElementById('screen').width; \
    g.drawImage(v, Math.floor(1016 * s), Math.floor(616 * s), 1, 1, 0, 0, 1, 1); \
    const d = g.getImageData(0, 0, 1, 1).data; \
    return [q.totalVideoFrames, q.droppedVideoFrames, d[0], d[1], d[2]];";

fn read_video(webdriver: &WebDriver) -> anyhow::Result<Option<[u64; 5]>> {
    let value = webdriver.execute(READ_VIDEO)?;
    let Some(list) = value.as_array() else {
        return Ok(None);
    };
    let numbers: Vec<u64> = list.iter().filter_map(serde_json::Value::as_u64).collect();
    Ok(numbers.try_into().ok())
}

fn wait_for_video(webdriver: &WebDriver, within: Duration) -> anyhow::Result<[u64; 5]> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(read) = read_video(webdriver)?.filter(|read| read[0] > 0) {
            return Ok(read);
        }
        if Instant::now() > deadline {
            bail!("the page showed no video within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The whole screen sliding 30 times a second (the full-motion wallpaper), with a 32-pixel
/// marker at (1000, 600) in the colour `marker` holds; until `running` clears.
pub(crate) fn paint_motion(
    display: &str,
    marker: &AtomicU64,
    running: &AtomicBool,
) -> anyhow::Result<()> {
    let (conn, screen) = x11rb::connect(Some(display))?;
    let root = conn.setup().roots[screen].root;
    let frames: Vec<Vec<u8>> = (0..8).map(|k| crate::workload::wallpaper(k * 16)).collect();
    let interval = Duration::from_millis(33);
    let mut next = Instant::now();
    for frame in frames.iter().cycle() {
        if !running.load(Ordering::SeqCst) {
            break;
        }
        crate::workload::put_picture(&conn, root, frame)?;
        paint(
            &conn,
            root,
            marker.load(Ordering::SeqCst) as u32,
            (1000, 600, 32),
        )?;
        next += interval;
        let now = Instant::now();
        match next.checked_duration_since(now) {
            Some(wait) => std::thread::sleep(wait),
            None => next = now,
        }
    }
    Ok(())
}

/// The page in Chromium on a 1080p screen in full motion (the share in video): pictures
/// presented and dropped over 8 s, glass to glass over the motion (20 samples), and how long a
/// page opened mid-motion takes to show the video.
pub fn video_page(stage: &Stage) -> anyhow::Result<VideoPage> {
    let server = crate::bench::start_server(stage)?;
    let marker = Arc::new(AtomicU64::new(0x808080));
    let running = Arc::new(AtomicBool::new(true));
    let display = stage.display().to_owned();
    let painter = {
        let (marker, running, display) = (marker.clone(), running.clone(), display.clone());
        std::thread::spawn(move || paint_motion(&display, &marker, &running))
    };
    let measured = (|| -> anyhow::Result<VideoPage> {
        let (driver, webdriver) = browser_on(&server.viewer, "video")?;
        wait_for_video(&webdriver, Duration::from_secs(20))?;
        std::thread::sleep(Duration::from_secs(2));
        let before = wait_for_video(&webdriver, Duration::from_secs(5))?;
        let started = Instant::now();
        std::thread::sleep(Duration::from_secs(8));
        let after = wait_for_video(&webdriver, Duration::from_secs(5))?;
        let seconds = started.elapsed().as_secs_f64();
        let total = after[0].saturating_sub(before[0]) as f64;
        let dropped = after[1].saturating_sub(before[1]) as f64;

        let mut latencies = Vec::new();
        for sample in 0..20u32 {
            let colour: u32 = if sample % 2 == 0 { 0xff2020 } else { 0x20ff20 };
            marker.store(u64::from(colour), Ordering::SeqCst);
            let painted = Instant::now();
            let want = [
                (colour >> 16) as u64 & 255,
                (colour >> 8) as u64 & 255,
                colour as u64 & 255,
            ];
            loop {
                if let Some(read) = read_video(&webdriver)?
                    && read[2..]
                        .iter()
                        .zip(want)
                        .all(|(got, want)| got.abs_diff(want) <= 60)
                {
                    latencies.push(painted.elapsed().as_secs_f64() * 1000.0);
                    break;
                }
                if painted.elapsed() > Duration::from_secs(5) {
                    bail!("the page's video did not show a change within 5 s");
                }
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        latencies.sort_by(f64::total_cmp);
        let at = |share: f64| crate::bench::percentile(&latencies, share);

        // Opened again, mid-motion: from navigation to the first picture of video.
        let opened = Instant::now();
        webdriver.call("POST", "url", serde_json::json!({ "url": server.viewer }))?;
        wait_for_video(&webdriver, Duration::from_secs(20))?;
        let join_ms = opened.elapsed().as_secs_f64() * 1000.0;
        // The motion stops: how long until the canvas is the screen again.
        running.store(false, Ordering::SeqCst);
        let stopped = Instant::now();
        // Cheap to poll: the moment the page leaves video (its canvas is drawn in that same
        // step); then the canvas is compared, and if it is not exact yet, until it is.
        let mut left_video = None;
        let mut want = None;
        let exact_after_ms = loop {
            if stopped.elapsed() > Duration::from_secs(10) {
                bail!("the page's canvas did not equal the screen within 10 s of the motion's end");
            }
            if left_video.is_none() {
                if webdriver.execute("return document.body.dataset.picture")? == "tiles" {
                    left_video = Some(stopped.elapsed());
                } else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            }
            // The screen is still by now (read once, after the page's moment is taken).
            let want = match want {
                Some(want) => want,
                None => *want.insert(screen_hash(&display)?),
            };
            let read = webdriver.execute(CANVAS_HASH)?;
            if read.as_array().and_then(|read| read.first()?.as_u64()) == Some(u64::from(want)) {
                let exact = left_video.unwrap_or_default();
                break exact.as_secs_f64() * 1000.0;
            }
            // Not exact when it left video: timed from now on.
            left_video = Some(stopped.elapsed());
            std::thread::sleep(Duration::from_millis(20));
        };
        drop(webdriver);
        drop(driver);
        Ok(VideoPage {
            exact_after_ms,
            presented_per_second: (total - dropped) / seconds,
            dropped_share: if total > 0.0 { dropped / total } else { 1.0 },
            join_ms,
            glass_p50_ms: at(0.5),
            glass_p95_ms: at(0.95),
        })
    })();
    running.store(false, Ordering::SeqCst);
    let painted = painter
        .join()
        .map_err(|_| anyhow::anyhow!("the painter panicked"))?;
    let page = measured?;
    painted?;
    Ok(page)
}
