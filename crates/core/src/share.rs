//! [`Share`]: the handle a front end (the CLI, the desktop app) starts, steers and stops.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::capture::{CaptureContext, MonitorInfo, Screens, spawn_capture_thread, system_screens};
use crate::demand::WatchGuard;
use crate::frame::Frame;
use crate::server::{self, Access, AppState, Limits};
use crate::settings::{Settings, SettingsPatch};
use crate::state::{Phase, ShareState, Status};
use crate::viewers::ViewerInfo;
use crate::{Error, net};

/// The port a share listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 5000;
/// How long stopping waits for viewers' connections to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// How long stopping waits for the capture thread's current grab.
const CAPTURE_STOP_WAIT: Duration = Duration::from_millis(500);
/// How often the share logs its figures while someone watches.
const STATS_EVERY: Duration = Duration::from_secs(10);

/// How to start a share.
#[derive(Clone, Debug)]
pub struct ShareOptions {
    pub settings: Settings,
    /// Where to listen; port 0 picks a free one.
    pub bind: SocketAddr,
    /// Serve viewers at the root too, without the token.
    pub open: bool,
    /// Host names viewers may use besides this machine's addresses and name (a DNS name the
    /// presenter set up); any other `Host` gets 421.
    pub allowed_hosts: Vec<String>,
    /// The server's timeouts and caps.
    pub limits: Limits,
}

impl Default for ShareOptions {
    fn default() -> Self {
        Self {
            settings: Settings::default(),
            bind: SocketAddr::from((Ipv4Addr::UNSPECIFIED, DEFAULT_PORT)),
            open: false,
            allowed_hosts: Vec::new(),
            limits: Limits::default(),
        }
    }
}

/// A running share: a capture thread and an HTTP server. Dropping it stops both.
#[derive(Debug)]
pub struct Share {
    /// The routes' state, which holds the share's state (`app.share`).
    app: AppState,
    local_addr: SocketAddr,
    viewer_urls: Vec<String>,
    control_url: String,
    server: Option<JoinHandle<()>>,
    capture: Option<std::thread::JoinHandle<()>>,
}

impl Share {
    /// Shares a real monitor (see [`crate::sources`]).
    pub async fn start(options: ShareOptions) -> Result<Self, Error> {
        Self::start_with(options, system_screens()).await
    }

    /// Shares a monitor of `screens`. Start-up errors (bad settings, no display, an unknown
    /// monitor, a port in use) come back here, before anything runs.
    pub async fn start_with(
        options: ShareOptions,
        screens: Arc<dyn Screens>,
    ) -> Result<Self, Error> {
        let (options, monitor) = checked_monitor(options, &screens).await?;
        let listener =
            TcpListener::bind(options.bind)
                .await
                .map_err(|source| match source.kind() {
                    std::io::ErrorKind::AddrInUse => Error::AddrInUse { addr: options.bind },
                    _ => Error::Bind {
                        addr: options.bind,
                        source,
                    },
                })?;
        let local_addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: options.bind,
            source,
        })?;
        server::raise_open_file_limit();
        let mut share = Self::assemble(&options, screens, monitor, local_addr)?;
        share.server = Some(tokio::spawn(server::serve(
            listener,
            share.router(),
            options.limits,
            share.app.share.cancel.clone(),
            SHUTDOWN_GRACE,
        )));
        tracing::info!(%local_addr, open = options.open, "sharing");
        Ok(share)
    }

    /// A share with no socket: capture runs and [`Share::router`] answers requests given to it
    /// (tests drive it with `oneshot`; another server could mount it). Its URLs name
    /// `options.bind`.
    pub async fn without_socket(
        options: ShareOptions,
        screens: Arc<dyn Screens>,
    ) -> Result<Self, Error> {
        let (options, monitor) = checked_monitor(options, &screens).await?;
        Self::assemble(&options, screens, monitor, options.bind)
    }

    /// Everything but the socket: secrets, URLs, state, the capture thread.
    fn assemble(
        options: &ShareOptions,
        screens: Arc<dyn Screens>,
        monitor: MonitorInfo,
        local_addr: SocketAddr,
    ) -> Result<Self, Error> {
        let access = Access::generate(options.open).map_err(|error| {
            Error::Internal(format!("no randomness for the share's token: {error}"))
        })?;
        let epoch = Access::generate(false)
            .map_err(|error| Error::Internal(error.to_string()))?
            .viewer_path()
            .chars()
            .filter(char::is_ascii_hexdigit)
            .take(8)
            .collect();

        let viewer_path = if options.open {
            "/".to_owned()
        } else {
            access.viewer_path()
        };
        let viewer_urls = net::urls_for(local_addr, &viewer_path);
        let control_host = if local_addr.ip().is_unspecified() {
            SocketAddr::from((Ipv4Addr::LOCALHOST, local_addr.port()))
        } else {
            local_addr
        };
        let control_url = net::url(control_host, &format!("{}settings", access.control_path()));

        let state = Arc::new(ShareState::new(
            options.settings.clone(),
            screens,
            options.limits.long_poll,
        ));
        state
            .capture
            .send_modify(|status| status.monitor = Some(monitor));
        let app = AppState::new(
            state.clone(),
            access,
            epoch,
            options.limits,
            &options.allowed_hosts,
        );
        let capture = spawn_capture_thread(CaptureContext {
            state: state.clone(),
        })
        .map_err(|error| Error::Internal(format!("cannot start the capture thread: {error}")))?;
        tokio::spawn(crate::audio::service::run(state.clone()));
        tokio::spawn(state.clone().keep_viewers_told());
        tokio::spawn(log_stats(state));
        Ok(Self {
            app,
            local_addr,
            viewer_urls,
            control_url,
            server: None,
            capture: Some(capture),
        })
    }

    /// Where the server listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// URLs for viewers, best first.
    pub fn viewer_urls(&self) -> &[String] {
        &self.viewer_urls
    }

    /// The presenter's settings URL (GET to read, PATCH with JSON to change).
    pub fn control_url(&self) -> &str {
        &self.control_url
    }

    pub fn settings(&self) -> Settings {
        self.app.share.settings()
    }

    /// Changes settings while viewers watch; they see the change within one frame interval.
    pub async fn update(&self, patch: &SettingsPatch) -> Result<Settings, Error> {
        self.app.share.update_settings(patch).await
    }

    pub fn status(&self) -> Status {
        self.app.share.status()
    }

    /// Who is watching, then who waits to be let in.
    pub fn viewers(&self) -> Vec<ViewerInfo> {
        self.app.share.viewer_list()
    }

    /// Lets waiting viewer `id` in (an id from [`Share::viewers`]). Whether there was one.
    pub fn admit(&self, id: &str) -> bool {
        self.app.share.admit(id)
    }

    /// Ends viewer `id`'s access at once, and its address's, until the share stops. Whether
    /// there was one.
    pub fn remove(&self, id: &str) -> bool {
        self.app.share.remove(id)
    }

    /// Where the desktop's dialog picks (Wayland): asks it again now, viewers keeping the last
    /// picture meanwhile. Elsewhere nothing changes.
    pub fn pick_again(&self) {
        self.app.share.pick_again();
    }

    /// The frame viewers see now.
    pub fn latest_frame(&self) -> Option<Arc<Frame>> {
        self.app.share.latest_frame()
    }

    /// Keeps capture running while held, as a viewer would (for the presenter's own preview).
    pub fn watch(&self) -> WatchGuard {
        self.app.share.demand.watch()
    }

    /// What viewers see now, pointer drawn in, as a JPEG `width` wide: the presenter's preview.
    /// Asking counts as watching, so capture keeps going while the presenter looks.
    pub async fn preview(&self, width: u32) -> Result<Option<Vec<u8>>, Error> {
        drop(self.watch());
        let Some(frame) = self.latest_frame() else {
            return Ok(None);
        };
        tokio::task::spawn_blocking(move || {
            crate::encode::thumbnail_jpeg(&frame.picture_with_pointer(), width, 75)
        })
        .await
        .map_err(|error| Error::Internal(error.to_string()))?
        .map(Some)
        .map_err(|error| Error::Internal(error.to_string()))
    }

    /// The routes, for serving elsewhere or testing without a socket.
    pub fn router(&self) -> Router {
        server::router(self.app.clone())
    }

    /// Cancelled when the share stops.
    pub fn stopped(&self) -> CancellationToken {
        self.app.share.cancel.clone()
    }

    /// Stops capture and the server, waiting for both.
    pub async fn stop(mut self) -> Result<(), Error> {
        self.signal_stop();
        if let Some(server) = self.server.take() {
            // The server gives open requests the grace period, then closes what is left.
            server
                .await
                .map_err(|error| Error::Internal(error.to_string()))?;
        }
        if let Some(capture) = self.capture.take() {
            // A grab blocked on a hung X server never returns: stopping must not wait for it.
            // The thread ends on its own if the server wakes, or with the process.
            let deadline = tokio::time::Instant::now() + CAPTURE_STOP_WAIT;
            while !capture.is_finished() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            if capture.is_finished() {
                capture
                    .join()
                    .map_err(|_| Error::Internal("the capture thread panicked".to_owned()))?;
            } else {
                tracing::warn!("capture is stuck (is the display server hung?); leaving it behind");
            }
        }
        tracing::info!("share stopped");
        Ok(())
    }

    fn signal_stop(&self) {
        self.app.share.cancel.cancel();
        self.app.share.screens.stop_asking();
        self.app.share.demand.ring();
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        self.signal_stop();
    }
}

/// Checks the settings and that their monitor (or window) opens, before anything runs. A window
/// named by title is pinned to the one found, by id: a title matched again later could name
/// another window.
async fn checked_monitor(
    mut options: ShareOptions,
    screens: &Arc<dyn Screens>,
) -> Result<(ShareOptions, MonitorInfo), Error> {
    options.settings.validate()?;
    screens.new_share();
    let screens = screens.clone();
    let choice = options.settings.monitor.clone();
    let window = options.settings.window.clone();
    let shares_window = window.is_some();
    let info = crate::capture::ask_display_within(screens.open_timeout(), move || {
        screens
            .open_target(choice.as_ref(), window.as_ref())
            .map(|source| source.info().clone())
    })
    .await?;
    if shares_window {
        options.settings.window = Some(crate::settings::WindowChoice::Id(info.id));
    }
    Ok((options, info))
}

/// The monitors of this machine.
pub fn sources() -> Result<Vec<MonitorInfo>, crate::capture::CaptureError> {
    system_screens().list()
}

async fn log_stats(state: Arc<ShareState>) {
    let mut ticker = tokio::time::interval(STATS_EVERY);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = state.cancel.cancelled() => return,
        }
        let status = state.status();
        if status.viewers > 0 || status.state == Phase::Live {
            tracing::info!(
                viewers = status.viewers,
                achieved_fps = format_args!("{:.1}", status.achieved_fps),
                grab_ms = format_args!("{:.1}", status.grab_ms),
                frame = status.frame,
                png_encodes = status.encodes.png,
                jpeg_encodes = status.encodes.jpeg,
                jpeg_bytes = status.jpeg_bytes,
                "stats"
            );
        }
    }
}
