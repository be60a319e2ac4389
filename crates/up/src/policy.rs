//! The rollout policy `rampart up` gives its control plane.

/// The rollout policy of `rampart up`: the production defaults, with bakes and sample sizes
/// cut so a rollout takes about a minute at the default traffic (200 requests a second),
/// and a watch of 20 s after the last wave.
pub const POLICY: &str = "\
[plan]
canary_bake_ms = 20000

[[plan.waves]]
share = 0.1
bake_ms = 10000

[[plan.waves]]
share = 0.5
bake_ms = 10000

[[plan.waves]]
share = 1.0
bake_ms = 10000

[rollout]
tick_ms = 500
baseline_wait_ms = 5000
watch_ms = 20000

[rollout.gates]
min_requests = 300

[rollout.gates.shift]
min_scores = 300
";
