//! The viewers' routes: the page, the latest frame in PNG or JPEG, and the share's status.

use std::net::{IpAddr, SocketAddr};

use axum::Json;
use axum::body::Body;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use serde::Deserialize;

use super::AppState;
use super::error::ServerError;
use crate::encode::Format;
use crate::frame::Mode;
use crate::state::Phase;

/// The viewer page, embedded in the binary.
const VIEWER_PAGE: &str = include_str!("../../web/viewer.html");

/// Browsers and proxies must ask again every time (a frame is stale a moment later), but may
/// revalidate with the ETag to get a cheap 304.
const FRAME_CACHE_CONTROL: &str = "no-cache, private";

/// An update "after N" stays a correct answer to that request for ever (it brings a viewer from
/// N to a later frame, which then asks for what came after that); only its freshness fades. So a
/// shared cache in front may hand the same bytes to every viewer that asks within a second.
const UPDATE_CACHE_CONTROL: &str = "public, max-age=1";

/// A pointer shape's URL names its id: the bytes behind it never change.
const SHAPE_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

/// The query parameters the frame routes read; any other (`?random=`) is ignored.
#[derive(Debug, Default, Deserialize)]
pub struct FrameQuery {
    after: Option<String>,
    v: Option<String>,
    mode: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ShapeQuery {
    shape: Option<String>,
}

pub async fn page() -> Response {
    let mut response = (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        VIEWER_PAGE,
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; img-src 'self' blob:; connect-src 'self'; \
             style-src 'unsafe-inline'; script-src 'unsafe-inline'; base-uri 'none'; \
             form-action 'none'; frame-ancestors 'none'",
        ),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// `/s/<token>` without the slash: the page's relative URLs need it.
pub async fn add_slash(Path(token): Path<String>) -> Redirect {
    Redirect::permanent(&format!("{token}/"))
}

pub async fn png(
    State(state): State<AppState>,
    peer: PeerAddr,
    query: Result<Query<FrameQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ServerError> {
    serve_frame(state, Format::Png, peer, &query_or_400(query)?, &headers).await
}

pub async fn jpeg(
    State(state): State<AppState>,
    peer: PeerAddr,
    query: Result<Query<FrameQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ServerError> {
    serve_frame(state, Format::Jpeg, peer, &query_or_400(query)?, &headers).await
}

fn query_or_400<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ServerError> {
    query
        .map(|Query(query)| query)
        .map_err(|rejection| ServerError::BadRequest(rejection.body_text()))
}

fn parse_after(after: Option<&str>) -> Result<Option<u64>, ServerError> {
    after
        .map(str::parse::<u64>)
        .transpose()
        .map_err(|_| ServerError::BadRequest("`after` must be a frame number".to_owned()))
}

/// What changed on the screen after frame `after` (`?after=N`; none or 0: everything), as one
/// binary update (see `frame::wire`). Waits for a change when the viewer is up to date, and
/// answers 204 when none comes within the long poll. `mode=lossless` for exact pixels only;
/// `adaptive` (the default) for JPEG where the screen keeps moving.
pub async fn updates(
    State(state): State<AppState>,
    peer: PeerAddr,
    query: Result<Query<FrameQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ServerError> {
    let query = query_or_400(query)?;
    let after = parse_after(query.after.as_deref())?.unwrap_or(0);
    let mode = match query.mode.as_deref() {
        None => Mode::Adaptive,
        Some(mode) => mode.parse().map_err(ServerError::BadRequest)?,
    };
    state.share.demand.note_mode(mode);
    let id = headers
        .get("x-viewer")
        .and_then(|id| id.to_str().ok())
        .or(query.v.as_deref());
    let visit = state.share.viewers.visit(viewer_key(id, peer.0), peer.0);
    let Some(frame) = state.share.frame_for_viewer(Some(after)).await else {
        return Ok(no_new_frame());
    };
    let bytes = match frame.update_ready(after, mode) {
        Some(bytes) => bytes,
        None => tokio::task::spawn_blocking(move || frame.update_since(after, mode))
            .await
            .map_err(internal)?
            .map_err(internal)?,
    };
    visit.served(bytes.len());
    let mut response = Response::new(Body::from(bytes));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(UPDATE_CACHE_CONTROL),
    );
    Ok(response)
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
    let mut response = Json(state.share.status()).into_response();
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
    query: &FrameQuery,
    headers: &HeaderMap,
) -> Result<Response, ServerError> {
    let after = parse_after(query.after.as_deref())?;
    let visit = state
        .share
        .viewers
        .visit(viewer_key(query.v.as_deref(), peer.0), peer.0);

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
                tokio::task::spawn_blocking(move || frame.encoded(format))
                    .await
                    .map_err(|error| ServerError::Internal(error.to_string()))?
            }
        }
        .map_err(|error| ServerError::Internal(error.to_string()))?;
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

/// A viewer is its page's id when it sends one, else its address.
fn viewer_key(id: Option<&str>, address: Option<IpAddr>) -> String {
    match id {
        Some(id)
            if !id.is_empty()
                && id.len() <= 64
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
        {
            format!("id:{id}")
        }
        _ => address.map_or_else(|| "unknown".to_owned(), |ip| format!("ip:{ip}")),
    }
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

    #[test]
    fn viewer_key_prefers_a_sane_page_id() {
        let ip = Some(IpAddr::from([10, 0, 0, 9]));
        assert_eq!(viewer_key(Some("tab-42"), ip), "id:tab-42");
        assert_eq!(viewer_key(Some("<script>"), ip), "ip:10.0.0.9");
        assert_eq!(viewer_key(None, ip), "ip:10.0.0.9");
        assert_eq!(viewer_key(None, None), "unknown");
    }
}
