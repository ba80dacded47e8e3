//! What every private session of the tests shares (the GNOME one, the sound one): a directory
//! of its own with a private `XDG_RUNTIME_DIR`, a session bus in it, and its processes in one
//! process group led by a shell watchdog. When the owner drops, or the test process dies and our
//! end of the watchdog's stdin closes, the watchdog stops the whole group, the processes the
//! session bus started included.

use std::fs::File;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The watchdog, leader of the session's process group. It ignores SIGTERM so that it outlives
/// the `kill -TERM 0` it sends the group. Then it waits (at most 3 s) for the document portal's
/// FUSE mount in the runtime directory to go (fusermount3, in a session of its own, unmounts it
/// once the portal is gone), removes the session's directory (never descending into a mount
/// still there), and ends whatever is left, itself included, with SIGKILL.
const WATCHDOG: &str = r#"trap '' TERM
cat >/dev/null
kill -TERM 0
i=0
while [ $i -lt 30 ] && grep -qs " $1/" /proc/mounts; do sleep 0.1; i=$((i+1)); done
rm -rf --one-file-system -- "$1" 2>/dev/null
kill -KILL 0"#;

/// A session's directory, bus and processes, stopped on drop.
#[derive(Debug)]
pub(crate) struct ProcessGroup {
    /// Everything of this session: `run/` (the `XDG_RUNTIME_DIR`), `logs/` (each process's
    /// output), and what the owner asked for.
    pub base: PathBuf,
    pub runtime: PathBuf,
    /// The `DBUS_SESSION_BUS_ADDRESS`.
    pub bus: String,
    /// The watchdog's pid: the session's process group.
    pub group: i32,
    watchdog: Child,
    /// Closing this tells the watchdog to stop the session.
    watchdog_stdin: Option<ChildStdin>,
    /// The processes started here, by name.
    children: Mutex<Vec<(&'static str, Child)>>,
    /// What the owner says when it gives up waiting (how long it waited).
    timeout: Duration,
}

impl ProcessGroup {
    /// A new directory `screenshare-<kind>-…` in the temporary directory with `run/`, `logs/`
    /// and `dirs`, and the watchdog; the owner gives up waiting after `timeout`.
    pub fn start(kind: &str, dirs: &[&str], timeout: Duration) -> anyhow::Result<Self> {
        static SESSIONS: AtomicU32 = AtomicU32::new(0);
        let base = std::env::temp_dir().join(format!(
            "screenshare-{kind}-{}-{}",
            std::process::id(),
            SESSIONS.fetch_add(1, Ordering::Relaxed)
        ));
        let runtime = base.join("run");
        // XDG_RUNTIME_DIR must be private (0700): PipeWire and others refuse a shared one.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&runtime)
            .with_context(|| format!("cannot create {}", runtime.display()))?;
        for dir in dirs.iter().chain(&["logs"]) {
            std::fs::create_dir_all(base.join(dir))
                .with_context(|| format!("cannot create {}", base.join(dir).display()))?;
        }
        let mut watchdog = Command::new("sh")
            .args(["-c", WATCHDOG, &format!("{kind}-watchdog")])
            .arg(&base)
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start the session's watchdog shell")?;
        let watchdog_stdin = watchdog.stdin.take().context("the watchdog's stdin")?;
        let group = i32::try_from(watchdog.id()).context("the watchdog's pid")?;
        let bus = format!("unix:path={}", runtime.join("bus").display());
        Ok(Self {
            base,
            runtime,
            bus,
            group,
            watchdog,
            watchdog_stdin: Some(watchdog_stdin),
            children: Mutex::new(Vec::new()),
            timeout,
        })
    }

    /// Puts `command` inside this session: removes the variables `foreign` (that would lead
    /// it to another display, bus or PipeWire) and sets `env`.
    pub fn apply(command: &mut Command, foreign: &[&str], env: Vec<(String, String)>) {
        for name in foreign {
            command.env_remove(name);
        }
        command.envs(env);
    }

    /// A command inside this session (see [`Self::apply`]), in its process group: it dies with
    /// the session even if the test process dies first.
    pub fn command(
        &self,
        program: impl AsRef<std::ffi::OsStr>,
        foreign: &[&str],
        env: Vec<(String, String)>,
    ) -> Command {
        let mut command = Command::new(program);
        Self::apply(&mut command, foreign, env);
        command.process_group(self.group);
        command
    }

    /// Starts the session bus (with `command`, dbus-daemon set up for the session) and waits
    /// for its socket.
    pub fn start_bus(&self, mut command: Command, deadline: Instant) -> anyhow::Result<()> {
        command.args([
            "--session",
            "--nofork",
            "--nopidfile",
            &format!("--address={}", self.bus),
        ]);
        self.launch(
            "dbus-daemon",
            command,
            "dbus-daemon (apt-get install dbus-daemon)",
        )?;
        let socket = self.runtime.join("bus");
        self.wait_until(deadline, "the session bus", || Ok(socket.exists()))
    }

    /// Starts `command` as `name`, its output in `logs/<name>.log`.
    pub fn launch(
        &self,
        name: &'static str,
        mut command: Command,
        install: &str,
    ) -> anyhow::Result<()> {
        let log = self.log_file(name)?;
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {install}"))?;
        self.children
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((name, child));
        Ok(())
    }

    /// Polls `ready` every 20 ms until it says yes; fails at `deadline`, or at once when a
    /// process of the session has died (with the end of its log).
    pub fn wait_until(
        &self,
        deadline: Instant,
        what: &str,
        mut ready: impl FnMut() -> anyhow::Result<bool>,
    ) -> anyhow::Result<()> {
        loop {
            if ready()? {
                return Ok(());
            }
            let mut children = self.children.lock().unwrap_or_else(PoisonError::into_inner);
            for (name, child) in children.iter_mut() {
                if let Some(status) = child.try_wait()? {
                    bail!(
                        "{name} exited ({status}) while waiting for {what}; its log ends:\n{}",
                        log_tail(&self.log_path(name))
                    );
                }
            }
            if Instant::now() > deadline {
                let logs: Vec<String> = children
                    .iter()
                    .map(|(name, _)| format!("--- {name}:\n{}", log_tail(&self.log_path(name))))
                    .collect();
                bail!(
                    "the session was not ready within {:?}: no {what}\n{}",
                    self.timeout,
                    logs.join("\n")
                );
            }
            drop(children);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_dir(&self) -> PathBuf {
        self.base.join("logs")
    }

    fn log_path(&self, name: &str) -> PathBuf {
        self.log_dir().join(format!("{name}.log"))
    }

    pub fn log_file(&self, name: &str) -> anyhow::Result<File> {
        let path = self.log_path(name);
        File::create(&path).with_context(|| format!("cannot create {}", path.display()))
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // The watchdog stops the whole group (see WATCHDOG), then our children are reaped.
        drop(self.watchdog_stdin.take());
        let _ = self.watchdog.wait();
        for (_, child) in self
            .children
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .iter_mut()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
        // The watchdog removed the directory; this is for a watchdog that could not.
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// The last lines of a log, for a failure message.
pub(crate) fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}
