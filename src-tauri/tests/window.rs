//! The real presenter window, driven through tauri-driver and WebKitWebDriver on a private Xvfb
//! (and on a private GNOME session for Wayland):
//! pick the monitor, set frame rate and quality, share, read the URL off the window, and check
//! what a viewer gets from it against what is on the X screen.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use screenshare_testkit::{GnomeSession, SoundSession, Xvfb, eventually, free_port};

const APP: &str = env!("CARGO_BIN_EXE_screenshare-desktop");
const PATIENCE: Duration = Duration::from_secs(30);
/// The first window on a cold machine: WebKit starts three times at once on two cores.
const STARTUP_PATIENCE: Duration = Duration::from_secs(60);

/// tauri-driver on free ports, launching the app on `xvfb`; killed on drop.
struct Driver {
    child: Child,
    port: u16,
    config: PathBuf,
    remove_config: bool,
}

impl Driver {
    /// The app on loopback (any free port), with a config folder of its own removed afterwards.
    fn start(xvfb: &Xvfb) -> anyhow::Result<Self> {
        let config =
            std::env::temp_dir().join(format!("screenshare-e2e-config-{}", std::process::id()));
        let mut driver = Self::start_with(xvfb, "127.0.0.1:0", &config)?;
        driver.remove_config = true;
        Ok(driver)
    }

    /// The app listening on `bind`, keeping its settings in `config` (left in place, so a
    /// second launch finds them).
    fn start_with(xvfb: &Xvfb, bind: &str, config: &std::path::Path) -> anyhow::Result<Self> {
        Self::start_in(xvfb.command(&tauri_driver()), bind, config)
    }

    /// `driver`, tauri-driver set up for its display (an Xvfb's, a GNOME session's), on free
    /// ports with the app listening on `bind` and keeping its settings in `config`.
    fn start_in(
        mut driver: std::process::Command,
        bind: &str,
        config: &std::path::Path,
    ) -> anyhow::Result<Self> {
        let port = free_port()?;
        let native_port = free_port()?;
        let child = driver
            .args([
                "--port",
                &port.to_string(),
                "--native-port",
                &native_port.to_string(),
            ])
            // The app inherits these.
            .env("SCREENSHARE_BIND", bind)
            .env("XDG_CONFIG_HOME", config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // A group of its own, so that drop ends WebKitWebDriver and the app with it (they
            // outlive tauri-driver otherwise).
            .process_group(0)
            .spawn()?;
        Ok(Self {
            child,
            port,
            config: config.to_owned(),
            remove_config: false,
        })
    }

    async fn connect(&self) -> anyhow::Result<Client> {
        let capabilities = serde_json::json!({
            "browserName": "wry",
            "tauri:options": { "application": APP }
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            anyhow::bail!("capabilities are an object");
        };
        let url = format!("http://127.0.0.1:{}", self.port);
        eventually(
            STARTUP_PATIENCE,
            "tauri-driver to open the window",
            || async {
                ClientBuilder::new(HttpConnector::new())
                    .capabilities(capabilities.clone())
                    .connect(&url)
                    .await
                    .ok()
            },
        )
        .await
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The group is tauri-driver's own (`process_group(0)`), reaped only below: its id is
        // still this group's.
        let group = rustix::process::Pid::from_child(&self.child);
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.remove_config {
            let _ = std::fs::remove_dir_all(&self.config);
        }
    }
}

/// tauri-driver from PATH, or where `cargo install` puts it.
fn tauri_driver() -> String {
    let installed = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
        .map(|home| home.join("bin/tauri-driver"));
    match installed {
        Some(path) if path.exists() => path.display().to_string(),
        _ => "tauri-driver".to_owned(),
    }
}

async fn text(client: &Client, id: &str) -> String {
    match client.find(Locator::Id(id)).await {
        Ok(element) => element.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// What a viewer of `url` reads in `status`, while the share answers.
async fn viewer_status(http: &reqwest::Client, url: &str) -> Option<serde_json::Value> {
    let response = http.get(format!("{url}status")).send().await.ok()?;
    response.json().await.ok()
}

/// What a viewer of `url` gets from `screen.png`, if it gets a picture.
async fn screen_png(http: &reqwest::Client, url: &str) -> Option<image::RgbImage> {
    let bytes = http
        .get(format!("{url}screen.png"))
        .send()
        .await
        .ok()?
        .bytes()
        .await
        .ok()?;
    Some(image::load_from_memory(&bytes).ok()?.to_rgb8())
}

/// All the text inside element `id`, shown or clipped (WebKitWebDriver's text leaves out a
/// card's ellipsised name).
async fn all_text(client: &Client, id: &str) -> String {
    client
        .execute(
            "const e = document.getElementById(arguments[0]); return e ? e.textContent : '';",
            vec![id.into()],
        )
        .await
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The first monitor's card, once the window lists the monitors.
async fn first_monitor_card(client: &Client) -> anyhow::Result<fantoccini::elements::Element> {
    eventually(STARTUP_PATIENCE, "the monitor card", || async {
        client
            .find(Locator::Css("#monitors .card[data-index='0']"))
            .await
            .ok()
    })
    .await
}

/// The viewer URL the window shows once it shares.
async fn share_url(client: &Client) -> anyhow::Result<String> {
    eventually(PATIENCE, "the share URL in the window", || async {
        let url = text(client, "url").await;
        url.starts_with("http://127.0.0.1:").then_some(url)
    })
    .await
}

/// For the docs: with `variable`=path set, keeps a picture of the window there (a relative path
/// is from the repository root, where `cargo xtask screenshots` runs).
async fn keep_screenshot(client: &Client, variable: &str) -> anyhow::Result<()> {
    if let Some(path) = std::env::var_os(variable) {
        // The stats and previews of a second or two.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(path);
        std::fs::write(path, client.screenshot().await?)?;
    }
    Ok(())
}

/// Moves a slider the way a drag would: value, then the input and change events.
async fn slide(client: &Client, id: &str, value: u32) -> anyhow::Result<()> {
    client
        .execute(
            "const s = document.getElementById(arguments[0]); s.value = arguments[1];
             s.dispatchEvent(new Event('input', {bubbles: true}));
             s.dispatchEvent(new Event('change', {bubbles: true}));",
            vec![id.into(), value.into()],
        )
        .await?;
    Ok(())
}

async fn jpeg_of_next_frame(
    http: &reqwest::Client,
    url: &str,
    after: u64,
) -> anyhow::Result<(u64, usize)> {
    let response = http
        .get(format!("{url}screen.jpg?after={after}"))
        .send()
        .await?;
    anyhow::ensure!(response.status() == 200, "status {}", response.status());
    let seq = response.headers()["x-frame-seq"].to_str()?.parse()?;
    Ok((seq, response.bytes().await?.len()))
}

#[tokio::test]
async fn presenter_shares_and_steers_a_live_share() -> anyhow::Result<()> {
    // Large enough that the window (980x740, centred) leaves the screen's corners bare.
    let xvfb = Xvfb::start_sized(1920, 1080)?;
    xvfb.paint("#c04080")?;
    let driver = Driver::start(&xvfb)?;
    let client = driver.connect().await?;
    assert_eq!(client.title().await?, "screenshare");

    // Pick the monitor (Xvfb has one), frame rate and quality.
    let card = first_monitor_card(&client).await?;
    card.click().await?;
    assert_eq!(card.attr("role").await?.as_deref(), Some("radio"));
    assert_eq!(card.attr("aria-checked").await?.as_deref(), Some("true"));
    slide(&client, "fps", 20).await?;
    slide(&client, "quality", 90).await?;
    assert_eq!(text(&client, "fps-value").await, "20 fps");

    client.find(Locator::Id("share")).await?.click().await?;
    let url = share_url(&client).await?;
    assert!(url.contains("/s/"), "{url}");
    let qr = client.find(Locator::Css("#qr svg")).await;
    assert!(qr.is_ok(), "a QR code is shown");

    // What a viewer fetches from that URL is what is on the X screen.
    let http = reqwest::Client::new();
    let png = http
        .get(format!("{url}screen.png"))
        .send()
        .await?
        .bytes()
        .await?;
    let image = image::load_from_memory(&png)?.to_rgb8();
    assert_eq!(image.dimensions(), (1920, 1080));
    assert_eq!(
        image.get_pixel(40, 40).0,
        [0xc0, 0x40, 0x80],
        "the painted root window"
    );
    assert_eq!(image.get_pixel(1880, 1040).0, [0xc0, 0x40, 0x80]);
    // Viewers learn only the frame rate from the share; the rest shows in what they receive.
    let viewers_see: serde_json::Value = http
        .get(format!("{url}status"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(viewers_see["fps"], 20);
    assert!(
        viewers_see.get("quality").is_none(),
        "settings stay behind control"
    );

    // Looking back and snapshots: on by default, off for every viewer from the window.
    let history = client.find(Locator::Id("history")).await?;
    assert_eq!(history.prop("checked").await?.as_deref(), Some("true"));
    for allowed in [false, true] {
        history.click().await?;
        eventually(
            PATIENCE,
            &format!("viewers' history to be {allowed}"),
            || async {
                (viewer_status(&http, &url).await?["history"].as_bool()? == allowed).then_some(())
            },
        )
        .await?;
    }

    // The pointer: shown by default (drawn into screen.png where it is), hidden live from the
    // window.
    xvfb.move_pointer(300, 200)?;
    let pointer_drawn = |png: &[u8]| -> Option<bool> {
        let image = image::load_from_memory(png).ok()?.to_rgb8();
        Some(
            image::imageops::crop_imm(&image, 288, 188, 24, 24)
                .to_image()
                .pixels()
                .any(|pixel| pixel.0 != [0xc0, 0x40, 0x80]),
        )
    };
    let frame_png = || async {
        let response = http.get(format!("{url}screen.png")).send().await.ok()?;
        response.bytes().await.ok()
    };
    eventually(PATIENCE, "the pointer drawn at 300,200", || async {
        pointer_drawn(&frame_png().await?)?.then_some(())
    })
    .await?;
    client
        .find(Locator::Id("show-pointer"))
        .await?
        .click()
        .await?;
    eventually(PATIENCE, "the share to hide the pointer", || async {
        (!pointer_drawn(&frame_png().await?)?).then_some(())
    })
    .await?;

    // A detailed picture, so JPEG quality shows in the size; then lower the quality live.
    xvfb.run(
        "xsetroot",
        &["-mod", "16", "16", "-fg", "#ffffff", "-bg", "#203040"],
    )?;
    let (seq, sharp) = eventually(PATIENCE, "the patterned frame", || async {
        let response = http.get(format!("{url}screen.jpg")).send().await.ok()?;
        let seq: u64 = response
            .headers()
            .get("x-frame-seq")?
            .to_str()
            .ok()?
            .parse()
            .ok()?;
        let jpeg = response.bytes().await.ok()?;
        let image = image::load_from_memory(&jpeg).ok()?.to_rgb8();
        // The plaid reaches the corner: the frame shows the new pattern, not the flat colour.
        let corner: Vec<[u8; 3]> = (0..32).map(|x| image.get_pixel(x, 8).0).collect();
        let patterned =
            corner.iter().any(|pixel| pixel[0] > 200) && corner.iter().any(|pixel| pixel[0] < 80);
        patterned.then_some((seq, jpeg.len()))
    })
    .await?;
    slide(&client, "quality", 20).await?;
    let rough = eventually(PATIENCE, "frames at quality 20 to be smaller", || async {
        let (_, bytes) = jpeg_of_next_frame(&http, &url, seq).await.ok()?;
        (bytes * 2 < sharp).then_some(bytes)
    })
    .await?;
    eprintln!("quality 20: {rough} bytes a frame, against {sharp} at 90");

    // Once this test's own requests have aged out, nobody watches; then a viewer joins.
    eventually(PATIENCE, "the viewer count to show 0", || async {
        (text(&client, "viewer-count").await == "0").then_some(())
    })
    .await?;
    let viewer_url = format!("{url}screen.jpg?v=e2e-viewer");
    let viewer = tokio::spawn({
        let http = http.clone();
        async move {
            loop {
                if let Ok(response) = http.get(&viewer_url).send().await {
                    let _ = response.bytes().await;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    });
    eventually(PATIENCE, "the viewer count to show 1", || async {
        (text(&client, "viewer-count").await == "1").then_some(())
    })
    .await?;
    // textContent: WebKitWebDriver's element text leaves out the selectable address spans.
    let listed = client
        .execute(
            "return document.getElementById('viewer-list').textContent",
            vec![],
        )
        .await?;
    assert!(
        listed.as_str().unwrap_or_default().contains("127.0.0.1"),
        "{listed}"
    );
    viewer.abort();

    // Who may watch: the presenter lets each viewer in from the window, and can remove one.
    client
        .find(Locator::Id("require-approval"))
        .await?
        .click()
        .await?;
    let joined = eventually(PATIENCE, "a new viewer to be told to wait", || async {
        let response = http.post(format!("{url}join")).send().await.ok()?;
        let cookie = response
            .headers()
            .get("set-cookie")?
            .to_str()
            .ok()?
            .split(';')
            .next()?
            .to_owned();
        let body: serde_json::Value = response.json().await.ok()?;
        (body["access"] == "waiting").then_some(cookie)
    })
    .await?;
    let frame_status = |cookie: String| {
        let http = http.clone();
        let url = url.clone();
        async move {
            http.get(format!("{url}screen.png"))
                .header("cookie", cookie)
                .send()
                .await
                .map(|response| response.status().as_u16())
                .unwrap_or(0)
        }
    };
    assert_eq!(
        frame_status(joined.clone()).await,
        403,
        "waiting: no frames yet"
    );
    let admit = eventually(
        PATIENCE,
        "a Let in button for the waiting viewer",
        || async {
            client
                .find(Locator::Css("[data-viewer^='admit_viewer:']"))
                .await
                .ok()
        },
    )
    .await?;
    // For the docs: SCREENSHARE_E2E_SCREENSHOT=path keeps a picture of the sharing window, with a
    // viewer waiting to be let in.
    keep_screenshot(&client, "SCREENSHARE_E2E_SCREENSHOT").await?;
    let id = admit
        .attr("data-viewer")
        .await?
        .unwrap_or_default()
        .trim_start_matches("admit_viewer:")
        .to_owned();
    admit.click().await?;
    eventually(PATIENCE, "the admitted viewer to get frames", || async {
        (frame_status(joined.clone()).await == 200).then_some(())
    })
    .await?;
    let remove = eventually(PATIENCE, "a Remove button for that viewer", || async {
        client
            .find(Locator::Css(&format!("[data-viewer='remove_viewer:{id}']")))
            .await
            .ok()
    })
    .await?;
    remove.click().await?;
    eventually(PATIENCE, "the removed viewer to be refused", || async {
        (frame_status(joined.clone()).await == 403).then_some(())
    })
    .await?;

    // A PIN from the window: shown to the presenter, and the key for newcomers.
    client
        .find(Locator::Id("require-approval"))
        .await?
        .click()
        .await?;
    client.find(Locator::Id("new-pin")).await?.click().await?;
    let pin = eventually(PATIENCE, "the PIN to be shown", || async {
        let pin = text(&client, "pin-digits").await;
        (pin.len() == 6).then_some(pin)
    })
    .await?;
    let newcomer = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 9]))
        .build()?;
    let wrong = newcomer
        .post(format!("{url}join"))
        .json(&serde_json::json!({"pin": "000000"}))
        .send()
        .await?;
    assert_eq!(wrong.status(), 403);
    let right = newcomer
        .post(format!("{url}join"))
        .json(&serde_json::json!({"pin": pin}))
        .send()
        .await?;
    assert_eq!(right.status(), 200);

    // The PIN alone, then guessed at from many addresses: the window says so and offers
    // approval in one click.
    let approval = client.find(Locator::Id("require-approval")).await?;
    if approval.prop("checked").await?.as_deref() == Some("true") {
        approval.click().await?;
    }
    assert_eq!(approval.prop("checked").await?.as_deref(), Some("false"));
    for last in 20..28u8 {
        let guesser = reqwest::Client::builder()
            .local_address(std::net::IpAddr::from([127, 0, 0, last]))
            .build()?;
        for guess in 0..5u32 {
            guesser
                .post(format!("{url}join"))
                .json(&serde_json::json!({"pin": format!("{:06}", 100_000 + guess)}))
                .send()
                .await?;
        }
    }
    let offer = eventually(
        PATIENCE,
        "the window to say the PIN is guessed at",
        || async {
            let offer = client.find(Locator::Id("pin-attack")).await.ok()?;
            offer.is_displayed().await.ok()?.then_some(offer)
        },
    )
    .await?;
    assert!(
        all_text(&client, "pin-attack")
            .await
            .contains("guessing the PIN")
    );
    offer
        .find(Locator::Id("approve-instead"))
        .await?
        .click()
        .await?;
    let approving = client
        .find(Locator::Id("require-approval"))
        .await?
        .prop("checked")
        .await?;
    assert_eq!(approving.as_deref(), Some("true"));
    // A newcomer with the right PIN now waits to be let in.
    let later = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 40]))
        .build()?;
    let waiting: serde_json::Value = eventually(PATIENCE, "approval to apply", || async {
        let answer: serde_json::Value = later
            .post(format!("{url}join"))
            .json(&serde_json::json!({"pin": pin}))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (answer["access"] == "waiting").then_some(answer)
    })
    .await?;
    assert_eq!(waiting["access"], "waiting", "{waiting}");

    // Stop: the URL no longer serves.
    client.find(Locator::Id("stop")).await?.click().await?;
    eventually(PATIENCE, "the URL to stop serving", || async {
        http.get(format!("{url}screen.png"))
            .send()
            .await
            .is_err()
            .then_some(())
    })
    .await?;
    client.close().await?;
    Ok(())
}

/// WebDriver's codes for the keys a keyboard user presses.
const TAB: &str = "\u{E004}";
const ENTER: &str = "\u{E007}";
const ARROW_RIGHT: &str = "\u{E014}";

/// The id of the element with keyboard focus.
async fn focused(client: &Client) -> String {
    client
        .execute(
            "return document.activeElement ? document.activeElement.id : ''",
            vec![],
        )
        .await
        .ok()
        .and_then(|id| id.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Presses and releases each key, as a keyboard does: into whatever has focus (an element's
/// `send_keys` would first try to focus that element itself).
async fn press(client: &Client, keys: &str) -> anyhow::Result<()> {
    use fantoccini::actions::{InputSource, KeyAction, KeyActions};
    let mut typing = KeyActions::new("keyboard".to_owned());
    for key in keys.chars() {
        typing = typing
            .then(KeyAction::Down { value: key })
            .then(KeyAction::Up { value: key });
    }
    client.perform_actions(typing).await?;
    Ok(())
}

/// Presses Tab until `id` has focus, as a keyboard user would (at most 40 times).
async fn tab_to(client: &Client, id: &str) -> anyhow::Result<()> {
    for _ in 0..40 {
        if focused(client).await == id {
            return Ok(());
        }
        press(client, TAB).await?;
    }
    anyhow::bail!("Tab never reached #{id}")
}

#[tokio::test]
async fn keyboard_alone_shares_pauses_stops_and_the_settings_last() -> anyhow::Result<()> {
    let xvfb = Xvfb::start_sized(1920, 1080)?;
    xvfb.paint("#2080c0")?;
    // The port the app is told to use is taken: it must share on a free one instead.
    let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    let taken_port = taken.local_addr()?.port();
    let config =
        std::env::temp_dir().join(format!("screenshare-e2e-keyboard-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&config);
    let bind = format!("127.0.0.1:{taken_port}");
    let driver = Driver::start_with(&xvfb, &bind, &config)?;
    let client = driver.connect().await?;
    eventually(STARTUP_PATIENCE, "the monitor card", || async {
        client.find(Locator::Css("#monitors .card")).await.ok()
    })
    .await?;
    let http = reqwest::Client::new();

    // The frame rate from the keyboard: three steps up from 10.
    tab_to(&client, "fps").await?;
    for _ in 0..3 {
        press(&client, ARROW_RIGHT).await?;
    }
    eventually(PATIENCE, "the slider to say 13 fps", || async {
        (text(&client, "fps-value").await == "13 fps").then_some(())
    })
    .await?;

    // Share with Enter.
    tab_to(&client, "share").await?;
    press(&client, ENTER).await?;
    let url = eventually(PATIENCE, "the share URL", || async {
        let url = text(&client, "url").await;
        url.starts_with("http://127.0.0.1:").then_some(url)
    })
    .await?;
    assert!(
        !url.contains(&format!(":{taken_port}/")),
        "the taken port made way for a free one: {url}"
    );
    eventually(PATIENCE, "the share at 13 fps", || async {
        (viewer_status(&http, &url).await?["fps"] == 13).then_some(())
    })
    .await?;

    // Pause and resume with the keyboard.
    tab_to(&client, "pause").await?;
    press(&client, ENTER).await?;
    eventually(PATIENCE, "the share to pause", || async {
        (viewer_status(&http, &url).await?["paused"] == true).then_some(())
    })
    .await?;
    eventually(PATIENCE, "the button to offer Resume", || async {
        (text(&client, "pause").await == "Resume").then_some(())
    })
    .await?;
    press(&client, ENTER).await?;
    eventually(PATIENCE, "the share to resume", || async {
        (viewer_status(&http, &url).await?["paused"] == false).then_some(())
    })
    .await?;

    // Stop, then share again: a new token, so the old link is dead.
    tab_to(&client, "stop").await?;
    press(&client, ENTER).await?;
    eventually(PATIENCE, "the old link to stop serving", || async {
        viewer_status(&http, &url).await.is_none().then_some(())
    })
    .await?;
    tab_to(&client, "share").await?;
    press(&client, ENTER).await?;
    let again = eventually(PATIENCE, "a new share URL", || async {
        let again = text(&client, "url").await;
        (again.starts_with("http://127.0.0.1:") && again != url).then_some(again)
    })
    .await?;
    eprintln!("shared at {url}, then at {again}");
    let token = |url: &str| url.split("/s/").nth(1).unwrap_or_default().to_owned();
    assert_ne!(
        token(&again),
        token(&url),
        "a restarted share has a new token"
    );

    // Closing the window stops the share.
    client.close_window().await?;
    eventually(PATIENCE, "the share to stop with the window", || async {
        viewer_status(&http, &again).await.is_none().then_some(())
    })
    .await?;
    drop(client);
    drop(driver);

    // The next launch starts from the settings of the last one.
    let driver = Driver::start_with(&xvfb, &bind, &config)?;
    let client = driver.connect().await?;
    let kept = eventually(PATIENCE, "the saved frame rate", || async {
        let value = text(&client, "fps-value").await;
        (value == "13 fps").then_some(value)
    })
    .await;
    let _ = client.close().await;
    drop(taken);
    let _ = std::fs::remove_dir_all(&config);
    kept.map(drop)
}

#[tokio::test]
async fn a_window_card_shares_that_window_alone() -> anyhow::Result<()> {
    let xvfb = Xvfb::start_sized(1920, 1080)?;
    xvfb.paint("#204020")?;
    // Two monitors, as a desktop with a projector sets them up.
    xvfb.split_into_two_monitors([0x20, 0x40, 0x20], [0x20, 0x40, 0x20])?;
    // A window manager and one window to share, far from where the app's window opens.
    let mut wm = xvfb
        .command("jwm")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let mut slides = xvfb
        .command("xterm")
        .args([
            "-title",
            "slides",
            "-bg",
            "#d0a020",
            "-fg",
            "#d0a020",
            "-cr",
            "#d0a020",
            "-geometry",
            "50x15+1300+700",
            "-e",
            "sleep",
            "600",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let driver = Driver::start(&xvfb)?;
    let client = driver.connect().await?;
    let card = eventually(PATIENCE, "a card for the slides window", || async {
        for card in client
            .find_all(Locator::Css("#monitors .card.window"))
            .await
            .ok()?
        {
            // The title attribute: WebKitWebDriver's element text is unreliable here.
            if card.attr("title").await.ok()?.as_deref() == Some("slides") {
                return Some(card);
            }
        }
        None
    })
    .await?;
    let monitors = client
        .find_all(Locator::Css("#monitors .card[data-index]"))
        .await?;
    let mut names = Vec::new();
    for card in &monitors {
        names.push(card.attr("title").await?.unwrap_or_default());
    }
    names.sort();
    assert_eq!(names, ["LEFT", "RIGHT"], "a card for each monitor");
    card.click().await?;
    eventually(PATIENCE, "the window card to be chosen", || async {
        (card.attr("aria-checked").await.ok()?.as_deref() == Some("true")).then_some(())
    })
    .await?;
    client.find(Locator::Id("share")).await?.click().await?;
    let url = eventually(PATIENCE, "the share URL", || async {
        let url = text(&client, "url").await;
        url.starts_with("http://127.0.0.1:").then_some(url)
    })
    .await?;
    let http = reqwest::Client::new();
    let (width, height) = eventually(PATIENCE, "a frame of the window alone", || async {
        let image = screen_png(&http, &url).await?;
        let yellow = image
            .pixels()
            .filter(|pixel| pixel.0 == [0xd0, 0xa0, 0x20])
            .count();
        (yellow as f64 > image.pixels().len() as f64 * 0.95).then_some(image.dimensions())
    })
    .await?;
    assert!(
        width < 1920 && height < 1080,
        "the window, not the monitor: {width}x{height}"
    );
    client.find(Locator::Id("stop")).await?.click().await?;
    let _ = client.close().await;
    let _ = slides.kill();
    let _ = slides.wait();
    let _ = wm.kill();
    let _ = wm.wait();
    Ok(())
}

/// On a Wayland desktop (a private headless GNOME session) the desktop's own dialog picks: the
/// window shows one card for its pick and "Choose again", asks nothing before Share, and
/// shares what the dialog picked; "Choose again" during a share asks again at once.
#[tokio::test]
async fn on_wayland_the_desktops_dialog_picks() -> anyhow::Result<()> {
    const BLUE: [u8; 3] = [0x33, 0x66, 0xcc];
    let session = GnomeSession::start(1920, 1080)?;
    let _blue = session.paint(BLUE)?;
    let config = session.runtime_dir().join("config");
    let mut driver = session.command(tauri_driver());
    // The restore token, in the session's own folder.
    driver.env("XDG_STATE_HOME", session.runtime_dir().join("state"));
    let driver = Driver::start_in(driver, "127.0.0.1:0", &config)?;
    let client = driver.connect().await?;

    let card = eventually(STARTUP_PATIENCE, "the desktop's pick card", || async {
        let card = client
            .find(Locator::Css("#monitors .card[data-index='0']"))
            .await
            .ok()?;
        let words = all_text(&client, "monitors").await;
        words.contains("Your pick").then_some(card)
    })
    .await?;
    assert_eq!(card.attr("aria-checked").await?.as_deref(), Some("true"));
    let pick_again = client.find(Locator::Id("pick-again")).await?;
    assert!(pick_again.is_displayed().await?, "Choose again is shown");
    assert!(
        !session.share_dialog_open()?,
        "nothing is asked before Share"
    );

    let answer = session.spawn_answer_share_dialog(PATIENCE)?;
    client.find(Locator::Id("share")).await?.click().await?;
    answer.wait_async().await?;
    let url = share_url(&client).await?;
    let http = reqwest::Client::new();
    let blue_corners = || async {
        let image = screen_png(&http, &url).await?;
        // The app's window opens top left: the other corners are the painted screen.
        (image.dimensions() == (1920, 1080)
            && [(1880, 40), (1880, 1040), (40, 1040)]
                .iter()
                .all(|&(x, y)| image.get_pixel(x, y).0 == BLUE))
        .then_some(())
    };
    eventually(PATIENCE, "the desktop's pick shared", blue_corners).await?;
    eventually(PATIENCE, "the card naming what was picked", || async {
        let words = all_text(&client, "monitors").await;
        words
            .contains("A screen \u{b7} 1920 \u{d7} 1080")
            .then_some(())
    })
    .await?;

    // The card shows what viewers see, as a monitor's card does.
    eventually(
        PATIENCE,
        "the pick's card to show the live picture",
        || async {
            let shown = client
                .execute(
                    "const img = document.querySelector('#monitors .card img');
                 return !!img && !img.hidden && img.naturalWidth > 0;",
                    vec![],
                )
                .await
                .ok()?;
            (shown == serde_json::Value::Bool(true)).then_some(())
        },
    )
    .await?;
    // For the docs: SCREENSHARE_E2E_WAYLAND_SCREENSHOT=path keeps a picture of the window
    // sharing the desktop's pick, as the desktop shows it (WebKitWebDriver's own screenshot
    // leaves its pictures black under a software-rendered Wayland compositor): mutter's cast
    // of the screen, cut to what is not the painted background.
    if let Some(path) = std::env::var_os("SCREENSHARE_E2E_WAYLAND_SCREENSHOT") {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(path);
        let screen = session.screenshot()?;
        let window: Vec<(u32, u32)> = screen
            .enumerate_pixels()
            .filter(|(_, _, pixel)| pixel.0 != BLUE)
            .map(|(x, y, _)| (x, y))
            .collect();
        let left = window.iter().map(|p| p.0).min().unwrap_or(0);
        let top = window.iter().map(|p| p.1).min().unwrap_or(0);
        let right = window
            .iter()
            .map(|p| p.0)
            .max()
            .unwrap_or(screen.width() - 1);
        let bottom = window
            .iter()
            .map(|p| p.1)
            .max()
            .unwrap_or(screen.height() - 1);
        image::imageops::crop_imm(&screen, left, top, right - left + 1, bottom - top + 1)
            .to_image()
            .save(path)?;
    }

    // Choose again while sharing: the dialog asks now, and the share goes on with the new pick.
    let answer = session.spawn_answer_share_dialog(PATIENCE)?;
    client
        .find(Locator::Id("pick-again"))
        .await?
        .click()
        .await?;
    answer.wait_async().await?;
    // What the screen shows from now on reaches viewers through the new pick.
    const GREEN: [u8; 3] = [0x30, 0xa0, 0x50];
    let _green = session.paint(GREEN)?;
    eventually(PATIENCE, "the share on the new pick", || async {
        let image = screen_png(&http, &url).await?;
        (image.get_pixel(1880, 1040).0 == GREEN).then_some(())
    })
    .await?;
    client.find(Locator::Id("stop")).await?.click().await?;
    let _ = client.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sound_switch_sends_what_the_computer_plays_and_its_meter_moves() -> anyhow::Result<()>
{
    let sound = SoundSession::start()?;
    let _tone = sound.play_tone(440.0)?;
    let xvfb = Xvfb::start_sized(1920, 1080)?;
    xvfb.paint("#305070")?;
    let mut command = xvfb.command(&tauri_driver());
    sound.apply(&mut command);
    let config = std::env::temp_dir().join(format!(
        "screenshare-e2e-sound-config-{}",
        std::process::id()
    ));
    let mut driver = Driver::start_in(command, "127.0.0.1:0", &config)?;
    driver.remove_config = true;
    let client = driver.connect().await?;
    let card = first_monitor_card(&client).await?;
    card.click().await?;
    let switch = client.find(Locator::Id("audio")).await?;
    assert!(!switch.is_selected().await?, "sound is off by default");
    assert!(all_text(&client, "audio-state").await.starts_with("Off"));
    client.find(Locator::Id("share")).await?.click().await?;
    let url = share_url(&client).await?;
    let http = reqwest::Client::new();
    let viewers_hear = || async { viewer_status(&http, &url).await?["audio"].as_bool() };
    assert_eq!(viewers_hear().await, Some(false));

    switch.click().await?;
    eventually(PATIENCE, "viewers to be offered sound", || async {
        viewers_hear().await?.then_some(())
    })
    .await?;
    // The tone plays at -9 dBFS: the meter shows it, and the words say sound goes out.
    let level = eventually(PATIENCE, "the meter to show the tone", || async {
        let level = client
            .execute(
                "return document.getElementById('audio-level').value",
                vec![],
            )
            .await
            .ok()?
            .as_f64()?;
        (level > -20.0).then_some(level)
    })
    .await?;
    assert!(level < -3.0, "{level} dBFS");
    assert!(all_text(&client, "audio-state").await.contains("hear"));
    // For the docs: SCREENSHARE_E2E_SOUND_SCREENSHOT=path keeps a picture of the window sending
    // sound, its switch and meter in sight.
    if std::env::var_os("SCREENSHARE_E2E_SOUND_SCREENSHOT").is_some() {
        client
            .execute(
                "document.getElementById('audio').scrollIntoView({block: 'center'})",
                vec![],
            )
            .await?;
    }
    keep_screenshot(&client, "SCREENSHARE_E2E_SOUND_SCREENSHOT").await?;

    switch.click().await?;
    eventually(PATIENCE, "sound to stop", || async {
        (!viewers_hear().await?).then_some(())
    })
    .await?;
    Ok(())
}
