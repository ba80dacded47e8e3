//! `cargo xtask screenshots [viewer|presenter]`: retakes the pictures in docs/ from the
//! repository root. The viewer page is headless Chromium on a live share of a virtual 1280x720
//! screen (a clock, a terminal running `top`, the pointer) with sound on, then looking back at a
//! "slide" that came and went; the presenter window is the real Tauri window as its end-to-end
//! tests drive it: on X11 with a viewer waiting to be let in, sending sound, and on a GNOME
//! (Wayland) session sharing the desktop's pick.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;

use crate::peer::{Killed, browser_on};
use crate::virtual_screen::VirtualScreen;
use crate::{cargo, cargo_command, packages, workspace_root};

/// `only`: `viewer` or `presenter` retakes just those pictures.
pub fn screenshots(only: Option<&str>) -> anyhow::Result<()> {
    packages::ensure(packages::TEST)?;
    // The virtual screen's clock.
    packages::ensure(&[&["x11-apps"]])?;
    match only {
        None => {
            viewer()?;
            presenter()
        }
        Some("viewer") => viewer(),
        Some("presenter") => presenter(),
        Some(other) => bail!("screenshots takes `viewer` or `presenter`, not {other:?}"),
    }
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
    save_screenshot(&browser, "docs/viewer.png")?;
    look_back(&screen, &browser)
}

/// The same page looking back at a "slide" that came and went.
fn look_back(screen: &VirtualScreen, browser: &crate::peer::WebDriver) -> anyhow::Result<()> {
    let kept = || -> anyhow::Result<u64> {
        Ok(browser
            .execute("return Number(document.body.dataset.kept || 0)")?
            .as_u64()
            .unwrap_or(0))
    };
    let wait_kept = |pictures: u64| -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while kept()? < pictures {
            if Instant::now() > deadline {
                bail!("the page kept {} pictures, not {pictures}", kept()?);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    };
    wait_kept(1)?;
    let slide = Killed(
        Command::new("xterm")
            .args([
                "-geometry", "46x9+90+110", "-fa", "DejaVu Sans Mono", "-fs", "20",
                "-bg", "#fdf6e3", "-fg", "#1f2933", "-e", "sh", "-c",
                "printf '\\n  Release 2.4 — what changed\\n\\n   * sound in the browser\\n   * look back at earlier slides\\n   * snapshots as PNG\\n'; sleep 600",
            ])
            .env("DISPLAY", screen.display())
            .env_remove("WAYLAND_DISPLAY")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start xterm")?,
    );
    wait_kept(2)?;
    drop(slide);
    wait_kept(3)?;
    // ← until the slide shows again, while the live screen has none.
    let deadline = Instant::now() + Duration::from_secs(20);
    while browser
        .execute("return document.getElementById('lookback-text').textContent")?
        .as_str()
        .is_none_or(|text| !text.contains("(2 of"))
    {
        if Instant::now() > deadline {
            bail!("the page never looked back at the slide");
        }
        browser.execute(
            "document.dispatchEvent(new KeyboardEvent('keydown', { key: 'ArrowLeft' })); return 0",
        )?;
        std::thread::sleep(Duration::from_millis(300));
    }
    std::thread::sleep(Duration::from_millis(500));
    save_screenshot(browser, "docs/viewer-lookback.png")
}

fn save_screenshot(browser: &crate::peer::WebDriver, path: &str) -> anyhow::Result<()> {
    let shot = browser.call("GET", "screenshot", serde_json::Value::Null)?;
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot["value"].as_str().context("no screenshot")?)
        .context("the screenshot is not base64")?;
    let path = workspace_root().join(path);
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
