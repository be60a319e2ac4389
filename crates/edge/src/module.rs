//! The bot module as the proxy sees it, and the boundary that keeps its failures small.
//!
//! The proxy knows a module only through [`Module`]: it hands over the request head, gets a
//! [`Scoring`] back, and decides with its [`Rules`] what to do with the request. The call
//! runs under `catch_unwind` ([`Boundary::evaluate`]), so a panic in the module (the
//! 18 November `unwrap()`) fails that one request by the fail policy instead of the worker.

use std::cell::RefCell;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

use http::request::Parts;
use rampart_score::AgentMemo;

use crate::metrics::{Metrics, ModuleFailure, UnscoredReason};

/// A request header that makes the module panic, honoured only when test hooks are on
/// (`RAMPART_TEST_HOOKS=1` when the process started). It drives the real `catch_unwind`
/// path from outside, in tests and drills.
pub const TEST_PANIC_HEADER: &str = "x-rampart-test-panic";

/// What the module sees of one request.
#[derive(Debug, Clone, Copy)]
pub struct Inbound<'a> {
    /// Method, URI, version and headers as the client sent them.
    pub parts: &'a Parts,
    /// The client's address (the TCP peer).
    pub client: IpAddr,
    /// Wall-clock milliseconds since the Unix epoch.
    pub now_ms: u64,
    /// The client connection's user-agent memo, when there is one (the proxy keeps one per
    /// connection; the module may reuse its last user-agent scan).
    pub agent_memo: Option<&'a RefCell<AgentMemo>>,
}

/// What the module says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scoring {
    /// A score, 1 (surely automated) to 99 (surely human).
    Scored(u8),
    /// No score, for a reason that is not a failure (module off, no model).
    Unscored(UnscoredReason),
    /// The module failed on this request; the fail policy decides.
    Failed,
}

/// A scorer on the request path. Implementations must be cheap and must not block; they
/// may panic (the boundary catches it), but should return [`Scoring::Failed`] instead.
pub trait Module: Send + Sync + 'static {
    /// Scores one request.
    fn evaluate(&self, request: &Inbound<'_>) -> Scoring;

    /// Told after each request the module ran on (scored or failed, not unscored) whether
    /// it failed, so a new version's soak can count errors.
    fn record(&self, module_error: bool);
}

/// What happens to a request the module failed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailPolicy {
    /// Forward it unscored.
    #[default]
    Open,
    /// Answer 503 with a short body.
    Closed,
}

/// The customer's rules on top of the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rules {
    /// Block (403) requests whose real score is below this. Unscored is never blocked by it.
    pub block_below: Option<u8>,
    /// What a module failure does to the request.
    pub fail_policy: FailPolicy,
}

/// What the proxy does with a request after the module and the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Forward it with this score header value.
    Forward(Option<u8>),
    /// Answer 403: the score is below the rule's threshold.
    Block(u8),
    /// Answer 503: the module failed and the policy is closed.
    Refuse,
}

/// The module with its guard: catches panics, counts failures, applies the rules.
#[derive(Clone)]
pub struct Boundary {
    module: Arc<dyn Module>,
    metrics: Arc<Metrics>,
    rules: Rules,
    test_hooks: bool,
}

/// `--fail-policy` was neither `open` nor `closed`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("fail policy must be `open` or `closed`, not {0:?}")]
pub struct ParseFailPolicyError(String);

// === impl FailPolicy ===

impl FromStr for FailPolicy {
    type Err = ParseFailPolicyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "open" => Ok(FailPolicy::Open),
            "closed" => Ok(FailPolicy::Closed),
            other => Err(ParseFailPolicyError(other.chars().take(32).collect())),
        }
    }
}

impl FailPolicy {
    /// `open` or `closed`.
    pub fn as_str(self) -> &'static str {
        match self {
            FailPolicy::Open => "open",
            FailPolicy::Closed => "closed",
        }
    }
}

// === impl Boundary ===

impl Boundary {
    /// Guards `module`. `test_hooks` enables [`TEST_PANIC_HEADER`].
    pub fn new(
        module: Arc<dyn Module>,
        metrics: Arc<Metrics>,
        rules: Rules,
        test_hooks: bool,
    ) -> Self {
        Boundary {
            module,
            metrics,
            rules,
            test_hooks,
        }
    }

    /// The rules in force.
    pub fn rules(&self) -> Rules {
        self.rules
    }

    /// Runs the module on one request under `catch_unwind`, counts the outcome, and decides.
    pub fn evaluate(&self, request: &Inbound<'_>) -> Decision {
        let hook = self.test_hooks && request.parts.headers.contains_key(TEST_PANIC_HEADER);
        let outcome = rampart_ingest::isolation::catch(|| {
            if hook {
                test_panic();
            }
            self.module.evaluate(request)
        });
        let verdict = match outcome {
            Ok(Scoring::Failed) => {
                self.metrics.module_failure(ModuleFailure::Error);
                Scoring::Failed
            }
            Ok(v) => v,
            Err(_) => {
                self.metrics.module_failure(ModuleFailure::Panic);
                Scoring::Failed
            }
        };
        // Only requests the module ran on count towards a version's soak.
        if !matches!(verdict, Scoring::Unscored(_)) {
            self.module.record(verdict == Scoring::Failed);
        }
        self.decide(verdict)
    }

    fn decide(&self, verdict: Scoring) -> Decision {
        match verdict {
            Scoring::Scored(score) => {
                self.metrics.score(score);
                match self.rules.block_below {
                    Some(threshold) if score < threshold => Decision::Block(score),
                    _ => Decision::Forward(Some(score)),
                }
            }
            Scoring::Unscored(reason) => {
                self.metrics.unscored(reason);
                Decision::Forward(None)
            }
            Scoring::Failed => match self.rules.fail_policy {
                FailPolicy::Open => {
                    self.metrics.unscored(UnscoredReason::Failed);
                    Decision::Forward(None)
                }
                FailPolicy::Closed => Decision::Refuse,
            },
        }
    }
}

impl std::fmt::Debug for Boundary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Boundary")
            .field("rules", &self.rules)
            .field("test_hooks", &self.test_hooks)
            .finish_non_exhaustive()
    }
}

/// The test hook's panic: the same unwinding a module's `unwrap()` on an `Err` would do.
#[expect(
    clippy::panic,
    reason = "a deliberate panic, reachable only with test hooks on"
)]
fn test_panic() {
    panic!("test hook: bot module panic requested by {TEST_PANIC_HEADER}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    struct Fixed(Scoring, AtomicU64, AtomicU64);

    impl Module for Fixed {
        fn evaluate(&self, _: &Inbound<'_>) -> Scoring {
            self.0
        }
        fn record(&self, module_error: bool) {
            if module_error {
                self.2.fetch_add(1, Ordering::Relaxed);
            } else {
                self.1.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    struct Panics;

    impl Module for Panics {
        fn evaluate(&self, _: &Inbound<'_>) -> Scoring {
            // The 18 November shape: `unwrap()` on an `Err`.
            Scoring::Scored("two hundred and one".parse::<u8>().unwrap())
        }
        fn record(&self, _: bool) {}
    }

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder().uri("/");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn run(
        module: Arc<dyn Module>,
        rules: Rules,
        hooks: bool,
        headers: &[(&str, &str)],
    ) -> (Decision, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::default());
        let b = Boundary::new(module, metrics.clone(), rules, hooks);
        let p = parts(headers);
        let d = b.evaluate(&Inbound {
            parts: &p,
            client: IpAddr::from([127, 0, 0, 1]),
            now_ms: 0,
            agent_memo: None,
        });
        (d, metrics)
    }

    fn fixed(v: Scoring) -> Arc<Fixed> {
        Arc::new(Fixed(v, AtomicU64::new(0), AtomicU64::new(0)))
    }

    #[test]
    fn block_rule_blocks_only_real_low_scores() {
        let rules = Rules {
            block_below: Some(30),
            fail_policy: FailPolicy::Open,
        };
        assert_eq!(
            run(fixed(Scoring::Scored(29)), rules, false, &[]).0,
            Decision::Block(29)
        );
        assert_eq!(
            run(fixed(Scoring::Scored(30)), rules, false, &[]).0,
            Decision::Forward(Some(30))
        );
        for reason in [UnscoredReason::Disabled, UnscoredReason::NoModel] {
            assert_eq!(
                run(fixed(Scoring::Unscored(reason)), rules, false, &[]).0,
                Decision::Forward(None)
            );
        }
        // A failure under fail-open is unscored, and unscored is not blocked.
        assert_eq!(
            run(fixed(Scoring::Failed), rules, false, &[]).0,
            Decision::Forward(None)
        );
    }

    #[test]
    fn failures_follow_the_policy() {
        let open = Rules::default();
        let closed = Rules {
            block_below: None,
            fail_policy: FailPolicy::Closed,
        };
        assert_eq!(
            run(fixed(Scoring::Failed), open, false, &[]).0,
            Decision::Forward(None)
        );
        assert_eq!(
            run(fixed(Scoring::Failed), closed, false, &[]).0,
            Decision::Refuse
        );
        assert_eq!(
            run(Arc::new(Panics), closed, false, &[]).0,
            Decision::Refuse
        );
        let (d, m) = run(Arc::new(Panics), open, false, &[]);
        assert_eq!(d, Decision::Forward(None));
        assert_eq!(m.panics_caught(), 1);
    }

    #[test]
    fn test_hook_panics_only_when_enabled() {
        let header = [(TEST_PANIC_HEADER, "1")];
        let closed = Rules {
            block_below: None,
            fail_policy: FailPolicy::Closed,
        };
        let (d, m) = run(fixed(Scoring::Scored(80)), closed, false, &header);
        assert_eq!(d, Decision::Forward(Some(80)));
        assert_eq!(m.panics_caught(), 0);
        let (d, m) = run(fixed(Scoring::Scored(80)), closed, true, &header);
        assert_eq!(d, Decision::Refuse);
        assert_eq!(m.panics_caught(), 1);
    }

    #[test]
    fn every_request_is_recorded_for_the_soak() {
        let ok = fixed(Scoring::Scored(50));
        let metrics = Arc::new(Metrics::default());
        let b = Boundary::new(ok.clone(), metrics, Rules::default(), true);
        let good = parts(&[]);
        let bad = parts(&[(TEST_PANIC_HEADER, "1")]);
        for p in [&good, &bad, &good] {
            b.evaluate(&Inbound {
                parts: p,
                client: IpAddr::from([127, 0, 0, 1]),
                now_ms: 0,
                agent_memo: None,
            });
        }
        assert_eq!(ok.1.load(Ordering::Relaxed), 2);
        assert_eq!(ok.2.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn fail_policy_parses() {
        assert_eq!("open".parse::<FailPolicy>().unwrap(), FailPolicy::Open);
        assert_eq!("closed".parse::<FailPolicy>().unwrap(), FailPolicy::Closed);
        assert!("shut".parse::<FailPolicy>().is_err());
    }
}
