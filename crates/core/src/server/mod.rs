//! The HTTP side: viewers fetch frames under `/s/<token>/`, the presenter steers under
//! `/control/<secret>/`. Handlers never capture or encode on the async runtime: they hand out bytes
//! the capture thread (or one `spawn_blocking` encode per frame and format) already made.

mod access;
mod control;
mod error;
mod viewer;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::routing::get;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use access::Access;
pub use error::ServerError;

use crate::state::ShareState;

/// Longer than a long poll ([`crate::state::LONG_POLL`]), short enough that shutdown never hangs.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What every handler gets.
#[derive(Clone, Debug)]
pub struct AppState {
    pub(crate) share: Arc<ShareState>,
    pub(crate) access: Arc<Access>,
    /// Random per share, so ETags from a previous run never match this one's frames.
    pub(crate) epoch: Arc<str>,
}

impl AppState {
    pub(crate) fn new(share: Arc<ShareState>, access: Access, epoch: String) -> Self {
        Self {
            share,
            access: Arc::new(access),
            epoch: epoch.into(),
        }
    }
}

/// All routes of a share.
pub fn router(state: AppState) -> Router {
    let viewer_routes = Router::new()
        .route("/s/{token}", get(viewer::add_slash))
        .route("/s/{token}/", get(viewer::page))
        .route("/s/{token}/screen.png", get(viewer::png))
        .route("/s/{token}/screen.jpg", get(viewer::jpeg))
        .route("/s/{token}/updates", get(viewer::updates))
        .route("/s/{token}/pointer.png", get(viewer::pointer_shape))
        .route("/s/{token}/status", get(viewer::status))
        .route_layer(from_fn_with_state(
            state.clone(),
            access::require_viewer_token,
        ));
    let control_routes = Router::new()
        .route(
            "/control/{secret}/settings",
            get(control::settings).patch(control::update_settings),
        )
        .route("/control/{secret}/status", get(control::status))
        .route("/control/{secret}/viewers", get(control::viewers))
        .route("/control/{secret}/monitors", get(control::monitors))
        .route_layer(from_fn_with_state(
            state.clone(),
            access::require_control_secret,
        ));
    let mut app = viewer_routes.merge(control_routes);
    if state.access.open {
        app = app.merge(
            Router::new()
                .route("/", get(viewer::page))
                .route("/screen.png", get(viewer::png))
                .route("/screen.jpg", get(viewer::jpeg))
                .route("/updates", get(viewer::updates))
                .route("/pointer.png", get(viewer::pointer_shape))
                .route("/status", get(viewer::status)),
        );
    }
    app.fallback(|| async { ServerError::NotFound })
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
