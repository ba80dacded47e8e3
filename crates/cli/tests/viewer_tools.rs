//! A viewer's own tools in real headless Chromium (looking back also in WebKit), against the
//! real binary on a private Xvfb: looking back at pictures shown earlier, snapshots, following
//! the presenter's pointer while zoomed in, and a presenter who turns looking back off.

use std::path::{Path, PathBuf};
use std::time::Duration;

use fantoccini::Locator;
use fantoccini::actions::{
    Actions, InputSource, MOUSE_BUTTON_LEFT, MouseActions, PointerAction, WheelAction, WheelActions,
};
use fantoccini::key::Key;
use screenshare_testkit::{Browser, Served, Xvfb, close_to, eventually};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_screenshare");
const PATIENCE: Duration = Duration::from_secs(20);

/// Slide backgrounds, one per slide.
const SLIDES: [[u8; 3]; 5] = [
    [0x20, 0x40, 0x80],
    [0x80, 0x30, 0x30],
    [0x30, 0x70, 0x40],
    [0x60, 0x50, 0x90],
    [0x90, 0x80, 0x20],
];

/// Shows slide `n` on the 640x480 screen: a background, a title box and a text line, each in
/// a place of its own.
fn show_slide(xvfb: &Xvfb, n: usize) -> anyhow::Result<()> {
    let step = n as i16;
    xvfb.fill(0, 0, 640, 480, SLIDES[n])?;
    xvfb.fill(40 + 60 * step, 60, 200, 120, [250, 250, 250])?;
    xvfb.fill(80, 300, 400, 30 + 10 * n as u16, [20, 20, 20])?;
    Ok(())
}

async fn press(browser: &Browser, keys: &str) -> anyhow::Result<()> {
    browser
        .client()
        .find(Locator::Css("body"))
        .await?
        .send_keys(keys)
        .await?;
    Ok(())
}

fn key(key: Key) -> String {
    char::from(key).to_string()
}

async fn script(browser: &Browser, code: &str) -> Value {
    browser
        .client()
        .execute(code, vec![])
        .await
        .unwrap_or(Value::Null)
}

/// A number the page keeps on `<body data-…>`: pictures kept, their bytes, still moments seen.
async fn body_count(browser: &Browser, name: &str) -> u64 {
    let text = browser
        .text(&format!("return document.body.dataset.{name} || '0'"))
        .await;
    text.parse().unwrap_or(0)
}

async fn wait_kept(browser: &Browser, pictures: u64) -> anyhow::Result<()> {
    let result = eventually(
        PATIENCE,
        &format!("the page to keep {pictures} pictures"),
        || async { (body_count(browser, "kept").await == pictures).then_some(()) },
    )
    .await;
    let (kept, stills) = (
        body_count(browser, "kept").await,
        body_count(browser, "stills").await,
    );
    result.map_err(|error| {
        error.context(format!(
            "the page keeps {kept} after looking at a still screen {stills} times"
        ))
    })
}

/// Whether element `id` is shown (present and not `hidden`).
async fn visible(browser: &Browser, id: &str) -> bool {
    script(
        browser,
        &format!("const e = document.getElementById('{id}'); return Boolean(e) && !e.hidden"),
    )
    .await
        == json!(true)
}

async fn text_of(browser: &Browser, id: &str) -> String {
    browser
        .text(&format!(
            "return document.getElementById('{id}').textContent"
        ))
        .await
}

async fn click(browser: &Browser, id: &str) -> anyhow::Result<()> {
    browser
        .client()
        .find(Locator::Id(id))
        .await?
        .click()
        .await?;
    Ok(())
}

/// Waits until the page says which picture it shows: `place` is "(2 of 3)".
async fn looking_at(browser: &Browser, place: &str, what: &str) -> anyhow::Result<()> {
    eventually(PATIENCE, what, || async {
        text_of(browser, "lookback-text")
            .await
            .ends_with(place)
            .then_some(())
    })
    .await
}

/// Waits until canvas `id` of the page equals `wanted`, pixel for pixel.
async fn canvas_is(
    browser: &Browser,
    id: &str,
    wanted: &image::RgbImage,
    what: &str,
) -> anyhow::Result<()> {
    eventually(PATIENCE, what, || async {
        (browser.canvas(id).await.ok()? == *wanted).then_some(())
    })
    .await
}

/// Waits until the page's live canvas equals the X screen as it is now.
async fn live_is_the_screen(browser: &Browser, xvfb: &Xvfb, what: &str) -> anyhow::Result<()> {
    let screen = xvfb.screenshot()?;
    canvas_is(
        browser,
        "screen",
        &screen,
        &format!("the live canvas to show {what}"),
    )
    .await
}

/// Waits until the middle of the browser's window shows `colour`: what the viewer sees.
async fn window_shows(browser: &Browser, colour: [u8; 3], what: &str) -> anyhow::Result<()> {
    eventually(PATIENCE, what, || async {
        let shot = browser.screenshot().await.ok()?;
        let pixel = shot.get_pixel(shot.width() / 2, shot.height() / 2).0;
        close_to([pixel[0], pixel[1], pixel[2]], colour, 12).then_some(())
    })
    .await
}

#[tokio::test]
async fn a_viewer_looks_back_at_an_earlier_slide_while_the_share_goes_on() -> anyhow::Result<()> {
    let xvfb = Xvfb::start()?;
    let browser = Browser::start().await?;
    looks_back_at_an_earlier_slide(&xvfb, &browser).await?;
    browser.close().await
}

/// The same in WebKit (Safari's engine): its own `CompressionStream`, canvas and keys.
#[tokio::test]
async fn in_webkit_a_viewer_looks_back_at_an_earlier_slide() -> anyhow::Result<()> {
    let xvfb = Xvfb::start()?;
    // Its window on a display of its own: on the shared one it would be filmed too.
    let desk = Xvfb::start()?;
    let browser = Browser::start_webkit(desk.display()).await?;
    looks_back_at_an_earlier_slide(&xvfb, &browser).await?;
    browser.close().await
}

/// Three slides, then a blinking caret, on `xvfb`; the page in `browser` keeps the slides and
/// not the blinks, steps back to the first pixel for pixel while the share goes on underneath,
/// counts what came meanwhile, and returns to live by button and by `Esc`.
async fn looks_back_at_an_earlier_slide(xvfb: &Xvfb, browser: &Browser) -> anyhow::Result<()> {
    show_slide(xvfb, 0)?;
    let served = Served::start(BIN, xvfb, &["--fps", "15"])?;
    browser.client().goto(served.viewer_url()).await?;

    live_is_the_screen(browser, xvfb, "the first slide").await?;
    let first = xvfb.screenshot()?;
    wait_kept(browser, 1).await?;
    show_slide(xvfb, 1)?;
    live_is_the_screen(browser, xvfb, "the second slide").await?;
    wait_kept(browser, 2).await?;
    // A caret blinking on the third slide is not a new picture each time it blinks.
    show_slide(xvfb, 2)?;
    live_is_the_screen(browser, xvfb, "the third slide").await?;
    wait_kept(browser, 3).await?;
    let third = xvfb.screenshot()?;
    // Eight blinks of a 12x24 caret: enough change for the page to look again, too little
    // (and back where it was) for a new picture.
    for blink in 0..8 {
        let colour = if blink % 2 == 0 {
            [250, 250, 250]
        } else {
            SLIDES[2]
        };
        xvfb.fill(500, 400, 12, 24, colour)?;
        live_is_the_screen(browser, xvfb, &format!("blink {blink}")).await?;
    }
    let stills = body_count(browser, "stills").await;
    eventually(
        PATIENCE,
        "the page to look at the screen after the blinks",
        || async { (body_count(browser, "stills").await > stills).then_some(()) },
    )
    .await?;
    assert_eq!(
        body_count(browser, "kept").await,
        3,
        "a blinking caret is not a slide"
    );
    assert!(
        visible(browser, "look-back").await,
        "the Look back button shows"
    );
    assert!(!visible(browser, "lookback").await, "live at first");

    // ← twice: the live screen is the third slide, so the first step shows the second.
    press(browser, &key(Key::Left)).await?;
    looking_at(browser, "(2 of 3)", "looking at the second slide").await?;
    press(browser, &key(Key::Left)).await?;
    looking_at(browser, "(1 of 3)", "looking at the first slide").await?;
    let said = text_of(browser, "lookback-text").await;
    assert!(said.starts_with("You are looking at "), "{said}");
    canvas_is(browser, "past", &first, "the first slide, pixel for pixel").await?;
    window_shows(browser, SLIDES[0], "the window to show the first slide").await?;
    // The share is on the third slide meanwhile, and live updates keep arriving.
    assert_eq!(
        browser.canvas("screen").await?,
        third,
        "live is the third slide"
    );
    show_slide(xvfb, 3)?;
    live_is_the_screen(browser, xvfb, "the fourth slide, underneath").await?;
    eventually(PATIENCE, "the page to say a new picture came", || async {
        (text_of(browser, "to-live").await == "Back to live (1 new)").then_some(())
    })
    .await?;
    assert_eq!(
        browser.canvas("past").await?,
        first,
        "still looking at the first slide"
    );
    window_shows(browser, SLIDES[0], "the first slide still in view").await?;

    // → steps forward; Back to live returns in one click.
    press(browser, &key(Key::Right)).await?;
    looking_at(browser, "(2 of 4)", "looking at the second slide again").await?;
    click(browser, "to-live").await?;
    eventually(PATIENCE, "live again", || async {
        (!visible(browser, "lookback").await && !visible(browser, "past").await).then_some(())
    })
    .await?;
    window_shows(browser, SLIDES[3], "the window to show the live slide").await?;
    // Esc is the key for it too.
    press(browser, &key(Key::Left)).await?;
    eventually(PATIENCE, "looking back again", || async {
        visible(browser, "lookback").await.then_some(())
    })
    .await?;
    press(browser, &key(Key::Escape)).await?;
    eventually(PATIENCE, "live after Esc", || async {
        (!visible(browser, "lookback").await).then_some(())
    })
    .await?;
    Ok(())
}

/// A fresh folder for one browser's downloads.
fn download_folder(name: &str) -> anyhow::Result<PathBuf> {
    let folder = std::env::temp_dir().join(format!(
        "screenshare-downloads-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder)?;
    Ok(folder)
}

/// Waits for the `count`th finished snapshot in `folder` and reads it.
async fn snapshot_number(folder: &Path, count: usize) -> anyhow::Result<(String, image::RgbImage)> {
    let name = eventually(
        PATIENCE,
        &format!("snapshot {count} to be saved"),
        || async {
            let mut names: Vec<(std::time::SystemTime, String)> = std::fs::read_dir(folder)
                .ok()?
                .filter_map(|entry| {
                    let entry = entry.ok()?;
                    let name = entry.file_name().to_string_lossy().into_owned();
                    let modified = entry.metadata().ok()?.modified().ok()?;
                    (name.starts_with("screenshare-") && name.ends_with(".png"))
                        .then_some((modified, name))
                })
                .collect();
            names.sort();
            (names.len() >= count).then(|| names[count - 1].1.clone())
        },
    )
    .await?;
    let picture = image::open(folder.join(&name))?.to_rgb8();
    Ok((name, picture))
}

#[tokio::test]
async fn a_snapshot_saves_the_picture_as_png_at_the_shared_size() -> anyhow::Result<()> {
    let xvfb = Xvfb::start()?;
    show_slide(&xvfb, 0)?;
    xvfb.move_pointer(200, 150)?;
    let served = Served::start(BIN, &xvfb, &["--fps", "15"])?;
    let folder = download_folder("snapshot")?;
    let browser = Browser::start_downloading_to(&folder).await?;
    browser.client().goto(served.viewer_url()).await?;
    live_is_the_screen(&browser, &xvfb, "the first slide").await?;
    let first = xvfb.screenshot()?;
    wait_kept(&browser, 1).await?;
    eventually(PATIENCE, "the Snapshot button", || async {
        visible(&browser, "snapshot").await.then_some(())
    })
    .await?;

    // S saves the screen as it is, without the pointer (X's GetImage has none either).
    press(&browser, "s").await?;
    let (name, saved) = snapshot_number(&folder, 1).await?;
    assert!(
        name.len() == "screenshare-2026-12-03-14-02-31.png".len(),
        "the time is in the name: {name}"
    );
    assert_eq!(saved.dimensions(), (640, 480), "at the shared size");
    assert!(
        saved == first,
        "the snapshot is the screen, pixel for pixel"
    );

    // With the pointer: the same picture, with the pointer drawn where it is.
    pointer_arrives(&browser, 200, 150).await?;
    click(&browser, "snapshot-pointer").await?;
    press(&browser, "s").await?;
    let (_, with_pointer) = snapshot_number(&folder, 2).await?;
    let differing: Vec<(u32, u32)> = with_pointer
        .enumerate_pixels()
        .filter(|(x, y, pixel)| first.get_pixel(*x, *y) != *pixel)
        .map(|(x, y, _)| (x, y))
        .collect();
    assert!(!differing.is_empty(), "the pointer is drawn");
    assert!(
        differing
            .iter()
            .all(|(x, y)| x.abs_diff(200) < 40 && y.abs_diff(150) < 40),
        "only around the pointer: {:?}",
        differing.iter().take(5).collect::<Vec<_>>()
    );

    // A picture looked back at is saved as it was shown.
    show_slide(&xvfb, 1)?;
    live_is_the_screen(&browser, &xvfb, "the second slide").await?;
    wait_kept(&browser, 2).await?;
    click(&browser, "snapshot-pointer").await?;
    press(&browser, &key(Key::Left)).await?;
    canvas_is(&browser, "past", &first, "looking at the first slide").await?;
    press(&browser, "s").await?;
    let (_, earlier) = snapshot_number(&folder, 3).await?;
    assert!(
        earlier == first,
        "the looked-back snapshot is the first slide"
    );
    browser.close().await?;
    let _ = std::fs::remove_dir_all(&folder);
    Ok(())
}

/// Where the presenter's pointer (`x`, `y` on the 640x480 screen) is in the browser's window,
/// from the layout of the page's canvas (fitted, letterboxed, transformed by the zoom), and
/// whether that is inside the window.
async fn pointer_in_window(browser: &Browser, x: i32, y: i32) -> (f64, f64, bool) {
    let answer = browser
        .client()
        .execute(
            "const [x, y] = arguments; \
             const r = document.getElementById('screen').getBoundingClientRect(); \
             const k = Math.min(r.width / 640, r.height / 480); \
             const px = r.left + (r.width - 640 * k) / 2 + x * k, py = r.top + (r.height - 480 * k) / 2 + y * k; \
             return [px, py, px >= 0 && py >= 0 && px <= innerWidth && py <= innerHeight];",
            vec![json!(x), json!(y)],
        )
        .await
        .unwrap_or(Value::Null);
    (
        answer[0].as_f64().unwrap_or(f64::NAN),
        answer[1].as_f64().unwrap_or(f64::NAN),
        answer[2] == json!(true),
    )
}

/// What the page's view says of itself (`zoom`, `pan`, `follow`).
async fn view_says(browser: &Browser, name: &str) -> String {
    browser
        .text(&format!(
            "return document.getElementById('view').dataset.{name}"
        ))
        .await
}

async fn view_becomes(
    browser: &Browser,
    name: &str,
    value: &str,
    what: &str,
) -> anyhow::Result<()> {
    eventually(PATIENCE, what, || async {
        (view_says(browser, name).await == value).then_some(())
    })
    .await
}

async fn pointer_arrives(browser: &Browser, x: i32, y: i32) -> anyhow::Result<()> {
    let wanted = format!("{x},{y}");
    eventually(
        PATIENCE,
        &format!("the pointer at {wanted} on the page"),
        || async {
            (browser
                .text("return document.getElementById('pointer').dataset.at || ''")
                .await
                == wanted)
                .then_some(())
        },
    )
    .await
}

/// A slide shared at 30 fps with the X pointer near its top left, and a Chromium page (its
/// window `window` big when given) that shows both.
async fn a_page_on_a_slide_pointer_top_left(
    window: Option<(u32, u32)>,
) -> anyhow::Result<(Xvfb, Served, Browser)> {
    let xvfb = Xvfb::start()?;
    show_slide(&xvfb, 0)?;
    xvfb.move_pointer(20, 20)?;
    let served = Served::start(BIN, &xvfb, &["--fps", "30"])?;
    let browser = Browser::start().await?;
    if let Some((width, height)) = window {
        browser.client().set_window_size(width, height).await?;
    }
    browser.client().goto(served.viewer_url()).await?;
    live_is_the_screen(&browser, &xvfb, "the slide").await?;
    pointer_arrives(&browser, 20, 20).await?;
    Ok((xvfb, served, browser))
}

#[tokio::test]
async fn zoomed_in_the_view_follows_the_pointer_until_moved_by_hand() -> anyhow::Result<()> {
    let (xvfb, _served, browser) = a_page_on_a_slide_pointer_top_left(None).await?;

    // + three times: 1.5, 2, 3.
    press(&browser, "+++").await?;
    view_becomes(&browser, "zoom", "3.00", "a zoom of 3").await?;
    assert_eq!(text_of(&browser, "zoom-level").await, "300%");
    assert!(
        visible(&browser, "follow").await,
        "the Follow button shows while zoomed"
    );
    // Across the screen, corner to corner: each position the page hears of is in view.
    for step in 0..=15 {
        let (x, y) = (20 + step * 40, 20 + step * 29);
        xvfb.move_pointer(x as i16, y as i16)?;
        pointer_arrives(&browser, x, y).await?;
        let (px, py, inside) = pointer_in_window(&browser, x, y).await;
        assert!(
            inside,
            "the pointer at ({x}, {y}) is at ({px:.0}, {py:.0}) in the window: out of view"
        );
    }

    // A drag moves the view by hand: it stays there while the pointer goes elsewhere.
    let drag = MouseActions::new("mouse".to_owned())
        .then(PointerAction::MoveTo {
            duration: None,
            x: 500.0,
            y: 400.0,
        })
        .then(PointerAction::Down {
            button: MOUSE_BUTTON_LEFT,
        })
        .then(PointerAction::MoveTo {
            duration: Some(Duration::from_millis(200)),
            x: 800.0,
            y: 500.0,
        })
        .then(PointerAction::Up {
            button: MOUSE_BUTTON_LEFT,
        });
    browser
        .client()
        .perform_actions(Actions::from(drag))
        .await?;
    view_becomes(&browser, "follow", "false", "following to stop").await?;
    let pan = view_says(&browser, "pan").await;
    xvfb.move_pointer(600, 440)?;
    pointer_arrives(&browser, 600, 440).await?;
    assert_eq!(
        view_says(&browser, "pan").await,
        pan,
        "the view stays where the viewer put it"
    );
    assert!(
        !pointer_in_window(&browser, 600, 440).await.2,
        "the pointer went out of view"
    );
    // P follows again.
    press(&browser, "p").await?;
    eventually(PATIENCE, "the pointer back in view", || async {
        pointer_in_window(&browser, 600, 440).await.2.then_some(())
    })
    .await?;
    // 0 fits the whole screen again.
    press(&browser, "0").await?;
    view_becomes(&browser, "zoom", "1.00", "fitted again").await?;
    browser.close().await
}

/// At 1:1 in a window smaller than the shared screen the page scrolls; it follows the pointer
/// by scrolling, until the viewer scrolls themselves (the wheel here), and `P` follows again.
#[tokio::test]
async fn at_one_to_one_in_a_small_window_the_view_follows_the_pointer() -> anyhow::Result<()> {
    let (xvfb, _served, browser) = a_page_on_a_slide_pointer_top_left(Some((420, 340))).await?;
    assert!(
        !visible(&browser, "follow").await,
        "no Follow button while the whole screen fits"
    );

    press(&browser, "z").await?;
    eventually(PATIENCE, "the 1:1 view to offer Follow", || async {
        visible(&browser, "follow").await.then_some(())
    })
    .await?;
    let overflow = script(
        &browser,
        "const s = document.getElementById('stage'); \
         return [s.scrollWidth - s.clientWidth, s.scrollHeight - s.clientHeight];",
    )
    .await;
    assert!(
        overflow[0].as_i64().unwrap_or(0) > 100 && overflow[1].as_i64().unwrap_or(0) > 100,
        "the 640x480 screen at 1:1 overflows the small window: {overflow}"
    );
    // Corner to corner: every position the page hears of comes into view.
    for step in 0..=8 {
        let (x, y) = (20 + step * 75, 20 + step * 55);
        xvfb.move_pointer(x as i16, y as i16)?;
        pointer_arrives(&browser, x, y).await?;
        eventually(
            PATIENCE,
            &format!("the pointer at ({x}, {y}) in view"),
            || async { pointer_in_window(&browser, x, y).await.2.then_some(()) },
        )
        .await?;
    }

    // The viewer scrolls back to the top left with the wheel: following stops, and the view
    // stays there while the pointer moves on.
    let wheel = WheelActions::new("wheel".to_owned()).then(WheelAction::Scroll {
        duration: None,
        x: 100,
        y: 100,
        delta_x: -2000,
        delta_y: -2000,
    });
    browser
        .client()
        .perform_actions(Actions::from(wheel))
        .await?;
    view_becomes(&browser, "follow", "false", "following to stop").await?;
    let scrolled = || async {
        script(
            &browser,
            "const s = document.getElementById('stage'); return [s.scrollLeft, s.scrollTop];",
        )
        .await
    };
    eventually(PATIENCE, "the view at the top left", || async {
        (scrolled().await == json!([0, 0])).then_some(())
    })
    .await?;
    xvfb.move_pointer(600, 440)?;
    pointer_arrives(&browser, 600, 440).await?;
    assert_eq!(
        scrolled().await,
        json!([0, 0]),
        "the view stays where the viewer scrolled it"
    );
    assert!(
        !pointer_in_window(&browser, 600, 440).await.2,
        "the pointer went out of view"
    );
    // P follows again.
    press(&browser, "p").await?;
    view_becomes(&browser, "follow", "true", "following again").await?;
    eventually(PATIENCE, "the pointer back in view", || async {
        pointer_in_window(&browser, 600, 440).await.2.then_some(())
    })
    .await?;
    browser.close().await
}

async fn patch(served: &Served, body: Value) -> anyhow::Result<()> {
    let response = reqwest::Client::new()
        .patch(&served.control_url)
        .json(&body)
        .send()
        .await?;
    anyhow::ensure!(
        response.status() == 200,
        "PATCH {body}: {}",
        response.status()
    );
    Ok(())
}

#[tokio::test]
async fn with_history_off_the_page_keeps_nothing_and_says_so() -> anyhow::Result<()> {
    let xvfb = Xvfb::start()?;
    show_slide(&xvfb, 0)?;
    let served = Served::start(BIN, &xvfb, &["--fps", "15", "--no-history"])?;
    let status: Value = reqwest::get(served.viewer("status")).await?.json().await?;
    assert_eq!(status["history"], json!(false), "{status}");
    let browser = Browser::start().await?;
    browser.client().goto(served.viewer_url()).await?;
    live_is_the_screen(&browser, &xvfb, "the first slide").await?;
    eventually(PATIENCE, "the page to say look-back is off", || async {
        visible(&browser, "history-off").await.then_some(())
    })
    .await?;
    for slide in 1..=2 {
        let stills = body_count(&browser, "stills").await;
        show_slide(&xvfb, slide)?;
        live_is_the_screen(&browser, &xvfb, &format!("slide {slide}")).await?;
        eventually(PATIENCE, "the page to look at the still screen", || async {
            (body_count(&browser, "stills").await > stills).then_some(())
        })
        .await?;
    }
    assert_eq!(body_count(&browser, "kept").await, 0, "no picture kept");
    assert_eq!(body_count(&browser, "keptBytes").await, 0, "no memory held");
    for tool in ["look-back", "snapshot", "snapshot-pointer"] {
        assert!(!visible(&browser, tool).await, "{tool} is hidden");
    }
    press(&browser, &key(Key::Left)).await?;
    eventually(PATIENCE, "the page to say why ← does nothing", || async {
        (text_of(&browser, "toast").await == "The presenter turned off looking back for this share")
            .then_some(())
    })
    .await?;
    assert!(!visible(&browser, "lookback").await);

    // Turned on while people watch: the page keeps what it shows from then on.
    patch(&served, json!({ "history": true })).await?;
    wait_kept(&browser, 1).await?;
    assert!(body_count(&browser, "keptBytes").await > 0);
    assert!(visible(&browser, "look-back").await && visible(&browser, "snapshot").await);
    assert!(!visible(&browser, "history-off").await);
    // And off again while looking back: everything kept goes at once.
    show_slide(&xvfb, 3)?;
    live_is_the_screen(&browser, &xvfb, "slide 3").await?;
    wait_kept(&browser, 2).await?;
    press(&browser, &key(Key::Left)).await?;
    eventually(PATIENCE, "looking back", || async {
        visible(&browser, "lookback").await.then_some(())
    })
    .await?;
    patch(&served, json!({ "history": false })).await?;
    wait_kept(&browser, 0).await?;
    assert_eq!(body_count(&browser, "keptBytes").await, 0);
    assert!(!visible(&browser, "look-back").await && visible(&browser, "history-off").await);
    assert!(
        !visible(&browser, "past").await && !visible(&browser, "lookback").await,
        "nothing earlier is shown"
    );
    browser.close().await
}
