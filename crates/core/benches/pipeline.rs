//! Time per step of the pixel path on the real screen (`DISPLAY`), printed as `step<TAB>value`
//! lines for `cargo xtask bench`: the grab through MIT-SHM, plain GetImage and xcap in the same
//! run, a grab of a small damaged region, and the encoders per piece kind. `image`'s own JPEG
//! encoder is the yardstick our choice of `jpeg-encoder` is measured against.
//! A window shared on its own (under a window manager this bench starts) is read as now (MIT-SHM,
//! only what DAMAGE reports) and as before (all of it through GetImage on every grab).

use std::time::Instant;

use fast_image_resize::Resizer;
use image::ImageEncoder;
use screenshare_core::WindowChoice;
use screenshare_core::capture::x11::X11Screens;
use screenshare_core::capture::xcap::XcapScreens;
use screenshare_core::capture::{Screens, Source};
use screenshare_core::encode::{jpeg_of, png_of, scale_picture};
use screenshare_core::pixels::{Picture, Rect};
use screenshare_testkit::Running;
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{ChangeGCAux, ConnectionExt, CreateGCAux, Rectangle, SubwindowMode};

const RUNS: u32 = 20;

fn mean_ms(runs: u32, mut step: impl FnMut()) -> f64 {
    step();
    let started = Instant::now();
    for _ in 0..runs {
        step();
    }
    started.elapsed().as_secs_f64() * 1000.0 / f64::from(runs)
}

fn grab_ms(source: &mut Box<dyn Source>) -> f64 {
    mean_ms(RUNS, || {
        source.grab().ok();
    })
}

/// Whole-monitor grabs by one long-lived source, as during a share where everything changes:
/// before each (untimed) the root window is repainted, so DAMAGE reports all of it.
fn whole_grab_ms(screens: &X11Screens, display: &str) -> anyhow::Result<f64> {
    let (conn, screen) = x11rb::connect(Some(display))?;
    let root = conn.setup().roots[screen].root;
    let (width, height) = (
        conn.setup().roots[screen].width_in_pixels,
        conn.setup().roots[screen].height_in_pixels,
    );
    let mut source = screens.open(None)?;
    source.grab()?;
    let mut total = 0.0;
    for turn in 0..RUNS {
        let gc = conn.generate_id()?;
        conn.create_gc(gc, root, &CreateGCAux::new().foreground(0x10_2030 + turn))?;
        conn.poly_fill_rectangle(
            root,
            gc,
            &[Rectangle {
                x: 0,
                y: 0,
                width,
                height,
            }],
        )?;
        conn.free_gc(gc)?;
        conn.get_input_focus()?.reply()?;
        let started = Instant::now();
        source.grab()?;
        total += started.elapsed().as_secs_f64();
    }
    // The root window's background (the scene's wallpaper) comes back.
    conn.clear_area(false, root, 0, 0, 0, 0)?;
    conn.get_input_focus()?.reply()?;
    Ok(total * 1000.0 / f64::from(RUNS))
}

fn start(display: &str, program: &str, args: &[&str]) -> anyhow::Result<Running> {
    Ok(Running(
        std::process::Command::new(program)
            .args(args)
            .env("DISPLAY", display)
            .env_remove("WAYLAND_DISPLAY")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|error| anyhow::anyhow!("cannot start {program}: {error}"))?,
    ))
}

/// Mean time of a window grab, each after `area` (if any) of the window was painted a new
/// colour from another connection.
fn window_grab_ms(
    source: &mut Box<dyn Source>,
    conn: &impl Connection,
    window: u32,
    area: Option<Rectangle>,
) -> anyhow::Result<f64> {
    source.grab()?;
    let gc = conn.generate_id()?;
    // Over the window's children too (an xterm's text is a child window of the one listed).
    conn.create_gc(
        gc,
        window,
        &CreateGCAux::new().subwindow_mode(SubwindowMode::INCLUDE_INFERIORS),
    )?;
    let mut total = 0.0;
    for turn in 0..RUNS {
        if let Some(area) = area {
            conn.change_gc(gc, &ChangeGCAux::new().foreground(0x30_4050 + turn * 0x10))?;
            conn.poly_fill_rectangle(window, gc, &[area])?;
        }
        conn.get_input_focus()?.reply()?;
        let started = Instant::now();
        source.grab()?;
        total += started.elapsed().as_secs_f64();
    }
    conn.free_gc(gc)?;
    conn.get_input_focus()?.reply()?;
    if let Some(error) = conn.poll_for_event()?.and_then(|event| match event {
        x11rb::protocol::Event::Error(error) => Some(error),
        _ => None,
    }) {
        anyhow::bail!("painting the bench window failed: {error:?}");
    }
    if let Some(area) = area {
        // The figures mean something only if the grabs saw the paint.
        let colour = 0x30_4050 + (RUNS - 1) * 0x10;
        let want = [(colour >> 16) as u8, (colour >> 8) as u8, colour as u8];
        let grab = source.grab()?;
        let painted = Rect::new(
            area.x as u32,
            area.y as u32,
            u32::from(area.width),
            u32::from(area.height),
        );
        let seen = grab.picture.solid_colour(painted);
        anyhow::ensure!(
            seen == Some(want),
            "the window grab shows {seen:?} where {want:?} was painted"
        );
    }
    Ok(total * 1000.0 / f64::from(RUNS))
}

/// A large xterm under jwm, grabbed as a window share does: all of it changed (a scroll, a page
/// turn), a text line's worth changed, nothing changed; and all of it read through GetImage on
/// every grab, as window shares did before they used MIT-SHM and DAMAGE.
fn window_grabs(display: &str) -> anyhow::Result<Vec<(String, f64)>> {
    let _wm = start(display, "jwm", &[])?;
    let _window = start(
        display,
        "xterm",
        &[
            "-title",
            "bench-window",
            "-geometry",
            "210x58+40+40",
            "-e",
            "sleep",
            "600",
        ],
    )?;
    let shm = X11Screens::with_display(display, true);
    let plain = X11Screens::with_display(display, false);
    let deadline = Instant::now() + std::time::Duration::from_secs(20);
    let info = loop {
        if let Some(found) = shm
            .windows()
            .ok()
            .and_then(|windows| windows.into_iter().find(|w| w.title == "bench-window"))
        {
            break found;
        }
        if Instant::now() >= deadline {
            anyhow::bail!("the bench window never appeared (is jwm installed?)");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let choice = WindowChoice::Id(info.id);
    let (conn, _) = x11rb::connect(Some(display))?;
    let whole = Rectangle {
        x: 0,
        y: 0,
        width: u16::try_from(info.width)?,
        height: u16::try_from(info.height)?,
    };
    let line = Rectangle {
        x: 40,
        y: 40,
        width: 64,
        height: 16,
    };
    let size = format!("{}x{}", info.width, info.height);
    let mut now = shm.open_window(&choice)?;
    let method = now.method();
    let mut before = plain.open_window(&choice)?;
    Ok(vec![
        (
            format!("grab of a {size} window, all changed ({method})"),
            window_grab_ms(&mut now, &conn, info.id, Some(whole))?,
        ),
        (
            format!("grab of a {size} window, all changed, all through GetImage (before)"),
            window_grab_ms(&mut before, &conn, info.id, Some(whole))?,
        ),
        (
            format!("grab of a {size} window, a 64x16 line changed ({method})"),
            window_grab_ms(&mut now, &conn, info.id, Some(line))?,
        ),
        (
            format!("grab of a still {size} window ({method})"),
            window_grab_ms(&mut now, &conn, info.id, None)?,
        ),
    ])
}

fn main() -> anyhow::Result<()> {
    let display = std::env::var("DISPLAY")?;
    let shm = X11Screens::with_display(&display, true);
    let plain = X11Screens::with_display(&display, false);
    let mut xcap = XcapScreens.open(None)?;
    let info = xcap.info().clone();
    eprintln!("monitor {} {}x{}", info.name, info.width, info.height);

    // Whole-monitor reads on each path, after the wallpaper goes (the scene is painted again
    // below for the encoders).
    let shm_grab = whole_grab_ms(&shm, &display)?;
    let plain_grab = whole_grab_ms(&plain, &display)?;
    let xcap_grab = grab_ms(&mut xcap);

    // A small change (a 64x16 text line's worth) between grabs: DAMAGE says where, SHM reads it.
    let (conn, screen) = x11rb::connect(Some(&display))?;
    let root = conn.setup().roots[screen].root;
    let gc = conn.generate_id()?;
    conn.create_gc(gc, root, &CreateGCAux::new().foreground(0x00ff00))?;
    let mut damaged = shm.open(None)?;
    damaged.grab()?;
    let mut total = 0.0;
    for turn in 0..RUNS {
        conn.poly_fill_rectangle(
            root,
            gc,
            &[Rectangle {
                x: 40 + (turn as i16 % 8) * 8,
                y: 40,
                width: 64,
                height: 16,
            }],
        )?;
        conn.get_input_focus()?.reply()?;
        let started = Instant::now();
        damaged.grab()?;
        total += started.elapsed().as_secs_f64();
    }
    let damaged_grab = total * 1000.0 / f64::from(RUNS);
    let still_grab = grab_ms(&mut damaged);

    let mut source = shm.open(None)?;
    let frame: Picture = source.grab()?.picture.clone();
    let whole = frame.bounds();
    let mut resizer = Resizer::new();
    let scale = mean_ms(RUNS, || {
        scale_picture(&frame, 1280, &mut resizer).ok();
    });
    let png = mean_ms(RUNS, || {
        png_of(&frame, whole).ok();
    });
    let jpeg = mean_ms(RUNS, || {
        jpeg_of(&frame, whole, 80).ok();
    });
    let rgba = frame.to_rgba();
    let image_jpeg = mean_ms(5, || {
        let mut out = Vec::new();
        let rgb = image::DynamicImage::ImageRgba8(rgba.clone()).to_rgb8();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80)
            .write_image(
                rgb.as_raw(),
                rgb.width(),
                rgb.height(),
                image::ExtendedColorType::Rgb8,
            )
            .ok();
    });
    // Tiles: the busiest 64x64 tile of the screen (most bytes as PNG), a text-sized piece.
    let tiles: Vec<Rect> = (0..frame.height() / 64)
        .flat_map(|row| {
            (0..frame.width() / 64).map(move |column| Rect::new(column * 64, row * 64, 64, 64))
        })
        .collect();
    let busiest = tiles
        .iter()
        .copied()
        .max_by_key(|tile| png_of(&frame, *tile).map_or(0, |png| png.len()))
        .unwrap_or(Rect::new(0, 0, 64, 64));
    let tile_png = mean_ms(200, || {
        png_of(&frame, busiest).ok();
    });
    let tile_jpeg = mean_ms(200, || {
        jpeg_of(&frame, busiest, 80).ok();
    });
    let tile_solid = mean_ms(200, || {
        frame.solid_colour(busiest);
    });
    let glyph = Rect::new(busiest.x, busiest.y, 8, 16);
    let video = sliding_photo_as_h264(&frame)?;
    // Last: the window manager it starts leaves the root window its own colour, not the
    // scene's wallpaper the figures above are measured on.
    let windows = window_grabs(&display)?;

    println!("grab 1920x1080 through MIT-SHM (x11-shm)\t{shm_grab}");
    println!("grab 1920x1080 through GetImage (x11-getimage)\t{plain_grab}");
    println!("grab 1920x1080 through xcap (before)\t{xcap_grab}");
    println!("grab of a 64x16 damaged region (x11-shm + DAMAGE)\t{damaged_grab}");
    println!("grab of a still screen (DAMAGE says nothing changed)\t{still_grab}");
    for (step, ms) in &windows {
        println!("{step}\t{ms}");
    }
    println!("scale to 1280 wide\t{scale}");
    println!("PNG encode, whole frame\t{png}");
    println!("JPEG encode q80, whole frame (jpeg-encoder, used)\t{jpeg}");
    println!("JPEG encode q80, whole frame (image crate, for comparison)\t{image_jpeg}");
    println!("PNG encode, busiest 64x64 tile\t{tile_png}");
    println!("JPEG encode q80, busiest 64x64 tile\t{tile_jpeg}");
    println!("solid-colour check, 64x64 tile\t{tile_solid}");
    println!(
        "PNG bytes, whole frame\t{}",
        png_of(&frame, whole)?.len() as f64
    );
    println!(
        "JPEG q80 bytes, whole frame\t{}",
        jpeg_of(&frame, whole, 80)?.len() as f64
    );
    println!(
        "PNG bytes, busiest tile\t{}",
        png_of(&frame, busiest)?.len() as f64
    );
    println!(
        "JPEG q80 bytes, busiest tile\t{}",
        jpeg_of(&frame, busiest, 80)?.len() as f64
    );
    println!(
        "PNG bytes, one 8x16 glyph cell\t{}",
        png_of(&frame, glyph)?.len() as f64
    );
    for (step, value) in video {
        println!("{step}\t{value}");
    }
    Ok(())
}

/// The screen's picture sliding sideways 8 pixels a frame (a photo panning: every pixel moves),
/// encoded as the share's video at 30 frames a second: time per frame (conversion included),
/// the bit rate it came to, and how many pictures the rate control skipped.
#[cfg(target_os = "linux")]
fn sliding_photo_as_h264(frame: &Picture) -> anyhow::Result<Vec<(String, f64)>> {
    use screenshare_core::video::H264Encoder;
    const FRAMES: u32 = 90;
    let (width, height) = (frame.width(), frame.height());
    let mut encoder = H264Encoder::new(width, height, 30)?;
    let row_bytes = width as usize * 4;
    let (mut spent, mut bytes, mut skipped) = (0.0, 0usize, 0u32);
    for step in 0..FRAMES {
        let shift = (step as usize * 8 % width as usize) * 4;
        let mut moved = Vec::with_capacity(frame.as_bytes().len());
        for row in frame.as_bytes().chunks_exact(row_bytes) {
            moved.extend_from_slice(&row[shift..]);
            moved.extend_from_slice(&row[..shift]);
        }
        let picture = Picture::from_bgrx(width, height, moved)
            .ok_or_else(|| anyhow::anyhow!("a picture of the screen's size"))?;
        let started = Instant::now();
        let encoded = encoder.encode(&picture, u64::from(step) * 33)?;
        spent += started.elapsed().as_secs_f64();
        match encoded {
            Some(encoded) => bytes += encoded.annex_b.len(),
            None => skipped += 1,
        }
    }
    let name = format!("{width}x{height}");
    Ok(vec![
        (
            format!("H.264 encode of a {name} frame, a sliding photo (openh264)"),
            spent * 1000.0 / f64::from(FRAMES),
        ),
        (
            "H.264 Mbit/s at 30 fps, a sliding photo".to_owned(),
            bytes as f64 * 8.0 / 1e6 / (f64::from(FRAMES) / 30.0),
        ),
        (
            format!("H.264 pictures skipped by the rate control, of {FRAMES}"),
            f64::from(skipped),
        ),
    ])
}

#[cfg(not(target_os = "linux"))]
fn sliding_photo_as_h264(_frame: &Picture) -> anyhow::Result<Vec<(String, f64)>> {
    Ok(Vec::new())
}
