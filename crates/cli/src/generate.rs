//! `rampart generate` and `rampart model fit`: thin wrappers over `rampart-generate`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use rampart_artifact::{Contract, SecretKey};
use rampart_generate::publish::Target;
use rampart_generate::schedule::{parse_interval, run_every, stop_on_signals};
use rampart_generate::source::clickhouse::Credentials;
use rampart_generate::source::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_QUERY_TIMEOUT, DEFAULT_SOURCE, DEFAULT_TABLE,
    DEFAULT_WEIGHTS_TABLE,
};
use rampart_generate::{Catalog, FitOptions, Job, Output, Source, Weights};
use time::OffsetDateTime;

use crate::{artifact, files, remote};

/// Generate a signed feature file from ClickHouse or the embedded catalog, through the
/// producer guards. Exit 0 published or unchanged, 1 held by a guard, 2 error.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
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
    /// Let through a file the delta guard holds (this run only).
    #[arg(long)]
    approve_delta: bool,
    /// Lift a freeze set by the flapping guard (this run only).
    #[arg(long)]
    unfreeze: bool,
    /// Run on a schedule (`5m`) until SIGINT or SIGTERM.
    #[arg(long, value_parser = parse_interval)]
    every: Option<Duration>,
    /// With --every: stop after this many runs.
    #[arg(long, requires = "every")]
    max_runs: Option<u64>,
}

/// Bot model commands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum ModelCommand {
    /// Fit the logistic bot model on labelled user agents; write the catalog and the report.
    Fit(FitArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct FitArgs {
    /// Directory with browsers.json and bots.json.
    #[arg(long, default_value = "../shared/data/user-agents")]
    data: PathBuf,
    /// Seed of the traffic generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Features to keep.
    #[arg(long, default_value_t = rampart_generate::fit::TARGET_FEATURES)]
    features: usize,
    /// The catalog file to write.
    #[arg(long, default_value = "catalog/features.catalog.json")]
    out: PathBuf,
    /// The report to write.
    #[arg(long, default_value = "docs/model.md")]
    report: PathBuf,
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut job = job(&args)?;
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

fn job(args: &Args) -> anyhow::Result<Job> {
    let mut source = Source::parse(&args.source)?;
    if let Source::ClickHouse(ch) = source {
        let weights = match &args.model {
            Some(path) => {
                let text = files::read_text(path)?;
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
        vec![rampart_score::edge_contract()]
    } else {
        args.contract
            .iter()
            .map(|p| artifact::load_contract(Some(p)))
            .collect::<anyhow::Result<_>>()?
    };
    let key = SecretKey::from_pem(&files::read_text(&args.key)?)
        .with_context(|| format!("key {}", args.key.display()))?;
    let output = match (&args.out, &args.publish) {
        (Some(path), _) => Output::File(path.clone()),
        (None, Some(url)) => {
            let token = match &args.publish_token_file {
                Some(f) => Some(
                    remote::token_from(&files::read_text(f)?)
                        .with_context(|| format!("{} holds no token", f.display()))?,
                ),
                None => std::env::var(remote::TOKEN_ENV)
                    .ok()
                    .filter(|t| !t.trim().is_empty()),
            };
            Output::Publish(Target {
                url: url.clone(),
                token,
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
    })
}

pub(crate) fn model(cmd: ModelCommand) -> anyhow::Result<ExitCode> {
    let ModelCommand::Fit(args) = cmd;
    let profiles = rampart_traffic::Profiles::load(&args.data)
        .with_context(|| format!("data {}", args.data.display()))?;
    let result = rampart_generate::fit(
        &profiles,
        &FitOptions {
            data: args.data.display().to_string(),
            seed: args.seed,
            features: args.features,
        },
    )?;
    write(&args.out, result.catalog.to_json().as_bytes())?;
    write(&args.report, result.report.as_bytes())?;
    for e in &result.evaluations {
        println!(
            "{:<22} {:>3} features  held-out AUC {:.4}",
            e.name, e.features, e.auc
        );
    }
    println!(
        "{} training / {} held-out samples; wrote {} and {}",
        result.samples.0,
        result.samples.1,
        args.out.display(),
        args.report.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    Ok(files::write_atomic(path, bytes)?)
}
