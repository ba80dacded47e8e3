//! The real `screenshare` binary on a private Xvfb each, talked to over 127.0.0.1.

use std::process::{Command, Stdio};
use std::time::Duration;

use screenshare_core::frame::wire;
use screenshare_testkit::{Served, Xvfb, eventually};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_screenshare");

fn screen(colour: &str) -> Xvfb {
    let xvfb = Xvfb::start().expect("Xvfb (run `cargo xtask test` to install it)");
    xvfb.paint(colour).expect("paint");
    xvfb
}

async fn get_json(url: &str) -> Value {
    reqwest::get(url)
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON")
}

fn control(served: &Served, what: &str) -> String {
    served.control_url.replace("/settings", &format!("/{what}"))
}

async fn frame(url: &str) -> (u64, image::RgbImage) {
    let response = reqwest::get(url).await.expect("frame request");
    assert_eq!(response.status(), 200, "{url}");
    let seq = response.headers()["x-frame-seq"]
        .to_str()
        .ok()
        .and_then(|seq| seq.parse().ok())
        .expect("frame number");
    let body = response.bytes().await.expect("frame body");
    (
        seq,
        image::load_from_memory(&body).expect("an image").to_rgb8(),
    )
}

#[tokio::test]
async fn prints_urls_and_viewer_sees_colour_change() {
    let xvfb = screen("#8020c0");
    let served = Served::start(BIN, &xvfb, &[]).expect("serve");
    assert_eq!(served.viewer_urls.len(), 1, "bound to 127.0.0.1 only");
    assert!(served.viewer_url().starts_with("http://127.0.0.1:"));
    assert!(served.viewer_url().contains("/s/"));
    assert!(served.control_url.contains("/control/"));
    let token = served
        .viewer_url()
        .split("/s/")
        .nth(1)
        .expect("a token in the viewer URL")
        .trim_end_matches('/');
    assert_eq!(token.len(), 32, "{token}");
    assert!(
        !served.control_url.contains(token),
        "control needs its own secret"
    );

    let (seq, image) = frame(&served.viewer("screen.png?random=42")).await;
    assert_eq!(image.get_pixel(10, 10).0, [0x80, 0x20, 0xc0]);
    xvfb.paint("#20c080").expect("paint");
    let (next, image) = frame(&served.viewer(&format!("screen.png?after={seq}"))).await;
    assert!(next > seq);
    assert_eq!(image.get_pixel(600, 400).0, [0x20, 0xc0, 0x80]);
}

#[tokio::test]
async fn wrong_token_gets_404() {
    let xvfb = screen("#000000");
    let served = Served::start(BIN, &xvfb, &[]).expect("serve");
    let origin = served
        .viewer_url()
        .split("/s/")
        .next()
        .unwrap_or_default()
        .to_owned();
    for path in [
        "screen.png",
        "s/0123456789abcdef0123456789abcdef/screen.png",
        "status",
    ] {
        let response = reqwest::get(format!("{origin}/{path}"))
            .await
            .expect("request");
        assert_eq!(response.status(), 404, "{path}");
    }
}

#[tokio::test]
async fn frame_rate_changes_live() {
    let xvfb = screen("#101010");
    let served = Served::start(BIN, &xvfb, &["--fps", "4"]).expect("serve");
    let status_url = control(&served, "status");
    let settings_url = served.control_url.clone();
    // Hold a viewer: a long poll keeps capture running.
    let viewer = served.viewer("screen.jpg");
    let watching = tokio::spawn(async move {
        let client = reqwest::Client::new();
        let mut after = 0u64;
        loop {
            let Ok(response) = client.get(format!("{viewer}?after={after}")).send().await else {
                return;
            };
            if let Some(seq) = response.headers().get("x-frame-seq") {
                after = seq
                    .to_str()
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(after);
            }
            let _ = response.bytes().await;
        }
    });
    // The share measures its own rate over the last two seconds; wait for it to settle in band.
    let rate_within = |low: f64, high: f64| {
        let status_url = status_url.clone();
        async move {
            eventually(
                Duration::from_secs(15),
                &format!("a frame rate from {low} to {high}"),
                || {
                    let status_url = status_url.clone();
                    async move {
                        let rate = get_json(&status_url).await["achieved_fps"].as_f64()?;
                        (low..=high).contains(&rate).then_some(rate)
                    }
                },
            )
            .await
        }
    };
    let slow = rate_within(2.0, 6.0).await.expect("about 4 fps");
    let response = reqwest::Client::new()
        .patch(&settings_url)
        .json(&json!({"fps": 20}))
        .send()
        .await
        .expect("patch");
    assert_eq!(response.status(), 200);
    let fast = rate_within(slow * 2.5, 30.0)
        .await
        .expect("the new rate, live");
    watching.abort();
    eprintln!("{slow:.1} fps, then {fast:.1} fps");
}

#[tokio::test]
async fn ten_viewers_cost_one_encode_per_frame() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let xvfb = screen("#406080");
    let served = Served::start(BIN, &xvfb, &["--fps", "30"]).expect("serve");
    let status_url = control(&served, "status");
    // The first look is viewer 0's: from its address.
    let first_look = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 10]))
        .build()
        .expect("client");
    let first = first_look
        .get(served.viewer("screen.jpg"))
        .send()
        .await
        .expect("first frame")
        .headers()["x-frame-seq"]
        .to_str()
        .ok()
        .and_then(|seq| seq.parse::<u64>().ok())
        .expect("frame number");
    // Viewers follow the share frame by frame (`after=`), as the classic long poll allows,
    // until they reach `last`.
    let last = Arc::new(AtomicU64::new(u64::MAX));
    let mut viewers = tokio::task::JoinSet::new();
    for viewer in 0..10u8 {
        let url = served.viewer("screen.jpg");
        let last = last.clone();
        viewers.spawn(async move {
            // Ten machines: 127.0.0.10 to .19 (one address counts only a few page ids).
            let client = reqwest::Client::builder()
                .local_address(std::net::IpAddr::from([127, 0, 0, 10 + viewer]))
                .build()
                .expect("client");
            let mut seen = vec![first];
            while seen
                .last()
                .is_some_and(|seq| *seq < last.load(Ordering::SeqCst))
            {
                let after = seen.last().copied().unwrap_or(first);
                let response = client
                    .get(format!("{url}?v=viewer-{viewer}&after={after}"))
                    .send()
                    .await
                    .expect("frame");
                if response.status() == 204 {
                    continue;
                }
                assert_eq!(response.status(), 200);
                let seq: u64 = response.headers()["x-frame-seq"]
                    .to_str()
                    .ok()
                    .and_then(|seq| seq.parse().ok())
                    .expect("frame number");
                response.bytes().await.expect("body");
                seen.push(seq);
            }
            seen
        });
    }
    // The screen changes three times; each change is waited for, then one more wakes everyone.
    let mut now = first;
    for colour in ["#406081", "#406082", "#406083", "#406084"] {
        xvfb.paint(colour).expect("paint");
        now = eventually(Duration::from_secs(10), "a new frame", || {
            let status_url = status_url.clone();
            async move {
                let frame = get_json(&status_url).await["frame"].as_u64()?;
                (frame > now).then_some(frame)
            }
        })
        .await
        .expect("the change is captured");
        if colour == "#406083" {
            last.store(now, Ordering::SeqCst);
        }
    }
    let mut distinct = std::collections::BTreeSet::new();
    while let Some(seen) = viewers.join_next().await {
        let seen = seen.expect("viewer task");
        assert!(seen.len() >= 4, "each viewer saw every change: {seen:?}");
        distinct.extend(seen);
    }
    let status = get_json(&status_url).await;
    let jpeg_encodes = status["encodes"]["jpeg"].as_u64().expect("count");
    assert!(distinct.len() >= 4, "{distinct:?}");
    assert_eq!(
        jpeg_encodes,
        distinct.len() as u64,
        "one encode per frame served, for ten viewers"
    );
    assert_eq!(status["encodes"]["png"], 0);
    assert_eq!(status["viewers"], 10, "{status}");
    let listed = get_json(&control(&served, "viewers")).await;
    let addresses: std::collections::BTreeSet<String> = listed
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|viewer| viewer["address"].as_str().map(str::to_owned))
        .collect();
    let machines: std::collections::BTreeSet<String> =
        (10..20).map(|n| format!("127.0.0.{n}")).collect();
    assert_eq!(addresses, machines, "one entry per machine");
}

#[tokio::test]
async fn capture_reads_through_shm_or_says_it_falls_back() {
    let xvfb = screen("#5080a0");
    let served = Served::start(BIN, &xvfb, &[]).expect("serve");
    let (_, image) = frame(&served.viewer("screen.png")).await;
    assert_eq!(image.get_pixel(10, 10).0, [0x50, 0x80, 0xa0]);
    assert_eq!(
        get_json(&control(&served, "status")).await["capture"],
        "x11-shm"
    );

    let without = Served::start_with_env(BIN, &xvfb, &[], &[("SCREENSHARE_NO_SHM", "1")])
        .expect("serve without SHM");
    let (_, image) = frame(&without.viewer("screen.png")).await;
    assert_eq!(image.get_pixel(10, 10).0, [0x50, 0x80, 0xa0]);
    let status = get_json(&control(&without, "status")).await;
    assert_eq!(status["capture"], "x11-getimage", "{status}");
}

/// Fetches `updates?…` and parses it.
async fn update(served: &Served, query: &str) -> wire::Update {
    let response = reqwest::get(served.viewer(&format!("updates?{query}")))
        .await
        .expect("update request");
    assert_eq!(response.status(), 200, "{query}");
    wire::parse(&response.bytes().await.expect("body")).expect("an update")
}

#[tokio::test]
async fn a_change_inside_one_tile_is_sent_alone_and_tiles_encode_once() {
    let xvfb = screen("#101820");
    // Something that is not a flat colour, so that tiles are real images.
    xvfb.fill(3, 3, 200, 100, [200, 200, 40]).expect("fill");
    xvfb.fill(50, 20, 301, 211, [30, 160, 90]).expect("fill");
    let served = Served::start(BIN, &xvfb, &["--fps", "30"]).expect("serve");
    let whole = update(&served, "mode=lossless").await;
    assert!(whole.header.full);
    assert_eq!(whole.pieces.len(), 10 * 8, "every tile of 640x480");

    xvfb.fill(330, 140, 6, 9, [255, 255, 255])
        .expect("a small change");
    let next = update(
        &served,
        &format!("mode=lossless&after={}", whole.header.seq),
    )
    .await;
    assert_eq!(next.header.seq, whole.header.seq + 1);
    assert_eq!(next.pieces.len(), 1, "{:?}", next.pieces);
    assert_eq!(
        next.pieces[0].rect,
        screenshare_core::pixels::Rect::new(330, 140, 6, 9)
    );

    // Ten viewers who joined before the change catch up in one update each, from tiles
    // encoded once between them.
    let status_url = control(&served, "status");
    let before = get_json(&status_url).await["encodes"]["tiles"]
        .as_u64()
        .expect("tile encodes");
    let mut catch_ups = Vec::new();
    for _ in 0..10 {
        catch_ups.push(
            update(
                &served,
                &format!("mode=adaptive&after={}", whole.header.seq - 1),
            )
            .await,
        );
    }
    assert!(
        catch_ups
            .iter()
            .all(|update| update.pieces == catch_ups[0].pieces)
    );
    let after = get_json(&status_url).await["encodes"]["tiles"]
        .as_u64()
        .expect("tile encodes");
    let images = catch_ups[0]
        .pieces
        .iter()
        .filter(|piece| !matches!(piece.body, wire::PieceBody::Solid(_)))
        .count() as u64;
    assert!(images > 0);
    assert!(
        after - before <= images,
        "{} tile encodes for {images} tile images served ten times",
        after - before
    );
}

#[test]
fn list_shows_the_monitor() {
    let xvfb = screen("#000000");
    let output = xvfb.command(BIN).arg("list").output().expect("list");
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("640x480") && text.contains("yes"), "{text}");
    let json = xvfb
        .command(BIN)
        .args(["list", "--json"])
        .output()
        .expect("list");
    let monitors: Value = serde_json::from_slice(&json.stdout).expect("JSON list");
    assert_eq!(monitors[0]["width"], 640);
}

/// Runs `screenshare serve` expecting it to refuse: exit code 2 and one line on stderr.
fn refused(command: &mut Command) -> String {
    let output = command
        .stdin(Stdio::null())
        .env("RUST_LOG", "off")
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        output.stdout.is_empty(),
        "no URL printed for a refused share"
    );
    stderr
}

#[test]
fn bad_input_gets_a_one_line_error_and_exit_2() {
    let xvfb = screen("#000000");
    let serve = |args: &[&str]| {
        let mut command = xvfb.command(BIN);
        command
            .args(["serve", "--bind", "127.0.0.1", "--port", "0"])
            .args(args);
        command
    };
    assert!(
        refused(&mut serve(&["--fps", "0"])).contains("frame rate must be from 1 to 60 fps, not 0")
    );
    assert!(
        refused(&mut serve(&["--quality", "101"]))
            .contains("quality must be from 10 to 100, not 101")
    );
    let unknown = refused(&mut serve(&["--monitor", "3"]));
    assert!(
        unknown.contains("no monitor #3") && unknown.contains("\"screen\""),
        "{unknown}"
    );
    let mut no_display = Command::new(BIN);
    no_display
        .args(["serve", "--port", "0"])
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY");
    assert!(refused(&mut no_display).contains("no display"));
}

#[test]
fn port_in_use_is_a_clear_error() {
    let xvfb = screen("#000000");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = taken.local_addr().expect("address").port().to_string();
    let message =
        refused(
            xvfb.command(BIN)
                .args(["serve", "--bind", "127.0.0.1", "--port", &port]),
        );
    assert!(
        message.contains("already in use") && message.contains(&port),
        "{message}"
    );
}

#[tokio::test]
async fn interrupt_shuts_down_gracefully() {
    let xvfb = screen("#000000");
    let mut served = Served::start(BIN, &xvfb, &[]).expect("serve");
    let viewer = served.viewer("screen.png");
    reqwest::get(&viewer).await.expect("a frame first");
    let status = Command::new("kill")
        .args(["-INT", &served.pid().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = eventually(Duration::from_secs(10), "screenshare to exit", || {
        let exited = served.try_wait();
        async move { exited }
    })
    .await
    .expect("exits after Ctrl-C");
    assert!(exit.success(), "{exit:?}");
    assert!(
        reqwest::get(&viewer).await.is_err(),
        "nothing listens any more"
    );
}

#[tokio::test]
async fn capture_stops_when_the_last_viewer_leaves() {
    let xvfb = screen("#405060");
    let served = Served::start(BIN, &xvfb, &["--fps", "10"]).expect("serve");
    let status_url = control(&served, "status");
    frame(&served.viewer("screen.png")).await;
    let live = get_json(&status_url).await;
    assert_eq!(live["state"], "live", "{live}");
    // Nobody asks any more: within a few seconds capture goes idle, and grabs stop.
    let idle = eventually(Duration::from_secs(15), "capture to go idle", || {
        let status_url = status_url.clone();
        async move {
            // The list forgets the viewer at the same timeout, give or take the request's end.
            let status = get_json(&status_url).await;
            (status["state"] == "idle" && status["viewers"] == 0).then_some(status)
        }
    })
    .await
    .expect("idle, with nobody listed");
    let grabs = idle["grabs"].as_u64().expect("grabs");
    // The next viewer wakes it again.
    frame(&served.viewer("screen.png")).await;
    let again = get_json(&status_url).await["grabs"]
        .as_u64()
        .expect("grabs");
    assert!(
        again > grabs,
        "a new viewer gets a fresh grab: {grabs} then {again}"
    );
}

#[tokio::test]
async fn two_monitors_switch_live_and_a_removed_one_is_lost_until_the_other_is_picked() {
    let xvfb = Xvfb::start_sized(640, 200).expect("Xvfb");
    xvfb.split_into_two_monitors([200, 0, 0], [0, 0, 200])
        .expect("two monitors");
    let served = Served::start(BIN, &xvfb, &["--monitor", "RIGHT", "--fps", "10"]).expect("serve");
    let status_url = control(&served, "status");
    let shows = |colour: [u8; 3]| {
        let url = served.viewer("screen.png");
        async move {
            eventually(
                Duration::from_secs(15),
                &format!("frames of {colour:?}"),
                || {
                    let url = url.clone();
                    async move {
                        let response = reqwest::get(&url).await.ok()?;
                        let image = image::load_from_memory(&response.bytes().await.ok()?)
                            .ok()?
                            .to_rgb8();
                        (image.dimensions() == (320, 200) && image.get_pixel(160, 100).0 == colour)
                            .then_some(())
                    }
                },
            )
            .await
        }
    };
    shows([0, 0, 200]).await.expect("the right half");
    let patch = |body: Value| {
        let url = served.control_url.clone();
        async move {
            reqwest::Client::new()
                .patch(&url)
                .json(&body)
                .send()
                .await
                .expect("patch")
                .status()
        }
    };
    assert_eq!(patch(json!({"monitor": "LEFT"})).await, 200);
    shows([200, 0, 0]).await.expect("the left half, live");
    // The shared monitor goes away (a projector unplugged): the share says so and keeps the
    // last picture; picking the other one carries on.
    xvfb.run("xrandr", &["--delmonitor", "LEFT"])
        .expect("remove LEFT");
    let lost = eventually(Duration::from_secs(15), "the loss to show", || {
        let status_url = status_url.clone();
        async move {
            let status = get_json(&status_url).await;
            (status["state"] == "source_lost").then_some(status)
        }
    });
    // Someone keeps watching, so capture keeps looking.
    let watcher = tokio::spawn({
        let url = served.viewer("screen.png");
        async move {
            loop {
                let _ = reqwest::get(&url).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    });
    let lost = lost.await.expect("source lost");
    assert!(
        lost["error"].as_str().unwrap_or_default().contains("LEFT"),
        "{lost}"
    );
    assert_eq!(patch(json!({"monitor": "RIGHT"})).await, 200);
    shows([0, 0, 200]).await.expect("the other monitor");
    let live = get_json(&status_url).await;
    assert_eq!(live["state"], "live", "{live}");
    watcher.abort();
}

#[tokio::test]
async fn a_maximum_width_scales_what_clients_draw_too() {
    // Drawn by a client (its pixels' fourth byte is 0), not painted as the root's background.
    let xvfb = screen("#000000");
    xvfb.fill(0, 0, 640, 480, [40, 200, 90]).expect("fill");
    let served = Served::start(BIN, &xvfb, &["--max-width", "320"]).expect("serve");
    let (_, image) = frame(&served.viewer("screen.png")).await;
    assert_eq!(
        image.dimensions(),
        (320, 240),
        "scaled to the maximum width"
    );
    let [r, g, b] = image.get_pixel(160, 120).0;
    assert!(
        r.abs_diff(40) <= 4 && g.abs_diff(200) <= 4 && b.abs_diff(90) <= 4,
        "the colour survives scaling: {r},{g},{b}"
    );
}

/// A script that takes the first URL and closes the pipe used to kill the share, whenever a line
/// was printed after it closed (a panic on the broken pipe); the share goes on whoever reads.
#[tokio::test]
async fn the_share_outlives_a_reader_that_closes_its_output() {
    let xvfb = screen("#20a060");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--open",
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ])
        .env("DISPLAY", xvfb.display())
        .env_remove("WAYLAND_DISPLAY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("screenshare starts");
    // Nobody reads what it prints: both pipes are closed before it prints anything.
    drop(child.stdout.take());
    drop(child.stderr.take());
    let url = format!("http://127.0.0.1:{port}/screen.png");
    let served = eventually(Duration::from_secs(20), "the share to answer", || async {
        let response = reqwest::get(&url).await.ok()?;
        (response.status() == 200).then_some(())
    })
    .await;
    let alive = child.try_wait().expect("wait").is_none();
    let _ = child.kill();
    let _ = child.wait();
    served.expect("served");
    assert!(alive, "still running");
}
