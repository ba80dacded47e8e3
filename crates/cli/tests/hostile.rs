//! The real server on a real X server, fed what a hostile client on the network would send, byte
//! for byte. Every case has the one status it must get; afterwards the server is still alive and a
//! real viewer still gets the screen.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use screenshare_core::frame::wire;
use screenshare_testkit::pushed::PushedStream;
use screenshare_testkit::raw::{self, Answer, exchange, trickle};
use screenshare_testkit::{Running, Served, Xvfb};

const BIN: &str = env!("CARGO_BIN_EXE_screenshare");
/// The header timeout the server under test runs with, short so the slow cases are quick.
const HEADER_TIMEOUT: Duration = Duration::from_secs(2);

struct Target {
    server: SocketAddr,
    host: String,
    token: String,
    secret: String,
}

impl Target {
    fn of(served: &Served) -> Self {
        let authority = served
            .viewer_url()
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let after = |url: &str, marker: &str| {
            url.split(marker)
                .nth(1)
                .and_then(|rest| rest.split('/').next())
                .unwrap_or_default()
                .to_owned()
        };
        Self {
            server: authority.parse().expect("an address:port"),
            host: authority,
            token: after(served.viewer_url(), "/s/"),
            secret: after(&served.control_url, "/control/"),
        }
    }

    fn viewer(&self, rest: &str) -> String {
        format!("/s/{}/{rest}", self.token)
    }

    fn control(&self, rest: &str) -> String {
        format!("/control/{}/{rest}", self.secret)
    }

    /// A GET of `target` with the right `Host` and `extra` header lines.
    fn get(&self, target: &str, extra: &str) -> Vec<u8> {
        format!(
            "GET {target} HTTP/1.1\r\nHost: {}\r\n{extra}Connection: close\r\n\r\n",
            self.host
        )
        .into_bytes()
    }

    fn request(&self, method: &str, target: &str, extra: &str, body: &[u8]) -> Vec<u8> {
        let mut bytes = format!(
            "{method} {target} HTTP/1.1\r\nHost: {}\r\n{extra}Content-Length: {}\r\n\
             Connection: close\r\n\r\n",
            self.host,
            body.len()
        )
        .into_bytes();
        bytes.extend_from_slice(body);
        bytes
    }

    /// Asking to join with `pin`.
    fn join(&self, pin: &str) -> Vec<u8> {
        self.request(
            "POST",
            &self.viewer("join"),
            JSON,
            format!(r#"{{"pin":"{pin}"}}"#).as_bytes(),
        )
    }

    fn patch(&self, extra: &str, body: &[u8]) -> Vec<u8> {
        self.request("PATCH", &self.control("settings"), extra, body)
    }
}

const JSON: &str = "Content-Type: application/json\r\n";

struct Case {
    name: String,
    request: Vec<u8>,
    expect: Answer,
}

fn case(name: impl Into<String>, request: Vec<u8>, expect: u16) -> Case {
    Case {
        name: name.into(),
        request,
        expect: Answer::Status(expect),
    }
}

fn cases(t: &Target) -> Vec<Case> {
    let updates = |query: &str| t.get(&t.viewer(&format!("updates?{query}")), "");
    let mut cases =
        vec![
        case("the page", t.get(&t.viewer(""), ""), 200),
        case("a classic frame", t.get(&t.viewer("screen.png?random=0.5"), ""), 200),
        // Host: the DNS-rebinding defence.
        case(
            "Host attacker.example",
            format!(
                "GET {} HTTP/1.1\r\nHost: attacker.example:{}\r\nConnection: close\r\n\r\n",
                t.viewer(""),
                t.server.port()
            )
            .into_bytes(),
            421,
        ),
        case(
            "no Host",
            format!("GET {} HTTP/1.1\r\nConnection: close\r\n\r\n", t.viewer("")).into_bytes(),
            400,
        ),
        case(
            "Host with another port (a relay's)",
            format!(
                "GET {} HTTP/1.1\r\nHost: 127.0.0.1:1\r\nConnection: close\r\n\r\n",
                t.viewer("")
            )
            .into_bytes(),
            200,
        ),
        case(
            "Host localhost",
            format!(
                "GET {} HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\n\r\n",
                t.viewer(""),
                t.server.port()
            )
            .into_bytes(),
            200,
        ),
        case(
            "Host not a host name",
            format!(
                "GET {} HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n",
                t.viewer("")
            )
            .into_bytes(),
            400,
        ),
        case(
            "absolute-form naming another host",
            format!(
                "GET http://attacker.example{} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                t.viewer(""),
                t.host
            )
            .into_bytes(),
            421,
        ),
        // The update query.
        case("after=0", updates("after=0"), 200),
        case("after= (empty)", updates("after="), 400),
        case("after=-1", updates("after=-1"), 400),
        case("after=+5", updates("after=+5"), 400),
        case("after=2^64", updates("after=18446744073709551616"), 400),
        case("after=%FF", updates("after=%FF"), 400),
        case("after repeated", updates("after=1&after=2"), 400),
        case("after=1e3", updates("after=1e3"), 400),
        case("mode unknown", updates("mode=bogus"), 400),
        case("v of 65 characters", updates(&format!("v={}", "a".repeat(65))), 200),
        case("v=<script>", updates("v=%3Cscript%3E"), 200),
        case("v=%00", updates("v=%00"), 200),
        case("unknown keys ignored", updates("random=7&x=y"), 200),
        case("pointer shape not a number", t.get(&t.viewer("pointer.png?shape=x"), ""), 400),
        case("pointer shape unknown", t.get(&t.viewer("pointer.png?shape=7"), ""), 404),
        // Sizes.
        case(
            "a 10 KB query",
            updates(&format!("after=0&pad={}", "a".repeat(10_000))),
            414,
        ),
        case(
            "a 60 KB query of 9,000 keys",
            updates(&(0..9_000).map(|k| format!("k{k}=1")).collect::<Vec<_>>().join("&")),
            431,
        ),
        case(
            "a 70 KB URI",
            t.get(&format!("/{}", "a".repeat(70_000)), ""),
            431,
        ),
        case(
            "101 headers",
            t.get(
                &t.viewer(""),
                &(0..101).map(|n| format!("X-Pad-{n}: 1\r\n")).collect::<String>(),
            ),
            431,
        ),
        case(
            "one 200 KB header",
            t.get(&t.viewer(""), &format!("X-Big: {}\r\n", "a".repeat(200_000))),
            431,
        ),
        // Token paths.
        case("token %FF%FE", t.get("/s/%FF%FE/", ""), 404),
        case(
            "token upper-case",
            t.get(&format!("/s/{}/", t.token.to_uppercase()), ""),
            404,
        ),
        case("token of 31", t.get(&format!("/s/{}/", &t.token[..31]), ""), 404),
        case("token of 33", t.get(&format!("/s/{}0/", t.token), ""), 404),
        case("token %20", t.get(&format!("/s/{}%20/", t.token), ""), 404),
        case("token %2F", t.get(&format!("/s/{}%2F/", t.token), ""), 404),
        case(
            "control secret as token",
            t.get(&format!("/s/{}/", t.secret), ""),
            404,
        ),
        case(
            "token as control secret",
            t.get(&format!("/control/{}/status", t.token), ""),
            404,
        ),
        // Settings changes.
        case("PATCH fps", t.patch(JSON, br#"{"fps":12}"#), 200),
        case("PATCH text/plain", t.patch("Content-Type: text/plain\r\n", br#"{"fps":12}"#), 415),
        case("PATCH no content type", t.patch("", br#"{"fps":12}"#), 415),
        case(
            "PATCH from another site",
            t.patch(
                &format!("{JSON}Origin: http://attacker.example\r\n"),
                br#"{"fps":12}"#,
            ),
            403,
        ),
        case("PATCH 10,000 [", t.patch(JSON, &[b'['; 10_000]), 400),
        case("PATCH 200,000 [", t.patch(JSON, &[b'['; 200_000]), 413),
        case("PATCH a 3 MB body", t.patch(JSON, &vec![b' '; 3_000_000]), 413),
        case("PATCH fps 1e400", t.patch(JSON, br#"{"fps":1e400}"#), 400),
        case("PATCH fps 0", t.patch(JSON, br#"{"fps":0}"#), 422),
        case("PATCH monitor -1", t.patch(JSON, br#"{"monitor":-1}"#), 422),
        case(
            "PATCH a 1 MB monitor name",
            t.patch(JSON, format!(r#"{{"monitor":"{}"}}"#, "a".repeat(1_000_000)).as_bytes()),
            413,
        ),
        case("PATCH duplicate keys", t.patch(JSON, br#"{"fps":5,"fps":6}"#), 422),
        case("PATCH unknown key", t.patch(JSON, br#"{"fsp":5}"#), 422),
        case("PATCH not JSON", t.patch(JSON, b"fps=5"), 400),
        case("PATCH max_viewers 0", t.patch(JSON, br#"{"max_viewers":0}"#), 422),
    ];
    cases.push(case("GET join", t.get(&t.viewer("join"), ""), 405));
    cases.push(case(
        "POST access",
        t.request("POST", &t.viewer("access"), JSON, b""),
        405,
    ));
    cases.push(case(
        "join with an unknown field",
        t.request("POST", &t.viewer("join"), JSON, br#"{"pin":"1","x":1}"#),
        400,
    ));
    // A reverse proxy on this machine connects from loopback for clients anywhere: control
    // refuses what a proxy says it passed on.
    for header in [
        "X-Forwarded-For: 192.168.1.20\r\n",
        "Forwarded: for=192.168.1.20\r\n",
        "X-Real-IP: 192.168.1.20\r\n",
    ] {
        cases.push(case(
            format!("control status through a proxy ({})", header.trim_end()),
            t.get(&t.control("status"), header),
            403,
        ));
    }
    cases.push(case(
        "control status from this machine",
        t.get(&t.control("status"), ""),
        200,
    ));
    cases.push(case(
        "admit nobody",
        t.request("POST", &t.control("viewers/id:00000000/admit"), JSON, b""),
        404,
    ));
    let routes = [
        t.viewer(""),
        t.viewer("screen.png"),
        t.viewer("screen.jpg"),
        t.viewer("updates"),
        t.viewer("pointer.png"),
        t.viewer("status"),
        t.viewer("viewer.js"),
        t.viewer("lookback.js"),
        t.control("settings"),
        t.control("status"),
        t.control("viewers"),
        t.control("monitors"),
    ];
    for route in &routes {
        for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
            let redacted = route
                .replace(&t.token, "<token>")
                .replace(&t.secret, "<secret>");
            cases.push(case(
                format!("{method} {redacted}"),
                t.request(method, route, JSON, b"{}"),
                405,
            ));
        }
    }
    cases
}

#[test]
fn every_bad_request_gets_its_status_and_the_viewer_is_still_served() {
    let xvfb = Xvfb::start().expect("Xvfb (run `cargo xtask test` to install it)");
    xvfb.paint("#2060a0").expect("paint");
    let header_timeout = HEADER_TIMEOUT.as_secs().to_string();
    // Every log target at every level: no secret may reach any of them.
    let served = Served::start_with_env(
        BIN,
        &xvfb,
        &["--header-timeout", &header_timeout],
        &[("RUST_LOG", "trace")],
    )
    .expect("serve");
    let target = Target::of(&served);
    let cases = cases(&target);
    assert!(cases.len() >= 60, "{} cases", cases.len());
    eprintln!("{} bad requests", cases.len());
    let mut wrong = Vec::new();
    for case in &cases {
        match exchange(target.server, &case.request, Duration::from_secs(15)) {
            Ok(answer) if answer == case.expect => {}
            got => wrong.push(format!(
                "{}: want {:?}, got {got:?}",
                case.name, case.expect
            )),
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases wrong:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );

    // Slow and idle sockets are closed once the header timeout runs out, answered or not.
    let idle = trickle(
        target.server,
        b"",
        Duration::from_millis(200),
        Duration::from_secs(10),
    )
    .expect("an idle connection is closed");
    let slow = trickle(
        target.server,
        &target.get(&target.viewer(""), ""),
        Duration::from_millis(500),
        Duration::from_secs(10),
    )
    .expect("a trickling request is closed");
    for (what, held) in [("idle", idle), ("slow", slow)] {
        assert!(
            held >= HEADER_TIMEOUT - Duration::from_millis(200) && held < HEADER_TIMEOUT * 3,
            "{what} connection held {held:?}; header timeout {HEADER_TIMEOUT:?}"
        );
    }

    // Still alive, still serving: a real update of the real screen.
    let update = reqwest::blocking_get(&served.viewer("updates?after=0&mode=lossless"));
    let update = wire::parse(&update).expect("a whole-screen update");
    assert!(update.header.full);
    assert!(!update.pieces.is_empty());
    let log = served.stderr();
    assert!(!log.contains("panicked"), "{log}");
    assert!(
        !log.contains(&target.token) && !log.contains(&target.secret),
        "a secret reached the log"
    );
}

/// A share of a 4K screen of noise (`args` added), and its whole frame, encoded once (so later
/// clients are not charged for it) by a request that also makes this address a viewer.
fn noise_share(args: &[&str]) -> (Xvfb, Served, Target, Vec<u8>) {
    let xvfb = Xvfb::start_sized(3840, 2160).expect("Xvfb");
    xvfb.noise().expect("noise");
    let served = Served::start(BIN, &xvfb, args).expect("serve");
    let target = Target::of(&served);
    let whole = reqwest::blocking_get(&served.viewer("screen.png"));
    assert!(
        whole.len() > 8_000_000,
        "a 4K frame of noise: {} bytes",
        whole.len()
    );
    (xvfb, served, target, whole)
}

/// A client on a slow link asking for the whole frame from 127.0.0.1: a 4 KiB receive buffer,
/// and only the head of the answer read. Returns the socket and how many bytes that read took.
fn slow_frame_request(target: &Target) -> (std::net::TcpStream, usize) {
    let (slow, status, got) = unread_frame_request(1, target);
    assert_eq!(status, 200);
    (slow, got)
}

/// A 4K frame asked for from 127.0.0.`last` by a client that reads only the answer's head
/// (through a 4 KiB receive buffer) and nothing more. Returns the socket, the status and how
/// many bytes that read took.
fn unread_frame_request(last: u8, target: &Target) -> (std::net::TcpStream, u16, usize) {
    use std::io::{Read, Write};
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket
        .set_recv_buffer_size(4096)
        .expect("small receive buffer");
    let source = std::net::SocketAddr::from(([127, 0, 0, last], 0));
    socket.bind(&source.into()).expect("bind");
    socket.connect(&target.server.into()).expect("connect");
    let mut client: std::net::TcpStream = socket.into();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    client
        .write_all(&target.get(&target.viewer("screen.png"), ""))
        .expect("request");
    let mut head = [0u8; 512];
    let got = client.read(&mut head).expect("the answer starts");
    let status = String::from_utf8_lossy(&head[..got])
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (client, status, got)
}

/// Clients on two machines ask for 4K frames and never read them: each machine gets a few
/// answers under way (an eighth of the bytes budget at most), the rest are refused at once
/// (before, every one was answered and held its frame and socket buffer), and a viewer on
/// another machine is served.
#[test]
fn frame_requests_nobody_reads_hold_a_few_places_and_others_are_served() {
    let (_xvfb, _served, target, whole) = noise_share(&["--write-stall-timeout", "60"]);
    let mut held = Vec::new();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for last in [10u8, 11] {
        for _ in 0..24 {
            let (client, status, _) = unread_frame_request(last, &target);
            *statuses.entry(status).or_default() += 1;
            held.push(client);
        }
    }
    let answered = statuses.get(&200).copied().unwrap_or(0);
    assert!(
        (2..=8).contains(&answered),
        "frames under way for two machines that do not read: {statuses:?}"
    );
    assert!(
        statuses
            .keys()
            .all(|status| matches!(status, 200 | 429 | 503)),
        "refused as busy, nothing else: {statuses:?}"
    );
    let (status, length, _) = answer_from(
        20,
        target.server,
        &target.get(&target.viewer("screen.png"), ""),
        "content-length",
    );
    assert_eq!(status, 200, "a viewer elsewhere is served");
    assert_eq!(length, whole.len().to_string(), "the whole frame");
    drop(held);
}

/// Streams asked from an old frame of a 4K screen of noise, and never read: each would hold a
/// catch-up of the whole screen, made for it alone, until the stall guard dropped it (before,
/// all six stayed open). One address now holds one such catch-up; the server ends the rest.
#[test]
fn streams_nobody_reads_hold_one_catch_up_per_address() {
    use screenshare_testkit::raw::open_files;
    let (xvfb, served, target, _) = noise_share(&["--write-stall-timeout", "60"]);
    let frame_after = |after: &str| -> u64 {
        let (status, seq, _) = answer_of(
            target.server,
            &target.get(&target.viewer(&format!("screen.png?after={after}")), ""),
            "x-frame-seq",
        );
        assert_eq!(status, 200, "a new frame after {after}");
        seq.parse().expect("a frame number")
    };
    let first = frame_after("0");
    // Black, then the noise again: every tile changed since the first frame.
    xvfb.paint("#000000").expect("paint");
    let second = frame_after(&first.to_string());
    xvfb.noise().expect("noise");
    frame_after(&second.to_string());
    let files_before = open_files(served.pid()).expect("fds");
    let mut streams = Vec::new();
    for _ in 0..6 {
        let mut stream =
            screenshare_testkit::raw::connect_from([127, 0, 0, 10].into(), target.server)
                .expect("connect");
        std::io::Write::write_all(
            &mut stream,
            &target.get(
                &target.viewer(&format!("stream?after={first}&mode=lossless")),
                "",
            ),
        )
        .expect("request");
        streams.push(stream);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while open_files(served.pid()).expect("fds") > files_before + 1 {
        assert!(
            Instant::now() < deadline,
            "{} streams still held",
            open_files(served.pid()).expect("fds") - files_before
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(streams);
}

#[test]
fn a_client_that_stops_reading_a_4k_frame_is_dropped() {
    use screenshare_testkit::raw::{open_files, resident_kib};
    use std::io::Read;
    let (_xvfb, served, target, whole) = noise_share(&["--write-stall-timeout", "2"]);
    let files_before = open_files(served.pid()).expect("fds");
    let memory_before = resident_kib(served.pid()).expect("rss");
    let (mut stalled, got) = slow_frame_request(&target);
    // ...and then this client reads nothing more. The server must give up on it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while open_files(served.pid()).expect("fds") > files_before {
        assert!(
            Instant::now() < deadline,
            "the stalled connection was never dropped"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // What reached this client's buffers is all it gets: far less than the frame.
    stalled
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut rest = Vec::new();
    let _ = stalled.read_to_end(&mut rest);
    assert!(
        rest.len() + got < whole.len(),
        "got {} of {} bytes: the connection was dropped, not finished",
        rest.len() + got,
        whole.len()
    );
    let memory_after = resident_kib(served.pid()).expect("rss");
    assert!(
        memory_after <= memory_before + 8 * 1024,
        "memory {memory_before} KiB before, {memory_after} KiB after the stalled client"
    );
    assert!(
        served.stderr().contains("stopped reading"),
        "{}",
        served.stderr()
    );
}

#[test]
fn a_viewer_removed_mid_frame_gets_no_more_of_it() {
    use std::io::Read;
    let (_xvfb, served, target, whole) = noise_share(&[]);
    // A viewer on a slow link: it has the head of the frame; the rest comes as it reads.
    let (mut slow, got) = slow_frame_request(&target);

    // The presenter removes it while the frame is on its way.
    remove_the_viewer(&served, &target);

    // It reads on as fast as it can: the connection ends long before the frame does.
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    let received = got + rest.len();
    eprintln!(
        "a viewer removed mid-frame got {received} of {} bytes",
        whole.len()
    );
    assert!(
        received < whole.len() / 2,
        "a removed viewer still got {received} of {} bytes",
        whole.len()
    );
}

#[test]
fn an_open_stream_ends_when_its_viewer_is_removed() {
    use std::io::{Read, Write};
    let (xvfb, served, target) = shared_at_30_fps("#304050");
    // A screen that keeps changing: an open stream never ends by itself.
    let _flicker = Running(
        xvfb.command("sh")
            .args([
                "-c",
                "while :; do xsetroot -solid '#304050'; xsetroot -solid '#405060'; done",
            ])
            .spawn()
            .expect("flicker"),
    );
    let mut stream = std::net::TcpStream::connect(target.server).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream
        .write_all(&target.get(&target.viewer("stream?after=0"), ""))
        .expect("request");
    // The head and the first records: the stream is open and pushing.
    let mut first = vec![0; 4096];
    let got = stream.read(&mut first).expect("the stream's first bytes");
    let head = String::from_utf8_lossy(&first[..got]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");

    remove_the_viewer(&served, &target);
    // The stream ends (its end, or a reset), where one still pushing goes on past the deadline.
    stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut after_removal = 0;
    let ended = loop {
        match stream.read(&mut first) {
            Ok(0) => break true,
            Ok(read) => after_removal += read,
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break true,
        }
        if std::time::Instant::now() > deadline {
            break false;
        }
    };
    assert!(
        ended,
        "the stream went on for 10 s after its viewer was removed ({after_removal} bytes)"
    );
}

/// The stream tells the page where the share stands as it opens and whenever that changes (a
/// pause, another frame rate), so the page need not ask for `status` while it reads it.
#[test]
fn an_open_stream_tells_the_page_when_the_share_changes() {
    let (xvfb, served, target) = shared_at_30_fps("#304050");
    let mut stream = PushedStream::open(&target.host, &target.viewer("stream?after=0"), "")
        .expect("the stream opens");
    let patience = || Instant::now() + Duration::from_secs(20);
    let first = stream
        .next_status(patience())
        .expect("the stream")
        .expect("a status record first");
    assert_eq!(first["fps"], 30, "{first}");
    assert_eq!(first["paused"], false, "{first}");
    assert_eq!(first["history"], true, "{first}");
    // Exactly what `status` answers, no more (no control secrets on the viewer's side).
    let polled: serde_json::Value =
        serde_json::from_slice(&reqwest::blocking_get(&served.viewer("status")))
            .expect("status JSON");
    let keys = |value: &serde_json::Value| -> Vec<String> {
        value
            .as_object()
            .map(|object| object.keys().cloned().collect())
            .unwrap_or_default()
    };
    assert_eq!(keys(&first), keys(&polled));

    for (change, key, expected) in [
        (
            &br#"{"paused":true}"#[..],
            "paused",
            serde_json::json!(true),
        ),
        (&br#"{"fps":12}"#[..], "fps", serde_json::json!(12)),
        (
            &br#"{"paused":false}"#[..],
            "paused",
            serde_json::json!(false),
        ),
    ] {
        let (status, _, body) = answer_of(target.server, &target.patch(JSON, change), "");
        assert_eq!(status, 200, "{body}");
        // The next status record says so (one may say an earlier state of the capture first).
        let deadline = patience();
        loop {
            let told = stream
                .next_status(deadline)
                .expect("the stream")
                .unwrap_or_else(|| panic!("no status record said {key} = {expected}"));
            if told[key] == expected {
                break;
            }
        }
    }
    // Updates still come between them.
    xvfb.paint("#a0b0c0").expect("paint");
    let update = stream
        .next_update(patience())
        .expect("the stream")
        .expect("an update after the changes");
    wire::parse(&update).expect("an update");
}

/// A viewer whose network pauses: while it reads nothing for ten seconds of a screen that
/// changes all the time, the server lines nothing up for it (its memory stays flat), and once it
/// reads again it gets one catch-up to the newest picture, not the backlog.
#[test]
fn a_stream_reader_that_pauses_is_not_queued_for_and_catches_up() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let (xvfb, served, target) = shared_at_30_fps("#000000");
    let status_url = served.control_url.replace("/settings", "/status");
    let published = || -> u64 {
        let status: serde_json::Value =
            serde_json::from_slice(&reqwest::blocking_get(&status_url)).expect("status JSON");
        status["frame"].as_u64().expect("a frame number")
    };
    let changing = AtomicBool::new(true);
    std::thread::scope(|scope| {
        // Noise, then a plain colour, again and again: every update is all of the screen, and
        // every other one is large (about a megabyte).
        let painter = scope.spawn(|| {
            while changing.load(Ordering::SeqCst) {
                xvfb.noise().expect("noise");
                xvfb.paint("#203040").expect("paint");
            }
        });
        let mut stream = PushedStream::open(&target.host, &target.viewer("stream?after=0"), "")
            .expect("the stream opens");
        let patience = Duration::from_secs(20);
        // Reading: updates come, the large ones among them.
        let mut largest = 0;
        for _ in 0..12 {
            let update = stream
                .next_update(Instant::now() + patience)
                .expect("the stream")
                .expect("an update while reading");
            largest = largest.max(update.len());
        }
        let (memory_before, published_before) = (
            raw::resident_kib(served.pid()).expect("memory"),
            published(),
        );
        // Reads nothing for ten seconds (the point of the test, not a wait for something).
        std::thread::sleep(Duration::from_secs(10));
        let (memory_after, published_after) = (
            raw::resident_kib(served.pid()).expect("memory"),
            published(),
        );
        changing.store(false, Ordering::SeqCst);
        painter.join().expect("painter");
        xvfb.paint("#a0b0c0").expect("paint");
        let missed = published_after - published_before;
        let grown_kib = memory_after.saturating_sub(memory_before);
        eprintln!(
            "while the reader paused: {missed} frames published (updates up to {largest} bytes), \
             server memory {memory_before} -> {memory_after} KiB"
        );
        assert!(
            missed >= 20,
            "the screen changed only {missed} times: too few to tell"
        );
        // Lined up for it, those frames would be tens of megabytes.
        let backlog_kib = missed * largest as u64 / 2 / 1024;
        assert!(
            grown_kib < backlog_kib / 4,
            "the server grew {grown_kib} KiB while a reader paused ({backlog_kib} KiB of updates went by)"
        );
        // Reads again: what the two kernels' socket buffers took in before they filled (TCP's,
        // not the server's, a few megabytes), then one catch-up to the newest picture.
        let resumed_at = stream.wire_bytes();
        let mut taken = 0;
        let newest = loop {
            let update = stream
                .next_update(Instant::now() + patience)
                .expect("the stream")
                .expect("updates after the pause");
            taken += 1;
            let update = wire::parse(&update).expect("an update");
            let last_colour = !update.pieces.is_empty()
                && update
                    .pieces
                    .iter()
                    .all(|piece| matches!(piece.body, wire::PieceBody::Solid([0xa0, 0xb0, 0xc0])));
            if last_colour {
                break update.header.seq;
            }
        };
        let caught_up_kib = (stream.wire_bytes() - resumed_at) / 1024;
        eprintln!(
            "caught up in {taken} updates, {caught_up_kib} KiB, after {missed} frames went by \
             ({backlog_kib} KiB)"
        );
        assert!(
            caught_up_kib < backlog_kib / 4,
            "{caught_up_kib} KiB to catch up: a backlog was queued"
        );
        assert_eq!(newest, published(), "the newest picture");
    });
}

/// A screen of `colour` shared at 30 fps, and how to reach it.
fn shared_at_30_fps(colour: &str) -> (Xvfb, Served, Target) {
    let xvfb = Xvfb::start().expect("Xvfb");
    xvfb.paint(colour).expect("paint");
    let served = Served::start(BIN, &xvfb, &["--fps", "30"]).expect("serve");
    let target = Target::of(&served);
    (xvfb, served, target)
}

/// The presenter removes the share's one viewer (this test's address).
fn remove_the_viewer(served: &Served, target: &Target) {
    let viewers_url = served.control_url.replace("/settings", "/viewers");
    let viewers: serde_json::Value =
        serde_json::from_slice(&reqwest::blocking_get(&viewers_url)).expect("the viewer list");
    let id = viewers[0]["id"]
        .as_str()
        .expect("one viewer, this address")
        .to_owned();
    let removal = answer_of(
        target.server,
        &target.request(
            "POST",
            &target.control(&format!("viewers/{id}/remove")),
            "",
            b"",
        ),
        "content-type",
    );
    assert!(matches!(removal.0, 200 | 204), "{removal:?}");
}

/// The answer to a raw request: its status, a header's value, and the body.
fn answer_of(server: SocketAddr, request: &[u8], header: &str) -> (u16, String, String) {
    answer_from(1, server, request, header)
}

/// [`answer_of`] from 127.0.0.`last`, as another machine on the network.
fn answer_from(
    last: u8,
    server: SocketAddr,
    request: &[u8],
    header: &str,
) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut stream =
        screenshare_testkit::raw::connect_from([127, 0, 0, last].into(), server).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream.write_all(request).expect("request");
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    // Frames are binary: only the head and a JSON body are read as text.
    let answer = String::from_utf8_lossy(&bytes);
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let value = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case(header)
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default();
    (status, value, body.to_owned())
}

/// With a PIN and approval both on, a viewer who typed the right PIN waits to be let in; when
/// the presenter turns approval off, the PIN alone decides, and that viewer is in (before, it
/// waited for ever).
#[test]
fn turning_approval_off_lets_in_those_who_typed_the_pin() {
    let xvfb = Xvfb::start().expect("Xvfb");
    xvfb.paint("#306080").expect("paint");
    let served =
        Served::start(BIN, &xvfb, &["--pin", "246813", "--require-approval"]).expect("serve");
    let t = Target::of(&served);
    let (status, cookie, body) = answer_of(t.server, &t.join("246813"), "set-cookie");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("waiting"), "{body}");
    let with_pass = format!(
        "Cookie: {}\r\n",
        cookie.split(';').next().unwrap_or_default()
    );
    let frame = || answer_of(t.server, &t.get(&t.viewer("screen.png"), &with_pass), "").0;
    assert_eq!(frame(), 403, "waiting for the presenter");

    let (status, _, body) = answer_of(
        t.server,
        &t.patch(JSON, br#"{"require_approval":false}"#),
        "",
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(frame(), 200, "let in once approval is off");
    // Nobody else gets in without the PIN.
    assert_ne!(
        answer_of(t.server, &t.get(&t.viewer("screen.png"), ""), "").0,
        200
    );
}

/// Guessing the PIN from many addresses used to empty the share's allowance of wrong tries for
/// everyone: then the right PIN from a new viewer got 429 too. Now an address that has not guessed
/// wrong is not held back by the others, while the guessers are, and the presenter is told.
#[test]
fn guessers_on_many_addresses_do_not_lock_out_a_viewer_with_the_pin() {
    use std::io::{Read, Write};
    let xvfb = Xvfb::start().expect("Xvfb");
    xvfb.paint("#405060").expect("paint");
    let served = Served::start(BIN, &xvfb, &["--pin", "246813"]).expect("serve");
    let t = Target::of(&served);
    let join = |pin: &str| t.join(pin);
    let from = |last: u8, request: &[u8]| -> String {
        let mut stream = screenshare_testkit::raw::connect_from([127, 0, 0, last].into(), t.server)
            .expect("connect");
        stream.write_all(request).expect("request");
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    };
    // One address guesses wrong once, before the others start.
    assert!(from(20, &join("000000")).starts_with("HTTP/1.1 403"));
    // Eight addresses guess until each is out of tries: 40 wrong PINs, twice what the share
    // allows in a minute.
    let mut held_back = 0;
    for last in 10..18 {
        for guess in 0..5 {
            let answer = from(
                last,
                &join(&format!("{:06}", 100_000 + u32::from(last) * 10 + guess)),
            );
            if answer.starts_with("HTTP/1.1 429") {
                held_back += 1;
            } else {
                assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
            }
        }
    }
    assert!(
        held_back > 0,
        "the share's allowance never ran out: too few guesses to tell"
    );
    // The address that guessed wrong once still has tries of its own, but waits for the share's.
    let again = from(20, &join("246813"));
    assert!(again.starts_with("HTTP/1.1 429"), "{again}");
    assert!(again.contains("on this share"), "{again}");
    // A new viewer with the PIN gets in.
    let answer = from(30, &join("246813"));
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "a viewer with the PIN: {answer}"
    );
    let status: serde_json::Value = serde_json::from_slice(&reqwest::blocking_get(
        &served.control_url.replace("/settings", "/status"),
    ))
    .expect("status");
    assert_eq!(status["pin_under_attack"], true, "{status}");
    assert!(status["wrong_pins"].as_u64().unwrap_or(0) >= 20, "{status}");
}

/// A flood of joins on a share with approval used to fill the waiting room (997 waiting passes
/// from 125 addresses in a review's run): a real viewer then got 503 "full" and the presenter's
/// list had a thousand rows. Now the waiting room keeps the pages that still ask, each address
/// may ask for only a few passes at once, and the real viewer waits its turn like anyone.
#[test]
fn a_flood_of_joins_leaves_room_to_wait_and_a_readable_list() {
    use std::io::{Read, Write};
    let xvfb = Xvfb::start().expect("Xvfb");
    xvfb.paint("#506070").expect("paint");
    let served = Served::start(BIN, &xvfb, &["--require-approval"]).expect("serve");
    let t = Target::of(&served);
    let join = t.request("POST", &t.viewer("join"), JSON, b"{}");
    let from = |source: [u8; 4]| -> String {
        let mut stream =
            screenshare_testkit::raw::connect_from(source.into(), t.server).expect("connect");
        stream.write_all(&join).expect("request");
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    };
    // 125 addresses, each asking for ten passes: the last two of each are refused.
    let mut statuses = std::collections::BTreeMap::<String, u32>::new();
    for host in 1..=125u8 {
        for _ in 0..10 {
            let answer = from([127, 0, 1, host]);
            let status = answer.get(9..12).unwrap_or("???").to_owned();
            *statuses.entry(status).or_default() += 1;
        }
    }
    eprintln!("the flood's answers: {statuses:?}");
    assert!(
        !statuses.contains_key("503"),
        "nobody is told the share is full: {statuses:?}"
    );
    assert!(
        statuses.get("200").copied().unwrap_or(0) >= 125 * 8 - 8,
        "{statuses:?}"
    );
    assert!(
        statuses.get("429").copied().unwrap_or(0) >= 125,
        "{statuses:?}"
    );
    // A real viewer joins and waits.
    let answer = from([127, 0, 2, 1]);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("waiting"), "{answer}");
    // The presenter's list is short enough to read, and the real viewer is on it.
    let viewers: serde_json::Value = serde_json::from_slice(&reqwest::blocking_get(
        &served.control_url.replace("/settings", "/viewers"),
    ))
    .expect("the viewer list");
    let rows = viewers.as_array().expect("a list");
    assert!(rows.len() <= 64, "{} rows", rows.len());
    assert!(
        rows.iter().any(|row| row["address"] == "127.0.2.1"),
        "the real viewer is listed: {viewers}"
    );
}

#[test]
fn wrong_pins_are_limited_and_a_pass_opens_only_its_own_share() {
    let xvfb = Xvfb::start().expect("Xvfb");
    xvfb.paint("#603080").expect("paint");
    let served = Served::start(BIN, &xvfb, &["--pin", "246813"]).expect("serve");
    let other_share = Served::start(BIN, &xvfb, &["--pin", "246813"]).expect("serve");
    let t = Target::of(&served);
    let join = |pin: &str| t.join(pin);
    for wrong in ["111111", "222222", "333333", "444444", "555555"] {
        let (status, _, body) = answer_of(t.server, &join(wrong), "set-cookie");
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("need_pin"), "{body}");
    }
    let (status, retry_after, _) = answer_of(t.server, &join("246813"), "retry-after");
    assert_eq!(status, 429, "locked out, even with the right PIN");
    assert!(
        retry_after
            .parse::<u64>()
            .is_ok_and(|seconds| seconds >= 25),
        "{retry_after}"
    );

    // Another address is not held up by this one's guesses.
    let mut stream = screenshare_testkit::raw::connect_from([127, 0, 0, 2].into(), t.server)
        .expect("connect from 127.0.0.2");
    {
        use std::io::{Read, Write};
        stream.write_all(&join("246813")).expect("request");
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        let cookie = answer
            .lines()
            .find_map(|line| line.strip_prefix("set-cookie: "))
            .expect("a pass cookie");
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
            "{cookie}"
        );
        assert!(
            cookie.contains(&format!("Path=/s/{}/", t.token)),
            "{cookie}"
        );
        let pass = cookie.split(';').next().unwrap_or_default().to_owned();
        let with_pass = format!("Cookie: {pass}\r\n");
        let frame = |target: &Target, extra: &str| {
            answer_of(
                target.server,
                &target.get(&target.viewer("screen.png"), extra),
                "",
            )
        };
        assert_eq!(
            answer_from(2, t.server, &t.get(&t.viewer("screen.png"), &with_pass), "").0,
            200,
            "the pass opens its share"
        );
        assert_eq!(frame(&t, "").0, 401, "nothing without it");
        let forged = "Cookie: screenshare_pass=00000000000000000000000000000000\r\n";
        assert_eq!(
            frame(&t, forged).0,
            401,
            "nor with a pass the share never gave"
        );
        let other = Target::of(&other_share);
        assert_eq!(
            answer_from(
                2,
                other.server,
                &other.get(&other.viewer("screen.png"), &with_pass),
                ""
            )
            .0,
            401,
            "another share does not know it"
        );
    }
    assert!(
        !served.stderr().contains("246813"),
        "the PIN never reaches the log"
    );
}

#[test]
fn ten_thousand_invented_viewer_ids_leave_the_list_short() {
    let xvfb = Xvfb::start().expect("Xvfb");
    xvfb.paint("#406020").expect("paint");
    let served = Served::start(BIN, &xvfb, &[]).expect("serve");
    let target = Target::of(&served);
    let started = Instant::now();
    // Keep-alive connections in parallel, each asking for the frame it already has (a cheap 304).
    let workers: Vec<_> = (0..4)
        .map(|worker| {
            let server = target.server;
            let host = target.host.clone();
            let path = target.viewer("screen.png");
            std::thread::spawn(move || fake_viewers(server, &host, &path, worker, 2_500))
        })
        .collect();
    for worker in workers {
        worker
            .join()
            .expect("worker")
            .expect("every request answered");
    }
    let viewers: serde_json::Value = serde_json::from_slice(&reqwest::blocking_get(
        &served.control_url.replace("/settings", "/viewers"),
    ))
    .expect("JSON");
    let listed = viewers.as_array().map_or(usize::MAX, Vec::len);
    assert!(
        (1..=9).contains(&listed),
        "10,000 ids from one address are at most 8 viewers and the address: {listed} listed \
         (after {:?})",
        started.elapsed()
    );
}

/// `count` requests, each naming a new viewer id, on one keep-alive connection.
fn fake_viewers(
    server: SocketAddr,
    host: &str,
    path: &str,
    worker: usize,
    count: usize,
) -> anyhow::Result<()> {
    use std::io::{BufRead, BufReader, Read, Write};
    let stream = std::net::TcpStream::connect(server)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    for n in 0..count {
        // One write per request: `write!` would send each piece in its own segment.
        let request = format!(
            "GET {path}?v=fake-{worker}-{n} HTTP/1.1\r\nHost: {host}\r\nIf-None-Match: *\r\n\r\n"
        );
        writer.write_all(request.as_bytes())?;
        let mut length = 0usize;
        let mut status = String::new();
        reader.read_line(&mut status)?;
        anyhow::ensure!(status.starts_with("HTTP/1.1 304"), "request {n}: {status}");
        loop {
            let mut line = String::new();
            reader.read_line(&mut line)?;
            if line == "\r\n" {
                break;
            }
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse()?;
            }
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body)?;
    }
    Ok(())
}

mod reqwest {
    /// A GET with a plain client, for the requests a well-behaved viewer makes.
    pub fn blocking_get(url: &str) -> Vec<u8> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let response = ::reqwest::get(url).await.expect("request");
            assert_eq!(response.status(), 200, "{url}");
            response.bytes().await.expect("body").to_vec()
        })
    }
}

/// An admitted pass copied to other machines used to get frames there too, all counted as one
/// viewer (so `max_viewers` let any number watch), and removing that viewer shut out only the
/// address its entry first saw. A pass now opens the share only from the address it was given
/// to, and removal shuts out every address it was used from.
#[test]
fn a_pass_opens_the_share_only_from_its_address_and_removal_shuts_that_address_out() {
    let xvfb = Xvfb::start().expect("Xvfb");
    xvfb.paint("#304050").expect("paint");
    let served = Served::start(BIN, &xvfb, &["--pin", "246813"]).expect("serve");
    let t = Target::of(&served);
    let (status, cookie, body) = answer_from(2, t.server, &t.join("246813"), "set-cookie");
    assert_eq!(status, 200, "{body}");
    let with_pass = format!(
        "Cookie: {}\r\n",
        cookie.split(';').next().unwrap_or_default()
    );
    let frame = |last: u8| {
        answer_from(
            last,
            t.server,
            &t.get(&t.viewer("screen.png"), &with_pass),
            "",
        )
        .0
    };
    assert_eq!(frame(2), 200, "where it was given");
    for last in [3, 4, 5] {
        assert_eq!(frame(last), 401, "the pass copied to 127.0.0.{last}");
    }
    let viewers_url = served.control_url.replace("/settings", "/viewers");
    let viewers: serde_json::Value =
        serde_json::from_slice(&reqwest::blocking_get(&viewers_url)).expect("the viewer list");
    assert_eq!(viewers.as_array().map(Vec::len), Some(1), "{viewers}");
    assert_eq!(viewers[0]["address"], "127.0.0.2", "{viewers}");

    remove_the_viewer(&served, &t);
    assert_eq!(frame(2), 403, "removed");
    let (status, _, body) = answer_from(2, t.server, &t.join("246813"), "");
    assert_eq!(status, 403, "the removed address cannot join again: {body}");
    assert!(body.contains("removed"), "{body}");
    let (status, _, body) = answer_from(6, t.server, &t.join("246813"), "");
    assert_eq!(
        status, 200,
        "another machine with the PIN still can: {body}"
    );
}

/// Connections held open without a request, from many addresses, used to fill the connection
/// cap and keep out a viewer who had the URL. At the cap the oldest of them now makes room, and
/// while the server is that busy a silent connection is closed after 2 s, not 10.
#[test]
fn idle_connections_from_many_addresses_cannot_keep_a_viewer_out() {
    use std::io::Read;
    let xvfb = Xvfb::start().expect("Xvfb");
    xvfb.paint("#506070").expect("paint");
    let served = Served::start(
        BIN,
        &xvfb,
        &[
            "--max-connections",
            "64",
            "--max-connections-per-address",
            "32",
        ],
    )
    .expect("serve");
    let t = Target::of(&served);
    let mut idle = Vec::new();
    for last in [10u8, 11] {
        for _ in 0..32 {
            idle.push(
                screenshare_testkit::raw::connect_from([127, 0, 0, last].into(), t.server)
                    .expect("connect"),
            );
        }
    }
    let opened = std::time::Instant::now();
    let (status, _, _) = answer_from(20, t.server, &t.get(&t.viewer("screen.png"), ""), "");
    assert_eq!(status, 200, "the viewer gets in at the cap");

    let closed_within = |socket: &mut std::net::TcpStream, wait: Duration| -> Option<Duration> {
        socket.set_read_timeout(Some(wait)).expect("timeout");
        let mut byte = [0u8; 1];
        match socket.read(&mut byte) {
            Ok(0) => Some(opened.elapsed()),
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {
                Some(opened.elapsed())
            }
            _ => None,
        }
    };
    let oldest = closed_within(&mut idle[0], Duration::from_secs(1));
    assert!(oldest.is_some(), "the oldest silent connection made room");
    let youngest = closed_within(&mut idle[63], Duration::from_secs(8))
        .expect("a silent connection is closed while the server is busy");
    assert!(
        youngest < Duration::from_secs(6),
        "closed after {youngest:?}: the busy timeout, not the usual 10 s"
    );
}
