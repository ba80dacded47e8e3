//! The benchmark's scenes, each on a private 1920x1080 Xvfb whose root window shows a photo-like
//! wallpaper (smooth gradients and grain, which compress like a photograph, not like a flat fill):
//!
//! - static: the wallpaper and an idle terminal;
//! - typing: a terminal gets a character every 100 ms, a small status window redraws twice a
//!   second;
//! - scrolling: a full-screen terminal scrolls a line every 50 ms;
//! - full motion: the whole screen changes every frame (the wallpaper slides, 30 times a second).

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{ChangeWindowAttributesAux, ConnectionExt, CreateGCAux, ImageFormat};

pub const WIDTH: u16 = 1920;
pub const HEIGHT: u16 = 1080;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scene {
    Static,
    Typing,
    Scrolling,
    FullMotion,
}

impl Scene {
    pub const ALL: [Scene; 4] = [
        Scene::Static,
        Scene::Typing,
        Scene::Scrolling,
        Scene::FullMotion,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scene::Static => "static",
            Scene::Typing => "typing",
            Scene::Scrolling => "scrolling",
            Scene::FullMotion => "full motion",
        }
    }
}

/// A running scene: Xvfb, its clients, and the painter thread of full motion; all stopped on drop.
pub struct Stage {
    display: String,
    children: Vec<Child>,
    painter: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
}

impl Stage {
    pub fn start(scene: Scene) -> anyhow::Result<Self> {
        let (xvfb, display) = start_xvfb(u32::from(WIDTH), u32::from(HEIGHT))?;
        let mut stage = Stage {
            display,
            children: vec![xvfb],
            painter: None,
        };
        stage.x("xrandr", &["--output", "screen", "--primary"])?;
        set_wallpaper(&stage.display)?;
        // The pointer rests in a corner; moving it is measured on its own.
        stage.x("xdotool", &["mousemove", "1900", "1060"])?;
        match scene {
            Scene::Static => stage.spawn_terminal("80x24+100+100", "sleep 100000")?,
            Scene::Typing => {
                stage.spawn_terminal(
                    "80x24+100+100",
                    "while :; do printf x; sleep 0.1; done",
                )?;
                stage.spawn_terminal(
                    "24x1+1500+80",
                    "while :; do printf '\\r%s' \"$(date +%T.%N | cut -c1-11)\"; sleep 0.5; done",
                )?;
            }
            Scene::Scrolling => stage.spawn_terminal(
                "320x83+0+0",
                "i=0; while :; do i=$((i+1)); echo \"line $i: the quick brown fox jumps over the lazy dog $RANDOM $RANDOM $RANDOM\"; sleep 0.05; done",
            )?,
            Scene::FullMotion => {
                let running = Arc::new(AtomicBool::new(true));
                let display = stage.display.clone();
                let keep = running.clone();
                let painter = std::thread::spawn(move || {
                    if let Err(error) = slide_wallpaper(&display, &keep) {
                        eprintln!("xtask: the full-motion painter stopped: {error:#}");
                    }
                });
                stage.painter = Some((running, painter));
            }
        }
        // Let terminals map and draw before anything is measured; the scrolling one first fills
        // its 83 rows (a line every 50 ms): until then its lines only appear, they do not scroll,
        // and the first run measured would see another scene than the rest.
        let settle = if scene == Scene::Scrolling { 6000 } else { 800 };
        std::thread::sleep(Duration::from_millis(settle));
        Ok(stage)
    }

    pub fn display(&self) -> &str {
        &self.display
    }

    /// A command that talks to this X server.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command
            .env("DISPLAY", &self.display)
            .env_remove("WAYLAND_DISPLAY");
        command
    }

    fn x(&self, program: &str, args: &[&str]) -> anyhow::Result<()> {
        let status = self
            .command(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .with_context(|| format!("cannot run {program}"))?;
        if !status.success() {
            bail!("{program} {args:?} failed: {status}");
        }
        Ok(())
    }

    fn spawn_terminal(&mut self, geometry: &str, script: &str) -> anyhow::Result<()> {
        let child = self
            .command("xterm")
            .args([
                "-geometry",
                geometry,
                "-bg",
                "#101418",
                "-fg",
                "#d8dee9",
                "-e",
                "sh",
                "-c",
                script,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start xterm")?;
        self.children.push(child);
        Ok(())
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        if let Some((running, painter)) = self.painter.take() {
            running.store(false, Ordering::SeqCst);
            let _ = painter.join();
        }
        for child in self.children.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A private Xvfb of this size (it picks a free display number); the process and its `DISPLAY`.
pub fn start_xvfb(width: u32, height: u32) -> anyhow::Result<(Child, String)> {
    use std::io::{BufRead, BufReader};
    let mut xvfb = Command::new("Xvfb")
        .args([
            "-displayfd",
            "1",
            "-screen",
            "0",
            &format!("{width}x{height}x24"),
            "-noreset",
            "-nolisten",
            "tcp",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start Xvfb")?;
    let mut line = String::new();
    if let Some(stdout) = xvfb.stdout.take() {
        BufReader::new(stdout).read_line(&mut line)?;
    }
    if line.trim().is_empty() {
        bail!("Xvfb did not start");
    }
    Ok((xvfb, format!(":{}", line.trim())))
}

/// A photo-like picture, B, G, R, X bytes: smooth colour fields with grain.
pub(crate) fn wallpaper(shift: usize) -> Vec<u8> {
    screenshare_testkit::photo_like(WIDTH, HEIGHT, shift, None)
}

/// Sets the wallpaper as the root window's background (it stays when windows close).
fn set_wallpaper(display: &str) -> anyhow::Result<()> {
    let (conn, screen) = x11rb::connect(Some(display))?;
    let root = conn.setup().roots[screen].root;
    let pixmap = conn.generate_id()?;
    conn.create_pixmap(24, pixmap, root, WIDTH, HEIGHT)?;
    put_picture(&conn, pixmap, &wallpaper(0))?;
    conn.change_window_attributes(
        root,
        &ChangeWindowAttributesAux::new().background_pixmap(pixmap),
    )?;
    conn.clear_area(false, root, 0, 0, 0, 0)?;
    conn.free_pixmap(pixmap)?;
    conn.get_input_focus()?.reply()?;
    Ok(())
}

/// Draws a whole-screen picture in strips small enough for any request size.
pub(crate) fn put_picture(
    conn: &impl Connection,
    drawable: u32,
    pixels: &[u8],
) -> anyhow::Result<()> {
    put_picture_of_width(conn, drawable, WIDTH, pixels)
}

/// [`put_picture`] for a screen `width` pixels wide.
pub(crate) fn put_picture_of_width(
    conn: &impl Connection,
    drawable: u32,
    width: u16,
    pixels: &[u8],
) -> anyhow::Result<()> {
    let gc = conn.generate_id()?;
    conn.create_gc(gc, drawable, &CreateGCAux::new())?;
    let row = usize::from(width) * 4;
    // A request without BIG-REQUESTS carries at most 256 KiB.
    let strip_rows = (240 * 1024 / row).clamp(1, 32);
    for (strip, data) in pixels.chunks(row * strip_rows).enumerate() {
        let rows = (data.len() / row) as u16;
        conn.put_image(
            ImageFormat::Z_PIXMAP,
            drawable,
            gc,
            width,
            rows,
            0,
            (strip * strip_rows) as i16,
            0,
            24,
            data,
        )?;
    }
    conn.free_gc(gc)?;
    Ok(())
}

/// Full motion: the wallpaper slides sideways, a new whole screen 30 times a second.
fn slide_wallpaper(display: &str, running: &AtomicBool) -> anyhow::Result<()> {
    let (conn, screen) = x11rb::connect(Some(display))?;
    let root = conn.setup().roots[screen].root;
    // Precomputed frames: the painter itself must keep up with 30 fps.
    let frames: Vec<Vec<u8>> = (0..8).map(|k| wallpaper(k * 16)).collect();
    let interval = Duration::from_millis(33);
    let mut next = Instant::now();
    let mut k = 0;
    while running.load(Ordering::SeqCst) {
        put_picture(&conn, root, &frames[k % frames.len()])?;
        conn.get_input_focus()?.reply()?;
        k += 1;
        next += interval;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
    }
    Ok(())
}
