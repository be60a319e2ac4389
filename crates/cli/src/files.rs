//! The files the CLI touches, through `rampart_host::file`: capped reads and atomic writes
//! with their messages ("cannot open …", "… is N bytes, over the limit of …").

pub(crate) use rampart_host::file::{read_capped, write_atomic};

/// Keys and contracts are small; anything larger is a mistake.
const MAX_TEXT_FILE: usize = 4 * 1024 * 1024;

/// Reads a small text file (keys, contracts, tokens).
pub(crate) fn read_text(path: &std::path::Path) -> anyhow::Result<String> {
    Ok(rampart_host::file::read_text(path, MAX_TEXT_FILE)?)
}
