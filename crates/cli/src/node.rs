//! `rampart node enroll|remove` and `rampart approval list|grant`: node identity and the
//! second admin's approval, through the control plane.

use std::path::PathBuf;
use std::process::ExitCode;

use rampart_api::{ApprovalView, IssueEnrollment};

use crate::remote::{Remote, block_on, fail, out};

/// `rampart node <command>`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Issue a one-time bootstrap token for a node id (admin); give it to the edge with
    /// `rampart edge --enroll-token-file`.
    Enroll(EnrollArgs),
    /// Remove a node: its registration, contract and credential (admin, audited).
    Remove(RemoveArgs),
}

/// `rampart node enroll`.
#[derive(Debug, clap::Args)]
pub(crate) struct EnrollArgs {
    #[command(flatten)]
    remote: Remote,
    /// The node id.
    id: String,
    /// Why (required; goes to the audit log).
    #[arg(long)]
    reason: String,
    /// How long the token is valid, ms [default: 1 hour; at most 7 days].
    #[arg(long, value_name = "MS")]
    ttl_ms: Option<u64>,
    /// Write the token to FILE (mode 0600) instead of printing it.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// `rampart node remove`.
#[derive(Debug, clap::Args)]
pub(crate) struct RemoveArgs {
    #[command(flatten)]
    remote: Remote,
    /// The node id.
    id: String,
    /// Why (required; goes to the audit log).
    #[arg(long)]
    reason: String,
}

/// `rampart approval <command>`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum ApprovalCommand {
    /// The requests waiting for a second admin.
    List(ListArgs),
    /// Approve one (an admin other than the one who asked): it takes effect.
    Grant(GrantArgs),
}

/// `rampart approval list`.
#[derive(Debug, clap::Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    remote: Remote,
}

/// `rampart approval grant`.
#[derive(Debug, clap::Args)]
pub(crate) struct GrantArgs {
    #[command(flatten)]
    remote: Remote,
    /// The approval id.
    id: u64,
}

/// Runs a node command.
pub(crate) fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Enroll(a) => {
            let client = a.remote.client()?;
            let req = IssueEnrollment {
                node: a.id,
                reason: a.reason,
                ttl_ms: a.ttl_ms,
            };
            block_on(async {
                match client.enrollment_issue(&req).await {
                    Ok(issued) => {
                        if let Some(path) = &a.out {
                            rampart_host::file::write_private(path, issued.token.as_bytes())?;
                            eprintln!(
                                "bootstrap token for {} written to {} (expires at {} ms)",
                                issued.node,
                                path.display(),
                                issued.expires_at_ms
                            );
                        } else {
                            out(&format!("{}\n", issued.token));
                        }
                        Ok(ExitCode::SUCCESS)
                    }
                    Err(e) => Ok(fail(&e)),
                }
            })?
        }
        Command::Remove(a) => {
            let client = a.remote.client()?;
            block_on(async {
                match client.node_remove(&a.id, &a.reason).await {
                    Ok(r) => {
                        out(&format!("removed {}\n", r.node));
                        ExitCode::SUCCESS
                    }
                    Err(e) => fail(&e),
                }
            })
        }
    }
}

/// Runs an approval command.
pub(crate) fn approval(cmd: ApprovalCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ApprovalCommand::List(a) => {
            let client = a.remote.client()?;
            block_on(async {
                match client.approvals().await {
                    Ok(list) if list.approvals.is_empty() => {
                        out("nothing waits for approval\n");
                        ExitCode::SUCCESS
                    }
                    Ok(list) => {
                        out(&list.approvals.iter().map(line).collect::<String>());
                        ExitCode::SUCCESS
                    }
                    Err(e) => fail(&e),
                }
            })
        }
        ApprovalCommand::Grant(a) => {
            let client = a.remote.client()?;
            block_on(async {
                match client.approve(a.id).await {
                    Ok(done) => {
                        out(&format!(
                            "approved {} by {}: {} took effect\n",
                            done.approval.id, done.approved_by, done.approval.action
                        ));
                        ExitCode::SUCCESS
                    }
                    Err(e) => fail(&e),
                }
            })
        }
    }
}

/// One line for a pending approval.
pub(crate) fn line(a: &ApprovalView) -> String {
    format!(
        "approval {}: {} asked by {} waits for a second admin (rampart approval grant {}; expires at {} ms)\n",
        a.id, a.action, a.requested_by, a.id, a.expires_at_ms
    )
}
