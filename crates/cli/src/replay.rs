//! `rampart replay`: the fleet simulator's verb (rampart-sim does the work).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use indicatif::{ProgressBar, ProgressStyle};
use rampart_sim::{Mode, Scenario, replay, report};

/// Wall time between two redraws of the progress bar's message.
const REDRAW: Duration = Duration::from_millis(100);

/// Replay an incident on a simulated fleet and write summary.json and report.html.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A built-in scenario (nov18, dec5, afd-oct29, shadow) or a scenario file (TOML).
    pub scenario: String,
    /// naive (the pipeline of the day), rampart (every layer), or ablation (each layer alone).
    #[arg(long, default_value = "rampart")]
    pub mode: String,
    /// Where summary.json and report.html go.
    #[arg(long, default_value = "replay-out")]
    pub out: PathBuf,
    /// Another seed than the scenario's.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Another number of PoPs than the scenario's.
    #[arg(long)]
    pub pops: Option<u32>,
    /// Another number of nodes per PoP than the scenario's.
    #[arg(long)]
    pub nodes_per_pop: Option<u32>,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Runs the replay; exit 0 when the run ends (whatever it found), 2 on usage or I/O errors.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let Some(mode) = Mode::parse(&args.mode) else {
        bail!(
            "--mode {:?}: expected naive, rampart or ablation",
            args.mode
        );
    };
    let mut scenario = Scenario::load(&args.scenario)?
        .resized(args.pops, args.nodes_per_pop)
        .context("fleet size")?;
    if let Some(seed) = args.seed {
        scenario.seed = seed;
    }
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(1000)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {percent:>3}% {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let mut last = Instant::now();
    let mut on_progress = |p: rampart_sim::Progress| {
        if let Some(permille) = p.done_ms.saturating_mul(1000).checked_div(p.total_ms) {
            bar.set_position(permille);
        }
        if last.elapsed() >= REDRAW {
            last = Instant::now();
            bar.set_message(format!("run {}/{}", p.run + 1, p.runs));
        }
    };
    let result = replay(&scenario, mode, &mut on_progress)?;
    bar.finish_and_clear();
    let summary = report::write(&result, &args.out)
        .with_context(|| format!("writing the report into {}", args.out.display()))?;
    for r in &summary.runs {
        let h = &r.headline;
        println!(
            "{:<34} {:>4} impact min  peak failed {:>6.2}%  peak blocked {:>6.2}%  nodes hit {:>5}  {}",
            r.key,
            h.impact_minutes,
            h.peak_failed_share * 100.0,
            h.peak_blocked_human_share * 100.0,
            h.nodes_ever_affected,
            h.verdict_text(),
        );
    }
    println!(
        "{} runs of {} ({} nodes) in {:.1} s; wrote {} and {}",
        summary.runs.len(),
        scenario.name,
        scenario.node_count(),
        started.elapsed().as_secs_f64(),
        args.out.join("summary.json").display(),
        args.out.join("report.html").display()
    );
    Ok(ExitCode::SUCCESS)
}
