//! `rampart killswitch set|show`: turn a module off or on, fleet-wide or on one node,
//! through the control plane (delivered to edges in their next heartbeat answer).
//!
//! `rampart killswitch set … --nats URL --director-key KEY` is the **break-glass** path: it
//! needs no control plane. It signs a [`KillOrder`] with the director key and puts it in the
//! NATS kill bucket that edges started with `--nats` watch themselves. The bucket's history
//! is its first audit trail (`set_by` = `break-glass:<key id>`); the leading control plane,
//! when one runs again, takes it into its state and audit log (`killswitch.break_glass`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use rampart_api::{Decision, KillOrder, KillScope, KillSwitchList, KillSwitchSet, Module};
use rampart_artifact::SecretKey;
use rampart_control::store::NatsConfig;
use rampart_control::store::nats::kill;

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
    /// The control plane, e.g. https://127.0.0.1:7700 (or --nats).
    #[arg(long, value_name = "URL", env = "RAMPART_CONTROL")]
    control: Option<String>,
    /// Trust this CA (PEM) instead of the web PKI roots.
    #[arg(long, value_name = "FILE", env = "RAMPART_CA")]
    ca: Option<PathBuf>,
    /// Allow an http:// --control URL, to a loopback host only.
    #[arg(long)]
    plain_http: bool,
    /// A file holding the bearer token; default: $RAMPART_TOKEN.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Break-glass, without the control plane (wins over --control): put the switch, signed with
    /// --director-key, in the NATS kill bucket edges watch (nats://HOST:PORT[,HOST:PORT…]).
    #[arg(
        long,
        value_name = "URL",
        requires = "director_key",
        conflicts_with = "control"
    )]
    nats: Option<String>,
    /// The director key (a director key of the edges' keyset) that signs the break-glass
    /// switch.
    #[arg(long, value_name = "FILE", requires = "nats")]
    director_key: Option<PathBuf>,
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
        Command::Set(a) if a.nats.is_some() => break_glass(a),
        Command::Set(a) => {
            let remote = Remote {
                control: a
                    .control
                    .context("--control (or RAMPART_CONTROL) or --nats is required")?,
                ca: a.ca,
                plain_http: a.plain_http,
                token_file: a.token_file,
            };
            let client = remote.client()?;
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

/// `rampart killswitch set … --nats`: signs and puts the switch in the kill bucket.
fn break_glass(a: SetArgs) -> anyhow::Result<ExitCode> {
    let (Some(url), Some(key_file)) = (a.nats, a.director_key) else {
        anyhow::bail!("--nats needs --director-key");
    };
    if a.clear && a.node.is_none() {
        anyhow::bail!("--clear needs --node");
    }
    let set = KillSwitchSet {
        module: match a.module {
            ModuleArg::Bot => Module::Bot,
        },
        enabled: a.state == State::On,
        node: a.node.clone(),
        clear: a.clear,
        reason: a.reason.clone(),
    };
    set.check()?;
    let config = NatsConfig::parse(&url)?;
    let key = SecretKey::from_pem(&crate::files::read_text(&key_file)?)
        .with_context(|| format!("director key {}", key_file.display()))?;
    let order = KillOrder {
        module: set.module,
        enabled: set.enabled,
        clear: set.clear,
        scope: match a.node {
            Some(node) => KillScope::Node(node),
            None => KillScope::Fleet,
        },
        reason: a.reason,
        set_by: format!("break-glass:{}", key.public().id()),
        seq: 0,
        issued_at_ms: rampart_host::clock::now_ms(),
    };
    let key = Arc::new(key);
    block_on(async move {
        let bucket = kill::connect(&config).await?;
        let written = kill::put(&bucket, order, &key).await?;
        out(&format!(
            "{} {} on {} (seq {}, put in the kill bucket under {}; break-glass: the control plane audits it when it runs)\n",
            written.module.as_str(),
            if written.clear {
                "follows the fleet"
            } else if written.enabled {
                "on"
            } else {
                "OFF"
            },
            match &written.scope {
                KillScope::Fleet => "the fleet",
                KillScope::Node(n) => n.as_str(),
            },
            written.seq,
            written.scope.key(),
        ));
        Ok::<_, anyhow::Error>(ExitCode::SUCCESS)
    })?
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
