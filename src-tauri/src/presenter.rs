//! The presenter's side of the app: at most one share, the settings it starts with, and what the
//! window needs to show about it. Everything here is a few calls into `screenshare_core`.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Mutex, PoisonError};

use std::sync::Arc;

use screenshare_core::capture::Screens;
use screenshare_core::viewers::ViewerInfo;
use screenshare_core::{DEFAULT_PORT, Error, Settings, SettingsPatch, Share, ShareOptions, Status};
use serde::Serialize;

use crate::error::CommandError;
use crate::store::SettingsStore;

/// Where the app listens: every interface on the usual port, unless `SCREENSHARE_BIND` says
/// otherwise (tests bind 127.0.0.1:0).
pub fn bind_address() -> SocketAddr {
    bind_address_from(std::env::var("SCREENSHARE_BIND").ok())
}

fn bind_address_from(bind: Option<String>) -> SocketAddr {
    bind.and_then(|bind| match bind.parse() {
        Ok(address) => Some(address),
        Err(_) => {
            tracing::warn!(%bind, "SCREENSHARE_BIND is not an address:port; using the default");
            None
        }
    })
    .unwrap_or(SocketAddr::from((Ipv4Addr::UNSPECIFIED, DEFAULT_PORT)))
}

/// What the window shows once sharing starts.
#[derive(Debug, Clone, Serialize)]
pub struct ShareInfo {
    pub viewer_urls: Vec<String>,
    /// An SVG QR code of the first URL, for phones.
    pub qr_svg: String,
}

pub struct Presenter {
    share: tokio::sync::Mutex<Option<Share>>,
    settings: Mutex<Settings>,
    store: SettingsStore,
    bind: SocketAddr,
    /// The monitors this app shares from (the system's; a synthetic screen in tests).
    screens: Arc<dyn Screens>,
    /// What the presenter should be told about the saved settings, once.
    load_notice: Option<String>,
}

impl std::fmt::Debug for Presenter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presenter")
            .field("settings", &self.settings())
            .field("bind", &self.bind)
            .finish_non_exhaustive()
    }
}

impl Presenter {
    pub fn new(store: SettingsStore, bind: SocketAddr, screens: Arc<dyn Screens>) -> Self {
        let loaded = store.load();
        Self {
            share: tokio::sync::Mutex::new(None),
            settings: Mutex::new(loaded.settings),
            store,
            bind,
            screens,
            load_notice: loaded.notice,
        }
    }

    /// The monitors to pick from, for listing and thumbnails.
    pub fn screens(&self) -> Arc<dyn Screens> {
        self.screens.clone()
    }

    /// Why the saved settings were not used, if they were not.
    pub fn load_notice(&self) -> Option<&str> {
        self.load_notice.as_deref()
    }

    pub fn settings(&self) -> Settings {
        self.settings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Starts sharing with `settings` (stopping any share already running).
    pub async fn start(&self, settings: Settings) -> Result<ShareInfo, CommandError> {
        let mut current = self.share.lock().await;
        if let Some(previous) = current.take() {
            previous.stop().await?;
        }
        let options = ShareOptions {
            settings: settings.clone(),
            bind: self.bind,
            open: false,
            ..ShareOptions::default()
        };
        let share = match Share::start_with(options.clone(), self.screens.clone()).await {
            // The usual port is taken (another share?): any free port does, the URL says which.
            Err(Error::AddrInUse { addr }) if addr.port() != 0 => {
                tracing::warn!(%addr, "port taken; sharing on a free one");
                Share::start_with(
                    ShareOptions {
                        bind: SocketAddr::new(addr.ip(), 0),
                        ..options
                    },
                    self.screens.clone(),
                )
                .await?
            }
            other => other?,
        };
        let viewer_urls = share.viewer_urls().to_vec();
        let qr_svg = qr_svg(viewer_urls.first().map_or("", String::as_str))?;
        *current = Some(share);
        self.remember(settings);
        Ok(ShareInfo {
            viewer_urls,
            qr_svg,
        })
    }

    /// Stops the share, if any; viewers' pages say they are reconnecting.
    pub async fn stop(&self) {
        // A share still starting holds the lock while the desktop's dialog waits for a pick:
        // that dialog goes first, so the start returns and Stop (or closing the window) does not
        // wait on it.
        self.screens.stop_asking();
        if let Some(share) = self.share.lock().await.take()
            && let Err(error) = share.stop().await
        {
            tracing::warn!(%error, "the share did not stop cleanly");
        }
    }

    /// Changes settings: live when sharing, for the next share otherwise.
    pub async fn update(&self, patch: SettingsPatch) -> Result<Settings, CommandError> {
        let share = self.share.lock().await;
        let next = match share.as_ref() {
            Some(share) => share.update(&patch).await?,
            None => {
                let next = self.settings().patched(&patch).map_err(Error::from)?;
                if patch.changes_monitor() {
                    let (screens, choice) = (self.screens.clone(), next.monitor.clone());
                    screenshare_core::capture::ask_display(move || screens.find(choice.as_ref()))
                        .await?;
                }
                if let Some(window) = patch.new_window() {
                    let (screens, window) = (self.screens.clone(), window.clone());
                    screenshare_core::capture::ask_display(move || screens.find_window(&window))
                        .await?;
                }
                next
            }
        };
        self.remember(next.clone());
        Ok(next)
    }

    /// Where the desktop's dialog picks (Wayland): forgets its pick; a running share asks again
    /// at once, otherwise the next share does.
    pub async fn pick_again(&self) {
        match self.share.lock().await.as_ref() {
            Some(share) => share.pick_again(),
            None => self.screens.pick_again(),
        }
    }

    /// A small JPEG of what viewers see now.
    pub async fn preview(&self) -> Result<Option<Vec<u8>>, CommandError> {
        match self.share.lock().await.as_ref() {
            Some(share) => Ok(share.preview(480).await?),
            None => Ok(None),
        }
    }

    /// The share's status, viewers and settings in force, when sharing. The settings come from
    /// the share itself, so a change made elsewhere (PATCH on the control URL) shows in the
    /// window too, and is remembered.
    pub async fn snapshot(&self) -> Option<(Status, Vec<ViewerInfo>, Settings)> {
        let share = self.share.lock().await;
        let share = share.as_ref()?;
        let settings = share.settings();
        if settings != self.settings() {
            self.remember(settings.clone());
        }
        Some((share.status(), share.viewers(), settings))
    }

    /// Lets waiting viewer `id` in.
    pub async fn admit(&self, id: &str) -> Result<(), CommandError> {
        self.act_on_viewer(|share| share.admit(id)).await
    }

    /// Ends viewer `id`'s access (and its address's) until the share stops.
    pub async fn remove(&self, id: &str) -> Result<(), CommandError> {
        self.act_on_viewer(|share| share.remove(id)).await
    }

    async fn act_on_viewer(&self, action: impl FnOnce(&Share) -> bool) -> Result<(), CommandError> {
        match self.share.lock().await.as_ref() {
            Some(share) if action(share) => Ok(()),
            Some(_) => Err(CommandError::NoSuchViewer),
            None => Err(CommandError::NotSharing),
        }
    }

    fn remember(&self, settings: Settings) {
        // The PIN is for this session only, and a window's id means nothing to the next one:
        // neither is written to disk.
        self.store.save(&Settings {
            pin: None,
            window: None,
            ..settings.clone()
        });
        *self.settings.lock().unwrap_or_else(PoisonError::into_inner) = settings;
    }
}

fn qr_svg(url: &str) -> Result<String, CommandError> {
    let code =
        qrcode::QrCode::new(url.as_bytes()).map_err(|error| CommandError::Qr(error.to_string()))?;
    Ok(code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use screenshare_core::capture::synthetic::SyntheticScreens;

    #[test]
    fn qr_code_is_an_svg() {
        let svg =
            qr_svg("http://192.168.1.20:5000/s/0123456789abcdef0123456789abcdef/").expect("QR");
        assert!(
            svg.starts_with("<?xml") || svg.starts_with("<svg"),
            "{}",
            &svg[..40]
        );
        assert!(svg.contains("<path") || svg.contains("<rect"));
    }

    #[tokio::test]
    async fn settings_change_before_a_share_and_are_validated() {
        let presenter = synthetic_presenter("127.0.0.1:0");
        let patch: SettingsPatch =
            serde_json::from_str(r#"{"fps": 42, "quality": 33}"#).expect("patch");
        let next = presenter.update(patch).await.expect("valid");
        assert_eq!((next.fps, next.quality), (42, 33));
        let bad: SettingsPatch = serde_json::from_str(r#"{"fps": 0}"#).expect("patch");
        let error = presenter.update(bad).await.expect_err("fps 0");
        assert!(error.to_string().contains("frame rate"), "{error}");
        assert_eq!(
            presenter.settings().fps,
            42,
            "a refused change changes nothing"
        );
    }

    #[tokio::test]
    async fn stop_without_share_is_harmless_and_preview_is_empty() {
        let presenter = synthetic_presenter("127.0.0.1:0");
        presenter.stop().await;
        assert!(presenter.preview().await.expect("no error").is_none());
        assert!(presenter.snapshot().await.is_none());
    }

    fn synthetic_presenter(bind: &str) -> Presenter {
        let screens = SyntheticScreens::new(&[(320, 200), (160, 100)]);
        screens.paint(0, [40, 90, 200]);
        Presenter::new(
            SettingsStore::disabled(),
            bind.parse().expect("address"),
            Arc::new(screens),
        )
    }

    #[tokio::test]
    async fn a_share_starts_steers_previews_and_stops_on_the_synthetic_screen() {
        // The port it is told to use is taken: it shares on a free one instead.
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        let taken_port = taken.local_addr().expect("address").port();
        let presenter = synthetic_presenter(&format!("127.0.0.1:{taken_port}"));
        let bad: SettingsPatch = serde_json::from_str(r#"{"monitor": 7}"#).expect("patch");
        let error = presenter.update(bad).await.expect_err("no monitor #7");
        assert!(error.to_string().contains("#7"), "{error}");
        let no_window: SettingsPatch =
            serde_json::from_str(r#"{"window": "Slides"}"#).expect("patch");
        let error = presenter
            .update(no_window)
            .await
            .expect_err("no such window");
        assert!(
            error.to_string().contains("no window \"Slides\""),
            "{error}"
        );

        let info = presenter
            .start(Settings {
                fps: 30,
                ..Settings::default()
            })
            .await
            .expect("share");
        let url = info.viewer_urls.first().expect("a URL").clone();
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        assert!(!url.contains(&format!(":{taken_port}/")), "{url}");
        assert!(info.qr_svg.contains("<svg") || info.qr_svg.contains("<?xml"));

        let preview = screenshare_testkit::eventually(
            std::time::Duration::from_secs(10),
            "a preview",
            || async { presenter.preview().await.ok().flatten() },
        )
        .await
        .expect("the first frame");
        let image = image::load_from_memory(&preview).expect("JPEG").to_rgb8();
        let [r, g, b] = image.get_pixel(image.width() / 2, image.height() / 2).0;
        assert!(r < 60 && (70..=110).contains(&g) && b > 180, "{r},{g},{b}");

        let switch: SettingsPatch = serde_json::from_str(r#"{"monitor": 1}"#).expect("patch");
        let settings = presenter.update(switch).await.expect("switch live");
        assert_eq!(
            settings.monitor,
            Some(screenshare_core::MonitorChoice::Index(1))
        );
        let (status, viewers, in_force) = presenter.snapshot().await.expect("sharing");
        assert_eq!(in_force, settings);
        assert!(viewers.is_empty());
        assert_eq!(status.fps, 30);
        assert!(matches!(
            presenter.admit("id:nobody").await,
            Err(CommandError::NoSuchViewer)
        ));

        presenter.stop().await;
        assert!(presenter.snapshot().await.is_none());
        assert!(matches!(
            presenter.remove("id:nobody").await,
            Err(CommandError::NotSharing)
        ));
        drop(taken);
    }

    #[test]
    fn bind_defaults_to_every_interface_on_5000() {
        let default = SocketAddr::from(([0, 0, 0, 0], 5000));
        assert_eq!(bind_address_from(None), default);
        assert_eq!(bind_address_from(Some("nonsense".to_owned())), default);
        assert_eq!(
            bind_address_from(Some("127.0.0.1:0".to_owned())),
            SocketAddr::from(([127, 0, 0, 1], 0))
        );
    }
}
