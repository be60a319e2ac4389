//! Load script: N simulated edges long-poll a control plane on loopback; a kill switch flips
//! R times; prints how long until every edge has the new state (p50, p99, max), and how
//! many heartbeats per second the control plane answers with every edge beating flat out.
//!
//! `cargo run --release -p rampart-e2e --example killswitch_fanout -- [AGENTS] [ROUNDS]`
//!
//! Bounded: at most 10,000 agents, 100 rounds, 30 s per round, 3 s of flat-out beating.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rampart_api::{Client, Heartbeat, KillSwitchSet, Labels, Module, Registration};
use rampart_artifact::{ContractSpec, Keyring, SecretKey};
use rampart_control::{Config, Server};
use rampart_e2e::control_plane::{ADMIN, ADMIN2, enroll, tokens};
use tokio::sync::watch;

const MAX_AGENTS: usize = 10_000;
const MAX_ROUNDS: usize = 100;
const ROUND_TIMEOUT: Duration = Duration::from_secs(30);
const FLAT_OUT: Duration = Duration::from_secs(3);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let agents: usize = args.next().map_or(Ok(1000), |a| a.parse())?;
    let rounds: usize = args.next().map_or(Ok(5), |a| a.parse())?;
    let (agents, rounds) = (agents.clamp(1, MAX_AGENTS), rounds.clamp(1, MAX_ROUNDS));

    let dir = tempfile::tempdir()?;
    let mut config = Config::new(
        dir.path().to_owned(),
        tokens(),
        Keyring::new([SecretKey::from_seed([1; 32]).public()]),
    );
    config.listen = "127.0.0.1:0".parse()?;
    let server = Server::start(config).await?;
    let url = format!("http://{}", server.addr());
    let admin = Client::new(&url, Some(ADMIN.into()))?;
    let admin2 = Client::new(&url, Some(ADMIN2.into()))?;

    // Each node enrolls and registers with its own credential.
    let mut clients = Vec::with_capacity(agents);
    for i in 0..agents {
        let node = admin.with_token(Some(enroll(&admin, &format!("edge-{i}")).await));
        clients.push(node.clone());
        node.register(&Registration {
            node: format!("edge-{i}"),
            labels: Labels {
                pop: format!("pop-{}", i % 30),
                region: format!("r-{}", i % 3),
                canary: i == 0,
            },
            contract: ContractSpec::default(),
            software_version: "bench".into(),
        })
        .await?;
    }

    // Each agent: long-poll with a 1 s wait, like a real edge; report when it first sees
    // the switch in `want`.
    let (want_tx, want_rx) = watch::channel(true);
    let (stop_tx, stop_rx) = watch::channel(false);
    let seen_at: Arc<Vec<AtomicU64>> = Arc::new((0..agents).map(|_| AtomicU64::new(0)).collect());
    let epoch = Instant::now();
    let flat_out = Arc::new(AtomicU64::new(0));
    let beats = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for i in 0..agents {
        let client = clients.get(i).cloned().unwrap_or_else(|| admin.clone());
        let (want, mut stop) = (want_rx.clone(), stop_rx.clone());
        let (seen_at, flat_out, beats) = (
            Arc::clone(&seen_at),
            Arc::clone(&flat_out),
            Arc::clone(&beats),
        );
        tasks.push(tokio::spawn(async move {
            let node = format!("edge-{i}");
            let mut beat = Heartbeat::empty(0);
            for seq in 0..1_000_000u64 {
                if *stop.borrow_and_update() {
                    break;
                }
                beat.seq = seq;
                beat.wait_ms = if flat_out.load(Ordering::Relaxed) == 1 {
                    0
                } else {
                    1_000
                };
                let answer = tokio::select! {
                    a = client.heartbeat(&node, &beat) => a,
                    _ = stop.changed() => break,
                };
                let Ok(answer) = answer else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                beats.fetch_add(1, Ordering::Relaxed);
                beat.seen = Some(answer.etag);
                if answer.kill_switches.bot.enabled == *want.borrow()
                    && let Some(slot) = seen_at.get(i)
                {
                    let now = u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
                    let _ = slot.compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
                }
            }
        }));
    }
    // Everyone connected and waiting.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut latencies_ms: Vec<f64> = Vec::new();
    for round in 0..rounds {
        let enabled = round % 2 == 1;
        for s in seen_at.iter() {
            s.store(0, Ordering::Relaxed);
        }
        want_tx.send_replace(enabled);
        // Fleet-wide: one admin asks, the other approves; timed from the approval.
        let pending = admin
            .killswitch_set(&KillSwitchSet {
                module: Module::Bot,
                enabled,
                node: None,
                clear: false,
                reason: format!("bench round {round}"),
            })
            .await?
            .pending()
            .context("a fleet kill switch waits for a second admin")?;
        let t0 = u64::try_from(epoch.elapsed().as_micros()).unwrap_or(0);
        admin2.approve(pending.id).await?;
        let deadline = Instant::now() + ROUND_TIMEOUT;
        while seen_at.iter().any(|s| s.load(Ordering::Relaxed) == 0) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        for s in seen_at.iter() {
            let at = s.load(Ordering::Relaxed);
            if at > 0 {
                latencies_ms.push(at.saturating_sub(t0) as f64 / 1000.0);
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    latencies_ms.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        let i = ((latencies_ms.len() as f64 - 1.0) * p).round() as usize;
        latencies_ms.get(i).copied().unwrap_or(f64::NAN)
    };
    println!(
        "propagation of a kill switch to {agents} long-polling agents, {rounds} rounds: \
         received {}/{}, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies_ms.len(),
        agents * rounds,
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );

    // Flat out: every agent beats with wait 0.
    flat_out.store(1, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = beats.load(Ordering::Relaxed);
    tokio::time::sleep(FLAT_OUT).await;
    let after = beats.load(Ordering::Relaxed);
    println!(
        "heartbeats answered flat out with {agents} agents (client and server on the same 2 cores): {:.0}/s",
        (after - before) as f64 / FLAT_OUT.as_secs_f64()
    );

    stop_tx.send_replace(true);
    for t in tasks {
        let _ = t.await;
    }
    server.shutdown().await;
    Ok(())
}
