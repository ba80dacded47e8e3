//! A browser driven through WebDriver: headless Chromium through chromedriver, or WebKit's
//! MiniBrowser through WebKitWebDriver (on an X display the test provides).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::Context;
use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use image::RgbaImage;

/// A browser session; its driver is killed and the profile removed on drop.
#[derive(Debug)]
pub struct Browser {
    driver: Child,
    client: Client,
    profile: PathBuf,
    /// The driver's port and the session's id, to end the session from `Drop`.
    port: u16,
    session: Option<String>,
}

/// Where Debian's webkit2gtk-driver finds the browser it drives.
const MINIBROWSER: &str = "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser";

impl Browser {
    /// Starts chromedriver on a free loopback port and opens a 1024x768 headless window.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with_flags(&[]).await
    }

    /// Chromium as [`Browser::start`] gives it, with more command-line `flags` (for instance
    /// `--disable-blink-features=MediaSource`: a browser that cannot play the share's video).
    pub async fn start_with_flags(flags: &[&str]) -> anyhow::Result<Self> {
        Self::start_chromium(flags, None).await
    }

    /// Chromium as [`Browser::start`] gives it, saving whatever a page downloads into `folder`
    /// without asking.
    pub async fn start_downloading_to(folder: &std::path::Path) -> anyhow::Result<Self> {
        Self::start_chromium(&[], Some(folder)).await
    }

    async fn start_chromium(
        flags: &[&str],
        downloads: Option<&std::path::Path>,
    ) -> anyhow::Result<Self> {
        let profile = new_profile("chromium");
        // The flags keep Chromium off the network (this machine has none) and quiet.
        let mut args: Vec<String> = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--window-size=1024,768",
            "--hide-scrollbars",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
            "--disable-extensions",
            "--force-device-scale-factor=1",
            "--autoplay-policy=no-user-gesture-required",
        ]
        .iter()
        .map(|flag| flag.to_string())
        .collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        args.extend(flags.iter().map(|flag| flag.to_string()));
        let mut capabilities = serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": args,
            }
        });
        if let Some(folder) = downloads {
            capabilities["goog:chromeOptions"]["prefs"] = serde_json::json!({
                "download.default_directory": folder,
                "download.prompt_for_download": false,
                "download.directory_upgrade": true,
            });
        }
        let mut driver = Command::new("chromedriver");
        driver.stdout(Stdio::null()).stderr(Stdio::null());
        Self::start_with(driver, capabilities, profile, "chromium-driver").await
    }

    /// WebKit (the engine of Safari and GNOME Web): MiniBrowser on X `display`, through
    /// WebKitWebDriver.
    pub async fn start_webkit(display: &str) -> anyhow::Result<Self> {
        let profile = new_profile("webkit");
        std::fs::create_dir_all(&profile)?;
        let capabilities = serde_json::json!({
            "browserName": "MiniBrowser",
            "webkitgtk:browserOptions": {
                "binary": MINIBROWSER,
                "args": ["--automation"]
            }
        });
        let mut driver = Command::new("WebKitWebDriver");
        driver
            .env("DISPLAY", display)
            .env_remove("WAYLAND_DISPLAY")
            // WebKit keeps its caches and storage under these: one profile per session.
            .env("XDG_CACHE_HOME", profile.join("cache"))
            .env("XDG_DATA_HOME", profile.join("data"))
            .env("WEBKIT_DISABLE_COMPOSITING_MODE", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        Self::start_with(driver, capabilities, profile, "webkit2gtk-driver").await
    }

    /// Starts `driver` with `--port` on a free loopback port and opens a session with
    /// `capabilities`; `package` is what to install when the driver is missing.
    async fn start_with(
        mut driver: Command,
        capabilities: serde_json::Value,
        profile: PathBuf,
        package: &str,
    ) -> anyhow::Result<Self> {
        let port = crate::free_port()?;
        let driver = driver.arg(format!("--port={port}")).spawn().with_context(|| {
            format!("cannot start the WebDriver (apt-get install {package}, or run `cargo xtask test`)")
        })?;
        let serde_json::Value::Object(capabilities) = capabilities else {
            anyhow::bail!("capabilities are not an object");
        };
        let webdriver = format!("http://127.0.0.1:{port}");
        let mut last_error = None;
        for _ in 0..100 {
            match ClientBuilder::new(HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&webdriver)
                .await
            {
                Ok(client) => {
                    let session = client.session_id().await.ok().flatten();
                    return Ok(Self {
                        driver,
                        client,
                        profile,
                        port,
                        session,
                    });
                }
                Err(error) => last_error = Some(error),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut driver = driver;
        let _ = driver.kill();
        let _ = driver.wait();
        anyhow::bail!("the WebDriver ({package}) did not start a browser session: {last_error:?}")
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// A screenshot of the viewport.
    pub async fn screenshot(&self) -> anyhow::Result<RgbaImage> {
        let png = self.client.screenshot().await?;
        Ok(image::load_from_memory(&png)?.to_rgba8())
    }

    /// The colour at (x, y) of the viewport, as a person would see it.
    pub async fn pixel_at(&self, x: u32, y: u32) -> anyhow::Result<[u8; 3]> {
        let shot = self.screenshot().await?;
        let pixel = shot.get_pixel_checked(x, y).with_context(|| {
            format!(
                "({x}, {y}) is outside the {}x{} screenshot",
                shot.width(),
                shot.height()
            )
        })?;
        Ok([pixel[0], pixel[1], pixel[2]])
    }

    /// What `script` returns, as text ("" when it fails or returns no string): for state a page
    /// keeps in its DOM.
    pub async fn text(&self, script: &str) -> String {
        self.client
            .execute(script, vec![])
            .await
            .ok()
            .and_then(|value| value.as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// What the page has drawn on canvas `id`, read back losslessly (as PNG).
    pub async fn canvas(&self, id: &str) -> anyhow::Result<image::RgbImage> {
        use base64::Engine;
        let url = self
            .client
            .execute(
                "return document.getElementById(arguments[0]).toDataURL('image/png')",
                vec![id.into()],
            )
            .await?;
        let url = url.as_str().unwrap_or_default();
        let png = base64::engine::general_purpose::STANDARD
            .decode(url.trim_start_matches("data:image/png;base64,"))?;
        Ok(image::load_from_memory(&png)?.to_rgb8())
    }

    /// Ends the session cleanly (Chromium exits), then chromedriver.
    pub async fn close(self) -> anyhow::Result<()> {
        self.client.clone().close().await?;
        Ok(())
    }
}

/// A fresh profile folder for one browser session.
fn new_profile(kind: &str) -> PathBuf {
    static PROFILES: AtomicU32 = AtomicU32::new(0);
    std::env::temp_dir().join(format!(
        "screenshare-{kind}-{}-{}",
        std::process::id(),
        PROFILES.fetch_add(1, Ordering::Relaxed)
    ))
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A test that failed before `close()` still ends its session, so chromedriver stops
        // Chromium (killing chromedriver alone would leave Chromium running).
        if let Some(session) = &self.session {
            end_session(self.port, session);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// `DELETE /session/<id>` on the driver, blocking, with a short timeout.
fn end_session(port: u16, session: &str) {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!(
        "DELETE /session/{session} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).is_ok() {
        let mut answer = [0u8; 512];
        let _ = stream.read(&mut answer);
    }
}
