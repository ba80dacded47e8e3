//! `cargo xtask dist`: a Debian package holding the presenter's desktop app (with its menu entry
//! and icons) and the `screenshare` command-line tool, and the check `cargo xtask test` runs on it.
//!
//! Built with `dpkg-deb` from the workspace's own binaries rather than Tauri's bundler: the
//! bundler needs `tauri-cli`, a second multi-minute build, for a package whose layout is a dozen
//! lines here. Its dependencies come from `dpkg-shlibdeps`, the tool Debian's own packages use, so
//! they are the real package names and versions of the libraries the binaries link.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::{cargo, packages, workload, workspace_root};

/// Which build of the binaries goes in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    Release,
    /// The test build, already there after `cargo test`: checking the packaging needs no
    /// second build of the whole tree.
    Debug,
}

impl Profile {
    fn dir(self) -> &'static str {
        match self {
            Profile::Release => "release",
            Profile::Debug => "debug",
        }
    }
}

const DESKTOP_ENTRY: &str = "[Desktop Entry]
Type=Application
Name=screenshare
GenericName=Screen sharing
Comment=Show your screen to anyone on your network
Exec=screenshare-desktop
Icon=screenshare
Terminal=false
Categories=Network;Utility;
Keywords=screen;share;present;projector;classroom;
StartupWMClass=screenshare-desktop
";

/// The icon set, by hicolor size.
const ICONS: &[(&str, &str)] = &[
    ("32x32.png", "32x32"),
    ("128x128.png", "128x128"),
    ("128x128@2x.png", "256x256"),
];

/// `cargo xtask dist`: builds the release binaries and the package, checks it, and prints its
/// path. With `--debug`: the package of the debug build (quick, for checking the packaging).
pub fn dist(debug: bool) -> anyhow::Result<()> {
    packages::ensure(packages::DIST)?;
    let profile = if debug {
        Profile::Debug
    } else {
        Profile::Release
    };
    let mut args = vec![
        "build",
        "--package",
        "screenshare-desktop",
        "--package",
        "screenshare-cli",
    ];
    if profile == Profile::Release {
        args.push("--release");
    }
    cargo(&args)?;
    let deb = build(profile)?;
    check(&deb)?;
    println!("{}", deb.display());
    eprintln!(
        "xtask: install it with `sudo apt install ./{}`",
        deb.strip_prefix(workspace_root()).unwrap_or(&deb).display()
    );
    Ok(())
}

/// Builds the package from the `profile` binaries; returns its path.
pub fn build(profile: Profile) -> anyhow::Result<PathBuf> {
    let root = workspace_root();
    let target = crate::target_dir()?;
    let binaries = target.join(profile.dir());
    let dist = target.join("dist");
    let stage = dist.join(format!("stage-{}", profile.dir()));
    if stage.exists() {
        std::fs::remove_dir_all(&stage)?;
    }
    let version = env!("CARGO_PKG_VERSION");
    let arch = output(Command::new("dpkg").arg("--print-architecture"))?;

    let bin = stage.join("usr/bin");
    std::fs::create_dir_all(&bin)?;
    for name in ["screenshare-desktop", "screenshare"] {
        let built = binaries.join(name);
        if !built.exists() {
            bail!(
                "{} is not built (cargo build --package screenshare-desktop --package screenshare-cli)",
                built.display()
            );
        }
        // As Debian's packages do: no debug information in what is installed.
        run(Command::new("strip")
            .args(["--strip-debug", "-o"])
            .arg(bin.join(name))
            .arg(&built))?;
    }
    let applications = stage.join("usr/share/applications");
    std::fs::create_dir_all(&applications)?;
    std::fs::write(applications.join("screenshare.desktop"), DESKTOP_ENTRY)?;
    for (file, size) in ICONS {
        let dir = stage.join(format!("usr/share/icons/hicolor/{size}/apps"));
        std::fs::create_dir_all(&dir)?;
        std::fs::copy(root.join("icons").join(file), dir.join("screenshare.png"))?;
    }
    let doc = stage.join("usr/share/doc/screenshare");
    std::fs::create_dir_all(&doc)?;
    std::fs::write(doc.join("copyright"), copyright(&root)?)?;

    let depends = shared_library_depends(
        &dist,
        &[bin.join("screenshare-desktop"), bin.join("screenshare")],
    )?;
    let installed_kib = disk_usage_kib(&stage.join("usr"))?;
    let control = format!(
        "Package: screenshare\n\
         Version: {version}\n\
         Section: net\n\
         Priority: optional\n\
         Architecture: {arch}\n\
         Maintainer: The screenshare developers <screenshare@localhost>\n\
         Installed-Size: {installed_kib}\n\
         Depends: {depends}\n\
         Description: Show your screen to anyone on your network\n \
         Viewers open a link in any browser: no account, no plugin, no app. The\n \
         presenter picks a monitor, a frame rate and a quality, and gets the link and a\n \
         QR code. Only what changes on the screen is sent, encoded once for everyone.\n \
         .\n \
         This package holds the desktop app (screenshare-desktop, in the menu as\n \
         \"screenshare\") and the command-line tool (screenshare) for machines\n \
         without a desktop.\n"
    );
    let debian = stage.join("DEBIAN");
    std::fs::create_dir_all(&debian)?;
    std::fs::write(debian.join("control"), control)?;

    // What is installed is readable by everyone and owned by root, whatever this shell's umask.
    set_modes(&stage)?;
    let deb = dist.join(format!("screenshare_{version}_{arch}.deb"));
    let mut build = Command::new("dpkg-deb");
    build.args(["--build", "--root-owner-group"]);
    if profile == Profile::Debug {
        // The test's package is unpacked a moment later: speed over size.
        build.args(["-Zgzip", "-z1"]);
    }
    run(build.arg(&stage).arg(&deb))?;
    Ok(deb)
}

/// The `Depends:` line for these binaries, as `dpkg-shlibdeps` works it out.
fn shared_library_depends(dist: &Path, binaries: &[PathBuf]) -> anyhow::Result<String> {
    // dpkg-shlibdeps wants to run in a source tree: a minimal one will do.
    let tree = dist.join("shlibdeps");
    std::fs::create_dir_all(tree.join("debian"))?;
    std::fs::write(
        tree.join("debian/control"),
        "Source: screenshare\n\nPackage: screenshare\nArchitecture: any\n",
    )?;
    let mut command = Command::new("dpkg-shlibdeps");
    command.current_dir(&tree).arg("-O");
    for binary in binaries {
        command.arg(format!("-e{}", binary.display()));
    }
    let printed = output(&mut command)?;
    printed
        .lines()
        .find_map(|line| line.strip_prefix("shlibs:Depends="))
        .map(str::to_owned)
        .context("dpkg-shlibdeps printed no dependencies")
}

fn copyright(root: &Path) -> anyhow::Result<String> {
    let mit = std::fs::read_to_string(root.join("LICENSE-MIT"))?;
    // The H.264 encoder is compiled in: its BSD licence must travel with the binary.
    let openh264 = std::fs::read_to_string(root.join("docs/licenses/OpenH264.txt"))?;
    let indented = |text: &str| {
        text.lines()
            .map(|line| {
                if line.trim().is_empty() {
                    " .".to_owned()
                } else {
                    format!(" {line}")
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    };
    Ok(format!(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
         Upstream-Name: screenshare\n\n\
         Files: *\n\
         Copyright: The screenshare developers\n\
         License: MIT or Apache-2.0\n \
         Either of the two licences, at your option. The Apache License 2.0 is in\n \
         /usr/share/common-licenses/Apache-2.0; the MIT licence follows.\n \
         .\n{}\n\
         License: BSD-2-Clause\n \
         OpenH264, Copyright 2013 Cisco Systems, is compiled into the programs as their\n \
         H.264 encoder, under this licence:\n \
         .\n{}",
        indented(&mit),
        indented(&openh264),
    ))
}

/// 0755 for folders and programs, 0644 for everything else, under `dir`.
fn set_modes(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let executable = path.is_dir()
            || path
                .parent()
                .is_some_and(|parent| parent.ends_with("usr/bin"));
        let mode = if executable { 0o755 } else { 0o644 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
        if path.is_dir() {
            set_modes(&path)?;
        }
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

fn disk_usage_kib(dir: &Path) -> anyhow::Result<u64> {
    let printed = output(Command::new("du").args(["-sk"]).arg(dir))?;
    printed
        .split_whitespace()
        .next()
        .and_then(|kib| kib.parse().ok())
        .context("du printed no size")
}

/// What `cargo xtask test` checks of the package: apt would install it, its files land where the
/// menu looks, its menu entry is valid, and the unpacked app starts and shows its window.
pub fn check(deb: &Path) -> anyhow::Result<()> {
    let simulated = output(
        Command::new("apt-get")
            .args(["install", "--simulate", "--yes"])
            .arg(deb),
    )
    .context("apt-get would not install the package")?;
    if !simulated.contains("Inst screenshare") {
        bail!("apt-get --simulate did not plan to install screenshare:\n{simulated}");
    }
    let listing = output(Command::new("dpkg-deb").arg("--contents").arg(deb))?;
    for wanted in [
        "./usr/bin/screenshare-desktop",
        "./usr/bin/screenshare",
        "./usr/share/applications/screenshare.desktop",
        "./usr/share/icons/hicolor/32x32/apps/screenshare.png",
        "./usr/share/icons/hicolor/128x128/apps/screenshare.png",
        "./usr/share/icons/hicolor/256x256/apps/screenshare.png",
        "./usr/share/doc/screenshare/copyright",
    ] {
        if !listing.lines().any(|line| line.ends_with(wanted)) {
            bail!("the package has no {wanted}:\n{listing}");
        }
    }
    let unpacked = deb.with_extension("unpacked");
    if unpacked.exists() {
        std::fs::remove_dir_all(&unpacked)?;
    }
    run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&unpacked))?;
    run(Command::new("desktop-file-validate")
        .arg(unpacked.join("usr/share/applications/screenshare.desktop")))?;
    let version = output(Command::new(unpacked.join("usr/bin/screenshare")).arg("--version"))?;
    if !version.contains(env!("CARGO_PKG_VERSION")) {
        bail!("the packaged CLI says {version:?}");
    }
    shows_its_window(&unpacked.join("usr/bin/screenshare-desktop"))?;
    std::fs::remove_dir_all(&unpacked)?;
    Ok(())
}

/// Starts `app` on a private X server and waits for its window to be mapped.
fn shows_its_window(app: &Path) -> anyhow::Result<()> {
    let (mut xvfb, display) = workload::start_xvfb(1280, 800)?;
    let config =
        std::env::temp_dir().join(format!("screenshare-dist-check-{}", std::process::id()));
    let mut child = Command::new(app)
        .env("DISPLAY", &display)
        .env_remove("WAYLAND_DISPLAY")
        .env("XDG_CONFIG_HOME", &config)
        .env("SCREENSHARE_BIND", "127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {}", app.display()))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let found = loop {
        let search = Command::new("xdotool")
            .args(["search", "--onlyvisible", "--name", "^screenshare$"])
            .env("DISPLAY", &display)
            .output()
            .context("cannot run xdotool")?;
        if search.status.success() && !search.stdout.is_empty() {
            break true;
        }
        if Instant::now() > deadline || child.try_wait()?.is_some() {
            break false;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let _ = child.kill();
    let _ = child.wait();
    let _ = xvfb.kill();
    let _ = xvfb.wait();
    let _ = std::fs::remove_dir_all(&config);
    if !found {
        bail!("the packaged app showed no window named \"screenshare\" within 60 s");
    }
    Ok(())
}

fn run(command: &mut Command) -> anyhow::Result<()> {
    output(command).map(drop)
}

/// Runs `command`; its stdout, or an error with its stderr.
fn output(command: &mut Command) -> anyhow::Result<String> {
    let result = command
        .output()
        .with_context(|| format!("cannot run {command:?}"))?;
    if !result.status.success() {
        bail!(
            "{command:?} failed: {}{}",
            String::from_utf8_lossy(&result.stdout),
            String::from_utf8_lossy(&result.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&result.stdout).trim().to_owned())
}
