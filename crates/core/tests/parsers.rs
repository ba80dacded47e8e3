//! Property tests: whatever a client puts in a query, a path, a `Host` or a settings change, the
//! server answers with a deliberate status (never a 5xx, never a panic) and goes on serving.

mod common;

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use proptest::prelude::*;
use screenshare_core::capture::synthetic::SyntheticScreens;
use screenshare_core::{Settings, Share, ShareOptions};

struct Fixture {
    runtime: tokio::runtime::Runtime,
    router: Router,
    viewer: String,
    control: String,
    /// Kept alive for the whole run.
    _share: Share,
}

/// One share for every case: starting one per case would measure start-up, not parsing.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let screens = SyntheticScreens::new(&[(64, 48)]);
        screens.paint(0, [30, 60, 90]);
        let share = runtime
            .block_on(Share::without_socket(
                ShareOptions {
                    settings: Settings {
                        fps: 30,
                        ..Settings::default()
                    },
                    bind: "127.0.0.1:0".parse().expect("address"),
                    ..ShareOptions::default()
                },
                Arc::new(screens),
            ))
            .expect("share starts");
        let origin = format!("http://{}", share.local_addr());
        let viewer = share
            .viewer_urls()
            .iter()
            .find(|url| url.starts_with(&origin))
            .expect("a loopback URL")
            .trim_start_matches(&origin)
            .to_owned();
        let control = share
            .control_url()
            .trim_start_matches(&origin)
            .replace("settings", "");
        Fixture {
            router: common::as_from_this_machine(share.router(), share.local_addr()),
            runtime,
            viewer,
            control,
            _share: share,
        }
    })
}

/// Sends a request; `None` when the test input is not even a valid request to build.
fn send(request: Result<Request<Body>, axum::http::Error>) -> Option<(StatusCode, Vec<u8>)> {
    let request = request.ok()?;
    let fx = fixture();
    fx.runtime.block_on(async {
        let (status, _, body) = common::exchange(&fx.router, request).await;
        Some((status, body))
    })
}

fn assert_deliberate(status: StatusCode, allowed: &[u16], what: &str) {
    assert!(
        allowed.contains(&status.as_u16()),
        "{what}: got {status}, want one of {allowed:?}"
    );
}

/// Query strings made of the characters that matter to a query parser.
fn query() -> impl Strategy<Value = String> {
    let pieces = prop_oneof![
        Just("after=".to_owned()),
        Just("mode=".to_owned()),
        Just("v=".to_owned()),
        Just("&".to_owned()),
        Just("=".to_owned()),
        Just("%".to_owned()),
        Just("%FF".to_owned()),
        Just("%00".to_owned()),
        Just("+".to_owned()),
        "[0-9]{1,22}",
        "[a-zA-Z%+=&;-]{1,8}",
        Just("lossless".to_owned()),
        Just("adaptive".to_owned()),
    ];
    proptest::collection::vec(pieces, 0..12).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn any_query_on_a_frame_route_gets_a_deliberate_answer(
        query in query(),
        route in prop_oneof![Just("updates"), Just("screen.png"), Just("screen.jpg"), Just("pointer.png")],
    ) {
        let fx = fixture();
        // `after` past the newest frame would wait out the long poll: a query that names no
        // `after` gets `after=0`, one that does keeps its own (and a number is the newest
        // frame's only by a chance of one in 2^40).
        let uri = if query.contains("after=") {
            format!("{}{route}?{query}", fx.viewer)
        } else {
            format!("{}{route}?{query}&after=0", fx.viewer)
        };
        if let Some((status, _)) = send(Request::get(&uri).body(Body::empty())) {
            assert_deliberate(status, &[200, 204, 304, 400, 404], &uri);
        }
    }

    #[test]
    fn any_token_path_gets_a_deliberate_answer(segment in "[a-zA-Z0-9%/._~ -]{0,40}") {
        let uri = format!("/s/{segment}/status");
        if let Some((status, _)) = send(Request::get(&uri).body(Body::empty())) {
            assert_deliberate(status, &[200, 308, 404], &uri);
        }
    }

    #[test]
    fn any_host_gets_a_deliberate_answer(host in "[ -~]{0,60}") {
        let fx = fixture();
        let request = Request::get(format!("{}status", fx.viewer))
            .header(header::HOST, host.as_str())
            .body(Body::empty());
        if let Some((status, _)) = send(request) {
            assert_deliberate(status, &[200, 400, 421], &host);
        }
    }

    #[test]
    fn any_settings_body_gets_a_deliberate_answer(body in prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        "\\{(\"(fps|quality|max_width|monitor|paused|show_pointer|max_viewers|x)\":(-?[0-9]{1,25}(\\.[0-9]+)?(e[0-9]{1,4})?|true|null|\"[a-z0-9]{0,5}\"|\\[|\\{),?){0,4}\\}"
            .prop_map(String::into_bytes),
    ]) {
        let fx = fixture();
        let request = Request::builder()
            .method(Method::PATCH)
            .uri(format!("{}settings", fx.control))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.clone()));
        if let Some((status, reply)) = send(request) {
            assert_deliberate(status, &[200, 400, 422], &String::from_utf8_lossy(&body));
            if status == StatusCode::OK {
                // Whatever was accepted is in range: the share still validates.
                let settings: Settings = serde_json::from_slice(&reply).expect("settings");
                prop_assert!(settings.validate().is_ok());
                // Put the frame rate back up, so later cases stay quick.
                let reset = Request::builder()
                    .method(Method::PATCH)
                    .uri(format!("{}settings", fx.control))
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(r#"{"fps":30,"paused":false,"monitor":null,"max_viewers":50}"#));
                let reset = send(reset).map(|(status, _)| status);
                prop_assert_eq!(reset, Some(StatusCode::OK));
            }
        }
    }
}

#[test]
fn the_shared_fixture_serves_frames() {
    let fx = fixture();
    let uri = format!("{}screen.png", fx.viewer);
    let (status, body) = send(Request::get(&uri).body(Body::empty())).expect("a request");
    assert_eq!(status, StatusCode::OK);
    assert!(body.starts_with(b"\x89PNG"));
}
