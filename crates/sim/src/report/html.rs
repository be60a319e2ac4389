//! `report.html`: one self-contained page (inline CSS and SVG, no script, no network), so it
//! reads offline and can be mailed around.

use std::fmt::Write as _;

use crate::clock::format_time;
use crate::mode::{Layer, Mode};
use crate::report::chart::{Band, Series, lines, stacked};
use crate::report::summary::{RunSummary, Summary};
use crate::report::{Report, Run};

/// Colours of the runs, the naive one first.
const RUN_COLORS: &[&str] = &[
    "#d62728", "#2ca02c", "#1f77b4", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
];
/// Colours of good versions in the versions chart (cycled).
const GOOD_COLORS: &[&str] = &[
    "#9ecae1", "#6baed6", "#4292c6", "#2171b5", "#a1d99b", "#74c476",
];
/// Colours of faulty versions.
const BAD_COLORS: &[&str] = &["#fc9272", "#fb6a4a", "#ef3b2c"];
/// Colour of nodes that are down.
const DOWN_COLOR: &str = "#252525";

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;max-width:1000px;margin:24px auto;padding:0 16px;color:#222}
h1{font-size:24px;margin-bottom:4px}h2{font-size:19px;margin-top:32px;border-bottom:1px solid #ddd}
.sub{color:#555}.cards{display:flex;flex-wrap:wrap;gap:12px}.card{border:1px solid #ddd;border-radius:6px;padding:10px 14px;min-width:280px;flex:1}
.card h3{margin:0 0 6px;font-size:16px}.big{font-size:22px;font-weight:600}.bad{color:#b2182b}.good{color:#1a7f37}
table{border-collapse:collapse;width:100%;font-size:13.5px}td,th{border-bottom:1px solid #eee;padding:5px 6px;text-align:left;vertical-align:top}
th{background:#f6f6f6}.num{text-align:right;white-space:nowrap}.chart{width:100%;height:auto;background:#fff;border:1px solid #eee;margin:8px 0}
.chart .title{font:600 13px system-ui,sans-serif}.chart .tick,.chart .legend{font:11px system-ui,sans-serif;fill:#444}
.chart .grid{stroke:#eee}.chart .mark{stroke:#999;stroke-dasharray:2 3}.chart .mark-label{font:10px system-ui,sans-serif;fill:#666}
.layer{color:#555;font-size:12px}details{margin:6px 0}code{background:#f3f3f3;padding:0 3px}";

/// The page.
pub fn render(report: &Report, summary: &Summary) -> String {
    let s = &report.scenario;
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>rampart replay: {}</title><style>{STYLE}</style></head><body>",
        esc(&s.name)
    );
    let _ = write!(
        out,
        "<h1>{}</h1><p class=\"sub\">rampart replay of <code>{}</code>, mode <b>{}</b>: {} PoPs × {} nodes ({} nodes), {} to {} UTC on {}, seed {}.</p><p>{}</p>",
        esc(&s.title),
        esc(&s.name),
        report.mode.name(),
        s.fleet.pops,
        s.fleet.nodes_per_pop,
        s.node_count(),
        format_time(s.start),
        format_time(s.end),
        esc(&s.date),
        s.seed,
        esc(s.description.trim())
    );
    out.push_str("<h2>In one minute</h2>");
    out.push_str(&one_minute(report, summary));
    out.push_str("<div class=\"cards\">");
    for (run, rs) in report.runs.iter().zip(&summary.runs) {
        if report.mode == Mode::Ablation && run.layer.is_some() {
            continue;
        }
        out.push_str(&card(rs));
    }
    out.push_str("</div>");

    let marks: Vec<(u64, String)> = s
        .events
        .iter()
        .filter(|e| e.note.is_some())
        .map(|e| (e.at, format_time(e.at)))
        .collect();
    let failed: Vec<Series> = series(report, |m| m.failed_share());
    let blocked: Vec<Series> = series(report, |m| m.blocked_share());
    out.push_str("<h2>Failed requests</h2><p>Share of all requests answered with an error (5xx), per minute. A crash-looping proxy fails every request it gets.</p>");
    out.push_str(&lines(
        "Failed requests (share of all requests)",
        &failed,
        s.start,
        s.end,
        0.0,
        &marks,
    ));
    out.push_str("<h2>People blocked as bots</h2><p>Share of people's requests blocked by customers' \"block bots\" rules because of the fault (a score of 0 from a proxy that could not load the file). The healthy model's own mistakes are not counted here; they are in <code>summary.json</code> as <code>blocked_human_share_all</code>.</p>");
    out.push_str(&lines(
        "People blocked because of the fault (share of people's requests)",
        &blocked,
        s.start,
        s.end,
        0.0,
        &marks,
    ));

    out.push_str("<h2>Versions across the fleet</h2><p>Nodes per feature-file version at the end of each 5-minute bucket; red versions carry the fault, black is nodes down.</p>");
    for run in report.runs.iter().filter(|r| r.layer.is_none()) {
        out.push_str(&versions_chart(run, s.start, s.end));
    }

    out.push_str("<h2>Layer by layer</h2>");
    out.push_str(&layer_table(report, summary));
    if !summary.scenario.faults.is_empty() {
        out.push_str("<h2>Faults</h2><ul>");
        for f in &summary.scenario.faults {
            let _ = write!(out, "<li>{}</li>", esc(f));
        }
        out.push_str("</ul>");
        out.push_str(&fault_table(summary));
    }

    out.push_str("<h2>Timeline</h2>");
    for (run, rs) in report.runs.iter().zip(&summary.runs) {
        let open = if run.layer.is_none() { " open" } else { "" };
        let _ = write!(
            out,
            "<details{open}><summary><b>{}</b> ({} entries)</summary><table><tr><th>UTC</th><th>layer</th><th>what</th></tr>",
            esc(&rs.label),
            rs.timeline.len()
        );
        for e in &rs.timeline {
            let _ = write!(
                out,
                "<tr><td class=\"num\">{}</td><td class=\"layer\">{}</td><td>{}</td></tr>",
                esc(&e.at),
                e.layer.map_or("", Layer::label),
                esc(&e.what)
            );
        }
        out.push_str("</table></details>");
    }
    out.push_str(FIDELITY);
    out.push_str("</body></html>\n");
    out
}

fn one_minute(report: &Report, summary: &Summary) -> String {
    let Some(naive) = summary.runs.first() else {
        return String::new();
    };
    let mut p = format!(
        "<p>With the pipeline of the day, <b class=\"bad\">{:.1}%</b> of all requests failed over the replay (up to <b class=\"bad\">{:.0}%</b> in a 5-minute bucket), people were blocked as bots in up to <b class=\"bad\">{:.1}%</b> of their requests, {} of {} nodes were hit, and the impact lasted <b class=\"bad\">{} minutes</b> between {} and {}.</p>",
        naive.headline.failed_share * 100.0,
        naive.headline.peak_failed_share * 100.0,
        naive.headline.peak_blocked_human_share * 100.0,
        naive.headline.nodes_ever_affected,
        report.scenario.node_count(),
        naive.headline.impact_minutes,
        naive.headline.first_impact.as_deref().unwrap_or("-"),
        naive.headline.last_impact.as_deref().unwrap_or("-"),
    );
    for rs in summary.runs.iter().skip(1).filter(|r| r.layer.is_none()) {
        let _ = write!(
            p,
            "<p>With <b>{}</b>: <b class=\"{}\">{} impact minutes</b>, {:.4}% of requests failed, {:.4}% of people's requests blocked by the fault. {}</p>",
            esc(&rs.label),
            if rs.headline.no_impact { "good" } else { "bad" },
            rs.headline.impact_minutes,
            rs.headline.failed_share * 100.0,
            rs.headline.blocked_human_share * 100.0,
            esc(&stopped_sentence(rs))
        );
    }
    if report.mode == Mode::Ablation {
        let stopped = report
            .runs
            .iter()
            .skip(1)
            .filter(|r| r.verdict(&report.runs).stopped())
            .count();
        let _ = write!(
            p,
            "<p>Each layer alone, on top of the pipeline of the day: <b>{stopped} of {}</b> stop the fault by themselves (see the table below for what each one costs).</p>",
            report.runs.len().saturating_sub(1)
        );
    }
    p
}

/// "Stopped by …" for a run.
pub fn stopped_sentence(rs: &RunSummary) -> String {
    let s = &rs.stops;
    let mut parts = Vec::new();
    if s.scoped_query > 0 {
        parts.push(format!(
            "the generator's query names its database, so the {} runs on changed ClickHouse nodes got clean answers",
            s.scoped_query
        ));
    }
    if s.generator_guards > 0 {
        parts.push(format!(
            "the producer guards held {} faulty candidates",
            s.generator_guards
        ));
    }
    if s.control_validation > 0 {
        parts.push(format!(
            "the control plane refused {} faulty files",
            s.control_validation
        ));
    }
    if s.canary_gates > 0 {
        parts.push(format!(
            "health gates rolled back {} faulty files in the canary",
            s.canary_gates
        ));
    }
    if s.score_shift_gate > 0 {
        parts.push(format!(
            "the score-shift gate rolled back {} faulty files",
            s.score_shift_gate
        ));
    }
    if s.watch > 0 {
        parts.push(format!(
            "the watch after the last wave rolled back {} faulty files from the whole fleet",
            s.watch
        ));
    }
    if s.edge_nacks > 0 {
        parts.push(format!(
            "edges refused faulty files {} times (node × file) and kept serving",
            s.edge_nacks
        ));
    }
    let crash_loop = s
        .sentinel_poisonings
        .saturating_sub(s.recurrence_poisonings);
    if crash_loop > 0 {
        parts.push(format!(
            "the sentinel poisoned a crash-looping version {crash_loop} times (node × file)"
        ));
    }
    if s.recurrence_poisonings > 0 {
        parts.push(format!(
            "the sentinel's recurrence rule poisoned a version that kept killing the process {} times (node × file)",
            s.recurrence_poisonings
        ));
    }
    if parts.is_empty() {
        if s.reached_fleet > 0 {
            return format!(
                "Nothing stopped the {} faulty files that reached the fleet.",
                s.reached_fleet
            );
        }
        return "No faulty file was produced.".to_owned();
    }
    format!("Stopped by: {}.", parts.join("; "))
}

fn card(rs: &RunSummary) -> String {
    let h = &rs.headline;
    let class = if h.no_impact { "good" } else { "bad" };
    format!(
        "<div class=\"card\"><h3>{}</h3><div class=\"big {class}\">{} impact minutes</div><table>\
         <tr><td>peak failed share (5 min)</td><td class=\"num\">{:.2}%</td></tr>\
         <tr><td>peak people blocked by the fault</td><td class=\"num\">{:.2}%</td></tr>\
         <tr><td>requests failed</td><td class=\"num\">{}</td></tr>\
         <tr><td>people's requests blocked</td><td class=\"num\">{}</td></tr>\
         <tr><td>nodes ever affected</td><td class=\"num\">{}</td></tr>\
         <tr><td>proxy crashes</td><td class=\"num\">{}</td></tr>\
         <tr><td>first / last impact</td><td class=\"num\">{} / {}</td></tr></table></div>",
        esc(&rs.label),
        h.impact_minutes,
        h.peak_failed_share * 100.0,
        h.peak_blocked_human_share * 100.0,
        h.failed_requests,
        h.blocked_humans,
        h.nodes_ever_affected,
        h.crashes,
        h.first_impact.as_deref().unwrap_or("-"),
        h.last_impact.as_deref().unwrap_or("-"),
    )
}

fn series(report: &Report, value: impl Fn(&crate::fleet::Tally) -> f64) -> Vec<Series> {
    let start = report.scenario.start;
    report
        .runs
        .iter()
        .enumerate()
        .map(|(i, run)| Series {
            name: run.key.clone(),
            color: RUN_COLORS
                .get(i % RUN_COLORS.len())
                .copied()
                .unwrap_or("#000")
                .to_owned(),
            points: run
                .minutes
                .iter()
                .enumerate()
                .map(|(m, t)| (start + m as u64 * crate::clock::MINUTE, value(t)))
                .collect(),
            dashed: run.layer.is_some(),
        })
        .collect()
}

fn versions_chart(run: &Run, start: u64, end: u64) -> String {
    let times: Vec<u64> = run.buckets.iter().map(|b| b.start).collect();
    let mut versions: Vec<Option<u64>> = run
        .buckets
        .iter()
        .flat_map(|b| b.census.versions.iter().map(|(v, _)| *v))
        .collect();
    versions.sort();
    versions.dedup();
    let (mut good, mut bad) = (0usize, 0usize);
    let mut bands: Vec<Band> = versions
        .iter()
        .map(|v| {
            let faulty = v.is_some_and(|v| run.faulty_versions.contains(&v));
            let color = if faulty {
                bad += 1;
                BAD_COLORS.get((bad - 1) % BAD_COLORS.len())
            } else {
                good += 1;
                GOOD_COLORS.get((good - 1) % GOOD_COLORS.len())
            };
            Band {
                name: v.map_or("none".to_owned(), |v| format!("v{v}")),
                color: color.copied().unwrap_or("#999").to_owned(),
                values: run
                    .buckets
                    .iter()
                    .map(|b| {
                        b.census
                            .versions
                            .iter()
                            .find(|(x, _)| x == v)
                            .map_or(0.0, |(_, n)| *n as f64)
                    })
                    .collect(),
            }
        })
        .collect();
    bands.push(Band {
        name: "down".to_owned(),
        color: DOWN_COLOR.to_owned(),
        values: run.buckets.iter().map(|b| b.census.down as f64).collect(),
    });
    stacked(
        &format!("Versions served: {}", run.label),
        &bands,
        &times,
        start,
        end,
    )
}

fn layer_table(report: &Report, summary: &Summary) -> String {
    let mut out = String::from(
        "<table><tr><th>run</th><th>verdict</th><th class=\"num\">impact min</th><th class=\"num\">peak failed</th><th class=\"num\">peak blocked</th><th class=\"num\">nodes hit</th><th class=\"num\">crashes</th><th class=\"num\">files out / rollbacks</th><th>how the fault was met</th></tr>",
    );
    for (run, rs) in report.runs.iter().zip(&summary.runs) {
        let h = &rs.headline;
        let verdict = run.verdict(&report.runs);
        let _ = write!(
            out,
            "<tr><td><b>{}</b></td><td class=\"{}\">{}</td><td class=\"num\">{}</td><td class=\"num\">{:.2}%</td><td class=\"num\">{:.2}%</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{} / {}</td><td>{}</td></tr>",
            esc(&rs.label),
            if verdict.stopped() { "good" } else { "bad" },
            esc(verdict.describe()),
            h.impact_minutes,
            h.peak_failed_share * 100.0,
            h.peak_blocked_human_share * 100.0,
            h.nodes_ever_affected,
            h.crashes,
            rs.files_published,
            rs.rollouts_rolled_back,
            esc(&stopped_sentence(rs))
        );
    }
    out.push_str("</table><p class=\"sub\">Verdict: <i>no impact</i> when no minute reached 0.1% of requests failed or of people blocked; <i>contained</i> when failures and blocked people both stayed under 5% of the naive run's (what the layer costs); otherwise the layer does not stop that part of the fault alone.</p>");
    out
}

/// The fault rows of every run: impact, failures, slowed requests, nodes, detection.
fn fault_table(summary: &Summary) -> String {
    let mut out = String::from(
        "<table><tr><th>run</th><th class=\"num\">impact min</th><th class=\"num\">failed</th><th class=\"num\">slowed</th><th class=\"num\">nodes affected</th><th class=\"num\">crashes</th><th class=\"num\">last-known-good held a faulty file</th><th>fault from</th><th>detected</th><th class=\"num\">time to detection</th></tr>",
    );
    for rs in &summary.runs {
        let Some(f) = &rs.fault else {
            continue;
        };
        let detected = match (&f.detected_at, f.detected_by) {
            (Some(at), Some(layer)) => format!("{at} by {}", layer.label()),
            _ => "by no layer".to_owned(),
        };
        let _ = write!(
            out,
            "<tr><td><b>{}</b></td><td class=\"num\">{}</td><td class=\"num\">{:.2}%</td><td class=\"num\">{:.2}%</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td></tr>",
            esc(&rs.label),
            f.impact_minutes,
            f.failed_share * 100.0,
            f.slowed_share * 100.0,
            f.nodes_affected,
            f.crashes,
            f.nodes_with_faulty_lkg,
            esc(f.fault_from.as_deref().unwrap_or("never")),
            esc(&detected),
            f.time_to_detection_minutes
                .map_or("-".to_owned(), |m| format!("{m:.1} min")),
        );
    }
    out.push_str("</table><p class=\"sub\">Detection: the first act of a layer against a faulty file (a held candidate, a refusal, a failed gate or watch, an edge NACK, a poisoning by the sentinel of a naive proxy, by either of its rules), from the first faulty candidate. Operators' own detection is on the timeline.</p>");
    out
}

const FIDELITY: &str = "<h2>What is modelled, what is simplified</h2><ul>
<li><b>Real code</b>: the generator's <code>Job</code> with every producer guard and its state dir; the control plane's validation (<code>rampart_artifact::check</code> against the edge contract, signed); the rollout engine (<code>plan</code>, <code>reconcile</code>, every gate, the watch after the last wave, bad marks) driven each second with every node's heartbeat, its restarts and its deaths; blessing by <code>Rollout::blessing</code>, the blessed versions handed to every node; one ingest <code>Store</code> per edge node on its own data dir (verify, validate, compile into 200 slots, swap, journal, last-known-good after a 60 s soak and, with a control plane, a blessing, deaths reported at the next boot, kill switch); the sentinel's <code>decide</code> over the same journal events; the bot model's <code>Model::score</code> over features extracted from realistic requests.</li>
<li><b>Modelled</b>: the ClickHouse cluster (nodes take the permission change one by one; an unscoped <code>system.columns</code> query then also lists the r0 columns, plus r0-only ones); the naive proxies (FL2 panics on a file over 200 features and restarts into it; FL scores every request 0; a share of long crash loops leave nodes wedged until an operator restarts them); operators (the scenario's actions; an inconclusive rollout is rolled back after 5 minutes).</li>
<li><b>Simplified</b>: traffic is a sample of 4,096 realistic requests per 5-minute bucket, scored once per model and scaled to each node's rate and PoP bot share (client-rate features come from the sample's own stream); a down node's requests fail (no load balancing around it); debug and error-report load, Workers KV, Access and other dependent services are not modelled; heartbeats arrive every second without loss; the control plane's aftercare (deaths compared after a rollout succeeded) is not modelled, and deaths carry no cause.</li></ul>";

/// Escapes text for HTML and SVG.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
