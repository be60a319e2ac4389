//! `rampart killswitch set|show`: turn a module off or on, fleet-wide or on one node,
//! through the control plane (delivered to edges in their next heartbeat answer).

use std::process::ExitCode;

use rampart_api::{Decision, KillSwitchList, KillSwitchSet, Module};

use crate::remote::{Remote, block_on, fail, out};

/// `rampart killswitch <command>`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Set a switch: `rampart killswitch set bot off --reason "…"`.
    Set(SetArgs),
    /// Show every setting.
    Show(ShowArgs),
}

/// `rampart killswitch set`.
#[derive(Debug, clap::Args)]
pub(crate) struct SetArgs {
    #[command(flatten)]
    remote: Remote,
    /// The module.
    #[arg(value_enum)]
    module: ModuleArg,
    /// off: requests pass unscored; on: scored again.
    #[arg(value_enum)]
    state: State,
    /// One node instead of the whole fleet (a fleet-wide change waits for a second admin:
    /// `rampart approval grant ID`).
    #[arg(long, value_name = "ID")]
    node: Option<String>,
    /// Remove the node's own setting (it follows the fleet again).
    #[arg(long, requires = "node")]
    clear: bool,
    /// Why (required; goes to the audit log).
    #[arg(long)]
    reason: String,
}

/// `rampart killswitch show`.
#[derive(Debug, clap::Args)]
pub(crate) struct ShowArgs {
    #[command(flatten)]
    remote: Remote,
}

/// A module name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ModuleArg {
    /// The bot-scoring module.
    Bot,
}

/// on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum State {
    /// The module runs.
    On,
    /// The module is off.
    Off,
}

/// Runs a kill-switch command.
pub(crate) fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Set(a) => {
            let client = a.remote.client()?;
            let set = KillSwitchSet {
                module: match a.module {
                    ModuleArg::Bot => Module::Bot,
                },
                enabled: a.state == State::On,
                node: a.node,
                clear: a.clear,
                reason: a.reason,
            };
            block_on(async {
                match client.killswitch_set(&set).await {
                    Ok(Decision::Done(list)) => {
                        out(&text(&list));
                        ExitCode::SUCCESS
                    }
                    Ok(Decision::Pending(a)) => {
                        out(&crate::node::line(&a));
                        ExitCode::SUCCESS
                    }
                    Err(e) => fail(&e),
                }
            })
        }
        Command::Show(a) => {
            let client = a.remote.client()?;
            block_on(async {
                match client.killswitches().await {
                    Ok(list) => {
                        out(&text(&list));
                        ExitCode::SUCCESS
                    }
                    Err(e) => fail(&e),
                }
            })
        }
    }
}

fn text(list: &KillSwitchList) -> String {
    if list.switches.is_empty() {
        return "every module on (nothing set)\n".into();
    }
    list.switches
        .iter()
        .map(|s| {
            format!(
                "{} {} on {} (by {}: {})\n",
                s.module.as_str(),
                if s.enabled { "on" } else { "OFF" },
                s.node.as_deref().unwrap_or("the fleet"),
                s.set_by,
                s.reason
            )
        })
        .collect()
}
