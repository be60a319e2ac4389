//! What `rampart up` prints: the URLs once started, a summary line every
//! [`SUMMARY_INTERVAL`], rollout changes and the generator's new log lines, and who stopped
//! each injected file.

use std::collections::BTreeMap;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::Path;
use std::time::{Duration, Instant};

use rampart_api::Client;

use crate::inject;
use crate::load::Load;
use crate::origin::Origin;
use crate::system::Running;
use crate::workdir::Workdir;

/// How often the live summary prints a line.
pub const SUMMARY_INTERVAL: Duration = Duration::from_secs(5);

/// How often rollout changes and generator lines are looked for.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(500);

/// Largest piece of the generator's log read per look.
const MAX_LOG_READ: u64 = 64 * 1024;

pub(crate) fn print_urls(running: &Running, origin: &Origin, work: &Workdir, state_file: &Path) {
    let url = &running.control.url;
    println!();
    let ca = work.tls().ca_cert;
    println!("  control plane   {url}          (API under /v1, /openapi.json)");
    for r in &running.replicas {
        println!(
            "  replica         {}          (same API; writes go to the leader)",
            r.url
        );
    }
    if let Some(nats) = &running.nats {
        println!(
            "  NATS            {}   (JetStream, logs in {}/nats/)",
            nats.url(),
            work.root.display()
        );
    }
    println!(
        "  dashboard       {url}/ui/   (TLS by the local CA {})",
        ca.display()
    );
    println!("  origin          http://{}", origin.addr());
    for e in &running.edges {
        println!(
            "  edge {:<10} proxy http://{}   admin http://{}/status{}",
            e.spec.id,
            e.proxy,
            e.admin,
            if e.spec.canary { "   (canary)" } else { "" }
        );
    }
    println!();
    println!(
        "  try: export RAMPART_CA={}\n       rampart rollout watch --control {url}\n       rampart killswitch set bot off --control {url} --token-file {} --reason drill\n       rampart approval grant ID --control {url} --token-file {}   (a fleet-wide switch needs a second admin)",
        ca.display(),
        work.admin_token.display(),
        work.approver_token.display()
    );
    println!("  logs: {}/logs/   stop: Ctrl-C", work.root.display());
    println!(
        "  state: {} (URLs, token files, PIDs as JSON; removed when stopped)",
        state_file.display()
    );
    println!();
}

/// One line: the fleet's versions and health, the latest rollout, traffic and the origin.
pub(crate) async fn summary_line(
    anon: &Client,
    origin: &Origin,
    load: Option<&Load>,
    started: Instant,
) -> String {
    let mut line = format!("[{:>4}s]", started.elapsed().as_secs());
    match anon.nodes().await {
        Ok(list) => {
            let mut versions: BTreeMap<String, usize> = BTreeMap::new();
            let mut healthy = 0;
            for n in &list.nodes {
                let v = n
                    .active
                    .map_or("none".to_owned(), |a| format!("v{}", a.version));
                *versions.entry(v).or_insert(0) += 1;
                if n.health == rampart_api::Health::Healthy {
                    healthy += 1;
                }
            }
            let spread: Vec<String> = versions.iter().map(|(v, n)| format!("{v}×{n}")).collect();
            line.push_str(&format!(
                " fleet {} ({healthy}/{} healthy)",
                spread.join(" "),
                list.nodes.len()
            ));
        }
        Err(_) => line.push_str(" control plane unreachable"),
    }
    if let Ok(list) = anon.rollouts(1).await
        && let Some(r) = list.rollouts.first()
    {
        line.push_str(&format!(
            " | rollout #{} v{} {}{}",
            r.id,
            r.target.version,
            r.phase,
            r.current_wave
                .map(|w| format!(" wave {}/{}", w + 1, r.waves.len()))
                .unwrap_or_default()
        ));
    }
    if let Some(load) = load {
        let t = load.stats().totals();
        line.push_str(&format!(
            " | traffic {} sent, {} failed, {} blocked",
            t.sent,
            t.failures(),
            t.blocked
        ));
    }
    // Of the requests the edges scored, the share they called likely automated (<30).
    let scores = origin.counts().scores();
    let scored: u64 = scores.iter().skip(1).sum();
    let low: u64 = scores.iter().skip(1).take(29).sum();
    line.push_str(&format!(
        " | origin {} requests, {} unscored, {:.0}% of scored <30",
        origin.counts().requests(),
        scores.first().copied().unwrap_or(0),
        if scored > 0 {
            100.0 * low as f64 / scored as f64
        } else {
            0.0
        }
    ));
    line
}

/// A line when the latest rollout changed phase or wave.
pub(crate) async fn rollout_change(anon: &Client, seen: &mut String) -> Option<String> {
    let r = anon.rollouts(1).await.ok()?.rollouts.into_iter().next()?;
    let key = format!("{}:{}:{:?}", r.id, r.phase, r.current_wave);
    if *seen == key {
        return None;
    }
    *seen = key;
    let wave = r
        .current_wave
        .and_then(|w| r.waves.get(w))
        .map(|w| format!(" {} ({})", w.name, w.nodes.join(", ")))
        .unwrap_or_default();
    let outcome = r.outcome.map(|o| format!(": {o}")).unwrap_or_default();
    Some(format!(
        "rollout #{} of v{}: {}{wave}{outcome}",
        r.id, r.target.version, r.phase
    ))
}

/// Lines appended to `path` since `offset`.
pub(crate) fn new_lines(path: &Path, offset: &mut u64) -> Vec<String> {
    let Ok(mut file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    if file.seek(SeekFrom::Start(*offset)).is_err() {
        return Vec::new();
    }
    let mut text = String::new();
    let Ok(n) = file.take(MAX_LOG_READ).read_to_string(&mut text) else {
        return Vec::new();
    };
    // Only whole lines; a partial last line waits for the next look.
    let whole = text.rfind('\n').map_or(0, |i| i + 1);
    *offset += u64::try_from(whole.min(n)).unwrap_or(0);
    text.get(..whole)
        .unwrap_or("")
        .lines()
        .map(str::to_owned)
        .collect()
}

pub(crate) fn print_stops(stops: &[inject::Stop]) {
    println!();
    println!("inject nov18: who stopped what");
    for s in stops {
        println!("  {:<48} {:<28} {}", s.file, s.layer, s.detail);
    }
    println!();
}
