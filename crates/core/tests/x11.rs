//! The X11 source against a private Xvfb each: MIT-SHM and plain GetImage read the same pixels,
//! DAMAGE limits what a grab reads, the pointer is seen where it is, RandR monitors are listed.

#![cfg(target_os = "linux")]

use screenshare_core::capture::x11::X11Screens;
use screenshare_core::capture::{Damage, Screens};
use screenshare_core::pixels::Rect;
use screenshare_core::settings::MonitorChoice;
use screenshare_testkit::{Running, Xvfb};

fn screen(width: u32, height: u32) -> Xvfb {
    Xvfb::start_sized(width, height).expect("Xvfb (run `cargo xtask test` to install it)")
}

/// Polls `check` until it gives a value, for at most 20 s (the X clients start at their own pace).
fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "gave up waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn rgb_at(picture: &screenshare_core::pixels::Picture, x: u32, y: u32) -> [u8; 3] {
    let pixel = picture.to_rgba().get_pixel(x, y).0;
    [pixel[0], pixel[1], pixel[2]]
}

#[test]
fn shm_and_getimage_read_the_same_pixels_as_the_server_has() {
    let xvfb = screen(320, 200);
    xvfb.paint("#204060").expect("paint");
    xvfb.fill(10, 20, 30, 40, [250, 128, 1]).expect("fill");
    let expected = xvfb.screenshot().expect("reference screenshot");

    let mut shm = X11Screens::with_display(xvfb.display(), true)
        .open(None)
        .expect("opens with SHM");
    let mut plain = X11Screens::with_display(xvfb.display(), false)
        .open(None)
        .expect("opens without SHM");
    assert_eq!(shm.method(), "x11-shm");
    assert_eq!(plain.method(), "x11-getimage");
    for source in [&mut shm, &mut plain] {
        let grab = source.grab().expect("grab");
        assert_eq!(
            grab.damage,
            Damage::Unknown,
            "the first grab reads everything"
        );
        let got = image::DynamicImage::ImageRgba8(grab.picture.to_rgba()).to_rgb8();
        assert_eq!(got, expected, "{} read other pixels", source.method());
    }
}

#[test]
fn later_grabs_read_only_what_damage_reports() {
    let xvfb = screen(320, 200);
    xvfb.paint("#000000").expect("paint");
    let mut source = X11Screens::with_display(xvfb.display(), true)
        .open(None)
        .expect("opens");
    source.grab().expect("first grab");
    let still = source.grab().expect("grab of a still screen");
    assert_eq!(still.damage, Damage::Rects(Vec::new()));

    xvfb.fill(100, 50, 8, 16, [0, 255, 0]).expect("fill");
    let grab = source.grab().expect("grab after a change");
    let Damage::Rects(rects) = &grab.damage else {
        panic!("DAMAGE should name the change: {:?}", grab.damage);
    };
    let area: u64 = rects.iter().map(Rect::area).sum();
    assert!(
        rects
            .iter()
            .all(|rect| rect.intersect(&Rect::new(100, 50, 8, 16)) == Some(*rect)),
        "damage beyond the change: {rects:?}"
    );
    assert_eq!(area, 8 * 16, "{rects:?}");
    assert_eq!(rgb_at(grab.picture, 104, 58), [0, 255, 0]);
    assert_eq!(rgb_at(grab.picture, 99, 58), [0, 0, 0]);
}

#[test]
fn the_pointer_is_seen_where_it_is() {
    let xvfb = screen(320, 200);
    xvfb.run("xdotool", &["mousemove", "123", "45"])
        .expect("xdotool (apt-get install xdotool)");
    let mut source = X11Screens::with_display(xvfb.display(), true)
        .open(None)
        .expect("opens");
    let grab = source.grab().expect("grab");
    let pointer = grab.pointer.expect("XFIXES shows the pointer");
    assert_eq!((pointer.x, pointer.y), (123, 45));
    assert!(pointer.visible);
    let shape = &pointer.shape;
    assert!(shape.width > 0 && shape.height > 0);
    assert_eq!(shape.rgba.len(), (shape.width * shape.height * 4) as usize);
    assert!(
        shape.rgba.chunks_exact(4).any(|pixel| pixel[3] > 0),
        "the shape has visible pixels"
    );
}

#[test]
fn randr_monitors_are_listed_and_each_captures_its_own_part() {
    let xvfb = screen(640, 200);
    xvfb.split_into_two_monitors([200, 0, 0], [0, 0, 200])
        .expect("two monitors");
    let screens = X11Screens::with_display(xvfb.display(), true);
    let monitors = screens.list().expect("monitors");
    let names: Vec<&str> = monitors.iter().map(|m| m.name.as_str()).collect();
    assert!(
        names.contains(&"LEFT") && names.contains(&"RIGHT"),
        "{monitors:?}"
    );
    for (name, x, colour) in [("LEFT", 0, [200, 0, 0]), ("RIGHT", 320, [0, 0, 200])] {
        let monitor = monitors.iter().find(|m| m.name == name).expect("listed");
        assert_eq!((monitor.x, monitor.width, monitor.height), (x, 320, 200));
        let mut source = screens
            .open(Some(&MonitorChoice::Name(name.to_owned())))
            .expect("opens");
        let grab = source.grab().expect("grab");
        assert_eq!(
            grab.picture.solid_colour(grab.picture.bounds()),
            Some(colour),
            "{name} shows its own half"
        );
    }
}

#[test]
fn a_window_thumbnail_is_that_window() {
    let xvfb = screen(640, 400);
    xvfb.paint("#101010").expect("paint");
    let mut wm = xvfb.command("jwm").spawn().expect("jwm");
    let mut window = xvfb
        .command("xterm")
        .args([
            "-title",
            "thumb",
            "-bg",
            "#20a0e0",
            "-fg",
            "#20a0e0",
            "-cr",
            "#20a0e0",
            "-geometry",
            "40x12+100+80",
            "-e",
            "sleep",
            "600",
        ])
        .spawn()
        .expect("xterm");
    let screens = X11Screens::with_display(xvfb.display(), true);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let listed = loop {
        if let Some(found) = screens
            .windows()
            .ok()
            .and_then(|windows| windows.into_iter().find(|w| w.title == "thumb"))
        {
            break found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the window was never listed"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let choice = screenshare_core::WindowChoice::Title("thumb".to_owned());
    // Listed as soon as it is mapped; painted a moment later.
    let image = loop {
        let jpeg = screens.window_thumbnail(&choice, 120).expect("a thumbnail");
        let image = image::load_from_memory(&jpeg).expect("JPEG").to_rgb8();
        let [r, g, b] = image.get_pixel(60, image.height() / 2).0;
        if r < 60 && (140..=180).contains(&g) && b > 200 {
            break image;
        }
        if std::time::Instant::now() >= deadline {
            let shot = xvfb.screenshot().expect("screenshot");
            let on_screen = shot.get_pixel(listed.x as u32 + 20, listed.y as u32 + 20).0;
            panic!(
                "the thumbnail never showed the window: {r},{g},{b}; the screen there: {on_screen:?}; {listed:?}"
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(image.width(), 120);
    let expected_height = (listed.height * 120).div_ceil(listed.width);
    assert!(
        image.height().abs_diff(expected_height) <= 1,
        "{}",
        image.height()
    );
    let _ = window.kill();
    let _ = window.wait();
    let _ = wm.kill();
    let _ = wm.wait();
}

#[test]
fn a_shared_window_reads_only_what_changed_covered_parts_included() {
    let xvfb = screen(640, 400);
    xvfb.paint("#101010").expect("paint");
    let _wm = xvfb.spawn("jwm", &[]).expect("jwm");
    // The shared xterm recolours itself all over (text, background, cursor) when a marker file
    // appears, once for ".1" and once for ".2": a change drawn while another window covers it.
    let markers = std::env::temp_dir().join(format!("screenshare-recolour-{}", std::process::id()));
    let recolour = r#"w() { while [ ! -e "$1" ]; do sleep 0.05; done; }
c() { printf '\033]10;%s\007\033]11;%s\007\033]12;%s\007' "$1" "$1" "$1"; }
w "$0.1"; c '#30c030'; w "$0.2"; c '#3030c0'; sleep 600"#;
    let _shared = Running(
        xvfb.command("xterm")
            .args([
                "-title",
                "shared",
                "-bg",
                "#c03030",
                "-fg",
                "#c03030",
                "-cr",
                "#c03030",
                "-geometry",
                "40x12+60+60",
                "-e",
                "sh",
                "-c",
                recolour,
            ])
            .arg(&markers)
            .spawn()
            .expect("xterm"),
    );
    let screens = X11Screens::with_display(xvfb.display(), true);
    let shared = wait_for("the shared window", || {
        screens
            .windows()
            .ok()?
            .into_iter()
            .find(|w| w.title == "shared")
    });
    let cover_geometry = format!("20x6+{}+{}", shared.x + 40, shared.y + 30);
    let _cover = xvfb
        .spawn(
            "xterm",
            &[
                "-title",
                "cover",
                "-bg",
                "#e0e0e0",
                "-fg",
                "#e0e0e0",
                "-cr",
                "#e0e0e0",
                // Over the middle of the shared window, placed where asked (no move later).
                "-geometry",
                &cover_geometry,
                "-e",
                "sleep",
                "600",
            ],
        )
        .expect("xterm");
    wait_for("the covering window", || {
        screens
            .windows()
            .ok()?
            .into_iter()
            .find(|w| w.title == "cover")
    });
    // The middle of the cover is inside the shared window and shows the cover.
    let mut seen = String::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let cover = screens
            .windows()
            .ok()
            .and_then(|windows| windows.into_iter().find(|w| w.title == "cover"));
        let shot = xvfb.screenshot().ok();
        if let (Some(cover), Some(shot)) = (cover, shot) {
            let point = (
                cover.x + cover.width as i32 / 2,
                cover.y + cover.height as i32 / 2,
            );
            let inside_shared = cover.x > shared.x
                && point.0 < shared.x + shared.width as i32
                && point.1 < shared.y + shared.height as i32;
            let shown = shot
                .get_pixel_checked(point.0 as u32, point.1 as u32)
                .map(|pixel| pixel.0);
            if inside_shared && shown == Some([0xe0, 0xe0, 0xe0]) {
                break;
            }
            seen = format!("cover {cover:?}, shared {shared:?}, shown {shown:?} at {point:?}");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the cover never covered the shared window: {seen}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    let mut source = screens
        .open_window(&screenshare_core::WindowChoice::Title("shared".to_owned()))
        .expect("opens the window");
    assert_eq!(source.method(), "x11-window-composite-shm");
    wait_for("the whole window, its own red where covered too", || {
        let grab = source.grab().ok()?;
        (grab.picture.solid_colour(grab.picture.bounds()) == Some([0xc0, 0x30, 0x30])).then_some(())
    });
    assert!(
        source.grab().expect("grab").pointer.is_some(),
        "the pointer is seen over a shared window"
    );
    wait_for("a grab that reads nothing of a still window", || {
        let grab = source.grab().ok()?;
        (grab.damage == Damage::Rects(Vec::new())).then_some(())
    });

    // Drawn while covered: DAMAGE names it, and the covered part is read too. A whole read
    // every few seconds (DAMAGE is a hint) may happen to land on the change: then the second
    // colour, drawn just after that read, must come through DAMAGE.
    let mut seen = Vec::new();
    for (marker, colour) in [(".1", [0x30, 0xc0, 0x30]), (".2", [0x30, 0x30, 0xc0])] {
        let mut path = markers.clone().into_os_string();
        path.push(marker);
        std::fs::write(&path, b"").expect("marker");
        let damage = wait_for("the window's new colour, all over", || {
            let grab = source.grab().ok()?;
            (grab.picture.solid_colour(grab.picture.bounds()) == Some(colour))
                .then(|| grab.damage.clone())
        });
        let _ = std::fs::remove_file(&path);
        if matches!(&damage, Damage::Rects(rects) if !rects.is_empty()) {
            return;
        }
        seen.push(damage);
    }
    panic!("no change came through DAMAGE: {seen:?}");
}
