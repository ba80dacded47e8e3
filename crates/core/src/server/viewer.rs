//! The viewers' routes: the page, the latest frame in PNG or JPEG, and the share's status.

use std::net::{IpAddr, SocketAddr};

use axum::Json;
use axum::body::Body;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use serde::Deserialize;

use super::AppState;
use super::error::ServerError;
use super::gate::handle_of;
use crate::admission::Gate;
use crate::encode::Format;
use crate::frame::{Delivery, Mode};
use crate::state::Phase;

/// The viewer page, its scripts and its style, embedded in the binary. They are files of their
/// own so the page's policy can forbid inline script and style outright.
const VIEWER_PAGE: &str = include_str!("../../web/viewer.html");
const VIEWER_SCRIPT: &str = include_str!("../../web/viewer.js");
const LOOKBACK_SCRIPT: &str = include_str!("../../web/lookback.js");
const VIEWER_STYLE: &str = include_str!("../../web/viewer.css");

/// The screen is private to those let in: nothing that shows it is kept by a browser's disk cache
/// or a proxy (which would hand it to whoever asks next), and a frame is stale a moment later.
/// A viewer that already has the newest frame still gets a cheap 304 by sending its ETag.
const FRAME_CACHE_CONTROL: &str = "no-store";

/// A pointer shape's URL names its id, so the viewer's own cache may keep it; nobody else's.
const SHAPE_CACHE_CONTROL: &str = "private, max-age=86400, immutable";

/// The query parameters the frame routes read; any other (`?random=`) is ignored.
#[derive(Debug, Default, Deserialize)]
pub struct FrameQuery {
    after: Option<String>,
    mode: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ShapeQuery {
    shape: Option<String>,
}

pub async fn page() -> Response {
    let mut response = asset("text/html; charset=utf-8", VIEWER_PAGE);
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; \
             media-src blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ),
    );
    response
}

pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", VIEWER_SCRIPT)
}

/// The page's look-back: the pictures it keeps and its timeline.
pub async fn lookback_script() -> Response {
    asset("text/javascript; charset=utf-8", LOOKBACK_SCRIPT)
}

pub async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", VIEWER_STYLE)
}

/// One of the page's files; revalidated on each load so an upgraded server is picked up.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `/s/<token>` without the slash: the page's relative URLs need it.
pub async fn add_slash(Path(token): Path<String>) -> Redirect {
    Redirect::permanent(&format!("{token}/"))
}

pub async fn png(
    State(state): State<AppState>,
    peer: PeerAddr,
    gate: Option<Extension<Gate>>,
    query: Result<Query<FrameQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ServerError> {
    let query = query_or_400(query)?;
    let id = handle_of(gate.as_deref());
    serve_frame(state, Format::Png, peer, id, &query, &headers).await
}

pub async fn jpeg(
    State(state): State<AppState>,
    peer: PeerAddr,
    gate: Option<Extension<Gate>>,
    query: Result<Query<FrameQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ServerError> {
    let query = query_or_400(query)?;
    let id = handle_of(gate.as_deref());
    serve_frame(state, Format::Jpeg, peer, id, &query, &headers).await
}

pub(super) fn query_or_400<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ServerError> {
    query
        .map(|Query(query)| query)
        .map_err(|rejection| ServerError::BadRequest(rejection.body_text()))
}

/// A frame number as the page writes it: decimal digits only (`str::parse` would also take `+5`).
pub(super) fn parse_after(after: Option<&str>) -> Result<Option<u64>, ServerError> {
    after
        .map(|after| {
            after
                .bytes()
                .all(|byte| byte.is_ascii_digit())
                .then(|| after.parse::<u64>().ok())
                .flatten()
                .ok_or_else(|| ServerError::BadRequest("`after` must be a frame number".to_owned()))
        })
        .transpose()
}

/// What changed on the screen after frame `after` (`?after=N`; none or 0: everything), as one
/// binary update (see `frame::wire`). Waits for a change when the viewer is up to date, and
/// answers 204 when none comes within the long poll. `mode=lossless` for exact pixels only;
/// `adaptive` (the default) for JPEG where the screen keeps moving.
pub async fn updates(
    State(state): State<AppState>,
    peer: PeerAddr,
    gate: Option<Extension<Gate>>,
    query: Result<Query<FrameQuery>, QueryRejection>,
) -> Result<Response, ServerError> {
    let query = query_or_400(query)?;
    let after = parse_after(query.after.as_deref())?.unwrap_or(0);
    let mode = parse_mode(query.mode.as_deref())?;
    let visit = admit_viewer(&state, gate.as_deref(), peer, mode)?;
    let Some(frame) = state.share.frame_for_viewer(Some(after)).await else {
        return Ok(no_new_frame());
    };
    let bytes = match frame.update_ready(after, mode) {
        Some(bytes) => bytes,
        None => on_blocking_thread(&state, move || frame.update_since(after, mode))
            .await?
            .map_err(internal)?,
    };
    visit.served(bytes.len());
    Ok(updates_response(Body::from(bytes)))
}

/// Updates as the page reads them: binary, never stored by a cache.
pub(super) fn updates_response(body: Body) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(FRAME_CACHE_CONTROL),
    );
    response
}

/// The picture mode a viewer asks for: `adaptive` unless it says `lossless`.
pub(super) fn parse_mode(mode: Option<&str>) -> Result<Mode, ServerError> {
    mode.map_or(Ok(Mode::Adaptive), |mode| {
        mode.parse().map_err(ServerError::BadRequest)
    })
}

/// Counts an update's viewer in (or refuses it when the share is full), noting the mode it
/// wants. A page's pass names it; a plain client is its address (ids a client makes up would
/// let one machine count as many viewers).
pub(super) fn admit_viewer(
    state: &AppState,
    gate: Option<&Gate>,
    peer: PeerAddr,
    mode: Mode,
) -> Result<crate::viewers::Visit, ServerError> {
    let visit = admit(state, handle_of(gate), peer)?;
    state.share.demand.note_delivery(Delivery::of(mode, false));
    Ok(visit)
}

/// Counts the request's viewer in, or refuses it when the share is full.
fn admit(
    state: &AppState,
    page_id: Option<&str>,
    peer: PeerAddr,
) -> Result<crate::viewers::Visit, ServerError> {
    let limit = state.share.settings.borrow().max_viewers as usize;
    state
        .share
        .viewers
        .visit(page_id, peer.0, limit)
        .map_err(|_| ServerError::ShareFull)
}

/// Runs `work` (an encode, an update assembly) on a blocking thread, taking a turn among at most
/// [`super::Limits::max_blocking_encodes`]: a crowd of requests waits here, on the runtime,
/// instead of each holding a thread.
pub(super) async fn on_blocking_thread<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ServerError> {
    // The turn goes with the work, not with the request: a client that hangs up does not free
    // a turn whose work still runs.
    let turn = state
        .blocking
        .clone()
        .acquire_owned()
        .await
        .map_err(internal)?;
    tokio::task::spawn_blocking(move || {
        let _turn = turn;
        work()
    })
    .await
    .map_err(internal)
}

/// A pointer shape as PNG, for `?shape=ID` as an update names it (one of the last few; 404 for
/// older ones: the next update names the current one).
pub async fn pointer_shape(
    State(state): State<AppState>,
    query: Result<Query<ShapeQuery>, QueryRejection>,
) -> Result<Response, ServerError> {
    let query = query_or_400(query)?;
    let wanted: u32 = query
        .shape
        .as_deref()
        .and_then(|shape| shape.parse().ok())
        .ok_or_else(|| ServerError::BadRequest("`shape` must be a shape id".to_owned()))?;
    let shape = state
        .share
        .latest_frame()
        .and_then(|frame| frame.shape(wanted))
        .ok_or(ServerError::NotFound)?;
    let png = shape.png().map_err(internal)?;
    let mut response = Response::new(Body::from(png));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(SHAPE_CACHE_CONTROL),
    );
    Ok(response)
}

pub async fn status(State(state): State<AppState>) -> Response {
    let mut response = Json(state.share.viewer_status()).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Hands out the latest frame. Query parameters other than these are ignored (`?random=` cache
/// busters): `after=N` waits for a frame other than number N (a long poll, answered 204 when
/// nothing changes); `v=ID` names the viewer so one tab counts once.
async fn serve_frame(
    state: AppState,
    format: Format,
    peer: PeerAddr,
    viewer_id: Option<&str>,
    query: &FrameQuery,
    headers: &HeaderMap,
) -> Result<Response, ServerError> {
    let after = parse_after(query.after.as_deref())?;
    let visit = admit(&state, viewer_id, peer)?;

    let Some(frame) = state.share.frame_for_viewer(after).await else {
        if after.is_some() {
            return Ok(no_new_frame());
        }
        let capture = state.share.capture.borrow().clone();
        return Err(match (capture.phase, capture.error) {
            (Phase::SourceLost, Some(error)) => ServerError::SourceLost(error),
            _ => ServerError::NoFrameYet,
        });
    };

    let etag = format!("\"{}-{}\"", state.epoch, frame.seq());
    let mut response = if if_none_match(headers, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let bytes = match frame.encoded_if_ready(format) {
            Some(ready) => ready,
            None => {
                let frame = frame.clone();
                on_blocking_thread(&state, move || frame.encoded(format)).await?
            }
        }
        .map_err(internal)?;
        visit.served(bytes.len());
        let mut response = Response::new(Body::from(bytes));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        );
        response
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(FRAME_CACHE_CONTROL),
    );
    // The classic contract: any page (a file on disk, an intranet page) may show the screen in an
    // `<img>`. It still cannot read the pixels (no CORS), and needs the token to name the URL.
    headers.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("cross-origin"),
    );
    for (name, value) in [
        (header::ETAG, etag),
        (
            "x-frame-seq".parse().map_err(internal)?,
            frame.seq().to_string(),
        ),
        (
            "x-frame-width".parse().map_err(internal)?,
            frame.width().to_string(),
        ),
        (
            "x-frame-height".parse().map_err(internal)?,
            frame.height().to_string(),
        ),
    ] {
        headers.insert(name, HeaderValue::from_str(&value).map_err(internal)?);
    }
    Ok(response)
}

fn internal(error: impl std::fmt::Display) -> ServerError {
    ServerError::Internal(error.to_string())
}

fn no_new_frame() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Whether `If-None-Match` names `etag` (weak or strong, in a list, or `*`).
fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == etag || tag == "*")
}

/// The client's address when the server knows it (not in `oneshot` tests).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for PeerAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(PeerAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(address)| address.ip()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_is_digits_only() {
        assert_eq!(parse_after(None).ok(), Some(None));
        assert_eq!(parse_after(Some("42")).ok(), Some(Some(42)));
        for bad in ["", "+5", "-1", "1e3", " 1", "18446744073709551616", "٣"] {
            assert!(parse_after(Some(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn if_none_match_handles_lists_and_weak_tags() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"x-1\", W/\"ab-7\""),
        );
        assert!(if_none_match(&headers, "\"ab-7\""));
        assert!(!if_none_match(&headers, "\"ab-8\""));
        assert!(!if_none_match(&HeaderMap::new(), "\"ab-7\""));
    }
}
