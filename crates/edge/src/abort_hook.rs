//! The test hook that kills the edge some time after it activates a marked file, as the
//! Azure Front Door configuration of 29 October 2025 did about 5 minutes after loading: the
//! process aborts (`std::process::abort`, no unwinding, no clean exit, nothing in the
//! journal but the activation) [`TEST_ABORT_MARKER`]`N` seconds after the file whose
//! `provenance.query` carries the marker became active, if it is still active then.
//!
//! Only with test hooks on (`RAMPART_TEST_HOOKS=1` when the process started): without
//! them the node never builds an [`AbortHook`], and a marked file is an ordinary file
//! (`provenance.query` is free text to validation).

use rampart_artifact::{Digest, Validated};

/// The marker: `provenance.query` containing `rampart-test-abort-after-secs=N` makes an edge
/// with test hooks on abort `N` seconds after activating the file.
pub const TEST_ABORT_MARKER: &str = "rampart-test-abort-after-secs=";

/// Longest delay the marker may ask for (a day): a larger number is not a marker.
pub const MAX_TEST_ABORT_SECS: u64 = 86_400;

/// Follows the active version and says when to abort.
#[derive(Debug, Default)]
pub struct AbortHook {
    /// The active digest last looked at, and the abort deadline it carries (ms since the
    /// Unix epoch), if marked.
    seen: Option<(Digest, Option<u64>)>,
}

// === impl AbortHook ===

impl AbortHook {
    /// Called on every tick with the active version (`digest`, activation time) and a way to
    /// read its document; returns whether the process must abort now.
    pub fn due(
        &mut self,
        active: Option<(Digest, u64)>,
        document: impl FnOnce() -> Option<Validated>,
        now_ms: u64,
    ) -> bool {
        let Some((digest, activated_ms)) = active else {
            self.seen = None;
            return false;
        };
        let deadline = match self.seen {
            Some((seen, deadline)) if seen == digest => deadline,
            _ => {
                let deadline = document()
                    .and_then(|v| marker(&v.document().provenance.query))
                    .map(|secs| activated_ms.saturating_add(secs.saturating_mul(1000)));
                if let Some(at) = deadline {
                    tracing::warn!(
                        %digest,
                        abort_at_ms = at,
                        "test hook: this file carries {TEST_ABORT_MARKER}; the edge will abort"
                    );
                }
                self.seen = Some((digest, deadline));
                deadline
            }
        };
        deadline.is_some_and(|at| now_ms >= at)
    }
}

/// The seconds the marker in `query` asks for.
pub fn marker(query: &str) -> Option<u64> {
    let (_, rest) = query.split_once(TEST_ABORT_MARKER)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits
        .parse::<u64>()
        .ok()
        .filter(|s| *s <= MAX_TEST_ABORT_SECS)
}

/// Aborts the process: the test hook's crash.
pub fn abort() -> ! {
    tracing::error!("test hook: aborting the process ({TEST_ABORT_MARKER})");
    std::process::abort()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_is_read_from_free_text() {
        assert_eq!(marker("rampart-test-abort-after-secs=5"), Some(5));
        assert_eq!(
            marker("select 1 -- rampart-test-abort-after-secs=300;"),
            Some(300)
        );
        assert_eq!(marker("select 1"), None);
        assert_eq!(marker("rampart-test-abort-after-secs="), None);
        assert_eq!(marker("rampart-test-abort-after-secs=99999999"), None);
    }

    fn validated(query: &str) -> Validated {
        use rampart_artifact::testing;
        let mut doc = testing::doc(1, 60);
        doc.provenance.query = query.to_owned();
        let contract = testing::contract_knowing(60, &[]).unwrap();
        rampart_artifact::validate(&doc, &contract, None).unwrap()
    }

    #[test]
    fn a_marked_file_aborts_after_its_delay_while_it_is_active() {
        let mut hook = AbortHook::default();
        let marked = Digest::of(b"marked");
        let file = || Some(validated("rampart-test-abort-after-secs=5"));
        assert!(!hook.due(Some((marked, 1_000)), file, 1_000));
        assert!(!hook.due(Some((marked, 1_000)), || panic!("read once"), 5_999));
        assert!(hook.due(Some((marked, 1_000)), || None, 6_000));
        // Replaced before the delay: no abort.
        let mut hook = AbortHook::default();
        assert!(!hook.due(Some((marked, 0)), file, 0));
        let other = Digest::of(b"other");
        assert!(!hook.due(Some((other, 1)), || Some(validated("q")), 10_000));
        assert!(!hook.due(None, || None, 20_000));
    }
}
