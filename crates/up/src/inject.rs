//! `rampart up --inject nov18`: the 18 November 2025 file and its cousins, thrown at the
//! running stack, with the layer that stopped each printed.
//!
//! 1. The duplicate-features file itself (the embedded catalog, 45 shard-local columns on
//!    top, every name twice: 210 features): the generator's guards hold it, the control plane
//!    refuses it (422, every registered edge contract), and dropped straight into the canary's
//!    watch dir the edge refuses it and keeps serving.
//! 2. A file the control plane accepts but the edges refuse: signed with a rotated key the
//!    control plane already trusts and the edges do not yet. The canary NACKs, the rollout
//!    rolls back and marks it bad; the other edges never see it.
//! 3. A valid file whose every score is 1 (the old proxy's failure mode that day): nothing
//!    errors and every structural check passes; the control plane's shadow scoring (the file
//!    and the serving one on the embedded labelled sample) holds it before wave 0, so no edge
//!    is ever told to serve it. The rollout stays paused for an operator: resumed with a
//!    reason, the score-shift gate stops it at the canary.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use rampart_api::{Client, RolloutView};
use rampart_artifact::{Digest, Document, Envelope, Feature, SecretKey};
use rampart_generate::guard;
use rampart_host::clock::now_ms;

use crate::status;

/// Shard-local columns the unscoped query also returned that day, besides the duplicates.
pub const SHARD_COLUMNS: usize = 45;

/// The bias of the "every score is 1" file: within the contract's weight bound, and far
/// below anything the features can add.
pub const ALL_ONES_BIAS: f64 = -999.0;

/// How long the demo waits for the first version to reach the fleet.
pub const FIRST_VERSION_TIMEOUT: Duration = Duration::from_secs(600);

/// How long the demo waits for one rollout to end.
pub const ROLLOUT_TIMEOUT: Duration = Duration::from_secs(300);

/// How long the canary has to refuse the file dropped in its watch dir.
const WATCH_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the demo polls.
const POLL: Duration = Duration::from_millis(250);

/// Where the demo acts.
#[derive(Debug)]
pub struct Target {
    /// The control plane, with the publisher's token.
    pub publisher: Client,
    /// The control plane, read-only.
    pub anon: Client,
    /// The trusted signing key.
    pub key: SecretKey,
    /// A key only the control plane trusts.
    pub rotated: SecretKey,
    /// The canary's id.
    pub canary: String,
    /// The canary's admin address.
    pub canary_admin: SocketAddr,
    /// The canary's watch dir.
    pub canary_watch: PathBuf,
}

/// Which layer stopped a file, for the closing table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop {
    /// The file.
    pub file: String,
    /// The layer.
    pub layer: String,
    /// What it said.
    pub detail: String,
}

/// Runs the three injections in order, printing as it goes; returns who stopped what.
pub async fn nov18(t: &Target, say: &(dyn Fn(String) + Send + Sync)) -> anyhow::Result<Vec<Stop>> {
    say("inject: waiting for a first version to reach every edge".into());
    let base = first_version(t).await?;
    let mut stops = Vec::new();
    let fleet = base.saturating_sub(1);

    // 1. The file itself.
    let doc = nov18_document(base)?;
    let name = format!(
        "nov18 v{base} ({} features, {} names twice)",
        doc.features.len(),
        doc.features.len() / 2
    );
    let mut held: Vec<String> = Vec::new();
    if let Some(guard::Refusal::Duplicates { names }) = guard::duplicates(&doc.features) {
        held.push(format!("duplicates ({} names)", names.len()));
    }
    for r in guard::contracts(&doc, &[rampart_score::edge_contract()], None) {
        if let guard::Refusal::Contract { consumer, issues } = r {
            let codes: Vec<&str> = issues.iter().map(|i| i.code()).collect();
            held.push(format!("contract {consumer} ({})", tally(&codes)));
        }
    }
    say(format!(
        "inject: {name}: generator guards HOLD it: {}",
        held.join("; ")
    ));
    stops.push(Stop {
        file: name.clone(),
        // The guards the generator runs, called here on the file: the running generator
        // reads the embedded catalog, which never doubles.
        layer: "generator guards".into(),
        detail: held.join("; "),
    });
    let signed = Envelope::sign(&doc, &t.key).to_json();
    match t.publisher.publish(signed.clone()).await {
        Err(e) if e.is_refusal() => {
            let status = e.status().unwrap_or_default();
            let codes = e.api().map(|a| tally(&a.issue_codes())).unwrap_or_default();
            say(format!(
                "inject: {name}: control plane REFUSES it ({status}): {codes}"
            ));
            stops.push(Stop {
                file: name.clone(),
                layer: "control plane".into(),
                detail: format!("{status} {codes}"),
            });
        }
        Err(e) => bail!("publishing the nov18 file: {e}"),
        Ok(r) => bail!(
            "the control plane accepted the nov18 file ({})",
            r.artifact.digest
        ),
    }
    let dropped_ms = now_ms();
    crate::stack::drop_into(&t.canary_watch, "nov18.rfeat", &signed)
        .context("dropping the nov18 file into the canary's watch dir")?;
    let refusal = watch_refusal(t, dropped_ms).await?;
    say(format!(
        "inject: {name}: dropped into {}'s watch dir: the edge REFUSES it ({refusal}) and keeps serving v{fleet}",
        t.canary
    ));
    stops.push(Stop {
        file: name,
        layer: format!("edge {}", t.canary),
        detail: refusal,
    });

    // 2. Accepted by the control plane, refused by the edges.
    let mut doc = catalog_document(base + 1)?;
    doc.provenance.generator = "rampart up --inject (rotated key)".into();
    let name = format!("v{} signed with a key the edges do not trust yet", base + 1);
    let stop = roll_out(
        t,
        &name,
        Envelope::sign(&doc, &t.rotated).to_json(),
        doc.digest(),
        say,
    )
    .await?;
    stops.push(stop);

    // 3. Valid, and every score is 1.
    let mut doc = catalog_document(base + 2)?;
    doc.model.bias = ALL_ONES_BIAS;
    doc.provenance.generator = "rampart up --inject (every score 1)".into();
    let name = format!("v{} valid, every score 1", base + 2);
    let stop = roll_out(
        t,
        &name,
        Envelope::sign(&doc, &t.key).to_json(),
        doc.digest(),
        say,
    )
    .await?;
    stops.push(stop);
    Ok(stops)
}

/// Publishes a file the control plane accepts, then follows the rollout `--auto-rollout`
/// starts for it to its end.
async fn roll_out(
    t: &Target,
    name: &str,
    signed: Vec<u8>,
    digest: Digest,
    say: &(dyn Fn(String) + Send + Sync),
) -> anyhow::Result<Stop> {
    let published = t
        .publisher
        .publish(signed)
        .await
        .with_context(|| format!("publishing {name}"))?;
    say(format!(
        "inject: {name}: control plane ACCEPTS it (checked against {}); the auto-rollout starts at the canary",
        published.checked_against.join(", ")
    ));
    let view = rollout_of(t, digest).await?;
    let outcome = view.outcome.clone().unwrap_or_default();
    if held_by_shadow(&view) {
        let told = view.waves.iter().filter(|w| w.phase != "pending").count();
        say(format!(
            "inject: {name}: rollout #{} HELD before wave 0 ({told} waves started): {outcome}",
            view.id
        ));
        return Ok(Stop {
            file: name.to_owned(),
            layer: format!("control plane shadow, rollout #{}", view.id),
            detail: format!("held before wave 0, no edge told: {outcome}"),
        });
    }
    let gate = failed_gate(&view).unwrap_or_else(|| "-".into());
    say(format!(
        "inject: {name}: rollout #{} {} (gate {gate}): {outcome}",
        view.id, view.phase
    ));
    Ok(Stop {
        file: name.to_owned(),
        layer: format!("rollout #{} ({gate})", view.id),
        detail: format!("{}: {outcome}", view.phase),
    })
}

/// Waits until every node serves one version and nothing rolls out; returns the version the
/// injected files start from (above anything published).
async fn first_version(t: &Target) -> anyhow::Result<u64> {
    let polls = FIRST_VERSION_TIMEOUT.as_millis() / POLL.as_millis();
    for _ in 0..polls {
        let nodes = t.anon.nodes().await.map(|n| n.nodes).unwrap_or_default();
        let settled = !nodes.is_empty()
            && nodes.iter().all(|n| {
                n.active.is_some()
                    && n.active.map(|a| a.digest) == n.desired.as_ref().map(|d| d.digest)
            });
        let idle = t
            .anon
            .rollouts(1)
            .await
            .map(|l| l.rollouts.iter().all(|r| r.done))
            .unwrap_or(false);
        if settled && idle {
            let newest = t
                .anon
                .artifacts(1)
                .await
                .context("listing artifacts")?
                .artifacts
                .first()
                .map_or(0, |a| a.version);
            return Ok(newest + 1);
        }
        tokio::time::sleep(POLL).await;
    }
    bail!("no version reached the fleet within {FIRST_VERSION_TIMEOUT:?}")
}

/// Whether shadow scoring holds the rollout before its first wave.
fn held_by_shadow(view: &RolloutView) -> bool {
    view.phase == "paused"
        && view
            .state
            .pointer("/status/phase/cause/by")
            .and_then(|b| b.as_str())
            == Some("shadow")
}

/// Waits for the rollout of `digest` to end, or to be held before its first wave.
async fn rollout_of(t: &Target, digest: Digest) -> anyhow::Result<RolloutView> {
    let polls = ROLLOUT_TIMEOUT.as_millis() / POLL.as_millis();
    for _ in 0..polls {
        if let Ok(list) = t.anon.rollouts(5).await
            && let Some(v) = list
                .rollouts
                .into_iter()
                .find(|r| r.target.digest == digest)
            && (v.done || held_by_shadow(&v))
        {
            return Ok(v);
        }
        tokio::time::sleep(POLL).await;
    }
    bail!("the rollout of {digest} did not end within {ROLLOUT_TIMEOUT:?}")
}

/// Waits for the canary's `/status` to show a watch-dir refusal made after `since_ms`.
async fn watch_refusal(t: &Target, since_ms: u64) -> anyhow::Result<String> {
    let polls = WATCH_TIMEOUT.as_millis() / POLL.as_millis();
    for _ in 0..polls {
        if let Ok(s) = status::get_json(t.canary_admin, "/status").await
            && let Some(r) = s.get("last_rejection")
            && r.get("origin").and_then(|o| o.as_str()) == Some("watch")
            && r.get("at_ms")
                .and_then(serde_json::Value::as_u64)
                .is_some_and(|at| at >= since_ms)
        {
            let codes: Vec<&str> = r
                .get("issues")
                .and_then(|i| i.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|i| i.get("code").and_then(|c| c.as_str()))
                        .collect()
                })
                .unwrap_or_default();
            let code = r.get("code").and_then(|c| c.as_str()).unwrap_or("?");
            return Ok(format!("{code}: {}", tally(&codes)));
        }
        tokio::time::sleep(POLL).await;
    }
    bail!("the canary did not report the dropped file within {WATCH_TIMEOUT:?}")
}

/// Issue codes counted, in first-seen order: `too_many_features, duplicate_name ×105`.
pub fn tally(codes: &[&str]) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for code in codes {
        match counts.iter_mut().find(|(c, _)| c == code) {
            Some((_, n)) => *n += 1,
            None => counts.push((code, 1)),
        }
    }
    counts
        .iter()
        .map(|(c, n)| {
            if *n > 1 {
                format!("{c} ×{n}")
            } else {
                (*c).to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The gate that failed a rollout, from its stored state (`cause.failure.gate`).
pub fn failed_gate(view: &RolloutView) -> Option<String> {
    fn find(v: &serde_json::Value) -> Option<String> {
        match v {
            serde_json::Value::Object(map) => {
                if let Some(gate) = map
                    .get("cause")
                    .and_then(|c| c.get("failure"))
                    .and_then(|f| f.get("gate"))
                    .and_then(|g| g.as_str())
                {
                    return Some(gate.to_owned());
                }
                map.values().find_map(find)
            }
            serde_json::Value::Array(items) => items.iter().find_map(find),
            _ => None,
        }
    }
    find(&view.state)
}

/// The embedded catalog as a feature file of `version`, as the generator would make it.
pub fn catalog_document(version: u64) -> anyhow::Result<Document> {
    let catalog = rampart_generate::Catalog::embedded().context("the embedded catalog")?;
    let candidate = rampart_generate::Candidate {
        source: "catalog:embedded".into(),
        query: "embedded catalog".into(),
        rows: catalog.features.len() as u64,
        server_version: None,
        bias: catalog.bias,
        features: catalog.features.clone(),
        unweighted: Vec::new(),
    };
    Ok(rampart_generate::job::build_document(
        &candidate,
        version,
        &time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .context("formatting the time")?,
    ))
}

/// The 18 November file: the catalog, the shard-local columns, and every name twice.
pub fn nov18_document(version: u64) -> anyhow::Result<Document> {
    let mut doc = catalog_document(version)?;
    doc.features.extend((0..SHARD_COLUMNS).map(|i| Feature {
        name: format!("r0_shard_col_{i:02}"),
        ty: "UInt8".into(),
        weight: 0.0,
    }));
    let again = doc.features.clone();
    doc.features.extend(again);
    doc.provenance.source = "clickhouse://127.0.0.1:8123/default".into();
    doc.provenance.query =
        "SELECT name, type FROM system.columns WHERE table = 'http_requests_features' ORDER BY name"
            .into();
    doc.provenance.rows = doc.features.len() as u64;
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_artifact::testing::{key, signed};
    use rampart_artifact::{Keyring, Policy, check};

    #[test]
    fn the_nov18_file_is_every_name_twice_past_the_limit() {
        let doc = nov18_document(7).unwrap();
        assert_eq!(doc.features.len(), 2 * (60 + SHARD_COLUMNS));
        let bytes = signed(&doc);
        let contract = rampart_score::edge_contract();
        let keyring = Keyring::new([key().public()]);
        let issues = check(
            &bytes,
            &Policy {
                contract: &contract,
                keyring: Some(&keyring),
                previous: None,
            },
        )
        .unwrap_err();
        let codes: Vec<&str> = issues.iter().map(|i| i.code()).collect();
        assert!(codes.contains(&"duplicate_name") && codes.contains(&"too_many_features"));
    }

    #[test]
    fn codes_are_tallied_in_order() {
        assert_eq!(tally(&["a", "b", "b", "a", "c"]), "a ×2, b ×2, c");
        assert_eq!(tally(&[]), "");
    }

    #[test]
    fn the_catalog_file_is_valid_for_the_edge() {
        let mut doc = catalog_document(3).unwrap();
        doc.model.bias = ALL_ONES_BIAS;
        let contract = rampart_score::edge_contract();
        let keyring = Keyring::new([key().public()]);
        let checked = check(
            &signed(&doc),
            &Policy {
                contract: &contract,
                keyring: Some(&keyring),
                previous: None,
            },
        );
        assert!(checked.is_ok(), "{:?}", checked.err());
    }
}
