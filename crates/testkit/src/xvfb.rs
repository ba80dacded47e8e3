//! A private X server per test, painted with `xsetroot`.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;

use anyhow::{Context, bail};

/// An Xvfb on a display number of its own, stopped on drop (or when the test process dies:
/// a shell watchdog kills it once our end of its stdin closes).
#[derive(Debug)]
pub struct Xvfb {
    display: String,
    watchdog: Child,
    /// Closing this tells the watchdog to stop Xvfb.
    stdin: Option<ChildStdin>,
}

impl Xvfb {
    /// A 640x480 screen.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_sized(640, 480)
    }

    pub fn start_sized(width: u32, height: u32) -> anyhow::Result<Self> {
        // -displayfd 1: Xvfb picks a free display number and prints it once it accepts clients.
        // -noreset: without it the root colour resets whenever the last client leaves.
        let mut watchdog = Command::new("sh")
            .args([
                "-c",
                r#"Xvfb "$@" & pid=$!; cat >/dev/null; kill $pid; wait $pid"#,
                "xvfb-watchdog",
                "-displayfd",
                "1",
                "-screen",
                "0",
                &format!("{width}x{height}x24"),
                "-noreset",
                "-nolisten",
                "tcp",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context(
                "cannot start Xvfb (install it: apt-get install xvfb, or run `cargo xtask test`)",
            )?;
        let stdin = watchdog.stdin.take().context("Xvfb watchdog stdin")?;
        let stdout = watchdog.stdout.take().context("Xvfb stdout")?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .context("reading Xvfb's display number")?;
        let number: u32 = line
            .trim()
            .parse()
            .with_context(|| format!("Xvfb did not start (printed {line:?}); is it installed?"))?;
        let xvfb = Self {
            display: format!(":{number}"),
            watchdog,
            stdin: Some(stdin),
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
