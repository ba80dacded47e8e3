//! The scenes on a Wayland desktop: a private headless GNOME session (mutter with a 1920x1080
//! virtual monitor, PipeWire, the portal and its GNOME backend), shared through the ScreenCast
//! portal and PipeWire as a presenter's GNOME desktop is. The desktop's dialog is answered once
//! per session (through accessibility, as a person would); every later share restores the pick
//! without it.
//!
//! The screen is a fullscreen terminal (no photo wallpaper under mutter alone):
//! - static: a still terminal;
//! - typing: a character every 100 ms;
//! - full motion: random text scrolling as fast as the terminal draws, the whole screen new on
//!   every frame.

use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use screenshare_testkit::{GnomeSession, Running};

use crate::bench::{self, Run};
use crate::viewers::Path;
use crate::workload::{HEIGHT, Scene, WIDTH};

/// How long the desktop's dialog may take to show and be answered.
const DIALOG: Duration = Duration::from_secs(60);

/// The scenes measured, with their runs.
pub fn scenes() -> anyhow::Result<Vec<(Scene, Vec<Run>)>> {
    let binary = crate::target_dir()?.join("release/screenshare");
    let mut measured = Vec::new();
    for scene in [Scene::Static, Scene::Typing, Scene::FullMotion] {
        eprintln!("xtask: measuring the {} scene on Wayland…", scene.name());
        let session = GnomeSession::start(u32::from(WIDTH), u32::from(HEIGHT))?;
        let _content = content(&session, scene)?;
        let mut runs = Vec::new();
        for (index, viewers) in viewer_counts(scene).into_iter().enumerate() {
            let answer = (index == 0)
                .then(|| session.spawn_answer_share_dialog(DIALOG))
                .transpose()?;
            let mut command = session.command(&binary);
            // The pick is kept in the session's own folder, never the developer's.
            command.env("XDG_STATE_HOME", session.runtime_dir().join("state"));
            let server = bench::launch(command)?;
            if let Some(answer) = answer {
                answer.wait().context("the desktop's dialog")?;
            }
            runs.push(bench::measure(server, Path::Stream, viewers)?);
        }
        measured.push((scene, runs));
    }
    Ok(measured)
}

fn viewer_counts(scene: Scene) -> Vec<u32> {
    match scene {
        Scene::Static | Scene::Typing => vec![1, 10, 100],
        Scene::Scrolling | Scene::FullMotion => vec![1, 10],
    }
}

/// A fullscreen terminal showing the scene, its text cursor hidden.
fn content(session: &GnomeSession, scene: Scene) -> anyhow::Result<Running> {
    let script = match scene {
        Scene::Static => "printf '\\033[?25l'; ls -l /usr; exec sleep 100000",
        Scene::Typing => "printf '\\033[?25l'; while :; do printf x; sleep 0.1; done",
        Scene::Scrolling | Scene::FullMotion => {
            "printf '\\033[?25l'; while :; do head -c 300000 /dev/urandom | base64 -w 238; done"
        }
    };
    let child = session
        .command("foot")
        .args([
            "--fullscreen",
            "-o",
            "colors.background=1e2430",
            "sh",
            "-c",
            script,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start foot")?;
    Ok(Running(child))
}

/// The report's section for these scenes, with the targets they are held to.
pub fn section(scenes: &[(Scene, Vec<Run>)]) -> String {
    let mut out = format!(
        "\n## Wayland: a headless GNOME session, shared through the portal and PipeWire\n\n\
         mutter 43 with a {WIDTH}x{HEIGHT} virtual monitor (software rendering), a fullscreen \
         terminal as the scene;\nthe same paced viewers as above, {} fps. The grab is the \
         capture thread's own figure: bringing its\npicture up to date from the newest PipeWire \
         frame (mutter 43 reports no damage, so every new frame is\ncopied whole, then the tiles \
         find what changed).\nPeak memory counts the PipeWire buffers mapped from mutter (shared \
         memory, not the presenter's own heap).\n\n\
         | scene | viewers | updates/s per viewer | Mbit/s per viewer | presenter CPU | grab | peak memory | errors |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
        bench::SHARE_FPS
    );
    for (scene, runs) in scenes {
        for run in runs {
            out.push_str(&format!(
                "| {} | {} | {:.1} | {:.3} | {:.1}% | {:.2} ms | {:.0} MB | {} |\n",
                scene.name(),
                run.viewers,
                run.updates_per_viewer_per_second,
                run.megabits_per_viewer_per_second,
                run.cpu_percent,
                run.grab_ms,
                run.peak_megabytes,
                run.errors,
            ));
        }
    }
    let find = |wanted: Scene, viewers: u32| {
        scenes
            .iter()
            .find(|(scene, _)| *scene == wanted)
            .and_then(|(_, runs)| runs.iter().find(|run| run.viewers == viewers))
    };
    let verdict = |met: bool| if met { "met" } else { "NOT met" };
    out.push_str("\n| target | measured | |\n|---|---:|---|\n");
    if let Some(typing) = find(Scene::Typing, 10) {
        out.push_str(&format!(
            "| typing ≤ 0.05 Mbit/s per viewer (10 viewers) | {:.3} | {} |\n\
             | typing ≤ 5% of a core (10 viewers) | {:.1}% | {} |\n",
            typing.megabits_per_viewer_per_second,
            verdict(typing.megabits_per_viewer_per_second <= 0.05),
            typing.cpu_percent,
            verdict(typing.cpu_percent <= 5.0),
        ));
    }
    if let Some(still) = find(Scene::Static, 10) {
        out.push_str(&format!(
            "| a still screen ≤ 1% of a core (10 viewers) | {:.1}% | {} |\n",
            still.cpu_percent,
            verdict(still.cpu_percent <= 1.0),
        ));
    }
    if let Some(run) = scenes.first().and_then(|(_, runs)| runs.first()) {
        out.push_str(&format!("\nCapture path: {}.\n", run.capture));
    }
    out
}
