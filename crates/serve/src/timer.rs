//! A timeout that costs almost nothing per use, for things a connection does one at a time.
//!
//! `tokio::time::timeout` registers a timer in the runtime's wheel and removes it again on
//! every call; hyper's header-read timeout does the same with a boxed sleep per request.
//! Measured on the edge's request path, each cost about a microsecond per request, as much
//! as hyper's whole request parsing (docs/BENCHMARKS.md, "timers").
//!
//! [`LazyTimer`] keeps one sleep per connection and never moves it forward on the fast
//! path: each use only computes its own deadline. The sleep stays armed at an older
//! deadline, which is always earlier (deadlines are `now + timeout` with a fixed timeout);
//! when it fires early the deadline of the current use is checked and the sleep re-armed
//! to it. So a busy connection touches the timer wheel about once per timeout period
//! instead of once per request, and a use still times out no later than its deadline (plus
//! the wheel's millisecond granularity).

use std::future::Future;
use std::pin::{Pin, pin};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// One connection's reusable timer (see the module docs).
#[derive(Debug)]
pub struct LazyTimer {
    sleep: Pin<Box<Sleep>>,
}

// === impl LazyTimer ===

impl LazyTimer {
    /// A timer first armed `timeout` from now.
    pub fn new(timeout: Duration) -> Self {
        LazyTimer {
            sleep: Box::pin(tokio::time::sleep(timeout)),
        }
    }

    /// Runs `fut` for at most `timeout`: `Some(output)`, or `None` when the time ran out
    /// first (the future is dropped then).
    pub async fn run<F: Future>(&mut self, timeout: Duration, fut: F) -> Option<F::Output> {
        let deadline = Instant::now() + timeout;
        let mut fut = pin!(fut);
        loop {
            tokio::select! {
                biased;
                out = &mut fut => return Some(out),
                () = self.sleep.as_mut() => {
                    if Instant::now() >= deadline {
                        return None;
                    }
                    // Armed for an earlier use: move it to this one's deadline.
                    self.sleep.as_mut().reset(deadline);
                }
            }
        }
    }

    /// Waits until `deadline()` has passed, re-reading it each time the sleep fires (the
    /// caller moves it forward as the connection makes progress).
    pub async fn until(&mut self, deadline: impl Fn() -> Instant) {
        loop {
            self.sleep.as_mut().await;
            let due = deadline();
            if Instant::now() >= due {
                return;
            }
            self.sleep.as_mut().reset(due);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_slow_future_times_out_at_its_deadline() {
        let mut t = LazyTimer::new(Duration::from_secs(5));
        let start = Instant::now();
        let out = t
            .run(
                Duration::from_secs(5),
                tokio::time::sleep(Duration::from_secs(60)),
            )
            .await;
        assert_eq!(out, None);
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn an_old_arming_does_not_cut_a_later_use_short() {
        let mut t = LazyTimer::new(Duration::from_secs(5));
        // Uses spread over 4 s keep the timer at its first deadline (t = 5 s).
        for _ in 0..4 {
            assert_eq!(t.run(Duration::from_secs(5), async { 1 }).await, Some(1));
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        // Started at t = 4 s: must be allowed until t = 9 s, not cut at 5 s.
        let start = Instant::now();
        let out = t
            .run(
                Duration::from_secs(5),
                tokio::time::sleep(Duration::from_millis(4_500)),
            )
            .await;
        assert_eq!(out, Some(()));
        assert_eq!(start.elapsed(), Duration::from_millis(4_500));
        // And one that is too slow ends at its own deadline.
        let start = Instant::now();
        let out = t
            .run(
                Duration::from_secs(5),
                tokio::time::sleep(Duration::from_secs(6)),
            )
            .await;
        assert_eq!(out, None);
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn until_follows_a_deadline_that_moves() {
        let deadline = std::sync::Arc::new(std::sync::Mutex::new(
            Instant::now() + Duration::from_secs(2),
        ));
        let mut t = LazyTimer::new(Duration::from_secs(2));
        let start = Instant::now();
        let d = deadline.clone();
        let mover = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            *d.lock().unwrap() = Instant::now() + Duration::from_secs(3);
        });
        t.until(|| *deadline.lock().unwrap()).await;
        mover.await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(4));
    }
}
