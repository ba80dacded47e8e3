//! System packages: what each command needs on Debian/Ubuntu, installed when missing, said aloud.

use std::process::{Command, Stdio};

use anyhow::{Context, bail};

/// Building the engine: xcap's X11, PipeWire and Wayland back ends (PipeWire's bindings need
/// clang), nasm for OpenH264's assembly (without it the encoder is about three times slower,
/// so the engine's build refuses to go on without it), and cmake for libopus (the sound).
const BUILD: &[&str] = &[
    "pkg-config",
    "nasm",
    "cmake",
    "libxcb1-dev",
    "libpipewire-0.3-dev",
    "libwayland-dev",
    "libegl-dev",
    "libgbm-dev",
    "libclang-dev",
];

/// The desktop app: WebKitGTK (Tauri's web view on Linux).
const DESKTOP: &[&str] = &["libwebkit2gtk-4.1-dev"];

/// `cargo xtask run` with a display: the desktop app.
pub const RUN_DESKTOP: &[&[&str]] = &[BUILD, DESKTOP];

/// `cargo xtask run` without one: the headless share, a virtual screen and something live on it.
pub const RUN_HEADLESS: &[&[&str]] = &[BUILD, &["xvfb", "x11-xserver-utils", "x11-apps", "xterm"]];

/// A private headless GNOME session, for the Wayland tests and benchmarks: the compositor,
/// PipeWire and its session manager, the portal with its GNOME backend, a client that paints
/// the screen (and a font for it), accessibility to answer the portal's dialog as a person
/// would, and GStreamer's PipeWire source as an independent reader of the stream.
const GNOME_SESSION: &[&str] = &[
    "dbus-daemon",
    "dbus-bin",
    "mutter",
    "pipewire",
    "wireplumber",
    "xdg-desktop-portal",
    "xdg-desktop-portal-gnome",
    "foot",
    "fonts-dejavu-core",
    "at-spi2-core",
    "gir1.2-atspi-2.0",
    "gir1.2-glib-2.0",
    "python3-gi",
    "gstreamer1.0-pipewire",
    "gstreamer1.0-tools",
    "gstreamer1.0-plugins-base",
    "gstreamer1.0-plugins-good",
];

/// `cargo xtask test`: the builds, private X servers and GNOME sessions to capture (with a pointer to move and a
/// terminal to type in), a real browser for the viewer page and WebKitWebDriver for the
/// presenter window.
pub const TEST: &[&[&str]] = &[
    BUILD,
    DESKTOP,
    GNOME_SESSION,
    &[
        "xvfb",
        "x11-xserver-utils",
        "xdotool",
        "xterm",
        // A window manager, for sharing one window (its client list).
        "jwm",
        // The sound tests' tones (pw-play) and null sink (pw-cli).
        "pipewire-bin",
        "chromium",
        "chromium-driver",
        "webkit2gtk-driver",
        // `cargo check` of the desktop app for Windows: its resource compiler and the
        // preprocessor that runs before it.
        "binutils-mingw-w64-x86-64",
        "gcc-mingw-w64-x86-64-win32",
        // The package check: dpkg-shlibdeps, and the menu entry's validator.
        "dpkg-dev",
        "desktop-file-utils",
    ],
];

/// `cargo xtask dist`: the builds, and what makes and checks a Debian package.
pub const DIST: &[&[&str]] = &[
    BUILD,
    DESKTOP,
    &[
        "dpkg-dev",
        "binutils",
        "desktop-file-utils",
        "xvfb",
        "xdotool",
    ],
];

/// `cargo xtask bench`: virtual screens with live content, an HTTP load generator, a client, and
/// the peer it is compared with (x11vnc served to noVNC in Chromium through websockify).
pub const BENCH: &[&[&str]] = &[
    BUILD,
    GNOME_SESSION,
    &[
        "xvfb",
        "x11-xserver-utils",
        "x11-apps",
        "xterm",
        "jwm",
        "xdotool",
        "wrk",
        "curl",
        "x11vnc",
        "novnc",
        "websockify",
        "chromium",
        "chromium-driver",
    ],
];

/// Installs whichever of `groups`' packages are missing (apt-get; sudo when not root).
pub fn ensure(groups: &[&[&str]]) -> anyhow::Result<()> {
    let wanted: Vec<&str> = groups
        .iter()
        .flat_map(|group| group.iter().copied())
        .collect();
    if !has("dpkg-query") || !has("apt-get") {
        eprintln!(
            "xtask: not a Debian/Ubuntu system; make sure these (or your system's equivalents) are installed: {}",
            wanted.join(" ")
        );
        return Ok(());
    }
    let missing: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|package| !installed(package))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing system packages: {}", missing.join(" "));
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| output.stdout.starts_with(b"0"));
    let apt = |args: &[&str]| -> anyhow::Result<()> {
        let mut command = if root {
            Command::new("apt-get")
        } else {
            let mut sudo = Command::new("sudo");
            sudo.arg("apt-get");
            sudo
        };
        let status = command
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .context("cannot run apt-get")?;
        if !status.success() {
            bail!("apt-get {} failed ({status})", args.join(" "));
        }
        Ok(())
    };
    apt(&["update", "-q"])?;
    let mut install = vec!["install", "-y", "-q"];
    install.extend(&missing);
    apt(&install)
}

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|output| {
            output.status.success() && output.stdout.ends_with(b"install ok installed")
        })
}

fn has(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Installs a cargo tool (`cargo install NAME --version VERSION --locked`) unless it answers
/// `--version` already.
pub fn ensure_cargo_tool(name: &str, version: &str) -> anyhow::Result<()> {
    let present = Command::new(name)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if present {
        return Ok(());
    }
    eprintln!("xtask: installing {name} {version} with cargo install");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["install", name, "--version", version, "--locked"])
        .status()
        .context("cannot run cargo install")?;
    if !status.success() {
        bail!("cargo install {name} failed ({status})");
    }
    Ok(())
}
