//! `cargo xtask bench --only lookback`: what looking back costs a viewer's browser over a
//! changing share. Two shares of one 1280x720 screen, one with history and one without, each
//! watched by its own headless Chromium, for ten minutes while a new slide comes every two
//! seconds (every other one a screen of noise that no PNG can shrink, so the budget fills in
//! under a minute and is then held). Sampled every ten seconds: the page's own count of what it
//! keeps, and the memory (PSS) of each Chromium's whole process tree; their difference is what
//! the pictures cost.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use screenshare_testkit::Xvfb;

use crate::bench::{Server, launch};
use crate::peer::{Killed, WebDriver, browser_on};

/// What a page may keep by its own count (`BUDGET_BYTES` in the engine's `web/lookback.js`).
pub const PAGE_BUDGET_MB: f64 = 40.0;
/// What looking back may cost the viewer's browser in all.
pub const BROWSER_BUDGET_MB: f64 = 64.0;
const RUN: Duration = Duration::from_secs(10 * 60);
const SLIDE_EVERY: Duration = Duration::from_secs(2);
const SAMPLE_EVERY: Duration = Duration::from_secs(10);

pub struct LookbackBench {
    pub minutes: f64,
    pub slides: u64,
    /// The page's own count: pictures kept at the end and the most at once; bytes held at most.
    pub kept_end: u64,
    pub kept_max: u64,
    pub kept_mb_max: f64,
    /// Chromium's PSS, MB: with history (at the start, at most, at the end) and without.
    pub with_start: f64,
    pub with_max: f64,
    pub with_end: f64,
    pub without_start: f64,
    pub without_max: f64,
    pub without_end: f64,
    /// What history cost at the sample where it cost most (with minus without at one sample),
    /// and on average once the budget had filled (after the first two minutes), MB.
    pub cost_max: f64,
    pub cost_mean: f64,
}

impl LookbackBench {
    /// What history costs the browser at the end of the run, MB.
    pub fn cost_end(&self) -> f64 {
        self.with_end - self.without_end
    }
}

/// Samples before this are the budget filling up.
const FILLED_AFTER: Duration = Duration::from_secs(120);

pub fn lookback() -> anyhow::Result<LookbackBench> {
    lookback_for(RUN)
}

fn lookback_for(run: Duration) -> anyhow::Result<LookbackBench> {
    let xvfb = Arc::new(Xvfb::start_sized(1280, 720)?);
    xvfb.paint("#1f3b57")?;
    let keeping = serve(&xvfb, true)?;
    let forgetting = serve(&xvfb, false)?;
    let (keeping_driver, keeping_page) = browser_on(&keeping.viewer, "lookback-on")?;
    let (forgetting_driver, forgetting_page) = browser_on(&forgetting.viewer, "lookback-off")?;
    for page in [&keeping_page, &forgetting_page] {
        wait_live(page)?;
    }

    let running = Arc::new(AtomicBool::new(true));
    let slides = Arc::new(AtomicU64::new(0));
    let painter = {
        let (running, slides, screen) = (running.clone(), slides.clone(), xvfb.clone());
        std::thread::spawn(move || show_slides(&screen, &running, &slides))
    };
    let started = Instant::now();
    let mut bench = LookbackBench {
        minutes: 0.0,
        slides: 0,
        kept_end: 0,
        kept_max: 0,
        kept_mb_max: 0.0,
        with_start: pss_mb(&keeping_driver)?,
        with_max: 0.0,
        with_end: 0.0,
        without_start: pss_mb(&forgetting_driver)?,
        without_max: 0.0,
        without_end: 0.0,
        cost_max: f64::MIN,
        cost_mean: 0.0,
    };
    let mut late_costs = Vec::new();
    let sampled = (|| -> anyhow::Result<()> {
        while started.elapsed() < run {
            std::thread::sleep(SAMPLE_EVERY);
            let kept = page_number(&keeping_page, "kept")?;
            let bytes = page_number(&keeping_page, "keptBytes")?;
            if page_number(&forgetting_page, "kept")? != 0 {
                bail!("the page of the share without history kept a picture");
            }
            let (with, without) = (pss_mb(&keeping_driver)?, pss_mb(&forgetting_driver)?);
            eprintln!(
                "xtask: look-back at {:>3} s: {kept} pictures, {:.1} MB kept; Chromium {with:.0} MB with history, {without:.0} MB without",
                started.elapsed().as_secs(),
                bytes as f64 / 1_048_576.0,
            );
            bench.kept_end = kept;
            bench.kept_max = bench.kept_max.max(kept);
            bench.kept_mb_max = bench.kept_mb_max.max(bytes as f64 / 1_048_576.0);
            bench.with_end = with;
            bench.without_end = without;
            bench.with_max = bench.with_max.max(with);
            bench.without_max = bench.without_max.max(without);
            bench.cost_max = bench.cost_max.max(with - without);
            if started.elapsed() > FILLED_AFTER {
                late_costs.push(with - without);
            }
        }
        Ok(())
    })();
    running.store(false, Ordering::SeqCst);
    let painted = painter
        .join()
        .map_err(|_| anyhow::anyhow!("the slide painter panicked"))?;
    sampled?;
    painted?;
    bench.minutes = started.elapsed().as_secs_f64() / 60.0;
    bench.cost_mean = late_costs.iter().sum::<f64>() / late_costs.len().max(1) as f64;
    bench.slides = slides.load(Ordering::SeqCst);
    Ok(bench)
}

/// The release binary sharing `xvfb`, history on or off.
fn serve(xvfb: &Xvfb, history: bool) -> anyhow::Result<Server> {
    let mut command = Command::new(crate::target_dir()?.join("release/screenshare"));
    command
        .env("DISPLAY", xvfb.display())
        .env_remove("WAYLAND_DISPLAY");
    let server = launch(command)?;
    if !history {
        server.patch_settings(r#"{"history":false}"#)?;
    }
    Ok(server)
}

fn wait_live(page: &WebDriver) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while page.execute("return document.body.dataset.state")?.as_str() != Some("live") {
        if Instant::now() > deadline {
            bail!("the page never went live");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

fn page_number(page: &WebDriver, name: &str) -> anyhow::Result<u64> {
    let value = page.execute(&format!("return Number(document.body.dataset.{name} || 0)"))?;
    value
        .as_u64()
        .or_else(|| value.as_f64().map(|v| v as u64))
        .with_context(|| format!("the page's {name} is {value}"))
}

/// A slide every two seconds: noise, then a few boxes on a plain background, in turn.
fn show_slides(screen: &Xvfb, running: &AtomicBool, slides: &AtomicU64) -> anyhow::Result<()> {
    let mut next = Instant::now();
    while running.load(Ordering::SeqCst) {
        let n = slides.fetch_add(1, Ordering::SeqCst);
        if n.is_multiple_of(2) {
            screen.noise()?;
        } else {
            let shade = (n * 37 % 200) as u8;
            screen.fill(0, 0, 1280, 720, [shade, 60, 120])?;
            screen.fill(80 + (n % 10) as i16 * 40, 80, 600, 120, [250, 250, 250])?;
            screen.fill(80, 300, 900, 40 + (n % 7) as u16 * 20, [20, 20, 20])?;
        }
        next += SLIDE_EVERY;
        while running.load(Ordering::SeqCst) && Instant::now() < next {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(())
}

/// The proportional memory of `driver`'s browser: chromedriver and every process under it.
fn pss_mb(driver: &Killed) -> anyhow::Result<f64> {
    let root = driver.0.id();
    let mut parents = Vec::new();
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The parent is the second field after the command's closing parenthesis.
        let parent = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|ppid| ppid.parse::<u32>().ok());
        if let Some(parent) = parent {
            parents.push((pid, parent));
        }
    }
    let mut tree = vec![root];
    let mut grew = true;
    while grew {
        grew = false;
        for (pid, parent) in &parents {
            if tree.contains(parent) && !tree.contains(pid) {
                tree.push(*pid);
                grew = true;
            }
        }
    }
    let mut kb = 0u64;
    for pid in tree {
        let Ok(rollup) = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) else {
            continue;
        };
        kb += rollup
            .lines()
            .find_map(|line| line.strip_prefix("Pss:"))
            .and_then(|value| {
                value
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or(0);
    }
    if kb == 0 {
        bail!("no memory figure for the browser under pid {root}");
    }
    Ok(kb as f64 / 1024.0)
}

pub fn section(bench: &Result<LookbackBench, String>) -> String {
    let bench = match bench {
        Ok(bench) => bench,
        Err(error) => {
            return format!("\n## Looking back: a viewer's memory\n\nNot measured: {error}\n");
        }
    };
    format!(
        "\n## Looking back: a viewer's memory\n\n\
         Two shares of one 1280x720 screen, one with history and one without, each watched by a \
         headless Chromium, for {:.1} minutes while a new slide came every 2 s ({} slides; every \
         other one a screen of noise, about 2.8 MB deflated, so the page's {PAGE_BUDGET_MB:.0} MB \
         fill within a minute and are then held). Memory is the PSS of each browser's whole process \
         tree, sampled every 10 s.\n\n\
         | | figure |\n|---|---|\n\
         | pictures kept by the page at the end (most at once) | {} ({}) |\n\
         | bytes the page held at most (its own count: deflated pictures, thumbnails, the last picture's pixels) | {:.1} MB |\n\
         | Chromium with history: at the start, at most, at the end | {:.0} / {:.0} / {:.0} MB |\n\
         | Chromium without history: at the start, at most, at the end | {:.0} / {:.0} / {:.0} MB |\n\
         | what history costs the browser (with minus without, same sample): at the end, at most, on average after the first 2 minutes | {:.0} / {:.0} / {:.0} MB |\n",
        bench.minutes,
        bench.slides,
        bench.kept_end,
        bench.kept_max,
        bench.kept_mb_max,
        bench.with_start,
        bench.with_max,
        bench.with_end,
        bench.without_start,
        bench.without_max,
        bench.without_end,
        bench.cost_end(),
        bench.cost_max,
        bench.cost_mean,
    )
}
