//! The real `screenshare serve`, spawned on a private X server (or a private GNOME session), its
//! URLs read off stdout.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::Xvfb;

/// A running `screenshare serve`, killed on drop.
#[derive(Debug)]
pub struct Served {
    child: Child,
    /// Viewer URLs in the order printed (best first).
    pub viewer_urls: Vec<String>,
    pub control_url: String,
    stderr: Arc<Mutex<String>>,
}

impl Served {
    /// Starts `binary serve --bind 127.0.0.1 --port 0 <args>` on `xvfb`'s display.
    pub fn start(binary: &str, xvfb: &Xvfb, args: &[&str]) -> anyhow::Result<Self> {
        Self::start_with_env(binary, xvfb, args, &[])
    }

    /// Like [`Served::start`], with extra environment variables.
    pub fn start_with_env(
        binary: &str,
        xvfb: &Xvfb,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let mut command = xvfb.command(binary);
        command.envs(env.iter().copied());
        Self::spawn(command, args)
    }

    /// Starts `command serve --bind 127.0.0.1 --port 0 <args>`, `command` being the binary set
    /// up for its display (a private GNOME session's, say).
    pub fn spawn(mut command: std::process::Command, args: &[&str]) -> anyhow::Result<Self> {
        let binary = command.get_program().to_string_lossy().into_owned();
        // Debug logs for failure messages, unless the test asks for others.
        if !command.get_envs().any(|(name, _)| name == "RUST_LOG") {
            command.env("RUST_LOG", "screenshare=debug,screenshare_core=debug");
        }
        command
            .args(["serve", "--bind", "127.0.0.1", "--port", "0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {binary}"))?;
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(mut pipe) = child.stderr.take() {
            let sink = stderr.clone();
            std::thread::spawn(move || {
                let mut buffer = [0u8; 4096];
                while let Ok(read @ 1..) = pipe.read(&mut buffer) {
                    sink.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push_str(&String::from_utf8_lossy(&buffer[..read]));
                }
            });
        }
        let stdout = child.stdout.take().context("child stdout")?;
        let (lines_tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut served = Self {
            child,
            viewer_urls: Vec::new(),
            control_url: String::new(),
            stderr,
        };
        loop {
            let line = match lines.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => line,
                Err(_) => bail!(
                    "screenshare printed no control URL; its stderr:\n{}",
                    served.stderr()
                ),
            };
            if let Some(url) = line.strip_prefix("viewer ") {
                served.viewer_urls.push(url.trim().to_owned());
            } else if let Some(url) = line.strip_prefix("control ") {
                served.control_url = url.trim().to_owned();
                break;
            }
        }
        Ok(served)
    }

    /// The server's `address:port`, from the first viewer URL.
    pub fn address(&self) -> anyhow::Result<std::net::SocketAddr> {
        let authority = self
            .viewer_url()
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or_default();
        authority
            .parse()
            .with_context(|| format!("{authority:?} is not an address:port"))
    }

    /// The first (best) viewer URL.
    pub fn viewer_url(&self) -> &str {
        self.viewer_urls.first().map_or("", String::as_str)
    }

    /// A URL next to the viewer page, like `screen.png`.
    pub fn viewer(&self, relative: &str) -> String {
        format!("{}{relative}", self.viewer_url())
    }

    /// What the process wrote to stderr so far (its logs), for failure messages.
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status, if the process has exited.
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        // A failing test shows what the server said, as ripgrep's and miniserve's fixtures do.
        if std::thread::panicking() {
            eprintln!("--- screenshare's stderr ---\n{}", self.stderr());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
