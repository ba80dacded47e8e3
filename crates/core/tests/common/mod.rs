//! What the router tests share. (Each test binary uses part of it.)
#![allow(dead_code)]

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// `router` as the accept loop and a browser on this machine see it: every request gets the
/// peer's address (unless the test gave one) and a `Host` naming the server (unless it gave one).
pub fn as_from_this_machine(router: Router, local: SocketAddr) -> Router {
    router.layer(axum::middleware::map_request(
        move |mut request: Request<Body>| async move {
            let extensions = request.extensions_mut();
            if extensions.get::<ConnectInfo<SocketAddr>>().is_none() {
                extensions.insert(ConnectInfo(local));
            }
            if !request.headers().contains_key(header::HOST)
                && let Ok(host) = HeaderValue::from_str(&local.to_string())
            {
                request.headers_mut().insert(header::HOST, host);
            }
            request
        },
    ))
}

/// Sends `request` through `router` and collects the whole answer.
pub async fn exchange(router: &Router, request: Request<Body>) -> (StatusCode, HeaderMap, Vec<u8>) {
    let response = router.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec();
    (status, headers, body)
}
