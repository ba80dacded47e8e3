//! The routes through `tower::ServiceExt::oneshot`, with no socket, on a synthetic screen the test
//! paints at will. (tests/capture.rs and the CLI's tests do the same against a real X server.)

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use screenshare_core::capture::synthetic::SyntheticScreens;
use screenshare_core::frame::wire;
use screenshare_core::pixels::Rect;
use screenshare_core::server::Limits;
use screenshare_core::{Settings, Share, ShareOptions};
use screenshare_testkit::eventually;
use serde_json::{Value, json};

struct Fixture {
    share: Share,
    screens: SyntheticScreens,
    router: Router,
    viewer: String,
    control: String,
}

async fn start(settings: Settings, open: bool) -> Fixture {
    start_share(settings, open, Limits::default()).await
}

async fn start_with_limits(settings: Settings, limits: Limits) -> Fixture {
    start_share(settings, false, limits).await
}

async fn start_share(settings: Settings, open: bool, limits: Limits) -> Fixture {
    let screens = SyntheticScreens::new(&[(320, 200), (160, 100)]);
    screens.paint(0, [200, 40, 40]);
    let share = Share::without_socket(
        ShareOptions {
            settings,
            bind: "127.0.0.1:0".parse().expect("address"),
            open,
            limits,
            ..ShareOptions::default()
        },
        Arc::new(screens.clone()),
    )
    .await
    .expect("share starts");
    let origin = format!("http://{}", share.local_addr());
    let path = |url: &str| url.trim_start_matches(&origin).to_owned();
    let viewer = path(
        share
            .viewer_urls()
            .iter()
            .find(|url| url.starts_with(&origin))
            .expect("a loopback viewer URL"),
    );
    let control = path(share.control_url()).replace("settings", "");
    let router = common::as_from_this_machine(share.router(), share.local_addr());
    Fixture {
        router,
        share,
        screens,
        viewer,
        control,
    }
}

/// A share capturing at 30 fps with a 2 s long poll, so tests that wait for a new frame (or for
/// the lack of one) wait little.
async fn start_quick() -> Fixture {
    start_with_limits(
        Settings {
            fps: 30,
            ..Settings::default()
        },
        Limits {
            long_poll: Duration::from_secs(2),
            ..Limits::default()
        },
    )
    .await
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }

    /// A header's value; a missing one fails the test rather than passing as "".
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
    }
}

async fn send(
    router: &Router,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Reply {
    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = match body {
        Some(body) => request
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string())),
        None => request.body(Body::empty()),
    }
    .expect("request");
    let (status, headers, body) = common::exchange(router, request).await;
    Reply {
        status,
        headers,
        body,
    }
}

/// PATCH on the presenter's settings URL.
async fn patch_settings(fx: &Fixture, body: Value) -> Reply {
    let uri = format!("{}settings", fx.control);
    send(&fx.router, Method::PATCH, &uri, &[], Some(body)).await
}

async fn get(router: &Router, uri: &str) -> Reply {
    send(router, Method::GET, uri, &[], None).await
}

/// A GET from another machine at `peer`.
async fn get_from(router: &Router, uri: &str, peer: SocketAddr) -> Reply {
    let mut request = Request::get(uri).body(Body::empty()).expect("request");
    request.extensions_mut().insert(ConnectInfo(peer));
    let (status, headers, body) = common::exchange(router, request).await;
    Reply {
        status,
        headers,
        body,
    }
}

fn centre(png_or_jpeg: &[u8]) -> [u8; 3] {
    let image = image::load_from_memory(png_or_jpeg)
        .expect("a decodable image")
        .to_rgb8();
    image.get_pixel(image.width() / 2, image.height() / 2).0
}

#[tokio::test]
async fn viewer_page_is_served_under_the_token() {
    let fx = start(Settings::default(), false).await;
    let page = get(&fx.router, &fx.viewer).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.header("content-type").starts_with("text/html"));
    assert!(
        page.header("content-security-policy")
            .contains("default-src 'none'")
    );
    let csp = page.header("content-security-policy");
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let html = String::from_utf8_lossy(&page.body);
    assert!(
        !html.contains("<style>") && !html.contains("<script>"),
        "nothing inline"
    );
    assert!(html.contains(r#"<script src="viewer.js">"#));
    // Its script and style come from beside it, under the token.
    let script = get(&fx.router, &format!("{}viewer.js", fx.viewer)).await;
    assert_eq!(script.status, StatusCode::OK);
    assert!(script.header("content-type").starts_with("text/javascript"));
    assert!(
        String::from_utf8_lossy(&script.body).contains("`updates?after=${after}"),
        "the page fetches relative update URLs"
    );
    let style = get(&fx.router, &format!("{}viewer.css", fx.viewer)).await;
    assert!(style.header("content-type").starts_with("text/css"));
    for reply in [&page, &script, &style] {
        assert_eq!(reply.header("x-content-type-options"), "nosniff");
        assert_eq!(reply.header("cross-origin-resource-policy"), "same-origin");
        assert_eq!(reply.header("referrer-policy"), "no-referrer");
    }
    // Without the trailing slash, relative URLs would lose the token: redirect.
    let bare = get(&fx.router, fx.viewer.trim_end_matches('/')).await;
    assert_eq!(bare.status, StatusCode::PERMANENT_REDIRECT);
}

#[tokio::test]
async fn frame_is_the_screen_and_ignores_cache_busters() {
    let fx = start(Settings::default(), false).await;
    let reply = get(&fx.router, &format!("{}screen.png?random=0.123", fx.viewer)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), "image/png");
    assert_eq!(reply.header("cache-control"), "no-store");
    let image = image::load_from_memory(&reply.body).expect("PNG").to_rgb8();
    assert_eq!(image.dimensions(), (320, 200));
    assert_eq!(image.get_pixel(5, 5).0, [200, 40, 40], "PNG is lossless");

    let jpeg = get(&fx.router, &format!("{}screen.jpg?random=7", fx.viewer)).await;
    assert_eq!(jpeg.header("content-type"), "image/jpeg");
    let [r, g, b] = centre(&jpeg.body);
    assert!(
        r > 180 && g < 70 && b < 70,
        "JPEG close to the screen: {r},{g},{b}"
    );
}

#[tokio::test]
async fn wrong_token_gets_no_frame() {
    let fx = start(Settings::default(), false).await;
    let wrong = fx.viewer.replace("/s/", "/s/0");
    for uri in [
        format!("{wrong}screen.png"),
        format!("{wrong}status"),
        wrong.clone(),
        "/s/00000000000000000000000000000000/screen.png".to_owned(),
        "/screen.png".to_owned(),
        "/".to_owned(),
    ] {
        let reply = get(&fx.router, &uri).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{uri}");
        assert!(!reply.header("content-type").starts_with("image/"), "{uri}");
    }
}

#[tokio::test]
async fn control_needs_its_own_secret() {
    let fx = start(Settings::default(), false).await;
    let token = fx.viewer.trim_start_matches("/s/").trim_end_matches('/');
    let with_viewer_token = format!("/control/{token}/settings");
    let reply = send(
        &fx.router,
        Method::PATCH,
        &with_viewer_token,
        &[],
        Some(json!({"fps": 30})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(
        fx.share.settings().fps,
        Settings::default().fps,
        "viewers cannot change the share"
    );
    let reply = get(&fx.router, &format!("{}settings", fx.control)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["fps"], 10);
}

#[tokio::test]
async fn control_answers_this_machine_only() {
    let fx = start(Settings::default(), false).await;
    let from_the_lan = SocketAddr::from(([192, 168, 1, 20], 40_000));
    for what in ["settings", "status", "viewers", "monitors"] {
        let uri = format!("{}{what}", fx.control);
        let reply = get_from(&fx.router, &uri, from_the_lan).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{what}");
        assert!(String::from_utf8_lossy(&reply.body).contains("only served to this machine"));
    }
    // The same address still watches.
    let frame = get_from(
        &fx.router,
        &format!("{}screen.png", fx.viewer),
        from_the_lan,
    )
    .await;
    assert_eq!(frame.status, StatusCode::OK);
    // IPv4 through an IPv6 socket is still this machine.
    let mapped = SocketAddr::from((std::net::Ipv4Addr::LOCALHOST.to_ipv6_mapped(), 40_000));
    let reply = get_from(&fx.router, &format!("{}status", fx.control), mapped).await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn refusals_carry_the_safety_headers_too() {
    let fx = start(Settings::default(), false).await;
    let missing = get(&fx.router, "/no/such/page").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let elsewhere = send(
        &fx.router,
        Method::GET,
        &fx.viewer,
        &[("host", "attacker.example")],
        None,
    )
    .await;
    assert_eq!(elsewhere.status, StatusCode::MISDIRECTED_REQUEST);
    for reply in [&missing, &elsewhere] {
        assert_eq!(reply.header("x-content-type-options"), "nosniff");
        assert_eq!(reply.header("cross-origin-resource-policy"), "same-origin");
        assert_eq!(reply.header("cache-control"), "no-store");
    }
}

#[tokio::test]
async fn repeated_etag_gets_304() {
    let fx = start(Settings::default(), false).await;
    let first = get(&fx.router, &format!("{}screen.png", fx.viewer)).await;
    let etag = first.header("etag").to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    let again = send(
        &fx.router,
        Method::GET,
        &format!("{}screen.png?random=2", fx.viewer),
        &[("if-none-match", &etag)],
        None,
    )
    .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert!(again.body.is_empty());
    assert_eq!(again.header("etag"), etag);
}

#[tokio::test]
async fn colour_change_reaches_the_next_frame() {
    let fx = start_quick().await;
    let first = get(&fx.router, &format!("{}screen.png", fx.viewer)).await;
    let seq = first.header("x-frame-seq").to_owned();
    fx.screens.paint(0, [10, 200, 60]);
    let next = get(&fx.router, &format!("{}screen.png?after={seq}", fx.viewer)).await;
    assert_eq!(next.status, StatusCode::OK);
    assert_ne!(next.header("x-frame-seq"), seq);
    assert_eq!(centre(&next.body), [10, 200, 60]);
}

#[tokio::test]
async fn long_poll_says_nothing_new_when_the_screen_is_still() {
    let long_poll = Duration::from_millis(1500);
    let fx = start_with_limits(
        Settings {
            fps: 30,
            ..Settings::default()
        },
        Limits {
            long_poll,
            ..Limits::default()
        },
    )
    .await;
    let first = get(&fx.router, &format!("{}screen.jpg", fx.viewer)).await;
    let seq = first.header("x-frame-seq");
    let started = std::time::Instant::now();
    let next = get(&fx.router, &format!("{}screen.jpg?after={seq}", fx.viewer)).await;
    assert_eq!(next.status, StatusCode::NO_CONTENT);
    assert!(
        started.elapsed() >= long_poll,
        "it waited out the long poll for a change"
    );
    let bad = get(&fx.router, &format!("{}screen.jpg?after=soon", fx.viewer)).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.json()["error"].as_str().unwrap_or("").contains("after"));
}

#[tokio::test]
async fn concurrent_viewers_cause_one_encode_per_frame_and_format() {
    let fx = start(Settings::default(), false).await;
    let uris: Vec<String> = (0..40)
        .map(|i| {
            let format = if i % 2 == 0 { "png" } else { "jpg" };
            format!("{}screen.{format}?v=viewer-{i}", fx.viewer)
        })
        .collect();
    let mut requests = tokio::task::JoinSet::new();
    for (i, uri) in uris.into_iter().enumerate() {
        let router = fx.router.clone();
        // Forty machines: one address counts only a few page ids as separate viewers.
        let peer = SocketAddr::from(([10, 0, 0, i as u8 + 1], 50_000));
        requests.spawn(async move {
            let reply = get_from(&router, &uri, peer).await;
            (reply.status, reply.header("x-frame-seq").to_owned())
        });
    }
    let mut seqs = std::collections::HashSet::new();
    while let Some(reply) = requests.join_next().await {
        let (status, seq) = reply.expect("request task");
        assert_eq!(status, StatusCode::OK);
        seqs.insert(seq);
    }
    let status = get(&fx.router, &format!("{}status", fx.control))
        .await
        .json();
    let frame = status["frame"].as_u64().expect("frame number").to_string();
    assert_eq!(
        seqs,
        std::collections::HashSet::from([frame]),
        "the screen did not change: every viewer got the one frame"
    );
    assert_eq!(
        status["encodes"],
        json!({"png": 1, "jpeg": 1, "tiles": 0, "rects": 0})
    );
    assert_eq!(status["viewers"], 40);
}

#[tokio::test]
async fn settings_change_live_and_reach_the_frames() {
    let fx = start(Settings::default(), false).await;
    let big = get(&fx.router, &format!("{}screen.jpg", fx.viewer)).await;
    let reply = patch_settings(&fx, json!({"max_width": 160, "quality": 30})).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.json()["max_width"], 160);
    let seq = big.header("x-frame-seq");
    let small = get(&fx.router, &format!("{}screen.jpg?after={seq}", fx.viewer)).await;
    assert_eq!(small.status, StatusCode::OK);
    assert_eq!(small.header("x-frame-width"), "160");
    assert_eq!(small.header("x-frame-height"), "100");
    let status = get(&fx.router, &format!("{}status", fx.control))
        .await
        .json();
    assert_eq!(status["quality"], 30);
    assert_eq!(status["width"], 160);
}

#[tokio::test]
async fn switching_monitor_switches_what_viewers_see() {
    let fx = start_quick().await;
    fx.screens.paint(1, [30, 30, 220]);
    let first = get(&fx.router, &format!("{}screen.png", fx.viewer)).await;
    let reply = patch_settings(&fx, json!({"monitor": 1})).await;
    assert_eq!(reply.status, StatusCode::OK);
    let seq = first.header("x-frame-seq");
    let next = get(&fx.router, &format!("{}screen.png?after={seq}", fx.viewer)).await;
    assert_eq!(next.header("x-frame-width"), "160");
    assert_eq!(centre(&next.body), [30, 30, 220]);
}

#[tokio::test]
async fn bad_settings_are_refused_with_the_reason() {
    let fx = start(Settings::default(), false).await;
    let settings = format!("{}settings", fx.control);
    let cases = [
        (
            json!({"fps": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "frame rate",
        ),
        (
            json!({"quality": 101}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "quality",
        ),
        (
            json!({"monitor": 9}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "no monitor #9",
        ),
        (
            json!({"monitor": "nope"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "synthetic-0",
        ),
        (json!({"fsp": 3}), StatusCode::UNPROCESSABLE_ENTITY, "fsp"),
    ];
    for (body, status, words) in cases {
        let reply = patch_settings(&fx, body.clone()).await;
        assert_eq!(reply.status, status, "{body}");
        let error = reply.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(error.contains(words), "{body}: {error}");
    }
    let garbage = send(
        &fx.router,
        Method::PATCH,
        &settings,
        &[("content-type", "application/json")],
        None,
    )
    .await;
    assert_eq!(garbage.status, StatusCode::BAD_REQUEST);
    assert_eq!(fx.share.settings(), Settings::default(), "nothing changed");
}

#[tokio::test]
async fn no_capture_while_nobody_watches() {
    let fx = start_quick().await;
    // The loop has looked at the demand and gone idle: it grabbed nothing on the way.
    wait_for_state(&fx, "idle").await;
    assert_eq!(fx.share.status().grabs, 0, "no viewer, no grabs");
    get(&fx.router, &format!("{}screen.jpg", fx.viewer)).await;
    assert!(fx.share.status().grabs >= 1);
}

#[tokio::test]
async fn paused_share_keeps_the_last_frame() {
    let fx = start_quick().await;
    get(&fx.router, &format!("{}screen.png", fx.viewer)).await;
    fx.share
        .update(&serde_json::from_value(json!({"paused": true})).expect("patch"))
        .await
        .expect("pause");
    wait_for_state(&fx, "paused").await;
    let last = get(&fx.router, &format!("{}screen.png", fx.viewer)).await;
    fx.screens.paint(0, [0, 0, 0]);
    // A whole long poll passes without a new frame: nothing is captured while paused.
    let next = get(
        &fx.router,
        &format!(
            "{}screen.png?after={}",
            fx.viewer,
            last.header("x-frame-seq")
        ),
    )
    .await;
    assert_eq!(next.status, StatusCode::NO_CONTENT, "no frame while paused");
    let frame = get(&fx.router, &format!("{}screen.png", fx.viewer)).await;
    assert_eq!(
        centre(&frame.body),
        [200, 40, 40],
        "viewers keep the last frame"
    );
    let status = get(&fx.router, &format!("{}status", fx.viewer))
        .await
        .json();
    assert_eq!(status["paused"], true);
    assert_eq!(status["state"], "paused");
}

#[tokio::test]
async fn lost_source_keeps_last_frame_and_recovers() {
    let fx = start_quick().await;
    get(&fx.router, &format!("{}screen.png", fx.viewer)).await;
    fx.screens.set_failing(0, true);
    let _keep_watching = fx.share.watch();
    let lost = wait_for_state(&fx, "source_lost").await;
    assert!(
        lost["error"].as_str().unwrap_or("").contains("unplugged"),
        "{lost}"
    );
    let frame = get(&fx.router, &format!("{}screen.png", fx.viewer)).await;
    assert_eq!(frame.status, StatusCode::OK, "the last frame stays up");
    assert_eq!(centre(&frame.body), [200, 40, 40]);
    fx.screens.paint(0, [250, 250, 250]);
    fx.screens.set_failing(0, false);
    wait_for_state(&fx, "live").await;
    let frame = get(&fx.router, &format!("{}screen.png", fx.viewer)).await;
    assert_eq!(centre(&frame.body), [250, 250, 250]);
}

#[tokio::test]
async fn a_panic_in_capture_is_reported_as_lost_and_retried() {
    let fx = start_quick().await;
    get(&fx.router, &format!("{}screen.png", fx.viewer)).await;
    let _keep_watching = fx.share.watch();
    fx.screens.set_panicking(0, true);
    let lost = wait_for_state(&fx, "source_lost").await;
    assert!(
        lost["error"]
            .as_str()
            .unwrap_or("")
            .contains("capture failed unexpectedly"),
        "{lost}"
    );
    let viewer_status = get(&fx.router, &format!("{}status", fx.viewer))
        .await
        .json();
    assert_eq!(viewer_status["state"], "source_lost");
    assert!(
        viewer_status.get("error").is_none(),
        "viewers see no error text: {viewer_status}"
    );
    fx.screens.paint(0, [10, 200, 90]);
    fx.screens.set_panicking(0, false);
    wait_for_state(&fx, "live").await;
    let frame = get(&fx.router, &format!("{}screen.png", fx.viewer)).await;
    assert_eq!(centre(&frame.body), [10, 200, 90]);
}

async fn wait_for_state(fx: &Fixture, state: &str) -> Value {
    eventually(
        Duration::from_secs(10),
        &format!("state {state}"),
        || async {
            let status = get(&fx.router, &format!("{}status", fx.control))
                .await
                .json();
            (status["state"] == state).then_some(status)
        },
    )
    .await
    .expect("the share reaches the state")
}

#[tokio::test]
async fn open_share_serves_the_root_too() {
    let fx = start(Settings::default(), true).await;
    assert_eq!(get(&fx.router, "/").await.status, StatusCode::OK);
    let frame = get(&fx.router, "/screen.png?random=1").await;
    assert_eq!(frame.status, StatusCode::OK);
    assert_eq!(
        get(&fx.router, &format!("{}screen.png", fx.viewer))
            .await
            .status,
        StatusCode::OK
    );
    assert!(
        fx.share
            .viewer_urls()
            .iter()
            .all(|url| !url.contains("/s/")),
        "an open share hands out URLs without the token"
    );
}

#[tokio::test]
async fn switching_away_from_a_lost_monitor_is_immediate() {
    let fx = start_quick().await;
    let first = get(&fx.router, &format!("{}screen.png", fx.viewer)).await;
    let seq = first.header("x-frame-seq").to_owned();
    let _keep_watching = fx.share.watch();
    fx.screens.set_failing(0, true);
    wait_for_state(&fx, "source_lost").await;
    // Three failed attempts: the next retry of the lost monitor is two seconds away.
    eventually(
        Duration::from_secs(10),
        "the retry backoff to grow",
        || async { (fx.share.status().failed_attempts >= 3).then_some(()) },
    )
    .await
    .expect("backoff");
    fx.screens.paint(1, [20, 220, 20]);
    let started = std::time::Instant::now();
    let reply = patch_settings(&fx, json!({"monitor": 1})).await;
    assert_eq!(reply.status, StatusCode::OK);
    let next = get(&fx.router, &format!("{}screen.png?after={seq}", fx.viewer)).await;
    assert_eq!(centre(&next.body), [20, 220, 20]);
    assert!(
        started.elapsed() < Duration::from_millis(800),
        "the new monitor did not wait out the old one's backoff: {:?}",
        started.elapsed()
    );
}

/// Reads an update off the `updates` route and checks it parses.
async fn update(fx: &Fixture, query: &str) -> (Reply, Option<wire::Update>) {
    let reply = get(&fx.router, &format!("{}updates?{query}", fx.viewer)).await;
    let parsed = (reply.status == StatusCode::OK)
        .then(|| wire::parse(&reply.body).expect("a well-formed update"));
    (reply, parsed)
}

#[tokio::test]
async fn a_newcomer_gets_the_whole_screen_then_only_what_changed() {
    let fx = start_quick().await;
    let (reply, first) = update(&fx, "mode=lossless").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), "application/octet-stream");
    assert_eq!(reply.header("cache-control"), "no-store");
    let first = first.expect("update");
    assert!(first.header.full);
    assert_eq!(first.header.size, Some((320, 200)));
    assert_eq!(first.pieces.len(), 5 * 4, "every tile of a 320x200 screen");
    assert!(
        first
            .pieces
            .iter()
            .all(|piece| piece.body == wire::PieceBody::Solid([200, 40, 40])),
        "a flat screen is sent as fills"
    );

    // One small change inside one tile: an update of that change alone.
    fx.screens
        .paint_rect(0, Rect::new(70, 10, 5, 7), [10, 220, 30]);
    let (_, next) = update(&fx, &format!("mode=lossless&after={}", first.header.seq)).await;
    let next = next.expect("a change");
    assert_eq!(next.header.seq, first.header.seq + 1);
    assert!(!next.header.full);
    assert_eq!(next.pieces.len(), 1, "{:?}", next.pieces);
    assert_eq!(next.pieces[0].rect, Rect::new(70, 10, 5, 7));
    assert_eq!(next.pieces[0].body, wire::PieceBody::Solid([10, 220, 30]));

    // The same request again: the same bytes (a cache in front may share them).
    let (again, _) = update(&fx, &format!("mode=lossless&after={}", first.header.seq)).await;
    let (fresh, _) = update(&fx, &format!("mode=lossless&after={}", first.header.seq)).await;
    assert_eq!(again.body, fresh.body);
}

#[tokio::test]
async fn a_viewer_far_behind_catches_up_in_one_update_from_shared_tiles() {
    let fx = start_quick().await;
    let (_, first) = update(&fx, "mode=lossless").await;
    let first = first.expect("update");
    let mut seq = first.header.seq;
    // Three changes in three different tiles, each waited for, while this viewer looks away.
    for (index, x) in [5u32, 100, 200].into_iter().enumerate() {
        fx.screens
            .paint_rect(0, Rect::new(x, 70, 3, 3), [0, 0, 255]);
        let (_, next) = update(&fx, &format!("mode=adaptive&after={seq}")).await;
        seq = next.expect("change").header.seq;
        assert_eq!(seq, first.header.seq + 1 + index as u64);
    }
    let before = fx.share.status().encodes;
    // Ten viewers all as far behind: one update each, made of the three changed tiles.
    let mut bodies = Vec::new();
    for _ in 0..10 {
        let (_, caught_up) =
            update(&fx, &format!("mode=lossless&after={}", first.header.seq)).await;
        let caught_up = caught_up.expect("catch-up");
        assert_eq!(caught_up.header.seq, seq);
        let mut tiles: Vec<Rect> = caught_up.pieces.iter().map(|piece| piece.rect).collect();
        tiles.sort_by_key(|rect| rect.x);
        assert_eq!(
            tiles,
            vec![
                Rect::new(0, 64, 64, 64),
                Rect::new(64, 64, 64, 64),
                Rect::new(192, 64, 64, 64)
            ]
        );
        bodies.push(caught_up.pieces);
    }
    assert!(bodies.windows(2).all(|pair| pair[0] == pair[1]));
    let after = fx.share.status().encodes;
    assert_eq!(
        after.tiles - before.tiles,
        3,
        "each changed tile encoded once for all ten"
    );
}

#[tokio::test]
async fn updates_carry_the_pointer_and_its_shape() {
    let fx = start_quick().await;
    fx.screens.set_pointer(0, Some((30, 40)));
    let (_, first) = update(&fx, "").await;
    let first = first.expect("update");
    let pointer = first
        .header
        .pointer
        .expect("a whole-screen update carries the pointer");
    assert_ne!(pointer.shape, 0, "a pointer is shown");
    assert_eq!((pointer.x, pointer.y), (30, 40));
    let shape = get(
        &fx.router,
        &format!("{}pointer.png?shape={}", fx.viewer, pointer.shape),
    )
    .await;
    assert_eq!(shape.status, StatusCode::OK);
    assert_eq!(shape.header("content-type"), "image/png");
    let image = image::load_from_memory(&shape.body)
        .expect("PNG")
        .to_rgba8();
    assert_eq!(image.dimensions(), (2, 2));
    let stale = get(
        &fx.router,
        &format!("{}pointer.png?shape={}", fx.viewer, pointer.shape + 1),
    )
    .await;
    assert_eq!(stale.status, StatusCode::NOT_FOUND);

    // The classic route draws it in; turned off, it is in neither.
    let png = get(&fx.router, &format!("{}screen.png", fx.viewer)).await;
    let picture = image::load_from_memory(&png.body).expect("PNG").to_rgb8();
    assert_eq!(picture.get_pixel(30, 40).0, [255, 255, 255]);
    assert_eq!(picture.get_pixel(33, 40).0, [200, 40, 40]);
    let reply = patch_settings(&fx, json!({"show_pointer": false})).await;
    assert_eq!(reply.status, StatusCode::OK);
    let (_, hidden) = update(&fx, &format!("after={}", first.header.seq)).await;
    let hidden = hidden.expect("the pointer went away");
    assert_eq!(
        hidden.header.pointer.map(|pointer| pointer.shape),
        Some(0),
        "the pointer went away"
    );
    assert!(hidden.pieces.is_empty(), "no pixels changed");
    let png = get(&fx.router, &format!("{}screen.png", fx.viewer)).await;
    let picture = image::load_from_memory(&png.body).expect("PNG").to_rgb8();
    assert_eq!(picture.get_pixel(30, 40).0, [200, 40, 40]);
}

#[tokio::test]
async fn bad_update_queries_get_400() {
    let fx = start_quick().await;
    for query in [
        "after=-1",
        "after=x",
        "mode=fast",
        "after=18446744073709551616",
    ] {
        let (reply, _) = update(&fx, query).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query}");
    }
    let (reply, _) = update(&fx, "random=123&after=0").await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "unknown parameters are ignored"
    );
}

#[tokio::test]
async fn a_scaled_share_sends_scaled_updates() {
    let fx = start(
        Settings {
            fps: 30,
            max_width: Some(160),
            ..Settings::default()
        },
        false,
    )
    .await;
    let (_, whole) = update(&fx, "mode=lossless").await;
    let whole = whole.expect("update");
    assert_eq!(whole.header.size, Some((160, 100)));
    assert!(whole.header.full);
    // A change while scaled still arrives, as a change of the scaled picture.
    fx.screens
        .paint_rect(0, Rect::new(0, 0, 320, 100), [0, 0, 250]);
    let (_, next) = update(&fx, &format!("mode=lossless&after={}", whole.header.seq)).await;
    let next = next.expect("a change");
    assert!(!next.header.full);
    assert!(
        next.pieces.iter().all(|piece| piece.rect.bottom() <= 51),
        "only the top half changed: {:?}",
        next.pieces
            .iter()
            .map(|piece| piece.rect)
            .collect::<Vec<_>>()
    );
}
