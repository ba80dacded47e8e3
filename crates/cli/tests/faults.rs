//! Faults the presenter did not cause and must not be stuck with: the X server dying and coming
//! back, the X server hanging while the share stops, and the service manager's SIGTERM.

use std::process::Command;
use std::time::{Duration, Instant};

use screenshare_testkit::{Served, Xvfb, eventually, rgb};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_screenshare");

async fn control_status(served: &Served) -> Option<Value> {
    let url = served.control_url.replace("/settings", "/status");
    reqwest::get(&url).await.ok()?.json().await.ok()
}

/// The centre pixel of the classic frame, when one is served.
async fn centre_colour(served: &Served) -> Option<[u8; 3]> {
    let response = reqwest::get(served.viewer("screen.png")).await.ok()?;
    if response.status() != 200 {
        return None;
    }
    let image = image::load_from_memory(&response.bytes().await.ok()?)
        .ok()?
        .to_rgb8();
    Some(image.get_pixel(image.width() / 2, image.height() / 2).0)
}

#[tokio::test]
async fn share_recovers_by_itself_when_the_x_server_restarts() -> anyhow::Result<()> {
    let mut xvfb = Xvfb::start_restartable()?;
    xvfb.paint("#3050a0")?;
    let served = Served::start(BIN, &xvfb, &["--fps", "10"])?;
    let before = rgb("#3050a0")?;
    eventually(Duration::from_secs(10), "the first frame", || async {
        (centre_colour(&served).await == Some(before)).then_some(())
    })
    .await?;

    xvfb.crash_and_restart()?;
    // Someone keeps watching, as the page would, so capture keeps trying.
    let lost = eventually(
        Duration::from_secs(10),
        "the share to report the loss",
        || async {
            let _ = centre_colour(&served).await;
            let status = control_status(&served).await?;
            (status["state"] == "source_lost").then_some(status)
        },
    )
    .await;
    // A restart can be quick enough that the loss is over before a status is read: either way
    // the share must come back on the new server.
    if let Ok(lost) = &lost {
        assert!(lost["error"].is_string(), "{lost}");
    }
    xvfb.paint("#a05030")?;
    let after = rgb("#a05030")?;
    let started = Instant::now();
    eventually(
        Duration::from_secs(15),
        "the new server's screen",
        || async { (centre_colour(&served).await == Some(after)).then_some(()) },
    )
    .await?;
    let status = control_status(&served).await.expect("status");
    assert_eq!(status["state"], "live", "{status}");
    eprintln!("recovered {:?} after the restart", started.elapsed());
    Ok(())
}

#[tokio::test]
async fn sigterm_stops_the_share_within_3s_even_with_the_x_server_hung() -> anyhow::Result<()> {
    let xvfb = Xvfb::start()?;
    xvfb.paint("#208040")?;
    let mut served = Served::start(BIN, &xvfb, &["--fps", "20"])?;
    let viewer = served.viewer("updates?after=0");
    reqwest::get(&viewer).await?.error_for_status()?;
    // A viewer keeps capture busy, so the capture thread is inside a grab when the server hangs.
    let watcher = tokio::spawn({
        let url = served.viewer("screen.png");
        async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .expect("client");
            loop {
                let _ = client.get(&url).send().await;
            }
        }
    });
    let grabs_before = control_status(&served).await.expect("status")["grabs"]
        .as_u64()
        .unwrap_or(0);
    eventually(Duration::from_secs(5), "capture to be grabbing", || async {
        let grabs = control_status(&served).await?["grabs"].as_u64()?;
        (grabs > grabs_before + 3).then_some(())
    })
    .await?;
    xvfb.freeze()?;
    // At 20 fps, a count that stands still for half a second means the grab is stuck in X.
    let last = std::rc::Rc::new(std::cell::Cell::new((0, Instant::now())));
    eventually(
        Duration::from_secs(10),
        "capture to hang on the frozen server",
        || {
            let served = &served;
            let last = last.clone();
            async move {
                let grabs = control_status(served).await?["grabs"].as_u64()?;
                if grabs != last.get().0 {
                    last.set((grabs, Instant::now()));
                }
                (last.get().1.elapsed() > Duration::from_millis(500)).then_some(())
            }
        },
    )
    .await?;
    let stopping = Instant::now();
    let sent = Command::new("kill")
        .args(["-TERM", &served.pid().to_string()])
        .status()?;
    assert!(sent.success());
    let exit = eventually(Duration::from_secs(10), "screenshare to exit", || {
        let exited = served.try_wait();
        async move { exited }
    })
    .await;
    let took = stopping.elapsed();
    xvfb.thaw()?;
    watcher.abort();
    let exit = exit?;
    assert!(exit.success(), "{exit:?}; stderr:\n{}", served.stderr());
    assert!(
        took < Duration::from_secs(3),
        "stopping took {took:?} with the X server hung"
    );
    let log = served.stderr();
    assert!(
        log.contains("capture is stuck"),
        "the grab really hung: {log}"
    );
    assert!(log.contains("share stopped"), "a clean stop: {log}");
    Ok(())
}
