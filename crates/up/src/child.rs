//! A child process of the same binary (`rampart control`, `rampart edge`, …): its first
//! stdout line read (the address it listens on), the rest of its output sent to a log file,
//! stopped by PID (SIGTERM, a grace period, then SIGKILL) and always waited for.

use std::fs::File;
use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

/// How long a child has to print its first line (its address) after it starts.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a child has to exit after SIGTERM before it gets SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// How often a stopping child is checked for exit.
const EXIT_POLL: Duration = Duration::from_millis(20);

/// A running child. Dropping it kills it (SIGKILL) and waits, so no child outlives a panic.
#[derive(Debug)]
pub struct Child {
    name: String,
    child: std::process::Child,
    first_line: String,
    log: PathBuf,
}

/// Why a child could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    /// The process could not be spawned, or its log file created.
    #[error("{name}: cannot start: {source}")]
    Spawn {
        /// The child's name.
        name: String,
        /// Why.
        source: std::io::Error,
    },
    /// It exited or stayed silent before printing its first line.
    #[error("{name}: did not start within {timeout:?} (see {log})")]
    NoStart {
        /// The child's name.
        name: String,
        /// The wait.
        timeout: Duration,
        /// Its log file.
        log: String,
    },
}

// === impl Child ===

impl Child {
    /// Starts `command` (its stdout and stderr are taken over, appended to `log`) and waits
    /// for its first stdout line. The child gets its own process group, so a Ctrl-C in the terminal reaches
    /// only the supervisor, which stops its children in order.
    pub fn start(name: &str, mut command: Command, log: &Path) -> Result<Child, ChildError> {
        let spawn_err = |source| ChildError::Spawn {
            name: name.to_owned(),
            source,
        };
        // Appended to: a child started again keeps the stderr of the run before (a panic's
        // message, say).
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(spawn_err)?;
        let stderr = log_file.try_clone().map_err(spawn_err)?;
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .process_group(0)
            .spawn()
            .map_err(spawn_err)?;
        let (tx, rx) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            let mut log_file = log_file;
            std::thread::spawn(move || {
                let mut lines = BufReader::new(stdout).lines();
                if let Some(Ok(first)) = lines.next() {
                    let _ = writeln!(log_file, "{first}");
                    let _ = tx.send(first);
                }
                // Keep draining, so a chatty child never blocks on a full pipe.
                for line in lines.map_while(Result::ok) {
                    let _ = writeln!(log_file, "{line}");
                }
            });
        }
        let mut started = Child {
            name: name.to_owned(),
            child,
            first_line: String::new(),
            log: log.to_owned(),
        };
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(line) => {
                started.first_line = line;
                Ok(started)
            }
            Err(_) => Err(ChildError::NoStart {
                name: name.to_owned(),
                timeout: START_TIMEOUT,
                log: log.display().to_string(),
            }),
        }
    }

    /// Starts `command` without waiting for a line (a child that prints nothing until it
    /// ends, like `rampart generate --every`); stdout and stderr both go to `log`.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> Result<Child, ChildError> {
        let spawn_err = |source| ChildError::Spawn {
            name: name.to_owned(),
            source,
        };
        let out = File::create(log).map_err(spawn_err)?;
        let err = out.try_clone().map_err(spawn_err)?;
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .process_group(0)
            .spawn()
            .map_err(spawn_err)?;
        Ok(Child {
            name: name.to_owned(),
            child,
            first_line: String::new(),
            log: log.to_owned(),
        })
    }

    /// The child's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The first line it printed on stdout.
    pub fn first_line(&self) -> &str {
        &self.first_line
    }

    /// Its log file (stderr and the rest of stdout).
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// How it ended, once it has (`None` while it runs).
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Sends SIGTERM (a graceful stop: drain, clean exit) without waiting.
    pub fn terminate(&self) {
        let _ = kill_process(Pid::from_child(&self.child), Signal::TERM);
    }

    /// SIGTERM, then waits up to `grace`, then SIGKILL and waits. Returns how it ended.
    pub fn stop(mut self, grace: Duration) -> Option<ExitStatus> {
        self.terminate();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) => std::thread::sleep(EXIT_POLL),
                Err(_) => break,
            }
        }
        let _ = self.child.kill();
        self.child.wait().ok()
    }

    /// SIGKILL and wait: a crash, as far as the child can tell.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_prints_its_line_and_stops_on_sigterm() {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo ready at 1; echo more; exec sleep 30"]);
        let mut child = Child::start("sleeper", cmd, &dir.path().join("log")).unwrap();
        assert_eq!(child.first_line(), "ready at 1");
        assert!(child.is_running());
        let status = child.stop(Duration::from_secs(5)).unwrap();
        assert!(!status.success(), "ended by SIGTERM: {status:?}");
    }

    #[test]
    fn a_child_that_never_speaks_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "exit 3"]);
        let e = Child::start("mute", cmd, &dir.path().join("log")).unwrap_err();
        assert!(e.to_string().contains("mute"), "{e}");
    }
}
