//! Bearer-token files, as every client reads them (the CLI's verbs, `rampart generate
//! --publish`).

/// The environment variable read for the token when no token file is given.
pub const TOKEN_ENV: &str = "RAMPART_TOKEN";

/// The secret of a token file: the last field of its first line that is not blank or a
/// comment, so a bare secret works and so does a line of the control plane's own token file
/// (`NAME ROLE SECRET`). `None` when there is no such line.
pub fn secret(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .and_then(|l| l.split_whitespace().last())
        .map(str::to_owned)
}

/// The token from [`TOKEN_ENV`], when it is set and not blank.
pub fn from_env() -> Option<String> {
    std::env::var(TOKEN_ENV)
        .ok()
        .filter(|t| !t.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_file_may_be_bare_or_a_control_plane_line() {
        assert_eq!(secret("s3cret\n").as_deref(), Some("s3cret"));
        assert_eq!(
            secret("# ops\n\nalice admin s3cret\nbob edge other\n").as_deref(),
            Some("s3cret")
        );
        assert_eq!(secret("# nothing\n"), None);
        assert_eq!(secret(""), None);
    }
}
