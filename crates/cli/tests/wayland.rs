//! The real `screenshare` binary on a private headless GNOME session (mutter, PipeWire, the
//! xdg-desktop-portal with its GNOME backend): the portal's dialog answered through AT-SPI as a
//! person would, pictures checked against what a client drew and against mutter's own cast.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use screenshare_core::frame::wire;
use screenshare_core::pixels::Rect;
use screenshare_testkit::{Browser, GnomeSession, Running, Served, close_to, eventually};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_screenshare");
const BLUE: [u8; 3] = [0x33, 0x66, 0xcc];

fn session() -> GnomeSession {
    GnomeSession::start(1280, 720)
        .expect("a headless GNOME session (run `cargo xtask test` to install its packages)")
}

/// `screenshare serve` in `session`, its pick answered in the desktop's dialog when `answer`.
fn serve(session: &GnomeSession, answer: bool, args: &[&str]) -> Served {
    let answering = answer.then(|| {
        session
            .spawn_answer_share_dialog(Duration::from_secs(60))
            .expect("the dialog answerer")
    });
    let mut command = session.command(BIN);
    command.env("XDG_STATE_HOME", state_home(session));
    let served = Served::spawn(command, args).expect("serve");
    if let Some(answering) = answering {
        answering.wait().expect("the desktop's dialog answered");
    }
    served
}

fn control(served: &Served, what: &str) -> String {
    served.control_url.replace("/settings", &format!("/{what}"))
}

async fn get_json(url: &str) -> Value {
    reqwest::get(url)
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON")
}

async fn screen_png(served: &Served) -> Option<image::RgbImage> {
    let response = reqwest::get(served.viewer("screen.png")).await.ok()?;
    if response.status() != 200 {
        return None;
    }
    let body = response.bytes().await.ok()?;
    Some(image::load_from_memory(&body).ok()?.to_rgb8())
}

async fn update(served: &Served, query: &str) -> wire::Update {
    let response = reqwest::get(served.viewer(&format!("updates?{query}")))
        .await
        .expect("update request");
    assert_eq!(response.status(), 200, "{query}");
    wire::parse(&response.bytes().await.expect("body")).expect("an update")
}

/// Whether every spot away from the pointer (parked bottom right) has `colour`.
fn all_of(picture: &image::RgbImage, colour: [u8; 3]) -> bool {
    let (width, height) = picture.dimensions();
    [
        (2, 2),
        (width - 3, 2),
        (width / 2, height / 2),
        (2, height - 3),
    ]
    .iter()
    .all(|&(x, y)| picture.get_pixel(x, y).0 == colour)
}

/// The share's state folder: the session's own, so that tests never share a restore token
/// (nor touch the developer's).
fn state_home(session: &GnomeSession) -> PathBuf {
    session.runtime_dir().join("state")
}

/// The restore token the share kept.
fn token_file(session: &GnomeSession) -> PathBuf {
    state_home(session).join("screenshare/wayland-restore-token")
}

#[tokio::test]
async fn the_desktops_pick_is_shared_then_restored_without_asking() {
    let session = session();
    let _blue = session.paint(BLUE).expect("paint");
    let served = serve(&session, true, &["--fps", "30"]);

    let picture = eventually(Duration::from_secs(20), "the blue screen", || async {
        screen_png(&served).await.filter(|p| all_of(p, BLUE))
    })
    .await
    .unwrap_or_else(|error| panic!("{error}\n{}", served.stderr()));
    assert_eq!(picture.dimensions(), (1280, 720));
    // The same pixels mutter's own cast of the monitor shows (away from the pointer).
    let reference = session.screenshot().expect("mutter's own cast");
    for (x, y) in [(0, 0), (640, 360), (1279, 0), (0, 719), (900, 100)] {
        assert_eq!(
            picture.get_pixel(x, y),
            reference.get_pixel(x, y),
            "({x}, {y})"
        );
    }
    let status = get_json(&control(&served, "status")).await;
    assert_eq!(status["capture"], "wayland-portal-pipewire", "{status}");
    assert_eq!(
        status["monitor"]["name"], "a screen picked on the desktop",
        "{status}"
    );

    // The pick is kept for next time, readable by its owner only.
    let token = token_file(&session);
    let mode = std::fs::metadata(&token)
        .expect("a restore token kept")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{}", token.display());
    drop(served);

    // The next share starts from the kept pick: a picture, and no dialog at any moment.
    let again = serve(&session, false, &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(
            !session.share_dialog_open().expect("a look at the desktop"),
            "the desktop asked again"
        );
        if screen_png(&again).await.is_some_and(|p| all_of(&p, BLUE)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no picture without the dialog:\n{}",
            again.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_change_inside_one_tile_is_sent_alone() {
    let session = session();
    // A fullscreen terminal that prints one character when told (through a FIFO), its text
    // cursor hidden: a change of a few pixels in one corner.
    // In the session's own folder, which goes with it.
    let fifo = session.runtime_dir().join("typing-fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let script = format!(
        "printf '\\033[?25l'; read line < '{}'; printf X; exec sleep 600",
        fifo.display()
    );
    let mut foot = session.command("foot");
    foot.args([
        "--fullscreen",
        "-o",
        "colors.background=3366cc",
        "-o",
        "colors.foreground=ffffff",
        "sh",
        "-c",
        &script,
    ]);
    let _terminal = Running(foot.spawn().expect("foot"));
    let served = serve(&session, true, &["--fps", "30"]);

    let whole = eventually(Duration::from_secs(20), "a whole blue picture", || async {
        let update = update(&served, "mode=lossless").await;
        update
            .pieces
            .iter()
            .all(|piece| piece.body == wire::PieceBody::Solid(BLUE))
            .then_some(update)
    })
    .await
    .unwrap_or_else(|error| panic!("{error}\n{}", served.stderr()));
    assert_eq!(whole.header.size, Some((1280, 720)));

    let mut writer = std::fs::OpenOptions::new()
        .write(true)
        .open(&fifo)
        .expect("the terminal's FIFO");
    writeln!(writer, "go").expect("tell the terminal");
    drop(writer);
    let seq = whole.header.seq;
    let next = eventually(Duration::from_secs(20), "the character", || async {
        let next = update(&served, &format!("after={seq}&mode=lossless")).await;
        (!next.pieces.is_empty()).then_some(next)
    })
    .await
    .unwrap_or_else(|error| panic!("{error}\n{}", served.stderr()));
    // mutter 43 says nothing of what changed: the tiles found it, and sent only it.
    assert_eq!(next.pieces.len(), 1, "{:?}", next.pieces);
    let rect = next.pieces[0].rect;
    assert!(
        rect.intersect(&Rect::new(0, 0, 64, 64)) == Some(rect) && rect.area() < 64 * 64,
        "the character is in the top-left tile: {rect:?}"
    );
}

#[tokio::test]
async fn the_pointer_is_data_and_a_cast_ended_outside_is_said_then_restored() {
    let session = session();
    let _blue = session.paint(BLUE).expect("paint");
    let served = serve(&session, true, &["--fps", "30"]);
    eventually(Duration::from_secs(20), "the blue screen", || async {
        screen_png(&served).await.filter(|p| all_of(p, BLUE))
    })
    .await
    .unwrap_or_else(|error| panic!("{error}\n{}", served.stderr()));

    // The pointer moved by mutter's remote desktop: its position comes with the frames, and
    // screen.png draws it there.
    session
        .move_pointer(400.0, 300.0)
        .expect("move the pointer");
    let pointer = eventually(
        Duration::from_secs(20),
        "the pointer at 400,300",
        || async {
            // A whole-screen update (no `after`) always carries the pointer.
            let header = update(&served, "mode=lossless").await.header.pointer?;
            (header.shape != 0 && (header.x, header.y) == (400, 300)).then_some(header)
        },
    )
    .await
    .unwrap_or_else(|error| panic!("{error}\n{}", served.stderr()));
    assert!(pointer.hot_x < 64 && pointer.hot_y < 64, "{pointer:?}");
    let drawn = eventually(Duration::from_secs(10), "the pointer drawn", || async {
        screen_png(&served).await.filter(|picture| {
            (0..12).any(|d| !close_to(picture.get_pixel(400 + d, 300 + d).0, BLUE, 8))
        })
    })
    .await;
    assert!(drawn.is_ok(), "no pointer at 400,300 in screen.png");

    // The desktop's side of the cast goes away (its portal backend dies): viewers are told in
    // words, then the share comes back by itself with the kept pick, no dialog.
    let backend = session
        .command("dbus-send")
        .args([
            "--session",
            "--print-reply",
            "--dest=org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus.GetConnectionUnixProcessID",
            "string:org.freedesktop.impl.portal.desktop.gnome",
        ])
        .output()
        .expect("dbus-send");
    let pid = String::from_utf8_lossy(&backend.stdout)
        .split_whitespace()
        .skip_while(|word| *word != "uint32")
        .nth(1)
        .map(str::to_owned)
        .expect("the GNOME portal backend's pid");
    let killed = std::process::Command::new("kill")
        .arg(&pid)
        .status()
        .expect("kill");
    assert!(killed.success());
    let status_url = control(&served, "status");
    let lost = eventually(Duration::from_secs(10), "the share lost", || async {
        let status = get_json(&status_url).await;
        (status["state"] == "source_lost").then_some(status)
    })
    .await
    .unwrap_or_else(|error| panic!("{error}\n{}", served.stderr()));
    assert!(
        lost["error"]
            .as_str()
            .is_some_and(|error| error.contains("desktop ended the screen cast")),
        "{lost}"
    );
    let viewer_status = get_json(&served.viewer("status")).await;
    assert_eq!(viewer_status["source_lost"], true, "{viewer_status}");
    eventually(Duration::from_secs(20), "the share back", || async {
        (get_json(&status_url).await["state"] == "live").then_some(())
    })
    .await
    .unwrap_or_else(|error| panic!("{error}\n{}", served.stderr()));
    assert!(!session.share_dialog_open().expect("a look at the desktop"));
}

#[tokio::test]
async fn the_page_in_chromium_shows_what_mutter_casts() {
    let session = session();
    // Text on a dark background, the text cursor hidden: what a presenter's terminal shows.
    let mut foot = session.command("foot");
    foot.args([
        "--fullscreen",
        "-o",
        "colors.background=202830",
        "sh",
        "-c",
        "printf '\\033[?25l'; echo 'screenshare on Wayland'; seq 1 15; exec sleep 600",
    ]);
    let _terminal = Running(foot.spawn().expect("foot"));
    let served = serve(&session, true, &[]);
    let browser = Browser::start().await.expect("Chromium");
    browser
        .client()
        .goto(served.viewer_url())
        .await
        .expect("the viewer page");
    let differing = std::sync::Mutex::new(usize::MAX);
    let matched = eventually(
        Duration::from_secs(30),
        "the canvas to equal mutter's own cast",
        || async {
            let (Ok(canvas), Ok(screen)) = (browser.canvas("screen").await, session.screenshot())
            else {
                return None;
            };
            if canvas.dimensions() == screen.dimensions() {
                let count = canvas
                    .pixels()
                    .zip(screen.pixels())
                    .filter(|(a, b)| a != b)
                    .count();
                if let Ok(mut last) = differing.lock() {
                    *last = count;
                }
            }
            // Text, not a flat screen: many colours, and equal to the last pixel.
            (canvas == screen && canvas.pixels().any(|p| p.0 != [0x20, 0x28, 0x30])).then_some(())
        },
    )
    .await;
    let last = differing.lock().map(|count| *count).unwrap_or(usize::MAX);
    matched.unwrap_or_else(|error| panic!("{error} ({last} pixels differ)\n{}", served.stderr()));
    let _ = browser.close().await;
}

#[test]
fn the_cli_says_the_desktop_picks() {
    let run = |args: &[&str]| {
        std::process::Command::new(BIN)
            .args(args)
            .env("WAYLAND_DISPLAY", "wayland-screenshare-test")
            .env_remove("DISPLAY")
            .output()
            .expect("screenshare")
    };
    let list = run(&["list"]);
    assert!(list.status.success());
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(text.contains("your desktop's own dialog picks"), "{text}");
    for flag in [["--monitor", "1"], ["--window", "Slides"]] {
        let serve = run(&["serve", "--port", "0", flag[0], flag[1]]);
        assert_eq!(serve.status.code(), Some(2), "{flag:?}");
        let error = String::from_utf8_lossy(&serve.stderr);
        assert!(
            error.contains(&format!("so {} does not apply", flag[0])),
            "{error}"
        );
    }
}
