//! The viewer page in real headless Chromium, against the real binary on a private Xvfb: what a
//! person at the other end of the URL sees, read back from screenshots.

use std::time::Duration;

use fantoccini::Locator;
use screenshare_testkit::{Browser, Relay, Served, Xvfb, close_to, eventually, rgb};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_screenshare");
const PATIENCE: Duration = Duration::from_secs(20);

fn screen(colour: &str) -> Xvfb {
    let xvfb = Xvfb::start().expect("Xvfb (run `cargo xtask test` to install it)");
    xvfb.paint(colour).expect("paint");
    xvfb
}

async fn status_text(browser: &Browser) -> String {
    match browser.client().find(Locator::Id("status-text")).await {
        Ok(element) => element.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Waits until the centre of the window shows `colour` (JPEG allows a little drift).
async fn shows(browser: &Browser, colour: &str) -> anyhow::Result<()> {
    let want = rgb(colour)?;
    eventually(PATIENCE, &format!("the page to show {colour}"), || async {
        let shot = browser.screenshot().await.ok()?;
        let pixel = shot.get_pixel(shot.width() / 2, shot.height() / 2).0;
        close_to([pixel[0], pixel[1], pixel[2]], want, 12).then_some(())
    })
    .await
}

async fn says(browser: &Browser, text: &str) -> anyhow::Result<()> {
    eventually(
        PATIENCE,
        &format!("the status line to say {text:?}"),
        || async { (status_text(browser).await == text).then_some(()) },
    )
    .await
}

#[tokio::test]
async fn viewer_sees_the_screen_live_and_follows_changes() -> anyhow::Result<()> {
    let xvfb = screen("#c03030");
    let served = Served::start(BIN, &xvfb, &["--fps", "15"])?;
    let browser = Browser::start().await?;
    browser.client().goto(served.viewer_url()).await?;
    shows(&browser, "#c03030").await?;
    says(&browser, "Live").await?;
    assert_eq!(browser.client().title().await?, "screenshare");

    xvfb.paint("#2080f0")?;
    shows(&browser, "#2080f0").await?;

    // The presenter pauses: the page says so and keeps the last frame.
    let paused = reqwest::Client::new()
        .patch(&served.control_url)
        .json(&json!({"paused": true}))
        .send()
        .await?;
    assert_eq!(paused.status(), 200);
    says(&browser, "Paused by the presenter").await?;
    xvfb.paint("#000000")?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    shows(&browser, "#2080f0").await?;
    browser.close().await
}

#[tokio::test]
async fn each_viewer_picks_its_own_view() -> anyhow::Result<()> {
    let xvfb = screen("#30a050");
    let served = Served::start(BIN, &xvfb, &[])?;
    let browser = Browser::start().await?;
    let client = browser.client();
    client.goto(served.viewer_url()).await?;
    shows(&browser, "#30a050").await?;

    // Sharp (PNG) for this viewer: PNG frames get encoded, the share's settings stay as they were.
    let status_url = served.control_url.replace("/settings", "/status");
    let before: serde_json::Value = reqwest::get(&status_url).await?.json().await?;
    client
        .find(Locator::Css("#format option[value=png]"))
        .await?
        .click()
        .await?;
    eventually(PATIENCE, "PNG frames to be fetched", || async {
        let now: serde_json::Value = reqwest::get(&status_url).await.ok()?.json().await.ok()?;
        (now["encodes"]["png"].as_u64() > before["encodes"]["png"].as_u64()).then_some(())
    })
    .await?;
    let settings: serde_json::Value = reqwest::get(&served.control_url).await?.json().await?;
    assert_eq!(
        settings["quality"], 80,
        "a viewer's choice never changes the share"
    );

    // Actual size (Z): the 640x480 screen no longer fills the 1024x768 window.
    let shot = browser.screenshot().await?;
    let below_screen = (shot.width() / 2, 490);
    let pixel = shot.get_pixel(below_screen.0, below_screen.1).0;
    assert!(
        close_to([pixel[0], pixel[1], pixel[2]], rgb("#30a050")?, 12),
        "fit fills the window"
    );
    client
        .find(Locator::Css("body"))
        .await?
        .send_keys("z")
        .await?;
    eventually(
        PATIENCE,
        "actual size to leave the window's lower part empty",
        || async {
            let shot = browser.screenshot().await.ok()?;
            let pixel = shot.get_pixel(below_screen.0, below_screen.1).0;
            (pixel[1] < 40).then_some(())
        },
    )
    .await?;
    let format: serde_json::Value = client
        .execute(
            "return JSON.parse(localStorage.getItem('screenshare.view'))",
            vec![],
        )
        .await?;
    assert_eq!(
        format,
        json!({"fit": false, "format": "png", "cap": 0}),
        "the view is remembered"
    );
    browser.close().await
}

#[tokio::test]
async fn page_survives_a_network_drop() -> anyhow::Result<()> {
    let xvfb = screen("#e08020");
    let served = Served::start(BIN, &xvfb, &["--fps", "15"])?;
    let server = served
        .viewer_url()
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default()
        .parse()?;
    let mut relay = Relay::start(server).await?;
    let through_relay = served
        .viewer_url()
        .replace(&server.port().to_string(), &relay.port().to_string());
    let browser = Browser::start().await?;
    browser.client().goto(&through_relay).await?;
    shows(&browser, "#e08020").await?;
    says(&browser, "Live").await?;

    relay.cut();
    says(&browser, "Reconnecting…").await?;
    xvfb.paint("#20e0c0")?;
    relay.restore().await?;
    shows(&browser, "#20e0c0").await?;
    says(&browser, "Live").await?;
    browser.close().await
}

#[tokio::test]
async fn classic_reloading_page_shows_the_screen() -> anyhow::Result<()> {
    let xvfb = screen("#6040a0");
    let served = Served::start(BIN, &xvfb, &[])?;
    // The page this server replaces: an <img> whose src gets a new cache buster every 500 ms.
    let page = format!(
        r#"<!doctype html><html><body style="margin:0;background:#000">
<img id="screen" src="{frame}" style="display:block;width:100vw;height:100vh;object-fit:contain">
<script>setInterval(function () {{
  document.getElementById("screen").src = "{frame}?random=" + new Date().getTime();
}}, 500);</script></body></html>"#,
        frame = served.viewer("screen.png")
    );
    let path =
        std::env::temp_dir().join(format!("screenshare-classic-{}.html", std::process::id()));
    std::fs::write(&path, page)?;
    let browser = Browser::start().await?;
    browser
        .client()
        .goto(&format!("file://{}", path.display()))
        .await?;
    shows(&browser, "#6040a0").await?;
    xvfb.paint("#a0f040")?;
    shows(&browser, "#a0f040").await?;
    let _ = std::fs::remove_file(&path);
    browser.close().await
}

#[tokio::test]
async fn typing_in_a_menu_does_not_toggle_the_view() -> anyhow::Result<()> {
    let xvfb = screen("#202020");
    let served = Served::start(BIN, &xvfb, &[])?;
    let browser = Browser::start().await?;
    let client = browser.client();
    client.goto(served.viewer_url()).await?;
    shows(&browser, "#202020").await?;
    let fit = client.find(Locator::Id("fit")).await?;
    client
        .find(Locator::Id("cap"))
        .await?
        .send_keys("z")
        .await?;
    assert_eq!(
        fit.text().await?,
        "Fit",
        "Z typed in a menu is not the shortcut"
    );
    client
        .find(Locator::Css("body"))
        .await?
        .send_keys("z")
        .await?;
    assert_eq!(fit.text().await?, "1:1", "Z elsewhere toggles actual size");
    browser.close().await
}
