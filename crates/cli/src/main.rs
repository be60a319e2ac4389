//! `rampart`: the one binary. Each verb lives in its own module or crate; this file only
//! parses arguments and maps outcomes to exit codes.
//!
//! Exit codes: 0 ok, 1 the input is invalid or a check failed, 2 usage or I/O error.

mod artifact;
mod files;
mod generate;
mod keygen;
// CONTROL: the control plane's client verbs.
mod killswitch;
mod remote;
// REPLAY: the fleet simulator's verb.
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
    // UP: the one command that runs everything.
    /// Run everything on this machine: control plane, origin, edges, generator, traffic.
    Up(Box<rampart_up::UpArgs>),
    /// Write a new ed25519 key pair for signing feature files.
    Keygen(keygen::Args),
    /// Inspect, validate, sign, verify and diff feature files.
    #[command(subcommand)]
    Artifact(artifact::Command),
    /// Run the edge proxy: score requests with the bot module, forward them to the origin.
    Edge(rampart_edge::cli::EdgeArgs),
    // GENERATE: the `generate` and `model` verbs go here (rampart-generate's cli module).
    /// Generate a signed feature file through the producer guards.
    Generate(Box<generate::Args>),
    /// The bot model: `rampart model fit`.
    #[command(subcommand)]
    Model(generate::ModelCommand),
    // CONTROL: `control`, `rollout` and `killswitch`.
    /// Run the control plane: artifact store, fleet registry, gated rollouts, kill switches.
    Control(Box<rampart_control::cli::ControlArgs>),
    /// Start, follow and steer rollouts on a control plane.
    #[command(subcommand)]
    Rollout(rollout::Command),
    /// Turn a module off or on, fleet-wide or on one node, through the control plane.
    #[command(subcommand)]
    Killswitch(killswitch::Command),
    // REPLAY: `replay`.
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
        // UP: dispatch.
        Command::Up(args) => rampart_up::run(&args),
        Command::Keygen(args) => keygen::run(&args),
        Command::Artifact(cmd) => artifact::run(cmd),
        Command::Edge(args) => rampart_edge::cli::run(args),
        // GENERATE: dispatch here.
        Command::Generate(args) => generate::run(*args),
        Command::Model(cmd) => generate::model(cmd),
        // CONTROL: dispatch.
        Command::Control(args) => rampart_control::cli::run(*args),
        Command::Rollout(cmd) => rollout::run(cmd),
        Command::Killswitch(cmd) => killswitch::run(cmd),
        // REPLAY: dispatch.
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
