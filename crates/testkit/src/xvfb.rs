//! A private X server per test, painted with `xsetroot`.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, bail};

/// An Xvfb on a display number of its own, stopped on drop (or when the test process dies:
/// a shell watchdog kills it once our end of its stdin closes).
#[derive(Debug)]
pub struct Xvfb {
    display: String,
    watchdog: Child,
    /// Closing this tells the watchdog to stop Xvfb.
    stdin: Option<ChildStdin>,
    /// Xvfb's own process.
    pid: u32,
    size: (u32, u32),
}

impl Xvfb {
    /// A 640x480 screen.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_sized(640, 480)
    }

    pub fn start_sized(width: u32, height: u32) -> anyhow::Result<Self> {
        Self::launch(None, width, height)
    }

    /// A 640x480 screen that a test may crash and restart ([`Xvfb::crash`], [`Xvfb::restart`]).
    /// Its display number is drawn from a range of its own (500 and up): the others take the
    /// lowest free one, and one of them must not take this display while it is down.
    pub fn start_restartable() -> anyhow::Result<Self> {
        let first = 500 + std::process::id() % 300;
        let mut last_error = None;
        for number in (first..first + 200).filter(|n| {
            !std::path::Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
                && !std::path::Path::new(&format!("/tmp/.X{n}-lock")).exists()
        }) {
            match Self::launch(Some(&format!(":{number}")), 640, 480) {
                Ok(xvfb) => return Ok(xvfb),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("no free display from :{first}")))
    }

    /// Starts Xvfb on `display` (a free one when `None`).
    fn launch(display: Option<&str>, width: u32, height: u32) -> anyhow::Result<Self> {
        // -displayfd 1: Xvfb picks a free display number and prints it once it accepts clients.
        // -noreset: without it the root colour resets whenever the last client leaves.
        let size = format!("{width}x{height}x24");
        let mut args = vec![
            "-c",
            r#"Xvfb "$@" & pid=$!; echo "pid $pid"; cat >/dev/null; kill $pid; wait $pid"#,
            "xvfb-watchdog",
        ];
        args.extend(display);
        args.extend([
            "-displayfd",
            "1",
            "-screen",
            "0",
            &size,
            "-noreset",
            "-nolisten",
            "tcp",
        ]);
        let mut watchdog = Command::new("sh")
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context(
                "cannot start Xvfb (install it: apt-get install xvfb, or run `cargo xtask test`)",
            )?;
        let stdin = watchdog.stdin.take().context("Xvfb watchdog stdin")?;
        let stdout = watchdog.stdout.take().context("Xvfb stdout")?;
        // Two lines, in either order: the watchdog's "pid N", and Xvfb's display number. Read on
        // a thread, with a deadline: an Xvfb that dies at start prints no number, and the
        // watchdog keeps the pipe open.
        let (lines_tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (mut pid, mut number): (Option<u32>, Option<u32>) = (None, None);
        while pid.is_none() || number.is_none() {
            let Ok(line) = lines.recv_timeout(std::time::Duration::from_secs(15)) else {
                if let Some(pid) = pid {
                    let _ = Command::new("kill")
                        .args(["-KILL", &pid.to_string()])
                        .status();
                }
                drop(stdin);
                let _ = watchdog.kill();
                let _ = watchdog.wait();
                bail!("Xvfb did not start within 15 s (is it installed? is the display taken?)");
            };
            match line.trim().strip_prefix("pid ") {
                Some(found) => pid = found.parse::<u32>().ok(),
                None => {
                    number = Some(line.trim().parse::<u32>().with_context(|| {
                        format!("Xvfb did not start (printed {line:?}); is it installed?")
                    })?)
                }
            }
        }
        let (Some(pid), Some(number)) = (pid, number) else {
            bail!("Xvfb did not say its pid and display");
        };
        let xvfb = Self {
            display: format!(":{number}"),
            watchdog,
            stdin: Some(stdin),
            pid,
            size: (width, height),
        };
        // xcap finds no primary monitor on Xvfb until one is named.
        xvfb.run("xrandr", &["--output", "screen", "--primary"])?;
        // The pointer starts in the middle, where tests look at colours: park it in a corner.
        xvfb.move_pointer(
            width.saturating_sub(1) as i16,
            height.saturating_sub(1) as i16,
        )?;
        Ok(xvfb)
    }

    /// Splits the screen into two RandR monitors side by side, "LEFT" and "RIGHT" (as a desktop
    /// with a projector sets them up), and fills each half with its colour.
    pub fn split_into_two_monitors(&self, left: [u8; 3], right: [u8; 3]) -> anyhow::Result<()> {
        let (width, height) = self.size;
        let half = width / 2;
        // Millimetres at 96 dots per inch: RandR wants a physical size too.
        let mm = |pixels: u32| (pixels * 254).div_ceil(960);
        let geometry = |x: u32| format!("{half}/{}x{height}/{}+{x}+0", mm(half), mm(height));
        self.run("xrandr", &["--setmonitor", "LEFT", &geometry(0), "screen"])?;
        self.run(
            "xrandr",
            &["--setmonitor", "RIGHT", &geometry(half), "none"],
        )?;
        let (half, height) = (u16::try_from(half)?, u16::try_from(height)?);
        self.fill(0, 0, half, height, left)?;
        self.fill(i16::try_from(half)?, 0, half, height, right)
    }

    /// Kills the X server (as a crash would) and starts a new one on the same display.
    pub fn crash_and_restart(&mut self) -> anyhow::Result<()> {
        self.crash()?;
        self.restart()
    }

    /// Kills the X server, as a crash would; [`Xvfb::restart`] brings one back.
    pub fn crash(&mut self) -> anyhow::Result<()> {
        self.signal("KILL")?;
        drop(self.stdin.take());
        let _ = self.watchdog.wait();
        Ok(())
    }

    /// Starts a new X server on this display (after [`Xvfb::crash`]).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        let (width, height) = self.size;
        let display = self.display.clone();
        // The dead server's socket may linger a moment: try until the display is ours again.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
        let restarted = loop {
            match Self::launch(Some(&display), width, height) {
                Ok(restarted) => break restarted,
                Err(error) if std::time::Instant::now() > deadline => return Err(error),
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(100)),
            }
        };
        *self = restarted;
        Ok(())
    }

    /// Stops the X server dead (SIGSTOP): clients hang on their next reply, as with a hung server.
    pub fn freeze(&self) -> anyhow::Result<()> {
        self.signal("STOP")
    }

    /// Lets a frozen server run again.
    pub fn thaw(&self) -> anyhow::Result<()> {
        self.signal("CONT")
    }

    /// Sends a signal to the Xvfb process alone (never to a process group).
    fn signal(&self, name: &str) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid.to_string()])
            .status()
            .context("cannot run kill")?;
        anyhow::ensure!(status.success(), "kill -{name} {} failed", self.pid);
        Ok(())
    }

    /// The `DISPLAY` value, like `:7`.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// A command that talks to this X server (and never to a Wayland one).
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command
            .env("DISPLAY", &self.display)
            .env_remove("WAYLAND_DISPLAY");
        command
    }

    /// Starts an X client of this server (its output dropped), killed when the result drops.
    pub fn spawn(&self, program: &str, args: &[&str]) -> anyhow::Result<Running> {
        let child = self
            .command(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {program}"))?;
        Ok(Running(child))
    }

    /// Paints the whole root window one colour (`#rrggbb` or an X colour name).
    pub fn paint(&self, colour: &str) -> anyhow::Result<()> {
        self.run("xsetroot", &["-solid", colour])
    }

    /// Fills a rectangle of the root window with `rgb`, straight through the X protocol: the
    /// server reports exactly that area as damaged, as it would for an application drawing.
    pub fn fill(
        &self,
        x: i16,
        y: i16,
        width: u16,
        height: u16,
        rgb: [u8; 3],
    ) -> anyhow::Result<()> {
        use x11rb::connection::Connection;
        use x11rb::protocol::xproto::{ConnectionExt, CreateGCAux, Rectangle};
        let (conn, screen) = x11rb::connect(Some(&self.display))
            .with_context(|| format!("cannot connect to {}", self.display))?;
        let root = conn.setup().roots[screen].root;
        let gc = conn.generate_id()?;
        let pixel = u32::from(rgb[0]) << 16 | u32::from(rgb[1]) << 8 | u32::from(rgb[2]);
        conn.create_gc(gc, root, &CreateGCAux::new().foreground(pixel))?;
        conn.poly_fill_rectangle(
            root,
            gc,
            &[Rectangle {
                x,
                y,
                width,
                height,
            }],
        )?;
        conn.free_gc(gc)?;
        // A round trip: the drawing is done when this returns.
        conn.get_input_focus()?.reply()?;
        Ok(())
    }

    /// Covers the whole root window with random pixels: a screen no codec can shrink much.
    pub fn noise(&self) -> anyhow::Result<()> {
        use x11rb::connection::Connection;
        use x11rb::protocol::xproto::{ConnectionExt, CreateGCAux, ImageFormat};
        let (conn, screen) = x11rb::connect(Some(&self.display))
            .with_context(|| format!("cannot connect to {}", self.display))?;
        let screen = &conn.setup().roots[screen];
        let (root, depth) = (screen.root, screen.root_depth);
        let (width, height) = (screen.width_in_pixels, screen.height_in_pixels);
        let gc = conn.generate_id()?;
        conn.create_gc(gc, root, &CreateGCAux::new())?;
        // A cheap generator is plenty: the point is bytes that do not compress.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let rows = 16u16;
        for top in (0..height).step_by(usize::from(rows)) {
            let strip = rows.min(height - top);
            let mut pixels = vec![0u8; usize::from(width) * usize::from(strip) * 4];
            for chunk in pixels.chunks_exact_mut(8) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                chunk.copy_from_slice(&state.to_le_bytes());
            }
            conn.put_image(
                ImageFormat::Z_PIXMAP,
                root,
                gc,
                width,
                strip,
                0,
                top as i16,
                0,
                depth,
                &pixels,
            )?;
        }
        conn.free_gc(gc)?;
        conn.get_input_focus()?.reply()?;
        Ok(())
    }

    /// Keeps the whole screen moving, as a clip or a game would: a photo-like picture (gradients
    /// and grain) slides across the root window 30 times a second, with a `square` of one colour
    /// (a quarter of the screen's height) fixed at its centre. Stops when the painter is dropped.
    pub fn start_motion(&self, square: [u8; 3]) -> anyhow::Result<MotionPainter> {
        let (width, height) = (self.size.0 as u16, self.size.1 as u16);
        // Precomputed: the painter must keep up with 30 a second in a debug build.
        let frames: Vec<Vec<u8>> = (0..8)
            .map(|k| photo_like(width, height, k * 24, Some(square)))
            .collect();
        let running = Arc::new(AtomicBool::new(true));
        let keep = running.clone();
        let display = self.display.clone();
        let painter = std::thread::spawn(move || {
            if let Err(error) = paint_frames(&display, width, &frames, &keep) {
                eprintln!("testkit: the motion painter stopped: {error:#}");
            }
        });
        Ok(MotionPainter {
            running,
            painter: Some(painter),
        })
    }

    /// The whole root window's pixels as RGB, read with a plain `GetImage` (independent of the
    /// code under test).
    pub fn screenshot(&self) -> anyhow::Result<image::RgbImage> {
        use x11rb::connection::Connection;
        use x11rb::protocol::xproto::{ConnectionExt, ImageFormat};
        let (conn, screen) = x11rb::connect(Some(&self.display))
            .with_context(|| format!("cannot connect to {}", self.display))?;
        let screen = &conn.setup().roots[screen];
        let (root, width, height) = (screen.root, screen.width_in_pixels, screen.height_in_pixels);
        let reply = conn
            .get_image(ImageFormat::Z_PIXMAP, root, 0, 0, width, height, !0)?
            .reply()?;
        let mut rgb = Vec::with_capacity(usize::from(width) * usize::from(height) * 3);
        for pixel in reply.data.chunks_exact(4) {
            rgb.extend_from_slice(&[pixel[2], pixel[1], pixel[0]]);
        }
        image::RgbImage::from_raw(u32::from(width), u32::from(height), rgb)
            .context("GetImage returned the wrong number of bytes")
    }

    /// Moves the pointer to (`x`, `y`) of the root window, as a user's mouse would.
    pub fn move_pointer(&self, x: i16, y: i16) -> anyhow::Result<()> {
        use x11rb::connection::Connection;
        use x11rb::protocol::xproto::ConnectionExt;
        let (conn, screen) = x11rb::connect(Some(&self.display))
            .with_context(|| format!("cannot connect to {}", self.display))?;
        let root = conn.setup().roots[screen].root;
        conn.warp_pointer(x11rb::NONE, root, 0, 0, 0, 0, x, y)?;
        conn.get_input_focus()?.reply()?;
        Ok(())
    }

    /// Runs an X client to completion.
    pub fn run(&self, program: &str, args: &[&str]) -> anyhow::Result<()> {
        let output = self
            .command(program)
            .args(args)
            .output()
            .with_context(|| format!("cannot run {program} (install x11-xserver-utils)"))?;
        if !output.status.success() {
            bail!(
                "{program} {args:?} failed on {}: {}",
                self.display,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        // A frozen server would ignore the watchdog's SIGTERM.
        let _ = self.thaw();
        drop(self.stdin.take());
        let _ = self.watchdog.wait();
    }
}

/// One Xvfb for a whole test process, with `DISPLAY` pointing at it, for tests that capture
/// in-process (xcap reads `DISPLAY` from the environment). Tests sharing it must not paint it
/// concurrently: hold [`Xvfb`]-level locks of their own.
pub fn shared_display() -> anyhow::Result<&'static Xvfb> {
    static SHARED: OnceLock<Result<Xvfb, String>> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            let xvfb = Xvfb::start().map_err(|error| format!("{error:#}"))?;
            set_display_env(xvfb.display());
            Ok(xvfb)
        })
        .as_ref()
        .map_err(|error| anyhow::anyhow!("{error}"))
}

#[allow(unsafe_code)]
fn set_display_env(display: &str) {
    // SAFETY: called once, inside `OnceLock::get_or_init`, before any test of this process has
    // reached xcap (every in-process capture test calls `shared_display` first and blocks here),
    // so no other thread reads the environment through libc meanwhile.
    unsafe {
        std::env::set_var("DISPLAY", display);
        std::env::remove_var("WAYLAND_DISPLAY");
    }
}

/// A child process killed (and reaped) on drop.
#[derive(Debug)]
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One X connection kept open, to look at the server without taking a new client slot per
/// look: X gives a new client the lowest free slot, and with it the ids of the client that had
/// it, which a test of id reuse must leave to the program it starts.
pub struct XObserver {
    conn: x11rb::rust_connection::RustConnection,
    root: u32,
}

impl std::fmt::Debug for XObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XObserver").finish_non_exhaustive()
    }
}

impl XObserver {
    /// The id of the window the window manager lists with this exact title, if there is one.
    pub fn window_titled(&self, title: &str) -> anyhow::Result<Option<u32>> {
        use x11rb::protocol::xproto::{AtomEnum, ConnectionExt};
        let atom = |name: &str| -> anyhow::Result<u32> {
            Ok(self.conn.intern_atom(false, name.as_bytes())?.reply()?.atom)
        };
        let (clients, net_name) = (atom("_NET_CLIENT_LIST")?, atom("_NET_WM_NAME")?);
        let list = self
            .conn
            .get_property(false, self.root, clients, AtomEnum::WINDOW, 0, 4096)?
            .reply()?;
        for id in list.value32().into_iter().flatten() {
            // Either name, of whatever type (xterm sets only WM_NAME, as a STRING).
            for name in [net_name, AtomEnum::WM_NAME.into()] {
                let Ok(reply) = self
                    .conn
                    .get_property(false, id, name, AtomEnum::ANY, 0, 256)?
                    .reply()
                else {
                    continue;
                };
                if reply.value == title.as_bytes() {
                    return Ok(Some(id));
                }
            }
        }
        Ok(None)
    }
}

impl Xvfb {
    /// A connection to this server kept open for looking at it (see [`XObserver`]).
    pub fn observer(&self) -> anyhow::Result<XObserver> {
        use x11rb::connection::Connection;
        let (conn, screen) = x11rb::connect(Some(&self.display))
            .with_context(|| format!("cannot connect to {}", self.display))?;
        let root = conn
            .setup()
            .roots
            .get(screen)
            .map(|screen| screen.root)
            .context("the X server has no screen")?;
        Ok(XObserver { conn, root })
    }
}

/// A thread keeping a screen in motion ([`Xvfb::start_motion`]); stopped (and joined) on drop.
#[derive(Debug)]
pub struct MotionPainter {
    running: Arc<AtomicBool>,
    painter: Option<std::thread::JoinHandle<()>>,
}

impl Drop for MotionPainter {
    fn drop(&mut self) {
        self.running.store(false, Ordering::SeqCst);
        if let Some(painter) = self.painter.take() {
            let _ = painter.join();
        }
    }
}

/// A photo-like picture (gradients and grain, as a wallpaper or a clip) in BGRX, shifted right by
/// `shift` pixels, with a `square` of one colour (a quarter of the height) at its centre if given.
pub fn photo_like(width: u16, height: u16, shift: usize, square: Option<[u8; 3]>) -> Vec<u8> {
    let (width, height) = (usize::from(width), usize::from(height));
    let side = height / 4;
    let (left, top) = ((width - side) / 2, (height - side) / 2);
    let mut pixels = Vec::with_capacity(width * height * 4);
    let mut grain: u32 = 0x9e37_79b9;
    for y in 0..height {
        for x in 0..width {
            let sx = (x + shift) as f32;
            grain ^= grain << 13;
            grain ^= grain >> 17;
            grain ^= grain << 5;
            if let Some([r, g, b]) = square
                && (left..left + side).contains(&x)
                && (top..top + side).contains(&y)
            {
                pixels.extend_from_slice(&[b, g, r, 255]);
                continue;
            }
            let noise = (grain % 24) as f32 - 12.0;
            let r = 110.0 + 70.0 * (sx / 173.0).sin() * (y as f32 / 251.0).cos() + noise;
            let g = 120.0 + 60.0 * ((sx + y as f32) / 311.0).sin() + noise;
            let b = 140.0 + 80.0 * (y as f32 / 197.0).sin() - 30.0 * (sx / 421.0).cos() + noise;
            let clamp = |value: f32| value.clamp(0.0, 255.0) as u8;
            pixels.extend_from_slice(&[clamp(b), clamp(g), clamp(r), 255]);
        }
    }
    pixels
}

fn paint_frames(
    display: &str,
    width: u16,
    frames: &[Vec<u8>],
    running: &AtomicBool,
) -> anyhow::Result<()> {
    use x11rb::connection::Connection;
    use x11rb::protocol::xproto::{ConnectionExt, CreateGCAux, ImageFormat};
    let (conn, screen) = x11rb::connect(Some(display))?;
    let (root, depth) = {
        let screen = &conn.setup().roots[screen];
        (screen.root, screen.root_depth)
    };
    let gc = conn.generate_id()?;
    conn.create_gc(gc, root, &CreateGCAux::new())?;
    let row = usize::from(width) * 4;
    let interval = std::time::Duration::from_millis(33);
    let mut next = std::time::Instant::now();
    for frame in frames.iter().cycle() {
        if !running.load(Ordering::SeqCst) {
            break;
        }
        for (strip, data) in frame.chunks(row * 32).enumerate() {
            conn.put_image(
                ImageFormat::Z_PIXMAP,
                root,
                gc,
                width,
                (data.len() / row) as u16,
                0,
                (strip * 32) as i16,
                0,
                depth,
                data,
            )?;
        }
        conn.get_input_focus()?.reply()?;
        next += interval;
        let now = std::time::Instant::now();
        match next.checked_duration_since(now) {
            Some(wait) => std::thread::sleep(wait),
            None => next = now,
        }
    }
    conn.free_gc(gc)?;
    conn.get_input_focus()?.reply()?;
    Ok(())
}
