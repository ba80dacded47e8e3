//! The xdg-desktop-portal ScreenCast session, through `ashpd`: CreateSession, SelectSources
//! (the types the portal offers, the pointer as metadata where it can, kept until revoked with
//! the saved restore token), Start (the desktop's picker, or none when the token restores the
//! choice), then the PipeWire remote to read the stream from.
//!
//! The session lives on a thread of its own with a small async runtime (D-Bus is async, capture
//! is not): it answers the opener once, then waits for the desktop to close the session (the
//! presenter's "stop sharing" in the top bar) or for us to close it.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ashpd::desktop::PersistMode;
use ashpd::desktop::screencast::{CursorMode, Screencast, SelectSourcesOptions, SourceType};
use futures_util::StreamExt as _;

use super::failed;
use super::token::TokenStore;
use crate::capture::CaptureError;

/// How often a wait for the desktop's dialog looks whether the share still wants it.
const GIVE_UP_CHECK: Duration = Duration::from_millis(100);

/// What a started session gives the stream.
#[derive(Debug)]
pub struct Started {
    /// The PipeWire node of the chosen monitor or window.
    pub node: u32,
    /// The PipeWire remote that node is on.
    pub fd: OwnedFd,
    /// The size the portal reports, where it does.
    pub size: Option<(u32, u32)>,
    /// What the presenter picked.
    pub kind: Picked,
    /// Whether the pointer comes as metadata (drawn by the page) rather than in the pixels.
    pub pointer_as_data: bool,
}

/// What the presenter picked in the desktop's dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Picked {
    Monitor,
    Window,
    /// A portal that does not say (older ones).
    Unknown,
}

/// A live portal session; dropping it closes the session (the desktop's sharing indicator goes).
#[derive(Debug)]
pub struct Session {
    close: Option<tokio::sync::oneshot::Sender<()>>,
    closed_by_desktop: Arc<AtomicBool>,
}

impl Session {
    /// Whether the desktop ended the session (the presenter stopped sharing from the top bar, or
    /// the portal went away).
    pub fn closed_by_desktop(&self) -> bool {
        self.closed_by_desktop.load(Ordering::SeqCst)
    }

    /// Whether the desktop ends the session within `grace`: its Closed signal comes a moment
    /// after the stream stops.
    pub fn closed_by_desktop_within(&self, grace: Duration) -> bool {
        let deadline = std::time::Instant::now() + grace;
        while !self.closed_by_desktop() {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(close) = self.close.take() {
            let _ = close.send(());
        }
    }
}

/// Starts a session and waits up to `pick_timeout` for the presenter to pick in the desktop's
/// dialog (instant when the saved token restores the last choice), or until `give_up` says the
/// share no longer wants it.
pub fn start(
    tokens: &TokenStore,
    pick_timeout: Duration,
    give_up: impl Fn() -> bool,
) -> Result<(Session, Started), CaptureError> {
    let (answer, answered) = std::sync::mpsc::sync_channel(1);
    let (close, close_requested) = tokio::sync::oneshot::channel::<()>();
    let closed_by_desktop = Arc::new(AtomicBool::new(false));
    let closed = closed_by_desktop.clone();
    let tokens = tokens.clone();
    std::thread::Builder::new()
        .name("screenshare-portal".to_owned())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    let _ = answer.send(Err(failed(format!("no async runtime: {error}"))));
                    return;
                }
            };
            runtime.block_on(run(tokens, answer, close_requested, closed));
        })
        .map_err(|error| failed(format!("cannot start the portal thread: {error}")))?;
    let deadline = std::time::Instant::now() + pick_timeout;
    let started = loop {
        match answered.recv_timeout(GIVE_UP_CHECK) {
            Ok(result) => break result?,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if give_up() {
                    let _ = close.send(());
                    // Not a refusal of the presenter's: the next share may ask again.
                    return Err(failed(
                        "the share stopped before anything was picked".to_owned(),
                    ));
                }
                if std::time::Instant::now() >= deadline {
                    let _ = close.send(());
                    return Err(CaptureError::NotPicked(format!(
                        "nothing was picked in the desktop's dialog within {} s",
                        pick_timeout.as_secs()
                    )));
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(failed(
                    "the portal session ended before it started".to_owned(),
                ));
            }
        }
    };
    Ok((
        Session {
            close: Some(close),
            closed_by_desktop,
        },
        started,
    ))
}

async fn run(
    tokens: TokenStore,
    answer: std::sync::mpsc::SyncSender<Result<Started, CaptureError>>,
    close_requested: tokio::sync::oneshot::Receiver<()>,
    closed_by_desktop: Arc<AtomicBool>,
) {
    // A connection of this session's own: ashpd's shared one would belong to the runtime of
    // the first session, which is gone when that session ends, and every later call would hang.
    let connection = match ashpd::zbus::Connection::session().await {
        Ok(connection) => connection,
        Err(error) => {
            let _ = answer.send(Err(failed(format!(
                "cannot reach the desktop's session bus ({error}); is DBUS_SESSION_BUS_ADDRESS set?"
            ))));
            return;
        }
    };
    let proxy = match Screencast::with_connection(connection).await {
        Ok(proxy) => proxy,
        Err(error) => {
            let _ = answer.send(Err(no_portal(&error)));
            return;
        }
    };
    let session = match proxy.create_session(Default::default()).await {
        Ok(session) => session,
        Err(error) => {
            let _ = answer.send(Err(failed(format!(
                "the desktop portal refused a screen-cast session ({error})"
            ))));
            return;
        }
    };
    let closed = session.receive_closed().await;
    let token = tokens.load();
    let mut close_requested = close_requested;
    let picked = tokio::select! {
        picked = pick(&proxy, &session, token.as_deref()) => picked,
        _ = &mut close_requested => {
            // The opener gave up (nobody picked in time, or the share stopped): closing the
            // session takes the desktop's dialog away with it.
            let _ = session.close().await;
            return;
        }
    };
    match picked {
        Ok((started, new_token)) => {
            match new_token {
                Some(new_token) => tokens.save(&new_token),
                // A portal that keeps nothing: the old token is spent either way.
                None => tokens.forget(),
            }
            if answer.send(Ok(started)).is_err() {
                // The opener gave up waiting: end what it will never use.
                let _ = session.close().await;
                return;
            }
        }
        Err(error) => {
            if token.is_some() {
                // The saved choice did not come back (revoked, or the monitor is gone): the next
                // share shows the picker.
                tokens.forget();
            }
            let _ = answer.send(Err(error));
            let _ = session.close().await;
            return;
        }
    }
    match closed {
        Ok(mut closed) => {
            tokio::select! {
                _ = closed.next() => {
                    tracing::info!("the desktop ended the screen cast");
                    closed_by_desktop.store(true, Ordering::SeqCst);
                }
                _ = &mut close_requested => {
                    let _ = session.close().await;
                }
            }
        }
        Err(error) => {
            tracing::warn!(%error, "cannot watch the screen-cast session for its end");
            let _ = close_requested.await;
            let _ = session.close().await;
        }
    }
}

/// SelectSources and Start; the stream to read and the new restore token.
async fn pick(
    proxy: &Screencast,
    session: &ashpd::desktop::Session<Screencast>,
    token: Option<&str>,
) -> Result<(Started, Option<String>), CaptureError> {
    let offered = proxy.available_source_types().await.map_err(|error| {
        failed(format!(
            "the portal does not say what it can share ({error})"
        ))
    })?;
    let sources = offered & (SourceType::Monitor | SourceType::Window);
    if sources.is_empty() {
        return Err(failed(
            "the desktop portal offers neither monitors nor windows to share".to_owned(),
        ));
    }
    // Version 1 portals have no cursor modes: the pointer is whatever they do.
    let cursors = proxy.available_cursor_modes().await.unwrap_or_default();
    let cursor_mode = if cursors.contains(CursorMode::Metadata) {
        Some(CursorMode::Metadata)
    } else if cursors.contains(CursorMode::Embedded) {
        Some(CursorMode::Embedded)
    } else {
        None
    };
    let mut options = SelectSourcesOptions::default()
        .set_sources(sources)
        .set_multiple(false)
        .set_cursor_mode(cursor_mode);
    if proxy.version() >= 4 {
        options = options
            .set_persist_mode(PersistMode::ExplicitlyRevoked)
            .set_restore_token(token);
    }
    proxy
        .select_sources(session, options)
        .await
        .and_then(|request| request.response())
        .map_err(|error| failed(format!("the desktop portal refused the sources ({error})")))?;
    let streams = proxy
        .start(session, None, Default::default())
        .await
        .and_then(|request| request.response())
        .map_err(|error| match error {
            ashpd::Error::Response(ashpd::desktop::ResponseError::Cancelled) => {
                CaptureError::NotPicked(
                    "the desktop's dialog was closed without picking a screen or window".to_owned(),
                )
            }
            error => failed(format!(
                "the desktop portal did not start the screen cast ({error})"
            )),
        })?;
    let stream = streams.streams().first().ok_or_else(|| {
        failed("the desktop portal started a screen cast with no stream".to_owned())
    })?;
    let kind = match stream.source_type() {
        Some(SourceType::Monitor) => Picked::Monitor,
        Some(SourceType::Window) => Picked::Window,
        _ => Picked::Unknown,
    };
    let size = stream.size().and_then(|(width, height)| {
        Some((u32::try_from(width).ok()?, u32::try_from(height).ok()?))
    });
    let node = stream.pipe_wire_node_id();
    let new_token = streams.restore_token().map(str::to_owned);
    let fd = proxy
        .open_pipe_wire_remote(session, Default::default())
        .await
        .map_err(|error| {
            failed(format!(
                "the desktop portal gave no PipeWire connection ({error})"
            ))
        })?;
    Ok((
        Started {
            node,
            fd,
            size,
            kind,
            pointer_as_data: cursor_mode == Some(CursorMode::Metadata),
        },
        new_token,
    ))
}

fn no_portal(error: &ashpd::Error) -> CaptureError {
    failed(format!(
        "no desktop portal for screen casting ({error}); on Wayland screenshare needs \
         xdg-desktop-portal and your desktop's backend (xdg-desktop-portal-gnome, -kde or -wlr) \
         running, with PipeWire"
    ))
}
