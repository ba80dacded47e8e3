//! Real capture through xcap, in this process, against a private Xvfb (640x480) that the tests
//! paint with `xsetroot`. The tests share that one screen, so they take turns.

use std::time::Duration;

use screenshare_core::capture::Screens;
use screenshare_core::capture::xcap::XcapScreens;
use screenshare_core::{Settings, Share, ShareOptions, sources};
use screenshare_testkit::{Xvfb, shared_display};
use tokio::sync::Mutex;

/// One painter at a time on the shared screen.
static SCREEN: Mutex<()> = Mutex::const_new(());

fn display() -> &'static Xvfb {
    shared_display().expect("a private Xvfb (run `cargo xtask test` to install it)")
}

#[tokio::test]
async fn lists_the_xvfb_monitor_as_primary() {
    display();
    let monitors = tokio::task::spawn_blocking(sources)
        .await
        .expect("list task")
        .expect("monitors");
    assert_eq!(monitors.len(), 1, "{monitors:?}");
    let monitor = &monitors[0];
    assert_eq!((monitor.width, monitor.height), (640, 480));
    assert!(monitor.is_primary);
    assert_eq!(monitor.index, 0);
}

#[tokio::test]
async fn grab_sees_the_painted_colour() {
    let xvfb = display();
    let _turn = SCREEN.lock().await;
    for (colour, rgb) in [
        ("#d02020", [0xd0, 0x20, 0x20]),
        ("#20a0f0", [0x20, 0xa0, 0xf0]),
    ] {
        xvfb.paint(colour).expect("paint");
        let image = tokio::task::spawn_blocking(|| {
            let mut source = XcapScreens.open(None)?;
            Ok::<_, screenshare_core::CaptureError>(source.grab()?.picture.to_rgba())
        })
        .await
        .expect("grab task")
        .expect("grab");
        assert_eq!(image.dimensions(), (640, 480));
        let pixel = image.get_pixel(320, 240).0;
        assert_eq!(&pixel[..3], &rgb, "after painting {colour}");
    }
}

#[tokio::test]
async fn unknown_monitor_is_refused_at_start() {
    display();
    let error = Share::start(ShareOptions {
        settings: Settings {
            monitor: Some("HDMI-9".parse().expect("choice")),
            ..Settings::default()
        },
        bind: "127.0.0.1:0".parse().expect("address"),
        open: false,
        ..ShareOptions::default()
    })
    .await
    .expect_err("there is no HDMI-9");
    let message = error.to_string();
    assert!(
        message.contains("HDMI-9") && message.contains("screen"),
        "{message}"
    );
}

#[tokio::test]
async fn share_serves_the_real_screen_over_a_socket() {
    let xvfb = display();
    let _turn = SCREEN.lock().await;
    xvfb.paint("#305070").expect("paint");
    let share = Share::start(ShareOptions {
        settings: Settings {
            fps: 20,
            ..Settings::default()
        },
        bind: "127.0.0.1:0".parse().expect("address"),
        open: false,
        ..ShareOptions::default()
    })
    .await
    .expect("share starts");
    let viewer = share.viewer_urls()[0].clone();
    assert!(viewer.starts_with("http://127.0.0.1:"), "{viewer}");

    let client = reqwest::Client::new();
    let first = client
        .get(format!("{viewer}screen.png"))
        .send()
        .await
        .expect("frame");
    let seq = first.headers()["x-frame-seq"]
        .to_str()
        .expect("seq")
        .to_owned();
    let image = image::load_from_memory(&first.bytes().await.expect("body"))
        .expect("PNG")
        .to_rgb8();
    assert_eq!(image.dimensions(), (640, 480));
    assert_eq!(image.get_pixel(100, 100).0, [0x30, 0x50, 0x70]);

    xvfb.paint("#f0c000").expect("paint");
    let next = client
        .get(format!("{viewer}screen.png?after={seq}"))
        .send()
        .await
        .expect("next frame");
    let image = image::load_from_memory(&next.bytes().await.expect("body"))
        .expect("PNG")
        .to_rgb8();
    assert_eq!(image.get_pixel(100, 100).0, [0xf0, 0xc0, 0x00]);

    let status = share.status();
    assert_eq!(status.encodes.png, 2, "one encode per frame: {status:?}");
    assert!(status.grab_ms > 0.0);
    tokio::time::timeout(Duration::from_secs(10), share.stop())
        .await
        .expect("stops promptly")
        .expect("stops cleanly");
}
