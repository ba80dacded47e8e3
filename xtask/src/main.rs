//! The project's own commands, so that one line does all the set-up on a fresh Debian/Ubuntu machine:
//!
//! - `cargo xtask run [--headless] [SERVE FLAGS]`: installs what is missing, builds, and launches
//!   the presenter's desktop app; with no display (or `--headless`), shares from the command line
//!   instead, offering a virtual screen when there is no real one.
//! - `cargo xtask test`: installs what is missing and runs every test (they start their own Xvfb,
//!   screenshare processes and headless Chromium).
//! - `cargo xtask bench`: measures capture, encode and serving, and writes docs/BENCHMARKS.md.
//! - `cargo xtask dist`: a Debian package of the desktop app and the CLI, in target/dist/.
//! - `cargo xtask screenshots [viewer|presenter]`: retakes the pictures in docs/ (the viewer
//!   page, looking back, and the presenter window on X11, with sound, and on Wayland).
//! - `cargo xtask icons`: remakes the app's icon set from icons/source.png.

mod bench;
mod dist;
mod icons;
mod lookback_bench;
mod packages;
mod peer;
mod screenshots;
mod siege;
mod sound_bench;
mod viewers;
mod virtual_screen;
mod wayland_bench;
mod workload;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, bail};

const USAGE: &str = "usage: cargo xtask <run [--headless] [serve flags] | test [cargo test args] | bench | dist [--debug] | screenshots [viewer|presenter] | icons>";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let task = args.next();
    let rest: Vec<String> = args.collect();
    let result = match task.as_deref() {
        Some("run") => run(&rest),
        Some("test") => test(&rest),
        Some("bench") => bench::bench(&rest),
        Some("dist") => dist::dist(rest.iter().any(|arg| arg == "--debug")),
        Some("icons") => icons::generate(&workspace_root().join("icons")),
        Some("screenshots") => screenshots::screenshots(rest.first().map(String::as_str)),
        Some("-h" | "--help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// With a display: the presenter's desktop app. Without one (or with `--headless`): the CLI
/// share, on a virtual screen if there is no real one. Other arguments go to `screenshare serve`.
fn run(args: &[String]) -> anyhow::Result<()> {
    let has_display = ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()));
    let headless = args.iter().any(|arg| arg == "--headless") || !has_display;
    let serve_args: Vec<&String> = args.iter().filter(|arg| *arg != "--headless").collect();
    // The dev profile, as `cargo xtask test` builds it (the pixel path is optimised in it too):
    // after the tests, running needs no second build of the whole tree.
    if !headless {
        packages::ensure(packages::RUN_DESKTOP)?;
        eprintln!(
            "xtask: building the desktop app (the first time takes minutes; cargo shows progress)"
        );
        return cargo(&["run", "--package", "screenshare-desktop"]);
    }
    packages::ensure(packages::RUN_HEADLESS)?;
    cargo(&["build", "--package", "screenshare-cli"])?;
    let binary = target_dir()?.join("debug/screenshare");
    let virtual_screen = if has_display {
        None
    } else {
        Some(virtual_screen::offer()?)
    };
    let mut serve = Command::new(&binary);
    serve.arg("serve").args(serve_args);
    if let Some(screen) = &virtual_screen {
        serve
            .env("DISPLAY", screen.display())
            .env_remove("WAYLAND_DISPLAY");
    }
    let status = serve
        .status()
        .with_context(|| format!("cannot run {}", binary.display()))?;
    if !status.success() {
        bail!("screenshare exited with {status}");
    }
    Ok(())
}

fn test(cargo_test_args: &[String]) -> anyhow::Result<()> {
    packages::ensure(packages::TEST)?;
    // Drives the presenter window: WebDriver in front of WebKitWebDriver.
    packages::ensure_cargo_tool("tauri-driver", "^2")?;
    let mut args = vec!["test", "--workspace", "--no-fail-fast"];
    args.extend(cargo_test_args.iter().map(String::as_str));
    // The tests start private X servers; never let them near the developer's own session.
    let mut command = cargo_command(&args);
    command
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .stdout(Stdio::piped());
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot run {command:?}"))?;
    let stdout = child.stdout.take().context("cargo test's output")?;
    let mut totals = TestTotals::default();
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        totals.add(&line);
    }
    let status = child.wait()?;
    // The platforms the README names but this machine cannot run: the CLI and the desktop app
    // must at least compile for them, so a Linux-only change fails here, not on a user's machine.
    if cargo_test_args.is_empty() {
        for (target, packages) in OTHER_PLATFORMS {
            let name = format!("cross::{}", target.replace('-', "_"));
            totals.record(&name, check_for(target, packages));
        }
    }
    // The package, built from the binaries the tests just used, when the whole suite ran.
    if status.success() && cargo_test_args.is_empty() {
        println!("package: building target/dist/*.deb from the test build and checking it");
        totals.record(
            "package::installs_and_starts",
            dist::build(dist::Profile::Debug).and_then(|deb| dist::check(&deb)),
        );
    }
    // One closing line for the whole run: cargo prints one per test binary.
    println!("tests: {} passed, {} failed", totals.passed, totals.failed);
    if !status.success() || totals.failed > 0 {
        bail!("some tests failed ({status})");
    }
    if totals.passed == 0 {
        bail!("no test ran");
    }
    Ok(())
}

/// Windows and macOS, and what of ours is checked for each: their binaries cannot run on this
/// machine, so `cargo check` is what can be done. The desktop app for macOS is left out: its
/// dependencies compile Objective-C, which needs Apple's SDK.
const OTHER_PLATFORMS: &[(&str, &[&str])] = &[
    (
        "x86_64-pc-windows-gnu",
        &["screenshare-cli", "screenshare-desktop"],
    ),
    ("x86_64-apple-darwin", &["screenshare-cli"]),
];

/// `cargo check` of `packages` for `target`, its standard library added first.
fn check_for(target: &str, packages: &[&str]) -> anyhow::Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .context("cannot run rustup (the checks for other platforms need it)")?;
    if !String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|line| line.trim() == target)
    {
        run_command(Command::new("rustup").args(["target", "add", target]))?;
    }
    let mut args = vec!["check", "--quiet", "--target", target];
    for package in packages {
        args.extend(["--package", package]);
    }
    cargo(&args)
}

/// Sums cargo's `test result: ok. 5 passed; 0 failed; …` lines.
#[derive(Debug, Default)]
struct TestTotals {
    passed: u64,
    failed: u64,
}

impl TestTotals {
    /// A check xtask runs itself, reported and counted like one of cargo's tests.
    fn record(&mut self, name: &str, result: anyhow::Result<()>) {
        match result {
            Ok(()) => {
                println!("test {name} ... ok");
                self.passed += 1;
            }
            Err(error) => {
                println!("test {name} ... FAILED\n{error:#}");
                self.failed += 1;
            }
        }
    }

    fn add(&mut self, line: &str) {
        let Some(counts) = line.strip_prefix("test result: ") else {
            return;
        };
        for part in counts.split([';', '.']) {
            let mut words = part.split_whitespace();
            if let (Some(number), Some(label)) = (words.next(), words.next()) {
                let number: u64 = number.parse().unwrap_or(0);
                match label {
                    "passed" => self.passed += number,
                    "failed" => self.failed += number,
                    _ => {}
                }
            }
        }
    }
}

fn cargo(args: &[&str]) -> anyhow::Result<()> {
    run_command(&mut cargo_command(args))
}

fn cargo_command(args: &[&str]) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.args(args).current_dir(workspace_root());
    command
}

fn run_command(command: &mut Command) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("cannot run {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed: {status}");
    }
    Ok(())
}

/// Where cargo puts what it builds: `target/` unless `CARGO_TARGET_DIR` or a config says
/// otherwise, so cargo itself is asked.
fn target_dir() -> anyhow::Result<PathBuf> {
    let output = cargo_command(&["metadata", "--format-version", "1", "--no-deps"])
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run cargo metadata")?;
    if !output.status.success() {
        bail!("cargo metadata failed ({})", output.status);
    }
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("cargo metadata's answer")?;
    metadata
        .get("target_directory")
        .and_then(serde_json::Value::as_str)
        .map(PathBuf::from)
        .context("cargo metadata names no target directory")
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::{TestTotals, workspace_root};
    use std::path::Path;

    /// Every relative link in README.md and docs/ names a file inside the repository: a reader
    /// of the project has nothing else.
    #[test]
    fn relative_links_in_the_docs_resolve_inside_the_repository() {
        let root = workspace_root()
            .canonicalize()
            .expect("the repository root");
        let mut pages = vec![root.join("README.md")];
        for entry in std::fs::read_dir(root.join("docs")).expect("docs/") {
            let path = entry.expect("an entry").path();
            if path.extension().is_some_and(|ext| ext == "md") {
                pages.push(path);
            }
        }
        let mut checked = 0;
        let mut broken = Vec::new();
        for page in &pages {
            let text = std::fs::read_to_string(page).expect("a readable page");
            for target in link_targets(&text) {
                if target.contains("://")
                    || target.starts_with('#')
                    || target.starts_with("mailto:")
                {
                    continue;
                }
                let file = target.split('#').next().unwrap_or_default();
                let dir = page.parent().unwrap_or(Path::new("."));
                let resolved = dir.join(file).canonicalize();
                checked += 1;
                match resolved {
                    Ok(resolved) if resolved.starts_with(&root) => {}
                    _ => broken.push(format!("{}: {target}", page.display())),
                }
            }
        }
        assert!(
            checked >= 10,
            "only {checked} links found: is the parser right?"
        );
        assert!(
            broken.is_empty(),
            "links that lead nowhere:\n{}",
            broken.join("\n")
        );
    }

    /// The targets of `[text](target)` links and `![alt](target)` images.
    fn link_targets(markdown: &str) -> Vec<String> {
        let mut targets = Vec::new();
        let mut rest = markdown;
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            if let Some(end) = rest.find(')') {
                let target = rest[..end].trim();
                if !target.is_empty() && !target.contains(' ') {
                    targets.push(target.to_owned());
                }
                rest = &rest[end..];
            }
        }
        targets
    }

    #[test]
    fn totals_add_up_cargo_result_lines() {
        let mut totals = TestTotals::default();
        totals.add("test result: ok. 42 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.15s");
        totals
            .add("test result: FAILED. 3 passed; 2 failed; 1 ignored; 0 measured; 0 filtered out");
        totals.add("running 5 tests");
        assert_eq!((totals.passed, totals.failed), (45, 2));
    }
}
