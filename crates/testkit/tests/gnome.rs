//! The GNOME session fixture against the real portal: a painted screen reaches a portal screen
//! cast after the dialog is answered, a restore token starts the next cast with no dialog, and
//! the pointer goes where it is told.

use std::time::Duration;

use image::RgbImage;
use screenshare_testkit::{GnomeSession, close_to};

fn session(width: u32, height: u32) -> GnomeSession {
    GnomeSession::start(width, height)
        .expect("a GNOME session (apt-get install mutter xdg-desktop-portal-gnome foot …)")
}

/// The colours of the corners and the middle of `picture`.
fn samples(picture: &RgbImage) -> Vec<[u8; 3]> {
    let (width, height) = picture.dimensions();
    [
        (2, 2),
        (width - 3, 2),
        (2, height - 3),
        (width - 3, height - 3),
        (width / 2, height / 2),
    ]
    .iter()
    .map(|&(x, y)| picture.get_pixel(x, y).0)
    .collect()
}

fn assert_all(picture: &RgbImage, colour: [u8; 3], what: &str) {
    let seen = samples(picture);
    assert!(
        seen.iter().all(|&got| close_to(got, colour, 2)),
        "{what}: want {colour:?} everywhere, the corners and the middle are {seen:?}"
    );
}

#[test]
fn portal_cast_after_the_dialog_then_restored_without_one() {
    let session = session(1280, 720);
    let blue = [0x33, 0x66, 0xcc];
    let _blue = session.paint(blue).expect("paint");
    assert!(
        !session.share_dialog_open().expect("look for a dialog"),
        "no dialog before anyone asks"
    );

    let mut cast = session.portal_cast(None).expect("portal script");
    session
        .answer_share_dialog(Duration::from_secs(30))
        .expect("answer the dialog");
    let started = cast
        .wait_started(Duration::from_secs(30))
        .expect("the cast starts once Share is clicked");
    assert_eq!(started.streams.len(), 1, "{started:?}");
    let stream = started.streams[0];
    assert_eq!(stream.size, Some((1280, 720)), "{started:?}");
    assert!(
        !started.restore_token.is_empty(),
        "persist_mode 2 gives a token"
    );
    let picture = session
        .reference_picture(stream.node)
        .expect("read the node");
    assert_eq!(picture.dimensions(), (1280, 720));
    assert_all(&picture, blue, "the portal's stream");
    drop(cast);

    // Nobody answers a dialog now: a cast that needed one would never start.
    let mut again = session
        .portal_cast(Some(&started.restore_token))
        .expect("portal script");
    let restarted = again
        .wait_started(Duration::from_secs(10))
        .expect("the restore token starts the cast without a dialog");
    assert!(
        !session.share_dialog_open().expect("look for a dialog"),
        "no dialog with a restore token"
    );
    assert_eq!(restarted.streams.len(), 1, "{restarted:?}");
    // A new colour shows the restored stream is live, not a leftover frame.
    let green = [0x20, 0xa0, 0x40];
    let _green = session.paint(green).expect("paint");
    let picture = session
        .reference_picture(restarted.streams[0].node)
        .expect("read the restored node");
    assert_all(&picture, green, "the restored stream");
}

/// The box around every pixel of `picture` that is not `background` (the pointer's sprite).
fn sprite_box(picture: &RgbImage, background: [u8; 3]) -> Option<(u32, u32, u32, u32)> {
    let mut found: Option<(u32, u32, u32, u32)> = None;
    for (x, y, pixel) in picture.enumerate_pixels() {
        if !close_to(pixel.0, background, 8) {
            found = Some(match found {
                None => (x, y, x, y),
                Some((left, top, right, bottom)) => {
                    (left.min(x), top.min(y), right.max(x), bottom.max(y))
                }
            });
        }
    }
    found
}

#[test]
fn pointer_goes_where_told_and_no_dialog_means_an_error() {
    let session = session(640, 480);
    let grey = [0x80, 0x80, 0x80];
    let _grey = session.paint(grey).expect("paint");
    for (x, y) in [(200_u32, 150_u32), (500, 300)] {
        session
            .move_pointer(f64::from(x), f64::from(y))
            .expect("move the pointer");
        let picture = session.screenshot_with_pointer().expect("screenshot");
        let (left, top, right, bottom) =
            sprite_box(&picture, grey).expect("the pointer is drawn somewhere");
        // The sprite's hot spot is near its top-left corner; it is some 10 to 40 pixels big.
        assert!(
            left.abs_diff(x) <= 12 && top.abs_diff(y) <= 12 && right < x + 48 && bottom < y + 48,
            "pointer sent to ({x}, {y}), sprite drawn at ({left}, {top})..({right}, {bottom})"
        );
    }
    // Without the pointer: the screen is all grey.
    assert_all(
        &session.screenshot().expect("screenshot"),
        grey,
        "no pointer",
    );

    let error = session
        .answer_share_dialog(Duration::from_secs(1))
        .expect_err("no dialog to answer");
    assert!(
        format!("{error:#}").contains("timed out waiting for the \"Screen Share\" dialog"),
        "{error:#}"
    );
}
