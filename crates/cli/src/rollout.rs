//! `rampart rollout start|status|watch|promote|pause|resume|abort|rollback`.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use rampart_api::{RolloutCommand, RolloutView, StartRollout};
use rampart_artifact::Digest;

use crate::remote::{Remote, block_on, fail, out};
use crate::{EXIT_ERROR, EXIT_INVALID};

/// The largest signed file `rollout start FILE` publishes.
const MAX_SIGNED_FILE: usize = rampart_api::limits::MAX_ARTIFACT_BODY;

/// How often `watch` polls, by default.
const DEFAULT_WATCH_INTERVAL_MS: u64 = 500;

/// How long `watch` waits at most, by default.
const DEFAULT_WATCH_TIMEOUT_SECS: u64 = 1_800;

/// `rampart rollout <command>`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Start a rollout: canary, then waves, each baked and gated.
    Start(StartArgs),
    /// Show a rollout (the latest by default).
    Status(StatusArgs),
    /// Follow a rollout until it is done, printing each change.
    Watch(WatchArgs),
    /// End the current wave's bake now (gates still apply).
    Promote(CommandArgs),
    /// Hold the rollout where it stands.
    Pause(CommandArgs),
    /// Go on after a pause.
    Resume(CommandArgs),
    /// Stop; nodes already moved keep the new version.
    Abort(CommandArgs),
    /// Move every node the rollout touched back to the previous version.
    Rollback(RollbackArgs),
}

/// `rampart rollout start`.
#[derive(Debug, clap::Args)]
pub(crate) struct StartArgs {
    #[command(flatten)]
    remote: Remote,
    /// A published digest (sha256:…), or a signed file to publish first.
    target: String,
    /// Why (required with --break-glass; goes to the audit log).
    #[arg(long)]
    reason: Option<String>,
    /// Push to every live node at once (still verified, validated and gated; audited). Waits
    /// for a second admin: `rampart approval grant ID`.
    #[arg(long)]
    break_glass: bool,
    /// Bake time of every wave, in ms.
    #[arg(long, value_name = "MS")]
    bake_ms: Option<u64>,
    /// How long the whole fleet is watched after the last wave, in ms (0: none), instead of
    /// the control plane's policy.
    #[arg(long, value_name = "MS")]
    watch_ms: Option<u64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

/// `rampart rollout status`.
#[derive(Debug, clap::Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    remote: Remote,
    /// The rollout id (default: the latest).
    id: Option<u64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

/// `rampart rollout watch`.
#[derive(Debug, clap::Args)]
pub(crate) struct WatchArgs {
    #[command(flatten)]
    remote: Remote,
    /// The rollout id (default: the latest).
    id: Option<u64>,
    /// Poll interval, in ms.
    #[arg(long, value_name = "MS", default_value_t = DEFAULT_WATCH_INTERVAL_MS)]
    interval_ms: u64,
    /// Give up after this many seconds (exit 2).
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_WATCH_TIMEOUT_SECS)]
    timeout_secs: u64,
}

/// A command on one rollout.
#[derive(Debug, clap::Args)]
pub(crate) struct CommandArgs {
    #[command(flatten)]
    remote: Remote,
    /// The rollout id.
    id: u64,
    /// Why (goes to the audit log).
    #[arg(long)]
    reason: Option<String>,
}

/// `rampart rollout rollback`.
#[derive(Debug, clap::Args)]
pub(crate) struct RollbackArgs {
    #[command(flatten)]
    cmd: CommandArgs,
    /// Also mark the digest bad: it can be neither published nor rolled out again.
    #[arg(long)]
    mark_bad: bool,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// For people.
    Text,
    /// The API's JSON.
    Json,
}

/// Runs a rollout command.
pub(crate) fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Start(a) => start(a),
        Command::Status(a) => status(a),
        Command::Watch(a) => watch(a),
        Command::Promote(a) => command(a, RolloutCommand::Promote, false),
        Command::Pause(a) => command(a, RolloutCommand::Pause, false),
        Command::Resume(a) => command(a, RolloutCommand::Resume, false),
        Command::Abort(a) => command(a, RolloutCommand::Abort, false),
        Command::Rollback(a) => command(a.cmd, RolloutCommand::Rollback, a.mark_bad),
    }
}

fn start(a: StartArgs) -> anyhow::Result<ExitCode> {
    let client = a.remote.client()?;
    let signed = match a.target.parse::<Digest>() {
        Ok(_) => None,
        Err(_) => Some(crate::files::read_capped(
            Path::new(&a.target),
            MAX_SIGNED_FILE,
        )?),
    };
    block_on(async {
        let digest = match (a.target.parse::<Digest>(), signed) {
            (Ok(d), _) => d,
            (Err(_), Some(bytes)) => match client.publish(bytes).await {
                Ok(r) => {
                    eprintln!(
                        "published {} (version {}{})",
                        r.artifact.digest,
                        r.artifact.version,
                        if r.created { "" } else { ", already stored" }
                    );
                    r.artifact.digest
                }
                Err(e) => return Ok(fail(&e)),
            },
            (Err(_), None) => return Ok(ExitCode::from(EXIT_ERROR)),
        };
        let req = StartRollout {
            digest,
            reason: a.reason,
            break_glass: a.break_glass,
            bake_ms: a.bake_ms,
            watch_ms: a.watch_ms,
        };
        match client.rollout_start(&req).await {
            Ok(rampart_api::Decision::Done(v)) => {
                show(&v, a.format);
                Ok(ExitCode::SUCCESS)
            }
            Ok(rampart_api::Decision::Pending(approval)) => {
                crate::remote::out(&crate::node::line(&approval));
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => Ok(fail(&e)),
        }
    })?
}

async fn resolve(
    client: &rampart_api::Client,
    id: Option<u64>,
) -> Result<RolloutView, rampart_api::ClientError> {
    match id {
        Some(id) => client.rollout_status(id).await,
        None => {
            let list = client.rollouts(1).await?;
            match list.rollouts.into_iter().next() {
                Some(v) => Ok(v),
                None => Err(rampart_api::ClientError::Status {
                    status: 404,
                    excerpt: "no rollout yet".into(),
                }),
            }
        }
    }
}

fn status(a: StatusArgs) -> anyhow::Result<ExitCode> {
    let client = a.remote.client()?;
    block_on(async {
        match resolve(&client, a.id).await {
            Ok(v) => {
                show(&v, a.format);
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => Ok(fail(&e)),
        }
    })?
}

fn watch(a: WatchArgs) -> anyhow::Result<ExitCode> {
    let client = a.remote.client()?;
    let interval = Duration::from_millis(a.interval_ms.max(50));
    let polls = a
        .timeout_secs
        .saturating_mul(1000)
        .checked_div(a.interval_ms.max(50))
        .unwrap_or(0)
        .max(1);
    block_on(async {
        let mut last = String::new();
        for _ in 0..polls {
            let v = match resolve(&client, a.id).await {
                Ok(v) => v,
                Err(e) if e.is_retryable() => {
                    eprintln!("rampart: {e}; retrying");
                    tokio::time::sleep(interval).await;
                    continue;
                }
                Err(e) => return Ok(fail(&e)),
            };
            let line = progress(&v);
            if line != last {
                out(&format!("{line}\n"));
                last = line;
            }
            if v.done {
                return Ok(if v.phase == "succeeded" {
                    ExitCode::SUCCESS
                } else {
                    if let Some(o) = &v.outcome {
                        out(&format!("outcome: {o}\n"));
                    }
                    ExitCode::from(EXIT_INVALID)
                });
            }
            tokio::time::sleep(interval).await;
        }
        eprintln!("rampart: still running after {} s", a.timeout_secs);
        Ok(ExitCode::from(EXIT_ERROR))
    })?
}

fn command(a: CommandArgs, cmd: RolloutCommand, mark_bad: bool) -> anyhow::Result<ExitCode> {
    let client = a.remote.client()?;
    block_on(async {
        let result = if cmd == RolloutCommand::Rollback {
            client.rollout_rollback(a.id, a.reason, mark_bad).await
        } else {
            client.rollout_command(a.id, cmd, a.reason).await
        };
        match result {
            Ok(v) => {
                show(&v, Format::Text);
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => Ok(fail(&e)),
        }
    })?
}

fn show(v: &RolloutView, format: Format) {
    match format {
        Format::Json => out(&format!(
            "{}\n",
            serde_json::to_string_pretty(v).unwrap_or_default()
        )),
        Format::Text => out(&text(v)),
    }
}

/// One line: where the rollout stands.
fn progress(v: &RolloutView) -> String {
    let acked: usize = v.waves.iter().map(|w| w.acked).sum();
    let nodes: usize = v.waves.iter().map(|w| w.nodes.len()).sum();
    let wave = v
        .current_wave
        .map(|w| format!(" wave {}/{}", w + 1, v.waves.len()))
        .unwrap_or_default();
    let gate = v
        .gates
        .iter()
        .find(|g| g.verdict != "pass" && g.verdict != "skipped")
        .map(|g| format!(" ({} {})", g.name, g.verdict))
        .unwrap_or_default();
    format!(
        "rollout {} v{}: {}{wave} {acked}/{nodes} nodes on v{}{gate}",
        v.id, v.target.version, v.phase, v.target.version
    )
}

/// The whole status, for people.
fn text(v: &RolloutView) -> String {
    let mut s = String::new();
    let from = v
        .previous
        .map_or_else(|| "nothing".to_owned(), |p| format!("v{}", p.version));
    let _ = writeln!(
        s,
        "rollout {} ({}): v{} {} replacing {from}{}",
        v.id,
        v.kind,
        v.target.version,
        v.target.digest,
        if v.break_glass { " [BREAK GLASS]" } else { "" }
    );
    let _ = writeln!(
        s,
        "  phase {}, started by {}{}",
        v.phase,
        v.started_by,
        v.reason
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default()
    );
    for w in &v.waves {
        let _ = writeln!(
            s,
            "  {:<12} {:<12} {}/{} acked, {} nacked  {}",
            w.name,
            w.phase,
            w.acked,
            w.nodes.len(),
            w.nacked,
            w.nodes.join(",")
        );
    }
    for g in &v.gates {
        let numbers = match (g.value, g.threshold) {
            (Some(x), Some(t)) => format!(" {x:.4} (limit {t:.4})"),
            _ => String::new(),
        };
        let _ = writeln!(s, "  gate {:<14} {:<8}{numbers}", g.name, g.verdict);
    }
    if let Some(o) = &v.outcome {
        let _ = writeln!(s, "  outcome: {o}");
    }
    for o in &v.observed {
        let _ = writeln!(
            s,
            "  observe: gate {} {}: {}",
            o.gate, o.would, o.explanation
        );
    }
    s
}
