//! `screenshare`: share a screen on the local network, headless.
//!
//! `serve` prints one labelled line per URL on stdout (`viewer  http://…`, `control http://…`) so
//! scripts and tests can read them; logs go to stderr.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use screenshare_core::{
    DEFAULT_PORT, Error, MonitorChoice, Settings, Share, ShareOptions, sources,
};
use tracing_subscriber::EnvFilter;

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
    /// List the monitors that can be shared.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Share a monitor until Ctrl-C.
    Serve(ServeArgs),
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// Monitor to share, by index or name from `screenshare list` [default: the primary one]
    #[arg(long, short)]
    monitor: Option<MonitorChoice>,
    /// Frames per second while someone watches (1 to 60)
    #[arg(long, short, default_value_t = Settings::default().fps)]
    fps: u32,
    /// JPEG quality for the fast path (10 to 100); PNG is always lossless
    #[arg(long, short, default_value_t = Settings::default().quality)]
    quality: u32,
    /// Scale frames down to at most this many pixels wide
    #[arg(long, value_name = "PIXELS")]
    max_width: Option<u32>,
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("screenshare=info,screenshare_core=info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            let usage = error
                .downcast_ref::<Error>()
                .is_some_and(Error::is_bad_request);
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::List { json } => list(json),
        Command::Serve(args) => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(serve(args))
        }
    }
}

fn list(json: bool) -> anyhow::Result<()> {
    let monitors = sources().map_err(Error::from)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&monitors)?);
        return Ok(());
    }
    println!(
        "{:<6} {:<20} {:>11} {:>12} {:>6}  primary",
        "index", "name", "size", "position", "scale"
    );
    for monitor in monitors {
        println!(
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

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let options = ShareOptions {
        settings: Settings {
            monitor: args.monitor,
            fps: args.fps,
            quality: args.quality,
            max_width: args.max_width,
            paused: false,
            show_pointer: !args.no_pointer,
        },
        bind: SocketAddr::new(args.bind, args.port),
        open: args.open,
    };
    let share = Share::start(options).await?;
    if args.open {
        eprintln!(
            "warning: --open serves without a token: anyone who can reach this machine can watch"
        );
    }
    for url in share.viewer_urls() {
        println!("viewer  {url}");
    }
    println!("control {}", share.control_url());
    eprintln!("Open a viewer URL in any browser on the network. Ctrl-C stops sharing.");

    let stopped = share.stopped();
    tokio::select! {
        signal = shutdown_signal() => signal?,
        () = stopped.cancelled() => {}
    }
    eprintln!("stopping…");
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
