//! What the process writes in its boot journal on its way out, so the next run can tell
//! the control plane why it died: a panic that escaped every isolation boundary
//! ([`panicked`], from the panic hook) and an exit with an error ([`exited`]).
//!
//! Nothing here takes the store's lock (the failing thread may hold it): the event is
//! appended to the journal's file directly
//! ([`append_last_words`]). It is armed by
//! the first [`Node`](crate::Node) of the process once its store has booted (and so written
//! this run's `boot` event): before that, an event would be blamed on the run before. A
//! SIGKILL, an OOM kill or an abort leaves nothing the victim can write: its supervisor says
//! how it ended with `rampart edge record-exit` ([`supervisor_exit`], then
//! [`record_exit`](rampart_ingest::journal::record_exit)), else the death is reported with
//! cause `unknown` (see `docs/edge-operations.md`).

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use rampart_host::clock::now_ms;
use rampart_ingest::Event;
use rampart_ingest::journal::append_last_words;

/// The journal of this process's store, once it booted.
static JOURNAL: OnceLock<PathBuf> = OnceLock::new();

/// A panic is recorded once per run: the first is the one that matters, and a module
/// panicking on every request must not turn into a journal write per request.
static PANIC_RECORDED: AtomicBool = AtomicBool::new(false);

/// Arms the last words with the journal at `path` (the first call wins).
pub fn arm(path: PathBuf) {
    let _ = JOURNAL.set(path);
}

/// Called by the panic hook: records [`Event::Panicked`] unless the panic is inside an
/// isolation boundary ([`rampart_ingest::isolation`], where it is caught and counted), or
/// one was recorded already.
pub fn panicked() {
    if rampart_ingest::isolation::in_boundary() {
        return;
    }
    let Some(path) = JOURNAL.get() else {
        return;
    };
    if PANIC_RECORDED.swap(true, Ordering::Relaxed) {
        return;
    }
    // Nothing to do about a failure here: the death is then reported as `unknown`.
    let _ = append_last_words(path, &Event::Panicked { at_ms: now_ms() });
}

/// Records that the process exits with `code` (non-zero: an error after boot).
pub fn exited(code: i32) {
    if let Some(path) = JOURNAL.get() {
        let _ = append_last_words(
            path,
            &Event::Exited {
                at_ms: now_ms(),
                code,
            },
        );
    }
}

/// Linux signal names and numbers (x86-64 and arm64), as `kill -l` and systemd's
/// `$EXIT_STATUS` spell them without `SIG`.
const SIGNALS: [(&str, i32); 31] = [
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("STKFLT", 16),
    ("CHLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("PWR", 30),
    ("SYS", 31),
];

/// Highest signal number accepted (real-time signals included).
pub const MAX_SIGNAL: i32 = 64;

/// A signal as a number (`9`), a name (`KILL`, `SIGKILL`, any case) or a real-time number.
pub fn signal_number(text: &str) -> Option<i32> {
    let t = text.trim();
    if let Ok(n) = t.parse::<i32>() {
        return (1..=MAX_SIGNAL).contains(&n).then_some(n);
    }
    let upper = t.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    SIGNALS.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// How the last run ended, from `--signal` / `--exit-code`, or else from the variables
/// systemd gives `ExecStopPost=` (`$EXIT_CODE`: `exited`, `killed` or `dumped`;
/// `$EXIT_STATUS`: the code, or the signal's name), read through `env`.
pub fn supervisor_exit(
    signal: Option<&str>,
    code: Option<i32>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<rampart_ingest::journal::SupervisorExit, String> {
    use rampart_ingest::journal::SupervisorExit;
    match (signal, code) {
        (Some(_), Some(_)) => Err("give --signal or --exit-code, not both".into()),
        (Some(s), None) => signal_number(s).map(SupervisorExit::Signal).ok_or_else(|| {
            format!("unknown signal {s:?} (a number 1-{MAX_SIGNAL} or a name such as KILL)")
        }),
        (None, Some(c)) => Ok(SupervisorExit::Code(c)),
        (None, None) => {
            let how = env("EXIT_CODE").ok_or(
                "no --signal or --exit-code, and no $EXIT_CODE from systemd (ExecStopPost=)",
            )?;
            let status = env("EXIT_STATUS").unwrap_or_default();
            match how.as_str() {
                "killed" | "dumped" => signal_number(&status)
                    .map(SupervisorExit::Signal)
                    .ok_or_else(|| format!("$EXIT_STATUS={status:?} is not a signal")),
                "exited" => status
                    .trim()
                    .parse()
                    .map(SupervisorExit::Code)
                    .map_err(|_| format!("$EXIT_STATUS={status:?} is not an exit code")),
                other => Err(format!(
                    "$EXIT_CODE={other:?}: expected exited, killed or dumped"
                )),
            }
        }
    }
}

/// How a child's [`ExitStatus`](std::process::ExitStatus) reads to the journal: the signal
/// that killed it, else its exit code (`None`: neither is known).
pub fn exit_of(
    status: std::process::ExitStatus,
) -> Option<rampart_ingest::journal::SupervisorExit> {
    use rampart_ingest::journal::SupervisorExit;
    use std::os::unix::process::ExitStatusExt as _;
    match (status.signal(), status.code()) {
        (Some(signal), _) => Some(SupervisorExit::Signal(signal)),
        (None, Some(code)) => Some(SupervisorExit::Code(code)),
        (None, None) => None,
    }
}

/// Records how the last run of the edge whose data dir is `data_dir` ended, as its
/// supervisor saw it: what `rampart edge record-exit` and `rampart up`'s supervisor do.
pub fn record_exit_in(
    data_dir: &std::path::Path,
    exit: rampart_ingest::journal::SupervisorExit,
) -> Result<rampart_ingest::journal::ExitRecord, rampart_ingest::DiskError> {
    rampart_ingest::journal::record_exit(
        &rampart_ingest::DataDir::new(data_dir).journal(),
        rampart_ingest::config::DEFAULT_JOURNAL_MAX_BYTES,
        exit,
        now_ms(),
    )
}

/// A signal's name without `SIG` (`ABRT` for 6), if it has one.
pub fn signal_name(signal: i32) -> Option<&'static str> {
    SIGNALS
        .iter()
        .find(|(_, n)| *n == signal)
        .map(|(name, _)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_ingest::journal::SupervisorExit;

    #[test]
    fn signals_parse_by_number_and_name() {
        assert_eq!(signal_number("9"), Some(9));
        assert_eq!(signal_number("KILL"), Some(9));
        assert_eq!(signal_number("sigabrt"), Some(6));
        assert_eq!(signal_number("SEGV"), Some(11));
        assert_eq!(signal_number("40"), Some(40));
        for bad in ["0", "65", "-9", "SIGNOPE", ""] {
            assert_eq!(signal_number(bad), None, "{bad}");
        }
    }

    #[test]
    fn flags_win_and_systemd_variables_fill_in() {
        let none = |_: &str| None;
        assert_eq!(
            supervisor_exit(Some("ABRT"), None, none),
            Ok(SupervisorExit::Signal(6))
        );
        assert_eq!(
            supervisor_exit(None, Some(3), none),
            Ok(SupervisorExit::Code(3))
        );
        assert!(supervisor_exit(Some("9"), Some(1), none).is_err());
        assert!(
            supervisor_exit(None, None, none)
                .unwrap_err()
                .contains("EXIT_CODE")
        );
        let systemd = |how: &'static str, status: &'static str| {
            move |k: &str| match k {
                "EXIT_CODE" => Some(how.to_owned()),
                "EXIT_STATUS" => Some(status.to_owned()),
                _ => None,
            }
        };
        assert_eq!(
            supervisor_exit(None, None, systemd("killed", "KILL")),
            Ok(SupervisorExit::Signal(9))
        );
        assert_eq!(
            supervisor_exit(None, None, systemd("dumped", "SEGV")),
            Ok(SupervisorExit::Signal(11))
        );
        assert_eq!(
            supervisor_exit(None, None, systemd("exited", "2")),
            Ok(SupervisorExit::Code(2))
        );
        assert!(supervisor_exit(None, None, systemd("exited", "KILL")).is_err());
        assert!(supervisor_exit(None, None, systemd("vanished", "1")).is_err());
    }
}
