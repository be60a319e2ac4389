//! `rampart tls init DIR`: a local CA and a control-plane server certificate, for an operator
//! who runs the parts by hand (`rampart up` makes the same in its work dir).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use rampart_control::tls::authority;

/// Certificates for the control API.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Write ca.pem, ca.key, server.pem and server.key (keys mode 0600) into DIR; the server
    /// certificate names localhost, 127.0.0.1 and ::1, and every --name. Refuses to
    /// overwrite.
    Init {
        /// Where to write the four files (created if missing).
        dir: PathBuf,
        /// Another DNS name or IP address the control plane is reached by; repeatable.
        #[arg(long = "name", value_name = "NAME")]
        names: Vec<String>,
    },
}

/// Runs a `rampart tls` verb.
pub(crate) fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Init { dir, names } => {
            let files = authority::init(&dir, &names)
                .with_context(|| format!("rampart tls init {}", dir.display()))?;
            println!(
                "control plane: rampart control --tls-cert {} --tls-key {}\n\
                 clients:       --ca {} (edges: --control-ca)",
                files.server_cert.display(),
                files.server_key.display(),
                files.ca_cert.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
