//! `cargo xtask screenshots`: retakes the pictures in docs/ from the repository root. The viewer
//! page is headless Chromium on a live share of a virtual 1280x720 screen (a clock, a terminal
//! running `top`, the pointer) with sound on; the presenter window is the real Tauri window as its end-to-end
//! tests drive it: on X11 with a viewer waiting to be let in, sending sound, and on a GNOME (Wayland) session
//! sharing the desktop's pick.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;

use crate::peer::{Killed, browser_on};
use crate::virtual_screen::VirtualScreen;
use crate::{cargo, cargo_command, packages, workspace_root};

pub fn screenshots() -> anyhow::Result<()> {
    packages::ensure(packages::TEST)?;
    // The virtual screen's clock.
    packages::ensure(&[&["x11-apps"]])?;
    viewer()?;
    presenter()
}

fn viewer() -> anyhow::Result<()> {
    cargo(&["build", "--package", "screenshare-cli"])?;
    let screen = VirtualScreen::start_sized(1280, 720, "1")?;
    // Sound on, from a private PipeWire playing a tone: the page offers its Sound button.
    let sound = screenshare_testkit::SoundSession::start()?;
    let _tone = sound.play_tone(440.0)?;
    let mut command = Command::new(crate::target_dir()?.join("debug/screenshare"));
    sound.apply(&mut command);
    let mut serve = Killed(
        command
            .args(["serve", "--bind", "127.0.0.1", "--port", "0", "--audio"])
            .env("DISPLAY", screen.display())
            .env_remove("WAYLAND_DISPLAY")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start screenshare")?,
    );
    let stdout = serve.0.stdout.take().context("its output")?;
    let viewer = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|line| {
            line.strip_prefix("viewer ")
                .map(|url| url.trim().to_owned())
        })
        .context("screenshare printed no viewer URL")?;
    // The pointer where a presenter would point, over the terminal.
    Command::new("xdotool")
        .args(["mousemove", "700", "420"])
        .env("DISPLAY", screen.display())
        .status()?;
    let (_driver, browser) = browser_on(&viewer, "screenshot")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while browser
        .execute("return document.body.dataset.state")?
        .as_str()
        != Some("live")
    {
        if Instant::now() > deadline {
            let said = browser.execute(
                "const s = document.getElementById('status-text'); \
                 return [location.href, document.title, s ? s.textContent : null]",
            )?;
            bail!("the page never went live: it shows {said}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    while browser
        .execute("return document.getElementById('sound-controls').hidden")?
        .as_bool()
        != Some(false)
    {
        if Instant::now() > deadline {
            bail!("the page never offered sound");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // The toolbar shows while the pointer has just moved: a picture with it, as a viewer sees.
    std::thread::sleep(Duration::from_millis(1500));
    browser.execute("document.dispatchEvent(new MouseEvent('mousemove')); return 0")?;
    let shot = browser.call("GET", "screenshot", serde_json::Value::Null)?;
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot["value"].as_str().context("no screenshot")?)
        .context("the screenshot is not base64")?;
    let path = workspace_root().join("docs/viewer.png");
    std::fs::write(&path, png)?;
    eprintln!("xtask: wrote {}", path.display());
    Ok(())
}

/// The presenter window on X11 and on Wayland (a private GNOME session), each as its window
/// test drives it.
fn presenter() -> anyhow::Result<()> {
    for (test, variable, picture) in [
        (
            "presenter_shares_and_steers_a_live_share",
            "SCREENSHARE_E2E_SCREENSHOT",
            "docs/presenter.png",
        ),
        (
            "the_sound_switch_sends_what_the_computer_plays_and_its_meter_moves",
            "SCREENSHARE_E2E_SOUND_SCREENSHOT",
            "docs/presenter-sound.png",
        ),
        (
            "on_wayland_the_desktops_dialog_picks",
            "SCREENSHARE_E2E_WAYLAND_SCREENSHOT",
            "docs/presenter-wayland.png",
        ),
    ] {
        let mut command = cargo_command(&[
            "test",
            "--package",
            "screenshare-desktop",
            "--test",
            "window",
            "--",
            test,
        ]);
        command
            .env(variable, picture)
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY");
        let status = command.status().context("cannot run the window test")?;
        if !status.success() {
            bail!("the window test {test} failed; no picture taken");
        }
        eprintln!("xtask: wrote {}", workspace_root().join(picture).display());
    }
    Ok(())
}
