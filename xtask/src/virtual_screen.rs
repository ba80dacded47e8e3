//! For a machine with no display (a server, a container): a virtual X screen with a clock and a
//! terminal on it, so a newcomer still sees a live share work.

use std::io::{IsTerminal, Write};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, bail};

/// A running Xvfb and the programs drawn on it; all stopped on drop.
#[derive(Debug)]
pub struct VirtualScreen {
    display: String,
    children: Vec<Child>,
}

impl VirtualScreen {
    pub fn display(&self) -> &str {
        &self.display
    }
}

impl Drop for VirtualScreen {
    fn drop(&mut self) {
        // Clients first, the server last.
        for child in self.children.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Says there is no display, asks (when someone is at the terminal) and starts a virtual screen.
pub fn offer() -> anyhow::Result<VirtualScreen> {
    eprintln!("xtask: no display found (DISPLAY and WAYLAND_DISPLAY are unset).");
    if std::io::stdin().is_terminal() {
        eprint!(
            "xtask: share a virtual 1280x720 screen with a clock and a terminal instead? [Y/n] "
        );
        std::io::stderr().flush().ok();
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if answer.trim().to_lowercase().starts_with('n') {
            bail!("nothing to share: run from a desktop session, or set DISPLAY");
        }
    } else {
        eprintln!("xtask: sharing a virtual 1280x720 screen with a clock and a terminal instead.");
    }
    VirtualScreen::start_sized(1280, 720, "1")
}

impl VirtualScreen {
    /// Starts an Xvfb of this size with a clock and a terminal running `top` on it, redrawing
    /// every `top_delay` seconds.
    pub fn start_sized(width: u32, height: u32, top_delay: &str) -> anyhow::Result<VirtualScreen> {
        let (xvfb, display) = crate::workload::start_xvfb(width, height)?;
        let screen = VirtualScreen {
            display,
            children: vec![xvfb],
        };
        let x_command = |program: &str| {
            let mut command = Command::new(program);
            command
                .env("DISPLAY", &screen.display)
                .env_remove("WAYLAND_DISPLAY")
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            command
        };
        x_command("xrandr")
            .args(["--output", "screen", "--primary"])
            .status()?;
        x_command("xsetroot").args(["-solid", "#1f3b57"]).status()?;
        let clock = x_command("xclock")
            .args([
                "-digital",
                "-update",
                "1",
                "-geometry",
                "560x60+60+60",
                "-face",
                "DejaVu Sans Mono-28",
            ])
            .spawn()
            .context("cannot start xclock (apt-get install x11-apps)")?;
        let terminal = x_command("xterm")
            .args(["-geometry", "100x30+60+160", "-e", "top", "-d", top_delay])
            .spawn()
            .context("cannot start xterm")?;
        let mut screen = screen;
        screen.children.extend([clock, terminal]);
        eprintln!("xtask: virtual screen on DISPLAY={}", screen.display);
        Ok(screen)
    }
}
