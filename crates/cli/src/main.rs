//! `screenshare`: share a screen on the local network, headless.
//!
//! `serve` prints one labelled line per URL on stdout (`viewer  http://…`, `control http://…`) so
//! scripts and tests can read them; logs go to stderr.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use screenshare_core::server::Limits;
use screenshare_core::{
    DEFAULT_PORT, Error, MonitorChoice, Motion, Pin, Settings, Share, ShareOptions, WindowChoice,
    sources,
};
use tracing_subscriber::EnvFilter;

/// A line on stdout. Whoever reads it may go away (a script that took the first URL and closed
/// the pipe, `list | head`): that must not stop a share, nor panic.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// The log's writer: stderr, where a failed write is dropped. (tracing-subscriber reports a
/// failed write with `eprintln!`, which panics when nobody reads stderr any more.)
struct QuietStderr;

impl std::io::Write for QuietStderr {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

/// A line on stderr, the same way.
macro_rules! tell {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

#[derive(Parser, Debug)]
#[command(
    name = "screenshare",
    version,
    about = "Show your screen to anyone on the network: they just open a URL"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List the monitors (or, with --windows, the windows) that can be shared.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// List the windows instead of the monitors.
        #[arg(long)]
        windows: bool,
    },
    /// Share a monitor until Ctrl-C.
    Serve(ServeArgs),
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// Monitor to share, by index or name from `screenshare list` [default: the primary one]
    #[arg(long, short)]
    monitor: Option<MonitorChoice>,
    /// Share one window instead, by id or title from `screenshare list --windows`
    #[arg(long, short, value_name = "ID OR TITLE", conflicts_with = "monitor")]
    window: Option<WindowChoice>,
    /// Frames per second while someone watches (1 to 60)
    #[arg(long, short, default_value_t = Settings::default().fps)]
    fps: u32,
    /// JPEG quality for the fast path (10 to 100); PNG is always lossless
    #[arg(long, short, default_value_t = Settings::default().quality)]
    quality: u32,
    /// Scale frames down to at most this many pixels wide
    #[arg(long, value_name = "PIXELS")]
    max_width: Option<u32>,
    /// On Wayland: forget the screen or window picked last time, so the desktop asks again
    #[arg(long)]
    pick_again: bool,
    /// Address to listen on
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
    bind: IpAddr,
    /// Port to listen on (0 picks a free one)
    #[arg(long, short, default_value_t = DEFAULT_PORT)]
    port: u16,
    /// Serve without the secret token: anyone who can reach this machine can watch
    #[arg(long)]
    open: bool,
    /// Do not show the pointer to viewers (it can be turned back on with PATCH `show_pointer`)
    #[arg(long)]
    no_pointer: bool,
    /// Viewers admitted at once; one more is told the share is full
    #[arg(long, default_value_t = Settings::default().max_viewers)]
    max_viewers: u32,
    /// Viewers must type this PIN (6 to 12 digits) before they see anything
    #[arg(long)]
    pin: Option<Pin>,
    /// Each new viewer waits until let in: POST on the control URL's `viewers/<id>/admit`
    #[arg(long)]
    require_approval: bool,
    /// What moves goes out as video: `auto` (when most of the screen keeps changing), `tiles`
    /// (never), or `video` (whenever a sizeable part keeps changing); PATCH `motion` changes it
    #[arg(long, default_value_t = Settings::default().motion)]
    motion: Motion,
    /// Send what this desktop plays (its default output) to viewers who turn sound on; PATCH
    /// `audio` turns it on and off. Off by default: notifications are private
    #[arg(long)]
    audio: bool,
    /// Viewers' pages keep nothing: no looking back at earlier pictures, no snapshots (PATCH
    /// `history` turns them back on). A courtesy the page honours, not a lock
    #[arg(long)]
    no_history: bool,
    /// A host name viewers may use to reach this machine, besides its addresses and own name
    /// (repeat for several); requests naming any other host get 421
    #[arg(long, value_name = "NAME")]
    allow_host: Vec<String>,
    #[command(flatten)]
    limits: LimitArgs,
}

/// The server's timeouts and caps; the defaults suit a room full of viewers.
#[derive(clap::Args, Debug)]
#[command(next_help_heading = "Connection limits")]
struct LimitArgs {
    /// Seconds a client has to send a request's headers (also how long an idle connection stays)
    #[arg(long, value_name = "SECONDS", default_value_t = Limits::default().header_timeout.as_secs_f64())]
    header_timeout: f64,
    /// Seconds a response may wait for a client that stopped reading before it is dropped
    #[arg(long, value_name = "SECONDS", default_value_t = Limits::default().write_stall_timeout.as_secs_f64())]
    write_stall_timeout: f64,
    /// Open connections in all
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_connections)]
    max_connections: usize,
    /// Open connections from one address
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_connections_per_address)]
    max_connections_per_address: usize,
    /// Requests answered at once; more get 503 and are asked to retry
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_requests_in_flight)]
    max_requests: usize,
    /// Frame requests (pictures, updates, streams) answered at once for one address; more get
    /// 429
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_frame_requests_per_address)]
    max_frame_requests_per_address: usize,
    /// Megabytes of frame answers being sent at once, in all (one address holds an eighth);
    /// more get 503 and are asked to retry
    #[arg(long, value_name = "MB", default_value_t = Limits::default().max_frame_bytes_in_flight >> 20)]
    max_frame_megabytes: usize,
}

impl LimitArgs {
    fn limits(&self) -> anyhow::Result<Limits> {
        let seconds = |value: f64, flag: &str| {
            Duration::try_from_secs_f64(value)
                .ok()
                .filter(|duration| !duration.is_zero())
                .ok_or_else(|| anyhow::anyhow!("--{flag} must be a positive number of seconds"))
        };
        let at_least_one = |value: usize, flag: &str| {
            if value == 0 {
                Err(anyhow::anyhow!("--{flag} must be at least 1"))
            } else {
                Ok(value)
            }
        };
        Ok(Limits {
            header_timeout: seconds(self.header_timeout, "header-timeout")?,
            write_stall_timeout: seconds(self.write_stall_timeout, "write-stall-timeout")?,
            max_connections: at_least_one(self.max_connections, "max-connections")?,
            max_connections_per_address: at_least_one(
                self.max_connections_per_address,
                "max-connections-per-address",
            )?,
            max_requests_in_flight: at_least_one(self.max_requests, "max-requests")?,
            max_frame_requests_per_address: at_least_one(
                self.max_frame_requests_per_address,
                "max-frame-requests-per-address",
            )?,
            max_frame_bytes_in_flight: at_least_one(
                self.max_frame_megabytes,
                "max-frame-megabytes",
            )?
            .saturating_mul(1 << 20),
            ..Limits::default()
        })
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("screenshare=info,screenshare_core=info")),
        )
        .with_writer(|| QuietStderr)
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tell!("error: {error:#}");
            let usage = error
                .downcast_ref::<Error>()
                .is_some_and(Error::is_bad_request);
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::List { json, windows } if windows => list_windows(json),
        Command::List { json, .. } => list(json),
        Command::Serve(args) => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(serve(args))
        }
    }
}

/// What `list` says on a desktop whose own dialog picks (Wayland).
const PICKED_ON_DESKTOP: &str = "On Wayland your desktop's own dialog picks the screen or window to share: \
`screenshare serve` opens it the first time, then shares the same pick again without asking \
(`screenshare serve --pick-again` asks afresh).";

fn list(json: bool) -> anyhow::Result<()> {
    let monitors = sources().map_err(Error::from)?;
    if !json && screenshare_core::capture::system_screens().picked_on_desktop() {
        say!("{PICKED_ON_DESKTOP}");
        return Ok(());
    }
    if json {
        say!("{}", serde_json::to_string_pretty(&monitors)?);
        return Ok(());
    }
    say!(
        "{:<6} {:<20} {:>11} {:>12} {:>6}  primary",
        "index",
        "name",
        "size",
        "position",
        "scale"
    );
    for monitor in monitors {
        say!(
            "{:<6} {:<20} {:>11} {:>12} {:>6}  {}",
            monitor.index,
            monitor.name,
            format!("{}x{}", monitor.width, monitor.height),
            format!("{},{}", monitor.x, monitor.y),
            monitor.scale_factor,
            if monitor.is_primary { "yes" } else { "" }
        );
    }
    Ok(())
}

fn list_windows(json: bool) -> anyhow::Result<()> {
    let screens = screenshare_core::capture::system_screens();
    let windows = screens.windows().map_err(Error::from)?;
    if !json && screens.picked_on_desktop() {
        say!("{PICKED_ON_DESKTOP}");
        return Ok(());
    }
    if json {
        say!("{}", serde_json::to_string_pretty(&windows)?);
        return Ok(());
    }
    say!(
        "{:<10} {:>11} {:>12}  {:<16} title",
        "id",
        "size",
        "position",
        "app"
    );
    for window in windows {
        say!(
            "{:<10} {:>11} {:>12}  {:<16} {}",
            format!("0x{:x}", window.id),
            format!("{}x{}", window.width, window.height),
            format!("{},{}", window.x, window.y),
            printable(&window.app),
            printable(&window.title)
        );
    }
    Ok(())
}

/// `text` safe to print on a terminal: a window's title is whatever its program set, and an
/// escape sequence in it would be obeyed by the terminal (moving the cursor, changing its title,
/// rewriting what was printed). Control and text-direction characters become `�`.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            let direction = matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
            if c.is_control() || direction {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let screens = screenshare_core::capture::system_screens();
    if screens.picked_on_desktop() {
        if let Some(flag) = [
            args.monitor.is_some().then_some("--monitor"),
            args.window.is_some().then_some("--window"),
        ]
        .into_iter()
        .flatten()
        .next()
        {
            return Err(Error::from(screenshare_core::CaptureError::PickedOnDesktop(
                flag.to_owned(),
            ))
            .into());
        }
        if args.pick_again {
            screens.pick_again();
        }
        tell!("Your desktop may ask which screen or window to share: pick one and press Share.");
    } else if args.pick_again {
        tell!("note: --pick-again applies on Wayland only; --monitor and --window pick here");
    }
    let options = ShareOptions {
        settings: Settings {
            monitor: args.monitor,
            window: args.window,
            fps: args.fps,
            quality: args.quality,
            max_width: args.max_width,
            paused: false,
            show_pointer: !args.no_pointer,
            max_viewers: args.max_viewers,
            pin: args.pin,
            require_approval: args.require_approval,
            motion: args.motion,
            audio: args.audio,
            history: !args.no_history,
        },
        bind: SocketAddr::new(args.bind, args.port),
        open: args.open,
        allowed_hosts: args.allow_host,
        limits: args.limits.limits()?,
    };
    let share = Share::start_with(options, screens).await?;
    if args.open {
        tell!(
            "warning: --open serves without a token: anyone who can reach this machine can watch"
        );
    }
    for url in share.viewer_urls() {
        say!("viewer  {url}");
    }
    say!("control {}", share.control_url());
    tell!("Open a viewer URL in any browser on the network. Ctrl-C stops sharing.");
    if args.require_approval {
        let viewers = share.control_url().replace("/settings", "/viewers");
        tell!(
            "Viewers wait to be let in: see who waits with `curl {viewers}`, \
             then `curl -X POST {viewers}/<id>/admit` (or `/remove`)."
        );
    }

    let stopped = share.stopped();
    tokio::select! {
        signal = shutdown_signal() => signal?,
        () = stopped.cancelled() => {}
    }
    tell!("stopping…");
    share.stop().await?;
    Ok(())
}

/// Ctrl-C, or SIGTERM on Unix (what `kill` and service managers send).
async fn shutdown_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result,
            _ = terminate.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_print_without_their_control_characters() {
        assert_eq!(printable("plain – ünïcode"), "plain – ünïcode");
        assert_eq!(
            printable("a\u{1b}]0;owned\u{7}b"),
            "a\u{fffd}]0;owned\u{fffd}b"
        );
        assert_eq!(printable("x\u{202e}y\r\n"), "x\u{fffd}y\u{fffd}\u{fffd}");
    }
}
