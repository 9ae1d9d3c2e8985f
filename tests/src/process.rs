//! Child processes that are killed and reaped on drop, and readiness polling.
//!
//! Every process a test starts is a [`ChildGuard`]: its stdout and stderr go to log files (a
//! pipe nobody drains would block it), it is killed and waited for when the guard drops, and
//! its logs are printed when that drop happens during a panic, so a failing test shows what
//! Envoy or Pebble said. Waiting is always bounded: [`wait_for_port`] and [`eventually`]
//! poll until a deadline instead of sleeping a fixed time, because this machine is noisy.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use command_fds::{CommandFdExt, FdMapping};
use nix::unistd::Pid;

/// The signals [`ChildGuard::kill`] sends, re-exported so tests need no `nix` dependency.
pub use nix::sys::signal::Signal;

/// How often the pollers look again.
const POLL_INTERVAL: Duration = Duration::from_millis(25);
/// How long a process gets to exit after SIGTERM before it is killed.
const TERM_GRACE: Duration = Duration::from_secs(5);
/// How long a stop or continue signal may take to show in the process state.
const SIGNAL_DEADLINE: Duration = Duration::from_secs(5);
/// Lines of each log printed when a guard drops during a panic.
const LOG_TAIL_LINES: usize = 60;

/// What to start: everything needed to start it again (fixtures restart processes).
#[derive(Debug, Clone)]
pub struct Spawn {
    name: String,
    program: PathBuf,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    cwd: Option<PathBuf>,
    log_dir: Option<PathBuf>,
    passed: Option<PassedSocket>,
}

/// A listening socket passed to the process as a service manager passes one (systemd
/// socket activation: descriptor 3, `LISTEN_FDS=1`, `LISTEN_FDNAMES=<name>`). The test
/// holds it, so it stays open, with its backlog, while the process restarts.
#[derive(Debug, Clone)]
struct PassedSocket {
    name: String,
    socket: Arc<TcpListener>,
}

impl Spawn {
    /// `name` labels the log files and failure messages (`envoy`, `pebble`, ...).
    pub fn new(name: impl Into<String>, program: impl Into<PathBuf>) -> Self {
        Spawn {
            name: name.into(),
            program: program.into(),
            args: Vec::new(),
            envs: Vec::new(),
            cwd: None,
            log_dir: None,
            passed: None,
        }
    }

    /// Pass `socket` as the service manager's socket named `name`, to every start.
    pub fn pass_socket(mut self, name: impl Into<String>, socket: TcpListener) -> Self {
        self.passed = Some(PassedSocket {
            name: name.into(),
            socket: Arc::new(socket),
        });
        self
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.envs.push((key.into(), value.into()));
        self
    }

    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Write `<name>.stdout.log` and `<name>.stderr.log` here instead of a temporary
    /// directory that disappears with the guard (the demo keeps its logs under `.stack/`).
    pub fn log_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.log_dir = Some(dir.into());
        self
    }

    /// Start it.
    pub fn start(self) -> Result<ChildGuard> {
        ChildGuard::spawn(self)
    }

    fn command(&self, stdout: File, stderr: File) -> Result<Command> {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        if let Some(passed) = &self.passed {
            let fd = passed
                .socket
                .try_clone()
                .context("duplicate the passed socket")?;
            cmd.env("LISTEN_FDS", "1")
                .env("LISTEN_FDNAMES", &passed.name)
                .fd_mappings(vec![FdMapping {
                    parent_fd: OwnedFd::from(fd),
                    child_fd: 3,
                }])
                .context("pass the socket")?;
        }
        Ok(cmd)
    }
}

/// Start `command` from a thread that lives as long as the test process. Envoy is sent
/// SIGTERM when the thread that started it exits (a parent-death signal), and the threads a
/// test starts processes from may be short-lived: tokio retires an idle `spawn_blocking`
/// thread after 10 s, which stopped Envoy in the middle of longer tests.
fn spawn_from_keeper(mut command: Command) -> std::io::Result<Child> {
    type Request = (Command, std::sync::mpsc::Sender<std::io::Result<Child>>);
    static KEEPER: std::sync::OnceLock<std::sync::Mutex<std::sync::mpsc::Sender<Request>>> =
        std::sync::OnceLock::new();
    let keeper = KEEPER.get_or_init(|| {
        let (requests, incoming) = std::sync::mpsc::channel::<Request>();
        let started = std::thread::Builder::new()
            .name("process-keeper".into())
            .spawn(move || {
                for (mut command, reply) in incoming {
                    let _ = reply.send(command.spawn());
                }
            });
        if let Err(e) = started {
            eprintln!("process keeper thread: {e}; processes start from the calling thread");
        }
        std::sync::Mutex::new(requests)
    });
    let (reply, response) = std::sync::mpsc::channel();
    let sent = match keeper.lock() {
        Ok(requests) => requests.send((command, reply)).map_err(|e| e.0.0),
        Err(_) => Err(command),
    };
    match sent {
        Ok(()) => response
            .recv()
            .unwrap_or_else(|_| Err(std::io::Error::other("process keeper thread is gone"))),
        // No keeper: start it here, as before.
        Err(returned) => {
            command = returned;
            command.spawn()
        }
    }
}

/// A running child process, killed and reaped when dropped.
#[derive(Debug)]
pub struct ChildGuard {
    spawn: Spawn,
    logs: WorkDir,
    child: Option<Child>,
}

impl ChildGuard {
    /// Start `spawn` with stdout and stderr appended to its log files.
    pub fn spawn(spawn: Spawn) -> Result<ChildGuard> {
        let logs = WorkDir::new(spawn.log_dir.clone(), &spawn.name)?;
        let mut guard = ChildGuard {
            spawn,
            logs,
            child: None,
        };
        guard.start()?;
        Ok(guard)
    }

    fn start(&mut self) -> Result<()> {
        let stdout = self.open_log("stdout")?;
        let stderr = self.open_log("stderr")?;
        let child = spawn_from_keeper(self.spawn.command(stdout, stderr)?).with_context(|| {
            format!(
                "start {} ({})",
                self.spawn.name,
                self.spawn.program.display()
            )
        })?;
        self.child = Some(child);
        Ok(())
    }

    fn open_log(&self, stream: &str) -> Result<File> {
        let path = self.log_path(stream);
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("open {}", path.display()))
    }

    fn log_path(&self, stream: &str) -> PathBuf {
        self.logs
            .path()
            .join(format!("{}.{stream}.log", self.spawn.name))
    }

    /// The name given at spawn time.
    pub fn name(&self) -> &str {
        &self.spawn.name
    }

    /// The process id, while it runs.
    pub fn id(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The directory holding the log files.
    pub fn log_dir(&self) -> &Path {
        self.logs.path()
    }

    /// Everything the process wrote so far, stdout then stderr, for failure messages.
    pub fn log(&self) -> String {
        let mut out = String::new();
        for stream in ["stdout", "stderr"] {
            let text = std::fs::read(self.log_path(stream))
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                .unwrap_or_default();
            if !text.is_empty() {
                out.push_str(&format!("--- {} {stream} ---\n{text}", self.spawn.name));
                if !text.ends_with('\n') {
                    out.push('\n');
                }
            }
        }
        out
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Fail with the logs if the process has exited (e.g. it rejected its configuration).
    pub fn ensure_running(&mut self) -> Result<()> {
        let status = match self.child.as_mut() {
            Some(child) => child.try_wait().context("try_wait")?,
            None => bail!("{} is stopped", self.spawn.name),
        };
        match status {
            None => Ok(()),
            Some(status) => bail!("{} exited ({status})\n{}", self.spawn.name, self.log()),
        }
    }

    /// Send `signal` (SIGKILL, SIGSTOP, SIGCONT, SIGTERM, ...). SIGKILL also reaps it.
    pub fn kill(&mut self, signal: Signal) -> Result<()> {
        let Some(child) = self.child.as_mut() else {
            bail!("{} is not running", self.spawn.name);
        };
        let pid = Pid::from_raw(i32::try_from(child.id()).context("pid out of range")?);
        nix::sys::signal::kill(pid, signal)
            .with_context(|| format!("send {signal} to {}", self.spawn.name))?;
        match signal {
            Signal::SIGKILL => {
                child.wait().context("wait")?;
                self.child = None;
            }
            // Signals are delivered asynchronously; a test that freezes a process must be
            // able to rely on it being frozen when this returns.
            Signal::SIGSTOP => self.wait_stopped(pid, true)?,
            Signal::SIGCONT => self.wait_stopped(pid, false)?,
            _ => {}
        }
        Ok(())
    }

    fn wait_stopped(&self, pid: Pid, stopped: bool) -> Result<()> {
        eventually_blocking(SIGNAL_DEADLINE, || {
            (is_stopped(pid) == Some(stopped)).then_some(())
        })
        .with_context(|| {
            let want = if stopped { "stop" } else { "continue" };
            format!("{} did not {want}", self.spawn.name)
        })
    }

    /// Stop the process: SIGTERM, then SIGKILL if it has not exited within a grace period.
    /// Returns once it is reaped. Stopping a stopped process does nothing.
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if let Ok(raw) = i32::try_from(child.id()) {
            // A frozen (SIGSTOP) process must be thawed to act on SIGTERM.
            let _ = nix::sys::signal::kill(Pid::from_raw(raw), Signal::SIGCONT);
            let _ = nix::sys::signal::kill(Pid::from_raw(raw), Signal::SIGTERM);
        }
        let deadline = Instant::now() + TERM_GRACE;
        while Instant::now() < deadline {
            if child.try_wait().context("try_wait")?.is_some() {
                return Ok(());
            }
            std::thread::sleep(POLL_INTERVAL);
        }
        let _ = child.kill();
        child.wait().context("wait")?;
        Ok(())
    }

    /// Start the same command again (after [`stop`](Self::stop) or a SIGKILL); logs are
    /// appended to the same files.
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        self.start()
    }

    /// Start the command again with another program (the same arguments, environment and
    /// logs): a binary replaced by its next release.
    pub fn restart_as(&mut self, program: impl Into<PathBuf>) -> Result<()> {
        self.stop()?;
        self.spawn.program = program.into();
        self.start()
    }

    fn print_log_tail(&self) {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let skip = lines.len().saturating_sub(LOG_TAIL_LINES);
        eprintln!(
            "==== last {} log lines of {} ({}) ====",
            lines.len() - skip,
            self.spawn.name,
            self.logs.path().display()
        );
        for line in &lines[skip..] {
            eprintln!("{line}");
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_log_tail();
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A fixture's working directory: one the caller chose (kept), or a temporary one removed
/// on drop.
#[derive(Debug)]
pub enum WorkDir {
    Kept(PathBuf),
    Temporary(tempfile::TempDir),
}

impl WorkDir {
    /// `dir` if given (created if needed), else a new temporary directory named after
    /// `what`.
    pub fn new(dir: Option<PathBuf>, what: &str) -> Result<WorkDir> {
        match dir {
            Some(dir) => {
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("create {}", dir.display()))?;
                Ok(WorkDir::Kept(dir))
            }
            None => Ok(WorkDir::Temporary(
                tempfile::Builder::new()
                    .prefix(&format!("acme-edge-{what}-"))
                    .tempdir()
                    .context("create a temporary directory")?,
            )),
        }
    }

    pub fn path(&self) -> &Path {
        match self {
            WorkDir::Kept(path) => path,
            WorkDir::Temporary(dir) => dir.path(),
        }
    }
}

/// Whether `pid` is stopped (state `T` in `/proc/<pid>/stat`); `None` if it cannot be read.
fn is_stopped(pid: Pid) -> Option<bool> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ...`: comm may contain spaces and parentheses, so look after the
    // last `)`.
    let after_comm = stat.get(stat.rfind(')')? + 1..)?;
    let state = after_comm.split_whitespace().next()?;
    Some(state == "T")
}

/// Wait until something accepts TCP connections on `addr`, or fail after `deadline`.
pub async fn wait_for_port(addr: SocketAddr, deadline: Duration) -> Result<()> {
    eventually(deadline, || async move {
        tokio::net::TcpStream::connect(addr).await.ok().map(|_| ())
    })
    .await
    .with_context(|| format!("nothing listens on {addr}"))
}

/// Poll `probe` until it returns `Some`, or fail once `deadline` has passed. The probe runs
/// at least once, however short the deadline.
pub async fn eventually<T, F, Fut>(deadline: Duration, mut probe: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let end = Instant::now() + deadline;
    loop {
        if let Some(value) = probe().await {
            return Ok(value);
        }
        if Instant::now() >= end {
            bail!("condition not met within {deadline:?}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Blocking form of [`eventually`].
pub fn eventually_blocking<T>(
    deadline: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> Result<T> {
    let end = Instant::now() + deadline;
    loop {
        if let Some(value) = probe() {
            return Ok(value);
        }
        if Instant::now() >= end {
            bail!("condition not met within {deadline:?}");
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Spawn {
        Spawn::new("sh", "/bin/sh").arg("-c").arg(script)
    }

    #[test]
    fn logs_are_captured() {
        let mut child = sh("echo out; echo err >&2; sleep 30").start().unwrap();
        let log = eventually_blocking(Duration::from_secs(10), || {
            let log = child.log();
            (log.contains("out") && log.contains("err")).then_some(log)
        })
        .unwrap();
        assert!(log.contains("--- sh stdout ---\nout\n"), "{log}");
        assert!(log.contains("--- sh stderr ---\nerr\n"), "{log}");
        assert!(child.is_running());
        child.kill(Signal::SIGKILL).unwrap();
        assert!(!child.is_running());
    }

    #[test]
    fn drop_kills_the_process() {
        let child = sh("sleep 30").start().unwrap();
        let pid = Pid::from_raw(child.id().unwrap() as i32);
        drop(child);
        // Reaped, so the pid no longer exists (signal 0 only checks).
        assert!(nix::sys::signal::kill(pid, None).is_err());
    }

    #[test]
    fn ensure_running_reports_exit_with_logs() {
        let mut child = sh("echo bad config >&2; exit 3").start().unwrap();
        eventually_blocking(Duration::from_secs(10), || {
            (!child.is_running()).then_some(())
        })
        .unwrap();
        let err = format!("{:#}", child.ensure_running().unwrap_err());
        assert!(err.contains("bad config"), "{err}");
    }

    #[test]
    fn stop_and_restart_append_to_the_same_log() {
        let mut child = sh("echo started; sleep 30").start().unwrap();
        let started_once = |child: &ChildGuard| child.log().matches("started").count() == 1;
        eventually_blocking(Duration::from_secs(10), || {
            started_once(&child).then_some(())
        })
        .unwrap();
        child.stop().unwrap();
        assert!(!child.is_running());
        child.restart().unwrap();
        eventually_blocking(Duration::from_secs(10), || {
            (child.log().matches("started").count() == 2).then_some(())
        })
        .unwrap();
    }

    #[test]
    fn frozen_process_can_be_thawed_and_stopped() {
        let mut child = sh("sleep 30").start().unwrap();
        let pid = Pid::from_raw(child.id().unwrap() as i32);
        child.kill(Signal::SIGSTOP).unwrap();
        assert_eq!(is_stopped(pid), Some(true));
        child.kill(Signal::SIGCONT).unwrap();
        assert_eq!(is_stopped(pid), Some(false));
        child.kill(Signal::SIGSTOP).unwrap();
        child.stop().unwrap();
        assert!(!child.is_running());
    }

    #[test]
    fn eventually_gives_up() {
        let err = eventually_blocking(Duration::from_millis(50), || None::<()>).unwrap_err();
        assert!(err.to_string().contains("not met"));
    }

    #[tokio::test]
    async fn wait_for_port_sees_a_listener() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        wait_for_port(addr, Duration::from_secs(5)).await.unwrap();
        drop(listener);
        let closed = crate::ports::free_addr();
        assert!(
            wait_for_port(closed, Duration::from_millis(100))
                .await
                .is_err()
        );
    }
}
