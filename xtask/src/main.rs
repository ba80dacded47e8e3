//! The project's own commands, so that one line does all the set-up on a fresh Debian/Ubuntu machine:
//!
//! - `cargo xtask run [SERVE FLAGS]`: installs what is missing, builds, and shares this machine's
//!   primary monitor (or, with no display, offers a virtual one).
//! - `cargo xtask test`: installs what is missing and runs every test (they start their own Xvfb,
//!   screenshare processes and headless Chromium).
//! - `cargo xtask bench`: measures capture, encode and serving, and writes docs/BENCHMARKS.md.

mod bench;
mod packages;
mod virtual_screen;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, bail};

const USAGE: &str =
    "usage: cargo xtask <run [screenshare serve flags] | test [cargo test args] | bench>";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let task = args.next();
    let rest: Vec<String> = args.collect();
    let result = match task.as_deref() {
        Some("run") => run(&rest),
        Some("test") => test(&rest),
        Some("bench") => bench::bench(&rest),
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

fn run(serve_args: &[String]) -> anyhow::Result<()> {
    packages::ensure(packages::RUN)?;
    cargo(&["build", "--release", "--package", "screenshare-cli"])?;
    let binary = workspace_root().join("target/release/screenshare");
    let has_display = ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()));
    let _virtual_screen = if has_display {
        None
    } else {
        Some(virtual_screen::offer()?)
    };
    let mut serve = Command::new(&binary);
    serve.arg("serve").args(serve_args);
    if let Some(screen) = &_virtual_screen {
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
    let mut args = vec!["test", "--workspace"];
    args.extend(cargo_test_args.iter().map(String::as_str));
    // The tests start private X servers; never let them near the developer's own session.
    let mut command = cargo_command(&args);
    command.env_remove("DISPLAY").env_remove("WAYLAND_DISPLAY");
    run_command(&mut command)
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

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}
