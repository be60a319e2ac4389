//! `rampart`: the one binary. Each verb lives in its own module or crate; this file only
//! parses arguments and maps outcomes to exit codes.
//!
//! The rule for where a verb's flags live: a long-running service (`edge`, `control`, `up`,
//! `generate`, which runs `--every`) owns a `cli` module with its `Args` and `run` in its own
//! crate; a client verb (`artifact`, `keygen`, `rollout`, `killswitch`, `replay`, `model fit`)
//! is a module here.
//!
//! Exit codes: 0 ok, 1 the input is invalid or a check failed, 2 usage or I/O error.

mod artifact;
mod files;
mod keygen;
mod killswitch;
mod model;
mod remote;
mod replay;
mod rollout;

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
    /// Replay an incident (nov18, dec5, or a scenario file) on a simulated fleet: naive,
    /// rampart, or each layer alone; writes summary.json and report.html.
    Replay(Box<replay::Args>),
}

/// The exit code for "the input is invalid or a check failed".
pub(crate) const EXIT_INVALID: u8 = 1;
/// The exit code for usage and I/O errors.
pub(crate) const EXIT_ERROR: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up(args) => rampart_up::run(&args),
        Command::Keygen(args) => keygen::run(&args),
        Command::Artifact(cmd) => artifact::run(cmd),
        Command::Edge(args) => rampart_edge::cli::run(args),
        Command::Generate(args) => {
            rampart_generate::cli::run(*args, rampart_score::edge_contract())
        }
        Command::Model(cmd) => model::model(cmd),
        Command::Control(args) => rampart_control::cli::run(*args),
        Command::Rollout(cmd) => rollout::run(cmd),
        Command::Killswitch(cmd) => killswitch::run(cmd),
        Command::Replay(args) => replay::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rampart: error: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}
