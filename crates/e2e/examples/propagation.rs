//! Load script: N real edge agents (the `rampart-edge` agent code, each with its own ingest
//! store on /dev/shm and its own metrics) follow one in-process control plane on loopback.
//!
//! 1. Propagation: a file is published and pushed to every node at once (break glass); the
//!    time from the publish call to each agent's ACK heartbeat (p50, p99, max).
//! 2. Rollback: a second file reaches every node, but a few nodes do not trust its key and
//!    NACK it; the time from the first NACK heartbeat to every other node of the wave serving
//!    the previous version again, in ms and in heartbeat intervals.
//! 3. Propagation again, on a warm fleet.
//!
//! `cargo run --release -p rampart-e2e --example propagation -- [AGENTS] [NACKERS] [sqlite|nats]`
//!
//! `sqlite` (the default): the control plane on SQLite, agents beating over HTTP. `nats`: a
//! 3-server NATS cluster (`nats-server` on PATH), the control plane on it (R3), agents over
//! NATS (`nats://…`: requests served by the leader, files from the object store);
//! `nats-http`: the same store, agents over HTTP. Agents share one client (one HTTP pool, or
//! one NATS connection).
//!
//! Bounded: at most 10,000 agents; every wait gives up after 120 s.

use rampart_host::clock::now_ms;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use rampart_api::{AckNack, Client, Labels, StartRollout};
use rampart_artifact::{Digest, Envelope, Keyring, SecretKey};
use rampart_control::{Config, Server};
use rampart_e2e::control_plane::{ADMIN, ADMIN2, PUBLISHER, enroll, tokens};
use rampart_edge::agent::{Agent, AgentConfig, AgentReport};
use rampart_edge::bot::ModelCompiler;
use rampart_edge::metrics::Metrics;
use rampart_ingest::{SoakConfig, Store};
use rampart_up::inject::catalog_document;
use tokio::sync::watch;

const MAX_AGENTS: usize = 10_000;
const WAIT: Duration = Duration::from_secs(120);
/// The heartbeat interval (the control plane's default).
const BEAT_MS: u64 = 1_000;
/// Synthetic requests each agent's metrics count per 100 ms, so the gates have evidence.
const REQUESTS_PER_TICK: u64 = 5;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    rampart_host::log::init();
    let mut args = std::env::args().skip(1);
    let agents: usize = args.next().map_or(Ok(1000), |a| a.parse())?;
    let nackers: usize = args.next().map_or(Ok(5), |a| a.parse())?;
    // (store on NATS, agents over NATS)
    let (over_nats, agents_over_nats) = match args.next().as_deref() {
        None | Some("sqlite") => (false, false),
        Some("nats") => (true, true),
        Some("nats-http") => (true, false),
        Some(other) => bail!("engine {other:?}: sqlite, nats or nats-http"),
    };
    let agents = agents.clamp(2, MAX_AGENTS);
    let nackers = nackers.clamp(1, agents - 1);

    let base = if std::path::Path::new("/dev/shm").is_dir() {
        tempfile::tempdir_in("/dev/shm")?
    } else {
        tempfile::tempdir()?
    };
    let key = SecretKey::from_seed([1; 32]);
    let rotated = SecretKey::from_seed([2; 32]);
    let mut config = Config::new(
        base.path().join("control"),
        tokens(),
        Keyring::new([key.public(), rotated.public()]),
    );
    config.listen = "127.0.0.1:0".parse()?;
    config.beat_interval_ms = BEAT_MS;
    config.rollout_policy.gates.min_requests = 100;
    // Every agent is on 127.0.0.1 here: the per-address cap (256, for edges behind one NAT)
    // would refuse most of them.
    config.connections.max_connections_per_client = 0;
    let cluster = if over_nats {
        let mut cluster = rampart_e2e::NatsCluster::start(3);
        cluster.wait_ready(Duration::from_secs(30));
        config.store = rampart_control::store::StoreSpec::Nats(
            rampart_control::store::nats::NatsConfig::parse(&cluster.url())?,
        );
        Some(cluster)
    } else {
        None
    };
    let server = Server::start(config).await?;
    let url = format!("http://{}", server.addr());
    let admin = Client::new(&url, Some(ADMIN.into()))?;
    let publisher = Client::new(&url, Some(PUBLISHER.into()))?;
    let edge_url = match &cluster {
        Some(c) if agents_over_nats => c.url(),
        _ => url.clone(),
    };
    let edge_client = Client::new(&edge_url, None)?;
    println!(
        "engine: {}; agents reach the control plane at {edge_url}",
        if over_nats {
            "NATS (3 servers, R3)"
        } else {
            "SQLite"
        }
    );

    // The agents: the first `nackers` trust only the first key.
    let contract = rampart_score::edge_contract();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut reports = Vec::with_capacity(agents);
    let mut metrics_all = Vec::with_capacity(agents);
    let mut tasks = Vec::with_capacity(agents);
    for i in 0..agents {
        let keys = if i < nackers {
            Keyring::new([key.public()])
        } else {
            Keyring::new([key.public(), rotated.public()])
        };
        let mut store_config =
            rampart_ingest::Config::new(base.path().join(format!("n{i}")), contract.clone(), keys);
        store_config.soak = SoakConfig {
            secs: 3600,
            requests: u64::MAX,
        };
        let store = Arc::new(Store::boot(
            store_config,
            ModelCompiler::new(contract.max_features()),
            now_ms(),
        )?);
        let metrics = Arc::new(Metrics::default());
        let agent = Agent::with_client(
            AgentConfig {
                control: edge_url.clone(),
                token: Some(enroll(&admin, &format!("n{i:04}")).await),
                enroll_token: None,
                credential_file: None,
                node: format!("n{i:04}"),
                labels: Labels {
                    pop: format!("pop{}", i % 100),
                    region: format!("r{}", i % 5),
                    canary: i == 0,
                },
                beat_interval: None,
                // Unused: the shared client below is already built.
                transport: rampart_api::Transport::default(),
            },
            edge_client.clone(),
            store,
            metrics.clone(),
        );
        reports.push(agent.report());
        metrics_all.push(metrics);
        let mut stop = stop_rx.clone();
        tasks.push(tokio::spawn(agent.run(async move {
            let _ = stop.wait_for(|s| *s).await;
        })));
    }
    // Synthetic traffic into every agent's counters (a fixed, healthy score mix).
    let traffic = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tick.tick().await;
            for (i, m) in metrics_all.iter().enumerate() {
                for r in 0..REQUESTS_PER_TICK {
                    m.response(http::StatusCode::OK);
                    m.score(u8::try_from(20 + (i as u64 * 7 + r * 13) % 79).unwrap_or(50));
                }
            }
        }
    });
    wait_registered(&admin, agents).await?;
    println!("{agents} agents registered and beating (beat interval {BEAT_MS} ms)");

    // 1. Propagation from nothing.
    let v1 = catalog_document(1)?;
    let (d1, lat) = propagate(
        &publisher,
        &admin,
        &reports,
        Envelope::sign(&v1, &key).to_json(),
    )
    .await?;
    print_latencies("propagation, publish -> ACK (first file)", &lat);
    wait_done(&admin, "succeeded").await?;

    // 2. Rollback: v2 signed with the rotated key; the first `nackers` refuse it.
    let v2 = catalog_document(2)?;
    let t0 = now_ms();
    let d2 = publisher
        .publish(Envelope::sign(&v2, &rotated).to_json())
        .await?
        .artifact
        .digest;
    start(&admin, d2).await?;
    // The rollback may overtake a NACKer before it even fetched v2: record each NACK heartbeat
    // as it goes out, and take the first.
    let first_nack = Arc::new(AtomicU64::new(u64::MAX));
    let watchers: Vec<_> = reports
        .iter()
        .take(nackers)
        .map(|r| {
            let (mut rx, first) = (r.clone(), first_nack.clone());
            tokio::spawn(async move {
                if let Ok(Ok(r)) = tokio::time::timeout(
                    WAIT,
                    rx.wait_for(|r| {
                        verdict_is(r, d2, AckNack::Nack) && r.verdict_sent_ms.is_some()
                    }),
                )
                .await
                {
                    first.fetch_min(r.verdict_sent_ms.unwrap_or(u64::MAX), Ordering::Relaxed);
                }
            })
        })
        .collect();
    // Rolled back means every touched node that beats is on v1 again; a node the rollback
    // overtook before it switched never left v1 and is not counted.
    let view = wait_done(&admin, "rolled_back").await?;
    let back: Vec<u64> = reports
        .iter()
        .skip(nackers)
        .filter_map(|r| {
            let r = r.borrow();
            r.verdict
                .as_ref()
                .filter(|v| v.digest == d1 && v.verdict == AckNack::Ack && v.at_ms >= t0)
                .map(|v| v.at_ms)
        })
        .collect();
    let last_back = back.iter().copied().max().unwrap_or(0);
    for w in watchers {
        w.abort();
    }
    let first_nack = first_nack.load(Ordering::Relaxed);
    if first_nack == u64::MAX {
        bail!("no NACK heartbeat was seen");
    }
    println!(
        "rollback: {} of {agents} nodes NACKed; the {} that had switched are back on v1 {} ms after the first NACK heartbeat ({:.2} heartbeat intervals); rollout {}: {}",
        nackers,
        back.len(),
        last_back.saturating_sub(first_nack),
        last_back.saturating_sub(first_nack) as f64 / BEAT_MS as f64,
        view.id,
        view.outcome.unwrap_or_default()
    );

    // 3. Propagation on a warm fleet.
    let v3 = catalog_document(3)?;
    let (_, lat) = propagate(
        &publisher,
        &admin,
        &reports,
        Envelope::sign(&v3, &key).to_json(),
    )
    .await?;
    print_latencies("propagation, publish -> ACK (warm fleet)", &lat);

    stop_tx.send_replace(true);
    traffic.abort();
    for t in tasks {
        let _ = t.await;
    }
    server.shutdown().await;
    drop(cluster);
    Ok(())
}

/// Publishes, pushes to every node (break glass) and returns each agent's ACK latency from
/// the publish call, ms.
async fn propagate(
    publisher: &Client,
    admin: &Client,
    reports: &[watch::Receiver<AgentReport>],
    signed: Vec<u8>,
) -> anyhow::Result<(Digest, Vec<u64>)> {
    let t0 = now_ms();
    let digest = publisher.publish(signed).await?.artifact.digest;
    start(admin, digest).await?;
    let mut lat = Vec::with_capacity(reports.len());
    for r in reports {
        let mut rx = r.clone();
        let waited = tokio::time::timeout(
            WAIT,
            rx.wait_for(|r| verdict_is(r, digest, AckNack::Ack) && r.verdict_sent_ms.is_some()),
        )
        .await;
        let Ok(report) = waited else {
            let rollout = admin.rollouts(1).await?.rollouts.into_iter().next();
            bail!(
                "no ACK of {digest} within {WAIT:?}; the agent says {:?}; the rollout: {rollout:?}",
                *r.borrow()
            );
        };
        let report = report?.clone();
        lat.push(report.verdict_sent_ms.unwrap_or(0).saturating_sub(t0));
    }
    Ok((digest, lat))
}

/// A break-glass start: one admin asks, the other approves.
async fn start(admin: &Client, digest: Digest) -> anyhow::Result<()> {
    let pending = admin
        .rollout_start(&StartRollout {
            digest,
            reason: Some("propagation bench".into()),
            break_glass: true,
            bake_ms: Some(2_000),
            watch_ms: Some(0),
        })
        .await?
        .pending()
        .context("break glass waits for a second admin")?;
    admin
        .with_token(Some(ADMIN2.into()))
        .approve(pending.id)
        .await?;
    Ok(())
}

fn verdict_is(r: &AgentReport, digest: Digest, verdict: AckNack) -> bool {
    r.verdict
        .as_ref()
        .is_some_and(|v| v.digest == digest && v.verdict == verdict)
}

async fn wait_registered(admin: &Client, agents: usize) -> anyhow::Result<()> {
    let (mut registered, mut beating) = (0, 0);
    for _ in 0..WAIT.as_millis() / 100 {
        let nodes = admin.nodes().await?.nodes;
        registered = nodes.len();
        beating = nodes.iter().filter(|n| n.last_beat_ms.is_some()).count();
        if registered == agents && beating == agents {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!(
        "the agents did not all register: {registered} registered, {beating} beating, of {agents}"
    )
}

async fn wait_done(admin: &Client, phase: &str) -> anyhow::Result<rampart_api::RolloutView> {
    for _ in 0..WAIT.as_millis() / 100 {
        if let Some(v) = admin.rollouts(1).await?.rollouts.into_iter().next()
            && v.done
        {
            if v.phase != phase {
                bail!(
                    "rollout {} ended {} (wanted {phase}): {:?}",
                    v.id,
                    v.phase,
                    v.outcome
                );
            }
            return Ok(v);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("no rollout ended {phase}")
}

fn print_latencies(what: &str, lat: &[u64]) {
    let mut sorted = lat.to_vec();
    sorted.sort_unstable();
    let at = |q: f64| {
        let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
        sorted.get(i).copied().unwrap_or(0)
    };
    println!(
        "{what}: {} agents, p50 {} ms, p99 {} ms, max {} ms",
        sorted.len(),
        at(0.5),
        at(0.99),
        sorted.last().copied().unwrap_or(0)
    );
}
