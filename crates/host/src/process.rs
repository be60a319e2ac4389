//! What the process may use: its descriptor budget.

/// The soft limit on open file descriptors (`RLIMIT_NOFILE`), or `None` when unlimited.
/// Every connection a server holds costs one; a connection cap above this budget does not
/// protect the server (accept fails with `EMFILE` first, and so does everything else that
/// opens a file, SQLite included).
pub fn open_files_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_read_and_leaves_room_for_stdio() {
        // Any process has at least stdin, stdout and stderr open.
        if let Some(n) = open_files_limit() {
            assert!(n >= 3, "{n}");
        }
    }
}
