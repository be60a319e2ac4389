//! `rampart`: the one binary. Each verb lives in its own module or crate; this file only
//! parses arguments and maps outcomes to exit codes.
//!
//! The rule for where a verb's flags live: a long-running service (`edge`, `control`, `up`,
//! `generate`, which runs `--every`) owns a `cli` module with its `Args` and `run` in its own
//! crate; a client verb (`artifact`, `keygen`, `keyset`, `rollout`, `killswitch`, `node`,
//! `approval`, `replay`, `model fit`, `tls init`)
//! is a module here.
//!
//! Exit codes: 0 ok, 1 the input is invalid or a check failed, 2 usage or I/O error.

mod artifact;
mod files;
mod keygen;
mod keyset;
mod killswitch;
mod model;
mod node;
mod remote;
mod replay;
mod rollout;
mod tls;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// rampart: ship machine-generated bot-scoring feature files to a fleet of edge proxies so
/// that a bad file fails small.
#[derive(Debug, Parser)]
#[command(name = "rampart", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run everything on this machine: control plane, origin, edges, generator, traffic.
    Up(Box<rampart_up::UpArgs>),
    /// Write a new ed25519 key pair for signing feature files.
    Keygen(keygen::Args),
    /// The root of trust: make root keys, sign keysets (generator, director, operator keys).
    #[command(subcommand)]
    Keyset(keyset::Command),
    /// Inspect, validate, sign, verify and diff feature files.
    #[command(subcommand)]
    Artifact(artifact::Command),
    /// Run the edge proxy: score requests with the bot module, forward them to the origin.
    Edge(rampart_edge::cli::EdgeArgs),
    /// Generate a signed feature file through the producer guards.
    Generate(Box<rampart_generate::cli::Args>),
    /// The bot model: `rampart model fit`.
    #[command(subcommand)]
    Model(model::ModelCommand),
    /// Run the control plane: artifact store, fleet registry, gated rollouts, kill switches.
    Control(Box<rampart_control::cli::ControlArgs>),
    /// Start, follow and steer rollouts on a control plane.
    #[command(subcommand)]
    Rollout(rollout::Command),
    /// Turn a module off or on, fleet-wide or on one node, through the control plane.
    #[command(subcommand)]
    Killswitch(killswitch::Command),
    /// Enroll (issue a bootstrap token) or remove a node on a control plane.
    #[command(subcommand)]
    Node(node::Command),
    /// List or grant the requests that wait for a second admin (fleet kill switch, break
    /// glass).
    #[command(subcommand)]
    Approval(node::ApprovalCommand),
    /// Certificates for the control API: `rampart tls init DIR` (a local CA and a server
    /// certificate).
    #[command(subcommand)]
    Tls(tls::Command),
    /// Replay an incident (nov18, dec5, or a scenario file) on a simulated fleet: naive,
    /// rampart, or each layer alone; writes summary.json and report.html.
    Replay(Box<replay::Args>),
}

/// The exit code for "the input is invalid or a check failed".
pub(crate) const EXIT_INVALID: u8 = 1;
/// The exit code for usage and I/O errors.
pub(crate) const EXIT_ERROR: u8 = 2;

/// `rampart generate` with the edge's contract and shadow scoring on the embedded labelled
/// sample as its output check.
fn generate(args: rampart_generate::cli::Args) -> anyhow::Result<ExitCode> {
    let check = rampart_fit::shadow::ShadowCheck::embedded(rampart_score::edge_contract())
        .map_err(|e| anyhow::anyhow!("shadow scoring: {e}"))?;
    rampart_generate::cli::run(args, rampart_score::edge_contract(), Some(Box::new(check)))
}

fn main() -> ExitCode {
    quiet_on_broken_pipe();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up(args) => rampart_up::run(&args),
        Command::Keygen(args) => keygen::run(&args),
        Command::Keyset(cmd) => keyset::run(cmd),
        Command::Artifact(cmd) => artifact::run(cmd),
        Command::Edge(args) => rampart_edge::cli::run(args),
        Command::Generate(args) => generate(*args),
        Command::Model(cmd) => model::model(cmd),
        Command::Control(args) => rampart_control::cli::run(*args),
        Command::Rollout(cmd) => rollout::run(cmd),
        Command::Killswitch(cmd) => killswitch::run(cmd),
        Command::Node(cmd) => node::run(cmd),
        Command::Approval(cmd) => node::approval(cmd),
        Command::Replay(args) => replay::run(&args),
        Command::Tls(cmd) => tls::run(cmd),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rampart: error: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// `rampart … | head -3`: once the reader is gone, a print to stdout fails with `EPIPE`, which
/// `println!` turns into a panic with a backtrace. This hook makes that one panic a quiet
/// exit with success, as a shell tool's death by `SIGPIPE` would be; every other panic goes
/// to the hook that was there (a service may install its own later, which then wins).
fn quiet_on_broken_pipe() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        previous(info);
    }));
}
