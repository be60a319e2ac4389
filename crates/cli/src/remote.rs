//! What every verb that talks to a control plane shares: where it is, the token, a runtime,
//! and how its errors map to exit codes.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use rampart_api::{Client, ClientError, Transport};

use crate::{EXIT_ERROR, EXIT_INVALID};

/// Where the control plane is, and who we are.
#[derive(Debug, clap::Args)]
pub(crate) struct Remote {
    /// The control plane, e.g. https://127.0.0.1:7700; an HA control plane's replicas as
    /// `URL,URL,…` (writes reach the leader).
    #[arg(long, value_name = "URL[,URL…]", env = "RAMPART_CONTROL")]
    pub control: String,
    /// Trust this CA (PEM) instead of the web PKI roots (`rampart up` and `rampart tls
    /// init` write one: `ca.pem`).
    #[arg(long, value_name = "FILE", env = "RAMPART_CA")]
    pub ca: Option<PathBuf>,
    /// Allow an http:// --control URL, to a loopback host only.
    #[arg(long)]
    pub plain_http: bool,
    /// A file holding the bearer token (a bare secret, or a `NAME ROLE SECRET` line);
    /// default: $RAMPART_TOKEN.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

// === impl Remote ===

impl Remote {
    /// A client with the token, when there is one.
    pub(crate) fn client(&self) -> anyhow::Result<Client> {
        let token = match &self.token_file {
            Some(f) => Some(
                token_from(&crate::files::read_text(f)?)
                    .with_context(|| format!("{} holds no token", f.display()))?,
            ),
            None => rampart_api::token::from_env(),
        };
        let transport = Transport::from_flags(self.ca.as_deref(), self.plain_http)?;
        Ok(Client::with_transport(&self.control, token, &transport)?)
    }
}

/// The secret of a token file ([`rampart_api::token::secret`]).
pub(crate) fn token_from(text: &str) -> anyhow::Result<String> {
    rampart_api::token::secret(text).context("no token line")
}

/// A current-thread runtime for one command.
pub(crate) fn block_on<F: std::future::Future>(f: F) -> anyhow::Result<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    Ok(rt.block_on(f))
}

/// A refusal by the control plane is "the check failed" (1); anything else (unreachable,
/// usage, auth) is an error (2). Prints the error.
pub(crate) fn fail(e: &ClientError) -> ExitCode {
    eprintln!("rampart: {e}");
    if let Some(api) = e.api() {
        for issue in api.issues.iter().flatten() {
            eprintln!("  {}: {}", issue.code, issue.message);
        }
    }
    if e.is_refusal() {
        ExitCode::from(EXIT_INVALID)
    } else {
        ExitCode::from(EXIT_ERROR)
    }
}

/// Writes to stdout, quietly stopping on a closed pipe (`| head`).
pub(crate) fn out(text: &str) {
    use std::io::Write as _;
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(text.as_bytes()).and_then(|()| o.flush());
}
