//! The HTTP side: viewers fetch frames under `/s/<token>/`, the presenter steers under
//! `/control/<secret>/`. Handlers never capture or encode on the async runtime: they hand out bytes
//! the capture thread (or one `spawn_blocking` encode per frame and format) already made.

mod access;
mod control;
mod error;
mod gate;
mod guard;
mod host;
mod in_flight;
mod limits;
mod listen;
pub(crate) mod push;
mod quiet_log;
mod stall;
mod until_removed;
mod viewer;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderValue, header};
use axum::middleware::from_fn_with_state;
use axum::routing::get;
use tokio::sync::Semaphore;
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use access::Access;
pub use error::ServerError;
pub use limits::Limits;
pub(crate) use listen::{raise_open_file_limit, serve};
pub use push::STATUS_RECORD;

use crate::state::ShareState;
use host::HostCheck;

/// How long any request may take beyond its long poll, so shutdown never hangs on one.
const REQUEST_TIMEOUT_BEYOND_LONG_POLL: Duration = Duration::from_secs(22);

/// What every handler gets.
#[derive(Clone, Debug)]
pub struct AppState {
    pub(crate) share: Arc<ShareState>,
    pub(crate) access: Arc<Access>,
    /// Random per share, so ETags from a previous run never match this one's frames.
    pub(crate) epoch: Arc<str>,
    pub(crate) limits: Limits,
    pub(crate) hosts: Arc<HostCheck>,
    /// Requests being answered, long polls included ([`Limits::max_requests_in_flight`]).
    in_flight: Arc<Semaphore>,
    /// Turns on the blocking threads that encode or assemble a frame for a request.
    pub(crate) blocking: Arc<Semaphore>,
    /// Frame answers being sent: how many per pass and per machine, and their bytes.
    pub(crate) in_flight_frames: Arc<in_flight::InFlight>,
}

impl AppState {
    /// `allowed_hosts` are names besides this machine's own that viewers may use to reach it.
    pub(crate) fn new(
        share: Arc<ShareState>,
        access: Access,
        epoch: String,
        limits: Limits,
        allowed_hosts: &[String],
    ) -> Self {
        Self {
            share,
            access: Arc::new(access),
            epoch: epoch.into(),
            limits,
            hosts: Arc::new(HostCheck::new(allowed_hosts)),
            in_flight: Arc::new(Semaphore::new(limits.max_requests_in_flight)),
            blocking: Arc::new(Semaphore::new(limits.max_blocking_encodes.max(1))),
            in_flight_frames: Arc::new(in_flight::InFlight::new(
                limits.max_frame_requests_per_pass,
                limits.max_frame_requests_per_address,
                limits.max_frame_bytes_in_flight,
            )),
        }
    }
}

/// All routes of a share, with the checks every request passes. Needs no socket: tests drive it
/// with `oneshot`, giving each request a `ConnectInfo` as the accept loop does.
pub fn router(state: AppState) -> Router {
    // Whatever shows the screen is behind the admission gate; the page and joining are not.
    // Frames also take a place among those in flight (inside the gate: only admitted requests).
    let screen_routes = || {
        Router::new()
            .route("/screen.png", get(viewer::png))
            .route("/screen.jpg", get(viewer::jpeg))
            .route("/updates", get(viewer::updates))
            .route("/stream", get(push::stream))
            .route_layer(from_fn_with_state(state.clone(), in_flight::limit_frames))
            .route("/pointer.png", get(viewer::pointer_shape))
            .route("/status", get(viewer::status))
            .route_layer(from_fn_with_state(state.clone(), gate::require_admission))
    };
    let page_routes = || {
        Router::new()
            .route("/viewer.js", get(viewer::script))
            .route("/lookback.js", get(viewer::lookback_script))
            .route("/viewer.css", get(viewer::stylesheet))
            .route("/access", get(gate::access))
            .route("/join", axum::routing::post(gate::join))
    };
    let viewer_routes = Router::new()
        .route("/s/{token}", get(viewer::add_slash))
        .route("/s/{token}/", get(viewer::page))
        .nest("/s/{token}", screen_routes().merge(page_routes()))
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
        .route(
            "/control/{secret}/viewers/{id}/admit",
            axum::routing::post(control::admit),
        )
        .route(
            "/control/{secret}/viewers/{id}/remove",
            axum::routing::post(control::remove),
        )
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
                .merge(screen_routes())
                .merge(page_routes()),
        );
    }
    // Layers wrap inside out: the last one added sees a request first.
    let shed_load = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
            ServerError::Overloaded
        }))
        .layer(LoadShedLayer::new())
        .layer(GlobalConcurrencyLimitLayer::with_semaphore(
            state.in_flight.clone(),
        ));
    app.fallback(|| async { ServerError::NotFound })
        .layer(DefaultBodyLimit::max(state.limits.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            state.limits.long_poll + REQUEST_TIMEOUT_BEYOND_LONG_POLL,
        ))
        .layer(shed_load)
        .layer(from_fn_with_state(state.clone(), guard::check_request))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        // Only a route that says otherwise (the classic frames) may be embedded by other pages.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::HeaderName::from_static("cross-origin-resource-policy"),
            HeaderValue::from_static("same-origin"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        // The span names the route, never the URI: that holds the token or the control secret.
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request| {
                let route = request
                    .extensions()
                    .get::<MatchedPath>()
                    .map_or("unmatched", MatchedPath::as_str);
                tracing::debug_span!("request", method = %request.method(), route)
            }),
        )
        .with_state(state)
}
