//! `rampart model fit`: a thin wrapper over `rampart-fit`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use rampart_fit::FitOptions;

use crate::files;

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
    #[arg(long, default_value_t = rampart_fit::TARGET_FEATURES)]
    features: usize,
    /// The catalog file to write.
    #[arg(long, default_value = "catalog/features.catalog.json")]
    out: PathBuf,
    /// The report to write.
    #[arg(long, default_value = "docs/model.md")]
    report: PathBuf,
}

pub(crate) fn model(cmd: ModelCommand) -> anyhow::Result<ExitCode> {
    let ModelCommand::Fit(args) = cmd;
    let profiles = rampart_traffic::Profiles::load(&args.data)
        .with_context(|| format!("data {}", args.data.display()))?;
    let result = rampart_fit::fit(
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
