//! `rampart generate`: its flags and its run, once or on a schedule (`--every`) until a
//! signal. The binary (`rampart-cli`) only dispatches here, as it does to `rampart_edge::cli`
//! and `rampart_control::cli`: a long-running service owns its flags.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use rampart_artifact::{Contract, SecretKey};
use time::OffsetDateTime;

use crate::publish::Target;
use crate::schedule::{parse_interval, run_every, stop_on_signals};
use crate::source::clickhouse::Credentials;
use crate::source::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_QUERY_TIMEOUT, DEFAULT_SOURCE, DEFAULT_TABLE,
    DEFAULT_WEIGHTS_TABLE,
};
use crate::{Catalog, Job, Output, OutputCheck, Source, Weights};

/// Keys, models, contracts and tokens are small; anything larger is a mistake.
const MAX_TEXT_FILE: usize = 4 * 1024 * 1024;

/// Generate a signed feature file from ClickHouse or the embedded catalog, through the
/// producer guards. Exit 0 published or unchanged, 1 held by a guard, 2 error.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// `clickhouse://HOST:PORT/DATABASE`, `catalog:embedded` or `catalog:PATH`.
    #[arg(long, default_value = DEFAULT_SOURCE)]
    source: String,
    /// Table whose columns are the features (ClickHouse).
    #[arg(long, default_value = DEFAULT_TABLE)]
    table: String,
    /// Table of weights (`name`, `weight`; the row `__bias__` is the bias) in the same database.
    #[arg(long, default_value = DEFAULT_WEIGHTS_TABLE, conflicts_with = "model")]
    weights_table: String,
    /// Take the weights from a model file (catalog format) instead of a table.
    #[arg(long)]
    model: Option<PathBuf>,
    /// ClickHouse user.
    #[arg(long, env = "RAMPART_CLICKHOUSE_USER", hide_env_values = true)]
    user: Option<String>,
    /// ClickHouse password (prefer the environment variable: arguments show in `ps`).
    #[arg(long, env = "RAMPART_CLICKHOUSE_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Time to connect to the source (`2s`).
    #[arg(long, value_parser = parse_interval)]
    connect_timeout: Option<Duration>,
    /// Time for each query (`10s`).
    #[arg(long, value_parser = parse_interval)]
    timeout: Option<Duration>,
    /// A consumer contract the file must satisfy (repeatable); default: the edge's.
    #[arg(long)]
    contract: Vec<PathBuf>,
    /// Private key to sign with (PEM, from `rampart keygen`).
    #[arg(long)]
    key: PathBuf,
    /// State directory: last published file, run history, freeze.
    #[arg(long)]
    state_dir: PathBuf,
    /// Write the signed file here.
    #[arg(
        short = 'o',
        long = "out",
        required_unless_present = "publish",
        conflicts_with = "publish"
    )]
    out: Option<PathBuf>,
    /// Publish to the control plane at this URL (`POST /v1/artifacts`); recorded as
    /// published only once it accepted the file. A refusal (422) exits 1 with its issues, an
    /// unreachable control plane exits 2.
    #[arg(long, value_name = "URL")]
    publish: Option<String>,
    /// The publisher's bearer token for --publish (a bare secret, or a `NAME ROLE SECRET`
    /// line); default: $RAMPART_TOKEN.
    #[arg(long, value_name = "FILE", requires = "publish")]
    publish_token_file: Option<PathBuf>,
    /// Trust this CA (PEM) for --publish instead of the web PKI roots.
    #[arg(long, value_name = "FILE", env = "RAMPART_CA", requires = "publish")]
    ca: Option<PathBuf>,
    /// Allow an http:// --publish URL, to a loopback host only (the token then travels in
    /// clear on this host).
    #[arg(long, requires = "publish")]
    plain_http: bool,
    /// Let through a file the delta guard holds (this run only).
    #[arg(long)]
    approve_delta: bool,
    /// Lift a freeze set by the flapping guard (this run only).
    #[arg(long)]
    unfreeze: bool,
    /// Let through a file the shadow check holds (this run only).
    #[arg(long)]
    approve_shadow: bool,
    /// Do not shadow-score candidates against the published file.
    #[arg(long)]
    no_shadow: bool,
    /// Run on a schedule (`5m`) until SIGINT or SIGTERM.
    #[arg(long, value_parser = parse_interval)]
    every: Option<Duration>,
    /// With --every: stop after this many runs.
    #[arg(long, requires = "every")]
    max_runs: Option<u64>,
}

/// Runs `rampart generate`: once (exit 0 published or unchanged, 1 held, 2 error), or with
/// `--every` on a schedule until a signal, then prints the totals. `default_contract` is
/// checked when no `--contract` is given: the binary passes the edge's, since the producer
/// takes contracts as input and does not depend on the scorer.
///
/// `output_check` judges each changed candidate's output beside the published file's (the
/// binary passes shadow scoring; `--no-shadow` drops it, `--approve-shadow` lets one run
/// through).
pub fn run(
    args: Args,
    default_contract: Contract,
    output_check: Option<Box<dyn OutputCheck>>,
) -> anyhow::Result<ExitCode> {
    let mut job = job(&args, default_contract, output_check)?;
    let Some(every) = args.every else {
        return match job.run_once(OffsetDateTime::now_utc()) {
            Ok(outcome) => {
                println!("{outcome}");
                Ok(ExitCode::from(outcome.exit_code()))
            }
            Err(e) => Err(e.into()),
        };
    };
    let stop = stop_on_signals().context("cannot install signal handlers")?;
    let summary = run_every(
        &mut job,
        every,
        args.max_runs,
        &stop,
        &mut OffsetDateTime::now_utc,
        &mut |line| eprintln!("rampart generate: {line}"),
    );
    println!(
        "{} runs: {} published, {} unchanged, {} held, {} failed",
        summary.runs, summary.published, summary.unchanged, summary.held, summary.failed
    );
    Ok(ExitCode::SUCCESS)
}

fn job(
    args: &Args,
    default_contract: Contract,
    output_check: Option<Box<dyn OutputCheck>>,
) -> anyhow::Result<Job> {
    let mut source = Source::parse(&args.source)?;
    if let Source::ClickHouse(ch) = source {
        let weights = match &args.model {
            Some(path) => {
                let text = read_text(path)?;
                let model =
                    Catalog::parse(&text).with_context(|| format!("model {}", path.display()))?;
                Weights::Model(Box::new(model))
            }
            None => Weights::Table(args.weights_table.clone()),
        };
        let credentials = args
            .user
            .as_ref()
            .map(|u| Credentials::new(u.clone(), args.password.clone().unwrap_or_default()));
        source = Source::ClickHouse(
            ch.with_table(&args.table)?
                .with_weights(weights)?
                .with_credentials(credentials)
                .with_timeouts(
                    args.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
                    args.timeout.unwrap_or(DEFAULT_QUERY_TIMEOUT),
                ),
        );
    }
    let contracts: Vec<Contract> = if args.contract.is_empty() {
        vec![default_contract]
    } else {
        args.contract
            .iter()
            .map(|p| {
                Contract::parse(&read_text(p)?).with_context(|| format!("contract {}", p.display()))
            })
            .collect::<anyhow::Result<_>>()?
    };
    let key = SecretKey::from_pem(&read_text(&args.key)?)
        .with_context(|| format!("key {}", args.key.display()))?;
    let output = match (&args.out, &args.publish) {
        (Some(path), _) => Output::File(path.clone()),
        (None, Some(url)) => {
            let token = match &args.publish_token_file {
                Some(f) => Some(
                    rampart_api::token::secret(&read_text(f)?)
                        .context("no token line")
                        .with_context(|| format!("{} holds no token", f.display()))?,
                ),
                None => rampart_api::token::from_env(),
            };
            Output::Publish(Target {
                url: url.clone(),
                token,
                transport: rampart_api::Transport::from_flags(args.ca.as_deref(), args.plain_http)?,
            })
        }
        (None, None) => anyhow::bail!("give -o FILE or --publish URL"),
    };
    Ok(Job {
        source,
        contracts,
        key,
        state_dir: args.state_dir.clone(),
        output,
        approve_delta: args.approve_delta,
        unfreeze: args.unfreeze,
        output_check: if args.no_shadow { None } else { output_check },
        approve_shadow: args.approve_shadow,
    })
}

fn read_text(path: &Path) -> anyhow::Result<String> {
    Ok(rampart_host::file::read_text(path, MAX_TEXT_FILE)?)
}
