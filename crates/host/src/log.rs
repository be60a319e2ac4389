//! Log setup for the long-running services (`rampart edge`, `rampart control`).

/// Logs `tracing` events to stderr, filtered by `RUST_LOG` (default `info`). Colour codes
/// only for a person at a terminal, not in log files. A second call is harmless (the first
/// subscriber stays).
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_init_is_harmless() {
        init();
        assert!(tracing::dispatcher::has_been_set());
        // The global subscriber is set once per process; this must not panic.
        init();
        assert!(tracing::dispatcher::has_been_set());
    }
}
