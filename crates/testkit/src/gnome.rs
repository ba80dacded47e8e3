//! A private headless GNOME Wayland session per test, for the portal (xdg-desktop-portal) path:
//! mutter with a virtual monitor, PipeWire and WirePlumber, xdg-desktop-portal with its GNOME
//! backend, and the accessibility bus that lets a test answer the portal's "Screen Share" dialog,
//! all on a session bus and in an `XDG_RUNTIME_DIR` of their own.
//!
//! Everything runs in one process group led by a shell watchdog (as with [`crate::Xvfb`]): when
//! the fixture drops, or the test process dies and our end of the watchdog's stdin closes, the
//! watchdog stops the whole group, the processes the session bus started included.
//!
//! The pictures a test compares against come from paths independent of the code under test:
//! mutter's own D-Bus screen cast read with `gst-launch-1.0` ([`GnomeSession::screenshot`]), and
//! the portal driven by a Python script ([`GnomeSession::portal_cast`]). The Python helpers live
//! in `crates/testkit/scripts/` and are embedded here; run them by hand inside a session with
//! the variables of [`GnomeSession::env`].

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::Running;
use crate::session::{ProcessGroup, log_tail};

/// Debian's Python, which has `gi` (python3-gi); a pyenv or venv `python3` first on `PATH`
/// usually has not.
const PYTHON: &str = "/usr/bin/python3";

const ANSWER_SHARE_DIALOG: &str = include_str!("../scripts/answer_share_dialog.py");
const PORTAL_SCREENCAST: &str = include_str!("../scripts/portal_screencast.py");
const MUTTER_SESSION: &str = include_str!("../scripts/mutter_session.py");

/// The Wayland socket's name in the private `XDG_RUNTIME_DIR` (given to mutter, so never a
/// guess).
const WAYLAND_DISPLAY: &str = "wayland-0";

/// A cold start (nothing in the page cache, llvmpipe compiling its shaders) on a 2-core machine
/// took under 3 s; this leaves room for a loaded CI machine running tests in parallel.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Variables that would lead a child out of the session (to another display, accessibility bus
/// or PipeWire): removed from every process of the session and from [`GnomeSession::apply`]ed
/// commands.
const FOREIGN: [&str; 7] = [
    "DISPLAY",
    "GDK_BACKEND",
    "WAYLAND_SOCKET",
    "AT_SPI_BUS_ADDRESS",
    "PIPEWIRE_REMOTE",
    "PIPEWIRE_RUNTIME_DIR",
    "DBUS_STARTER_ADDRESS",
];

/// A headless GNOME Wayland session (mutter, PipeWire, WirePlumber, xdg-desktop-portal and its
/// GNOME backend, AT-SPI) with a virtual monitor, stopped on drop.
#[derive(Debug)]
pub struct GnomeSession {
    /// Its directory (`home/` for `XDG_*_HOME`, `scripts/`, `shots/` besides `run/` and
    /// `logs/`), bus and processes (the session bus starts the portals itself).
    processes: ProcessGroup,
    size: (u32, u32),
    /// The long-lived remote desktop session that owns the pointer (see [`Self::move_pointer`]).
    pointer: Mutex<Option<LineProcess>>,
    /// For unique file names.
    counter: AtomicU32,
}

impl GnomeSession {
    /// Starts a session whose only monitor is `width`x`height`, and returns once mutter, the
    /// portal and the pointer are ready (the pointer parked in the bottom-right corner, out of
    /// the way of colour checks, as [`crate::Xvfb`] does).
    pub fn start(width: u32, height: u32) -> anyhow::Result<Self> {
        let processes = ProcessGroup::start(
            "gnome",
            &[
                "home/config",
                "home/data",
                "home/cache",
                "home/state",
                "scripts",
                "shots",
            ],
            START_TIMEOUT,
        )?;
        for (name, text) in [
            ("answer_share_dialog.py", ANSWER_SHARE_DIALOG),
            ("portal_screencast.py", PORTAL_SCREENCAST),
            ("mutter_session.py", MUTTER_SESSION),
            // An empty configuration: foot then paints exactly what `paint` asks, whatever
            // ~/.config/foot/foot.ini says.
            ("foot.ini", ""),
        ] {
            std::fs::write(processes.base.join("scripts").join(name), text)
                .with_context(|| format!("cannot write {name}"))?;
        }

        // From here on, dropping `session` (an early return) stops whatever started.
        let session = Self {
            processes,
            size: (width, height),
            pointer: Mutex::new(None),
            counter: AtomicU32::new(0),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        session
            .processes
            .start_bus(session.own_command("dbus-daemon"), deadline)?;

        let monitor = format!("{width}x{height}");
        session.launch(
            "mutter",
            &[
                "--headless",
                "--wayland",
                "--no-x11",
                "--wayland-display",
                WAYLAND_DISPLAY,
                "--virtual-monitor",
                &monitor,
            ],
            "mutter (apt-get install mutter)",
        )?;
        session.launch("pipewire", &[], "pipewire (apt-get install pipewire)")?;
        session.launch(
            "wireplumber",
            &[],
            "wireplumber (apt-get install wireplumber)",
        )?;

        let wayland = session.processes.runtime.join(WAYLAND_DISPLAY);
        session.wait_until(
            deadline,
            "mutter's Wayland socket",
            |_| Ok(wayland.exists()),
        )?;
        for name in [
            "org.gnome.Mutter.ScreenCast",
            "org.gnome.Mutter.RemoteDesktop",
        ] {
            session.wait_until(deadline, &format!("mutter to own {name}"), |session| {
                session.has_owner(name)
            })?;
        }
        let pipewire = session.processes.runtime.join("pipewire-0");
        session.wait_until(deadline, "PipeWire's socket", |_| Ok(pipewire.exists()))?;
        // WirePlumber links a reader's stream to a cast's node: without it a reader waits
        // forever.
        session.wait_until(deadline, "WirePlumber on PipeWire", |session| {
            let output = session
                .command("wpctl")
                .arg("status")
                .stdin(Stdio::null())
                .output()
                .context("cannot run wpctl (apt-get install wireplumber)")?;
            Ok(String::from_utf8_lossy(&output.stdout).contains("WirePlumber"))
        })?;
        // The first call starts xdg-desktop-portal through the bus; it answers once it has
        // loaded its backends (xdg-desktop-portal-gnome for ScreenCast, chosen by
        // XDG_CURRENT_DESKTOP=GNOME).
        session.wait_until(deadline, "the portal's ScreenCast interface", |session| {
            Ok(session
                .portal_source_types()?
                .is_some_and(|types| types != 0))
        })?;
        session.start_pointer(deadline)?;
        session.move_pointer(
            f64::from(width.saturating_sub(1)),
            f64::from(height.saturating_sub(1)),
        )?;
        Ok(session)
    }

    /// The variables a child needs to live in this session. `DISPLAY` must also be removed, and
    /// `GDK_BACKEND`, `WAYLAND_SOCKET`, `AT_SPI_BUS_ADDRESS`, `PIPEWIRE_REMOTE`,
    /// `PIPEWIRE_RUNTIME_DIR`, `DBUS_STARTER_ADDRESS` if set: [`Self::apply`] does both.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("WAYLAND_DISPLAY", WAYLAND_DISPLAY.to_owned()),
            (
                "XDG_RUNTIME_DIR",
                self.processes.runtime.display().to_string(),
            ),
            ("DBUS_SESSION_BUS_ADDRESS", self.processes.bus.clone()),
            // The portal picks its GNOME backend by this; toolkits and libraries look at both.
            ("XDG_CURRENT_DESKTOP", "GNOME".to_owned()),
            ("XDG_SESSION_TYPE", "wayland".to_owned()),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
    }

    /// Puts `command` inside this session: sets [`Self::env`] and removes `DISPLAY` and the
    /// other variables that point elsewhere.
    pub fn apply(&self, command: &mut Command) {
        ProcessGroup::apply(command, &FOREIGN, self.env());
    }

    /// A command inside this session, in its process group (so it dies with the session even
    /// if the test process dies first).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        self.processes.command(program, &FOREIGN, self.env())
    }

    /// The `XDG_RUNTIME_DIR`, where the Wayland, PipeWire and bus sockets are.
    pub fn runtime_dir(&self) -> &Path {
        &self.processes.runtime
    }

    /// The `DBUS_SESSION_BUS_ADDRESS`.
    pub fn bus_address(&self) -> &str {
        &self.processes.bus
    }

    /// The monitor's size in pixels.
    pub fn size(&self) -> (u32, u32) {
        self.size
    }

    /// Where each process of the session writes its output (`mutter.log`, …), for a test that
    /// fails to print.
    pub fn log_dir(&self) -> PathBuf {
        self.processes.base.join("logs")
    }

    /// Covers the whole monitor with one colour (a fullscreen `foot` with that background and
    /// no text cursor) until the result drops. Returns once a screenshot ([`Self::screenshot`])
    /// shows the colour in the corners and the middle: the window is mapped AND painted.
    pub fn paint(&self, rgb: [u8; 3]) -> anyhow::Result<Painter> {
        let hex = format!("{:02x}{:02x}{:02x}", rgb[0], rgb[1], rgb[2]);
        let log = self.log_file(&format!("foot-{hex}"))?;
        let child = self
            .command("foot")
            .arg("--config")
            .arg(self.processes.base.join("scripts/foot.ini"))
            .args([
                "--fullscreen",
                "-o",
                &format!("colors.background={hex}"),
                // The text cursor in the background colour, and hidden as well (DECTCEM).
                "-o",
                &format!("cursor.color={hex} {hex}"),
                "sh",
                "-c",
                r"printf '\033[?25l'; exec sleep infinity",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot start foot (apt-get install foot)")?;
        let painter = Painter {
            _foot: Running(child),
        };
        let (width, height) = self.size;
        let (right, bottom) = (width.saturating_sub(3), height.saturating_sub(3));
        let points = [
            (2, 2),
            (right, 2),
            (2, bottom),
            (right, bottom),
            (width / 2, height / 2),
        ];
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let shot = self.screenshot()?;
            let seen = points
                .iter()
                .map(|&(x, y)| {
                    let pixel = shot.get_pixel_checked(x, y).with_context(|| {
                        format!(
                            "the screenshot is {}x{}, not {width}x{height}",
                            shot.width(),
                            shot.height()
                        )
                    })?;
                    Ok(pixel.0)
                })
                .collect::<anyhow::Result<Vec<[u8; 3]>>>()?;
            if seen.iter().all(|&got| crate::close_to(got, rgb, 2)) {
                return Ok(painter);
            }
            if Instant::now() > deadline {
                bail!(
                    "foot did not cover the screen with #{hex} within 30 s: the corners and the \
                     middle show {seen:?} (log: {})",
                    self.log_dir().join(format!("foot-{hex}.log")).display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The monitor as a screen cast of it shows it, without the pointer: mutter's own D-Bus
    /// screen cast (no portal, no dialog) read with `gst-launch-1.0`.
    pub fn screenshot(&self) -> anyhow::Result<image::RgbImage> {
        self.mutter_screenshot("hidden")
    }

    /// Like [`Self::screenshot`], with the pointer drawn in.
    pub fn screenshot_with_pointer(&self) -> anyhow::Result<image::RgbImage> {
        self.mutter_screenshot("embedded")
    }

    fn mutter_screenshot(&self, cursor: &str) -> anyhow::Result<image::RgbImage> {
        let file = self.shot_path();
        let output = self.run_script(
            "mutter_session.py",
            &[
                "screenshot",
                &file.display().to_string(),
                "--cursor",
                cursor,
            ],
            Duration::from_secs(30),
        )?;
        anyhow::ensure!(
            output.status.success(),
            "the screenshot failed: {}",
            output.stderr.trim()
        );
        read_png(&file)
    }

    /// One frame of PipeWire node `node` (a screen cast stream, the portal's or anyone's), read
    /// with `gst-launch-1.0 pipewiresrc`: the reference a test compares the code under test to.
    pub fn reference_picture(&self, node: u32) -> anyhow::Result<image::RgbImage> {
        let file = self.shot_path();
        let location = format!("location={}", file.display());
        let path = format!("path={node}");
        // keepalive-time repeats the last frame (mutter sends one when the stream starts, then
        // only on damage), so a still screen ends the pipeline too; the last of three is kept.
        let args = [
            "-q",
            "pipewiresrc",
            &path,
            "num-buffers=3",
            "keepalive-time=100",
            "always-copy=true",
            "!",
            "videoconvert",
            "!",
            "pngenc",
            "snapshot=false",
            "!",
            "multifilesink",
            &location,
        ];
        let mut command = self.command("gst-launch-1.0");
        command.args(args);
        // pipewiresrc waits forever for a node that does not exist: hence the deadline.
        let output = run_with_deadline(
            command,
            &self.log_dir().join(format!("gst-{node}.log")),
            Duration::from_secs(20),
        )
        .context(
            "cannot run gst-launch-1.0 (apt-get install gstreamer1.0-tools gstreamer1.0-pipewire)",
        )?;
        anyhow::ensure!(
            output.status.success(),
            "gst-launch-1.0 could not read node {node}: {}",
            output.stderr.trim()
        );
        read_png(&file)
    }

    /// Moves the pointer to (`x`, `y`) of the monitor, in its pixels, as a user's mouse would:
    /// NotifyPointerMotionAbsolute of mutter's RemoteDesktop API.
    ///
    /// The pointer is the virtual device of one remote desktop session that lives as long as the
    /// fixture (`mutter_session.py pointer`): a session per move would remove the seat's only
    /// pointer after each move, and clients would see it come and go. That session owns a
    /// screen cast stream of the monitor (absolute positions are relative to a stream) which
    /// nothing reads: a test counting PipeWire nodes or mutter sessions must allow for it.
    pub fn move_pointer(&self, x: f64, y: f64) -> anyhow::Result<()> {
        let mut pointer = self.pointer.lock().unwrap_or_else(PoisonError::into_inner);
        let server = pointer
            .as_mut()
            .context("the pointer's remote desktop session is not running")?;
        let answer = server
            .ask(&format!("{x} {y}"), Duration::from_secs(10))
            .with_context(|| format!("cannot move the pointer to ({x}, {y})"))?;
        anyhow::ensure!(answer == "ok", "the pointer server said {answer:?}");
        Ok(())
    }

    fn start_pointer(&self, deadline: Instant) -> anyhow::Result<()> {
        let mut command = self.command(PYTHON);
        command
            .arg(self.processes.base.join("scripts/mutter_session.py"))
            .arg("pointer");
        let mut server = LineProcess::spawn(command, &self.log_dir().join("pointer.log"))
            .context("cannot start the pointer's remote desktop session (python3-gi)")?;
        let ready = server.read_line(deadline.saturating_duration_since(Instant::now()))?;
        anyhow::ensure!(
            ready == "ready",
            "the pointer's remote desktop session said {ready:?}"
        );
        *self.pointer.lock().unwrap_or_else(PoisonError::into_inner) = Some(server);
        Ok(())
    }

    /// Waits (at most `timeout`) for the portal's "Screen Share" dialog, selects its first
    /// entry (the monitor, or the first window) and clicks Share, through AT-SPI as a user
    /// would; fails when no dialog shows by then. Blocks: an async test whose portal call runs
    /// on the same runtime uses [`Self::spawn_answer_share_dialog`] instead.
    pub fn answer_share_dialog(&self, timeout: Duration) -> anyhow::Result<()> {
        self.spawn_answer_share_dialog(timeout)?.wait()
    }

    /// Starts answering the dialog (see [`Self::answer_share_dialog`]) in the background.
    pub fn spawn_answer_share_dialog(&self, timeout: Duration) -> anyhow::Result<DialogAnswer> {
        let log = self.log_dir().join(format!(
            "answer-share-dialog-{}.log",
            self.counter.fetch_add(1, Ordering::Relaxed)
        ));
        // Kept to start the script again should libatspi crash under it (it does, now and then,
        // while a WebKit window sends accessibility events): the dialog is still there to answer.
        let template = self.command(PYTHON);
        let recipe = ScriptRecipe {
            program: template.get_program().to_owned(),
            envs: template
                .get_envs()
                .map(|(key, value)| (key.to_owned(), value.map(ToOwned::to_owned)))
                .collect(),
            script: self.processes.base.join("scripts/answer_share_dialog.py"),
            group: self.processes.group,
        };
        // The script keeps its own deadline; this one only catches a hung script.
        let deadline = Instant::now() + timeout + Duration::from_secs(15);
        let child = recipe.spawn(&log, timeout)?;
        Ok(DialogAnswer {
            child,
            log,
            deadline,
            recipe,
        })
    }

    /// Whether the portal's "Screen Share" dialog is open now (one look through AT-SPI): for a
    /// test asserting that a restore token started a cast with no dialog.
    pub fn share_dialog_open(&self) -> anyhow::Result<bool> {
        let output = self.run_script(
            "answer_share_dialog.py",
            &["--check"],
            Duration::from_secs(20),
        )?;
        match output.stdout.trim() {
            "open" => Ok(true),
            "closed" => Ok(false),
            other => bail!(
                "answer_share_dialog.py --check printed {other:?}: {}",
                output.stderr.trim()
            ),
        }
    }

    /// Starts a screen cast through the real portal with `portal_screencast.py` (one monitor,
    /// pointer as metadata, a persistent restore token), a reference independent of the code
    /// under test. Without a token the portal shows its dialog: answer it
    /// ([`Self::answer_share_dialog`]), then [`PortalCast::wait_started`].
    pub fn portal_cast(&self, restore_token: Option<&str>) -> anyhow::Result<PortalCast> {
        let mut command = self.command(PYTHON);
        command.arg(self.processes.base.join("scripts/portal_screencast.py"));
        if let Some(token) = restore_token {
            command.args(["--restore-token", token]);
        }
        let log = self.log_dir().join(format!(
            "portal-cast-{}.log",
            self.counter.fetch_add(1, Ordering::Relaxed)
        ));
        Ok(PortalCast {
            process: LineProcess::spawn(command, &log)
                .context("cannot run /usr/bin/python3 (apt-get install python3-gi)")?,
        })
    }

    /// A command for one of the session's own processes (and, through the bus, the portals):
    /// English labels for the dialog script, and GSettings defaults rather than the user's.
    fn own_command(&self, program: &str) -> Command {
        let mut command = self.command(program);
        let base = &self.processes.base;
        command
            .env("LC_ALL", "C.UTF-8")
            .env("LANGUAGE", "")
            .env("GSETTINGS_BACKEND", "memory")
            .env("GTK_A11Y", "atspi")
            .env("XDG_CONFIG_HOME", base.join("home/config"))
            .env("XDG_DATA_HOME", base.join("home/data"))
            .env("XDG_CACHE_HOME", base.join("home/cache"))
            .env("XDG_STATE_HOME", base.join("home/state"));
        command
    }

    /// Starts `program` in the session's group, its output in `logs/<name>.log`.
    fn launch(&self, name: &'static str, args: &[&str], install: &str) -> anyhow::Result<()> {
        let mut command = self.own_command(name);
        command.args(args);
        self.processes.launch(name, command, install)
    }

    /// Polls `ready` every 20 ms until it says yes; fails at `deadline`, or at once when a
    /// process of the session has died (with the end of its log).
    fn wait_until(
        &self,
        deadline: Instant,
        what: &str,
        mut ready: impl FnMut(&Self) -> anyhow::Result<bool>,
    ) -> anyhow::Result<()> {
        self.processes.wait_until(deadline, what, || ready(self))
    }

    /// Whether `name` has an owner on the session bus (asked with dbus-send, which
    /// dbus-daemon's package brings).
    fn has_owner(&self, name: &str) -> anyhow::Result<bool> {
        let output = self
            .command("dbus-send")
            .args([
                "--session",
                "--print-reply",
                "--reply-timeout=2000",
                "--dest=org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.NameHasOwner",
            ])
            .arg(format!("string:{name}"))
            .stdin(Stdio::null())
            .output()
            .context("cannot run dbus-send (apt-get install dbus-bin)")?;
        Ok(output.status.success() && String::from_utf8_lossy(&output.stdout).contains("true"))
    }

    /// The portal's ScreenCast `AvailableSourceTypes`, `None` while it does not answer.
    fn portal_source_types(&self) -> anyhow::Result<Option<u32>> {
        let output = self
            .command("dbus-send")
            .args([
                "--session",
                "--print-reply",
                "--reply-timeout=5000",
                "--dest=org.freedesktop.portal.Desktop",
                "/org/freedesktop/portal/desktop",
                "org.freedesktop.DBus.Properties.Get",
                "string:org.freedesktop.portal.ScreenCast",
                "string:AvailableSourceTypes",
            ])
            .stdin(Stdio::null())
            .output()
            .context("cannot run dbus-send (apt-get install dbus-bin)")?;
        if !output.status.success() {
            return Ok(None);
        }
        // The reply's last line: "   variant       uint32 3".
        Ok(String::from_utf8_lossy(&output.stdout)
            .split_whitespace()
            .last()
            .and_then(|word| word.parse().ok()))
    }

    fn run_script(
        &self,
        script: &str,
        args: &[&str],
        timeout: Duration,
    ) -> anyhow::Result<ScriptOutput> {
        let mut command = self.command(PYTHON);
        command
            .arg(self.processes.base.join("scripts").join(script))
            .args(args);
        let log = self.log_dir().join(format!(
            "{script}-{}.log",
            self.counter.fetch_add(1, Ordering::Relaxed)
        ));
        run_with_deadline(command, &log, timeout)
            .with_context(|| format!("cannot run {PYTHON} {script} (apt-get install python3-gi)"))
    }

    fn log_file(&self, name: &str) -> anyhow::Result<File> {
        self.processes.log_file(name)
    }

    fn shot_path(&self) -> PathBuf {
        self.processes.base.join("shots").join(format!(
            "{}.png",
            self.counter.fetch_add(1, Ordering::Relaxed)
        ))
    }
}

impl Drop for GnomeSession {
    fn drop(&mut self) {
        // Ending the pointer's session first lets mutter remove its virtual pointer cleanly;
        // then the process group stops everything else.
        if let Some(pointer) = self
            .pointer
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            drop(pointer);
        }
    }
}

/// A fullscreen window of one colour, closed on drop.
#[derive(Debug)]
pub struct Painter {
    _foot: Running,
}

/// The dialog script running in the background ([`GnomeSession::spawn_answer_share_dialog`]).
#[derive(Debug)]
pub struct DialogAnswer {
    child: Running,
    log: PathBuf,
    deadline: Instant,
    recipe: ScriptRecipe,
}

/// How to start the dialog script in the session's environment.
#[derive(Debug)]
struct ScriptRecipe {
    program: std::ffi::OsString,
    envs: Vec<(std::ffi::OsString, Option<std::ffi::OsString>)>,
    script: PathBuf,
    /// The session's process group, which its watchdog ends.
    group: i32,
}

impl ScriptRecipe {
    /// The script, answering within `timeout`, its output appended to `log`.
    fn spawn(&self, log: &Path, timeout: Duration) -> anyhow::Result<Running> {
        let file = File::options()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("cannot open {}", log.display()))?;
        let mut command = Command::new(&self.program);
        command.process_group(self.group);
        for (key, value) in &self.envs {
            match value {
                Some(value) => command.env(key, value),
                None => command.env_remove(key),
            };
        }
        let child = command
            // A crash inside libatspi says where in the script it happened.
            .args(["-X", "faulthandler"])
            .arg(&self.script)
            .arg("--timeout")
            .arg(timeout.as_secs_f64().to_string())
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .context("cannot run /usr/bin/python3 (apt-get install python3-gi gir1.2-atspi-2.0)")?;
        Ok(Running(child))
    }
}

/// Times the dialog script is started again after libatspi crashed under it.
const DIALOG_CRASHES_FORGIVEN: u32 = 2;

impl DialogAnswer {
    /// Waits for the script: `Ok` once the dialog was answered and closed.
    pub fn wait(mut self) -> anyhow::Result<()> {
        use std::os::unix::process::ExitStatusExt;
        let mut crashes = 0;
        loop {
            let status = wait_deadline(&mut self.child.0, self.deadline)?;
            let said = std::fs::read_to_string(&self.log).unwrap_or_default();
            // SIGSEGV: libatspi, not the script nor the dialog; the dialog is still up.
            let left = self
                .deadline
                .saturating_duration_since(Instant::now())
                .saturating_sub(Duration::from_secs(15));
            match status {
                Some(status) if status.success() => return Ok(()),
                Some(status)
                    if status.signal() == Some(11)
                        && crashes < DIALOG_CRASHES_FORGIVEN
                        && !left.is_zero() =>
                {
                    crashes += 1;
                    self.child = self.recipe.spawn(&self.log, left)?;
                }
                Some(status) => bail!(
                    "answering the share dialog failed ({status}): {}",
                    said.trim()
                ),
                None => bail!(
                    "answer_share_dialog.py hung past its own deadline: {}",
                    said.trim()
                ),
            }
        }
    }

    /// [`Self::wait`] off the async runtime's threads.
    pub async fn wait_async(self) -> anyhow::Result<()> {
        tokio::task::spawn_blocking(move || self.wait()).await?
    }
}

/// A screen cast the portal started for `portal_screencast.py`, closed on drop.
#[derive(Debug)]
pub struct PortalCast {
    process: LineProcess,
}

/// What the portal's Start answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CastStarted {
    /// The PipeWire node of each stream, with its size and position in the desktop.
    pub streams: Vec<PortalStream>,
    /// Starts the next cast of the same monitor with no dialog (empty if the portal gave none).
    pub restore_token: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortalStream {
    pub node: u32,
    pub size: Option<(u32, u32)>,
    pub position: Option<(i32, i32)>,
}

impl PortalCast {
    /// Waits (at most `timeout`) for the portal to start the cast: after the dialog was
    /// answered, or at once with a valid restore token.
    pub fn wait_started(&mut self, timeout: Duration) -> anyhow::Result<CastStarted> {
        let line = self
            .process
            .read_line(timeout)
            .context("the portal did not start the cast")?;
        let value: serde_json::Value = serde_json::from_str(&line)
            .with_context(|| format!("portal_screencast.py printed {line:?}"))?;
        let pair = |value: &serde_json::Value| -> Option<(i64, i64)> {
            Some((value.get(0)?.as_i64()?, value.get(1)?.as_i64()?))
        };
        let streams = value["streams"]
            .as_array()
            .context("no streams")?
            .iter()
            .map(|stream| {
                Ok(PortalStream {
                    node: u32::try_from(stream["node"].as_u64().context("no node id")?)?,
                    size: pair(&stream["size"])
                        .and_then(|(w, h)| Some((u32::try_from(w).ok()?, u32::try_from(h).ok()?))),
                    position: pair(&stream["position"])
                        .and_then(|(x, y)| Some((i32::try_from(x).ok()?, i32::try_from(y).ok()?))),
                })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(CastStarted {
            streams,
            restore_token: value["restore_token"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        })
    }
}

/// A helper process that answers lines on stdout (its stderr in a log), stopped on drop by
/// closing its stdin.
#[derive(Debug)]
struct LineProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    log: PathBuf,
}

impl LineProcess {
    fn spawn(mut command: Command, log: &Path) -> anyhow::Result<Self> {
        let file = File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(file)
            .spawn()?;
        let stdin = child.stdin.take().context("the helper's stdin")?;
        let stdout = child.stdout.take().context("the helper's stdout")?;
        // Read on a thread, so that every read can have a deadline.
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Self {
            child,
            stdin: Some(stdin),
            lines,
            log: log.to_owned(),
        })
    }

    fn read_line(&mut self, timeout: Duration) -> anyhow::Result<String> {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => Ok(line),
            Err(mpsc::RecvTimeoutError::Timeout) => bail!(
                "no answer within {timeout:?}; it says: {}",
                log_tail(&self.log)
            ),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = self.child.wait()?;
                bail!("it exited ({status}): {}", log_tail(&self.log))
            }
        }
    }

    fn ask(&mut self, line: &str, timeout: Duration) -> anyhow::Result<String> {
        let stdin = self
            .stdin
            .as_mut()
            .context("the helper's stdin is closed")?;
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .with_context(|| format!("the helper is gone: {}", log_tail(&self.log)))?;
        self.read_line(timeout)
    }
}

impl Drop for LineProcess {
    fn drop(&mut self) {
        // Closing stdin lets the script end its session cleanly; kill it if it takes too long.
        drop(self.stdin.take());
        if !matches!(
            wait_deadline(&mut self.child, Instant::now() + Duration::from_secs(5)),
            Ok(Some(_))
        ) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A finished command's status, stdout and stderr.
#[derive(Debug)]
struct ScriptOutput {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `command` to completion with stdout and stderr in files (no pipe to fill up while we
/// poll), killing it at the deadline.
fn run_with_deadline(
    mut command: Command,
    log: &Path,
    timeout: Duration,
) -> anyhow::Result<ScriptOutput> {
    let out_path = log.with_extension("out");
    let out = File::create(&out_path)?;
    let err = File::create(log)?;
    let mut child = Running(
        command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()?,
    );
    let Some(status) = wait_deadline(&mut child.0, Instant::now() + timeout)? else {
        bail!("no result within {timeout:?}; it says: {}", log_tail(log));
    };
    Ok(ScriptOutput {
        status,
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(log).unwrap_or_default(),
    })
}

/// Waits for `child` until `deadline`: its status, or `None` if it still runs.
fn wait_deadline(child: &mut Child, deadline: Instant) -> anyhow::Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() > deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read_png(path: &Path) -> anyhow::Result<image::RgbImage> {
    let picture = image::open(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .to_rgb8();
    let _ = std::fs::remove_file(path);
    Ok(picture)
}
